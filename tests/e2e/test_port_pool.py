"""End-to-end: containers started from pooled Neutron ports."""

import pytest

from kuryrnet.neutron import tags
from kuryrnet.operations.pool import POOL_PORT_NAME
from tests.e2e.conftest import ping
from tests.e2e.test_docker import container_address
from tests.stack import STACK_DIR, unique, wait_for


def neutron_network(neutron, docker, name):
    docker_id = docker.inspect("network", name)["Id"]
    return neutron.list("networks", tags=tags.docker_network(docker_id))[0]


def pool_ports(neutron, network):
    return neutron.list("ports", network_id=network["id"], name=POOL_PORT_NAME)


def endpoint_id(docker, container, network):
    return docker.inspect("container", container)["NetworkSettings"]["Networks"][network]["EndpointID"]


def wait_pool_full(daemon, network, size=4):
    """Wait until the daemon has `size` ready ports for `network`."""
    return wait_for(lambda: daemon.status()["port_pool"]["ready"].get(network["id"], 0) >= size,
                    timeout=30, what=f"the port pool of network {network['id']} to hold {size} ports")


def test_pooled_containers_are_wired_and_named(docker, neutron, daemon):
    name = unique("kn")
    docker.network_create(name, "--subnet", "10.91.0.0/24")
    network = neutron_network(neutron, docker, name)
    wait_pool_full(daemon, network)
    hits_before = daemon.status()["port_pool"]["hits"]
    ready_ids = {p["id"] for p in pool_ports(neutron, network)}

    first, second = unique("c1"), unique("c2")
    docker.container(first, "--network", name)
    docker.container(second, "--network", name)

    assert daemon.status()["port_pool"]["hits"] >= hits_before + 2
    ping(docker, first, container_address(docker, second, name))
    for container in (first, second):
        endpoint = endpoint_id(docker, container, name)
        port = wait_for(lambda e=endpoint: neutron.list("ports", device_id=e), timeout=20,
                        what=f"Neutron to learn the endpoint of {container}")[0]
        assert port["id"] in ready_ids
        assert port["name"] == f"kuryrnet-{endpoint[:12]}"
        assert port["status"] == "ACTIVE"


def test_used_port_is_deleted_never_reused(docker, neutron, daemon):
    name = unique("kn")
    docker.network_create(name, "--subnet", "10.92.0.0/24")
    network = neutron_network(neutron, docker, name)
    wait_pool_full(daemon, network)

    container = unique("c")
    docker.container(container, "--network", name)
    endpoint = endpoint_id(docker, container, name)
    port = wait_for(lambda: neutron.list("ports", device_id=endpoint), timeout=20,
                    what="Neutron to learn the endpoint")[0]
    docker.run("rm", "-f", container)

    wait_for(lambda: neutron.show("ports", port["id"]) is None, timeout=30,
             what=f"the used port {port['id']} to be deleted")
    for pooled in pool_ports(neutron, network):
        assert pooled["device_id"] == ""
        assert pooled["binding:host_id"]


def test_fixed_ip_misses_pool_and_works(docker, neutron, daemon):
    name = unique("kn")
    docker.network_create(name, "--subnet", "10.93.0.0/24")
    network = neutron_network(neutron, docker, name)
    wait_pool_full(daemon, network)
    first, second = unique("c1"), unique("c2")
    docker.container(first, "--network", name, "--ip", "10.93.0.200")
    docker.container(second, "--network", name)
    assert container_address(docker, first, name) == "10.93.0.200"
    ping(docker, second, "10.93.0.200")


def test_pool_off_creates_no_pool_ports(docker, neutron):
    name = unique("kn")
    docker.network_create(name, "--subnet", "10.94.0.0/24", "-o", "kuryrnet.port_pool.enabled=false")
    network = neutron_network(neutron, docker, name)
    first, second = unique("c1"), unique("c2")
    docker.container(first, "--network", name)
    docker.container(second, "--network", name)
    ping(docker, first, container_address(docker, second, name))
    assert pool_ports(neutron, network) == []


@pytest.fixture
def short_grace_daemon(daemon, stack_env, tmp_path):
    """Replace the session daemon by one whose pool recovery waits 2 s; restore it afterwards."""
    override = tmp_path / "grace.conf"
    override.write_text("[port_pool]\nrecovery_grace = 2\n")
    daemon.stop()
    daemon.extra_args = ("--config-file", str(override))
    daemon.start()
    yield daemon
    daemon.stop()
    daemon.extra_args = ()
    daemon.start()


def test_daemon_killed_with_full_pool_recovers(docker, neutron, short_grace_daemon):
    daemon = short_grace_daemon
    name = unique("kn")
    docker.network_create(name, "--subnet", "10.95.0.0/24")
    network = neutron_network(neutron, docker, name)
    old_pool = {p["id"] for p in wait_pool_full(daemon, network) and pool_ports(neutron, network)}

    # The claim of this container's port is still in flight when the daemon dies.
    container = unique("c")
    docker.container(container, "--network", name)
    daemon.kill()
    daemon.start()

    endpoint = endpoint_id(docker, container, name)
    wait_for(lambda: neutron.list("ports", device_id=endpoint), timeout=30,
             what="the lost claim of the running container's port to be redone")
    wait_for(lambda: not old_pool & {p["id"] for p in pool_ports(neutron, network)}, timeout=30,
             what="the unclaimed pool ports of the killed daemon to be replaced")

    second = unique("c2")
    docker.container(second, "--network", name)
    ping(docker, second, container_address(docker, container, name))
    assert (STACK_DIR / "logs" / "kuryrnet-e2e.log").exists()
