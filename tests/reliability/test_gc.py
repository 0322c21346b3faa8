"""`kuryrnet gc`: leftovers made on purpose are listed, then removed with
--remove; look-alike resources without kuryrnet's tags or markers, and
resources of live endpoints, are never touched."""

import secrets
import subprocess
import uuid

import pytest

from kuryrnet.binding import ovs
from kuryrnet.neutron import tags
from tests.reliability.support import live_endpoints, neutron_network_of
from tests.stack import unique


def endpoint_id() -> str:
    return secrets.token_hex(32)


def run(*command: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, check=check, timeout=30)


def link_exists(name: str) -> bool:
    return run("ip", "link", "show", "dev", name, check=False).returncode == 0


def ovs_port_exists(name: str) -> bool:
    return run("ovs-vsctl", "--timeout=10", "port-to-br", name, check=False).returncode == 0


class HostLeftovers:
    """Veth pairs and OVS ports made by the test, deleted in `cleanup` whatever gc did."""

    def __init__(self):
        self.links: list[str] = []
        self.ovs_ports: list[str] = []

    def veth(self, host: str, peer: str, alias: str | None = None) -> str:
        run("ip", "link", "add", host, "type", "veth", "peer", "name", peer)
        self.links.append(host)
        if alias is not None:
            run("ip", "link", "set", "dev", host, "alias", alias)
        return host

    def ovs_port(self, bridge: str, name: str, external_ids: dict[str, str]) -> str:
        settings = [f"external_ids:{key}={value}" for key, value in external_ids.items()]
        run("ovs-vsctl", "--timeout=10", "add-port", bridge, name, "--", "set", "Interface", name,
            *settings)
        self.ovs_ports.append(name)
        return name

    def cleanup(self) -> None:
        for name in self.ovs_ports:
            run("ovs-vsctl", "--timeout=10", "--if-exists", "del-port", name, check=False)
        for name in self.links:
            run("ip", "link", "delete", name, check=False)


@pytest.fixture
def host_leftovers():
    made = HostLeftovers()
    yield made
    made.cleanup()


@pytest.fixture
def neutron_leftovers(neutron):
    """Neutron resources made by the test, deleted afterwards if gc left them."""
    made: list[tuple[str, str]] = []
    yield made
    for collection, resource_id in reversed(made):
        neutron.delete(collection, resource_id)


def make_port(neutron, made, network_id: str, **attrs) -> dict:
    port = neutron.create("ports", {"network_id": network_id, **attrs})
    made.append(("ports", port["id"]))
    return port


def test_gc_lists_then_removes_only_kuryrnet_leftovers(plugin, docker, neutron, kuryr_conf,
                                                      host_leftovers, neutron_leftovers):
    host_id = kuryr_conf.host_id
    plugin.start()
    network = unique("rel")
    docker.network_create(network, "--subnet", "10.154.0.0/24")
    live = unique("c")
    docker.container(live, "--network", network)
    plugin.wait_idle()
    neutron_network = neutron_network_of(neutron, docker, network)

    # Leftovers, all with kuryrnet's tags or markers for this host: a port of an
    # endpoint that Docker does not have and the group of its exposed ports, a
    # marked veth pair whose host end is on br-int, and a network of a Docker
    # network that Docker does not have.
    gone_endpoint = endpoint_id()
    stale_port = make_port(neutron, neutron_leftovers, neutron_network["id"],
                           name=f"kuryrnet-{gone_endpoint[:12]}", device_id=gone_endpoint,
                           device_owner=tags.DEVICE_OWNER, tags=[tags.OWNED],
                           **{"binding:host_id": host_id})
    veth_endpoint = endpoint_id()
    stale_veth = host_leftovers.veth(f"tap{veth_endpoint}"[:15], f"t_c{veth_endpoint}"[:15],
                                     alias=f"kuryrnet:ovs:{veth_endpoint}:{uuid.uuid4()}")
    host_leftovers.ovs_port(kuryr_conf.binding.integration_bridge, stale_veth,
                            {ovs.ENDPOINT_KEY: veth_endpoint, ovs.IFACE_ID: str(uuid.uuid4())})
    stale_group = neutron.create_tagged("security-groups", {"name": f"kuryrnet-ep-{gone_endpoint}"},
                                        [tags.OWNED, tags.host(host_id)])
    neutron_leftovers.append(("security-groups", stale_group["id"]))
    gone_network = endpoint_id()
    stale_network = neutron.create("networks", {"name": f"kuryrnet-{gone_network[:12]}"})
    neutron_leftovers.append(("networks", stale_network["id"]))
    neutron.set_tags("networks", stale_network["id"],
                     [tags.OWNED, tags.docker_network(gone_network), tags.host(host_id)])

    # Look-alikes that gc must leave alone: the same port without kuryrnet's
    # tag, a veth named like kuryrnet's without the marker, a network and an
    # exposed-ports group of another host, and a network without kuryrnet's
    # ownership tag.
    untagged_port = make_port(neutron, neutron_leftovers, neutron_network["id"],
                              name="not-kuryrnet", device_id=endpoint_id(),
                              device_owner=tags.DEVICE_OWNER, **{"binding:host_id": host_id})
    plain_endpoint = endpoint_id()
    plain_veth = host_leftovers.veth(f"tap{plain_endpoint}"[:15], f"t_c{plain_endpoint}"[:15])
    other_host_network = neutron.create("networks", {"name": unique("kuryrnet-other-host")})
    neutron_leftovers.append(("networks", other_host_network["id"]))
    neutron.set_tags("networks", other_host_network["id"],
                     [tags.OWNED, tags.docker_network(endpoint_id()), tags.host("another-host")])
    other_host_group = neutron.create_tagged("security-groups",
                                             {"name": f"kuryrnet-ep-{endpoint_id()}"},
                                             [tags.OWNED, tags.host("another-host")])
    neutron_leftovers.append(("security-groups", other_host_group["id"]))
    foreign_network = neutron.create("networks", {"name": unique("not-kuryrnet")})
    neutron_leftovers.append(("networks", foreign_network["id"]))
    neutron.set_tags("networks", foreign_network["id"], [tags.docker_network(endpoint_id())])

    listed = "\n".join(plugin.gc(remove=False, grace=0))

    assert stale_port["id"] in listed
    assert stale_veth in listed
    assert stale_network["id"] in listed
    assert stale_group["id"] in listed
    for untouched in (untagged_port["id"], plain_veth, foreign_network["id"], other_host_group["id"]):
        assert untouched not in listed
    assert f"{other_host_network['id']}" in listed  # reported, with the advice to check
    assert "if no host uses it" in [line for line in listed.splitlines()
                                    if other_host_network["id"] in line][0]
    # Listing removes nothing.
    assert neutron.show("ports", stale_port["id"]) is not None
    assert link_exists(stale_veth)

    released = "\n".join(plugin.gc(remove=True, grace=0))

    assert stale_port["id"] in released and stale_veth in released
    assert neutron.show("ports", stale_port["id"]) is None
    assert not link_exists(stale_veth)
    assert not link_exists(f"t_c{veth_endpoint}"[:15])
    assert not ovs_port_exists(stale_veth)
    assert neutron.show("networks", stale_network["id"]) is None
    assert neutron.show("security-groups", stale_group["id"]) is None
    for collection, resource_id in (("ports", untagged_port["id"]),
                                    ("security-groups", other_host_group["id"]),
                                    ("networks", other_host_network["id"]),
                                    ("networks", foreign_network["id"])):
        assert neutron.show(collection, resource_id) is not None, f"{collection} {resource_id}"
    assert link_exists(plain_veth)

    # The live container keeps its port and interface.
    settings = docker.inspect("container", live)["NetworkSettings"]["Networks"][network]
    assert settings["EndpointID"] in live_endpoints(docker)
    assert neutron.list("ports", device_id=settings["EndpointID"])
    assert link_exists(f"tap{settings['EndpointID']}"[:15])
    assert settings["IPAddress"] in docker.exec(live, "ip", "-o", "addr", "show", "eth0").stdout


def test_gc_spares_young_pending_port(plugin, docker, neutron, kuryr_conf, neutron_leftovers):
    """A pending port may belong to a RequestAddress whose CreateEndpoint has not come yet."""
    plugin.start()
    network = unique("rel")
    docker.network_create(network, "--subnet", "10.154.1.0/24")
    neutron_network = neutron_network_of(neutron, docker, network)
    pending = make_port(neutron, neutron_leftovers, neutron_network["id"], name="kuryrnet-pending",
                        device_owner=tags.DEVICE_OWNER, tags=[tags.OWNED],
                        **{"binding:host_id": kuryr_conf.host_id})

    assert pending["id"] not in "\n".join(plugin.gc(remove=True))  # default grace: 60 s
    assert neutron.show("ports", pending["id"]) is not None

    assert pending["id"] in "\n".join(plugin.gc(remove=True, grace=0))
    assert neutron.show("ports", pending["id"]) is None
