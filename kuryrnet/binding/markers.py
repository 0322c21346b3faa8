"""The IFLA_IFALIAS marker that identifies the host interfaces kuryrnet creates.

The host end of every veth pair carries `kuryrnet:<vif type>:<endpoint id>:<port id>`,
so reconciliation finds the interfaces of a driver even when its switch lost
them (for example an OVS database that was reset). Bridges that kuryrnet
created carry `kuryrnet:<vif type>:bridge`.
"""

from __future__ import annotations

from dataclasses import dataclass

from kuryrnet.binding.base import HostPort
from kuryrnet.binding.netlink import Link

MARKER_PREFIX = "kuryrnet"
BRIDGE_MARK = "bridge"


@dataclass(frozen=True)
class VethMark:
    """The parsed marker of one host veth end."""

    vif_type: str
    endpoint_id: str
    port_id: str


def veth_alias(vif_type: str, endpoint_id: str, port_id: str) -> str:
    """Return the marker for the host end of an endpoint's veth pair."""
    return f"{MARKER_PREFIX}:{vif_type}:{endpoint_id}:{port_id}"


def bridge_alias(vif_type: str) -> str:
    """Return the marker for a Linux bridge that a driver of `vif_type` created."""
    return f"{MARKER_PREFIX}:{vif_type}:{BRIDGE_MARK}"


def parse_veth_alias(alias: str | None) -> VethMark | None:
    """Return the marker in `alias`, or None when it is not a veth marker."""
    if not alias:
        return None
    parts = alias.split(":")
    if len(parts) != 4 or parts[0] != MARKER_PREFIX:
        return None
    return VethMark(vif_type=parts[1], endpoint_id=parts[2], port_id=parts[3])


def marked_for_other_vif_type(link: Link | None, vif_type: str) -> bool:
    """Return whether `link` carries the veth marker of a vif type other than `vif_type`."""
    if link is None:
        return False
    mark = parse_veth_alias(link.alias)
    return mark is not None and mark.vif_type != vif_type


def marked_host_ports(links: list[Link], vif_type: str) -> list[HostPort]:
    """Return the host ports among `links` whose marker names `vif_type`."""
    ports = []
    for link in links:
        mark = parse_veth_alias(link.alias)
        if mark is not None and mark.vif_type == vif_type:
            ports.append(HostPort(host_ifname=link.name, port_id=mark.port_id or None,
                                  endpoint_id=mark.endpoint_id))
    return ports
