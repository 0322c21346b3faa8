"""End-to-end: the real Docker engine drives kuryrnet against the stack's Neutron and OVN."""

import ipaddress
import json

import pytest

from tests.e2e.conftest import ping
from tests.stack import unique, wait_for


def container_address(docker, name, network, family="IPAddress"):
    return docker.inspect("container", name)["NetworkSettings"]["Networks"][network][family]


def neutron_port_of(neutron, docker, name, network):
    endpoint = docker.inspect("container", name)["NetworkSettings"]["Networks"][network]["EndpointID"]
    ports = neutron.list("ports", device_id=endpoint)
    assert len(ports) == 1, f"endpoint {endpoint} has {len(ports)} Neutron ports"
    return ports[0]


def test_two_containers_ping_through_ovn(docker, neutron):
    network = unique("kn")
    docker.network_create(network, "--subnet", "10.61.0.0/24")
    first, second = unique("c1"), unique("c2")
    docker.container(first, "--network", network)
    docker.container(second, "--network", network)

    ping(docker, first, container_address(docker, second, network))

    for name in (first, second):
        links = docker.exec(name, "ip", "-o", "link").stdout.splitlines()
        assert [line.split(":")[1].strip().split("@")[0] for line in links] == ["lo", "eth0"]
        routes = docker.exec(name, "ip", "route").stdout
        assert "default via 10.61.0.1 dev eth0" in routes
        port = wait_for(lambda n=name: (p := neutron_port_of(neutron, docker, n, network))["device_id"] and p,
                        timeout=20, what=f"the port of {name} to carry its endpoint id")
        assert port["status"] == "ACTIVE"
        assert port["fixed_ips"][0]["ip_address"] == container_address(docker, name, network)


def test_interface_mtu_is_network_mtu(docker, neutron):
    network = unique("kn")
    docker.network_create(network, "--subnet", "10.62.0.0/24")
    name = unique("c")
    docker.container(name, "--network", network)
    neutron_network = neutron.list("networks", tags=f"kuryrnet.net.{docker.inspect('network', network)['Id']}")[0]

    mtu = int(docker.exec(name, "cat", "/sys/class/net/eth0/mtu").stdout)

    assert mtu == neutron_network["mtu"]
    assert mtu < 1500


def test_fixed_ip_and_mac_are_honoured(docker, neutron):
    network = unique("kn")
    docker.network_create(network, "--subnet", "10.63.0.0/24")
    name = unique("c")
    docker.container(name, "--network", network, "--ip", "10.63.0.50", "--mac-address", "02:42:0a:3f:00:32")

    assert "10.63.0.50/24" in docker.exec(name, "ip", "-o", "addr", "show", "eth0").stdout
    assert "02:42:0a:3f:00:32" in docker.exec(name, "ip", "link", "show", "eth0").stdout
    port = neutron_port_of(neutron, docker, name, network)
    assert port["mac_address"] == "02:42:0a:3f:00:32"
    assert port["fixed_ips"][0]["ip_address"] == "10.63.0.50"


def test_fixed_ip_taken_again_after_removal(docker):
    network = unique("kn")
    docker.network_create(network, "--subnet", "10.64.0.0/24")
    first = unique("c")
    docker.container(first, "--network", network, "--ip", "10.64.0.9")
    docker.run("rm", "-f", first)
    second = unique("c")
    docker.container(second, "--network", network, "--ip", "10.64.0.9")
    assert container_address(docker, second, network) == "10.64.0.9"


def test_dual_stack_network(docker):
    network = unique("kn")
    docker.network_create(network, "--subnet", "10.65.0.0/24", "--ipv6", "--subnet", "fd65::/64")
    first, second = unique("c1"), unique("c2")
    docker.container(first, "--network", network)
    docker.container(second, "--network", network)

    v6 = container_address(docker, second, network, "GlobalIPv6Address")
    assert ipaddress.ip_address(v6) in ipaddress.ip_network("fd65::/64")
    ping(docker, first, container_address(docker, second, network))
    wait_for(lambda: ping(docker, first, v6, check=False).returncode == 0, timeout=15,
             what="IPv6 ping between containers")


def test_ipv6_only_network(docker):
    network = unique("kn")
    docker.network_create(network, "--ipv6", "--subnet", "fd66::/64", "--gateway", "fd66::1")
    first, second = unique("c1"), unique("c2")
    docker.container(first, "--network", network)
    docker.container(second, "--network", network)
    v6 = container_address(docker, second, network, "GlobalIPv6Address")
    wait_for(lambda: ping(docker, first, v6, check=False).returncode == 0, timeout=15,
             what="IPv6 ping between containers")


def test_network_without_subnet_gets_fresh_prefix(docker):
    first, second = unique("kn"), unique("kn")
    docker.network_create(first)
    docker.network_create(second)
    subnets = [docker.inspect("network", n)["IPAM"]["Config"][0]["Subnet"] for n in (first, second)]
    assert subnets[0] != subnets[1]
    name = unique("c")
    docker.container(name, "--network", first)
    assert ipaddress.ip_address(container_address(docker, name, first)) in ipaddress.ip_network(subnets[0])


def test_network_without_gateway_uses_neutron_gateway(docker):
    network = unique("kn")
    docker.network_create(network, "--subnet", "10.67.0.0/24")
    name = unique("c")
    docker.container(name, "--network", network)
    assert "default via 10.67.0.1 dev eth0" in docker.exec(name, "ip", "route").stdout


def test_existing_neutron_network_and_subnet(docker, neutron):
    net = neutron.create("networks", {"name": unique("existing")})
    try:
        subnet = neutron.create("subnets", {"network_id": net["id"], "ip_version": 4,
                                            "cidr": "10.68.0.0/24", "name": unique("existing-sub")})
        network = unique("kn")
        docker.network_create(network, "-o", f"neutron.net.uuid={net['id']}",
                              "--ipam-opt", f"neutron.subnet.uuid={subnet['id']}",
                              "--subnet", "10.68.0.0/24")
        first, second = unique("c1"), unique("c2")
        docker.container(first, "--network", network)
        docker.container(second, "--network", network)
        ping(docker, first, container_address(docker, second, network))
        docker.cleanup()
        assert neutron.show("networks", net["id"]) is not None
        assert neutron.show("subnets", subnet["id"]) is not None
    finally:
        wait_for(lambda: not neutron.list("ports", network_id=net["id"], tags="kuryrnet"), timeout=30,
                 what="kuryrnet's ports on the existing network to go")
        neutron.delete("networks", net["id"])


def test_connect_and_disconnect(docker):
    first_net, second_net = unique("kn"), unique("kn")
    docker.network_create(first_net, "--subnet", "10.69.0.0/24")
    docker.network_create(second_net, "--subnet", "10.70.0.0/24")
    name, peer = unique("c"), unique("peer")
    docker.container(name, "--network", first_net)
    docker.container(peer, "--network", second_net)

    docker.run("network", "connect", "--ip", "10.70.0.200", second_net, name)
    assert "10.70.0.200" in docker.exec(name, "ip", "-o", "addr").stdout
    ping(docker, name, container_address(docker, peer, second_net))

    docker.run("network", "disconnect", second_net, name)
    assert "10.70.0.200" not in docker.exec(name, "ip", "-o", "addr").stdout


def tcp_connects(docker, container, address, port) -> bool:
    result = docker.exec(container, "sh", "-c", f"echo | nc -w 3 {address} {port}", check=False)
    return result.returncode == 0


def test_exposed_port_reachable_across_router(docker, neutron):
    first_net, second_net = unique("kn"), unique("kn")
    docker.network_create(first_net, "--subnet", "10.71.0.0/24")
    docker.network_create(second_net, "--subnet", "10.72.0.0/24")
    router = neutron.create("routers", {"name": unique("kuryrnet-test-router")})
    attached = []
    try:
        for net in (first_net, second_net):
            docker_id = docker.inspect("network", net)["Id"]
            subnet = neutron.list("subnets", tags=f"kuryrnet.net.{docker_id}")[0]
            neutron.request("PUT", f"/routers/{router['id']}/add_router_interface",
                            {"subnet_id": subnet["id"]})
            attached.append(subnet["id"])
        server, client, neighbour = unique("server"), unique("client"), unique("neighbour")
        # Port 8080 is exposed, 9090 is not; both are served.
        docker.container(server, "--network", first_net, "--expose", "8080",
                         command=("sh", "-c", "httpd -p 9090 -h /; httpd -f -p 8080 -h /"))
        docker.container(client, "--network", second_net)
        docker.container(neighbour, "--network", first_net)
        address = container_address(docker, server, first_net)

        wait_for(lambda: tcp_connects(docker, client, address, 8080), timeout=30,
                 what="the exposed port to answer across the router")
        assert not tcp_connects(docker, client, address, 9090)
        assert tcp_connects(docker, neighbour, address, 9090)
    finally:
        for name in docker.containers:
            docker.run("rm", "-f", name, check=False)
        for subnet_id in attached:
            neutron.request("PUT", f"/routers/{router['id']}/remove_router_interface",
                            {"subnet_id": subnet_id})
        neutron.delete("routers", router["id"])


def test_daemon_restart_between_create_and_run(docker, daemon):
    network = unique("kn")
    docker.network_create(network, "--subnet", "10.73.0.0/24")
    daemon.stop()
    daemon.start()
    first, second = unique("c1"), unique("c2")
    docker.container(first, "--network", network)
    docker.container(second, "--network", network)
    ping(docker, first, container_address(docker, second, network))


def test_status_reports_port_pool(daemon):
    status = daemon.status()
    assert "port_pool" in status
    json.dumps(status)


def test_rich_network_options_reach_neutron(docker, neutron):
    network = unique("kn")
    docker.network_create(network, "--subnet", "10.74.0.0/24", "--ip-range", "10.74.0.128/25",
                          "--gateway", "10.74.0.254", "--aux-address", "host1=10.74.0.10")
    docker_id = docker.inspect("network", network)["Id"]
    subnet = neutron.list("subnets", tags=f"kuryrnet.net.{docker_id}")[0]
    assert subnet["gateway_ip"] == "10.74.0.254"
    assert subnet["allocation_pools"] == [{"start": "10.74.0.129", "end": "10.74.0.253"}]
    aux = neutron.list("ports", network_id=subnet["network_id"], device_owner="kuryr:aux")
    assert [p["fixed_ips"][0]["ip_address"] for p in aux] == ["10.74.0.10"]

    name = unique("c")
    docker.container(name, "--network", network)
    address = ipaddress.ip_address(container_address(docker, name, network))
    assert address in ipaddress.ip_network("10.74.0.128/25")
    assert "default via 10.74.0.254 dev eth0" in docker.exec(name, "ip", "route").stdout


def test_host_end_carries_network_mtu(docker, neutron, kuryr_conf):
    from kuryrnet.binding import interface_names

    network = unique("kn")
    docker.network_create(network, "--subnet", "10.75.0.0/24")
    name = unique("c")
    docker.container(name, "--network", network)
    endpoint = docker.inspect("container", name)["NetworkSettings"]["Networks"][network]["EndpointID"]
    host_ifname, _ = interface_names(kuryr_conf, endpoint)

    with open(f"/sys/class/net/{host_ifname}/mtu") as handle:
        host_mtu = int(handle.read())

    assert host_mtu == int(docker.exec(name, "cat", "/sys/class/net/eth0/mtu").stdout)
