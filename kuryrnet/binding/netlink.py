"""Small netlink helpers on pyroute2 for veth pairs and Linux bridges.

Each `ensure_*` helper accepts state that already exists and converges it, so
a retried plug succeeds. Every netlink error is raised as BindingError naming
the interface it concerned.
"""

from __future__ import annotations

import contextlib
import errno
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from kuryrnet.errors import BindingError

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Link:
    """One network interface of the host's network namespace, as netlink reports it."""

    index: int
    name: str
    kind: str | None  # IFLA_INFO_KIND such as "veth" or "bridge", or None for physical devices
    mac_address: str | None
    mtu: int
    master_index: int | None
    alias: str | None
    is_up: bool


@contextlib.contextmanager
def _iproute() -> Iterator[IPRoute]:
    # Each call opens its own socket, so that worker threads never share a
    # pyroute2 IPRoute object, which keeps event loop state per thread. With
    # groups=0 the socket joins no broadcast group, so unread events cannot fill it.
    try:
        ipr = IPRoute(groups=0)
    except OSError as exc:
        raise BindingError(f"failed to open a netlink socket: {exc}") from exc
    try:
        yield ipr
    finally:
        ipr.close()


def _to_link(message) -> Link:
    return Link(
        index=message["index"],
        name=message.get("ifname"),
        kind=message.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND"),
        mac_address=message.get("address"),
        mtu=message.get("mtu"),
        master_index=message.get("master"),
        alias=message.get("ifalias"),
        is_up=bool(message["flags"] & 1),  # IFF_UP
    )


def get_link(name: str) -> Link | None:
    """Return the interface called `name`, or None when there is none."""
    with _iproute() as ipr:
        return _get_link(ipr, name)


def _get_link(ipr: IPRoute, name: str) -> Link | None:
    try:
        messages = ipr.link("get", ifname=name)
    except NetlinkError as exc:
        if exc.code == errno.ENODEV:
            return None
        raise BindingError(f"failed to read interface {name}: {exc}") from exc
    return _to_link(messages[0])


def list_links() -> list[Link]:
    """Return every interface of the host's network namespace."""
    with _iproute() as ipr:
        try:
            return [_to_link(message) for message in ipr.get_links()]
        except NetlinkError as exc:
            raise BindingError(f"failed to list interfaces: {exc}") from exc


def ensure_veth_pair(host: str, container: str, mac_address: str | None, mtu: int,
                     alias: str | None = None) -> bool:
    """Create the veth pair `host`/`container`, or converge the existing one.

    `mac_address` goes on the container end (None leaves the kernel's random
    one) and `mtu` on both ends. `alias` (IFLA_IFALIAS) marks the host end so
    that reconciliation can find it. When the pair exists but Docker already
    moved the container end into a sandbox, only the host end is corrected.
    Returns whether this call created the pair.
    """
    created = False
    with _iproute() as ipr:
        if _get_link(ipr, host) is None:
            created = _create_veth_pair(ipr, host, container, mac_address, mtu)
        try:
            _converge_veth_pair(ipr, host, container, mac_address, mtu, alias)
        except BindingError:
            if created:
                _delete_quietly(ipr, host)
            raise
    return created


def _converge_veth_pair(ipr: IPRoute, host: str, container: str, mac_address: str | None,
                        mtu: int, alias: str | None) -> None:
    host_link = _get_link(ipr, host)
    if host_link is None:
        raise BindingError(f"veth {host} disappeared right after it was created. "
                           f"Another process may be deleting it")
    if host_link.kind != "veth":
        raise BindingError(f"interface {host} exists but is a {host_link.kind or 'device'}, "
                           f"not a veth. Remove it or change [binding] veth_prefix")
    _converge_link(ipr, host_link, mtu=mtu, alias=alias)

    container_link = _get_link(ipr, container)
    if container_link is not None:
        _converge_link(ipr, container_link, mtu=mtu, mac_address=mac_address)


def _delete_quietly(ipr: IPRoute, name: str) -> None:
    try:
        ipr.link("del", ifname=name)
    except NetlinkError as exc:
        LOG.warning("Failed to delete interface %s after a failed plug step: %s", name, exc)


def _create_veth_pair(ipr: IPRoute, host: str, container: str, mac_address: str | None,
                      mtu: int) -> bool:
    peer = {"ifname": container, "mtu": mtu}
    if mac_address is not None:
        peer["address"] = mac_address
    try:
        ipr.link("add", ifname=host, kind="veth", mtu=mtu, peer=peer)
    except NetlinkError as exc:
        # A concurrent plug of the same endpoint may have created it first.
        if exc.code == errno.EEXIST and _get_link(ipr, host) is not None:
            return False
        if exc.code == errno.EEXIST:
            raise BindingError(f"failed to create veth {host} (peer {container}): "
                               f"an interface named {container} already exists. "
                               f"Remove it or change [binding] container_prefix") from exc
        raise BindingError(f"failed to create veth {host} (peer {container}): {exc}") from exc
    LOG.debug("Created veth %s with peer %s (MAC %s, MTU %d)", host, container, mac_address, mtu)
    return True


def _converge_link(ipr: IPRoute, link: Link, mtu: int, mac_address: str | None = None,
                   alias: str | None = None) -> None:
    changes: dict = {}
    if link.mtu != mtu:
        changes["mtu"] = mtu
    if mac_address is not None and (link.mac_address or "").lower() != mac_address.lower():
        changes["address"] = mac_address
    if alias is not None and link.alias != alias:
        changes["ifalias"] = alias
    if not changes:
        return
    try:
        ipr.link("set", index=link.index, **changes)
    except NetlinkError as exc:
        raise BindingError(f"failed to set {', '.join(changes)} of interface {link.name}: "
                           f"{exc}") from exc
    LOG.debug("Corrected interface %s: %s", link.name, changes)


def ensure_bridge(name: str, mtu: int, alias: str | None = None) -> bool:
    """Create the Linux bridge `name` with `mtu` and bring it up; converge an existing one.

    `alias` (IFLA_IFALIAS) is set only when this call creates the bridge, so
    that it marks the bridges kuryrnet owns. Returns whether this call created it.
    """
    created = False
    with _iproute() as ipr:
        if _get_link(ipr, name) is None:
            created = _create_bridge(ipr, name)

        link = _get_link(ipr, name)
        if link is None:
            raise BindingError(f"bridge {name} disappeared right after it was created. "
                               f"Another process may be deleting it")
        if link.kind != "bridge":
            raise BindingError(f"interface {name} exists but is a {link.kind or 'device'}, "
                               f"not a Linux bridge")
        # Once an MTU is set on a bridge, the kernel stops adjusting the bridge's
        # MTU to that of its ports (seen on Linux 6.18), so the MTU stays as set.
        _converge_link(ipr, link, mtu=mtu, alias=alias if created else None)
        _set_up(ipr, link)
    return created


def _create_bridge(ipr: IPRoute, name: str) -> bool:
    try:
        ipr.link("add", ifname=name, kind="bridge")
    except NetlinkError as exc:
        if exc.code == errno.EEXIST:
            return False
        raise BindingError(f"failed to create bridge {name}: {exc}") from exc
    LOG.debug("Created bridge %s", name)
    return True


def set_master(name: str, bridge: str) -> None:
    """Enslave interface `name` to the Linux bridge `bridge`, unless it already is."""
    with _iproute() as ipr:
        link = _require_link(ipr, name, f"failed to connect {name} to bridge {bridge}")
        bridge_link = _require_link(ipr, bridge, f"failed to connect {name} to bridge {bridge}")
        if link.master_index == bridge_link.index:
            return
        try:
            ipr.link("set", index=link.index, master=bridge_link.index)
        except NetlinkError as exc:
            raise BindingError(f"failed to connect {name} to bridge {bridge}: {exc}") from exc


def set_link_up(name: str) -> None:
    """Bring interface `name` up."""
    with _iproute() as ipr:
        _set_up(ipr, _require_link(ipr, name, f"failed to bring up {name}"))


def _set_up(ipr: IPRoute, link: Link) -> None:
    if link.is_up:
        return
    try:
        ipr.link("set", index=link.index, state="up")
    except NetlinkError as exc:
        raise BindingError(f"failed to bring up {link.name}: {exc}") from exc


def _require_link(ipr: IPRoute, name: str, action: str) -> Link:
    link = _get_link(ipr, name)
    if link is None:
        raise BindingError(f"{action}: interface {name} not found")
    return link


def delete_link(name: str) -> bool:
    """Delete interface `name`; return False when it did not exist.

    Deleting either end of a veth pair deletes both.
    """
    with _iproute() as ipr:
        try:
            ipr.link("del", ifname=name)
        except NetlinkError as exc:
            if exc.code == errno.ENODEV:
                return False
            raise BindingError(f"failed to delete interface {name}: {exc}") from exc
    LOG.debug("Deleted interface %s", name)
    return True


def bridge_port_names(bridge: str) -> list[str] | None:
    """Return the names of the interfaces enslaved to `bridge`, or None when it does not exist."""
    with _iproute() as ipr:
        link = _get_link(ipr, bridge)
        if link is None:
            return None
        try:
            messages = ipr.link("dump", master=link.index)
        except NetlinkError as exc:
            raise BindingError(f"failed to list the ports of bridge {bridge}: {exc}") from exc
        return [message.get("ifname") for message in messages]
