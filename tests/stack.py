"""Helpers for tests that run against the local stack (`make stack-up`).

`make test` sets KURYRNET_REQUIRE_STACK=1, so a missing stack fails those
tests there instead of skipping them; a plain `pytest` run skips them.
"""

from __future__ import annotations

import json
import os
import pathlib
import shlex
import signal
import socket
import subprocess
import time
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
STACK_DIR = ROOT / ".stack"
PLUGIN_SOCKET = "/run/docker/plugins/kuryr.sock"


def read_env() -> dict[str, str]:
    """Return the variables of .stack/env, or skip (fail under make test) when it is missing."""
    path = STACK_DIR / "env"
    if not path.exists():
        message = f"the local stack is not up ({path} is missing); run `make stack-up`"
        if os.environ.get("KURYRNET_REQUIRE_STACK") == "1":
            pytest.fail(message)
        pytest.skip(message)
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll `predicate` until it returns a true value; return it, or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def unix_get(path: str, url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET `url` over the unix socket at `path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(f"GET {url} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


class Daemon:
    """A `kuryrnet serve` process started by a test, stopped by its PID."""

    def __init__(self, env: dict[str, str], log_path: pathlib.Path, socket_path: str = PLUGIN_SOCKET,
                 extra_args: tuple[str, ...] = (), extra_env: dict[str, str] | None = None):
        self.env = env
        self.log_path = log_path
        self.socket_path = socket_path
        self.extra_args = extra_args
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        command = [self.env["KURYRNET"], "serve", "--config-file", self.env["KURYR_CONFIG"],
                   "--debug", *self.extra_args]
        environment = {**os.environ, **self.extra_env}
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"kuryrnet serve exited with {self.process.returncode}; log: {self.log_path}")
            try:
                status, _ = unix_get(self.socket_path, "/kuryrnet/status")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"kuryrnet serve did not answer on {self.socket_path} within {timeout} s; "
                    f"log: {self.log_path}")

    def status(self) -> dict:
        _, body = unix_get(self.socket_path, "/kuryrnet/status")
        return json.loads(body)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


class Docker:
    """The stack's Docker client; remembers what it created and removes it on cleanup."""

    def __init__(self, env: dict[str, str], driver: str = "kuryr"):
        self.driver = driver  # the plugin name, as in /run/docker/plugins/<driver>.sock
        self.binary = env["DOCKER"]
        self.environment = {**os.environ, "DOCKER_HOST": env["DOCKER_HOST"]}
        self.image = env["TEST_IMAGE"]
        self.containers: list[str] = []
        self.networks: list[str] = []

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        result = subprocess.run([self.binary, *args], capture_output=True, text=True,
                                env=self.environment, timeout=timeout)
        if check and result.returncode != 0:
            pytest.fail(f"docker {' '.join(args)} failed ({result.returncode}): "
                        f"{result.stderr.strip()}")
        return result

    def network_create(self, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        self.networks.append(name)
        return self.run("network", "create", "-d", self.driver, "--ipam-driver", self.driver, *args, name,
                        check=check)

    def container(self, name: str, *args: str, command: tuple[str, ...] = ("sleep", "600"),
                  check: bool = True) -> subprocess.CompletedProcess:
        self.containers.append(name)
        return self.run("run", "-d", "--name", name, *args, self.image, *command, check=check)

    def exec(self, name: str, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("exec", name, *command, check=check)

    def inspect(self, kind: str, name: str) -> dict:
        return json.loads(self.run(kind, "inspect", name).stdout)[0]

    def cleanup(self) -> None:
        for name in reversed(self.containers):
            self.run("rm", "-f", name, check=False)
        for name in reversed(self.networks):
            # A container removal may still be finishing inside dockerd.
            deadline = time.monotonic() + 30
            while True:
                result = self.run("network", "rm", name, check=False)
                gone = "not found" in result.stderr or "No such network" in result.stderr
                if result.returncode == 0 or gone or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        self.containers.clear()
        self.networks.clear()
