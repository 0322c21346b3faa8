"""Helpers for the reliability tests: a kuryrnet daemon on its own plugin socket,
and checks for what kuryrnet leaves behind in Neutron, OVS and on the host.

The end-to-end suite's daemon serves /run/docker/plugins/kuryr.sock, so these
tests serve the plugin `kuryrrel` on /run/docker/plugins/kuryrrel.sock and
create Docker networks with `-d kuryrrel --ipam-driver kuryrrel`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import pathlib
import re
import signal
import subprocess
import time

import pytest

from kuryrnet.binding import load_drivers
from kuryrnet.neutron import tags
from kuryrnet.operations.pool import POOL_PORT_NAME
from tests.stack import STACK_DIR, Daemon, Docker

DRIVER = "kuryrrel"
SOCKET = f"/run/docker/plugins/{DRIVER}.sock"
LOG_DIR = STACK_DIR / "logs" / "reliability"

# The port pool of a starting daemon replaces the unclaimed pool ports of
# this host after this many seconds (30 by default). Other daemons on the
# stack (the end-to-end suite's, a benchmark's) share this host, so the
# tests' daemons never get that far: they would delete the others' ready
# ports. A test's own pool ports go with its networks.
POOL_RECOVERY_GRACE = 3600.0

# Every subnet of these tests is inside this prefix: their --subnet values
# and the default subnet pool (10.128.0.0/12) for networks without one.
TEST_RANGE = ipaddress.ip_network("10.128.0.0/11")

# The grace the tests give `kuryrnet gc` instead of its default of 60 s. No
# call of the test's own daemon runs while it does, and calls of other daemons
# on the stack finish well within it.
GC_GRACE = 5.0


def write_config(path: pathlib.Path, sections: dict[str, dict[str, object]] | None = None) -> pathlib.Path:
    """Write a configuration file that moves the daemon to SOCKET, plus `sections`.

    It is read after the stack's kuryr.conf, so its values win.
    """
    merged: dict[str, dict[str, object]] = {
        "DEFAULT": {"socket_path": SOCKET},
        "port_pool": {"recovery_grace": POOL_RECOVERY_GRACE},
    }
    for section, values in (sections or {}).items():
        merged.setdefault(section, {}).update(values)
    lines = []
    for section, values in merged.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value}" for key, value in values.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


class Plugin:
    """The kuryrrel daemons of one test: at most one runs at a time, each stopped by its PID."""

    def __init__(self, env: dict[str, str], config_path: pathlib.Path, log_name: str):
        self.env = env
        self.config_path = config_path
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"{log_name}.log"
        self.log_path.unlink(missing_ok=True)
        self.daemon: Daemon | None = None
        self.started = 0
        # Set by the `plugin` fixture: the inventory and its snapshot before the test.
        self.inventory: Inventory | None = None
        self.before: set[str] = set()

    def start(self, crash_at: str | None = None, extra_env: dict[str, str] | None = None) -> Daemon:
        """Start a daemon, armed to kill itself at `crash_at` when given."""
        self.stop()
        environment = dict(extra_env or {})
        environment["KURYRNET_CRASH_AT"] = crash_at or ""
        self.daemon = Daemon(self.env, self.log_path, socket_path=SOCKET,
                             extra_args=("--config-file", str(self.config_path)),
                             extra_env=environment)
        self.started += 1
        with open(self.log_path, "a") as log:
            log.write(f"--- test: daemon start {self.started}, crash point {crash_at or 'none'}\n")
        self.daemon.start(timeout=30)
        return self.daemon

    @property
    def pid(self) -> int:
        assert self.daemon is not None and self.daemon.process is not None
        return self.daemon.process.pid

    def alive(self) -> bool:
        return (self.daemon is not None and self.daemon.process is not None
                and self.daemon.process.poll() is None)

    def wait_exit(self, timeout: float) -> int | None:
        """Wait for the daemon to exit; return its exit code, or None if it still runs."""
        assert self.daemon is not None and self.daemon.process is not None
        try:
            return self.daemon.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def wait_idle(self, timeout: float = 60) -> None:
        """Wait until the daemon's background queue is empty (claims, deletes, pool fills)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.daemon.status()["port_pool"]["background_queue"] == 0:
                return
            time.sleep(0.2)
        pytest.fail(f"kuryrnet's background queue did not drain within {timeout} s; "
                    f"log: {self.log_path}")

    def gc(self, remove: bool, grace: float | None = GC_GRACE) -> list[str]:
        """Run `kuryrnet gc` with this test's configuration; return the leftovers it lists."""
        command = [self.env["KURYRNET"], "gc", "--config-file", self.env["KURYR_CONFIG"],
                   "--config-file", str(self.config_path)]
        if remove:
            command.append("--remove")
        if grace is not None:
            command += ["--grace", str(grace)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, f"kuryrnet gc failed: {result.stderr}"
        lines = result.stdout.splitlines()
        return [] if lines == ["no leftovers found"] else lines

    def wait_no_leftovers(self, docker: Docker, timeout: float = 30) -> None:
        """Wait until kuryrnet owns nothing new since the test started that no live Docker object owns.

        The wait also lets resources of other work on the stack that are
        between two states (a network being created) settle.
        """
        wait_no_leftovers(self.inventory, self.before, docker, timeout)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """Stop the running daemon with SIGTERM (SIGKILL after 20 s)."""
        if self.daemon is not None:
            self.daemon.stop(signal.SIGTERM)
            self.daemon = None


def docker_client(env: dict[str, str]) -> Docker:
    return Docker(env, driver=DRIVER)


def docker_network_id(docker: Docker, name: str) -> str | None:
    result = docker.run("network", "inspect", name, check=False)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout)[0]["Id"]


def live_docker_ids(docker: Docker) -> tuple[set[str], set[str]]:
    """Return the ids of Docker's networks and of their endpoints, as Docker's API lists them."""
    result = docker.run("network", "ls", "-q", "--no-trunc")
    network_ids = set(result.stdout.split())
    endpoints = set()
    if not network_ids:
        return network_ids, endpoints
    inspected = docker.run("network", "inspect", *sorted(network_ids), check=False)
    for network in json.loads(inspected.stdout or "[]"):
        for container in (network.get("Containers") or {}).values():
            if container.get("EndpointID"):
                endpoints.add(container["EndpointID"])
    return network_ids, endpoints


def live_endpoints(docker: Docker) -> set[str]:
    return live_docker_ids(docker)[1]


def is_pool_port(port: dict) -> bool:
    """Return whether `port` is a ready pool port, which a live network may keep."""
    return port["name"] == POOL_PORT_NAME and not port["device_id"]


def _docker_network_of(item: dict) -> str:
    for tag in item.get("tags", []):
        if tag.startswith("kuryrnet.net."):
            return tag.removeprefix("kuryrnet.net.")
    return "-"


class Inventory:
    """What kuryrnet owns in Neutron, OVS and on the host, one line per resource.

    Each line names the Docker network or endpoint the resource belongs to,
    so a check can skip what belongs to live Docker objects of other work on
    the same stack. A test takes a snapshot before it starts and compares
    with a later one.
    """

    def __init__(self, neutron, conf):
        self.neutron = neutron
        self.untagged_description = tags.network_description(conf.host_id)
        self.bindings = list({id(d): d for d in load_drivers(conf).values()}.values())

    def neutron_resources(self) -> set[str]:
        found = set()
        networks = {}
        for network in self.neutron.list("networks"):
            docker_id = _docker_network_of(network)
            networks[network["id"]] = docker_id
            if tags.OWNED in network.get("tags", []):
                found.add(f"network {network['id']} {network['name']} of Docker network {docker_id}")
            elif docker_id != "-":
                found.add(f"network {network['id']} still tagged for Docker network {docker_id}")
            elif network.get("description") == self.untagged_description:
                found.add(f"network {network['id']} {network['name']} without tags")
        for port in self.neutron.list("ports", tags=tags.OWNED):
            found.add(f"port {port['id']} {port['name']} of Docker network "
                      f"{networks.get(port['network_id'], '-')} device {port['device_id'] or '-'}")
        for collection in ("subnets", "security-groups"):
            for item in self.neutron.list(collection):
                docker_id = _docker_network_of(item)
                # A crash before the tagging leaves only kuryrnet's name on it.
                if (tags.OWNED in item.get("tags", []) or docker_id != "-"
                        or (item.get("name") or "").startswith("kuryrnet-")):
                    found.add(f"{collection[:-1]} {item['id']} {item.get('name', '')} of Docker "
                              f"network {docker_id}")
        for pool in self.neutron.list("subnetpools"):
            if pool["name"].startswith("kuryrnet-cidr-"):
                found.add(f"subnet pool {pool['id']} {pool['name']}")
            for tag in pool.get("tags", []):
                if tags.reserved_cidr(tag):
                    found.add(f"subnet pool {pool['id']} reservation {tag}")
        return found

    def host_ports(self) -> set[str]:
        found = set()
        for binding in self.bindings:
            for host_port in binding.list_ports():
                found.add(f"host interface {host_port.host_ifname} of endpoint {host_port.endpoint_id}")
        return found

    def snapshot(self) -> set[str]:
        return self.neutron_resources() | self.host_ports()


def belongs_to_live(line: str, network_ids: set[str], endpoint_ids: set[str]) -> bool:
    """Return whether an inventory line names a live Docker network or endpoint."""
    words = line.split()
    return any(word in network_ids or word in endpoint_ids for word in words)


def outside_test_range(line: str) -> bool:
    """Return whether an inventory line is a subnet pool or reservation outside TEST_RANGE.

    Such lines name no Docker id, so only their prefix tells that other work
    on the stack made them.
    """
    found = re.search(r"kuryrnet[.-](?:cidr-|reserved\.)([0-9.]+)_([0-9]+)", line)
    if found is None:
        return False
    prefix = ipaddress.ip_network(f"{found.group(1)}/{found.group(2)}", strict=False)
    return not prefix.subnet_of(TEST_RANGE)


def leftovers(inventory: Inventory, before: set[str], docker: Docker) -> list[str]:
    """Return the resources new since `before` that no live Docker network or endpoint owns."""
    network_ids, endpoint_ids = live_docker_ids(docker)
    return sorted(line for line in inventory.snapshot() - before
                  if not belongs_to_live(line, network_ids, endpoint_ids)
                  and not outside_test_range(line))


def wait_no_leftovers(inventory: Inventory, before: set[str], docker: Docker,
                      timeout: float = 60) -> None:
    """Wait until `leftovers` is empty, or fail listing what remains."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = leftovers(inventory, before, docker)
        if not remaining:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"kuryrnet left {len(remaining)} resource(s) behind after {timeout:.0f} s: "
                        f"{remaining}")
        time.sleep(0.5)


def log_name(request) -> str:
    """Return a file name, without folder and suffix, for the current test's daemon log."""
    name = request.node.name
    for character in "[]/: ":
        name = name.replace(character, "_")
    return f"{pathlib.Path(request.node.fspath).stem}-{name}"


def neutron_network_of(neutron, docker: Docker, name: str) -> dict | None:
    docker_id = docker_network_id(docker, name)
    if docker_id is None:
        return None
    found = neutron.list("networks", tags=tags.docker_network(docker_id))
    return found[0] if found else None


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to serve in /run/docker/plugins")
