"""Finding and releasing what crashes left behind on this host.

Compares kuryrnet's Neutron ports, security groups of exposed ports and
host interfaces for this host with Docker's live endpoints, and kuryrnet's
Neutron networks with Docker's networks. Only resources that carry kuryrnet's tag and this host's binding
or host tag are touched.
"""

from __future__ import annotations

import datetime
import logging

from kuryrnet import errors, model
from kuryrnet.binding.base import Vif
from kuryrnet.neutron import tags
from kuryrnet.operations.pool import POOL_PORT_NAME
from kuryrnet.operations.ports import PENDING_NAME
from kuryrnet.operations.security_groups import endpoint_group_name

ENDPOINT_GROUP_PREFIX = endpoint_group_name("")

LOG = logging.getLogger(__name__)

# Seconds a pending port or a network must exist before it counts as a
# leftover: Docker lists an endpoint or a network only after the call that
# creates it has returned, which takes seconds at most.
GRACE_SECONDS = 60.0


def _age_seconds(port: dict) -> float:
    created = port.get("created_at")
    if not created:
        return float("inf")
    stamp = datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    return (datetime.datetime.now(datetime.timezone.utc) - stamp).total_seconds()


def find_leftovers(driver, live: dict, grace_seconds: float) -> tuple[list[dict], list]:
    """Return (Neutron ports, (binding driver, host port) pairs) that no live endpoint uses."""
    ports = driver.neutron.list("ports", tags=tags.OWNED, device_owner=tags.DEVICE_OWNER,
                                **{"binding:host_id": driver.conf.host_id})
    stale_ports = []
    for port in ports:
        if port["name"] == POOL_PORT_NAME:
            continue  # the port pool replaces its own leftovers
        if port["device_id"]:
            if port["device_id"] not in live:
                stale_ports.append(port)
        elif port["name"] == PENDING_NAME and _age_seconds(port) > grace_seconds:
            if not any(ip["ip_address"] in live for ip in port["fixed_ips"]):
                stale_ports.append(port)

    stale_host = []
    seen = set()
    for binding in driver.bindings.values():
        if id(binding) in seen:
            continue
        seen.add(id(binding))
        for host_port in binding.list_ports():
            if host_port.endpoint_id and host_port.endpoint_id not in live:
                stale_host.append((binding, host_port))
    return stale_ports, stale_host


def reconcile(driver, remove: bool, grace_seconds: float = GRACE_SECONDS) -> list[str]:
    """Report (and with `remove`, release) leftovers; return one line per leftover."""
    live = driver.docker.live_endpoints()
    stale_ports, stale_host = find_leftovers(driver, live, grace_seconds)
    lines = []
    for port in stale_ports:
        addresses = ", ".join(ip["ip_address"] for ip in port["fixed_ips"])
        lines.append(f"Neutron port {port['id']} ({addresses}) of endpoint "
                     f"{port['device_id'] or 'none'}: no live Docker endpoint")
        if remove:
            driver.neutron.delete("ports", port["id"])
    for binding, host_port in stale_host:
        lines.append(f"host interface {host_port.host_ifname} of endpoint {host_port.endpoint_id}: "
                     f"no live Docker endpoint")
        if remove:
            binding.unplug(Vif(port_id=host_port.port_id or "", network_id="",
                               endpoint_id=host_port.endpoint_id, mac_address="", mtu=0,
                               vif_type="", host_ifname=host_port.host_ifname))
    lines += release_endpoint_groups(driver, live, grace_seconds, remove)
    unknown = unknown_networks(driver, grace_seconds)
    lines += release_networks(driver, unknown, remove)
    lines += release_untagged_networks(driver, grace_seconds, remove)
    for line in lines:
        LOG.warning("%s leftover: %s", "released" if remove else "found", line)
    reported = reported_networks(driver, unknown)
    for line in reported:
        LOG.warning("found leftover, not released: %s", line)
    return lines + reported


def release_endpoint_groups(driver, live: dict, grace_seconds: float, remove: bool) -> list[str]:
    """Return lines for this host's groups of exposed ports whose endpoint is gone; with `remove`, delete them.

    ProgramExternalConnectivity creates such a group and RevokeExternalConnectivity
    deletes it, so a crash in between leaves it. The stale ports that used it
    are deleted before this runs.
    """
    lines = []
    groups = driver.neutron.list("security-groups", tags=f"{tags.OWNED},{tags.host(driver.conf.host_id)}")
    for group in groups:
        endpoint_id = group["name"].removeprefix(ENDPOINT_GROUP_PREFIX)
        if (not group["name"].startswith(ENDPOINT_GROUP_PREFIX) or endpoint_id in live
                or _age_seconds(group) <= grace_seconds):
            continue
        lines.append(f"security group {group['id']} ({group['name']}) of endpoint {endpoint_id}: "
                     f"no live Docker endpoint")
        if remove:
            try:
                driver.neutron.delete("security-groups", group["id"])
            except errors.KuryrnetError as exc:
                LOG.error("could not delete leftover security group %s of endpoint %s: %s",
                          group["id"], endpoint_id, exc)
    return lines


def unknown_networks(driver, grace_seconds: float) -> list[tuple[dict, str]]:
    """Return (Neutron network, Docker network id) for kuryrnet's networks that this engine lacks.

    Networks younger than the grace are left out: Docker lists a network
    only after its CreateNetwork has returned.
    """
    known = {network["Id"] for network in driver.docker.kuryr_networks()}
    found = []
    for network in driver.neutron.list("networks", tags=tags.OWNED):
        linked = [t.removeprefix("kuryrnet.net.") for t in network.get("tags", [])
                  if t.startswith("kuryrnet.net.")]
        if linked and linked[0] not in known and _age_seconds(network) > grace_seconds:
            found.append((network, linked[0]))
    return found


def _releasable(driver, network: dict) -> bool:
    return (driver.conf.capability_scope == "local"
            and tags.host(driver.conf.host_id) in network.get("tags", []))


def reported_networks(driver, unknown: list[tuple[dict, str]]) -> list[str]:
    """Return lines for the leftover networks that reconciliation only reports.

    They lack this host's tag (made by another host, or by a kuryrnet
    without host tags), or the scope is global, so another host's engine
    may still use them.
    """
    return [f"Neutron network {network['id']} ({network['name']}) of Docker network {docker_id}, "
            f"which this Docker engine does not have; delete it with `openstack network delete` "
            f"if no host uses it"
            for network, docker_id in unknown if not _releasable(driver, network)]


def release_networks(driver, unknown: list[tuple[dict, str]], remove: bool) -> list[str]:
    """Return lines for the leftover networks that this host created; with `remove`, release them.

    A crash in CreateNetwork or DeleteNetwork leaves such a network. With
    the local capability scope, a network that carries this host's tag
    belonged to this engine only, so it is released with the steps of
    DeleteNetwork.
    """
    lines = []
    for network, docker_id in unknown:
        if not _releasable(driver, network):
            continue
        lines.append(f"Neutron network {network['id']} ({network['name']}) of Docker network "
                     f"{docker_id}: this Docker engine no longer has that network")
        if remove:
            try:
                driver.networks.delete_network(model.NetworkRef(docker_id))
            except errors.KuryrnetError as exc:
                LOG.error("could not release leftover Neutron network %s of Docker network %s: %s",
                          network["id"], docker_id, exc)
    return lines


def release_untagged_networks(driver, grace_seconds: float, remove: bool) -> list[str]:
    """Return lines for networks this host created but never tagged; with `remove`, delete them.

    A crash between a network's POST and its tagging leaves such a network:
    it has this host's description, kuryrnet's name and no tag. Its name
    contains the first 12 characters of the Docker network id, so a network
    that Docker knows (a create still tagging it) is spared, and so is one
    younger than the grace.
    """
    known = {network["Id"][:12] for network in driver.docker.kuryr_networks()}
    lines = []
    for network in driver.neutron.list("networks", description=tags.network_description(driver.conf.host_id),
                                       **{"not-tags": tags.OWNED}):
        docker_prefix = network["name"].removeprefix("kuryrnet-")
        if (not network["name"].startswith("kuryrnet-") or docker_prefix in known
                or _age_seconds(network) <= grace_seconds):
            continue
        lines.append(f"Neutron network {network['id']} ({network['name']}) without tags: a crash "
                     f"came between its create and its tagging")
        if remove:
            driver.neutron.delete("networks", network["id"])
    return lines


def run_gc(conf, remove: bool, grace_seconds: float = GRACE_SECONDS) -> list[str]:
    """Entry point of `kuryrnet gc`."""
    from kuryrnet.operations.driver import build_driver

    driver = build_driver(conf)
    return reconcile(driver, remove, grace_seconds)
