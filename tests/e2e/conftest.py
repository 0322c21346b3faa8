"""Fixtures for end-to-end tests: the stack's Docker engine, a kuryrnet daemon
and checks that nothing of kuryrnet's remains after each test."""

import subprocess
import time

import pytest

from kuryrnet.binding import load_drivers
from kuryrnet.neutron import tags
from tests.stack import STACK_DIR, Daemon, Docker, read_env, wait_for


@pytest.fixture(scope="session")
def stack_env():
    return read_env()


@pytest.fixture(scope="session")
def daemon(stack_env):
    process = Daemon(stack_env, STACK_DIR / "logs" / "kuryrnet-e2e.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def docker(stack_env, daemon):
    client = Docker(stack_env)
    yield client
    client.cleanup()


def kuryrnet_leftovers(neutron, conf) -> list[str]:
    """Return what kuryrnet created and still exists in Neutron, OVS and on the host."""
    found = []
    for collection in ("ports", "networks", "security-groups"):
        for item in neutron.list(collection, tags=tags.OWNED):
            found.append(f"{collection[:-1]} {item['id']} {item.get('name', '')}")
    for pool in neutron.list("subnetpools", tags=tags.OWNED):
        if pool["name"].startswith("kuryrnet-cidr-"):
            found.append(f"subnet pool {pool['id']} {pool['name']}")
    for collection in ("networks", "subnets"):
        for item in neutron.list(collection):
            linked = [t for t in item.get("tags", []) if t.startswith("kuryrnet.net.")]
            if linked and tags.OWNED not in item["tags"]:
                found.append(f"{collection[:-1]} {item['id']} still tagged {linked[0]}")
    for driver in {id(d): d for d in load_drivers(conf).values()}.values():
        for host_port in driver.list_ports():
            found.append(f"host interface {host_port.host_ifname} of endpoint {host_port.endpoint_id}")
    return found


@pytest.fixture(autouse=True)
def nothing_left_behind(request, neutron, kuryr_conf):
    """After each test, wait until kuryrnet's background deletes are done, then check for leftovers.

    Only what appeared during the test counts, so resources of other work on
    the same stack (a benchmark, say) do not fail the test.
    """
    if "docker" not in request.fixturenames:
        yield
        return
    before = set(kuryrnet_leftovers(neutron, kuryr_conf))
    yield
    # The docker fixture, set up after this one, has removed its containers and networks by now.

    def new_leftovers():
        return sorted(set(kuryrnet_leftovers(neutron, kuryr_conf)) - before)

    if not _wait_quietly(lambda: not new_leftovers(), timeout=60):
        pytest.fail(f"kuryrnet left resources behind: {new_leftovers()}")


def _wait_quietly(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return predicate()


def ip_in(docker: Docker, container: str, *args: str) -> str:
    return docker.exec(container, "ip", *args).stdout


def ping(docker: Docker, container: str, address: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return docker.exec(container, "ping", "-c", "2", "-W", "2", *args, address, check=check)
