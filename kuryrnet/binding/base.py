"""The contract between the operations and the host binding drivers.

A binding driver wires one Neutron port to the host for one `binding:vif_type`
(for example `ovs` or `bridge`). Drivers are plug-ins found through the
`kuryrnet.binding_drivers` entry point group, so a new backend is a new module.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Vif:
    """Everything a driver needs to wire one endpoint's Neutron port."""

    port_id: str
    network_id: str  # Neutron network id
    endpoint_id: str  # Docker endpoint id
    mac_address: str
    mtu: int
    vif_type: str
    vif_details: dict = field(default_factory=dict)
    host_ifname: str = ""  # host end of the veth pair, stays on the host
    container_ifname: str = ""  # other end, Docker moves it into the sandbox


@dataclass(frozen=True)
class HostPort:
    """A host interface that a driver created, as found on the host (for reconciliation)."""

    host_ifname: str
    port_id: str | None
    endpoint_id: str | None


class BindingDriver(abc.ABC):
    """Wire and unwire endpoints for the vif types in `vif_types`.

    Every method is idempotent: plugging an endpoint that is already plugged,
    or unplugging one that is gone, succeeds.
    """

    vif_types: tuple[str, ...] = ()

    def __init__(self, conf):
        self.conf = conf

    @abc.abstractmethod
    def plug(self, vif: Vif) -> None:
        """Create the veth pair and attach its host end; MAC and MTU set on both ends."""

    @abc.abstractmethod
    def unplug(self, vif: Vif) -> None:
        """Remove the host interface and the switch or bridge port of `vif`."""

    def wait_ready(self, vif: Vif, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the backend to program the port; return whether it did."""
        return False

    def list_ports(self) -> list[HostPort]:
        """Return the host ports this driver created, for reconciliation."""
        return []
