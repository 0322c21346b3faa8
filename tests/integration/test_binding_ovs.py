"""OvsDriver against the Open vSwitch of the local stack.

The checks read OVSDB with ovs-vsctl and links with the `ip` command, so they
observe the host with tools independent of the code under test. Ports get
random iface-ids that OVN does not know, so ovn-controller leaves them alone.
Every test removes the ports, links and bridges it created, also when it fails.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from kuryrnet import config
from kuryrnet.binding import hybrid_names, interface_names
from kuryrnet.binding.base import Vif
from kuryrnet.binding.ovs import OvsDriver
from kuryrnet.errors import BindingError

OVSDB_SOCKET = "/var/run/openvswitch/db.sock"
STACK_ENV = Path(__file__).resolve().parents[2] / ".stack" / "env"

pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(not os.path.exists(OVSDB_SOCKET),
                       reason=f"Open vSwitch is not running ({OVSDB_SOCKET} is absent); "
                              f"start the local stack with `make stack-up`"),
]


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=30)


def vsctl(*args: str, check: bool = True) -> str:
    return run("ovs-vsctl", "--timeout=10", *args, check=check).stdout.strip()


def link_info(name: str) -> dict | None:
    result = run("ip", "-d", "-j", "link", "show", "dev", name, check=False)
    return json.loads(result.stdout)[0] if result.returncode == 0 else None


def ovs_port_exists(name: str) -> bool:
    return bool(vsctl("--columns=name", "find", "Port", f"name={name}"))


def interface_external_ids(name: str) -> dict[str, str]:
    output = vsctl("--format=json", "--columns=external_ids", "find", "Interface", f"name={name}")
    rows = json.loads(output)["data"]
    assert rows, f"no Interface row {name}"
    kind, pairs = rows[0][0]
    assert kind == "map"
    return dict(pairs)


def make_vif(mtu: int = 1442, vif_details: dict | None = None) -> Vif:
    mac = "fa:16:3e:" + ":".join(secrets.token_hex(1) for _ in range(3))
    return Vif(port_id=str(uuid.uuid4()), network_id=str(uuid.uuid4()),
               endpoint_id=secrets.token_hex(32), mac_address=mac, mtu=mtu,
               vif_type="ovs", vif_details=vif_details or {})


@pytest.fixture
def conf():
    return config.load([], config_files=[])


@pytest.fixture
def driver(conf):
    bridge = conf.binding.integration_bridge
    if run("ovs-vsctl", "--timeout=5", "br-exists", bridge, check=False).returncode != 0:
        pytest.skip(f"OVS bridge {bridge} does not exist; start the local stack")
    return OvsDriver(conf)


@pytest.fixture
def cleanup(driver, conf):
    """Collect vifs and OVS bridges to remove after the test, whatever its outcome."""
    created = {"vifs": [], "bridges": []}
    yield created
    for vif in created["vifs"]:
        try:
            driver.unplug(vif)
        except BindingError:
            pass
        host, _ = interface_names(conf, vif.endpoint_id)
        linux_bridge, bridge_veth, ovs_veth = hybrid_names(vif.endpoint_id)
        vsctl("--if-exists", "del-port", host, check=False)
        vsctl("--if-exists", "del-port", ovs_veth, check=False)
        for link in (host, bridge_veth, linux_bridge):
            run("ip", "link", "del", "dev", link, check=False)
    for bridge in created["bridges"]:
        vsctl("--if-exists", "del-br", bridge, check=False)


@pytest.fixture
def extra_bridge(cleanup):
    """Return the name of a new userspace OVS bridge that the test may use."""
    name = "kntbr" + secrets.token_hex(4)
    cleanup["bridges"].append(name)
    vsctl("add-br", name, "--", "set", "Bridge", name, "datapath_type=netdev")
    return name


def plugged(driver, cleanup, vif: Vif) -> Vif:
    cleanup["vifs"].append(vif)
    driver.plug(vif)
    return vif


def test_plug_adds_port_with_external_ids(conf, driver, cleanup):
    vif = plugged(driver, cleanup, make_vif())
    host, _ = interface_names(conf, vif.endpoint_id)

    assert vsctl("port-to-br", host) == conf.binding.integration_bridge
    assert interface_external_ids(host) == {
        "iface-id": vif.port_id,
        "attached-mac": vif.mac_address,
        "iface-status": "active",
        "vm-uuid": vif.endpoint_id,
        "kuryrnet-endpoint": vif.endpoint_id,
        "kuryrnet-veth": host,
    }
    assert int(vsctl("get", "Interface", host, "ofport")) > 0


def test_plug_sets_mac_and_mtu_on_both_ends(conf, driver, cleanup):
    vif = plugged(driver, cleanup, make_vif(mtu=1442))
    host, container = interface_names(conf, vif.endpoint_id)

    host_end, container_end = link_info(host), link_info(container)

    assert host_end["mtu"] == 1442
    assert container_end["mtu"] == 1442
    assert container_end["address"] == vif.mac_address
    assert "UP" in host_end["flags"]
    assert host_end["ifalias"] == f"kuryrnet:ovs:{vif.endpoint_id}:{vif.port_id}"


def test_replug_keeps_ofport(conf, driver, cleanup):
    vif = plugged(driver, cleanup, make_vif())
    host, _ = interface_names(conf, vif.endpoint_id)
    ofport = vsctl("get", "Interface", host, "ofport")

    driver.plug(vif)

    assert vsctl("get", "Interface", host, "ofport") == ofport
    assert interface_external_ids(host)["iface-id"] == vif.port_id


def test_replug_corrects_external_ids(conf, driver, cleanup):
    vif = plugged(driver, cleanup, make_vif())
    host, _ = interface_names(conf, vif.endpoint_id)
    vsctl("set", "Interface", host, "external_ids:iface-id=stale")

    driver.plug(vif)

    assert interface_external_ids(host)["iface-id"] == vif.port_id


def test_plug_into_bridge_from_vif_details(conf, driver, cleanup, extra_bridge):
    vif = plugged(driver, cleanup, make_vif(vif_details={"bridge_name": extra_bridge}))
    host, _ = interface_names(conf, vif.endpoint_id)

    assert vsctl("port-to-br", host) == extra_bridge


def test_replug_moves_port_to_new_bridge(conf, driver, cleanup, extra_bridge):
    vif = plugged(driver, cleanup, make_vif())
    host, _ = interface_names(conf, vif.endpoint_id)
    moved = Vif(**{**vif.__dict__, "vif_details": {"bridge_name": extra_bridge}})

    driver.plug(moved)

    assert vsctl("port-to-br", host) == extra_bridge
    assert host not in vsctl("list-ports", conf.binding.integration_bridge).split()


def test_plug_missing_bridge_rolls_back(conf, driver, cleanup):
    missing = "kntbr" + secrets.token_hex(4)
    vif = make_vif(vif_details={"bridge_name": missing})
    cleanup["vifs"].append(vif)
    host, container = interface_names(conf, vif.endpoint_id)

    with pytest.raises(BindingError, match=f"OVS bridge {missing} not found"):
        driver.plug(vif)

    assert link_info(host) is None
    assert link_info(container) is None
    assert not ovs_port_exists(host)


def test_hybrid_plug_rows_and_links(conf, driver, cleanup):
    vif = plugged(driver, cleanup, make_vif(mtu=1420, vif_details={"ovs_hybrid_plug": True}))
    host, container = interface_names(conf, vif.endpoint_id)
    linux_bridge, bridge_veth, ovs_veth = hybrid_names(vif.endpoint_id)

    assert not ovs_port_exists(host)
    assert vsctl("port-to-br", ovs_veth) == conf.binding.integration_bridge
    external_ids = interface_external_ids(ovs_veth)
    assert external_ids["iface-id"] == vif.port_id
    assert external_ids["attached-mac"] == vif.mac_address
    assert external_ids["kuryrnet-veth"] == host
    assert link_info(linux_bridge)["linkinfo"]["info_kind"] == "bridge"
    assert link_info(host)["master"] == linux_bridge
    assert link_info(bridge_veth)["master"] == linux_bridge
    for name in (host, container, linux_bridge, bridge_veth, ovs_veth):
        assert link_info(name)["mtu"] == 1420, name
    for name in (host, linux_bridge, bridge_veth, ovs_veth):
        assert "UP" in link_info(name)["flags"], name
    assert link_info(container)["address"] == vif.mac_address


def test_hybrid_unplug_removes_everything(conf, driver, cleanup):
    vif = plugged(driver, cleanup, make_vif(vif_details={"ovs_hybrid_plug": True}))
    host, container = interface_names(conf, vif.endpoint_id)
    linux_bridge, bridge_veth, ovs_veth = hybrid_names(vif.endpoint_id)

    driver.unplug(vif)

    assert not ovs_port_exists(ovs_veth)
    for name in (host, container, linux_bridge, bridge_veth, ovs_veth):
        assert link_info(name) is None, name


def test_unplug_removes_row_and_links(conf, driver, cleanup):
    vif = plugged(driver, cleanup, make_vif())
    host, container = interface_names(conf, vif.endpoint_id)

    driver.unplug(vif)
    driver.unplug(vif)

    assert not ovs_port_exists(host)
    assert link_info(host) is None
    assert link_info(container) is None


def test_unplug_never_plugged_succeeds(driver):
    driver.unplug(make_vif())


def test_wait_ready_unknown_port_times_out(driver, cleanup):
    vif = plugged(driver, cleanup, make_vif())
    started = time.monotonic()

    ready = driver.wait_ready(vif, timeout=0.5)

    elapsed = time.monotonic() - started
    assert ready is False
    assert 0.5 <= elapsed < 2.0


def test_wait_ready_sees_mark(conf, driver, cleanup):
    vif = plugged(driver, cleanup, make_vif())
    host, _ = interface_names(conf, vif.endpoint_id)
    marker = threading.Timer(0.2, vsctl, args=("set", "Interface", host,
                                              'external_ids:ovn-installed="true"'))
    started = time.monotonic()
    marker.start()
    try:
        ready = driver.wait_ready(vif, timeout=5)
    finally:
        marker.join()

    assert ready is True
    assert time.monotonic() - started < 2.0


def test_wait_ready_mark_already_set(conf, driver, cleanup):
    vif = plugged(driver, cleanup, make_vif())
    host, _ = interface_names(conf, vif.endpoint_id)
    vsctl("set", "Interface", host, 'external_ids:ovn-installed="true"')

    assert driver.wait_ready(vif, timeout=1) is True


def test_list_ports_returns_plugged(conf, driver, cleanup):
    plain = plugged(driver, cleanup, make_vif())
    hybrid = plugged(driver, cleanup, make_vif(vif_details={"ovs_hybrid_plug": True}))

    ports = {port.endpoint_id: port for port in driver.list_ports()}

    assert ports[plain.endpoint_id].host_ifname == interface_names(conf, plain.endpoint_id)[0]
    assert ports[plain.endpoint_id].port_id == plain.port_id
    assert ports[hybrid.endpoint_id].host_ifname == interface_names(conf, hybrid.endpoint_id)[0]
    assert ports[hybrid.endpoint_id].port_id == hybrid.port_id


def test_list_ports_finds_veth_without_row(conf, driver, cleanup):
    vif = plugged(driver, cleanup, make_vif())
    host, _ = interface_names(conf, vif.endpoint_id)
    vsctl("del-port", host)

    ports = {port.endpoint_id: port for port in driver.list_ports()}

    assert ports[vif.endpoint_id].host_ifname == host
    assert ports[vif.endpoint_id].port_id == vif.port_id


def test_concurrent_plugs_from_threads(conf, driver, cleanup):
    vifs = [make_vif() for _ in range(8)]
    cleanup["vifs"].extend(vifs)
    errors = []

    def plug_and_replug(vif: Vif) -> None:
        try:
            driver.plug(vif)
            driver.plug(vif)
        except BindingError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=plug_and_replug, args=(vif,)) for vif in vifs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    for vif in vifs:
        host, _ = interface_names(conf, vif.endpoint_id)
        assert interface_external_ids(host)["iface-id"] == vif.port_id


def stack_setting(name: str) -> str | None:
    """Return a variable of the environment, else of the stack's env file."""
    if name in os.environ:
        return os.environ[name]
    if not STACK_ENV.exists():
        return None
    for line in STACK_ENV.read_text().splitlines():
        if line.startswith(f"export {name}="):
            return line.split("=", 1)[1]
    return None


def neutron_request(method: str, path: str, body: dict | None = None) -> dict:
    """Send one request to the local stack's Neutron (noauth mode) and return the JSON reply."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(stack_setting("NEUTRON_URL") + path, data=data,
                                     method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = response.read()
    return json.loads(payload) if payload else {}


@pytest.fixture
def neutron_port(conf):
    """Create a network and a port bound to this host in Neutron, and delete both afterwards."""
    if stack_setting("NEUTRON_URL") is None or stack_setting("STACK_MODE") != "noauth":
        pytest.skip("needs the local stack's Neutron in noauth mode (.stack/env)")
    try:
        network = neutron_request("POST", "/v2.0/networks",
                                  {"network": {"name": "kntest-" + secrets.token_hex(4)}})
    except urllib.error.URLError as exc:
        pytest.skip(f"Neutron of the local stack is unreachable: {exc}")
    network_id = network["network"]["id"]
    try:
        port = neutron_request("POST", "/v2.0/ports", {"port": {
            "network_id": network_id,
            "binding:host_id": stack_setting("STACK_HOST_ID") or conf.host_id,
            "device_owner": "compute:kuryr",
        }})["port"]
        yield port
    finally:
        delete_neutron_network(network_id)


def delete_if_present(path: str) -> None:
    """Send a DELETE; a 404 means the resource is already gone, which is the goal."""
    try:
        neutron_request("DELETE", path)
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise


def delete_neutron_network(network_id: str) -> None:
    """Delete a network and its ports, retrying while Neutron still reports ports in use."""
    for attempt in range(5):
        try:
            ports = neutron_request("GET", f"/v2.0/ports?network_id={network_id}")["ports"]
            for port in ports:
                delete_if_present(f"/v2.0/ports/{port['id']}")
            delete_if_present(f"/v2.0/networks/{network_id}")
            return
        except urllib.error.HTTPError as exc:
            if exc.code != 409 or attempt == 4:
                raise AssertionError(f"failed to delete network {network_id}: "
                                     f"{exc.read().decode(errors='replace')}") from exc
            time.sleep(0.5)


def test_wait_ready_bound_neutron_port(driver, cleanup, neutron_port):
    assert neutron_port["binding:vif_type"] == "ovs"
    vif = Vif(port_id=neutron_port["id"], network_id=neutron_port["network_id"],
              endpoint_id=secrets.token_hex(32), mac_address=neutron_port["mac_address"],
              mtu=1442, vif_type="ovs", vif_details=neutron_port["binding:vif_details"])
    plugged(driver, cleanup, vif)
    started = time.monotonic()

    ready = driver.wait_ready(vif, timeout=10)

    assert ready is True
    assert time.monotonic() - started < 5
