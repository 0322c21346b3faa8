"""The HTTP routes of Docker's remote network driver and remote IPAM driver.

Every call is `POST /<Interface>.<Method>` with a JSON body (empty for the
calls without arguments). A handler parses the body with kuryrnet.api.wire,
runs the matching synchronous Driver method on a worker thread and encodes
its result. Errors reach Docker as a non-200 status and `{"Err": message}`,
which both the network and the IPAM side of Docker read.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from aiohttp import web

from kuryrnet.api import fields, responses, wire
from kuryrnet.errors import KuryrnetError

LOG = logging.getLogger(__name__)

PLUGIN_CONTENT_TYPE = "application/vnd.docker.plugins.v1.2+json"
STATUS_PATH = "/kuryrnet/status"
LOCAL_ADDRESS_SPACE = "local"
GLOBAL_ADDRESS_SPACE = "global"

# Exception messages in 500 responses are cut to this many characters.
MAX_INTERNAL_MESSAGE_CHARS = 1000

@dataclass(frozen=True)
class Call:
    """One libnetwork call: how to parse it, which Driver method runs it, how to encode the result."""

    name: str
    # None for the calls without arguments, whose body is ignored.
    parse: Callable[[Any], Any] | None
    # None for the calls that need no driver method.
    driver_method: str | None
    # Takes the driver's result and the parsed request.
    encode: Callable[[Any, Any], dict]


class PluginApi:
    """Docker's plugin calls on top of one Driver, run on a pool of worker threads."""

    def __init__(self, conf, driver, executor: concurrent.futures.Executor | None = None):
        self.conf = conf
        self.driver = driver
        self.executor = executor or concurrent.futures.ThreadPoolExecutor(
            max_workers=conf.worker_threads, thread_name_prefix="kuryrnet-call")
        self.max_request_bytes = conf.max_request_bytes
        self.in_flight = 0
        self.calls = {call.name: call for call in self._build_calls()}

    def _build_calls(self) -> list[Call]:
        scope = self.conf.capability_scope
        network_capabilities = {"Scope": scope, "ConnectivityScope": scope,
                                "GwAllocChecker": False}
        ipam_capabilities = {"RequiresMACAddress": False, "RequiresRequestReplay": False}
        address_spaces = {"LocalDefaultAddressSpace": LOCAL_ADDRESS_SPACE,
                          "GlobalDefaultAddressSpace": GLOBAL_ADDRESS_SPACE}

        def constant(payload: dict) -> Callable[[Any, Any], dict]:
            return lambda result, request: payload

        def result_only(encode: Callable[[Any], dict]) -> Callable[[Any, Any], dict]:
            return lambda result, request: encode(result)

        empty = result_only(responses.encode_empty)
        return [
            Call("Plugin.Activate", None, None,
                 constant({"Implements": ["NetworkDriver", "IpamDriver"]})),
            Call("NetworkDriver.GetCapabilities", None, None, constant(network_capabilities)),
            Call("IpamDriver.GetCapabilities", None, None, constant(ipam_capabilities)),
            Call("IpamDriver.GetDefaultAddressSpaces", None, None, constant(address_spaces)),

            Call("IpamDriver.RequestPool", wire.parse_request_pool, "request_pool",
                 result_only(responses.encode_pool)),
            Call("IpamDriver.ReleasePool", wire.parse_release_pool, "release_pool", empty),
            Call("IpamDriver.RequestAddress", wire.parse_request_address, "request_address",
                 result_only(responses.encode_address)),
            Call("IpamDriver.ReleaseAddress", wire.parse_release_address, "release_address",
                 empty),

            Call("NetworkDriver.CreateNetwork", wire.parse_create_network, "create_network",
                 empty),
            Call("NetworkDriver.DeleteNetwork", wire.parse_network_ref, "delete_network", empty),
            Call("NetworkDriver.CreateEndpoint", wire.parse_create_endpoint, "create_endpoint",
                 responses.encode_endpoint_interface),
            Call("NetworkDriver.EndpointOperInfo", wire.parse_endpoint_ref,
                 "endpoint_oper_info", result_only(responses.encode_oper_info)),
            Call("NetworkDriver.DeleteEndpoint", wire.parse_endpoint_ref, "delete_endpoint",
                 empty),
            Call("NetworkDriver.Join", wire.parse_join, "join",
                 result_only(responses.encode_join)),
            Call("NetworkDriver.Leave", wire.parse_endpoint_ref, "leave", empty),
            Call("NetworkDriver.ProgramExternalConnectivity", wire.parse_external_connectivity,
                 "program_external_connectivity", empty),
            Call("NetworkDriver.RevokeExternalConnectivity", wire.parse_endpoint_ref,
                 "revoke_external_connectivity", empty),

            # Sent only to drivers with global ConnectivityScope or in swarm,
            # and GwAllocCheck only to drivers that report GwAllocChecker.
            Call("NetworkDriver.DiscoverNew", wire.check_discovery, None, empty),
            Call("NetworkDriver.DiscoverDelete", wire.check_discovery, None, empty),
            Call("NetworkDriver.AllocateNetwork", wire.check_allocate_network, None,
                 constant({"Options": {}})),
            Call("NetworkDriver.FreeNetwork", wire.parse_network_ref, None, empty),
            Call("NetworkDriver.GwAllocCheck", wire.check_gw_alloc, None,
                 constant({"SkipIPv4": False, "SkipIPv6": False})),
        ]

    async def run_in_worker(self, function: Callable, *args: Any) -> Any:
        """Run a synchronous function on the worker threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(function, *args))

    async def dispatch(self, name: str, body: bytes) -> tuple[int, dict]:
        """Run the call `name` on a raw request body and return the HTTP status and the JSON response.

        Raises nothing, because every error becomes a status and an {"Err": ...} response.
        """
        call = self.calls[name]
        started = time.monotonic()
        request = decoded = None
        self.in_flight += 1
        try:
            if call.parse is not None:
                decoded = wire.decode_body(body)
                request = call.parse(decoded)
            result = None
            if call.driver_method is not None:
                result = await self.run_in_worker(getattr(self.driver, call.driver_method),
                                                  request)
            status, payload = 200, call.encode(result, request)
        except KuryrnetError as exc:
            status, payload = exc.status, {"Err": exc.message}
        except Exception as exc:  # noqa: BLE001 - every failure must reach Docker as a response
            message = str(exc)[:MAX_INTERNAL_MESSAGE_CHARS]
            status = 500
            payload = {"Err": f"internal error in {name}: {type(exc).__name__}: {message}"}
            LOG.exception("%s %s: internal error", name, describe_ids(request, decoded))
        finally:
            self.in_flight -= 1

        elapsed_ms = (time.monotonic() - started) * 1000
        ids = describe_ids(request, decoded)
        if status == 200:
            LOG.info("%s %s: 200 in %.1f ms", name, ids, elapsed_ms)
        else:
            level = logging.WARNING if status < 500 else logging.ERROR
            LOG.log(level, "%s %s: %d in %.1f ms: %s", name, ids, status, elapsed_ms,
                    payload["Err"])
        return status, payload

    async def handle_call(self, request: web.Request) -> web.Response:
        name = request.path[1:]  # the routes are exactly "/" + call name
        body = await self._read_body(name, request)
        if isinstance(body, web.Response):
            return body
        status, payload = await self.dispatch(name, body)
        return plugin_response(status, payload)

    async def _read_body(self, name: str, request: web.Request) -> bytes | web.Response:
        too_large = (f"request body of {name} is larger than max_request_bytes "
                     f"({self.max_request_bytes} bytes)")
        if request.content_length is not None and request.content_length > self.max_request_bytes:
            LOG.warning("%s: 413: %s", name, too_large)
            return plugin_response(413, {"Err": too_large})
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            LOG.warning("%s: 413: %s", name, too_large)
            return plugin_response(413, {"Err": too_large})

    async def handle_status(self, request: web.Request) -> web.Response:
        """Return the daemon's state for `kuryrnet status`."""
        try:
            state = await self.run_in_worker(self.driver.status)
        except Exception as exc:  # noqa: BLE001 - the status route reports every failure
            LOG.exception("status: the driver failed to report its state")
            return plugin_response(500, {"Err": f"status failed: {type(exc).__name__}: {exc}"},
                                   content_type="application/json")
        return plugin_response(200, state, content_type="application/json")

    def close(self) -> None:
        """Stop the worker threads. Calls still running finish in the background."""
        self.executor.shutdown(wait=False, cancel_futures=True)


def describe_ids(request: Any, decoded: Any) -> str:
    """Describe the Docker ids and IPAM values of a call for a log line.

    Before the request is parsed, only values from the raw body that are
    well-formed Docker ids are used, so logs never carry arbitrary input.
    """
    parts = []
    if request is not None:
        for label, attribute in (("network", "network_id"), ("endpoint", "endpoint_id"),
                                 ("pool", "pool_id"), ("address", "address")):
            value = getattr(request, attribute, None)
            if value is not None:
                parts.append(f"{label}={value}")
    elif isinstance(decoded, dict):
        for label, key in (("network", "NetworkID"), ("endpoint", "EndpointID")):
            value = decoded.get(key)
            if isinstance(value, str) and fields.DOCKER_ID_PATTERN.fullmatch(value):
                parts.append(f"{label}={value}")
    return " ".join(parts) if parts else "-"


def plugin_response(status: int, payload: dict, content_type: str = PLUGIN_CONTENT_TYPE) -> web.Response:
    # default=str: EndpointOperInfo's Value is free-form and may hold
    # addresses or other objects with a natural string form.
    body = json.dumps(payload, default=str)
    return web.Response(status=status, text=body, content_type=content_type)


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Turn aiohttp's own errors (unknown path, wrong method) into {"Err": ...} responses."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            message = (f"unknown call {request.method} {fields.show(request.path)}: this plugin "
                       f"implements NetworkDriver and IpamDriver")
        elif exc.status == 405:
            message = f"method {request.method} not allowed on {fields.show(request.path)}: use POST"
        else:
            message = exc.reason
        LOG.warning("%s %s: %d: %s", request.method, fields.show(request.path), exc.status,
                    message)
        return plugin_response(exc.status, {"Err": message})


def build_app(api: PluginApi) -> web.Application:
    """Build the aiohttp application that serves `api`."""
    app = web.Application(middlewares=[error_middleware], client_max_size=api.max_request_bytes)
    for name in api.calls:
        app.router.add_post(f"/{name}", api.handle_call)
    app.router.add_get(STATUS_PATH, api.handle_status)
    return app
