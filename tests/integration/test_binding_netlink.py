"""The netlink helpers of kuryrnet.binding against real links of the host."""

from __future__ import annotations

import json
import secrets
import subprocess

import pytest

from kuryrnet.binding import netlink
from kuryrnet.errors import BindingError


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=30)


def link_info(name: str) -> dict | None:
    result = run("ip", "-d", "-j", "link", "show", "dev", name, check=False)
    return json.loads(result.stdout)[0] if result.returncode == 0 else None


@pytest.fixture
def names():
    """Yield a factory of unique interface names, and delete those interfaces afterwards."""
    created = []

    def make(prefix: str = "knt") -> str:
        name = prefix + secrets.token_hex(5)
        created.append(name)
        return name

    yield make
    for name in created:
        run("ip", "link", "del", "dev", name, check=False)


def test_ensure_veth_pair_creates_pair(names):
    host, container = names(), names()

    created = netlink.ensure_veth_pair(host, container, "fa:16:3e:aa:bb:cc", 1380, alias="mark")

    assert created is True
    assert link_info(host)["linkinfo"]["info_kind"] == "veth"
    assert link_info(host)["mtu"] == 1380
    assert link_info(host)["ifalias"] == "mark"
    assert link_info(container)["mtu"] == 1380
    assert link_info(container)["address"] == "fa:16:3e:aa:bb:cc"


def test_ensure_veth_pair_existing_converges(names):
    host, container = names(), names()
    netlink.ensure_veth_pair(host, container, "fa:16:3e:aa:bb:cc", 1380)
    index = link_info(host)["ifindex"]

    created = netlink.ensure_veth_pair(host, container, "fa:16:3e:00:11:22", 1500, alias="new")

    assert created is False
    assert link_info(host)["ifindex"] == index
    assert link_info(host)["mtu"] == 1500
    assert link_info(host)["ifalias"] == "new"
    assert link_info(container)["mtu"] == 1500
    assert link_info(container)["address"] == "fa:16:3e:00:11:22"


def test_ensure_veth_pair_without_mac_keeps_random(names):
    host, container = names(), names()

    netlink.ensure_veth_pair(host, container, None, 1500)

    assert link_info(container)["address"]


def test_ensure_veth_pair_peer_name_taken(names):
    host, container = names(), names()
    run("ip", "link", "add", container, "type", "bridge")

    with pytest.raises(BindingError) as raised:
        netlink.ensure_veth_pair(host, container, "fa:16:3e:aa:bb:cc", 1500)

    assert f"failed to create veth {host} (peer {container})" in str(raised.value)
    assert f"an interface named {container} already exists" in str(raised.value)
    assert link_info(host) is None


def test_ensure_veth_pair_kernel_error_names_interfaces(names):
    host, container = names(), names()

    with pytest.raises(BindingError) as raised:
        netlink.ensure_veth_pair(host, container, "fa:16:3e:aa:bb:cc", 100000)

    assert f"failed to create veth {host} (peer {container}): " in str(raised.value)
    assert "Invalid argument" in str(raised.value)


def test_ensure_bridge_creates_and_marks(names):
    bridge = names()

    assert netlink.ensure_bridge(bridge, 1400, alias="mine") is True

    assert link_info(bridge)["linkinfo"]["info_kind"] == "bridge"
    assert link_info(bridge)["mtu"] == 1400
    assert link_info(bridge)["ifalias"] == "mine"
    assert "UP" in link_info(bridge)["flags"]


def test_ensure_bridge_existing_keeps_alias(names):
    bridge = names()
    run("ip", "link", "add", bridge, "type", "bridge")

    assert netlink.ensure_bridge(bridge, 1400, alias="mine") is False

    assert link_info(bridge).get("ifalias") is None
    assert link_info(bridge)["mtu"] == 1400


def test_ensure_bridge_rejects_other_kind(names):
    name, peer = names(), names()
    run("ip", "link", "add", name, "type", "veth", "peer", "name", peer)

    with pytest.raises(BindingError, match=f"interface {name} exists but is a veth"):
        netlink.ensure_bridge(name, 1500)


def test_set_master_missing_bridge(names):
    host, container, bridge = names(), names(), names()
    netlink.ensure_veth_pair(host, container, None, 1500)

    with pytest.raises(BindingError,
                       match=f"failed to connect {host} to bridge {bridge}: "
                             f"interface {bridge} not found"):
        netlink.set_master(host, bridge)


def test_set_master_and_bridge_ports(names):
    host, container, bridge = names(), names(), names()
    netlink.ensure_bridge(bridge, 1500)
    netlink.ensure_veth_pair(host, container, None, 1500)

    netlink.set_master(host, bridge)
    netlink.set_master(host, bridge)

    assert netlink.bridge_port_names(bridge) == [host]
    assert link_info(host)["master"] == bridge


def test_bridge_port_names_missing_bridge(names):
    assert netlink.bridge_port_names(names()) is None


def test_set_link_up_missing_interface(names):
    name = names()

    with pytest.raises(BindingError, match=f"failed to bring up {name}: interface {name} not found"):
        netlink.set_link_up(name)


def test_delete_link_absent_returns_false(names):
    assert netlink.delete_link(names()) is False


def test_delete_link_removes_both_veth_ends(names):
    host, container = names(), names()
    netlink.ensure_veth_pair(host, container, None, 1500)

    assert netlink.delete_link(host) is True

    assert link_info(host) is None
    assert link_info(container) is None


def test_get_link_reports_fields(names):
    host, container = names(), names()
    netlink.ensure_veth_pair(host, container, "fa:16:3e:01:02:03", 1450, alias="a")

    link = netlink.get_link(container)

    assert link.name == container
    assert link.kind == "veth"
    assert link.mac_address == "fa:16:3e:01:02:03"
    assert link.mtu == 1450
    assert link.master_index is None
    assert link.is_up is False
    assert netlink.get_link(host).alias == "a"


def test_ensure_veth_pair_failed_converge_deletes_new_pair(names):
    host, container = names(), names()

    with pytest.raises(BindingError, match=f"failed to set ifalias of interface {host}"):
        netlink.ensure_veth_pair(host, container, None, 1500, alias="x" * 300)

    assert link_info(host) is None
    assert link_info(container) is None
