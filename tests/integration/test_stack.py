"""The local stack without Docker: Neutron ports bound to this host's OVN
chassis carry traffic between network namespaces.

Needs `make stack-up`, which writes .stack/env. Without it the tests skip,
or fail when KURYRNET_REQUIRE_STACK=1. Each namespace plays a container: a
veth whose host end sits on br-int with the Neutron port's id as iface-id,
and whose other end has the port's MAC and IP address. Names carry a random
suffix, and everything created here is removed again, also when a test fails.
`stack/stack down` deletes namespaces with the prefix "kstest-" that a killed
run left behind.
"""

from __future__ import annotations

import ipaddress
import os
import pathlib
import secrets
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass

import openstack
import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENV_FILE = ROOT / ".stack" / "env"
NETNS_PREFIX = "kstest-"
CIDR = "10.250.0.0/24"
ACTIVE_TIMEOUT = 60.0

pytestmark = pytest.mark.stack


def skip_or_fail(message: str):
    if os.environ.get("KURYRNET_REQUIRE_STACK") == "1":
        pytest.fail(message)
    pytest.skip(message)


def read_stack_env() -> dict[str, str]:
    """Return the variables that .stack/env exports."""
    if not ENV_FILE.exists():
        skip_or_fail(f"the local stack is not up ({ENV_FILE} is missing); run `make stack-up`")
    env = {}
    for line in ENV_FILE.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


def run(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=timeout)


def ping_command() -> list[str]:
    if shutil.which("ping"):
        return ["ping"]
    # Debian's busybox-static, which `stack/stack install` installs.
    return ["/bin/busybox", "ping"]


def ping(namespace: str, address: str, count: int = 1) -> bool:
    result = run("ip", "netns", "exec", namespace, *ping_command(), "-c", str(count), "-W", "1",
                 address, check=False)
    return result.returncode == 0


@dataclass
class Guest:
    """A network namespace attached to br-int as the given Neutron port."""

    namespace: str
    host_ifname: str
    port_id: str
    mac: str
    ip: str


class Topology:
    """Neutron resources and host interfaces of one test module, removed in reverse order."""

    def __init__(self, conn, env: dict[str, str]):
        self.conn = conn
        self.env = env
        self.suffix = secrets.token_hex(3)
        self.bridge = env.get("INTEGRATION_BRIDGE", "br-int")
        self.cleanups = []

    def network(self, name: str):
        network = self.conn.network.create_network(name=f"kstest-{name}-{self.suffix}")
        self.cleanups.append(lambda: self.conn.network.delete_network(network, ignore_missing=True))
        subnet = self.conn.network.create_subnet(
            network_id=network.id, ip_version=4, cidr=CIDR, name=f"kstest-{name}-{self.suffix}")
        self.cleanups.append(lambda: self.conn.network.delete_subnet(subnet, ignore_missing=True))
        return network, subnet

    def guest(self, network, subnet, index: int, ip: str) -> Guest:
        port = self.conn.network.create_port(
            network_id=network.id,
            name=f"kstest-{self.suffix}-{index}",
            fixed_ips=[{"subnet_id": subnet.id, "ip_address": ip}],
            binding_host_id=self.env["STACK_HOST_ID"],
        )
        self.cleanups.append(lambda: self.conn.network.delete_port(port, ignore_missing=True))

        namespace = f"{NETNS_PREFIX}{self.suffix}-{index}"
        host_ifname = f"kst{self.suffix}h{index}"
        guest_ifname = f"kst{self.suffix}g{index}"
        prefix = ipaddress.ip_network(CIDR).prefixlen

        run("ip", "netns", "add", namespace)
        self.cleanups.append(lambda: run("ip", "netns", "delete", namespace, check=False))
        run("ip", "link", "add", host_ifname, "type", "veth", "peer", "name", guest_ifname)
        self.cleanups.append(lambda: run("ip", "link", "delete", host_ifname, check=False))
        run("ip", "link", "set", guest_ifname, "netns", namespace)
        run("ip", "-n", namespace, "link", "set", guest_ifname, "address", port.mac_address,
            "mtu", str(network.mtu))
        run("ip", "-n", namespace, "address", "add", f"{ip}/{prefix}", "dev", guest_ifname)
        run("ip", "-n", namespace, "link", "set", guest_ifname, "up")
        run("ip", "-n", namespace, "link", "set", "lo", "up")

        run("ovs-vsctl", "--timeout=10", "add-port", self.bridge, host_ifname,
            "--", "set", "Interface", host_ifname,
            f"external_ids:iface-id={port.id}",
            f"external_ids:attached-mac={port.mac_address}",
            "external_ids:iface-status=active")
        self.cleanups.append(lambda: run("ovs-vsctl", "--timeout=10", "--if-exists", "del-port",
                                         self.bridge, host_ifname, check=False))
        run("ip", "link", "set", host_ifname, "mtu", str(network.mtu), "up")
        return Guest(namespace, host_ifname, port.id, port.mac_address, ip)

    def cleanup(self):
        errors = []
        for step in reversed(self.cleanups):
            try:
                step()
            except Exception as error:  # keep removing the rest
                errors.append(repr(error))
        self.cleanups.clear()
        assert not errors, f"cleanup failed: {errors}"


def wait_until_active(conn, port_id: str) -> str:
    deadline = time.monotonic() + ACTIVE_TIMEOUT
    status = None
    while time.monotonic() < deadline:
        status = conn.network.get_port(port_id).status
        if status == "ACTIVE":
            return status
        time.sleep(0.2)
    return status


@pytest.fixture(scope="module")
def stack_env():
    env = read_stack_env()
    try:
        requests.get(env["NEUTRON_URL"], timeout=5).raise_for_status()
    except requests.RequestException as error:
        skip_or_fail(f"Neutron at {env['NEUTRON_URL']} does not answer ({error}); "
                     f"check `stack/stack status`")
    return env


@pytest.fixture(scope="module")
def conn(stack_env):
    config = openstack.config.OpenStackConfig(config_files=[stack_env["OS_CLIENT_CONFIG_FILE"]])
    connection = openstack.connection.Connection(
        config=config.get_one(cloud=stack_env["OS_CLOUD"]))
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def guests(conn, stack_env):
    """Guests a and b on one network, guest c on another network with the same CIDR."""
    topology = Topology(conn, stack_env)
    try:
        network, subnet = topology.network("one")
        other_network, other_subnet = topology.network("two")
        guests = {
            "a": topology.guest(network, subnet, 1, "10.250.0.11"),
            "b": topology.guest(network, subnet, 2, "10.250.0.12"),
            "c": topology.guest(other_network, other_subnet, 3, "10.250.0.13"),
        }
        yield guests
    finally:
        topology.cleanup()


def test_ports_bound_to_chassis(conn, stack_env, guests):
    for guest in guests.values():
        port = conn.network.get_port(guest.port_id)
        assert port.binding_host_id == stack_env["STACK_HOST_ID"]
        assert port.binding_vif_type == "ovs", f"port {guest.port_id} binding failed"


def test_ports_become_active(conn, guests):
    for name, guest in guests.items():
        status = wait_until_active(conn, guest.port_id)
        assert status == "ACTIVE", f"port of guest {name} is {status} after {ACTIVE_TIMEOUT:.0f} s"


def test_ovn_installed_marks_interfaces(guests):
    for guest in guests.values():
        value = run("ovs-vsctl", "--timeout=10", "--if-exists", "get", "Interface",
                    guest.host_ifname, "external_ids:ovn-installed").stdout.strip()
        assert value == '"true"', f"{guest.host_ifname} has ovn-installed={value!r}"


def test_ping_on_same_network(conn, guests):
    for guest in guests.values():
        assert wait_until_active(conn, guest.port_id) == "ACTIVE"
    # The first packets may go while ARP resolves; allow a few seconds.
    deadline = time.monotonic() + 10
    while not ping(guests["a"].namespace, guests["b"].ip):
        assert time.monotonic() < deadline, "guest a cannot ping guest b on the same network"
    assert ping(guests["b"].namespace, guests["a"].ip, count=3)


def test_other_network_unreachable(conn, guests):
    for guest in guests.values():
        assert wait_until_active(conn, guest.port_id) == "ACTIVE"
    # Positive control first, so that a broken data path does not pass
    # this test by accident.
    deadline = time.monotonic() + 10
    while not ping(guests["a"].namespace, guests["b"].ip):
        assert time.monotonic() < deadline, "guest a cannot ping guest b on the same network"
    assert not ping(guests["a"].namespace, guests["c"].ip, count=2)
    assert not ping(guests["c"].namespace, guests["a"].ip, count=2)
