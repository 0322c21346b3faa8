"""Tests of the per-call request parsers in kuryrnet.api.wire."""

import copy
import ipaddress

import pytest

from kuryrnet import model
from kuryrnet.api import wire
from kuryrnet.errors import InvalidRequest

from test_api_fakes import ENDPOINT_ID, NET_UUID, NETWORK_ID

GENERIC = "com.docker.network.generic"
EXPOSED = "com.docker.network.endpoint.exposedports"
MAC_OPTION = "com.docker.network.endpoint.macaddress"

CREATE_NETWORK = {
    "NetworkID": NETWORK_ID,
    "IPv4Data": [{"AddressSpace": "kuryr_local", "Pool": "10.97.0.0/24",
                  "Gateway": "10.97.0.254/24", "AuxAddresses": {"host1": "10.97.0.10/24"}}],
    "IPv6Data": [{"AddressSpace": "kuryr_local", "Pool": "fd97::/64", "Gateway": "fd97::1/64"}],
    "Options": {"com.docker.network.enable_ipv6": True, GENERIC: {"drvkey": "drvval"}},
}
CREATE_ENDPOINT = {
    "NetworkID": NETWORK_ID,
    "EndpointID": ENDPOINT_ID,
    "Interface": {"Address": "10.99.0.50/24", "AddressIPv6": "", "MacAddress": "02:42:0a:63:00:32"},
    "Options": {EXPOSED: [{"Port": 80, "Proto": 6}], MAC_OPTION: "AkIKYwAy",
                "com.docker.network.portmap": [{"HostIP": "", "HostPort": 8080, "HostPortEnd": 8080,
                                                "IP": "", "Port": 80, "Proto": 6}]},
}
JOIN = {
    "NetworkID": NETWORK_ID,
    "EndpointID": ENDPOINT_ID,
    "SandboxKey": "/var/run/docker/netns/207abbaa7f50",
    "Options": {EXPOSED: [], "com.docker.network.portmap": []},
}


def error_of(parse, body) -> str:
    with pytest.raises(InvalidRequest) as info:
        parse(body)
    return info.value.message


def changed(body: dict, path: tuple, value) -> dict:
    """Return a deep copy of body with the item at `path` replaced (or deleted when value is ...)."""
    result = copy.deepcopy(body)
    target = result
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return result


# --- body ---------------------------------------------------------------------------


def test_decode_body_empty_is_none():
    assert wire.decode_body(b"") is None
    assert wire.decode_body(b" \n") is None


def test_decode_body_reads_trailing_newline():
    assert wire.decode_body(b'{"PoolID": "p"}\n') == {"PoolID": "p"}


@pytest.mark.parametrize("body, reason", [
    (b"{", "not JSON"),
    (b'{"a": NaN}', "not JSON"),
    (b'{"a": Infinity}', "not JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"[" * 100000, "JSON nested too deeply"),
    (b"[" * 50000 + b"]" * 50000, "JSON nested too deeply"),
    (b"1" * 5000, "not JSON"),
])
def test_decode_body_rejects(body, reason):
    message = error_of(wire.decode_body, body)
    assert message.startswith(f"invalid request body: {reason}")


@pytest.mark.parametrize("body, expected", [
    (None, wire.MISSING_BODY),
    ([], "invalid request body []: expected a JSON object, got an array"),
    ("x", 'invalid request body "x": expected a JSON object, got a string'),
])
def test_request_must_be_object(body, expected):
    assert error_of(wire.parse_release_pool, body) == expected


# --- IPAM ---------------------------------------------------------------------------


def test_request_pool_with_sub_pool_and_ipam_options():
    request = wire.parse_request_pool({
        "AddressSpace": "kuryr_local", "Pool": "10.97.0.0/24", "SubPool": "10.97.0.128/25",
        "V6": False, "Options": {"ipamkey": "ipamval", "neutron.pool.uuid": NET_UUID}})
    assert request == model.RequestPool(
        address_space="kuryr_local", pool=ipaddress.ip_network("10.97.0.0/24"),
        sub_pool=ipaddress.ip_network("10.97.0.128/25"), v6=False,
        neutron=model.NeutronOptions(pool_uuid=NET_UUID), options={"ipamkey": "ipamval"})


def test_request_pool_without_pool():
    request = wire.parse_request_pool({"AddressSpace": "kuryr_local", "Options": {}, "Pool": "",
                                       "SubPool": "", "V6": False})
    assert request.pool is None
    assert request.sub_pool is None


def test_request_pool_v6_flag_not_checked_against_pool():
    request = wire.parse_request_pool({"Pool": "fd97::/64", "V6": False})
    assert request.pool == ipaddress.ip_network("fd97::/64")
    assert request.v6 is False


def test_request_pool_sub_pool_outside_pool():
    assert error_of(wire.parse_request_pool, {"Pool": "10.97.0.0/24", "SubPool": "10.98.0.0/25"}) \
        == 'invalid SubPool "10.98.0.0/25": expected a range inside Pool 10.97.0.0/24'


def test_request_pool_sub_pool_of_other_family():
    message = error_of(wire.parse_request_pool, {"Pool": "10.97.0.0/24", "SubPool": "fd97::/80"})
    assert message == 'invalid SubPool "fd97::/80": expected a range inside Pool 10.97.0.0/24'


def test_request_pool_sub_pool_without_pool():
    message = error_of(wire.parse_request_pool, {"Pool": "", "SubPool": "10.97.0.128/25"})
    assert message.startswith('invalid SubPool "10.97.0.128/25": expected an empty SubPool')


def test_request_pool_rejects_bad_pool():
    assert error_of(wire.parse_request_pool, {"Pool": "10.97.0.1/24"}) == \
        ('invalid Pool "10.97.0.1/24": expected a CIDR such as 10.0.0.0/24 with no host bits '
         'set')


def test_request_pool_rejects_non_string_option():
    assert error_of(wire.parse_request_pool, {"Options": {"ipamkey": ["v"]}}) == \
        'invalid Options["ipamkey"] ["v"]: expected a string, got an array'


def test_request_pool_rejects_unknown_neutron_option():
    message = error_of(wire.parse_request_pool, {"Options": {"neutron.subnet.id": NET_UUID}})
    assert message.startswith('unknown IPAM option "neutron.subnet.id": the neutron options are')


def test_request_pool_rejects_port_pool_option():
    message = error_of(wire.parse_request_pool, {"Options": {"kuryrnet.port_pool.low": "1"}})
    assert message.startswith('unexpected IPAM option "kuryrnet.port_pool.low"')


def test_request_pool_rejects_wrong_v6_type():
    assert error_of(wire.parse_request_pool, {"V6": "yes"}) == \
        'invalid V6 "yes": expected a boolean, got a string'


def test_request_address_gateway():
    request = wire.parse_request_address({
        "Address": "10.97.0.254", "PoolID": "pool-10.97.0.0/24",
        "Options": {"RequestAddressType": "com.docker.network.gateway"}})
    assert request == model.RequestAddress(
        pool_id="pool-10.97.0.0/24", address=ipaddress.ip_address("10.97.0.254"),
        kind=model.AddressKind.GATEWAY)


def test_request_address_endpoint_with_mac_and_name():
    request = wire.parse_request_address({
        "Address": "", "PoolID": "p1",
        "Options": {MAC_OPTION: "AkIKYwAy", "com.docker.network.endpoint.name": "c1"}})
    assert request.kind is model.AddressKind.ENDPOINT
    assert request.address is None
    assert request.mac_address == "02:42:0a:63:00:32"
    assert request.options == {"com.docker.network.endpoint.name": "c1"}


def test_request_address_null_options():
    request = wire.parse_request_address({"Address": "", "Options": None, "PoolID": "p1"})
    assert request.kind is model.AddressKind.ENDPOINT
    assert request.options == {}


def test_request_address_rejects_prefix():
    assert error_of(wire.parse_request_address, {"PoolID": "p1", "Address": "10.0.0.5/24"}) == \
        ('invalid Address "10.0.0.5/24": expected an address such as 10.0.0.5 without a prefix '
         'length')


def test_request_address_rejects_bad_mac_option():
    message = error_of(wire.parse_request_address, {"PoolID": "p1", "Options": {MAC_OPTION: "zz"}})
    assert message.startswith(f'invalid Options["{MAC_OPTION}"] "zz": expected the base64')


def test_request_address_missing_pool_id():
    assert error_of(wire.parse_request_address, {"Address": ""}).startswith("missing PoolID")


def test_release_address():
    request = wire.parse_release_address({"Address": "fd97::200", "PoolID": "pool-fd97::/64"})
    assert request == model.ReleaseAddress(pool_id="pool-fd97::/64",
                                           address=ipaddress.ip_address("fd97::200"))


def test_release_address_requires_address():
    assert error_of(wire.parse_release_address, {"PoolID": "p1", "Address": ""}) == \
        ('invalid Address "": expected the address that RequestAddress returned, such as '
         '10.0.0.5')


def test_release_pool():
    assert wire.parse_release_pool({"PoolID": "pool-10.97.0.0/24"}) == \
        model.ReleasePool(pool_id="pool-10.97.0.0/24")


# --- CreateNetwork -------------------------------------------------------------------


def test_create_network_rich():
    request = wire.parse_create_network(CREATE_NETWORK)
    assert request.network_id == NETWORK_ID
    assert request.ipv4_data == (model.IPAMData(
        address_space="kuryr_local", pool=ipaddress.ip_network("10.97.0.0/24"),
        gateway=ipaddress.ip_interface("10.97.0.254/24"),
        aux_addresses={"host1": ipaddress.ip_interface("10.97.0.10/24")}),)
    assert request.ipv6_data == (model.IPAMData(
        address_space="kuryr_local", pool=ipaddress.ip_network("fd97::/64"),
        gateway=ipaddress.ip_interface("fd97::1/64")),)
    assert request.enable_ipv6 is True
    assert request.internal is False
    assert request.generic_options == {"drvkey": "drvval"}
    assert request.neutron == model.NeutronOptions()
    assert request.port_pool == model.PortPoolOptions()


def test_create_network_neutron_and_port_pool_options():
    body = changed(CREATE_NETWORK, ("Options", GENERIC), {
        "neutron.net.uuid": NET_UUID, "neutron.subnet.v6.name": "s6",
        "kuryrnet.port_pool.enabled": "true", "kuryrnet.port_pool.high": "6",
        "com.docker.network.driver.mtu": "1400"})
    request = wire.parse_create_network(body)
    assert request.neutron == model.NeutronOptions(net_uuid=NET_UUID, subnet_name_v6="s6")
    assert request.port_pool == model.PortPoolOptions(enabled=True, high=6)
    assert request.generic_options == {"com.docker.network.driver.mtu": "1400"}


def test_create_network_internal_and_null_options():
    body = changed(CREATE_NETWORK, ("Options",), {"com.docker.network.internal": True,
                                                  GENERIC: None})
    request = wire.parse_create_network(body)
    assert request.internal is True
    assert request.enable_ipv6 is False
    assert request.generic_options == {}


def test_create_network_ignores_unknown_fields():
    body = changed(CREATE_NETWORK, ("SomeFutureField",), {"x": 1})
    body["Options"]["com.docker.network.enable_ipv4"] = True
    assert wire.parse_create_network(body).network_id == NETWORK_ID


def test_create_network_null_ipam_data():
    body = changed(CREATE_NETWORK, ("IPv6Data",), None)
    assert wire.parse_create_network(body).ipv6_data == ()


def test_create_network_without_gateway():
    body = changed(CREATE_NETWORK, ("IPv4Data", 0, "Gateway"), "")
    assert wire.parse_create_network(body).ipv4_data[0].gateway is None


@pytest.mark.parametrize("path, value, expected", [
    (("NetworkID",), "abc",
     'invalid NetworkID "abc": expected a Docker id of 64 lowercase hexadecimal characters'),
    (("NetworkID",), ...,
     "missing NetworkID: expected a Docker id of 64 lowercase hexadecimal characters"),
    (("IPv4Data",), {"Pool": "10.0.0.0/24"},
     'invalid IPv4Data {"Pool": "10.0.0.0/24"}: expected a JSON array, got an object'),
    (("IPv4Data", 0, "Pool"), "fd00::/64",
     'invalid IPv4Data[0].Pool "fd00::/64": expected an IPv4 CIDR such as 10.0.0.0/24 with no '
     'host bits set'),
    (("IPv4Data", 0, "Pool"), "",
     'invalid IPv4Data[0].Pool "": expected the IPv4 CIDR of the network'),
    (("IPv4Data", 0, "Gateway"), "10.96.0.1/24",
     'invalid IPv4Data[0].Gateway "10.96.0.1/24": expected an address inside Pool 10.97.0.0/24'),
    (("IPv4Data", 0, "Gateway"), "10.97.0.254",
     'invalid IPv4Data[0].Gateway "10.97.0.254": expected an IPv4 address with a prefix length '
     'such as 10.0.0.5/24'),
    (("IPv4Data", 0, "AuxAddresses", "host1"), "10.1.0.10/24",
     'invalid IPv4Data[0].AuxAddresses["host1"] "10.1.0.10/24": expected an address inside '
     'Pool 10.97.0.0/24'),
    (("IPv4Data", 0, "AuxAddresses"), ["10.97.0.10/24"],
     'invalid IPv4Data[0].AuxAddresses ["10.97.0.10/24"]: expected a JSON object, got an array'),
    (("IPv6Data", 0, "Gateway"), "fd98::1/64",
     'invalid IPv6Data[0].Gateway "fd98::1/64": expected an address inside Pool fd97::/64'),
    (("Options",), "x",
     'invalid Options "x": expected a JSON object, got a string'),
    (("Options", GENERIC), {"drvkey": 1},
     f'invalid Options["{GENERIC}"]["drvkey"] 1: expected a string, got a number'),
    (("Options", "com.docker.network.enable_ipv6"), 1,
     'invalid Options["com.docker.network.enable_ipv6"] 1: expected a boolean, got a number'),
    (("Options", GENERIC), {"neutron.net.uuid": "net1"},
     'invalid network option neutron.net.uuid "net1": expected a UUID such as '
     '3f1e9c2a-5b7d-4e8f-9a0b-1c2d3e4f5a6b'),
])
def test_create_network_rejects(path, value, expected):
    assert error_of(wire.parse_create_network, changed(CREATE_NETWORK, path, value)) == expected


def test_create_network_unknown_neutron_option():
    body = changed(CREATE_NETWORK, ("Options", GENERIC), {"neutron.subnet.v6.id": NET_UUID})
    message = error_of(wire.parse_create_network, body)
    assert message.startswith('unknown network option "neutron.subnet.v6.id": the neutron options '
                              'are neutron.net.uuid')


# --- endpoints ----------------------------------------------------------------------


def test_create_endpoint_with_mac_and_port():
    request = wire.parse_create_endpoint(CREATE_ENDPOINT)
    assert request == model.CreateEndpoint(
        network_id=NETWORK_ID, endpoint_id=ENDPOINT_ID,
        address=ipaddress.IPv4Interface("10.99.0.50/24"), address_ipv6=None,
        mac_address="02:42:0a:63:00:32", exposed_ports=(model.ExposedPort("tcp", 80),))


def test_create_endpoint_empty_interface_fields():
    body = changed(CREATE_ENDPOINT, ("Interface",), {"Address": None, "AddressIPv6": "",
                                                     "MacAddress": None})
    request = wire.parse_create_endpoint(body)
    assert request.address is None
    assert request.address_ipv6 is None
    assert request.mac_address is None


def test_create_endpoint_null_interface_and_options():
    body = changed(changed(CREATE_ENDPOINT, ("Interface",), None), ("Options",), None)
    request = wire.parse_create_endpoint(body)
    assert request.address is None
    assert request.exposed_ports == ()


def test_create_endpoint_dual_stack():
    body = changed(CREATE_ENDPOINT, ("Interface", "AddressIPv6"), "fd97::200/64")
    assert wire.parse_create_endpoint(body).address_ipv6 == ipaddress.IPv6Interface("fd97::200/64")


def test_create_endpoint_ignores_mac_option():
    body = changed(CREATE_ENDPOINT, ("Interface", "MacAddress"), "")
    assert wire.parse_create_endpoint(body).mac_address is None


@pytest.mark.parametrize("path, value, expected", [
    (("EndpointID",), ENDPOINT_ID.upper(),
     f'invalid EndpointID "{ENDPOINT_ID.upper()}": expected a Docker id of 64 lowercase '
     f'hexadecimal characters'),
    (("Interface",), "10.99.0.50/24",
     'invalid Interface "10.99.0.50/24": expected a JSON object, got a string'),
    (("Interface", "Address"), "fd97::200/64",
     'invalid Interface.Address "fd97::200/64": expected an IPv4 address with a prefix length '
     'such as 10.0.0.5/24'),
    (("Interface", "AddressIPv6"), "10.99.0.50/24",
     'invalid Interface.AddressIPv6 "10.99.0.50/24": expected an IPv6 address with a prefix '
     'length such as fd00::5/64'),
    (("Interface", "MacAddress"), "02:42:0a:63:00",
     'invalid Interface.MacAddress "02:42:0a:63:00": expected a unicast MAC address such as '
     '02:42:0a:00:00:05'),
    (("Options", EXPOSED), [{"Proto": 6, "Port": 70000}],
     f'invalid Options["{EXPOSED}"][0].Port 70000: expected an integer between 1 and 65535'),
    (("Options", MAC_OPTION), "AkIK",
     f'invalid Options["{MAC_OPTION}"] "AkIK": expected the base64 encoding of a 6-byte unicast '
     f'MAC address, such as AkIKYwAy'),
])
def test_create_endpoint_rejects(path, value, expected):
    assert error_of(wire.parse_create_endpoint, changed(CREATE_ENDPOINT, path, value)) == expected


def test_join():
    assert wire.parse_join(JOIN) == model.Join(network_id=NETWORK_ID, endpoint_id=ENDPOINT_ID,
                                               sandbox_key="/var/run/docker/netns/207abbaa7f50")


@pytest.mark.parametrize("value", ["netns/207abbaa7f50", "/var/run/docker/netns/../x", 5])
def test_join_rejects_sandbox_key(value):
    message = error_of(wire.parse_join, changed(JOIN, ("SandboxKey",), value))
    assert message.startswith("invalid SandboxKey")


def test_join_rejects_options_of_wrong_type():
    assert error_of(wire.parse_join, changed(JOIN, ("Options",), [])) == \
        "invalid Options []: expected a JSON object, got an array"


def test_external_connectivity():
    body = changed(JOIN, ("Options", EXPOSED), [{"Port": 53, "Proto": 17}])
    del body["SandboxKey"]
    assert wire.parse_external_connectivity(body) == model.ExternalConnectivity(
        network_id=NETWORK_ID, endpoint_id=ENDPOINT_ID,
        exposed_ports=(model.ExposedPort("udp", 53),))


def test_endpoint_ref():
    assert wire.parse_endpoint_ref({"NetworkID": NETWORK_ID, "EndpointID": ENDPOINT_ID}) == \
        model.EndpointRef(network_id=NETWORK_ID, endpoint_id=ENDPOINT_ID)
    assert error_of(wire.parse_endpoint_ref, {"NetworkID": NETWORK_ID}).startswith(
        "missing EndpointID")


def test_network_ref():
    assert wire.parse_network_ref({"NetworkID": NETWORK_ID}) == model.NetworkRef(NETWORK_ID)


# --- calls without a driver method ------------------------------------------------------


def test_check_discovery():
    wire.check_discovery({"DiscoveryType": 1, "DiscoveryData": {"Address": "10.0.0.1"}})
    assert error_of(wire.check_discovery, {"DiscoveryType": "node"}).startswith(
        'invalid DiscoveryType "node"')


def test_check_allocate_network():
    assert wire.check_allocate_network({"NetworkID": NETWORK_ID, "Options": {"a": "b"},
                                        "IPv4Data": [], "IPv6Data": None}) == NETWORK_ID
    assert error_of(wire.check_allocate_network, {"NetworkID": NETWORK_ID, "Options": {"a": 1}}) \
        == 'invalid Options["a"] 1: expected a string, got a number'


def test_check_gw_alloc():
    wire.check_gw_alloc({"Options": {GENERIC: {}}})
    assert error_of(wire.check_gw_alloc, {"Options": 3}).startswith("invalid Options 3")
