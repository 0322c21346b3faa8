"""LinuxBridgeDriver against real links, bridges and network namespaces.

The checks drive the `ip` command, so they observe the host with a tool
independent of the pyroute2 code under test. Every test uses random names and
removes what it created, also when it fails.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import uuid

import pytest

from kuryrnet import config
from kuryrnet.binding import interface_names
from kuryrnet.binding.base import Vif
from kuryrnet.binding.linux_bridge import LinuxBridgeDriver, bridge_name
from kuryrnet.errors import BindingError

# A TCP echo server for one connection. It prints "listening" once it accepts.
ECHO_SERVER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen(1)
server.settimeout(10)
print("listening", flush=True)
connection, _ = server.accept()
connection.sendall(connection.recv(64))
connection.close()
"""

ECHO_CLIENT = """
import socket, sys
client = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
client.sendall(b"kuryrnet")
print(client.recv(64).decode())
"""


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=30)


def random_endpoint_id() -> str:
    return secrets.token_hex(32)


def make_vif(vif_type: str, network_id: str | None = None, mtu: int = 1450,
             vif_details: dict | None = None) -> Vif:
    mac = "fa:16:3e:" + ":".join(secrets.token_hex(1) for _ in range(3))
    return Vif(port_id=str(uuid.uuid4()), network_id=network_id or str(uuid.uuid4()),
               endpoint_id=random_endpoint_id(), mac_address=mac, mtu=mtu,
               vif_type=vif_type, vif_details=vif_details or {})


def link_info(name: str, namespace: str | None = None) -> dict | None:
    """Return `ip -d -j link show` of `name` as a dict, or None when it does not exist."""
    prefix = ("ip", "-n", namespace) if namespace else ("ip",)
    result = run(*prefix, "-d", "-j", "link", "show", "dev", name, check=False)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout)[0]


def link_exists(name: str) -> bool:
    return link_info(name) is not None


def delete_link(name: str) -> None:
    run("ip", "link", "del", "dev", name, check=False)


def create_namespace() -> str:
    name = "kntest-" + secrets.token_hex(4)
    run("ip", "netns", "add", name)
    return name


def delete_namespace(name: str) -> None:
    run("ip", "netns", "del", name, check=False)


def move_into_namespace(link: str, namespace: str, address: str) -> None:
    """Move `link` into `namespace`, rename it eth0, give it `address` and bring it up."""
    run("ip", "link", "set", "dev", link, "netns", namespace)
    run("ip", "-n", namespace, "link", "set", "dev", link, "name", "eth0")
    run("ip", "-n", namespace, "addr", "add", address, "dev", "eth0")
    run("ip", "-n", namespace, "link", "set", "dev", "eth0", "up")
    run("ip", "-n", namespace, "link", "set", "dev", "lo", "up")


def tcp_echo(server_namespace: str, server_ip: str, client_namespace: str) -> str:
    """Send one TCP message from `client_namespace` to an echo server and return the reply."""
    port = "7777"
    server = subprocess.Popen(
        ["ip", "netns", "exec", server_namespace, sys.executable, "-c", ECHO_SERVER,
         server_ip, port],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "listening", server.stderr.read()
        client = run("ip", "netns", "exec", client_namespace, sys.executable, "-c",
                     ECHO_CLIENT, server_ip, port, check=False)
        assert client.returncode == 0, client.stderr
        return client.stdout.strip()
    finally:
        server.kill()
        server.wait()


@pytest.fixture
def conf():
    return config.load([], config_files=[])


@pytest.fixture
def driver(conf):
    return LinuxBridgeDriver(conf)


@pytest.fixture
def cleanup(driver, conf):
    """Collect vifs, links and namespaces to remove after the test, whatever its outcome."""
    created = {"vifs": [], "links": [], "namespaces": []}
    yield created
    for namespace in created["namespaces"]:
        delete_namespace(namespace)
    for vif in created["vifs"]:
        try:
            driver.unplug(vif)
        except BindingError:
            pass
        host, _ = interface_names(conf, vif.endpoint_id)
        delete_link(host)
        delete_link(bridge_name(vif))
    for link in created["links"]:
        delete_link(link)


def plugged(driver, cleanup, vif: Vif) -> Vif:
    cleanup["vifs"].append(vif)
    driver.plug(vif)
    return vif


def test_plug_creates_bridge_and_veth(conf, driver, cleanup):
    vif = plugged(driver, cleanup, make_vif("bridge", mtu=1400))
    host, container = interface_names(conf, vif.endpoint_id)

    bridge = link_info(bridge_name(vif))
    host_end = link_info(host)
    container_end = link_info(container)

    assert bridge is not None
    assert bridge["linkinfo"]["info_kind"] == "bridge"
    assert bridge["mtu"] == 1400
    assert "UP" in bridge["flags"]
    assert host_end["linkinfo"]["info_kind"] == "veth"
    assert host_end["master"] == bridge_name(vif)
    assert host_end["mtu"] == 1400
    assert "UP" in host_end["flags"]
    assert host_end["ifalias"] == f"kuryrnet:bridge:{vif.endpoint_id}:{vif.port_id}"
    assert container_end["address"] == vif.mac_address
    assert container_end["mtu"] == 1400


def test_two_endpoints_talk_across_bridge(conf, driver, cleanup):
    network_id = str(uuid.uuid4())
    first = plugged(driver, cleanup, make_vif("bridge", network_id=network_id))
    second = plugged(driver, cleanup, make_vif("bridge", network_id=network_id))
    namespaces = [create_namespace(), create_namespace()]
    cleanup["namespaces"].extend(namespaces)

    move_into_namespace(interface_names(conf, first.endpoint_id)[1], namespaces[0],
                        "10.251.7.1/24")
    move_into_namespace(interface_names(conf, second.endpoint_id)[1], namespaces[1],
                        "10.251.7.2/24")

    assert link_info("eth0", namespaces[0])["address"] == first.mac_address
    assert link_info("eth0", namespaces[1])["address"] == second.mac_address
    assert tcp_echo(namespaces[0], "10.251.7.1", namespaces[1]) == "kuryrnet"


def test_replug_keeps_existing_veth(conf, driver, cleanup):
    vif = plugged(driver, cleanup, make_vif("bridge"))
    host, _ = interface_names(conf, vif.endpoint_id)
    index_before = link_info(host)["ifindex"]

    driver.plug(vif)

    assert link_info(host)["ifindex"] == index_before
    assert link_info(host)["master"] == bridge_name(vif)


def test_replug_after_move_into_namespace(conf, driver, cleanup):
    vif = plugged(driver, cleanup, make_vif("bridge"))
    host, container = interface_names(conf, vif.endpoint_id)
    namespace = create_namespace()
    cleanup["namespaces"].append(namespace)
    move_into_namespace(container, namespace, "10.251.8.1/24")

    driver.plug(vif)

    assert link_info(host)["master"] == bridge_name(vif)
    assert link_info("eth0", namespace)["address"] == vif.mac_address


def test_replug_corrects_mac_and_mtu(conf, driver, cleanup):
    vif = plugged(driver, cleanup, make_vif("bridge", mtu=1450))
    host, container = interface_names(conf, vif.endpoint_id)
    run("ip", "link", "set", "dev", host, "mtu", "1300")
    run("ip", "link", "set", "dev", container, "mtu", "1300", "address", "fa:16:3e:00:00:01")

    driver.plug(vif)

    assert link_info(host)["mtu"] == 1450
    assert link_info(container)["mtu"] == 1450
    assert link_info(container)["address"] == vif.mac_address


def test_unplug_keeps_bridge_until_last_port(conf, driver, cleanup):
    network_id = str(uuid.uuid4())
    first = plugged(driver, cleanup, make_vif("bridge", network_id=network_id))
    second = plugged(driver, cleanup, make_vif("bridge", network_id=network_id))
    bridge = bridge_name(first)

    driver.unplug(first)

    assert not link_exists(interface_names(conf, first.endpoint_id)[0])
    assert not link_exists(interface_names(conf, first.endpoint_id)[1])
    assert link_exists(bridge)

    driver.unplug(second)

    assert not link_exists(interface_names(conf, second.endpoint_id)[0])
    assert not link_exists(bridge)


def test_unplug_twice_succeeds(driver, cleanup):
    vif = plugged(driver, cleanup, make_vif("bridge"))

    driver.unplug(vif)
    driver.unplug(vif)

    assert not link_exists(bridge_name(vif))


def test_unplug_never_plugged_succeeds(driver):
    driver.unplug(make_vif("bridge"))


def test_unplug_keeps_foreign_bridge(driver, cleanup):
    foreign = "kntbr" + secrets.token_hex(4)
    cleanup["links"].append(foreign)
    run("ip", "link", "add", foreign, "type", "bridge")
    vif = plugged(driver, cleanup, make_vif("bridge", vif_details={"bridge_name": foreign}))

    driver.unplug(vif)

    assert link_exists(foreign)


def test_plug_rejects_name_taken_by_other_device(conf, driver, cleanup):
    vif = make_vif("bridge")
    cleanup["vifs"].append(vif)
    host, _ = interface_names(conf, vif.endpoint_id)
    run("ip", "link", "add", host, "type", "bridge")

    with pytest.raises(BindingError, match=f"interface {host} exists but is a bridge"):
        driver.plug(vif)

    assert not link_exists(bridge_name(vif))


def test_list_ports_returns_plugged(conf, driver, cleanup):
    vif = plugged(driver, cleanup, make_vif("bridge"))
    host, _ = interface_names(conf, vif.endpoint_id)

    ports = {port.host_ifname: port for port in driver.list_ports()}

    assert host in ports
    assert ports[host].endpoint_id == vif.endpoint_id
    assert ports[host].port_id == vif.port_id

    driver.unplug(vif)

    assert host not in {port.host_ifname for port in driver.list_ports()}


def test_concurrent_plug_and_unplug_on_one_bridge(conf, driver, cleanup):
    network_id = str(uuid.uuid4())
    vifs = [make_vif("bridge", network_id=network_id) for _ in range(8)]
    cleanup["vifs"].extend(vifs)
    errors = []

    def cycle(vif: Vif) -> None:
        try:
            for _ in range(3):
                driver.plug(vif)
                driver.unplug(vif)
            driver.plug(vif)
        except BindingError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=cycle, args=(vif,)) for vif in vifs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    bridge = bridge_name(vifs[0])
    for vif in vifs:
        assert link_info(interface_names(conf, vif.endpoint_id)[0])["master"] == bridge

    for vif in vifs:
        driver.unplug(vif)

    assert not link_exists(bridge)
