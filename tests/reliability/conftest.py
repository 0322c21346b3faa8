"""Fixtures of the reliability tests: the stack, a kuryrrel daemon per test and
a check that each test leaves nothing of kuryrnet's behind."""

import pytest

from tests.reliability.support import (Inventory, Plugin, docker_client, log_name,
                                       require_root, wait_no_leftovers, write_config)
from tests.stack import read_env


@pytest.fixture(scope="session")
def stack_env():
    env = read_env()
    require_root()
    return env


@pytest.fixture(scope="session")
def inventory(neutron, kuryr_conf):
    return Inventory(neutron, kuryr_conf)


@pytest.fixture
def plugin_config(tmp_path):
    """The configuration file of this test's daemons; a test may rewrite it with write_config."""
    return write_config(tmp_path / "kuryrrel.conf")


@pytest.fixture
def plugin(request, stack_env, plugin_config, inventory):
    """This test's kuryrrel daemons, and afterwards a check that nothing new of kuryrnet's remains.

    Resources of live Docker networks and endpoints do not count, since
    other work on the same stack (the end-to-end suite, a benchmark) owns them.

    Teardown order: the `docker` fixture (set up after this one) removes its
    containers and networks first, with a daemon running; then the daemon
    stops and the check runs.
    """
    before = inventory.snapshot()
    manager = Plugin(stack_env, plugin_config, log_name(request))
    manager.inventory, manager.before = inventory, before
    yield manager
    manager.stop()
    wait_no_leftovers(inventory, before, docker_client(stack_env), timeout=60)


@pytest.fixture
def docker(stack_env, plugin):
    """The stack's Docker client for the kuryrrel plugin; removes what the test created."""
    client = docker_client(stack_env)
    yield client
    if not plugin.alive():
        plugin.start()
    client.cleanup()
    plugin.wait_idle()
