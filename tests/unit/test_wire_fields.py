"""Tests of the single-value validators in kuryrnet.api.fields."""

import ipaddress

import pytest

from kuryrnet.api import fields
from kuryrnet.api.fields import MISSING
from kuryrnet.errors import InvalidRequest

from test_api_fakes import ENDPOINT_ID, NETWORK_ID


def error_of(function, *args, **kwargs) -> str:
    with pytest.raises(InvalidRequest) as info:
        function(*args, **kwargs)
    assert info.value.status == 400
    return info.value.message


# --- show -------------------------------------------------------------------------


def test_show_quotes_strings():
    assert fields.show("abc") == '"abc"'


def test_show_escapes_control_characters():
    assert fields.show("a\nb\x00") == '"a\\nb\\u0000"'


def test_show_truncates_long_strings():
    shown = fields.show("x" * 5000)
    assert len(shown) < 150
    assert "(5000 characters)" in shown


def test_show_truncates_long_objects():
    shown = fields.show({"key": ["y" * 3000]})
    assert len(shown) < 150
    assert "characters)" in shown


def test_show_renders_json_scalars():
    assert fields.show(None) == "null"
    assert fields.show(True) == "true"
    assert fields.show(12) == "12"
    assert fields.show(MISSING) == "(missing)"


# --- types ------------------------------------------------------------------------


def test_parse_string_null_and_missing_are_empty():
    assert fields.parse_string(None, "F") == ""
    assert fields.parse_string(MISSING, "F") == ""


def test_parse_string_rejects_number():
    assert error_of(fields.parse_string, 5, "PoolID") == \
        "invalid PoolID 5: expected a string, got a number"


def test_parse_object_rejects_array():
    assert error_of(fields.parse_object, [1], "Options") == \
        "invalid Options [1]: expected a JSON object, got an array"


def test_parse_object_null_is_empty():
    assert fields.parse_object(None, "Options") == {}


def test_parse_array_rejects_string():
    assert error_of(fields.parse_array, "x", "IPv4Data") == \
        'invalid IPv4Data "x": expected a JSON array, got a string'


def test_parse_bool_values():
    assert fields.parse_bool(True, "V6") is True
    assert fields.parse_bool(None, "V6") is False
    assert fields.parse_bool(MISSING, "V6") is False
    assert fields.parse_bool("true", "V6") is True
    assert fields.parse_bool("False", "V6") is False


def test_parse_bool_rejects_number():
    assert error_of(fields.parse_bool, 1, "V6") == \
        "invalid V6 1: expected a boolean, got a number"


def test_parse_int_rejects_bool_and_fraction():
    assert "got a boolean" in error_of(fields.parse_int, True, "Port", 0, 10)
    assert "got a number" in error_of(fields.parse_int, 1.5, "Port", 0, 10)


def test_parse_int_range():
    assert fields.parse_int(10, "Port", 0, 10) == 10
    assert error_of(fields.parse_int, 11, "Port", 0, 10) == \
        "invalid Port 11: expected an integer between 0 and 10"
    assert error_of(fields.parse_int, MISSING, "Port", 0, 10) == \
        "missing Port: expected an integer between 0 and 10"


# --- ids ----------------------------------------------------------------------------


def test_parse_docker_id_accepts_real_ids():
    assert fields.parse_docker_id(NETWORK_ID, "NetworkID") == NETWORK_ID
    assert fields.parse_docker_id(ENDPOINT_ID, "EndpointID") == ENDPOINT_ID


@pytest.mark.parametrize("value", [
    NETWORK_ID.upper(),
    NETWORK_ID[:63],
    NETWORK_ID + "0",
    NETWORK_ID[:63] + "g",
    NETWORK_ID + "\n",
    "",
])
def test_parse_docker_id_rejects_malformed(value):
    message = error_of(fields.parse_docker_id, value, "NetworkID")
    assert message.startswith(f"invalid NetworkID {fields.show(value)}")
    assert message.endswith("expected a Docker id of 64 lowercase hexadecimal characters")


def test_parse_docker_id_missing():
    assert error_of(fields.parse_docker_id, MISSING, "EndpointID") == \
        "missing EndpointID: expected a Docker id of 64 lowercase hexadecimal characters"
    assert error_of(fields.parse_docker_id, None, "EndpointID").startswith("missing EndpointID")


def test_parse_pool_id():
    assert fields.parse_pool_id("pool-10.99.0.0/24", "PoolID") == "pool-10.99.0.0/24"
    assert "invalid PoolID" in error_of(fields.parse_pool_id, "a\tb", "PoolID")
    assert error_of(fields.parse_pool_id, "", "PoolID").startswith('invalid PoolID ""')
    assert error_of(fields.parse_pool_id, None, "PoolID").startswith("missing PoolID")
    assert "invalid PoolID" in error_of(fields.parse_pool_id, "p" * 2000, "PoolID")


# --- addresses ----------------------------------------------------------------------


def test_parse_ip_network():
    assert fields.parse_ip_network("10.99.0.0/24", "Pool") == ipaddress.ip_network("10.99.0.0/24")
    assert fields.parse_ip_network("fd97::/64", "Pool") == ipaddress.ip_network("fd97::/64")
    assert fields.parse_ip_network("", "Pool") is None
    assert fields.parse_ip_network(None, "Pool") is None


@pytest.mark.parametrize("value", [
    "10.99.0.1/24",  # host bits set
    "10.99.0.0",  # no prefix length
    "10.99.0.0/33",
    "10.99.0.0/255.255.255.0",
    "10.99.0.0/ 24",
    "fe80::%eth0/64",
    "not-a-cidr",
    "10.099.0.0/24",
])
def test_parse_ip_network_rejects(value):
    message = error_of(fields.parse_ip_network, value, "Pool")
    assert message.startswith(f"invalid Pool {fields.show(value)}: expected a CIDR")


def test_parse_ip_network_checks_version():
    message = error_of(fields.parse_ip_network, "fd97::/64", "IPv4Data[0].Pool", version=4)
    assert message == ('invalid IPv4Data[0].Pool "fd97::/64": expected an IPv4 CIDR such as '
                       '10.0.0.0/24 with no host bits set')


def test_parse_ip_address():
    assert fields.parse_ip_address("10.97.0.254", "Address") == ipaddress.ip_address("10.97.0.254")
    assert fields.parse_ip_address("fd97::1", "Address") == ipaddress.ip_address("fd97::1")
    assert fields.parse_ip_address("", "Address") is None


@pytest.mark.parametrize("value", ["10.97.0.254/24", "10.97.0.256", "fe80::1%eth0", "x", " 10.0.0.1"])
def test_parse_ip_address_rejects(value):
    message = error_of(fields.parse_ip_address, value, "Address")
    assert message.startswith(f"invalid Address {fields.show(value)}: expected an address")


def test_parse_ip_interface():
    assert fields.parse_ip_interface("10.99.0.2/24", "Interface.Address", version=4) == \
        ipaddress.ip_interface("10.99.0.2/24")
    assert fields.parse_ip_interface("", "Interface.Address") is None
    assert fields.parse_ip_interface(None, "Interface.Address") is None


@pytest.mark.parametrize("value", ["10.99.0.2", "10.99.0.2/40", "fd97::200/64", "10.99.0.2/24x"])
def test_parse_ip_interface_rejects(value):
    message = error_of(fields.parse_ip_interface, value, "Interface.Address", version=4)
    assert message == (f"invalid Interface.Address {fields.show(value)}: expected an IPv4 "
                       f"address with a prefix length such as 10.0.0.5/24")


def test_parse_mac_address_lowercases():
    assert fields.parse_mac_address("02:42:0A:63:00:32", "Interface.MacAddress") == \
        "02:42:0a:63:00:32"
    assert fields.parse_mac_address("", "Interface.MacAddress") is None


@pytest.mark.parametrize("value", [
    "02:42:0a:63:00",
    "02-42-0a-63-00-32",
    "01:00:5e:00:00:01",  # multicast
    "00:00:00:00:00:00",
    "02:42:0a:63:00:3g",
])
def test_parse_mac_address_rejects(value):
    message = error_of(fields.parse_mac_address, value, "Interface.MacAddress")
    assert message == (f"invalid Interface.MacAddress {fields.show(value)}: expected a unicast "
                       f"MAC address such as 02:42:0a:00:00:05")


# --- paths and maps -------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    "/var/run/docker/netns/207abbaa7f50",
    "/run/netns/ns1",
    "/proc/1234/ns/net",
])
def test_parse_sandbox_key_accepts_absolute_paths(value):
    assert fields.parse_sandbox_key(value, "SandboxKey") == value


@pytest.mark.parametrize("value", [
    "var/run/docker/netns/x",
    "/var/run/docker/netns/../../etc/passwd",
    "/var/run/docker/netns/a\x00b",
    "/var/run/docker/netns/a\nb",
    "/" + "a" * 5000,
    "",
])
def test_parse_sandbox_key_rejects(value):
    message = error_of(fields.parse_sandbox_key, value, "SandboxKey")
    assert message.startswith(f"invalid SandboxKey {fields.show(value)}: expected an absolute path")


def test_parse_sandbox_key_missing():
    assert error_of(fields.parse_sandbox_key, None, "SandboxKey").startswith("missing SandboxKey")


def test_parse_string_map():
    assert fields.parse_string_map({"a": "b"}, "Options") == {"a": "b"}
    assert fields.parse_string_map(None, "Options") == {}


def test_parse_string_map_rejects_non_string_value():
    assert error_of(fields.parse_string_map, {"ipamkey": 5}, "Options") == \
        'invalid Options["ipamkey"] 5: expected a string, got a number'


def test_parse_uuid_text_lowercases():
    assert fields.parse_uuid_text("3F1E9C2A-5B7D-4E8F-9A0B-1C2D3E4F5A6B", "option") == \
        "3f1e9c2a-5b7d-4e8f-9a0b-1c2d3e4f5a6b"


@pytest.mark.parametrize("value", ["3f1e9c2a5b7d4e8f9a0b1c2d3e4f5a6b",
                                   "{3f1e9c2a-5b7d-4e8f-9a0b-1c2d3e4f5a6b}", "net1", ""])
def test_parse_uuid_text_rejects(value):
    message = error_of(fields.parse_uuid_text, value, "network option neutron.net.uuid")
    assert message.startswith(f"invalid network option neutron.net.uuid {fields.show(value)}: "
                              f"expected a UUID")


def test_parse_int_text_rejects_non_ascii_digits():
    message = error_of(fields.parse_int_text, "\u0663", "network option kuryrnet.port_pool.low",
                       0, 10)
    assert message.endswith("expected an integer between 0 and 10")
    assert error_of(fields.parse_int_text, "1_0", "x", 0, 100).startswith('invalid x "1_0"')
    assert fields.parse_int_text(" 7 ", "x", 0, 10) == 7


def test_parse_bool_text():
    assert fields.parse_bool_text("Yes", "x") is True
    assert fields.parse_bool_text("0", "x") is False
    assert error_of(fields.parse_bool_text, "maybe", "x") == \
        'invalid x "maybe": expected one of true, yes, on, 1, false, no, off, 0'
