"""Tests of the option map parsers in kuryrnet.api.options."""

import pytest

from kuryrnet import model
from kuryrnet.api import fields, options
from kuryrnet.errors import InvalidRequest

from test_api_fakes import NET_UUID

SUBNET_UUID = "6a0c6c1e-2f7b-4a59-8d0e-3b1f2a4c5d6e"


def error_of(function, *args) -> str:
    with pytest.raises(InvalidRequest) as info:
        function(*args)
    return info.value.message


# --- neutron.* ----------------------------------------------------------------------


def test_neutron_options_map_every_key():
    given = {
        "neutron.net.uuid": NET_UUID,
        "neutron.net.name": "shared-net",
        "neutron.net.shared": "true",
        "neutron.subnet.uuid": SUBNET_UUID,
        "neutron.subnet.name": "subnet-a",
        "neutron.pool.uuid": NET_UUID,
        "neutron.pool.name": "pool-a",
        "neutron.subnet.v6.uuid": SUBNET_UUID,
        "neutron.subnet.v6.name": "subnet-6",
        "neutron.pool.v6.uuid": NET_UUID,
        "neutron.pool.v6.name": "pool-6",
        "drvkey": "drvval",
    }
    neutron, rest = options.split_neutron_options(given, options.NETWORK_OPTION)
    assert neutron == model.NeutronOptions(
        net_uuid=NET_UUID, net_name="shared-net", net_shared=True,
        subnet_uuid=SUBNET_UUID, subnet_name="subnet-a",
        pool_uuid=NET_UUID, pool_name="pool-a",
        subnet_uuid_v6=SUBNET_UUID, subnet_name_v6="subnet-6",
        pool_uuid_v6=NET_UUID, pool_name_v6="pool-6")
    assert rest == {"drvkey": "drvval"}


def test_neutron_options_empty():
    neutron, rest = options.split_neutron_options({}, options.NETWORK_OPTION)
    assert neutron == model.NeutronOptions()
    assert rest == {}


def test_neutron_unknown_key_lists_valid_ones():
    message = error_of(options.split_neutron_options, {"neutron.network.uuid": NET_UUID},
                       options.NETWORK_OPTION)
    assert message.startswith('unknown network option "neutron.network.uuid": the neutron '
                              'options are neutron.net.uuid, neutron.net.name,')
    for key in options.NEUTRON_KEYS:
        assert key in message


def test_neutron_v6_net_key_is_unknown():
    message = error_of(options.split_neutron_options, {"neutron.net.v6.uuid": NET_UUID},
                       options.IPAM_OPTION)
    assert message.startswith('unknown IPAM option "neutron.net.v6.uuid"')


def test_neutron_uuid_is_validated():
    assert error_of(options.split_neutron_options, {"neutron.subnet.uuid": "subnet-a"},
                    options.IPAM_OPTION) == \
        ('invalid IPAM option neutron.subnet.uuid "subnet-a": expected a UUID such as '
         '3f1e9c2a-5b7d-4e8f-9a0b-1c2d3e4f5a6b')


def test_neutron_uuid_is_lowercased():
    neutron, _ = options.split_neutron_options({"neutron.net.uuid": NET_UUID.upper()},
                                               options.NETWORK_OPTION)
    assert neutron.net_uuid == NET_UUID


def test_neutron_name_must_not_be_empty():
    assert error_of(options.split_neutron_options, {"neutron.net.name": ""},
                    options.NETWORK_OPTION) == \
        'invalid network option neutron.net.name "": expected a name of 1 to 255 printable characters'


def test_neutron_shared_must_be_boolean():
    message = error_of(options.split_neutron_options, {"neutron.net.shared": "perhaps"},
                       options.NETWORK_OPTION)
    assert message.startswith('invalid network option neutron.net.shared "perhaps": expected one of')


def test_neutron_prefix_is_case_sensitive():
    neutron, rest = options.split_neutron_options({"Neutron.net.uuid": "x"}, options.NETWORK_OPTION)
    assert neutron == model.NeutronOptions()
    assert rest == {"Neutron.net.uuid": "x"}


# --- kuryrnet.port_pool.* ------------------------------------------------------------


def test_port_pool_options():
    port_pool, rest = options.split_port_pool_options(
        {"kuryrnet.port_pool.enabled": "false", "kuryrnet.port_pool.low": "1",
         "kuryrnet.port_pool.high": "8", "other": "x"}, options.NETWORK_OPTION)
    assert port_pool == model.PortPoolOptions(enabled=False, low=1, high=8)
    assert rest == {"other": "x"}


def test_port_pool_defaults_are_none():
    port_pool, _ = options.split_port_pool_options({}, options.NETWORK_OPTION)
    assert port_pool == model.PortPoolOptions()


def test_port_pool_low_above_high():
    message = error_of(options.split_port_pool_options,
                       {"kuryrnet.port_pool.low": "5", "kuryrnet.port_pool.high": "2"},
                       options.NETWORK_OPTION)
    assert message.startswith("invalid network option kuryrnet.port_pool.low 5: expected at "
                              "most kuryrnet.port_pool.high (2)")


@pytest.mark.parametrize("value", ["-1", "two", "1.5", "100000", ""])
def test_port_pool_size_is_validated(value):
    message = error_of(options.split_port_pool_options, {"kuryrnet.port_pool.high": value},
                       options.NETWORK_OPTION)
    assert message.startswith(f'invalid network option kuryrnet.port_pool.high "{value}"')
    assert message.endswith("expected an integer between 0 and 1000")


def test_port_pool_enabled_is_validated():
    message = error_of(options.split_port_pool_options, {"kuryrnet.port_pool.enabled": "sure"},
                       options.NETWORK_OPTION)
    assert message.startswith('invalid network option kuryrnet.port_pool.enabled "sure"')


def test_unknown_kuryrnet_key_lists_valid_ones():
    message = error_of(options.split_port_pool_options, {"kuryrnet.port_pool.size": "3"},
                       options.NETWORK_OPTION)
    assert message == ('unknown network option "kuryrnet.port_pool.size": the kuryrnet options '
                       'are kuryrnet.port_pool.enabled, kuryrnet.port_pool.low, '
                       'kuryrnet.port_pool.high')


def test_kuryrnet_keys_rejected_in_ipam_options():
    message = error_of(options.reject_driver_options, {"kuryrnet.port_pool.low": "1"},
                       options.IPAM_OPTION)
    assert message.startswith('unexpected IPAM option "kuryrnet.port_pool.low"')
    assert "-o" in message


# --- exposed ports -------------------------------------------------------------------


def test_exposed_ports_every_protocol():
    ports = options.parse_exposed_ports(
        [{"Proto": 6, "Port": 80}, {"Proto": 17, "Port": 53}, {"Proto": 132, "Port": 9},
         {"Proto": 1, "Port": 0}], "Options")
    assert ports == (model.ExposedPort("tcp", 80), model.ExposedPort("udp", 53),
                     model.ExposedPort("sctp", 9), model.ExposedPort("icmp", 0))


def test_exposed_ports_null_and_empty():
    assert options.parse_exposed_ports(None, "Options") == ()
    assert options.parse_exposed_ports([], "Options") == ()


def test_exposed_ports_icmp_port_is_zero():
    assert options.parse_exposed_ports([{"Proto": 1, "Port": 8}], "X") == \
        (model.ExposedPort("icmp", 0),)
    assert options.parse_exposed_ports([{"Proto": 1}], "X") == (model.ExposedPort("icmp", 0),)


@pytest.mark.parametrize("proto", [0, 4, 255, "6", True, None, [6]])
def test_exposed_ports_unknown_protocol(proto):
    message = error_of(options.parse_exposed_ports, [{"Proto": proto, "Port": 80}], "EP")
    assert "EP[0].Proto" in message
    assert message.endswith("expected an IP protocol number: 1 (icmp), 6 (tcp), 17 (udp) or "
                            "132 (sctp)")


@pytest.mark.parametrize("port", [0, 65536, -1, "80", 80.5])
def test_exposed_ports_bad_port(port):
    message = error_of(options.parse_exposed_ports, [{"Proto": 6, "Port": port}], "EP")
    assert message.startswith(f"invalid EP[0].Port {port}" if not isinstance(port, str)
                              else f'invalid EP[0].Port "{port}"')


def test_exposed_ports_entry_must_be_object():
    assert error_of(options.parse_exposed_ports, ["80/tcp"], "EP") == \
        'invalid EP[0] "80/tcp": expected a JSON object, got a string'


# --- MAC option and address kind ---------------------------------------------------------


def test_mac_option_decodes_base64():
    assert options.parse_mac_option("AkIKYwAy", "Options") == "02:42:0a:63:00:32"
    assert options.parse_mac_option("", "Options") is None
    assert options.parse_mac_option(None, "Options") is None


@pytest.mark.parametrize("value", ["AkIKYw==", "AkIKYwAyAA==", "not base64!", "AQAAAAAA", "\u00e9\u00e9"])
def test_mac_option_rejects(value):
    message = error_of(options.parse_mac_option, value, "Options[mac]")
    assert message.startswith(f"invalid Options[mac] {fields.show(value)}: ")
    assert message.endswith("expected the base64 encoding of a 6-byte unicast MAC address, "
                            "such as AkIKYwAy")


def test_address_kind():
    assert options.address_kind({"RequestAddressType": "com.docker.network.gateway"}) is \
        model.AddressKind.GATEWAY
    assert options.address_kind({}) is model.AddressKind.ENDPOINT
    assert options.address_kind({"RequestAddressType": "something.else"}) is \
        model.AddressKind.ENDPOINT
