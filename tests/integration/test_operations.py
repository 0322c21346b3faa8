"""The operations against the stack's real Neutron, OVS and OVN, without Docker."""

import ipaddress
import secrets

import pytest

from kuryrnet import config, errors, model
from kuryrnet.binding import load_drivers
from kuryrnet.neutron import tags
from kuryrnet.neutron.client import NeutronClient
from kuryrnet.operations.driver import Driver
from tests.stack import read_env, wait_for


@pytest.fixture(scope="module")
def conf():
    env = read_env()
    return config.load([], [env["KURYR_CONFIG"]])


@pytest.fixture
def driver(conf):
    built = Driver(conf, NeutronClient(conf), load_drivers(conf))
    yield built
    built.stop()


def docker_id() -> str:
    return secrets.token_hex(32)


class Network:
    """A Docker network driven through the IPAM and network calls, as Docker orders them."""

    def __init__(self, driver: Driver, cidr: str, **create_args):
        self.driver = driver
        self.id = docker_id()
        cidr_net = ipaddress.ip_network(cidr)
        self.pool = driver.request_pool(model.RequestPool("local", cidr_net, None, cidr_net.version == 6))
        gateway = driver.request_address(model.RequestAddress(self.pool.pool_id, None, model.AddressKind.GATEWAY))
        self.gateway = gateway.address
        data = model.IPAMData("local", cidr_net, gateway.address)
        v4, v6 = ((data,), ()) if cidr_net.version == 4 else ((), (data,))
        driver.create_network(model.CreateNetwork(self.id, v4, v6, **create_args))

    def endpoint(self, address=None):
        reply = self.driver.request_address(model.RequestAddress(
            self.pool.pool_id, ipaddress.ip_address(address) if address else None, model.AddressKind.ENDPOINT))
        endpoint_id = docker_id()
        self.driver.create_endpoint(model.CreateEndpoint(self.id, endpoint_id, reply.address, None, None))
        return endpoint_id, reply.address

    def remove_endpoint(self, endpoint_id, address):
        self.driver.delete_endpoint(model.EndpointRef(self.id, endpoint_id))
        self.driver.release_address(model.ReleaseAddress(self.pool.pool_id, address.ip))

    def remove(self):
        self.driver.release_address(model.ReleaseAddress(self.pool.pool_id, self.gateway.ip))
        self.driver.release_pool(model.ReleasePool(self.pool.pool_id))
        self.driver.delete_network(model.NetworkRef(self.id))


def owned(neutron, collection, **filters):
    return neutron.list(collection, tags=tags.OWNED, **filters)


def test_network_lifecycle_leaves_nothing(driver):
    net = Network(driver, "10.81.0.0/24")
    neutron_net = driver.lookup.network(net.id)
    subnets = driver.neutron.list("subnets", network_id=neutron_net["id"])
    assert [s["cidr"] for s in subnets] == ["10.81.0.0/24"]
    assert subnets[0]["gateway_ip"] == "10.81.0.1"

    endpoint, address = net.endpoint()
    port = driver.neutron.list("ports", device_id=endpoint)[0]
    assert port["binding:host_id"] == driver.conf.host_id
    assert port["fixed_ips"][0]["ip_address"] == str(address.ip)

    net.remove_endpoint(endpoint, address)
    net.remove()
    wait_for(lambda: not driver.neutron.list("ports", network_id=neutron_net["id"]), timeout=30,
             what="the network's ports to go")
    assert driver.neutron.show("networks", neutron_net["id"]) is None
    assert not driver.neutron.list("security-groups", tags=tags.docker_network(net.id))


def test_restarted_driver_finds_network(conf, driver):
    net = Network(driver, "10.82.0.0/24")
    try:
        fresh = Driver(conf, NeutronClient(conf), load_drivers(conf))
        net.driver = fresh
        endpoint, address = net.endpoint("10.82.0.7")
        assert str(address) == "10.82.0.7/24"
        net.remove_endpoint(endpoint, address)
    finally:
        net.remove()


def test_join_wires_port_and_waits_for_ovn(driver):
    net = Network(driver, "10.83.0.0/24")
    endpoint, address = net.endpoint()
    try:
        reply = driver.join(model.Join(net.id, endpoint, "/var/run/docker/netns/0123456789ab"))
        assert str(reply.gateway) == "10.83.0.1"
        assert reply.disable_gateway_service
        port = wait_for(lambda: (p := driver.neutron.list("ports", device_id=endpoint)[0])["status"] == "ACTIVE" and p,
                        timeout=20, what="the joined port to turn ACTIVE")
        assert port["binding:vif_type"] == "ovs"
        driver.leave(model.EndpointRef(net.id, endpoint))
    finally:
        net.remove_endpoint(endpoint, address)
        net.remove()


def test_exhausted_subnet_names_it_and_leaks_no_port(driver):
    net = Network(driver, "10.84.0.0/29")
    taken = []
    try:
        with pytest.raises(errors.Exhausted) as caught:
            for _ in range(10):
                taken.append(net.endpoint())
        neutron_net = driver.lookup.network(net.id)
        assert neutron_net["id"] in caught.value.message
        assert "10.84.0.0/29" in caught.value.message
        ports = driver.neutron.list("ports", network_id=neutron_net["id"], device_owner=tags.DEVICE_OWNER)
        assert len(ports) == len(taken)
    finally:
        for endpoint, address in taken:
            net.remove_endpoint(endpoint, address)
        net.remove()


def test_address_in_use_is_a_conflict(driver):
    net = Network(driver, "10.85.0.0/24")
    endpoint, address = net.endpoint("10.85.0.20")
    try:
        with pytest.raises(errors.Conflict) as caught:
            net.endpoint("10.85.0.20")
        assert "10.85.0.20" in caught.value.message
    finally:
        net.remove_endpoint(endpoint, address)
        net.remove()


def test_pool_without_cidr_gets_distinct_prefixes(driver):
    first = driver.request_pool(model.RequestPool("local", None, None, False))
    second = driver.request_pool(model.RequestPool("local", None, None, False))
    try:
        assert first.pool != second.pool
        assert first.pool.prefixlen == driver.conf.neutron.default_prefixlen_v4
    finally:
        driver.release_pool(model.ReleasePool(first.pool_id))
        driver.release_pool(model.ReleasePool(second.pool_id))


def test_unknown_network_is_not_found(driver):
    with pytest.raises(errors.NotFound) as caught:
        driver.join(model.Join(docker_id(), docker_id(), "/var/run/docker/netns/x"))
    assert "Neutron network" in caught.value.message


def test_every_call_twice_converges(driver):
    """Docker retries calls, so each call of a lifecycle sent twice must end in the same state."""
    net = Network(driver, "10.86.0.0/24")
    request = model.CreateNetwork(net.id, (model.IPAMData("local", ipaddress.ip_network("10.86.0.0/24"),
                                                          net.gateway),), ())
    driver.create_network(request)
    neutron_net = driver.lookup.network(net.id)
    assert len(driver.neutron.list("networks", tags=tags.docker_network(net.id))) == 1
    assert len(driver.neutron.list("security-groups", tags=tags.docker_network(net.id))) == 1
    assert len(driver.neutron.list("subnets", network_id=neutron_net["id"])) == 1

    reply = driver.request_address(model.RequestAddress(
        net.pool.pool_id, ipaddress.ip_address("10.86.0.9"), model.AddressKind.ENDPOINT))
    endpoint_id = docker_id()
    create = model.CreateEndpoint(net.id, endpoint_id, reply.address, None, None)
    first = driver.create_endpoint(create)
    second = driver.create_endpoint(create)
    assert first == second
    ports = driver.neutron.list("ports", device_id=endpoint_id)
    assert len(ports) == 1

    join = model.Join(net.id, endpoint_id, "/var/run/docker/netns/kuryrnet-test")
    ref = model.EndpointRef(net.id, endpoint_id)
    try:
        assert driver.join(join) == driver.join(join)
        driver.leave(ref)
        driver.leave(ref)
        driver.delete_endpoint(ref)
        driver.delete_endpoint(ref)
        release = model.ReleaseAddress(net.pool.pool_id, reply.address.ip)
        driver.release_address(release)
        driver.release_address(release)
    finally:
        driver.leave(ref)
        driver.delete_endpoint(ref)
    wait_for(lambda: not driver.neutron.list("ports", device_id=endpoint_id), timeout=30,
             what=f"the port of endpoint {endpoint_id} to go")

    driver.release_address(model.ReleaseAddress(net.pool.pool_id, net.gateway.ip))
    driver.release_pool(model.ReleasePool(net.pool.pool_id))
    driver.release_pool(model.ReleasePool(net.pool.pool_id))
    driver.delete_network(model.NetworkRef(net.id))
    driver.delete_network(model.NetworkRef(net.id))
    assert driver.neutron.show("networks", neutron_net["id"]) is None
    assert not driver.neutron.list("security-groups", tags=tags.docker_network(net.id))
    assert not driver.neutron.list("subnetpools", name="kuryrnet-cidr-10.86.0.0_24")
