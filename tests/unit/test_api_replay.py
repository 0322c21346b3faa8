"""Replay every request that Docker 20.10 sent in the captures through the handlers."""

import ipaddress
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from kuryrnet import model
from kuryrnet.api.handlers import PluginApi, build_app

from test_api_fakes import FakeDriver, load_captures, make_conf

CAPTURES = load_captures()

# Call -> (driver method, type of the request it receives), or None for
# the calls that need no driver method.
DRIVER_CALLS = {
    "Plugin.Activate": None,
    "NetworkDriver.GetCapabilities": None,
    "IpamDriver.GetCapabilities": None,
    "IpamDriver.GetDefaultAddressSpaces": None,
    "IpamDriver.RequestPool": ("request_pool", model.RequestPool),
    "IpamDriver.ReleasePool": ("release_pool", model.ReleasePool),
    "IpamDriver.RequestAddress": ("request_address", model.RequestAddress),
    "IpamDriver.ReleaseAddress": ("release_address", model.ReleaseAddress),
    "NetworkDriver.CreateNetwork": ("create_network", model.CreateNetwork),
    "NetworkDriver.DeleteNetwork": ("delete_network", model.NetworkRef),
    "NetworkDriver.CreateEndpoint": ("create_endpoint", model.CreateEndpoint),
    "NetworkDriver.EndpointOperInfo": ("endpoint_oper_info", model.EndpointRef),
    "NetworkDriver.DeleteEndpoint": ("delete_endpoint", model.EndpointRef),
    "NetworkDriver.Join": ("join", model.Join),
    "NetworkDriver.Leave": ("leave", model.EndpointRef),
    "NetworkDriver.ProgramExternalConnectivity": ("program_external_connectivity",
                                                  model.ExternalConnectivity),
    "NetworkDriver.RevokeExternalConnectivity": ("revoke_external_connectivity",
                                                 model.EndpointRef),
}


@pytest.fixture
async def replay():
    """Return a function that posts one capture line and returns (status, payload, driver calls)."""
    driver = FakeDriver()
    api = PluginApi(make_conf(), driver)
    client = TestClient(TestServer(build_app(api)))
    await client.start_server()

    async def post(line: dict):
        driver.calls.clear()
        body = b"" if line["body"] is None else (json.dumps(line["body"]) + "\n").encode()
        # Docker sends no Content-Type.
        response = await client.post(f"/{line['method']}", data=body,
                                     skip_auto_headers=["Content-Type"])
        return response.status, await response.json(content_type=None), list(driver.calls)

    yield post
    await client.close()
    api.close()


def find(reference: str) -> dict:
    return next(line for ref, line in CAPTURES if ref == reference)


def test_captures_cover_every_driver_call():
    assert len(CAPTURES) > 150
    assert {line["method"] for _, line in CAPTURES} == set(DRIVER_CALLS)


@pytest.mark.parametrize("reference, line", CAPTURES, ids=[ref for ref, _ in CAPTURES])
async def test_capture_line_is_accepted(replay, reference, line):
    status, payload, calls = await replay(line)
    assert status == 200, payload
    assert "Err" not in payload
    expected = DRIVER_CALLS[line["method"]]
    if expected is None:
        assert calls == []
    else:
        method, request_type = expected
        assert len(calls) == 1
        assert calls[0][0] == method
        assert type(calls[0][1]) is request_type


async def test_rich_network_pool_request(replay):
    _, payload, [(_, request)] = await replay(find("03-rich-network:29"))
    assert request.pool == ipaddress.ip_network("10.97.0.0/24")
    assert request.sub_pool == ipaddress.ip_network("10.97.0.128/25")
    assert request.options == {"ipamkey": "ipamval"}
    assert request.neutron == model.NeutronOptions()
    assert payload["Pool"] == "10.97.0.0/24"


async def test_rich_network_gateway_request(replay):
    _, _, [(_, request)] = await replay(find("03-rich-network:30"))
    assert request.kind is model.AddressKind.GATEWAY
    assert request.address == ipaddress.ip_address("10.97.0.254")


async def test_rich_network_aux_address_request(replay):
    _, _, [(_, request)] = await replay(find("03-rich-network:31"))
    assert request.kind is model.AddressKind.ENDPOINT
    assert request.address == ipaddress.ip_address("10.97.0.10")


async def test_rich_network_v6_pool(replay):
    _, _, [(_, request)] = await replay(find("03-rich-network:32"))
    assert request.v6 is True
    assert request.pool == ipaddress.ip_network("fd97::/64")


async def test_rich_network_create(replay):
    _, _, [(_, request)] = await replay(find("03-rich-network:34"))
    assert request.network_id == "02209bb9b604e7d537b9a247a9a97a215089290fac05ab28a60725be8944990f"
    [ipv4] = request.ipv4_data
    assert ipv4.gateway == ipaddress.ip_interface("10.97.0.254/24")
    assert ipv4.aux_addresses == {"host1": ipaddress.ip_interface("10.97.0.10/24")}
    [ipv6] = request.ipv6_data
    assert ipv6.gateway == ipaddress.ip_interface("fd97::1/64")
    assert request.enable_ipv6 is True
    assert request.generic_options == {"drvkey": "drvval"}


async def test_second_container_mac_and_exposed_port(replay):
    _, payload, [(_, request)] = await replay(find("02-two-containers:24"))
    assert request.mac_address == "02:42:0a:63:00:32"
    assert request.address == ipaddress.IPv4Interface("10.99.0.50/24")
    assert request.exposed_ports == (model.ExposedPort("tcp", 80),)
    # Docker set the MAC, so the response must not set it again.
    assert payload == {}


async def test_second_container_program_external_connectivity(replay):
    _, _, [(_, request)] = await replay(find("02-two-containers:26"))
    assert request.exposed_ports == (model.ExposedPort("tcp", 80),)


async def test_fixed_address_request(replay):
    _, payload, [(_, request)] = await replay(find("02-two-containers:23"))
    assert request.address == ipaddress.ip_address("10.99.0.50")
    assert payload == {"Address": "10.99.0.50/24", "Data": {}}


async def test_dual_stack_endpoint(replay):
    _, _, [(_, request)] = await replay(find("04-connect-disconnect:38"))
    assert request.address == ipaddress.IPv4Interface("10.97.0.200/24")
    assert request.address_ipv6 == ipaddress.IPv6Interface("fd97::200/64")
    assert request.mac_address is None


async def test_internal_network(replay):
    _, _, [(_, request)] = await replay(find("07-internal:67"))
    assert request.internal is True


async def test_default_pool_request(replay):
    _, payload, [(_, request)] = await replay(find("08-default-ipam-pool:80"))
    assert request.pool is None
    assert payload["Pool"] == "10.128.0.0/24"


async def test_join_sandbox_key(replay):
    _, payload, [(_, request)] = await replay(find("01-basic:9"))
    assert request.sandbox_key == "/var/run/docker/netns/207abbaa7f50"
    assert payload["InterfaceName"]["DstPrefix"] == "eth"


async def test_error_capture_generic_options_reach_driver(replay):
    _, _, [(_, request)] = await replay(find("10-err-200:98"))
    assert request.generic_options == {"fail": "boom"}
