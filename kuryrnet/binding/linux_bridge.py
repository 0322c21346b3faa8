"""Binding driver for `binding:vif_type` "bridge": veth ports on a per-network Linux bridge."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from kuryrnet.binding import MAX_IFNAME_LENGTH, NETWORK_BRIDGE_PREFIX, markers, netlink, veth_names
from kuryrnet.binding.base import BindingDriver, HostPort, Vif
from kuryrnet.errors import BindingError

LOG = logging.getLogger(__name__)

VIF_TYPE = "bridge"
# Characters of the Neutron network id in a bridge name. The Neutron Linux
# bridge agent names its bridges the same way, "brq" + network_id[0:11].
NETWORK_ID_CHARACTERS = 11

_BRIDGE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")


class LinuxBridgeDriver(BindingDriver):
    """Plug endpoints into the Linux bridge of their Neutron network."""

    vif_types = (VIF_TYPE,)

    def __init__(self, conf):
        super().__init__(conf)
        # Plug and unplug on one bridge run one at a time, so an unplug that
        # finds the bridge empty cannot delete it while a plug is adding a
        # port. Entries stay for the life of the process: one small lock per
        # bridge name.
        # NOTE: the locks are per process, so two daemons on one host could race.
        self._bridge_locks: dict[str, threading.Lock] = {}
        self._bridge_locks_guard = threading.Lock()

    def plug(self, vif: Vif) -> None:
        host, container = veth_names(self.conf, vif)
        bridge = bridge_name(vif)
        alias = markers.veth_alias(VIF_TYPE, vif.endpoint_id, vif.port_id)

        with self._locked(bridge):
            netlink.ensure_bridge(bridge, vif.mtu, alias=markers.bridge_alias(VIF_TYPE))
            created = False
            try:
                created = netlink.ensure_veth_pair(host, container, vif.mac_address, vif.mtu,
                                                   alias=alias)
                netlink.set_master(host, bridge)
                netlink.set_link_up(host)
            except BindingError:
                # Roll back only what this call created, so that a failed
                # replug does not tear down an endpoint that was working.
                self._remove_quietly(host if created else None, bridge)
                raise

        LOG.info("Plugged endpoint %s (port %s) into bridge %s as %s",
                 vif.endpoint_id, vif.port_id, bridge, host)

    def unplug(self, vif: Vif) -> None:
        host, _ = veth_names(self.conf, vif)
        if markers.marked_for_other_vif_type(netlink.get_link(host), VIF_TYPE):
            LOG.debug("Skipped bridge unplug of endpoint %s: %s belongs to another binding "
                      "driver", vif.endpoint_id, host)
            return
        # NOTE: when the veth is already gone and the Vif has no network id (as
        # from reconciliation), an empty bridge of that network stays behind.
        bridge = self._current_bridge(host) or bridge_name(vif)

        with self._locked(bridge):
            netlink.delete_link(host)
            self._delete_bridge_if_unused(bridge)
        LOG.info("Unplugged endpoint %s (port %s) from bridge %s",
                 vif.endpoint_id, vif.port_id, bridge)

    def list_ports(self) -> list[HostPort]:
        return markers.marked_host_ports(netlink.list_links(), VIF_TYPE)

    @contextmanager
    def _locked(self, bridge: str) -> Iterator[None]:
        with self._bridge_locks_guard:
            lock = self._bridge_locks.setdefault(bridge, threading.Lock())
        with lock:
            yield

    @staticmethod
    def _current_bridge(host: str) -> str | None:
        """Return the name of the bridge that `host` is enslaved to, if any."""
        link = netlink.get_link(host)
        if link is None or link.master_index is None:
            return None
        for candidate in netlink.list_links():
            if candidate.index == link.master_index:
                return candidate.name
        return None

    @staticmethod
    def _delete_bridge_if_unused(bridge: str) -> None:
        # Only bridges that this driver created are deleted: a bridge that an
        # operator or a Neutron agent made keeps existing when it is empty.
        link = netlink.get_link(bridge)
        if link is None or link.alias != markers.bridge_alias(VIF_TYPE):
            return
        ports = netlink.bridge_port_names(bridge)
        if ports:
            return
        netlink.delete_link(bridge)
        LOG.info("Deleted bridge %s: its last port was unplugged", bridge)

    def _remove_quietly(self, host: str | None, bridge: str) -> None:
        try:
            if host is not None:
                netlink.delete_link(host)
            self._delete_bridge_if_unused(bridge)
        except BindingError as exc:
            LOG.warning("Failed to roll back veth %s on bridge %s: %s", host, bridge, exc)


def bridge_name(vif: Vif) -> str:
    """Return the Linux bridge of `vif`: vif_details["bridge_name"], else "brq" + network id."""
    name = vif.vif_details.get("bridge_name") or (
        NETWORK_BRIDGE_PREFIX + vif.network_id[:NETWORK_ID_CHARACTERS])
    if not 1 <= len(name) <= MAX_IFNAME_LENGTH or not _BRIDGE_NAME_PATTERN.match(name):
        raise BindingError(f"invalid bridge name {name!r} for port {vif.port_id}: it must be "
                           f"1 to {MAX_IFNAME_LENGTH} letters, digits, '_', '.' or '-'")
    return name
