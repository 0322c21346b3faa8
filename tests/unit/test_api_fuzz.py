"""Random requests to every route: the response is 2xx, or 4xx with {"Err": str}, never 500.

Bodies are random bytes, random JSON, objects with the protocol's field names
and random values, and real captured bodies with random parts replaced,
deleted or added. The HTTP tests run through aiohttp's test server; the
parser tests call the wire parsers directly with more examples.
"""

import asyncio
import copy
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kuryrnet.api import options, wire
from kuryrnet.api.handlers import PluginApi, build_app
from kuryrnet.errors import InvalidRequest

from test_api_fakes import ENDPOINT_ID, NET_UUID, NETWORK_ID, FakeDriver, load_captures, make_conf

HOSTILE_STRINGS = [
    "", " ", "\x00", "\n", "../../etc/passwd", "/var/run/docker/netns/../../../etc",
    "eth0; rm -rf /", "$(reboot)", "`id`", "tap" + "x" * 300, "é" * 50, "\u202e", "\ud7ff",
    "%s%s%n", "{}", "[]", "null", "NaN", "0x10", "-1", "1e999", "a" * 200_000,
    NETWORK_ID, NETWORK_ID.upper(), ENDPOINT_ID[:63], NET_UUID, "10.0.0.0/24", "10.0.0.1/24",
    "10.0.0.1", "10.0.0.0/33", "fd00::/64", "fd00::1/64", "fe80::1%eth0", "::ffff:10.0.0.1",
    "256.0.0.1", "02:42:0a:63:00:32", "ff:ff:ff:ff:ff:ff", "AkIKYwAy", "AAAAAAAA", "AQIDBAUG",
    "com.docker.network.gateway", "true", "false", "yes", "0", "1000", "1001",
]
OPTION_KEYS = [
    *options.NEUTRON_KEYS, *options.PORT_POOL_KEYS, "neutron.bogus", "kuryrnet.bogus",
    options.EXPOSED_PORTS_KEY, options.MAC_ADDRESS_KEY, options.REQUEST_ADDRESS_TYPE_KEY,
    wire.GENERIC_OPTIONS_KEY, wire.ENABLE_IPV6_KEY, wire.INTERNAL_KEY,
    "com.docker.network.portmap", "com.docker.network.endpoint.name",
]
FIELD_NAMES = [
    "NetworkID", "EndpointID", "PoolID", "Address", "AddressIPv6", "MacAddress", "Pool",
    "SubPool", "V6", "AddressSpace", "Options", "IPv4Data", "IPv6Data", "Interface",
    "SandboxKey", "Gateway", "AuxAddresses", "DiscoveryType", "DiscoveryData", "Proto", "Port",
]

strings = st.one_of(st.text(max_size=40), st.sampled_from(HOSTILE_STRINGS))
keys = st.one_of(st.text(max_size=20), st.sampled_from(FIELD_NAMES + OPTION_KEYS))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=False, allow_infinity=False), strings)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=5),
                               st.dictionaries(keys, children, max_size=6)),
    max_leaves=25)

# Valid bodies of the calls that the captures do not contain.
SYNTHETIC_BODIES = {
    "NetworkDriver.DiscoverNew": {"DiscoveryType": 1, "DiscoveryData": {"Address": "10.0.0.1"}},
    "NetworkDriver.DiscoverDelete": {"DiscoveryType": 1, "DiscoveryData": {"Address": "10.0.0.1"}},
    "NetworkDriver.AllocateNetwork": {"NetworkID": NETWORK_ID, "Options": {},
                                      "IPv4Data": [], "IPv6Data": []},
    "NetworkDriver.FreeNetwork": {"NetworkID": NETWORK_ID},
    "NetworkDriver.GwAllocCheck": {"Options": {wire.GENERIC_OPTIONS_KEY: {}}},
}


def valid_bodies() -> dict[str, list]:
    bodies: dict[str, list] = {name: [body] for name, body in SYNTHETIC_BODIES.items()}
    for _, line in load_captures():
        if line["body"] is not None:
            bodies.setdefault(line["method"], []).append(line["body"])
    return bodies


VALID_BODIES = valid_bodies()
ROUTES = sorted(PluginApi(make_conf(), FakeDriver()).calls)


def mutate(value, data, depth=0):
    """Return `value` with one random part replaced, deleted or added."""
    actions = ["replace", "hostile"]
    if isinstance(value, (dict, list)) and value and depth < 6:
        actions += ["descend", "descend", "descend"]
    if isinstance(value, dict):
        actions += ["delete", "add"] if value else ["add"]
    action = data.draw(st.sampled_from(actions))
    if action == "replace":
        return data.draw(json_values)
    if action == "hostile":
        return data.draw(st.sampled_from(HOSTILE_STRINGS))
    if action == "delete":
        result = dict(value)
        del result[data.draw(st.sampled_from(sorted(result)))]
        return result
    if action == "add":
        return {**value, data.draw(keys): data.draw(json_values)}
    if isinstance(value, dict):
        key = data.draw(st.sampled_from(sorted(value)))
        return {**value, key: mutate(value[key], data, depth + 1)}
    index = data.draw(st.integers(0, len(value) - 1))
    return [*value[:index], mutate(value[index], data, depth + 1), *value[index + 1:]]


def draw_body(route: str, data) -> bytes:
    kind = data.draw(st.sampled_from(["bytes", "json", "fields", "mutated", "mutated"]))
    if kind == "bytes":
        return data.draw(st.binary(max_size=300))
    if kind == "json":
        return json.dumps(data.draw(json_values)).encode()
    if kind == "fields":
        fields = data.draw(st.dictionaries(keys, st.one_of(json_values, strings), max_size=8))
        return json.dumps(fields).encode()
    body = copy.deepcopy(data.draw(st.sampled_from(VALID_BODIES.get(route, [{}]))))
    for _ in range(data.draw(st.integers(1, 3))):
        body = mutate(body, data)
    return json.dumps(body).encode()


def check_response(status: int, payload) -> None:
    assert 200 <= status < 300 or 400 <= status < 500, (status, payload)
    assert isinstance(payload, dict)
    if status >= 400:
        assert set(payload) == {"Err"}
        assert isinstance(payload["Err"], str)
        assert payload["Err"]
    else:
        assert "Err" not in payload


@pytest.fixture(scope="module")
def served():
    """A test server on its own event loop, shared by all examples of this module."""
    loop = asyncio.new_event_loop()
    api = PluginApi(make_conf(), FakeDriver())

    async def start() -> TestClient:
        client = TestClient(TestServer(build_app(api)))
        await client.start_server()
        return client

    client = loop.run_until_complete(start())

    def post(route: str, body: bytes) -> tuple[int, object]:
        async def send():
            response = await client.post(f"/{route}", data=body,
                                         skip_auto_headers=["Content-Type"])
            return response.status, await response.json(content_type=None)
        return loop.run_until_complete(send())

    yield post
    loop.run_until_complete(client.close())
    api.close()
    loop.close()


@pytest.mark.parametrize("route", ROUTES)
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_route_handles_random_bodies(served, route, data):
    status, payload = served(route, draw_body(route, data))
    event(f"status {status}")  # shown by pytest --hypothesis-show-statistics
    check_response(status, payload)


PARSERS = {
    "IpamDriver.RequestPool": wire.parse_request_pool,
    "IpamDriver.ReleasePool": wire.parse_release_pool,
    "IpamDriver.RequestAddress": wire.parse_request_address,
    "IpamDriver.ReleaseAddress": wire.parse_release_address,
    "NetworkDriver.CreateNetwork": wire.parse_create_network,
    "NetworkDriver.DeleteNetwork": wire.parse_network_ref,
    "NetworkDriver.CreateEndpoint": wire.parse_create_endpoint,
    "NetworkDriver.EndpointOperInfo": wire.parse_endpoint_ref,
    "NetworkDriver.Join": wire.parse_join,
    "NetworkDriver.ProgramExternalConnectivity": wire.parse_external_connectivity,
    "NetworkDriver.DiscoverNew": wire.check_discovery,
    "NetworkDriver.AllocateNetwork": wire.check_allocate_network,
    "NetworkDriver.GwAllocCheck": wire.check_gw_alloc,
}


@pytest.mark.parametrize("route", sorted(PARSERS))
@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_parser_raises_only_invalid_request(route, data):
    body = draw_body(route, data)
    try:
        PARSERS[route](wire.decode_body(body))
    except InvalidRequest as exc:
        assert exc.message
        assert len(exc.message) < 2000


def test_mutation_keeps_valid_bodies_for_every_route():
    for route in ROUTES:
        if route.startswith("Plugin.") or route.endswith(("GetCapabilities",
                                                           "GetDefaultAddressSpaces")):
            continue
        assert route in VALID_BODIES, route


unknown_keys = st.text(min_size=1, max_size=20).filter(lambda key: key not in FIELD_NAMES)


@pytest.mark.parametrize("route", sorted(VALID_BODIES))
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_unknown_fields_are_ignored(served, route, data):
    body = copy.deepcopy(data.draw(st.sampled_from(VALID_BODIES[route])))
    extra = data.draw(st.dictionaries(unknown_keys, json_values, min_size=1, max_size=4))
    status, payload = served(route, json.dumps({**extra, **body}).encode())
    assert status == 200, payload
