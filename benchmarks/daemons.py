"""The plugin daemons under test: a private kuryrnet daemon and kuryr-libnetwork.

Both are started in their own session, so a Ctrl-C in the terminal reaches
only the benchmark, which then removes the containers and networks while
the plugins still respond to Docker, and stops the daemons last, by PID.
"""

from __future__ import annotations

import configparser
import hashlib
import http.client
import json
import logging
import pathlib
import signal
import socket
import subprocess
import sys
import time

from benchmarks.stack import ROOT, STACK_DIR

LOG = logging.getLogger(__name__)

PLUGIN_DIR = pathlib.Path("/run/docker/plugins")
SPEC_DIR = pathlib.Path("/etc/docker/plugins")
KURYRNET_DRIVER = "kuryrbench"

UPSTREAM_VENV = STACK_DIR / "venv-kuryr-libnetwork"
UPSTREAM_REQUIREMENTS = ("kuryr-libnetwork==18.0.0", "kuryr-lib==3.5.0")
UPSTREAM_CONSTRAINTS = pathlib.Path(__file__).resolve().parent / "constraints-kuryr-libnetwork.txt"
START_TIMEOUT = 60.0  # seconds until a daemon must serve its first request
STOP_TIMEOUT = 40.0  # seconds between SIGTERM and SIGKILL


def upstream_driver_name(port: int) -> str:
    """Return the Docker driver name of kuryr-libnetwork served on `port`.

    Docker keeps the address of a plugin it has used under the plugin's name
    until the engine restarts, so the name carries the port: a run on
    another port gets a name that Docker has not bound yet. The name contains
    no "kuryr", so kuryrnet, which looks at the Docker networks whose driver
    name contains "kuryr", ignores the upstream driver's networks.
    """
    return f"klbench{port}"


class DaemonError(RuntimeError):
    """A daemon could not be installed, started or reached."""


def process_tree_rss(pid: int) -> int:
    """Return the resident set size in bytes of a process and its descendants."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            for line in pathlib.Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            children = pathlib.Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except (OSError, ValueError):
            continue
        pending.extend(int(child) for child in children)
    return total


def tcp_port_free(port: int) -> bool:
    """Return whether nothing listens on 127.0.0.1:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def plugin_request(connection: http.client.HTTPConnection, method: str, path: str,
                   body: dict | None = None) -> tuple[int, dict]:
    try:
        payload = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, body=payload,
                           headers={"Content-Type": "application/vnd.docker.plugins.v1.2+json"})
        answer = connection.getresponse()
        data = answer.read()
    finally:
        connection.close()
    try:
        return answer.status, json.loads(data) if data else {}
    except ValueError:
        return answer.status, {"raw": data[:200].decode(errors="replace")}


class Process:
    """A daemon that the benchmark started, stopped only by its own PID."""

    name = "daemon"

    def __init__(self, workdir: pathlib.Path):
        self.workdir = workdir
        self.process: subprocess.Popen | None = None
        self.log_path = workdir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _spawn(self, command: list[str]) -> None:
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== {time.strftime('%H:%M:%S')} {' '.join(command)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        LOG.info("started %s (pid %d), log %s", self.name, self.process.pid, self.log_path)

    def served(self) -> bool:
        """Return whether the daemon has served a plugin request."""
        raise NotImplementedError

    def start(self) -> float:
        """Start the daemon; return the seconds from the start to the first served request."""
        started = time.perf_counter()
        self._spawn(self.command())
        while True:
            if self.process.poll() is not None:
                raise DaemonError(f"{self.name} exited with code {self.process.returncode} "
                                  f"before serving a request; see {self.log_path}")
            if self.served():
                return time.perf_counter() - started
            if time.perf_counter() - started > START_TIMEOUT:
                self.stop()
                raise DaemonError(f"{self.name} did not serve a request within {START_TIMEOUT:.0f} s; "
                                  f"see {self.log_path}")
            time.sleep(0.005)

    def command(self) -> list[str]:
        raise NotImplementedError

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        LOG.info("stopping %s (pid %d)", self.name, self.process.pid)
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            LOG.warning("%s (pid %d) did not stop within %.0f s of SIGTERM; sending SIGKILL",
                        self.name, self.process.pid, STOP_TIMEOUT)
            self.process.kill()
            self.process.wait(10)

    def rss(self) -> int | None:
        return process_tree_rss(self.process.pid) if self.running() else None


class KuryrnetDaemon(Process):
    """`kuryrnet serve` on its own socket, under the driver name kuryrbench."""

    name = "kuryrnet"

    def __init__(self, workdir: pathlib.Path, env: dict[str, str], neutron_url: str):
        super().__init__(workdir)
        self.env = env
        self.socket_path = PLUGIN_DIR / f"{KURYRNET_DRIVER}.sock"
        self.config_path = workdir / "kuryrnet.conf"
        self.neutron_url = neutron_url

    def write_config(self) -> None:
        """Copy the stack's kuryr.conf, with this daemon's socket and the Neutron proxy."""
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str
        parser.read(self.env["KURYR_CONFIG"])
        defaults = parser["DEFAULT"]
        defaults["socket_path"] = str(self.socket_path)
        defaults["listen_address"] = ""
        defaults["spec_file"] = str(self.workdir / "kuryrnet-unused.json")
        # Reconciliation at start would release what it takes for leftovers
        # of this host, including the endpoints of a kuryrnet daemon that
        # other tests run at the same time on the same engine.
        defaults["reconcile_at_start"] = "false"
        if not parser.has_section("neutron"):
            parser.add_section("neutron")
        parser["neutron"]["auth_type"] = "none"
        parser["neutron"]["endpoint_override"] = self.neutron_url
        with open(self.config_path, "w") as handle:
            handle.write("# Written by benchmarks/daemons.py from the stack's kuryr.conf.\n")
            parser.write(handle)

    def command(self) -> list[str]:
        return [self.env["KURYRNET"], "serve", "--config-file", str(self.config_path)]

    def check_socket_free(self) -> None:
        """Remove a stale socket file, or raise when another process serves it."""
        if not self.socket_path.exists():
            return
        try:
            plugin_request(UnixHTTPConnection(str(self.socket_path), 2.0), "POST", "/Plugin.Activate", {})
        except OSError:
            LOG.info("removing the stale socket %s", self.socket_path)
            self.socket_path.unlink(missing_ok=True)
            return
        raise DaemonError(f"another process already serves {self.socket_path}; stop the benchmark "
                          f"that runs it, or wait for it to finish")

    def served(self) -> bool:
        try:
            status, _ = plugin_request(UnixHTTPConnection(str(self.socket_path), 2.0),
                                       "POST", "/Plugin.Activate", {})
        except OSError:
            return False
        return status == 200

    def status(self) -> dict:
        """Return the JSON of GET /kuryrnet/status."""
        status, answer = plugin_request(UnixHTTPConnection(str(self.socket_path), 10.0),
                                        "GET", "/kuryrnet/status")
        if status != 200:
            raise DaemonError(f"GET /kuryrnet/status returned HTTP {status}: {answer}")
        return answer

    def wait_background_idle(self, timeout: float = 120.0) -> bool:
        """Wait until the port pools have no queued or running background job."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                pool = self.status().get("port_pool") or {}
            except (OSError, DaemonError):
                return False
            # NOTE: only positive counts mean a fill in progress. kuryrnet
            # leaves a negative count behind for a network deleted while its
            # pool was filling, and never clears it.
            filling = [count for count in (pool.get("filling") or {}).values() if count > 0]
            if not pool.get("background_queue") and not filling:
                return True
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        super().stop()
        if self.socket_path.exists() and not self.running():
            self.socket_path.unlink(missing_ok=True)


def upstream_installed_stamp() -> str:
    digest = hashlib.sha256(UPSTREAM_CONSTRAINTS.read_bytes()).hexdigest()
    return f"{' '.join(UPSTREAM_REQUIREMENTS)} {digest}\n"


def install_upstream() -> pathlib.Path:
    """Create or update .stack/venv-kuryr-libnetwork from the recorded pins; return its path."""
    stamp = UPSTREAM_VENV / ".bench-installed"
    python = UPSTREAM_VENV / "bin" / "python"
    if python.exists() and stamp.exists() and stamp.read_text() == upstream_installed_stamp():
        return UPSTREAM_VENV
    log_path = STACK_DIR / "log" / "venv-kuryr-libnetwork.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    LOG.info("installing kuryr-libnetwork into %s (log %s)", UPSTREAM_VENV, log_path)
    with open(log_path, "ab") as log:
        for command in (["python3", "-m", "venv", str(UPSTREAM_VENV)],
                        [str(python), "-m", "pip", "install", "-q", "-c", str(UPSTREAM_CONSTRAINTS),
                         *UPSTREAM_REQUIREMENTS]):
            result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
            if result.returncode != 0:
                raise DaemonError(f"{' '.join(command)} failed with exit code {result.returncode}; "
                                  f"see {log_path}")
    stamp.write_text(upstream_installed_stamp())
    return UPSTREAM_VENV


class UpstreamDriver(Process):
    """kuryr-libnetwork's kuryr-server on a loopback TCP port, announced by a spec file."""

    name = "kuryr-libnetwork"

    def __init__(self, workdir: pathlib.Path, env: dict[str, str], neutron_url: str, port: int):
        super().__init__(workdir)
        self.env = env
        self.neutron_url = neutron_url
        self.port = port
        self.config_path = workdir / "kuryr-libnetwork.conf"
        self.driver_name = upstream_driver_name(port)
        self.spec_path = SPEC_DIR / f"{self.driver_name}.spec"
        self.wrote_spec = False

    def write_config(self) -> None:
        bindir = UPSTREAM_VENV / "libexec" / "kuryr"
        if not (bindir / "ovs").exists():
            raise DaemonError(f"the binding scripts of kuryr-lib are missing from {bindir}")
        integration_bridge = self.env.get("INTEGRATION_BRIDGE", "br-int")
        if integration_bridge != "br-int":
            # kuryr-lib's ovs binding script hard-codes br-int.
            raise DaemonError(f"the stack's integration bridge is {integration_bridge}, but "
                              f"kuryr-lib 3.5.0 only plugs into br-int")
        self.config_path.write_text(f"""\
# Written by benchmarks/daemons.py for kuryr-libnetwork 18.0.0.
[DEFAULT]
bindir = {bindir}
kuryr_uri = http://127.0.0.1:{self.port}
capability_scope = local
# Names of its own, so that the sweep at the end finds what it created.
subnetpool_name_prefix = kuryrbenchPool
log_file = {self.workdir / 'kuryr-libnetwork-oslo.log'}
debug = false

[neutron]
auth_type = none
endpoint = {self.neutron_url}
# Default subnet pools are used only by networks created without --subnet,
# which the benchmark never does; these names exist nowhere.
default_subnetpool_v4 = kuryrbench-default
default_subnetpool_v6 = kuryrbench-default6
""")

    def write_spec(self) -> None:
        if not tcp_port_free(self.port):
            raise DaemonError(f"127.0.0.1:{self.port} is in use; set BENCH_UPSTREAM_PORT to a free port")
        SPEC_DIR.mkdir(parents=True, exist_ok=True)
        if self.spec_path.exists():
            raise DaemonError(f"{self.spec_path} already exists; another benchmark may be running. "
                              f"Remove it if no benchmark runs.")
        self.spec_path.write_text(f"http://127.0.0.1:{self.port}\n")
        self.wrote_spec = True

    def remove_spec(self) -> None:
        if self.wrote_spec:
            self.spec_path.unlink(missing_ok=True)
            self.wrote_spec = False

    def command(self) -> list[str]:
        return [str(UPSTREAM_VENV / "bin" / "kuryr-server"), "--config-file", str(self.config_path)]

    def served(self) -> bool:
        try:
            status, _ = plugin_request(http.client.HTTPConnection("127.0.0.1", self.port, timeout=2.0),
                                       "POST", "/Plugin.Activate", {})
        except OSError:
            return False
        return status == 200


def upstream_versions() -> dict[str, str]:
    """Return the installed versions of kuryr-libnetwork, kuryr-lib and pyroute2."""
    python = UPSTREAM_VENV / "bin" / "python"
    code = ("import importlib.metadata as m, json; "
            "print(json.dumps({n: m.version(n) for n in "
            "('kuryr-libnetwork', 'kuryr-lib', 'pyroute2', 'Flask', 'python-neutronclient')}))")
    try:
        return json.loads(subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                                         check=True).stdout)
    except (OSError, subprocess.CalledProcessError, ValueError) as exc:
        return {"error": str(exc)}


def kuryrnet_version() -> dict[str, str]:
    """Return the checkout's git commit and whether the work tree has changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no", "--", "kuryrnet")),
            "python": sys.version.split()[0]}
