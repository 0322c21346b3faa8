"""Encoding of the driver's typed results into the JSON bodies Docker expects."""

from __future__ import annotations

import logging

from kuryrnet import model

LOG = logging.getLogger(__name__)

ROUTE_VIA_NEXT_HOP = 0
ROUTE_CONNECTED = 1


def encode_pool(result: model.PoolResponse) -> dict:
    return {"PoolID": result.pool_id, "Pool": str(result.pool), "Data": dict(result.data)}


def encode_address(result: model.AddressResponse) -> dict:
    return {"Address": str(result.address), "Data": dict(result.data)}


def encode_endpoint_interface(result: model.EndpointInterface | None,
                              request: model.CreateEndpoint) -> dict:
    """Encode CreateEndpoint's response with only the fields Docker left empty.

    Docker fails the call when the response sets a field it had set itself,
    so such a field is left out, and logged when the driver's value differs.
    """
    if result is None:
        return {}
    sent_by_docker = {
        "MacAddress": request.mac_address,
        "Address": str(request.address) if request.address else None,
        "AddressIPv6": str(request.address_ipv6) if request.address_ipv6 else None,
    }
    returned = {
        "MacAddress": result.mac_address,
        "Address": result.address,
        "AddressIPv6": result.address_ipv6,
    }
    interface = {}
    for key, value in returned.items():
        if not value:
            continue
        if sent_by_docker[key] is not None:
            if str(value).lower() != sent_by_docker[key].lower():
                LOG.warning("CreateEndpoint endpoint=%s: the driver returned %s %s but Docker "
                            "had set %s; keeping Docker's value",
                            request.endpoint_id, key, value, sent_by_docker[key])
            continue
        interface[key] = str(value)
    return {"Interface": interface} if interface else {}


def encode_static_route(route: model.StaticRoute) -> dict:
    if route.next_hop is None:
        return {"Destination": str(route.destination), "RouteType": ROUTE_CONNECTED}
    return {"Destination": str(route.destination), "RouteType": ROUTE_VIA_NEXT_HOP,
            "NextHop": str(route.next_hop)}


def encode_join(result: model.JoinResponse) -> dict:
    return {
        "InterfaceName": {"SrcName": result.src_name, "DstPrefix": result.dst_prefix},
        "Gateway": str(result.gateway) if result.gateway is not None else "",
        "GatewayIPv6": str(result.gateway_ipv6) if result.gateway_ipv6 is not None else "",
        "StaticRoutes": [encode_static_route(route) for route in result.static_routes],
        "DisableGatewayService": bool(result.disable_gateway_service),
    }


def encode_oper_info(result: dict | None) -> dict:
    return {"Value": dict(result or {})}


def encode_empty(result: object = None) -> dict:
    return {}
