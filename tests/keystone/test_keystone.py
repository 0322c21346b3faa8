"""kuryrnet against the stack's Keystone (`STACK_KEYSTONE=1 stack/stack up`, or
`make test-keystone`): project isolation, token renewal, credentials in logs.

Skipped unless .stack/env says STACK_MODE=keystone. The stack has two member
projects, A and B; the daemons here log in as project A's kuryrnet user
(roles member and service), except the token renewal test, which uses the
stack's kuryr.conf (admin).
"""

import datetime
import os
import threading
import time

import openstack
import pytest

from tests.reliability.support import Plugin, docker_client, write_config
from tests.stack import STACK_DIR, read_env, unique
from tests.tools.fault_proxy import FaultProxy

# The user kuryrnet runs as in project A. It has the `service` role, which
# Neutron requires before it lets a caller bind ports to a host.
PROJECT_A = {"username": "kuryrnet-agent-a", "password": "kuryrnet-agent-a-password",
             "project_name": "kuryrnet-project-a"}
PASSWORDS = (PROJECT_A["password"], "kuryrnet-user-a-password", "kuryrnet-user-b-password")
ADMIN_PASSWORD = "kuryrnet-admin-password"


@pytest.fixture(scope="module")
def stack_env():
    env = read_env()
    if env.get("STACK_MODE") != "keystone":
        pytest.skip("the stack runs without Keystone; run `make test-keystone`")
    os.environ["OS_CLIENT_CONFIG_FILE"] = env["OS_CLIENT_CONFIG_FILE"]
    return env


@pytest.fixture(scope="module")
def clouds(stack_env):
    connections = {name: openstack.connect(cloud=f"kuryrnet-{name}")
                   for name in ("admin", "project-a", "project-b")}
    yield connections
    for connection in connections.values():
        connection.close()


@pytest.fixture
def project_b_networks(clouds):
    """A private network of project B and a shared one, each with a subnet."""
    admin, project_b = clouds["admin"], clouds["project-b"]
    project_b_id = project_b.current_project_id
    private = project_b.network.create_network(name=unique("kuryrnet-b-private"))
    shared = admin.network.create_network(name=unique("kuryrnet-b-shared"), shared=True,
                                          project_id=project_b_id)
    try:
        subnets = {
            "private": project_b.network.create_subnet(network_id=private.id, ip_version=4,
                                                       cidr="10.160.0.0/24", name=unique("b-sub")),
            "shared": admin.network.create_subnet(network_id=shared.id, ip_version=4,
                                                  cidr="10.160.1.0/24", name=unique("b-sub"),
                                                  project_id=project_b_id),
        }
        yield {"private": private, "shared": shared, "subnets": subnets}
    finally:
        for network in (private, shared):
            for port in admin.network.ports(network_id=network.id):
                admin.network.delete_port(port)
            admin.network.delete_network(network, ignore_missing=True)


@pytest.fixture
def project_a_plugin(request, stack_env, tmp_path):
    config = write_config(tmp_path / "project-a.conf", {"neutron": {
        "auth_type": "password", "auth_url": stack_env["OS_AUTH_URL"],
        "user_domain_name": "Default", "project_domain_name": "Default", **PROJECT_A}})
    plugin = Plugin(stack_env, config, f"keystone-{request.node.name}")
    yield plugin
    plugin.stop()


@pytest.fixture
def docker(stack_env, project_a_plugin):
    client = docker_client(stack_env)
    yield client
    if not project_a_plugin.alive():
        project_a_plugin.start()
    client.cleanup()


def test_private_network_of_other_project_is_refused(project_a_plugin, docker, project_b_networks):
    project_a_plugin.start()
    private = project_b_networks["private"]

    result = docker.network_create(unique("rel"), "-o", f"neutron.net.uuid={private.id}",
                                   "--subnet", "10.160.0.0/24", check=False)

    assert result.returncode != 0
    # The service role lets kuryrnet's user read every network; kuryrnet
    # itself refuses the ones its project neither owns nor shares.
    assert f"Neutron network '{private.id}' belongs to project" in result.stderr, result.stderr
    assert "is not shared with project" in result.stderr


def test_shared_network_of_other_project_can_be_attached(project_a_plugin, docker, clouds,
                                                         project_b_networks):
    project_a_plugin.start()
    shared, subnet = project_b_networks["shared"], project_b_networks["subnets"]["shared"]
    network = unique("rel")

    docker.network_create(network, "-o", f"neutron.net.uuid={shared.id}",
                          "--ipam-opt", f"neutron.subnet.uuid={subnet.id}")
    first, second = unique("c"), unique("c")
    docker.container(first, "--network", network)
    docker.container(second, "--network", network)
    addresses = [docker.inspect("container", name)["NetworkSettings"]["Networks"][network]["IPAddress"]
                 for name in (first, second)]
    assert all(address.startswith("10.160.1.") for address in addresses), addresses
    docker.exec(first, "ping", "-c", "1", "-W", "5", addresses[1])

    # The link lives on kuryrnet's security group in project A; project B's
    # network and subnet carry no tag of kuryrnet's.
    admin = clouds["admin"]
    project_a_id = clouds["project-a"].current_project_id
    endpoints = {docker.inspect("container", name)["NetworkSettings"]["Networks"][network]["EndpointID"]
                 for name in (first, second)}
    ports = [port for port in admin.network.ports(network_id=shared.id) if port.device_id in endpoints]
    assert len(ports) == 2
    assert {port.project_id for port in ports} == {project_a_id}
    assert not [tag for tag in admin.network.get_network(shared.id).tags if tag.startswith("kuryrnet")]
    groups = list(admin.network.security_groups(name=f"kuryrnet-net-{shared.id}"))
    assert len(groups) == 1
    assert "kuryrnet.link" in groups[0].tags

    # A restarted daemon finds the network again through the group.
    project_a_plugin.start()
    third = unique("c")
    docker.container(third, "--network", network)
    docker.run("rm", "-f", first, second, third)
    docker.containers.clear()
    docker.run("network", "rm", network)
    docker.networks.remove(network)
    assert admin.network.get_network(shared.id) is not None
    assert not list(admin.network.security_groups(name=f"kuryrnet-net-{shared.id}"))


def test_tag_on_shared_network_of_other_project_is_forbidden(clouds, project_b_networks):
    """The policy behind the expected failure above, checked directly."""
    project_a = clouds["project-a"]
    shared = project_b_networks["shared"]
    with pytest.raises(openstack.exceptions.HttpException) as raised:
        project_a.network.add_tag(shared, "kuryrnet.test")
    assert raised.value.status_code in (403, 404)


def token_lifetime(clouds) -> float:
    """Return the seconds that a token issued now stays valid."""
    session = clouds["admin"].session
    session.auth.invalidate()
    access = session.auth.get_access(session)
    return (access.expires - datetime.datetime.now(datetime.timezone.utc)).total_seconds()


def test_expired_token_is_renewed(stack_env, clouds, request, tmp_path):
    lifetime = token_lifetime(clouds)
    if lifetime > 300:
        pytest.skip(f"tokens live {lifetime:.0f} s; start the stack with "
                    f"KEYSTONE_TOKEN_EXPIRATION=150 to test their renewal")
    config = write_config(tmp_path / "admin.conf")
    plugin = Plugin(stack_env, config, f"keystone-{request.node.name}")
    docker = docker_client(stack_env)
    try:
        plugin.start()
        network = unique("rel")
        docker.network_create(network, "--subnet", "10.160.2.0/24")
        docker.run("run", "--rm", "--network", network, docker.image, "true")

        # Wait until the token of the first login has expired. keystoneauth
        # requests a new one when less than 120 s are left, so the daemon has
        # renewed it at least once by then.
        time.sleep(lifetime + 5)

        docker.run("run", "--rm", "--network", network, docker.image, "true")
        docker.run("network", "rm", network)
        docker.networks.remove(network)
        plugin.wait_idle()
        log = plugin.log_text()
        assert " 401 " not in log and "Unauthorized" not in log
        for secret in (ADMIN_PASSWORD, *PASSWORDS):
            assert secret not in log
    finally:
        docker.cleanup()
        plugin.stop()


def test_logs_hold_no_password(stack_env):
    """Scan every kuryrnet log that the tests of this folder wrote."""
    logs = sorted((STACK_DIR / "logs" / "reliability").glob("keystone-*.log"))
    if not logs:
        pytest.skip("no kuryrnet log written yet")
    for path in logs:
        text = path.read_text(errors="replace")
        for secret in (ADMIN_PASSWORD, *PASSWORDS):
            assert secret not in text, path



@pytest.fixture
def keystone_proxy(stack_env):
    with FaultProxy(stack_env["OS_AUTH_URL"].removesuffix("/v3")) as proxy:
        yield proxy


def test_keystone_faults_are_retried_or_reported(stack_env, keystone_proxy, clouds, request,
                                                 tmp_path):
    """Keystone behind the fault proxy: 503s and short refusals are retried, an outage is reported."""
    config = write_config(tmp_path / "keystone-proxy.conf", {"neutron": {
        "auth_type": "password", "auth_url": f"{keystone_proxy.url}/v3",
        "user_domain_name": "Default", "project_domain_name": "Default", **PROJECT_A}})
    plugin = Plugin(stack_env, config, f"keystone-{request.node.name}")
    docker = docker_client(stack_env)
    tokens = r"^/v3/auth/tokens"
    try:
        # Two 503s to the first token request of a new daemon.
        keystone_proxy.fail(503, method="POST", path=tokens, count=2)
        plugin.start()
        network = unique("rel")
        docker.network_create(network, "--subnet", "10.160.3.0/24")
        assert keystone_proxy.outcomes("POST", tokens)[:2] == ["status 503", "status 503"]

        # Keystone refuses connections for 1 s while a new daemon logs in.
        keystone_proxy.refuse()
        plugin.start()
        threading.Timer(1.0, keystone_proxy.accept).start()
        docker.run("run", "--rm", "--network", network, docker.image, "true")

        # Keystone stays down: the network create fails with an error naming
        # Keystone, and leaves nothing in Neutron.
        keystone_proxy.fail(503, method="POST", path=tokens, count=None)
        plugin.start()
        failed_name = unique("rel")
        result = docker.network_create(failed_name, "--subnet", "10.160.4.0/24", check=False)
        assert result.returncode != 0
        assert "Keystone answered 503" in result.stderr, result.stderr
        admin = clouds["admin"]
        assert not list(admin.network.subnets(cidr="10.160.4.0/24"))
        assert not list(admin.network.subnet_pools(name="kuryrnet-cidr-10.160.4.0_24"))
        keystone_proxy.clear()
        docker.network_create(failed_name, "--subnet", "10.160.4.0/24")
        log = plugin.log_text()
        for secret in (ADMIN_PASSWORD, *PASSWORDS):
            assert secret not in log
    finally:
        keystone_proxy.clear()
        keystone_proxy.accept()
        if not plugin.alive():
            plugin.start()
        docker.cleanup()
        plugin.stop()
