"""Backend faults: the daemon reaches Neutron through tests/tools/fault_proxy.py,
which answers with 500 or 503, resets or refuses connections, or delays.

Idempotent requests are retried with bounded backoff (`[neutron] retries`
and `retry_backoff`); a call that cannot finish returns a clear error to
Docker and leaves no Neutron resource behind.
"""

import threading
import time

import pytest

from kuryrnet.neutron import tags
from tests.reliability.support import live_endpoints, neutron_network_of, write_config
from tests.stack import read_env, unique, wait_for
from tests.tools.fault_proxy import FaultProxy

PORTS = r"^/v2\.0/ports"
SUBNETS = r"^/v2\.0/subnets"


@pytest.fixture
def proxy():
    with FaultProxy(read_env()["NEUTRON_URL"]) as fault_proxy:
        yield fault_proxy


@pytest.fixture
def configure(plugin_config, proxy):
    """Return a function that points this test's daemons at the proxy, with extra settings."""
    def write(neutron: dict | None = None, **sections):
        write_config(plugin_config, {"neutron": {"endpoint_override": proxy.url, **(neutron or {})},
                                     **sections})
    write()
    return write


def endpoint_ports(neutron, docker, network: str) -> list[dict]:
    neutron_network = neutron_network_of(neutron, docker, network)
    return [port for port in neutron.list("ports", network_id=neutron_network["id"], tags=tags.OWNED)
            if tags.POOL_MEMBER not in port.get("tags", []) or port["device_id"]]


def run_container(docker, network: str, check: bool = True):
    return docker.run("run", "--rm", "--network", network, docker.image, "ip", "-o", "-4", "addr",
                      "show", "eth0", check=check)


def test_transient_errors_of_idempotent_calls_are_retried(proxy, plugin, configure, docker):
    plugin.start()
    proxy.fail(503, method="GET", count=3)
    proxy.fail(500, method="PUT", count=2)

    network = unique("rel")
    docker.network_create(network, "--subnet", "10.158.0.0/24")
    run_container(docker, network)

    assert proxy.outcomes("GET").count("status 503") == 3
    assert proxy.outcomes("PUT").count("status 500") == 2
    log = plugin.log_text()
    assert "failed (status 503); retry 1 of 4" in log
    assert "failed (status 500); retry 1 of 4" in log


def test_refused_connections_are_retried(proxy, plugin, configure, docker):
    plugin.start()
    network = unique("rel")

    proxy.refuse()
    threading.Timer(1.0, proxy.accept).start()
    docker.network_create(network, "--subnet", "10.158.1.0/24")
    run_container(docker, network)

    log = plugin.log_text()
    assert "Connection refused" in log
    assert "; retry 1 of 4" in log


def test_failed_subnet_create_rolls_back(proxy, plugin, configure, docker):
    plugin.start()
    rule = proxy.fail(500, method="POST", path=SUBNETS, count=None)
    network = unique("rel")

    result = docker.network_create(network, "--subnet", "10.158.2.0/24", check=False)

    assert result.returncode != 0
    assert "could not create subnet 10.158.2.0/24" in result.stderr, result.stderr
    assert "injected by fault_proxy" in result.stderr  # Neutron's own message
    assert rule.hits == 1  # a POST is not retried: Neutron may have done it
    plugin.wait_idle()
    plugin.wait_no_leftovers(docker)

    proxy.clear()
    docker.networks.remove(network)  # not created
    docker.network_create(network, "--subnet", "10.158.2.0/24")
    run_container(docker, network)


def test_failed_port_create_leaves_no_port(proxy, plugin, configure, docker, neutron):
    plugin.start()
    network = unique("rel")
    docker.network_create(network, "--subnet", "10.158.3.0/24", "-o",
                          "kuryrnet.port_pool.enabled=false")
    proxy.fail(500, method="POST", path=PORTS, count=None)

    result = run_container(docker, network, check=False)

    assert result.returncode != 0
    assert "Neutron POST /ports failed with 500" in result.stderr, result.stderr
    assert endpoint_ports(neutron, docker, network) == []

    proxy.clear()
    run_container(docker, network)


def test_reset_after_port_create_leaves_no_port(proxy, plugin, configure, docker, neutron):
    """Neutron creates the port, but the answer is lost: kuryrnet must not strand the port."""
    plugin.start()
    network = unique("rel")
    docker.network_create(network, "--subnet", "10.158.4.0/24", "-o",
                          "kuryrnet.port_pool.enabled=false")
    proxy.reset(method="POST", path=PORTS, count=1, after_forward=True)

    run_container(docker, network)

    assert proxy.outcomes("POST", PORTS) == ["reset after 201"]
    assert "Neutron created 1 port(s) although POST /ports failed" in plugin.log_text()
    plugin.wait_idle()
    wait_for(lambda: not endpoint_ports(neutron, docker, network), timeout=30,
             what="the container's port to go")


def test_slow_answers_within_timeout_work(proxy, plugin, configure, docker):
    plugin.start()
    proxy.delay(0.5, count=None)

    started = time.monotonic()
    network = unique("rel")
    docker.network_create(network, "--subnet", "10.158.5.0/24")
    run_container(docker, network)
    elapsed = time.monotonic() - started

    delayed = [outcome for outcome in proxy.outcomes() if outcome.startswith("delayed")]
    assert len(delayed) >= 5
    assert elapsed >= 2.5
    assert "; retry " not in plugin.log_text()


def test_read_timeout_is_retried(proxy, plugin, configure, docker):
    configure(neutron={"request_timeout": 2})
    plugin.start()
    network = unique("rel")
    docker.network_create(network, "--subnet", "10.158.6.0/24")
    plugin.wait_idle()
    before = len(proxy.log)
    proxy.delay(4.0, method="GET", count=1)

    docker.network_create(unique("rel"), "--subnet", "10.158.8.0/24")

    # The proxy logs a request after sending its response: the delayed GET shows up
    # about 2 s after the client gave up on it and retried.
    def delayed_get_logged():
        return any(entry.method == "GET" and entry.outcome.startswith("delayed 4.0 s")
                   for entry in proxy.log[before:])
    wait_for(delayed_get_logged, timeout=10, what="the delayed GET to reach the proxy's log")
    assert "; retry 1 of 4" in plugin.log_text()


def test_outage_during_burst(proxy, plugin, configure, docker, neutron):
    """Neutron goes away for a few seconds while containers start: each starts or fails cleanly."""
    plugin.start()
    network = unique("rel")
    docker.network_create(network, "--subnet", "10.158.7.0/24")
    plugin.wait_idle()
    names = [unique("c") for _ in range(10)]
    docker.containers.extend(names)
    results = {}

    def start(name):
        results[name] = docker.run("run", "-d", "--name", name, "--network", network, docker.image,
                                   "sleep", "600", check=False, timeout=240)

    threads = [threading.Thread(target=start, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
        time.sleep(0.2)
        if thread is threads[4]:
            proxy.refuse()
            threading.Timer(6.0, proxy.accept).start()
    for thread in threads:
        thread.join(300)

    for name, result in results.items():
        if result.returncode == 0:
            settings = docker.inspect("container", name)["NetworkSettings"]["Networks"][network]
            assert settings["IPAddress"] in docker.exec(name, "ip", "-o", "addr").stdout
        else:
            assert result.stderr.strip() and "Traceback" not in result.stderr
            docker.run("rm", "-f", name)
    plugin.wait_idle()
    live = live_endpoints(docker)

    def stray():
        return [f"{port['id']} {port['name']} device {port['device_id'] or '-'}"
                for port in endpoint_ports(neutron, docker, network) if port["device_id"] not in live]

    deadline = time.monotonic() + 90
    while stray() and time.monotonic() < deadline:
        time.sleep(1)
    assert stray() == []
