"""Kill the daemon with SIGKILL at each step of a container's and a network's
lifecycle, restart it, let Docker carry on or clean up, and check that
nothing is leaked and nothing is missing.

Each test arms one crash point (KURYRNET_CRASH_AT, see kuryrnet/faults.py),
drives the Docker command that reaches it, and restarts the daemon unarmed
as soon as the armed one is dead. Docker 20.10 retries a plugin call whose
connection broke, but sends the retry with an empty body, so the call fails
with a 400 and Docker rolls back what it had done. Then `kuryrnet gc
--remove` runs, as an operator would, and the test checks Neutron, OVS and
the host. Each outcome is appended to crash-results.jsonl in LOG_DIR.
"""

import ipaddress
import json
import threading
import time

import pytest

from kuryrnet.neutron import tags
from tests.reliability.support import (GC_GRACE, LOG_DIR, docker_network_id, live_endpoints,
                                       neutron_network_of, is_pool_port)
from tests.stack import unique, wait_for

SIGKILL_EXIT = -9
CRASH_TIMEOUT = 60  # seconds for the armed daemon to reach its crash point
RESULTS = LOG_DIR / "crash-results.jsonl"


class DockerCommand:
    """A Docker command run in a thread while the test restarts the daemon."""

    def __init__(self, docker, *args: str):
        self.result = None
        self.thread = threading.Thread(target=self._run, args=(docker, args), daemon=True)
        self.thread.start()

    def _run(self, docker, args):
        self.result = docker.run(*args, check=False, timeout=180)

    def join(self, timeout: float = 200):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the Docker command did not finish"
        return self.result


class Crash:
    """One crash: the Docker command's result and when the daemon died."""

    def __init__(self, point: str, result, killed_at: float):
        self.point = point
        self.result = result
        self.killed_at = killed_at
        self.started_at = time.monotonic()


def crash_and_restart(plugin, point: str, docker, *args: str) -> Crash:
    """Run `docker args` against a daemon armed at `point`; restart it unarmed after the kill."""
    plugin.start(crash_at=point)
    command = DockerCommand(docker, *args)
    code = plugin.wait_exit(CRASH_TIMEOUT)
    assert code == SIGKILL_EXIT, (f"the daemon armed at {point} exited with {code} instead of "
                                  f"being killed; log: {plugin.log_path}")
    killed_at = time.monotonic()
    plugin.start()
    return Crash(point, command.join(), killed_at)


def collect_leftovers(plugin, crash: Crash) -> list[str]:
    """Let background work finish, then run `kuryrnet gc --remove`; return what it released."""
    plugin.wait_idle()
    # gc counts a pending port or a network as a leftover only after GC_GRACE.
    wait = GC_GRACE + 1 - (time.monotonic() - crash.killed_at)
    if wait > 0:
        time.sleep(wait)
    released = plugin.gc(remove=True)
    plugin.wait_idle()
    with open(RESULTS, "a") as results:
        results.write(json.dumps({
            "point": crash.point, "docker_exit_code": crash.result.returncode,
            "docker_error": crash.result.stderr.strip()[-300:], "gc_released": released}) + "\n")
    return released


def setup_network(plugin, docker, subnet: str) -> str:
    """Create a network with an unarmed daemon and let its port pool fill; return its name."""
    plugin.start()
    name = unique("rel")
    docker.network_create(name, "--subnet", subnet)
    plugin.wait_idle()
    return name


def check_connected(docker, neutron, container: str, network: str) -> None:
    """Check that a container reported started has its address, port and host interface."""
    info = docker.inspect("container", container)
    assert info["State"]["Running"], f"container {container} is not running"
    settings = info["NetworkSettings"]["Networks"][network]
    address, endpoint = settings["IPAddress"], settings["EndpointID"]
    assert address and endpoint
    assert f"{address}/" in docker.exec(container, "ip", "-o", "addr", "show", "eth0").stdout

    port = wait_for(lambda: neutron.list("ports", device_id=endpoint), timeout=30,
                    what=f"Neutron to learn endpoint {endpoint} of {container}")[0]
    assert [ip["ip_address"] for ip in port["fixed_ips"]] == [address]
    wait_for(lambda: neutron.show("ports", port["id"])["status"] == "ACTIVE", timeout=30,
             what=f"port {port['id']} of {container} to turn ACTIVE")


def stray_ports(neutron, docker, network: str) -> list[str]:
    """Return kuryrnet's ports on `network` that neither a live endpoint nor the port pool holds."""
    neutron_network = neutron_network_of(neutron, docker, network)
    if neutron_network is None:
        return []
    live = live_endpoints(docker)
    stray = []
    for port in neutron.list("ports", network_id=neutron_network["id"], tags=tags.OWNED):
        if port["device_id"] in live:
            continue
        if is_pool_port(port):
            continue
        stray.append(f"port {port['id']} {port['name']} device {port['device_id'] or 'none'}")
    return stray


def stray_host_interfaces(plugin, docker) -> list[str]:
    """Return host interfaces created during the test whose endpoint Docker does not have."""
    live = live_endpoints(docker)
    new = plugin.inventory.host_ports() - plugin.before
    return sorted(line for line in new if line.rsplit(" ", 1)[-1] not in live)


def check_nothing_stray(plugin, neutron, docker, network: str) -> None:
    """Require every kuryrnet port on `network` and every new host interface to have an owner."""
    # Background deletes of used ports may still be running.
    deadline = time.monotonic() + 30
    while stray_ports(neutron, docker, network) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert stray_ports(neutron, docker, network) == []
    assert stray_host_interfaces(plugin, docker) == []


def assert_clear_error(result) -> None:
    assert result.returncode != 0
    message = result.stderr.strip()
    assert message, "Docker failed without a message"
    assert "Traceback" not in message
    assert "internal error" not in message


# -- container lifecycle ----------------------------------------------------------

START_POINTS = ["request_address.after_port", "create_endpoint.after_claim", "join.after_plug"]


@pytest.mark.parametrize("point", START_POINTS)
def test_crash_while_container_starts(plugin, docker, neutron, point):
    subnet = f"10.150.{START_POINTS.index(point)}.0/24"
    network = setup_network(plugin, docker, subnet)
    container = unique("c")
    docker.containers.append(container)

    crash = crash_and_restart(plugin, point, docker, "run", "-d", "--name", container,
                              "--network", network, docker.image, "sleep", "600")

    if crash.result.returncode == 0:
        check_connected(docker, neutron, container, network)
    else:
        assert_clear_error(crash.result)
    docker.run("rm", "-f", container)
    collect_leftovers(plugin, crash)
    check_nothing_stray(plugin, neutron, docker, network)

    # The network still serves new containers.
    again = unique("c")
    docker.container(again, "--network", network)
    check_connected(docker, neutron, again, network)


STOP_POINTS = ["leave.after_unplug", "delete_endpoint.after_unplug",
               "release_address.before_port_delete"]


@pytest.mark.parametrize("point", STOP_POINTS)
def test_crash_while_container_is_removed(plugin, docker, neutron, point):
    subnet = f"10.151.{STOP_POINTS.index(point)}.0/24"
    network = setup_network(plugin, docker, subnet)
    container, bystander = unique("c"), unique("c")
    docker.container(container, "--network", network)
    docker.container(bystander, "--network", network)
    check_connected(docker, neutron, container, network)
    plugin.wait_idle()

    crash = crash_and_restart(plugin, point, docker, "rm", "-f", container)

    if crash.result.returncode != 0:
        assert_clear_error(crash.result)
        docker.run("rm", "-f", container)
    assert docker.run("inspect", container, check=False).returncode != 0
    collect_leftovers(plugin, crash)
    check_nothing_stray(plugin, neutron, docker, network)
    check_connected(docker, neutron, bystander, network)


# -- network lifecycle ------------------------------------------------------------

CREATE_POINTS = ["networks.before_tags", "security-groups.before_tags", "create_network.after_network", "create_network.after_subnet", "pool.after_fill"]


@pytest.mark.parametrize("point", CREATE_POINTS)
def test_crash_while_network_is_created(plugin, docker, neutron, point):
    subnet = f"10.152.{CREATE_POINTS.index(point)}.0/24"
    network = unique("rel")

    crash = crash_and_restart(plugin, point, docker, "network", "create", "-d", docker.driver,
                              "--ipam-driver", docker.driver, "--subnet", subnet, network)

    if docker_network_id(docker, network) is not None:
        docker.networks.append(network)
    if crash.result.returncode != 0:
        assert_clear_error(crash.result)
        assert docker_network_id(docker, network) is None
        collect_leftovers(plugin, crash)
        plugin.wait_no_leftovers(docker)
        # The same subnet is free again.
        docker.network_create(network, "--subnet", subnet)
    else:
        collect_leftovers(plugin, crash)

    container = unique("c")
    docker.container(container, "--network", network)
    check_connected(docker, neutron, container, network)
    address = docker.inspect("container", container)["NetworkSettings"]["Networks"][network]["IPAddress"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet)
    docker.run("rm", "-f", container)
    plugin.wait_idle()
    check_nothing_stray(plugin, neutron, docker, network)


def test_crash_while_network_is_removed(plugin, docker, neutron):
    point = "delete_network.after_ports"
    network = setup_network(plugin, docker, "10.153.0.0/24")
    container = unique("c")
    docker.container(container, "--network", network)
    docker.run("rm", "-f", container)
    docker_id = docker_network_id(docker, network)
    plugin.wait_idle()

    crash = crash_and_restart(plugin, point, docker, "network", "rm", network)

    if crash.result.returncode != 0:
        assert_clear_error(crash.result)
        docker.run("network", "rm", network)
    assert docker_network_id(docker, network) is None
    docker.networks.remove(network)
    released = collect_leftovers(plugin, crash)
    assert not neutron.list("networks", tags=tags.docker_network(docker_id)), released
    assert not neutron.list("security-groups", tags=tags.docker_network(docker_id))
    plugin.wait_no_leftovers(docker)
