"""A fake Driver and helpers shared by the API, wire and CLI tests; no tests here.

Run as a script, this module is `kuryrnet` with the driver replaced by the
fake, so the server tests can start a real `kuryrnet serve` process without
Neutron: `python test_api_fakes.py serve --config-file F`.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

from kuryrnet import config, model

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "docker-20.10-requests"
FAKES_SCRIPT = Path(__file__).resolve()

NETWORK_ID = "8d5623916b7d1a9711f6c95096ee153bf63ef8376283209104d1b306abfaeec8"
ENDPOINT_ID = "fe241c033d6af9ff1b4a9ccf87ff53030496b940e8823fdf390a17645ce53f4c"
NET_UUID = "3f1e9c2a-5b7d-4e8f-9a0b-1c2d3e4f5a6b"

FAKE_MAC = "fa:16:3e:00:00:01"
SLEEP_OPTION = "test.sleep_seconds"
FAKE_HOST_IFNAME = "tap8d5623916b"

LOG = logging.getLogger("fake-driver")


def load_captures() -> list[tuple[str, dict]]:
    """Return (file:seq, line) for every line of every capture file, in file order."""
    lines = []
    for path in sorted(FIXTURES.glob("*.jsonl")):
        for text in path.read_text().splitlines():
            if text.strip():
                line = json.loads(text)
                lines.append((f"{path.stem}:{line['seq']}", line))
    return lines


def make_conf(**overrides):
    """Return a configuration with every option at its default, except `overrides`."""
    conf = config.load([], config_files=[])
    for name, value in overrides.items():
        conf.set_override(name, value)
    return conf


class FakeDriver:
    """Records each call and returns plausible results, like a Driver that always succeeds.

    `errors` maps a method name to the exception it raises; `delays` maps a
    method name to seconds it sleeps first.
    """

    def __init__(self):
        self.calls: list[tuple[str, object]] = []
        self.errors: dict[str, BaseException] = {}
        self.delays: dict[str, float] = {}
        self.started = False
        self.stopped = False
        self._lock = threading.Lock()

    def _record(self, method: str, request: object) -> None:
        with self._lock:
            self.calls.append((method, request))
        if method in self.delays:
            time.sleep(self.delays[method])
        if method in self.errors:
            raise self.errors[method]

    def requests_of(self, method: str) -> list:
        return [request for name, request in self.calls if name == method]

    # IPAM driver

    def request_pool(self, req: model.RequestPool) -> model.PoolResponse:
        self._record("request_pool", req)
        pool = req.pool or ipaddress.ip_network("fd6b:7572::/64" if req.v6 else "10.128.0.0/24")
        return model.PoolResponse(pool_id=f"kuryr-pool-{pool}", pool=pool)

    def release_pool(self, req: model.ReleasePool) -> None:
        self._record("release_pool", req)

    def request_address(self, req: model.RequestAddress) -> model.AddressResponse:
        self._record("request_address", req)
        address = req.address or ipaddress.ip_address("10.128.0.2")
        prefix = 64 if address.version == 6 else 24
        return model.AddressResponse(address=ipaddress.ip_interface(f"{address}/{prefix}"))

    def release_address(self, req: model.ReleaseAddress) -> None:
        self._record("release_address", req)

    # Network driver

    def create_network(self, req: model.CreateNetwork) -> None:
        """Record the call; the -o option test.sleep_seconds=S makes it take S seconds."""
        self._record("create_network", req)
        try:
            seconds = float(req.generic_options.get(SLEEP_OPTION, "0"))
        except ValueError:
            seconds = 0
        if 0 < seconds <= 60:
            time.sleep(seconds)

    def delete_network(self, req: model.NetworkRef) -> None:
        self._record("delete_network", req)

    def create_endpoint(self, req: model.CreateEndpoint) -> model.EndpointInterface:
        self._record("create_endpoint", req)
        return model.EndpointInterface(mac_address=None if req.mac_address else FAKE_MAC)

    def delete_endpoint(self, req: model.EndpointRef) -> None:
        self._record("delete_endpoint", req)

    def endpoint_oper_info(self, req: model.EndpointRef) -> dict:
        self._record("endpoint_oper_info", req)
        return {"port_id": NET_UUID, "host_ifname": FAKE_HOST_IFNAME}

    def join(self, req: model.Join) -> model.JoinResponse:
        self._record("join", req)
        return model.JoinResponse(
            src_name=FAKE_HOST_IFNAME, dst_prefix="eth",
            gateway=ipaddress.IPv4Address("10.99.0.1"), gateway_ipv6=None,
            static_routes=(
                model.StaticRoute(ipaddress.ip_network("10.200.0.0/16"),
                                  ipaddress.ip_address("10.99.0.254")),
                model.StaticRoute(ipaddress.ip_network("10.201.0.0/16"), None),
            ))

    def leave(self, req: model.EndpointRef) -> None:
        self._record("leave", req)

    def program_external_connectivity(self, req: model.ExternalConnectivity) -> None:
        self._record("program_external_connectivity", req)

    def revoke_external_connectivity(self, req: model.EndpointRef) -> None:
        self._record("revoke_external_connectivity", req)

    # Daemon

    def start(self) -> None:
        self.started = True
        LOG.info("fake driver started")

    def stop(self) -> None:
        self.stopped = True
        LOG.info("fake driver stopped")

    def status(self) -> dict:
        return {"driver": "fake", "calls": len(self.calls)}


class ServeProcess:
    """`kuryrnet serve` with the fake driver, in a subprocess; `extra_config` is appended to its file."""

    def __init__(self, directory: Path, name: str, listen_address: str = "127.0.0.1:0",
                 extra_config: str = ""):
        self.socket_path = directory / "run" / "kuryr.sock"
        self.spec_path = directory / "plugins" / "kuryr.json"
        self.log_path = directory / f"{name}.log"
        config_path = directory / f"{name}.conf"
        config_path.write_text(
            "[DEFAULT]\n"
            f"socket_path = {self.socket_path}\n"
            f"listen_address = {listen_address}\n"
            f"spec_file = {self.spec_path}\n"
            f"{extra_config}")
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, str(FAKES_SCRIPT), "serve", "--config-file", str(config_path)],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=str(directory))

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"kuryrnet serve exited early:\n{self.output()}")
            if "kuryrnet is ready" in self.output():
                return
            time.sleep(0.05)
        raise AssertionError(f"kuryrnet serve did not become ready:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Kill the process by its PID if a test left it running."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.log.close()


def _serve_with_fake_driver() -> int:
    from kuryrnet import cli
    from kuryrnet.operations import driver as driver_module

    driver_module.build_driver = lambda conf: FakeDriver()
    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(_serve_with_fake_driver())
