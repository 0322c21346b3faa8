"""Binding driver for `binding:vif_type` "ovs": veth ports on an Open vSwitch bridge.

The host end of the endpoint's veth pair becomes a port of the integration
bridge, and its Interface row carries the external_ids that ovn-controller
(or the Neutron OVS agent) uses to find the Neutron port. With hybrid plug
(`vif_details["ovs_hybrid_plug"]`), the host end goes into a per-port Linux
bridge instead, and a second veth pair connects that bridge to OVS.
"""

from __future__ import annotations

import logging
import time

from kuryrnet.binding import hybrid_names, markers, netlink, ovsdb, veth_names
from kuryrnet.binding.base import BindingDriver, HostPort, Vif
from kuryrnet.errors import BindingError

LOG = logging.getLogger(__name__)

VIF_TYPE = "ovs"

# Interface external_ids that describe the Neutron port. ovn-controller binds
# the logical port whose name equals iface-id.
IFACE_ID = "iface-id"
ATTACHED_MAC = "attached-mac"
IFACE_STATUS = "iface-status"
VM_UUID = "vm-uuid"
# Set by ovn-controller to "true" once the interface's flows are installed.
OVN_INSTALLED = "ovn-installed"

# kuryrnet's own external_ids: the Docker endpoint id (the marker that
# reconciliation searches for) and the host end of the container's veth pair,
# which differs from the OVS interface in a hybrid plug.
ENDPOINT_KEY = "kuryrnet-endpoint"
VETH_KEY = "kuryrnet-veth"


class OvsDriver(BindingDriver):
    """Plug endpoints into Open vSwitch, directly or through a per-port Linux bridge."""

    vif_types = (VIF_TYPE,)

    def plug(self, vif: Vif) -> None:
        host, container = veth_names(self.conf, vif)
        bridge = self._ovs_bridge(vif)
        started = time.monotonic()
        # Connect first, so that an unreachable OVSDB fails before any host change.
        client = self._ovsdb()

        alias = markers.veth_alias(VIF_TYPE, vif.endpoint_id, vif.port_id)
        created = netlink.ensure_veth_pair(host, container, vif.mac_address, vif.mtu, alias=alias)
        try:
            ovs_port = self._attach_host_end(vif, host)
            client.ensure_port(bridge, ovs_port, self._external_ids(vif, host))
        except BindingError:
            # Roll back only what this call created, so that a failed replug
            # does not tear down an endpoint that was working.
            if created:
                self._remove_quietly(vif, client)
            raise

        LOG.info("Plugged endpoint %s (port %s) into OVS bridge %s as %s in %.1f ms",
                 vif.endpoint_id, vif.port_id, bridge, ovs_port,
                 (time.monotonic() - started) * 1000)

    def _attach_host_end(self, vif: Vif, host: str) -> str:
        """Prepare the host end for OVS and return the name of the OVS port to add."""
        if not uses_hybrid_plug(vif):
            netlink.set_link_up(host)
            return host

        linux_bridge, bridge_veth, ovs_veth = hybrid_names(vif.endpoint_id)
        netlink.ensure_bridge(linux_bridge, vif.mtu, alias=markers.bridge_alias(VIF_TYPE))
        netlink.set_master(host, linux_bridge)
        netlink.set_link_up(host)

        netlink.ensure_veth_pair(bridge_veth, ovs_veth, None, vif.mtu)
        netlink.set_master(bridge_veth, linux_bridge)
        netlink.set_link_up(bridge_veth)
        netlink.set_link_up(ovs_veth)
        return ovs_veth

    def unplug(self, vif: Vif) -> None:
        # Both layouts are removed whatever vif_details contains now, so that an
        # endpoint plugged under other details is still cleaned up.
        host, _ = veth_names(self.conf, vif)
        linux_bridge, bridge_veth, ovs_veth = hybrid_names(vif.endpoint_id)
        if markers.marked_for_other_vif_type(netlink.get_link(host), VIF_TYPE):
            LOG.debug("Skipped OVS unplug of endpoint %s: %s belongs to another binding driver",
                      vif.endpoint_id, host)
            return

        try:
            client = self._ovsdb()
        except BindingError:
            # When the vif type is unknown (after a restart), the unplug of every
            # driver runs, so a host without OVS must not fail an endpoint that
            # has no OVS interfaces.
            if not any(netlink.get_link(name) for name in (host, bridge_veth, linux_bridge)):
                LOG.info("Skipped OVS unplug of endpoint %s: OVSDB is unreachable and the "
                         "endpoint has no host interface", vif.endpoint_id)
                return
            raise

        self._remove(vif, client)
        LOG.info("Unplugged endpoint %s (port %s) from OVS", vif.endpoint_id, vif.port_id)

    def _remove(self, vif: Vif, client: ovsdb.OvsdbClient) -> None:
        host, _ = veth_names(self.conf, vif)
        linux_bridge, bridge_veth, ovs_veth = hybrid_names(vif.endpoint_id)
        client.delete_ports([host, ovs_veth])
        netlink.delete_link(host)
        netlink.delete_link(bridge_veth)  # deletes its peer ovs_veth too
        netlink.delete_link(linux_bridge)

    def wait_ready(self, vif: Vif, timeout: float) -> bool:
        """Wait for ovn-controller to set external_ids:ovn-installed on the port's Interface."""
        ovs_port = self._ovs_port_name(vif)
        ready = self._ovsdb().wait_for_interface_mark(ovs_port, OVN_INSTALLED, "true", timeout)
        if not ready:
            LOG.info("OVS interface %s of endpoint %s (port %s) was not marked %s within %.1f s",
                     ovs_port, vif.endpoint_id, vif.port_id, OVN_INSTALLED, timeout)
        return ready

    def list_ports(self) -> list[HostPort]:
        """Return the ports marked in OVSDB, plus marked veths whose OVSDB row is gone."""
        ports = {}
        for interface in self._ovsdb().find_interfaces_with_key(ENDPOINT_KEY):
            ids = interface.external_ids
            host_ifname = ids.get(VETH_KEY, interface.name)
            ports[host_ifname] = HostPort(host_ifname=host_ifname, port_id=ids.get(IFACE_ID),
                                          endpoint_id=ids[ENDPOINT_KEY])
        for port in markers.marked_host_ports(netlink.list_links(), VIF_TYPE):
            ports.setdefault(port.host_ifname, port)
        return list(ports.values())

    def _ovs_bridge(self, vif: Vif) -> str:
        return vif.vif_details.get("bridge_name") or self.conf.binding.integration_bridge

    def _ovs_port_name(self, vif: Vif) -> str:
        if uses_hybrid_plug(vif):
            return hybrid_names(vif.endpoint_id)[2]
        return veth_names(self.conf, vif)[0]

    def _ovsdb(self) -> ovsdb.OvsdbClient:
        return ovsdb.client_for(self.conf.binding.ovsdb_connection)

    @staticmethod
    def _external_ids(vif: Vif, host: str) -> dict[str, str]:
        return {
            IFACE_ID: vif.port_id,
            ATTACHED_MAC: vif.mac_address,
            IFACE_STATUS: "active",
            VM_UUID: vif.endpoint_id,
            ENDPOINT_KEY: vif.endpoint_id,
            VETH_KEY: host,
        }

    def _remove_quietly(self, vif: Vif, client: ovsdb.OvsdbClient) -> None:
        try:
            self._remove(vif, client)
        except BindingError as exc:
            LOG.warning("Failed to roll back the plug of endpoint %s (port %s): %s",
                        vif.endpoint_id, vif.port_id, exc)


def uses_hybrid_plug(vif: Vif) -> bool:
    """Return whether `vif_details` requests a per-port Linux bridge between veth and OVS."""
    value = vif.vif_details.get("ovs_hybrid_plug", False)
    return value is True or str(value).lower() == "true"
