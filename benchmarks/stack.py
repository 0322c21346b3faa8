"""Access to the local stack: .stack/env, the Docker CLI and the Neutron API."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import ipaddress
import json
import logging
import os
import pathlib
import shlex
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

LOG = logging.getLogger(__name__)

ROOT = pathlib.Path(__file__).resolve().parent.parent
STACK_DIR = ROOT / ".stack"
ENV_FILE = STACK_DIR / "env"
LABEL = "kuryrnet-bench"  # Docker label key on every container and network of a run
DOCKER_TIMEOUT = 300.0  # seconds for one docker command


class StackError(RuntimeError):
    """The local stack is missing or does not respond as expected."""


def read_env() -> dict[str, str]:
    """Return the variables that `stack/stack up` exported in .stack/env."""
    if not ENV_FILE.exists():
        raise StackError(f"the local stack is not up ({ENV_FILE} is missing); run `make stack-up`")
    env = {}
    for line in ENV_FILE.read_text().splitlines():
        line = line.strip()
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    for key in ("DOCKER_HOST", "DOCKER", "NEUTRON_URL", "KURYR_CONFIG", "KURYRNET", "TEST_IMAGE"):
        if not env.get(key):
            raise StackError(f"{ENV_FILE} does not set {key}; rerun `make stack-up`")
    if env.get("STACK_MODE", "noauth") != "noauth":
        raise StackError(f"the stack runs in {env['STACK_MODE']} mode; the benchmark needs "
                         f"Neutron without Keystone (restart the stack without STACK_KEYSTONE=1)")
    return env


@dataclasses.dataclass
class Timed:
    """A finished command with its wall-clock duration."""

    returncode: int
    seconds: float
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def error_line(self) -> str:
        """Return the line of stderr that names the cause, without the Docker CLI's usage hint."""
        lines = [line.strip() for line in self.stderr.splitlines()
                 if line.strip() and not line.startswith(("See '", "Run '"))]
        return lines[-1][:300] if lines else f"exit code {self.returncode}"


class Docker:
    """The stack's Docker engine, driven through the matching Docker CLI."""

    def __init__(self, env: dict[str, str], run_id: str):
        self.binary = env["DOCKER"]
        self.image = env["TEST_IMAGE"]
        self.run_id = run_id
        self.environment = {**os.environ, "DOCKER_HOST": env["DOCKER_HOST"]}

    def command(self, *args: str, timeout: float = DOCKER_TIMEOUT) -> Timed:
        started = time.perf_counter()
        try:
            result = subprocess.run([self.binary, *args], capture_output=True, text=True,
                                    env=self.environment, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            return Timed(-1, time.perf_counter() - started, "",
                         f"docker {' '.join(args)} timed out after {timeout:.0f} s: {exc}")
        return Timed(result.returncode, time.perf_counter() - started, result.stdout, result.stderr)

    def check(self, *args: str, timeout: float = DOCKER_TIMEOUT) -> str:
        """Run a docker command; return its stdout or raise StackError with Docker's message."""
        result = self.command(*args, timeout=timeout)
        if not result.ok:
            raise StackError(f"docker {' '.join(args)} failed: {result.error_line()}")
        return result.stdout

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([self.binary, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self.environment)

    # -- the commands being measured ---------------------------------------------------

    def run_args(self, network: str, command: tuple[str, ...] = ("true",), detach: bool = False,
                 name: str | None = None) -> list[str]:
        """Return the arguments of `docker run` on `network` ("none" for no network)."""
        args = ["run", "--label", f"{LABEL}={self.run_id}"]
        args += ["-d"] if detach else ["--rm"]
        if name:
            args += ["--name", name]
        args += ["--network", network, self.image, *command]
        return args

    def run_rm(self, network: str) -> Timed:
        return self.command(*self.run_args(network))

    def network_create(self, name: str, driver: str, subnet: str, options: tuple[str, ...] = ()) -> Timed:
        args = ["network", "create", "--label", f"{LABEL}={self.run_id}", "-d", driver]
        if driver not in ("bridge",):
            args += ["--ipam-driver", driver]
        # kuryr-libnetwork 18.0.0 returns no address for Docker's gateway
        # request at network creation unless one is given, so every network
        # gets its first host address as gateway, for all drivers alike.
        gateway = next(ipaddress.IPv4Network(subnet).hosts())
        args += ["--subnet", subnet, "--gateway", str(gateway)]
        for option in options:
            args += ["-o", option]
        return self.command(*args, name)

    def network_rm(self, name: str) -> Timed:
        return self.command("network", "rm", name)

    # -- inspection and cleanup ---------------------------------------------------------

    def reachable(self) -> bool:
        return self.command("version", "--format", "{{.Server.Version}}", timeout=30).ok

    def versions(self) -> dict:
        try:
            return json.loads(self.check("version", "--format", "{{json .}}"))
        except (StackError, ValueError) as exc:
            return {"error": str(exc)}

    def labelled(self, kind: str, run_id: str | None = None) -> list[str]:
        """Return the ids of containers ("ps") or networks ("network") of a run, or of any run."""
        label = f"{LABEL}={run_id}" if run_id else LABEL
        if kind == "ps":
            output = self.check("ps", "-aq", "--filter", f"label={label}")
        else:
            output = self.check("network", "ls", "-q", "--filter", f"label={label}")
        return output.split()

    def remove_containers(self, ids: list[str], parallel: int = 8) -> list[str]:
        """Remove containers by id; return one message per failure."""
        failures = []

        def remove(batch: list[str]) -> None:
            result = self.command("rm", "-f", *batch)
            if not result.ok and "No such container" not in result.stderr:
                failures.append(f"docker rm -f {' '.join(batch)}: {result.error_line()}")

        batches = [ids[i:i + 10] for i in range(0, len(ids), 10)]
        with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
            list(pool.map(remove, batches))
        return failures

    def remove_network(self, name: str, timeout: float = 60.0) -> str | None:
        """Remove a network, retrying while a container removal still finishes; return an error or None."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.network_rm(name)
            if result.ok or "not found" in result.stderr:
                return None
            if time.monotonic() > deadline:
                return f"docker network rm {name}: {result.error_line()}"
            time.sleep(1.0)


class Neutron:
    """A minimal Neutron API client (no Keystone), used to inspect and clean up directly."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")

    def request(self, method: str, path: str, body: dict | None = None,
                params: dict | None = None) -> dict:
        url = f"{self.url}/v2.0/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method,
                                         headers={"Content-Type": "application/json",
                                                  "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                payload = answer.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise StackError(f"Neutron {method} {path} failed: HTTP {exc.code}: {detail}") from None
        except OSError as exc:
            raise StackError(f"Neutron {method} {path} failed: {exc}") from None
        return json.loads(payload) if payload else {}

    def list(self, collection: str, **params) -> list[dict]:
        key = collection.replace("-", "_")
        return self.request("GET", collection, params=params or None)[key]

    def delete(self, collection: str, item_id: str) -> None:
        try:
            self.request("DELETE", f"{collection}/{item_id}")
        except StackError as exc:
            if "HTTP 404" not in str(exc):
                raise

    def reachable(self) -> bool:
        try:
            self.list("networks", limit=1)
        except StackError:
            return False
        return True

    def version(self) -> str:
        """Return the Neutron API's version string, for the report."""
        request = urllib.request.Request(f"{self.url}/", headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                versions = json.loads(answer.read()).get("versions", [])
        except (OSError, ValueError) as exc:
            return f"unknown ({exc})"
        return ", ".join(f"{item.get('id')} ({item.get('status')})" for item in versions)
