"""Tests of the HTTP handlers through aiohttp's test client, with a fake driver."""

import asyncio
import ipaddress
import json
import logging
import threading
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from kuryrnet import errors, model
from kuryrnet.api import wire
from kuryrnet.api.handlers import PLUGIN_CONTENT_TYPE, PluginApi, build_app

from test_api_fakes import ENDPOINT_ID, FAKE_HOST_IFNAME, FAKE_MAC, NETWORK_ID, FakeDriver, make_conf

ENDPOINT = {"NetworkID": NETWORK_ID, "EndpointID": ENDPOINT_ID}
CREATE_ENDPOINT = {**ENDPOINT, "Interface": {"Address": "10.99.0.2/24", "AddressIPv6": "",
                                             "MacAddress": ""},
                   "Options": {"com.docker.network.endpoint.exposedports": [],
                               "com.docker.network.portmap": []}}


class Plugin:
    """A served PluginApi with its fake driver, and a helper to post calls."""

    def __init__(self, client: TestClient, driver: FakeDriver, api: PluginApi):
        self.client = client
        self.driver = driver
        self.api = api

    async def call(self, name: str, body=None, raw: bytes | None = None, headers=None):
        if raw is not None:
            data = raw
        elif body is None:
            data = b""
        else:
            data = json.dumps(body).encode()
        response = await self.client.post(f"/{name}", data=data, headers=headers or {})
        return response.status, await response.json(content_type=None), response


async def start_plugin(**conf_overrides) -> tuple[Plugin, TestClient]:
    driver = FakeDriver()
    api = PluginApi(make_conf(**conf_overrides), driver)
    client = TestClient(TestServer(build_app(api)))
    await client.start_server()
    return Plugin(client, driver, api), client


@pytest.fixture
async def plugin():
    served, client = await start_plugin()
    yield served
    await client.close()
    served.api.close()


# --- handshake ----------------------------------------------------------------------


async def test_activate(plugin):
    status, payload, response = await plugin.call("Plugin.Activate")
    assert status == 200
    assert payload == {"Implements": ["NetworkDriver", "IpamDriver"]}
    assert response.content_type == PLUGIN_CONTENT_TYPE


async def test_activate_ignores_body(plugin):
    status, payload, _ = await plugin.call("Plugin.Activate", raw=b"null\n")
    assert status == 200
    assert payload == {"Implements": ["NetworkDriver", "IpamDriver"]}


async def test_network_capabilities_local(plugin):
    status, payload, _ = await plugin.call("NetworkDriver.GetCapabilities")
    assert status == 200
    assert payload == {"Scope": "local", "ConnectivityScope": "local", "GwAllocChecker": False}


async def test_network_capabilities_global():
    served, client = await start_plugin(capability_scope="global")
    try:
        _, payload, _ = await served.call("NetworkDriver.GetCapabilities")
    finally:
        await client.close()
        served.api.close()
    assert payload == {"Scope": "global", "ConnectivityScope": "global", "GwAllocChecker": False}


async def test_ipam_capabilities(plugin):
    status, payload, _ = await plugin.call("IpamDriver.GetCapabilities")
    assert status == 200
    assert payload == {"RequiresMACAddress": False, "RequiresRequestReplay": False}


async def test_default_address_spaces(plugin):
    status, payload, _ = await plugin.call("IpamDriver.GetDefaultAddressSpaces")
    assert status == 200
    assert payload == {"LocalDefaultAddressSpace": "local", "GlobalDefaultAddressSpace": "global"}


# --- IPAM -----------------------------------------------------------------------------


async def test_request_pool(plugin):
    status, payload, _ = await plugin.call("IpamDriver.RequestPool", {
        "AddressSpace": "local", "Pool": "10.99.0.0/24", "SubPool": "", "Options": {}, "V6": False})
    assert status == 200
    assert payload == {"PoolID": "kuryr-pool-10.99.0.0/24", "Pool": "10.99.0.0/24", "Data": {}}
    [request] = plugin.driver.requests_of("request_pool")
    assert request.pool == ipaddress.ip_network("10.99.0.0/24")


async def test_request_address(plugin):
    status, payload, _ = await plugin.call("IpamDriver.RequestAddress", {
        "PoolID": "kuryr-pool-10.99.0.0/24", "Address": "",
        "Options": {"RequestAddressType": "com.docker.network.gateway"}})
    assert status == 200
    assert payload == {"Address": "10.128.0.2/24", "Data": {}}
    [request] = plugin.driver.requests_of("request_address")
    assert request.kind is model.AddressKind.GATEWAY


async def test_release_calls_return_empty(plugin):
    assert (await plugin.call("IpamDriver.ReleaseAddress",
                              {"PoolID": "p", "Address": "10.99.0.2"}))[:2] == (200, {})
    assert (await plugin.call("IpamDriver.ReleasePool", {"PoolID": "p"}))[:2] == (200, {})
    assert [name for name, _ in plugin.driver.calls] == ["release_address", "release_pool"]


# --- network driver ----------------------------------------------------------------------


async def test_create_and_delete_network(plugin):
    status, payload, _ = await plugin.call("NetworkDriver.CreateNetwork", {
        "NetworkID": NETWORK_ID, "IPv4Data": [{"AddressSpace": "local", "Pool": "10.99.0.0/24",
                                               "Gateway": "10.99.0.1/24"}],
        "IPv6Data": [], "Options": {"com.docker.network.generic": {"drvkey": "drvval"}}})
    assert (status, payload) == (200, {})
    status, payload, _ = await plugin.call("NetworkDriver.DeleteNetwork", {"NetworkID": NETWORK_ID})
    assert (status, payload) == (200, {})
    [create] = plugin.driver.requests_of("create_network")
    assert create.generic_options == {"drvkey": "drvval"}
    assert plugin.driver.requests_of("delete_network") == [model.NetworkRef(NETWORK_ID)]


async def test_create_endpoint_returns_mac_docker_left_empty(plugin):
    status, payload, _ = await plugin.call("NetworkDriver.CreateEndpoint", CREATE_ENDPOINT)
    assert status == 200
    assert payload == {"Interface": {"MacAddress": FAKE_MAC}}


async def test_create_endpoint_with_mac_returns_empty(plugin):
    body = {**CREATE_ENDPOINT, "Interface": {"Address": "10.99.0.2/24",
                                             "MacAddress": "02:42:0a:63:00:02"}}
    status, payload, _ = await plugin.call("NetworkDriver.CreateEndpoint", body)
    assert (status, payload) == (200, {})


async def test_create_endpoint_drops_fields_docker_set(plugin, caplog):
    plugin.driver.create_endpoint = lambda req: model.EndpointInterface(
        mac_address=FAKE_MAC, address="10.99.0.9/24", address_ipv6="fd00::9/64")
    with caplog.at_level(logging.WARNING, logger="kuryrnet.api.responses"):
        status, payload, _ = await plugin.call("NetworkDriver.CreateEndpoint", CREATE_ENDPOINT)
    assert status == 200
    assert payload == {"Interface": {"MacAddress": FAKE_MAC, "AddressIPv6": "fd00::9/64"}}
    assert "Address 10.99.0.9/24 but Docker had set 10.99.0.2/24" in caplog.text


async def test_endpoint_oper_info(plugin):
    status, payload, _ = await plugin.call("NetworkDriver.EndpointOperInfo", ENDPOINT)
    assert status == 200
    assert payload == {"Value": {"port_id": "3f1e9c2a-5b7d-4e8f-9a0b-1c2d3e4f5a6b",
                                "host_ifname": FAKE_HOST_IFNAME}}


async def test_join(plugin):
    body = {**ENDPOINT, "SandboxKey": "/var/run/docker/netns/207abbaa7f50", "Options": {}}
    status, payload, _ = await plugin.call("NetworkDriver.Join", body)
    assert status == 200
    assert payload == {
        "InterfaceName": {"SrcName": FAKE_HOST_IFNAME, "DstPrefix": "eth"},
        "Gateway": "10.99.0.1",
        "GatewayIPv6": "",
        "StaticRoutes": [
            {"Destination": "10.200.0.0/16", "RouteType": 0, "NextHop": "10.99.0.254"},
            {"Destination": "10.201.0.0/16", "RouteType": 1},
        ],
        "DisableGatewayService": True,
    }


async def test_join_without_gateways(plugin):
    plugin.driver.join = lambda req: model.JoinResponse(
        src_name="tap1", dst_prefix="eth", gateway=None,
        gateway_ipv6=ipaddress.IPv6Address("fd97::1"), disable_gateway_service=False)
    body = {**ENDPOINT, "SandboxKey": "/var/run/docker/netns/207abbaa7f50"}
    _, payload, _ = await plugin.call("NetworkDriver.Join", body)
    assert payload["Gateway"] == ""
    assert payload["GatewayIPv6"] == "fd97::1"
    assert payload["StaticRoutes"] == []
    assert payload["DisableGatewayService"] is False


@pytest.mark.parametrize("name, method", [
    ("NetworkDriver.Leave", "leave"),
    ("NetworkDriver.DeleteEndpoint", "delete_endpoint"),
    ("NetworkDriver.RevokeExternalConnectivity", "revoke_external_connectivity"),
    ("NetworkDriver.ProgramExternalConnectivity", "program_external_connectivity"),
])
async def test_endpoint_calls_return_empty(plugin, name, method):
    status, payload, _ = await plugin.call(name, ENDPOINT)
    assert (status, payload) == (200, {})
    assert [called for called, _ in plugin.driver.calls] == [method]


@pytest.mark.parametrize("name, body, expected", [
    ("NetworkDriver.DiscoverNew", {"DiscoveryType": 1, "DiscoveryData": {}}, {}),
    ("NetworkDriver.DiscoverDelete", {"DiscoveryType": 1, "DiscoveryData": None}, {}),
    ("NetworkDriver.AllocateNetwork", {"NetworkID": NETWORK_ID, "Options": {}}, {"Options": {}}),
    ("NetworkDriver.FreeNetwork", {"NetworkID": NETWORK_ID}, {}),
    ("NetworkDriver.GwAllocCheck", {"Options": {}}, {"SkipIPv4": False, "SkipIPv6": False}),
])
async def test_calls_without_driver_method(plugin, name, body, expected):
    status, payload, _ = await plugin.call(name, body)
    assert (status, payload) == (200, expected)
    assert plugin.driver.calls == []


# --- errors ----------------------------------------------------------------------------


async def test_invalid_request_names_field(plugin):
    status, payload, _ = await plugin.call("NetworkDriver.Leave", {"NetworkID": "nope",
                                                                  "EndpointID": ENDPOINT_ID})
    assert status == 400
    assert payload == {"Err": 'invalid NetworkID "nope": expected a Docker id of 64 lowercase '
                             'hexadecimal characters'}
    assert plugin.driver.calls == []


async def test_empty_body_for_call_with_arguments(plugin):
    status, payload, _ = await plugin.call("NetworkDriver.Leave")
    assert status == 400
    assert payload == {"Err": wire.MISSING_BODY}


async def test_malformed_json(plugin):
    status, payload, _ = await plugin.call("NetworkDriver.Leave", raw=b"{'NetworkID': 1}")
    assert status == 400
    assert payload["Err"].startswith("invalid request body: not JSON")


async def test_content_type_is_ignored(plugin):
    status, _, _ = await plugin.call("NetworkDriver.Leave", ENDPOINT,
                                     headers={"Content-Type": "text/plain"})
    assert status == 200


@pytest.mark.parametrize("error, status", [
    (errors.NotFound("network 8d56 not found"), 404),
    (errors.Conflict("address 10.99.0.2 is in use"), 409),
    (errors.Exhausted("subnet 10.99.0.0/29 has no free address"), 409),
    (errors.BackendError("Neutron returned 500"), 502),
    (errors.BackendUnavailable("Neutron unreachable"), 503),
    (errors.BindingError("cannot create veth"), 500),
])
async def test_driver_errors_keep_status_and_message(plugin, error, status):
    plugin.driver.errors["leave"] = error
    got_status, payload, _ = await plugin.call("NetworkDriver.Leave", ENDPOINT)
    assert got_status == status
    assert payload == {"Err": error.message}


async def test_unexpected_error_is_500_without_traceback(plugin, caplog):
    plugin.driver.errors["join"] = RuntimeError("boom")
    body = {**ENDPOINT, "SandboxKey": "/var/run/docker/netns/207abbaa7f50"}
    with caplog.at_level(logging.ERROR, logger="kuryrnet.api.handlers"):
        status, payload, _ = await plugin.call("NetworkDriver.Join", body)
    assert status == 500
    assert payload == {"Err": "internal error in NetworkDriver.Join: RuntimeError: boom"}
    assert "Traceback" in caplog.text
    assert f"endpoint={ENDPOINT_ID}" in caplog.text


async def test_unknown_path_is_404(plugin):
    status, payload, _ = await plugin.call("NetworkDriver.Frobnicate", {})
    assert status == 404
    assert payload == {"Err": 'unknown call POST "/NetworkDriver.Frobnicate": this plugin '
                             'implements NetworkDriver and IpamDriver'}


async def test_get_is_405(plugin):
    response = await plugin.client.get("/Plugin.Activate")
    assert response.status == 405
    assert (await response.json(content_type=None))["Err"].startswith("method GET not allowed")


async def test_body_over_limit_is_413(plugin):
    limit = plugin.api.max_request_bytes
    status, payload, _ = await plugin.call("NetworkDriver.Leave", raw=b" " * (limit + 1))
    assert status == 413
    assert payload == {"Err": f"request body of NetworkDriver.Leave is larger than "
                             f"max_request_bytes ({limit} bytes)"}


async def test_chunked_body_over_limit_is_413(plugin):
    limit = plugin.api.max_request_bytes

    async def chunks():
        for _ in range(limit // 4096 + 2):
            yield b" " * 4096

    response = await plugin.client.post("/NetworkDriver.Leave", data=chunks())
    assert response.status == 413
    assert "max_request_bytes" in (await response.json(content_type=None))["Err"]


# --- workers, logging, status --------------------------------------------------------------


async def test_driver_runs_on_worker_threads(plugin):
    seen = []
    plugin.driver.leave = lambda req: seen.append(threading.current_thread().name)
    await plugin.call("NetworkDriver.Leave", ENDPOINT)
    assert seen[0].startswith("kuryrnet-call")


async def test_slow_calls_run_concurrently(plugin):
    plugin.driver.delays["leave"] = 0.5
    started = time.monotonic()
    results = await asyncio.gather(*[plugin.call("NetworkDriver.Leave", ENDPOINT)
                                     for _ in range(4)])
    assert [status for status, _, _ in results] == [200] * 4
    assert time.monotonic() - started < 1.5


async def test_call_is_logged_with_ids_and_duration(plugin, caplog):
    with caplog.at_level(logging.INFO, logger="kuryrnet.api.handlers"):
        await plugin.call("NetworkDriver.Leave", ENDPOINT)
    [record] = [r for r in caplog.records if r.name == "kuryrnet.api.handlers"]
    assert record.levelno == logging.INFO
    message = record.getMessage()
    assert message.startswith(f"NetworkDriver.Leave network={NETWORK_ID} endpoint={ENDPOINT_ID}: "
                              f"200 in ")
    assert message.endswith(" ms")


async def test_rejected_call_is_logged_as_warning(plugin, caplog):
    with caplog.at_level(logging.INFO, logger="kuryrnet.api.handlers"):
        await plugin.call("NetworkDriver.Join", {**ENDPOINT, "SandboxKey": "relative"})
    [record] = [r for r in caplog.records if r.name == "kuryrnet.api.handlers"]
    assert record.levelno == logging.WARNING
    assert f"network={NETWORK_ID} endpoint={ENDPOINT_ID}: 400" in record.getMessage()
    assert 'invalid SandboxKey "relative"' in record.getMessage()


async def test_status(plugin):
    await plugin.call("NetworkDriver.Leave", ENDPOINT)
    response = await plugin.client.get("/kuryrnet/status")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert await response.json() == {"driver": "fake", "calls": 1}


async def test_status_failure_is_500(plugin):
    def fail():
        raise RuntimeError("state unavailable")

    plugin.driver.status = fail
    response = await plugin.client.get("/kuryrnet/status")
    assert response.status == 500
    assert await response.json() == {"Err": "status failed: RuntimeError: state unavailable"}
