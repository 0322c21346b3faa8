"""Fixtures shared by the suites that run against the stack.

Each of those suites defines its own `stack_env` (the values of .stack/env);
the fixtures here build on it.
"""

import pytest

from kuryrnet import config
from kuryrnet.neutron.client import NeutronClient


@pytest.fixture(scope="session")
def kuryr_conf(stack_env):
    return config.load([], [stack_env["KURYR_CONFIG"]])


@pytest.fixture(scope="session")
def neutron(kuryr_conf):
    return NeutronClient(kuryr_conf)
