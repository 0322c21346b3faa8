"""Typed requests and responses shared by the API layer and the operations.

The API layer parses Docker's JSON into these objects and validates every
field; the operations never see raw dictionaries from the wire.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
from dataclasses import dataclass, field

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclass(frozen=True)
class NeutronOptions:
    """The `neutron.*` options of `-o` or `--ipam-opt`: existing resources to attach."""

    net_uuid: str | None = None
    net_name: str | None = None
    net_shared: bool | None = None
    subnet_uuid: str | None = None
    subnet_name: str | None = None
    pool_uuid: str | None = None
    pool_name: str | None = None
    subnet_uuid_v6: str | None = None
    subnet_name_v6: str | None = None
    pool_uuid_v6: str | None = None
    pool_name_v6: str | None = None

    def subnet_ref(self, version: int) -> tuple[str | None, str | None]:
        """Return the (uuid, name) of the existing subnet asked for this IP version."""
        if version == 6:
            return self.subnet_uuid_v6, self.subnet_name_v6
        return self.subnet_uuid, self.subnet_name

    def pool_ref(self, version: int) -> tuple[str | None, str | None]:
        """Return the (uuid, name) of the existing subnet pool asked for this IP version."""
        if version == 6:
            return self.pool_uuid_v6, self.pool_name_v6
        return self.pool_uuid, self.pool_name

    def merged(self, other: NeutronOptions) -> NeutronOptions:
        """Return these options with the unset ones taken from `other`."""
        values = {}
        for item in dataclasses.fields(self):
            mine = getattr(self, item.name)
            values[item.name] = mine if mine is not None else getattr(other, item.name)
        return NeutronOptions(**values)


@dataclass(frozen=True)
class PortPoolOptions:
    """Per-network port pool settings from `-o kuryrnet.port_pool.*`; None means the configured default."""

    enabled: bool | None = None
    low: int | None = None
    high: int | None = None


@dataclass(frozen=True)
class IPAMData:
    """One address family's IPAM result as Docker passes it to CreateNetwork."""

    address_space: str
    pool: IPNetwork
    gateway: IPInterface | None
    aux_addresses: dict[str, IPInterface] = field(default_factory=dict)


# --- IPAM driver -------------------------------------------------------------


@dataclass(frozen=True)
class RequestPool:
    address_space: str
    pool: IPNetwork | None
    sub_pool: IPNetwork | None
    v6: bool
    neutron: NeutronOptions = NeutronOptions()
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PoolResponse:
    pool_id: str
    pool: IPNetwork
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReleasePool:
    pool_id: str


class AddressKind(enum.Enum):
    GATEWAY = "gateway"
    ENDPOINT = "endpoint"


@dataclass(frozen=True)
class RequestAddress:
    pool_id: str
    address: IPAddress | None
    kind: AddressKind
    mac_address: str | None = None
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AddressResponse:
    address: IPInterface
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReleaseAddress:
    pool_id: str
    address: IPAddress


# --- Network driver -------------------------------------------------------------


@dataclass(frozen=True)
class CreateNetwork:
    network_id: str
    ipv4_data: tuple[IPAMData, ...]
    ipv6_data: tuple[IPAMData, ...]
    neutron: NeutronOptions = NeutronOptions()
    port_pool: PortPoolOptions = PortPoolOptions()
    generic_options: dict[str, str] = field(default_factory=dict)
    enable_ipv6: bool = False
    internal: bool = False


@dataclass(frozen=True)
class NetworkRef:
    """DeleteNetwork and FreeNetwork."""

    network_id: str


@dataclass(frozen=True)
class ExposedPort:
    protocol: str  # "tcp", "udp", "sctp" or "icmp"
    port: int  # 0 for icmp


@dataclass(frozen=True)
class CreateEndpoint:
    network_id: str
    endpoint_id: str
    address: ipaddress.IPv4Interface | None
    address_ipv6: ipaddress.IPv6Interface | None
    mac_address: str | None
    exposed_ports: tuple[ExposedPort, ...] = ()


@dataclass(frozen=True)
class EndpointInterface:
    """Fields of CreateEndpoint's answer; only those Docker left empty are set."""

    mac_address: str | None = None
    address: str | None = None
    address_ipv6: str | None = None


@dataclass(frozen=True)
class EndpointRef:
    """DeleteEndpoint, EndpointOperInfo, Leave and RevokeExternalConnectivity."""

    network_id: str
    endpoint_id: str


@dataclass(frozen=True)
class Join:
    network_id: str
    endpoint_id: str
    sandbox_key: str


@dataclass(frozen=True)
class StaticRoute:
    destination: IPNetwork
    next_hop: IPAddress | None  # None: directly connected (RouteType 1)


@dataclass(frozen=True)
class JoinResponse:
    src_name: str
    dst_prefix: str
    gateway: ipaddress.IPv4Address | None
    gateway_ipv6: ipaddress.IPv6Address | None
    static_routes: tuple[StaticRoute, ...] = ()
    disable_gateway_service: bool = True


@dataclass(frozen=True)
class ExternalConnectivity:
    """ProgramExternalConnectivity."""

    network_id: str
    endpoint_id: str
    exposed_ports: tuple[ExposedPort, ...] = ()
