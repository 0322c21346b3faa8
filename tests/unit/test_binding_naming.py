"""Interface naming, prefix validation, markers and driver loading of kuryrnet.binding."""

from __future__ import annotations

import pytest

from kuryrnet import config
from kuryrnet.binding import (
    MAX_IFNAME_LENGTH,
    hybrid_names,
    interface_names,
    load_drivers,
    validate_prefixes,
    veth_names,
)
from kuryrnet.binding import markers
from kuryrnet.binding.base import Vif
from kuryrnet.binding.linux_bridge import LinuxBridgeDriver, bridge_name
from kuryrnet.binding.ovs import OvsDriver, uses_hybrid_plug
from kuryrnet.errors import BindingError, InvalidRequest

ENDPOINT_ID = "0123456789abcdef" * 4
OTHER_ENDPOINT_ID = "fedcba9876543210" * 4
NETWORK_ID = "5f4e3d2c-1b0a-4987-8765-43210fedcba9"
PORT_ID = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def conf():
    return config.load([], config_files=[])


def make_vif(**overrides) -> Vif:
    values = dict(port_id=PORT_ID, network_id=NETWORK_ID, endpoint_id=ENDPOINT_ID,
                  mac_address="fa:16:3e:12:34:56", mtu=1450, vif_type="ovs")
    values.update(overrides)
    return Vif(**values)


def test_interface_names_default_prefixes(conf):
    host, container = interface_names(conf, ENDPOINT_ID)

    assert host == "tap0123456789ab"
    assert container == "t_c0123456789ab"


def test_interface_names_fit_ifnamsiz(conf):
    conf.set_override("veth_prefix", "v", group="binding")
    conf.set_override("container_prefix", "ctr_", group="binding")

    host, container = interface_names(conf, ENDPOINT_ID)

    assert len(host) == MAX_IFNAME_LENGTH
    assert len(container) == MAX_IFNAME_LENGTH
    assert host.startswith("v")
    assert container.startswith("ctr_")


def test_interface_names_deterministic(conf):
    assert interface_names(conf, ENDPOINT_ID) == interface_names(conf, ENDPOINT_ID)
    assert interface_names(conf, ENDPOINT_ID) != interface_names(conf, OTHER_ENDPOINT_ID)


@pytest.mark.parametrize("endpoint_id", [
    "",
    "0123",
    ENDPOINT_ID.upper(),
    ENDPOINT_ID[:-1] + "g",
    ENDPOINT_ID + "0",
    "../" + ENDPOINT_ID[3:],
])
def test_interface_names_reject_bad_endpoint_id(conf, endpoint_id):
    with pytest.raises(InvalidRequest, match="invalid endpoint id"):
        interface_names(conf, endpoint_id)


@pytest.mark.parametrize("option, prefix, message", [
    ("veth_prefix", "", "1 to 4 characters"),
    ("veth_prefix", "taps1", "1 to 4 characters"),
    ("veth_prefix", "1ab", "must start with a letter"),
    ("veth_prefix", "a/b", "must start with a letter"),
    ("veth_prefix", "t c", "must start with a letter"),
    ("veth_prefix", "a:b", "must start with a letter"),
    ("veth_prefix", "qvo", "overlaps the prefix 'qvo'"),
    ("veth_prefix", "q", "overlaps the prefix 'qbr'"),
    ("container_prefix", "brq_", "overlaps the prefix 'brq'"),
    ("container_prefix", "tap", "neither may start with the other"),
    ("container_prefix", "ta", "neither may start with the other"),
])
def test_validate_prefixes_rejects(conf, option, prefix, message):
    conf.set_override(option, prefix, group="binding")

    with pytest.raises(BindingError, match=message) as raised:
        validate_prefixes(conf)
    assert option in str(raised.value)


def test_validate_prefixes_accepts_defaults(conf):
    validate_prefixes(conf)


def test_veth_names_prefers_names_in_vif(conf):
    vif = make_vif(host_ifname="hostend", container_ifname="ctrend")

    assert veth_names(conf, vif) == ("hostend", "ctrend")


def test_veth_names_derives_missing_names(conf):
    assert veth_names(conf, make_vif()) == interface_names(conf, ENDPOINT_ID)


def test_hybrid_names_from_endpoint_id():
    bridge, bridge_veth, ovs_veth = hybrid_names(ENDPOINT_ID)

    assert bridge == "qbr0123456789ab"
    assert bridge_veth == "qvb0123456789ab"
    assert ovs_veth == "qvo0123456789ab"


def test_bridge_name_from_network_id():
    assert bridge_name(make_vif()) == "brq5f4e3d2c-1b"


def test_bridge_name_from_vif_details():
    assert bridge_name(make_vif(vif_details={"bridge_name": "br-physnet1"})) == "br-physnet1"


@pytest.mark.parametrize("name", ["bridge-name-too-long", "br/x", "br x"])
def test_bridge_name_rejects_invalid(name):
    with pytest.raises(BindingError, match="invalid bridge name"):
        bridge_name(make_vif(vif_details={"bridge_name": name}))


@pytest.mark.parametrize("details, expected", [
    ({}, False),
    ({"ovs_hybrid_plug": False}, False),
    ({"ovs_hybrid_plug": True}, True),
    ({"ovs_hybrid_plug": "true"}, True),
    ({"ovs_hybrid_plug": "False"}, False),
])
def test_uses_hybrid_plug(details, expected):
    assert uses_hybrid_plug(make_vif(vif_details=details)) is expected


def test_veth_alias_round_trip():
    alias = markers.veth_alias("ovs", ENDPOINT_ID, PORT_ID)

    mark = markers.parse_veth_alias(alias)

    assert mark == markers.VethMark(vif_type="ovs", endpoint_id=ENDPOINT_ID, port_id=PORT_ID)


@pytest.mark.parametrize("alias", [None, "", "uplink to rack 3", markers.bridge_alias("bridge"),
                                   "other:ovs:" + ENDPOINT_ID + ":" + PORT_ID])
def test_parse_veth_alias_ignores_other_aliases(alias):
    assert markers.parse_veth_alias(alias) is None


def test_load_drivers_maps_vif_types(conf):
    drivers = load_drivers(conf)

    assert set(drivers) == {"ovs", "bridge"}
    assert isinstance(drivers["ovs"], OvsDriver)
    assert isinstance(drivers["bridge"], LinuxBridgeDriver)
    assert drivers["ovs"].conf is conf


def test_load_drivers_only_enabled(conf):
    conf.set_override("enabled_drivers", ["linux_bridge"], group="binding")

    assert list(load_drivers(conf)) == ["bridge"]


def test_load_drivers_unknown_name_lists_available(conf):
    conf.set_override("enabled_drivers", ["ovs", "sriov"], group="binding")

    with pytest.raises(BindingError, match="unknown binding driver 'sriov'") as raised:
        load_drivers(conf)
    assert "Available drivers: linux_bridge, ovs" in str(raised.value)


def test_load_drivers_rejects_duplicate_vif_type(conf):
    conf.set_override("enabled_drivers", ["ovs", "ovs"], group="binding")

    with pytest.raises(BindingError, match="both handle vif type 'ovs'"):
        load_drivers(conf)


def test_load_drivers_validates_prefixes(conf):
    conf.set_override("veth_prefix", "toolong", group="binding")

    with pytest.raises(BindingError, match="veth_prefix"):
        load_drivers(conf)


def test_ovs_external_ids():
    ids = OvsDriver._external_ids(make_vif(), "tap0123456789ab")

    assert ids == {
        "iface-id": PORT_ID,
        "attached-mac": "fa:16:3e:12:34:56",
        "iface-status": "active",
        "vm-uuid": ENDPOINT_ID,
        "kuryrnet-endpoint": ENDPOINT_ID,
        "kuryrnet-veth": "tap0123456789ab",
    }
