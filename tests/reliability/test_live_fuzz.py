"""Malformed and hostile requests against a running daemon over its unix socket.

The daemon's Neutron is the real one behind tests/tools/fault_proxy.py, which
answers every POST, PUT and DELETE with 403: a fuzzed body that happens to
be valid reaches Neutron's read API only and can create nothing. Every
answer must be 2xx, or 4xx with {"Err": <text>}; never a 5xx, never a
crash, and the daemon serves normally afterwards.

Also here: a body over max_request_bytes gets 413, and unknown routes and
methods get 404 and 405.
"""

import http.client
import json
import pathlib
import socket

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.reliability.support import LOG_DIR, SOCKET, Plugin, require_root, write_config
from tests.tools.fault_proxy import FaultProxy

CAPTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "docker-20.10-requests"
DOCKER_ID = "8d5623916b7d1a9711f6c95096ee153bf63ef8376283209104d1b306abfaeec8"
ROUTES = [
    "Plugin.Activate", "NetworkDriver.GetCapabilities", "IpamDriver.GetCapabilities",
    "IpamDriver.GetDefaultAddressSpaces", "IpamDriver.RequestPool", "IpamDriver.ReleasePool",
    "IpamDriver.RequestAddress", "IpamDriver.ReleaseAddress", "NetworkDriver.CreateNetwork",
    "NetworkDriver.DeleteNetwork", "NetworkDriver.CreateEndpoint", "NetworkDriver.EndpointOperInfo",
    "NetworkDriver.DeleteEndpoint", "NetworkDriver.Join", "NetworkDriver.Leave",
    "NetworkDriver.ProgramExternalConnectivity", "NetworkDriver.RevokeExternalConnectivity",
    "NetworkDriver.DiscoverNew", "NetworkDriver.DiscoverDelete", "NetworkDriver.AllocateNetwork",
    "NetworkDriver.FreeNetwork", "NetworkDriver.GwAllocCheck",
]
HOSTILE = [
    "", " ", "\x00", "\n", "../../etc/passwd", "/var/run/docker/netns/../../../etc", "eth0; reboot",
    "$(id)", "`id`", "tap" + "x" * 300, "\u202e", "%s%n", "{}", "null", "-1", "1e999",
    "a" * 100_000, DOCKER_ID, DOCKER_ID.upper(), DOCKER_ID[:63], "10.0.0.0/33", "10.0.0.1/24",
    "256.0.0.1", "fe80::1%eth0", "::ffff:10.0.0.1", "ff:ff:ff:ff:ff:ff", "02:42:ac:11:00:02",
    "pool@00000000-0000-0000-0000-000000000000@10.0.0.0/24", "subnet@x@y", "neutron.net.uuid",
    "com.docker.network.gateway", "kuryrnet.port_pool.high",
]


def load_valid_bodies() -> dict[str, list]:
    """Return the bodies Docker 20.10 sent, by call, from the captured requests."""
    bodies: dict[str, list] = {}
    for path in sorted(CAPTURES.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                if record["body"] is not None:
                    bodies.setdefault(record["method"], []).append(record["body"])
    return bodies


VALID_BODIES = load_valid_bodies()
FIELD_NAMES = sorted({key for bodies in VALID_BODIES.values() for body in bodies for key in body})

strings = st.one_of(st.text(max_size=30), st.sampled_from(HOSTILE))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=False, allow_infinity=False), strings)
keys = st.one_of(st.text(max_size=15), st.sampled_from(FIELD_NAMES))
json_values = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)), max_leaves=20)


@st.composite
def mutated(draw, route: str):
    """A captured body of `route` with one to three fields replaced, removed or added."""
    body = dict(draw(st.sampled_from(VALID_BODIES.get(route, [{}]))))
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["replace", "remove", "add"] if body else ["add"]))
        if action == "add":
            body[draw(keys)] = draw(json_values)
            continue
        key = draw(st.sampled_from(sorted(body)))
        if action == "remove":
            del body[key]
        else:
            body[key] = draw(st.one_of(json_values, st.sampled_from(HOSTILE)))
    return json.dumps(body).encode()


def bodies(route: str):
    return st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                     mutated(route), mutated(route))


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def post(route: str, body: bytes | None, headers: dict | None = None) -> tuple[int, object]:
    connection = UnixConnection(SOCKET)
    try:
        connection.request("POST", f"/{route}", body=body, headers=headers or {})
        response = connection.getresponse()
        payload = response.read()
    finally:
        connection.close()
    try:
        return response.status, json.loads(payload)
    except ValueError:
        return response.status, payload


def check_answer(status: int, payload) -> None:
    assert status < 500, (status, payload)
    assert isinstance(payload, dict), payload
    if status >= 400:
        assert list(payload) == ["Err"], payload
        assert isinstance(payload["Err"], str) and payload["Err"], payload
        assert "Traceback" not in payload["Err"]


def check_serving(plugin) -> None:
    assert plugin.alive(), f"the daemon died; log: {plugin.log_path}"
    assert post("Plugin.Activate", b"{}") == (200, {"Implements": ["NetworkDriver", "IpamDriver"]})
    assert plugin.daemon.status()["host_id"]


@pytest.fixture(scope="module")
def fuzzed_plugin(stack_env, tmp_path_factory):
    """One daemon for the module, whose Neutron rejects every write with 403."""
    require_root()
    with FaultProxy(stack_env["NEUTRON_URL"]) as read_only_neutron:
        for method in ("POST", "PUT", "DELETE"):
            read_only_neutron.fail(403, method=method, count=None)
        config = write_config(tmp_path_factory.mktemp("fuzz") / "kuryrrel.conf", {
            "neutron": {"endpoint_override": read_only_neutron.url},
            "DEFAULT": {"reconcile_at_start": False}})
        plugin = Plugin(stack_env, config, "test_live_fuzz")
        plugin.start()
        try:
            yield plugin
            check_serving(plugin)
            assert "Traceback" not in plugin.log_text()
            writes = [outcome for outcome in read_only_neutron.outcomes() if outcome == "status 403"]
            (LOG_DIR / "fuzz-results.txt").write_text(
                f"{sum(1 for _ in read_only_neutron.log)} Neutron requests, {len(writes)} writes "
                f"rejected by the read-only proxy\n")
        finally:
            plugin.stop()


SUPPRESSED = [HealthCheck.too_slow, HealthCheck.data_too_large]


@pytest.mark.parametrize("route", ROUTES)
@settings(max_examples=60, deadline=None, suppress_health_check=SUPPRESSED)
@given(data=st.data())
def test_live_route_rejects_bad_bodies(fuzzed_plugin, route, data):
    status, payload = post(route, data.draw(bodies(route)))
    event(f"status {status}")
    check_answer(status, payload)


WRONG_TYPES = [["list"], {"object": 1}, 12345, True]


def wrong_type_cases():
    for route, bodies_of_route in sorted(VALID_BODIES.items()):
        body = bodies_of_route[0]
        for key in sorted(body):
            for value in WRONG_TYPES:
                if type(value) is type(body[key]):
                    continue
                yield pytest.param(route, body, key, value, id=f"{route}-{key}-{type(value).__name__}")


@pytest.mark.parametrize("route,body,key,value", list(wrong_type_cases()))
def test_wrong_type_names_the_field(fuzzed_plugin, route, body, key, value):
    status, payload = post(route, json.dumps({**body, key: value}).encode())
    check_answer(status, payload)
    if status == 400 and key in ("NetworkID", "EndpointID", "PoolID", "Address", "Pool",
                                 "Interface", "SandboxKey", "IPv4Data", "Options"):
        assert key in payload["Err"], payload
    if key in ("NetworkID", "EndpointID", "PoolID", "SandboxKey"):
        assert status == 400, payload


def test_huge_body_gets_413(fuzzed_plugin, kuryr_conf):
    limit = kuryr_conf.max_request_bytes
    padding = "x" * (limit + 1)
    body = json.dumps({"NetworkID": DOCKER_ID, "Padding": padding}).encode()

    status, payload = post("NetworkDriver.DeleteNetwork", body)
    assert status == 413
    assert "max_request_bytes" in payload["Err"]

    # Without Content-Length, as a chunked upload.
    def chunks():
        for start in range(0, len(body), 65536):
            yield body[start:start + 65536]

    connection = UnixConnection(SOCKET)
    try:
        connection.request("POST", "/NetworkDriver.DeleteNetwork", body=chunks(),
                           encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
        response = connection.getresponse()
        assert response.status == 413
        assert "max_request_bytes" in json.loads(response.read())["Err"]
    finally:
        connection.close()


def test_unknown_route_and_method(fuzzed_plugin):
    status, payload = post("NetworkDriver.Bogus", b"{}")
    assert status == 404 and "unknown call" in payload["Err"]
    connection = UnixConnection(SOCKET)
    try:
        connection.request("GET", "/NetworkDriver.CreateNetwork")
        response = connection.getresponse()
        assert response.status == 405
        assert "use POST" in json.loads(response.read())["Err"]
    finally:
        connection.close()
