"""Parsers for the option maps inside Docker's requests.

Users set `-o key=value` on `docker network create` (the
`com.docker.network.generic` map of CreateNetwork) and `--ipam-opt key=value`
(the Options of RequestPool). Keys under `neutron.` and `kuryrnet.` belong to
this driver and are checked exactly; other keys pass through untouched.
Docker itself adds endpoint options such as the exposed ports and the
requested MAC address.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from kuryrnet import model
from kuryrnet.api import fields
from kuryrnet.errors import InvalidRequest

NETWORK_OPTION = "network option"  # -o on docker network create
IPAM_OPTION = "IPAM option"  # --ipam-opt on docker network create

NEUTRON_PREFIX = "neutron."
KURYRNET_PREFIX = "kuryrnet."

# Option key -> model.NeutronOptions field.
NEUTRON_KEYS = {
    "neutron.net.uuid": "net_uuid",
    "neutron.net.name": "net_name",
    "neutron.net.shared": "net_shared",
    "neutron.subnet.uuid": "subnet_uuid",
    "neutron.subnet.name": "subnet_name",
    "neutron.pool.uuid": "pool_uuid",
    "neutron.pool.name": "pool_name",
    "neutron.subnet.v6.uuid": "subnet_uuid_v6",
    "neutron.subnet.v6.name": "subnet_name_v6",
    "neutron.pool.v6.uuid": "pool_uuid_v6",
    "neutron.pool.v6.name": "pool_name_v6",
}

PORT_POOL_ENABLED = "kuryrnet.port_pool.enabled"
PORT_POOL_LOW = "kuryrnet.port_pool.low"
PORT_POOL_HIGH = "kuryrnet.port_pool.high"
PORT_POOL_KEYS = (PORT_POOL_ENABLED, PORT_POOL_LOW, PORT_POOL_HIGH)
# NOTE: this bound catches typing mistakes and is not a measured capacity.
# Each ready port is a Neutron port that this host keeps.
MAX_PORT_POOL_SIZE = 1000

# Keys that Docker puts into endpoint and RequestAddress options.
EXPOSED_PORTS_KEY = "com.docker.network.endpoint.exposedports"
MAC_ADDRESS_KEY = "com.docker.network.endpoint.macaddress"
REQUEST_ADDRESS_TYPE_KEY = "RequestAddressType"
GATEWAY_ADDRESS_TYPE = "com.docker.network.gateway"

# IANA protocol numbers that Docker uses in exposed ports.
PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp", 132: "sctp"}


def split_neutron_options(options: dict[str, str], kind: str) -> tuple[model.NeutronOptions, dict[str, str]]:
    """Parse the neutron.* keys of a string map and return them with the remaining keys.

    Raises InvalidRequest for an unknown neutron.* key, listing the valid ones.
    """
    values: dict[str, Any] = {}
    rest: dict[str, str] = {}
    for key, text in options.items():
        if not key.startswith(NEUTRON_PREFIX):
            rest[key] = text
            continue
        if key not in NEUTRON_KEYS:
            raise InvalidRequest(
                f"unknown {kind} {fields.show(key)}: the neutron options are "
                f"{', '.join(NEUTRON_KEYS)}")
        field = f"{kind} {key}"
        if key.endswith(".uuid"):
            values[NEUTRON_KEYS[key]] = fields.parse_uuid_text(text, field)
        elif key.endswith(".name"):
            values[NEUTRON_KEYS[key]] = fields.parse_name_text(text, field)
        else:
            values[NEUTRON_KEYS[key]] = fields.parse_bool_text(text, field)
    return model.NeutronOptions(**values), rest


def split_port_pool_options(options: dict[str, str], kind: str) -> tuple[model.PortPoolOptions, dict[str, str]]:
    """Parse the kuryrnet.* keys of a string map and return them with the remaining keys.

    Raises InvalidRequest for an unknown kuryrnet.* key and when low exceeds high.
    """
    rest = {key: text for key, text in options.items() if not key.startswith(KURYRNET_PREFIX)}
    for key in options:
        if key.startswith(KURYRNET_PREFIX) and key not in PORT_POOL_KEYS:
            raise InvalidRequest(
                f"unknown {kind} {fields.show(key)}: the kuryrnet options are "
                f"{', '.join(PORT_POOL_KEYS)}")

    enabled = low = high = None
    if PORT_POOL_ENABLED in options:
        enabled = fields.parse_bool_text(options[PORT_POOL_ENABLED], f"{kind} {PORT_POOL_ENABLED}")
    if PORT_POOL_LOW in options:
        low = fields.parse_int_text(options[PORT_POOL_LOW], f"{kind} {PORT_POOL_LOW}",
                                    0, MAX_PORT_POOL_SIZE)
    if PORT_POOL_HIGH in options:
        high = fields.parse_int_text(options[PORT_POOL_HIGH], f"{kind} {PORT_POOL_HIGH}",
                                     0, MAX_PORT_POOL_SIZE)
    if low is not None and high is not None and low > high:
        raise InvalidRequest(
            f"invalid {kind} {PORT_POOL_LOW} {low}: expected at most "
            f"{PORT_POOL_HIGH} ({high}), because the pool is refilled below low up to high")
    return model.PortPoolOptions(enabled=enabled, low=low, high=high), rest


def reject_driver_options(options: dict[str, str], kind: str) -> None:
    """Reject kuryrnet.* keys in a map where they have no meaning (the IPAM options)."""
    for key in options:
        if key.startswith(KURYRNET_PREFIX):
            raise InvalidRequest(
                f"unexpected {kind} {fields.show(key)}: kuryrnet.* options are network "
                f"driver options; pass them with -o on docker network create")


def parse_exposed_ports(value: Any, field: str) -> tuple[model.ExposedPort, ...]:
    """Parse Docker's exposed ports, such as [{"Proto": 6, "Port": 80}]."""
    ports = []
    for index, item in enumerate(fields.parse_array(value, field)):
        entry = fields.parse_object(item, f"{field}[{index}]")
        protocol_field = f"{field}[{index}].Proto"
        number = fields.member(entry, "Proto")
        if isinstance(number, bool) or not isinstance(number, int) or number not in PROTOCOLS:
            raise fields.invalid(
                protocol_field, number,
                "an IP protocol number: 1 (icmp), 6 (tcp), 17 (udp) or 132 (sctp)")
        protocol = PROTOCOLS[number]
        port_field = f"{field}[{index}].Port"
        if protocol == "icmp":
            # ICMP has no ports. Docker sends 0; any other number is ignored
            # rather than failing a container start over a field with no meaning.
            port_value = fields.member(entry, "Port")
            if port_value is not fields.MISSING and port_value is not None:
                fields.parse_int(port_value, port_field, 0, 65535)
            port = 0
        else:
            port = fields.parse_int(fields.member(entry, "Port"), port_field, 1, 65535)
        ports.append(model.ExposedPort(protocol=protocol, port=port))
    return tuple(ports)


def parse_mac_option(value: Any, field: str) -> str | None:
    """Parse Docker's MAC option, the base64 of the six MAC bytes, into "aa:bb:cc:dd:ee:ff"."""
    text = fields.parse_string(value, field)
    if not text:
        return None
    expected = "the base64 encoding of a 6-byte unicast MAC address, such as AkIKYwAy"
    try:
        mac = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise fields.invalid(field, value, expected) from None
    if len(mac) != 6:
        raise fields.invalid(field, value, expected)
    return fields.check_mac_bytes(mac, field, value, expected)


def address_kind(options: dict[str, str]) -> model.AddressKind:
    """Return whether a RequestAddress requests the gateway or an endpoint address."""
    if options.get(REQUEST_ADDRESS_TYPE_KEY) == GATEWAY_ADDRESS_TYPE:
        return model.AddressKind.GATEWAY
    return model.AddressKind.ENDPOINT
