"""Parsing of Docker's request bodies into the typed requests of kuryrnet.model.

Every parser takes the decoded JSON body of one call and returns the model
object, or raises InvalidRequest naming the field, its value and what was
expected. Unknown fields are ignored, because newer Docker versions add
fields. Known fields with the wrong type are rejected.
"""

from __future__ import annotations

import json
from typing import Any

from kuryrnet import model
from kuryrnet.api import fields, options
from kuryrnet.api.fields import member
from kuryrnet.errors import InvalidRequest

# Keys of CreateNetwork's Options.
GENERIC_OPTIONS_KEY = "com.docker.network.generic"
ENABLE_IPV6_KEY = "com.docker.network.enable_ipv6"
INTERNAL_KEY = "com.docker.network.internal"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode_body(body: bytes) -> Any:
    """Decode a request body as UTF-8 JSON. An empty body gives None."""
    if not body.strip():
        return None
    try:
        text = body.decode("utf-8")
        return json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"invalid request body: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise InvalidRequest("invalid request body: JSON nested too deeply") from None
    except ValueError as exc:
        # json.JSONDecodeError, and the ValueError that int() raises for
        # numbers of more than 4300 digits.
        raise InvalidRequest(f"invalid request body: not JSON ({exc})") from None


MISSING_BODY = ("missing request body: expected a JSON object. Docker sends an empty body when "
                "it retries a call whose connection to the plugin broke, for example because "
                "kuryrnet restarted; run the Docker command again")


def request_object(body: Any) -> dict:
    """Check that a decoded body is a JSON object, as every call with arguments sends."""
    if body is None:
        raise InvalidRequest(MISSING_BODY)
    if not isinstance(body, dict):
        raise InvalidRequest(
            f"invalid request body {fields.show(body)}: expected a JSON object, "
            f"got {fields.json_type_name(body)}")
    return body


# --- IPAM driver ---------------------------------------------------------------


def parse_request_pool(body: Any) -> model.RequestPool:
    """Parse IpamDriver.RequestPool. `options` keeps the keys other than neutron.*.

    V6 is not checked against the family of Pool: some engines send V6 false
    for IPv6 pools, so the driver takes the family from the CIDR.
    """
    obj = request_object(body)
    address_space = fields.parse_address_space(member(obj, "AddressSpace"), "AddressSpace")
    pool = fields.parse_ip_network(member(obj, "Pool"), "Pool")
    sub_pool = fields.parse_ip_network(member(obj, "SubPool"), "SubPool")
    v6 = fields.parse_bool(member(obj, "V6"), "V6")

    if sub_pool is not None:
        if pool is None:
            raise fields.invalid("SubPool", str(sub_pool),
                                 "an empty SubPool when Pool is empty, because --ip-range "
                                 "needs --subnet")
        if sub_pool.version != pool.version or not sub_pool.subnet_of(pool):
            raise fields.invalid("SubPool", str(sub_pool), f"a range inside Pool {pool}")

    ipam_options = fields.parse_string_map(member(obj, "Options"), "Options")
    options.reject_driver_options(ipam_options, options.IPAM_OPTION)
    neutron, rest = options.split_neutron_options(ipam_options, options.IPAM_OPTION)
    return model.RequestPool(address_space=address_space, pool=pool, sub_pool=sub_pool, v6=v6,
                             neutron=neutron, options=rest)


def parse_release_pool(body: Any) -> model.ReleasePool:
    obj = request_object(body)
    return model.ReleasePool(pool_id=fields.parse_pool_id(member(obj, "PoolID"), "PoolID"))


def parse_request_address(body: Any) -> model.RequestAddress:
    """Parse IpamDriver.RequestAddress.

    `options` keeps the keys other than RequestAddressType and the MAC
    address, which become `kind` and `mac_address`.
    """
    obj = request_object(body)
    pool_id = fields.parse_pool_id(member(obj, "PoolID"), "PoolID")
    address = fields.parse_ip_address(member(obj, "Address"), "Address")
    request_options = fields.parse_string_map(member(obj, "Options"), "Options")
    mac_address = options.parse_mac_option(
        request_options.get(options.MAC_ADDRESS_KEY),
        f"Options[{fields.show(options.MAC_ADDRESS_KEY)}]")
    rest = {key: value for key, value in request_options.items()
            if key not in (options.REQUEST_ADDRESS_TYPE_KEY, options.MAC_ADDRESS_KEY)}
    return model.RequestAddress(pool_id=pool_id, address=address,
                                kind=options.address_kind(request_options),
                                mac_address=mac_address, options=rest)


def parse_release_address(body: Any) -> model.ReleaseAddress:
    obj = request_object(body)
    pool_id = fields.parse_pool_id(member(obj, "PoolID"), "PoolID")
    address = fields.parse_ip_address(member(obj, "Address"), "Address")
    if address is None:
        raise fields.invalid("Address", member(obj, "Address"),
                             "the address that RequestAddress returned, such as 10.0.0.5")
    return model.ReleaseAddress(pool_id=pool_id, address=address)


# --- Network driver ------------------------------------------------------------


def parse_ipam_data(value: Any, field: str, version: int) -> model.IPAMData:
    """Parse one entry of IPv4Data or IPv6Data, whose gateway and aux addresses must be in its pool."""
    obj = fields.parse_object(value, field)
    address_space = fields.parse_address_space(member(obj, "AddressSpace"),
                                               f"{field}.AddressSpace")
    pool = fields.parse_ip_network(member(obj, "Pool"), f"{field}.Pool", version=version)
    if pool is None:
        raise fields.invalid(f"{field}.Pool", member(obj, "Pool"),
                             f"the IPv{version} CIDR of the network")

    gateway = fields.parse_ip_interface(member(obj, "Gateway"), f"{field}.Gateway",
                                        version=version)
    if gateway is not None and gateway.ip not in pool:
        raise fields.invalid(f"{field}.Gateway", member(obj, "Gateway"),
                             f"an address inside Pool {pool}")

    aux_addresses = {}
    aux_field = f"{field}.AuxAddresses"
    for name, text in fields.parse_object(member(obj, "AuxAddresses"), aux_field).items():
        item_field = f"{aux_field}[{fields.show(name)}]"
        aux = fields.parse_ip_interface(text, item_field, version=version)
        if aux is None or aux.ip not in pool:
            raise fields.invalid(item_field, text, f"an address inside Pool {pool}")
        aux_addresses[name] = aux

    return model.IPAMData(address_space=address_space, pool=pool, gateway=gateway,
                          aux_addresses=aux_addresses)


def parse_ipam_data_list(value: Any, field: str, version: int) -> tuple[model.IPAMData, ...]:
    return tuple(parse_ipam_data(item, f"{field}[{index}]", version)
                 for index, item in enumerate(fields.parse_array(value, field)))


def parse_create_network(body: Any) -> model.CreateNetwork:
    """Parse NetworkDriver.CreateNetwork, including the -o options in com.docker.network.generic.

    `generic_options` keeps the -o keys other than neutron.* and kuryrnet.*.
    """
    obj = request_object(body)
    network_id = fields.parse_docker_id(member(obj, "NetworkID"), "NetworkID")
    ipv4_data = parse_ipam_data_list(member(obj, "IPv4Data"), "IPv4Data", 4)
    ipv6_data = parse_ipam_data_list(member(obj, "IPv6Data"), "IPv6Data", 6)

    network_options = fields.parse_object(member(obj, "Options"), "Options")
    generic = fields.parse_string_map(
        member(network_options, GENERIC_OPTIONS_KEY), f"Options[{fields.show(GENERIC_OPTIONS_KEY)}]")
    neutron, rest = options.split_neutron_options(generic, options.NETWORK_OPTION)
    port_pool, rest = options.split_port_pool_options(rest, options.NETWORK_OPTION)
    enable_ipv6 = fields.parse_bool(member(network_options, ENABLE_IPV6_KEY),
                                    f"Options[{fields.show(ENABLE_IPV6_KEY)}]")
    internal = fields.parse_bool(member(network_options, INTERNAL_KEY),
                                 f"Options[{fields.show(INTERNAL_KEY)}]")

    return model.CreateNetwork(network_id=network_id, ipv4_data=ipv4_data, ipv6_data=ipv6_data,
                               neutron=neutron, port_pool=port_pool, generic_options=rest,
                               enable_ipv6=enable_ipv6, internal=internal)


def parse_network_ref(body: Any) -> model.NetworkRef:
    """Parse DeleteNetwork and FreeNetwork."""
    obj = request_object(body)
    return model.NetworkRef(network_id=fields.parse_docker_id(member(obj, "NetworkID"), "NetworkID"))


def parse_endpoint_ref(body: Any) -> model.EndpointRef:
    """Parse DeleteEndpoint, EndpointOperInfo, Leave and RevokeExternalConnectivity."""
    obj = request_object(body)
    return model.EndpointRef(
        network_id=fields.parse_docker_id(member(obj, "NetworkID"), "NetworkID"),
        endpoint_id=fields.parse_docker_id(member(obj, "EndpointID"), "EndpointID"))


def _endpoint_options(obj: dict) -> tuple[dict, tuple[model.ExposedPort, ...]]:
    """Parse the Options of an endpoint call and the exposed ports in it."""
    endpoint_options = fields.parse_object(member(obj, "Options"), "Options")
    exposed_ports = options.parse_exposed_ports(
        member(endpoint_options, options.EXPOSED_PORTS_KEY),
        f"Options[{fields.show(options.EXPOSED_PORTS_KEY)}]")
    return endpoint_options, exposed_ports


def parse_create_endpoint(body: Any) -> model.CreateEndpoint:
    """Parse NetworkDriver.CreateEndpoint.

    The MAC comes from Interface.MacAddress only, which Docker sets when it
    has chosen the MAC. When it is empty, the driver must return the port's
    MAC, or the container's interface would keep a random one that Neutron
    does not know. The MAC option is still checked, because a malformed one
    means a malformed request.
    """
    obj = request_object(body)
    network_id = fields.parse_docker_id(member(obj, "NetworkID"), "NetworkID")
    endpoint_id = fields.parse_docker_id(member(obj, "EndpointID"), "EndpointID")

    interface = fields.parse_object(member(obj, "Interface"), "Interface")
    address = fields.parse_ip_interface(member(interface, "Address"), "Interface.Address",
                                        version=4)
    address_ipv6 = fields.parse_ip_interface(member(interface, "AddressIPv6"),
                                             "Interface.AddressIPv6", version=6)
    mac_address = fields.parse_mac_address(member(interface, "MacAddress"),
                                           "Interface.MacAddress")

    endpoint_options, exposed_ports = _endpoint_options(obj)
    options.parse_mac_option(member(endpoint_options, options.MAC_ADDRESS_KEY),
                             f"Options[{fields.show(options.MAC_ADDRESS_KEY)}]")

    return model.CreateEndpoint(network_id=network_id, endpoint_id=endpoint_id, address=address,
                                address_ipv6=address_ipv6, mac_address=mac_address,
                                exposed_ports=exposed_ports)


def parse_join(body: Any) -> model.Join:
    """Parse NetworkDriver.Join. Its Options repeat CreateEndpoint's and are only type-checked."""
    obj = request_object(body)
    network_id = fields.parse_docker_id(member(obj, "NetworkID"), "NetworkID")
    endpoint_id = fields.parse_docker_id(member(obj, "EndpointID"), "EndpointID")
    sandbox_key = fields.parse_sandbox_key(member(obj, "SandboxKey"), "SandboxKey")
    _endpoint_options(obj)
    return model.Join(network_id=network_id, endpoint_id=endpoint_id, sandbox_key=sandbox_key)


def parse_external_connectivity(body: Any) -> model.ExternalConnectivity:
    """Parse NetworkDriver.ProgramExternalConnectivity."""
    obj = request_object(body)
    network_id = fields.parse_docker_id(member(obj, "NetworkID"), "NetworkID")
    endpoint_id = fields.parse_docker_id(member(obj, "EndpointID"), "EndpointID")
    _, exposed_ports = _endpoint_options(obj)
    return model.ExternalConnectivity(network_id=network_id, endpoint_id=endpoint_id,
                                      exposed_ports=exposed_ports)


# --- Calls that reach no driver method -------------------------------------------


def check_discovery(body: Any) -> None:
    """Check NetworkDriver.DiscoverNew and DiscoverDelete, whose content is not used."""
    obj = request_object(body)
    discovery_type = member(obj, "DiscoveryType")
    if discovery_type is not fields.MISSING and discovery_type is not None:
        fields.parse_int(discovery_type, "DiscoveryType", 0, 2**31 - 1)


def check_allocate_network(body: Any) -> str:
    """Check NetworkDriver.AllocateNetwork and return its network id."""
    obj = request_object(body)
    network_id = fields.parse_docker_id(member(obj, "NetworkID"), "NetworkID")
    fields.parse_string_map(member(obj, "Options"), "Options")
    fields.parse_array(member(obj, "IPv4Data"), "IPv4Data")
    fields.parse_array(member(obj, "IPv6Data"), "IPv6Data")
    return network_id


def check_gw_alloc(body: Any) -> None:
    """Check NetworkDriver.GwAllocCheck, whose Options are CreateNetwork's."""
    obj = request_object(body)
    fields.parse_object(member(obj, "Options"), "Options")
