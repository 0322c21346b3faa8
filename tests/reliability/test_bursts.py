"""Bursts of parallel Docker commands: container starts on one network, network
creates, and more containers than a /28 has addresses.

Each burst runs the Docker CLI from a thread pool, as `compose up --scale`
or a CI runner would. Afterwards the test waits for kuryrnet's background
deletes and checks that no port is left without a live endpoint. Timings
are appended to burst-results.jsonl in LOG_DIR.
"""

import ipaddress
import json
import time
from concurrent.futures import ThreadPoolExecutor

from kuryrnet.neutron import tags
from tests.reliability.support import LOG_DIR, is_pool_port, live_endpoints, neutron_network_of
from tests.stack import unique, wait_for

RESULTS = LOG_DIR / "burst-results.jsonl"
DOCKER_TIMEOUT = 240  # seconds for one Docker command of a burst


def record(name: str, **values) -> None:
    with open(RESULTS, "a") as results:
        results.write(json.dumps({"burst": name, **values}) + "\n")


def parallel(docker, commands: list[tuple[str, ...]], workers: int) -> tuple[list, float]:
    """Run Docker commands in parallel; return their results in order and the elapsed seconds."""
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda args: docker.run(*args, check=False, timeout=DOCKER_TIMEOUT),
                                commands))
    return results, time.monotonic() - started


def stray_ports(neutron, docker, neutron_network_id: str) -> list[str]:
    live = live_endpoints(docker)
    return [f"port {port['id']} {port['name']} device {port['device_id'] or 'none'}"
            for port in neutron.list("ports", network_id=neutron_network_id, tags=tags.OWNED)
            if port["device_id"] not in live
            and not is_pool_port(port)]


def wait_no_stray_ports(plugin, neutron, docker, neutron_network_id: str) -> None:
    """Wait up to 60 s for kuryrnet's background deletes, then require no stray port."""
    plugin.wait_idle()
    wait_for(lambda: not stray_ports(neutron, docker, neutron_network_id), timeout=60, interval=0.5,
             what=f"ports without a live endpoint on network {neutron_network_id} to go: "
                  f"{stray_ports(neutron, docker, neutron_network_id)}")


def test_parallel_container_starts(plugin, docker, neutron):
    plugin.start()
    network = unique("rel")
    subnet = ipaddress.ip_network("10.156.0.0/24")
    docker.network_create(network, "--subnet", str(subnet))
    neutron_network = neutron_network_of(neutron, docker, network)
    plugin.wait_idle()
    count = 50
    names = [unique("c") for _ in range(count)]
    docker.containers.extend(names)

    # The containers run until all have started, so that every address is
    # held at once: an address freed by a container that exited may be reused.
    results, elapsed = parallel(docker, [
        ("run", "--rm", "-d", "--name", name, "--network", network, docker.image, "sleep", "600")
        for name in names], workers=count)

    failures = [result.stderr.strip() for result in results if result.returncode != 0]
    assert failures == []
    addresses = [docker.exec(name, "ip", "-o", "-4", "addr", "show", "eth0").stdout.split()[3]
                 .split("/")[0] for name in names]
    assert len(set(addresses)) == count, sorted(addresses)
    assert all(ipaddress.ip_address(address) in subnet for address in addresses)
    status = plugin.daemon.status()["port_pool"]
    record("parallel docker run --rm -d", containers=count, seconds=round(elapsed, 1),
           pool_hits=status["hits"], pool_misses=status["misses"],
           background_failures=status["background_failures"])

    results, elapsed = parallel(docker, [("rm", "-f", name) for name in names], workers=count)
    assert [result.stderr.strip() for result in results if result.returncode != 0] == []
    record("parallel docker rm -f", containers=count, seconds=round(elapsed, 1))
    wait_no_stray_ports(plugin, neutron, docker, neutron_network["id"])


def test_parallel_network_creates(plugin, docker, neutron):
    plugin.start()
    count = 8
    names = [unique("rel") for _ in range(count)]
    docker.networks.extend(names)

    # Without --subnet, so all of them draw a prefix from the default subnet pool at once.
    results, elapsed = parallel(docker, [
        ("network", "create", "-d", docker.driver, "--ipam-driver", docker.driver, name)
        for name in names], workers=count)

    failures = [result.stderr.strip() for result in results if result.returncode != 0]
    assert failures == []
    subnets = [docker.inspect("network", name)["IPAM"]["Config"][0]["Subnet"] for name in names]
    assert len(set(subnets)) == count, subnets
    for name, subnet in zip(names, subnets):
        neutron_network = neutron_network_of(neutron, docker, name)
        [neutron_subnet] = neutron.list("subnets", network_id=neutron_network["id"])
        assert neutron_subnet["cidr"] == subnet
    record("parallel docker network create", networks=count, seconds=round(elapsed, 1))

    # Every network serves a container.
    results, _ = parallel(docker, [
        ("run", "--rm", "--network", name, docker.image, "ip", "-o", "-4", "addr", "show", "eth0")
        for name in names], workers=count)
    for result, subnet in zip(results, subnets):
        assert result.returncode == 0, result.stderr
        address = result.stdout.split()[3].split("/")[0]
        assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet)

    results, elapsed = parallel(docker, [("network", "rm", name) for name in names], workers=count)
    assert [result.stderr.strip() for result in results if result.returncode != 0] == []
    docker.networks.clear()
    record("parallel docker network rm", networks=count, seconds=round(elapsed, 1))


def test_burst_larger_than_subnet(plugin, docker, neutron):
    plugin.start()
    network = unique("rel")
    docker.network_create(network, "--subnet", "10.157.0.0/28")
    neutron_network = neutron_network_of(neutron, docker, network)
    [subnet] = neutron.list("subnets", network_id=neutron_network["id"])
    plugin.wait_idle()
    # A /28 has 14 host addresses; the gateway takes one.
    free = 13
    count = 20
    names = [unique("c") for _ in range(count)]
    docker.containers.extend(names)

    results, elapsed = parallel(docker, [
        ("run", "-d", "--name", name, "--network", network, docker.image, "sleep", "600")
        for name in names], workers=count)

    started = [name for name, result in zip(names, results) if result.returncode == 0]
    failures = [result.stderr.strip() for result in results if result.returncode != 0]
    record("parallel docker run on a /28", containers=count, started=len(started),
           failed=len(failures), seconds=round(elapsed, 1))
    assert len(started) == free, failures
    for message in failures:
        assert "no free address left" in message, message
        assert subnet["id"] in message and "10.157.0.0/28" in message, message
    addresses = [docker.inspect("container", name)["NetworkSettings"]["Networks"][network]["IPAddress"]
                 for name in started]
    assert len(set(addresses)) == free

    # The containers that failed left nothing: every port belongs to a live endpoint.
    wait_no_stray_ports(plugin, neutron, docker, neutron_network["id"])
    ports = neutron.list("ports", network_id=neutron_network["id"], tags=tags.OWNED)
    assert len(ports) == free

    results, _ = parallel(docker, [("rm", "-f", name) for name in names], workers=count)
    wait_no_stray_ports(plugin, neutron, docker, neutron_network["id"])


def test_full_subnet_names_network_and_subnet(plugin, docker, neutron):
    plugin.start()
    network = unique("rel")
    docker.network_create(network, "--subnet", "10.155.0.0/29")
    neutron_network = neutron_network_of(neutron, docker, network)
    subnet = neutron.list("subnets", network_id=neutron_network["id"])[0]
    plugin.wait_idle()

    started, failures = [], []
    for _ in range(8):
        name = unique("c")
        result = docker.container(name, "--network", network, check=False)
        if result.returncode == 0:
            started.append(name)
        else:
            failures.append(result.stderr)
    plugin.wait_idle()

    # A /29 has 6 host addresses; the gateway takes one.
    assert len(started) == 5, failures
    assert len(failures) == 3
    for message in failures:
        assert "10.155.0.0/29" in message, message
        assert subnet["id"] in message and neutron_network["id"] in message, message
        assert "no free address" in message, message
    live = {docker.inspect("container", name)["NetworkSettings"]["Networks"][network]["EndpointID"]
            for name in started}
    ports = neutron.list("ports", network_id=neutron_network["id"], tags=tags.OWNED)
    assert sorted(port["device_id"] for port in ports) == sorted(live)

    # An address freed is usable again.
    docker.run("rm", "-f", started.pop())
    plugin.wait_idle()
    docker.container(unique("c"), "--network", network)
