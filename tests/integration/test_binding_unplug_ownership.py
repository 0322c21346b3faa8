"""Unplug of an endpoint whose vif type is unknown: each driver removes only its own interfaces.

These tests need no Open vSwitch: the OVS driver points at an OVSDB socket
that does not exist.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import uuid

import pytest

from kuryrnet import config
from kuryrnet.binding import hybrid_names, interface_names, markers
from kuryrnet.binding.base import Vif
from kuryrnet.binding.linux_bridge import LinuxBridgeDriver
from kuryrnet.binding.ovs import OvsDriver
from kuryrnet.errors import BindingError

MISSING_OVSDB = "unix:/nonexistent/kuryrnet-test/db.sock"


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=30)


def link_info(name: str) -> dict | None:
    result = run("ip", "-d", "-j", "link", "show", "dev", name, check=False)
    return json.loads(result.stdout)[0] if result.returncode == 0 else None


def make_vif(vif_type: str = "") -> Vif:
    return Vif(port_id=str(uuid.uuid4()), network_id=str(uuid.uuid4()),
               endpoint_id=secrets.token_hex(32), mac_address="fa:16:3e:00:12:34", mtu=1500,
               vif_type=vif_type)


@pytest.fixture
def conf():
    conf = config.load([], config_files=[])
    conf.set_override("ovsdb_connection", MISSING_OVSDB, group="binding")
    return conf


@pytest.fixture
def veth_of(conf):
    """Yield a factory of veth pairs marked for a vif type, and delete them afterwards."""
    created = []

    def make(vif: Vif, marked_vif_type: str) -> str:
        host, container = interface_names(conf, vif.endpoint_id)
        created.append(host)
        run("ip", "link", "add", host, "type", "veth", "peer", "name", container)
        alias = markers.veth_alias(marked_vif_type, vif.endpoint_id, vif.port_id)
        run("ip", "link", "set", "dev", host, "alias", alias)
        return host

    yield make
    for host in created:
        run("ip", "link", "del", "dev", host, check=False)


def test_bridge_unplug_skips_ovs_veth(conf, veth_of):
    vif = make_vif()
    host = veth_of(vif, "ovs")

    LinuxBridgeDriver(conf).unplug(vif)

    assert link_info(host) is not None


def test_ovs_unplug_skips_bridge_veth(conf, veth_of):
    vif = make_vif()
    host = veth_of(vif, "bridge")

    OvsDriver(conf).unplug(vif)

    assert link_info(host) is not None


def test_ovs_unplug_without_ovsdb_or_links(conf):
    OvsDriver(conf).unplug(make_vif())


def test_ovs_unplug_without_ovsdb_with_veth(conf, veth_of):
    vif = make_vif()
    host = veth_of(vif, "ovs")

    with pytest.raises(BindingError, match=f"failed to connect to OVSDB at {MISSING_OVSDB}"):
        OvsDriver(conf).unplug(vif)

    assert link_info(host) is not None


def test_ovs_plug_without_ovsdb_rolls_back(conf):
    vif = make_vif("ovs")
    host, container = interface_names(conf, vif.endpoint_id)
    linux_bridge, bridge_veth, _ = hybrid_names(vif.endpoint_id)
    try:
        with pytest.raises(BindingError, match=f"failed to connect to OVSDB at {MISSING_OVSDB}"):
            OvsDriver(conf).plug(vif)

        assert link_info(host) is None
        assert link_info(container) is None
    finally:
        for name in (host, bridge_veth, linux_bridge):
            run("ip", "link", "del", "dev", name, check=False)
