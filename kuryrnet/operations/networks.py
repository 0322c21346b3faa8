"""CreateNetwork and DeleteNetwork: Docker networks as Neutron networks and subnets."""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from kuryrnet import errors, model
from kuryrnet.faults import crash_point
from kuryrnet.neutron import tags
from kuryrnet.neutron.client import NeutronClient, NeutronError
from kuryrnet.operations.lookup import Lookup
from kuryrnet.operations.rollback import Rollback
from kuryrnet.operations.security_groups import SecurityGroups

LOG = logging.getLogger(__name__)


class Networks:
    def __init__(self, conf, neutron: NeutronClient, lookup: Lookup, security_groups: SecurityGroups,
                 ipam):
        self.conf = conf
        self.neutron = neutron
        self.lookup = lookup
        self.security_groups = security_groups
        self.ipam = ipam
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self.on_created = []  # callbacks(docker_network_id, network, req) after a create
        self.on_deleting = []  # callbacks(docker_network_id, network) before a delete
        self._caller_identity: tuple[str | None, frozenset[str]] | None = None

    # -- create -------------------------------------------------------------------

    def create_network(self, req: model.CreateNetwork) -> None:
        with self._locks[req.network_id]:
            if self.lookup.find_network(req.network_id) is not None:
                LOG.info("Docker network %s already exists in Neutron", req.network_id)
                return
            with Rollback(f"create network {req.network_id}") as undo:
                network = self._network_step(req, undo)
                created = tags.OWNED in network.get("tags", [])
                self._security_group_step(req, network, created, undo)
                for data in (*req.ipv4_data, *req.ipv6_data):
                    subnet = self._subnet_step(req, network, created, data, undo)
                    self._aux_address_step(subnet, data, undo)
            self.lookup.forget_subnets_of(network["id"])
            self.lookup.remember_network(req.network_id, network)
        LOG.info("Docker network %s is Neutron network %s (mtu %s)",
                 req.network_id, network["id"], network.get("mtu"))
        for callback in self.on_created:
            callback(req.network_id, network, req)

    def _network_step(self, req: model.CreateNetwork, undo: Rollback) -> dict:
        docker_tag = tags.docker_network(req.network_id)
        if req.neutron.net_uuid or req.neutron.net_name:
            network = self._existing_network(req.neutron)
            link_tags = [docker_tag]
            pool_tag = self._port_pool_tag(req.port_pool)
            if pool_tag is not None:
                link_tags.append(pool_tag)
            if self._foreign(network):
                # The network's security group carries the link (see tags.LINK).
                network["tags"] = [*network.get("tags", []), tags.LINK, *link_tags]
                LOG.info("attached Docker network %s to Neutron network %s, which project %s "
                         "shares; its security group links them", req.network_id, network["id"],
                         network.get("project_id"))
                return network
            for tag in link_tags:
                self.neutron.add_tag("networks", network["id"], tag)
                undo.add(f"untag network {network['id']}", self.neutron.remove_tag,
                         "networks", network["id"], tag)
            network.setdefault("tags", []).extend(link_tags)
            LOG.info("attached Docker network %s to existing Neutron network %s",
                     req.network_id, network["id"])
            return network

        attrs = {"name": f"kuryrnet-{req.network_id[:12]}", "admin_state_up": True,
                 "description": tags.network_description(self.conf.host_id)}
        # The host tag lets this host's reconciliation release the network after a crash.
        network_tags = [tags.OWNED, docker_tag, tags.host(self.conf.host_id)]
        pool_tag = self._port_pool_tag(req.port_pool)
        if pool_tag is not None:
            network_tags.append(pool_tag)
        if req.neutron.net_shared is not None:
            attrs["shared"] = req.neutron.net_shared
        # A crash between the POST and the tagging leaves an untagged network;
        # reconciliation finds it by its description and name.
        network = self.neutron.create_tagged("networks", attrs, network_tags)
        crash_point("create_network.after_network")
        undo.add(f"delete network {network['id']}", self.neutron.delete, "networks", network["id"])
        return network

    def _port_pool_tag(self, options: model.PortPoolOptions) -> str | None:
        if options == model.PortPoolOptions():
            return None
        defaults = self.conf.port_pool
        enabled = defaults.enabled if options.enabled is None else options.enabled
        low = defaults.low if options.low is None else options.low
        high = defaults.high if options.high is None else options.high
        return tags.port_pool(enabled, low, max(low, high))

    def _existing_network(self, options: model.NeutronOptions) -> dict:
        if options.net_uuid:
            network = self.neutron.show("networks", options.net_uuid)
            label = options.net_uuid
        else:
            found = self.neutron.list("networks", name=options.net_name)
            if len(found) > 1:
                raise errors.Conflict(f"several Neutron networks are named {options.net_name!r}; "
                                      f"give neutron.net.uuid instead")
            network = found[0] if found else None
            label = options.net_name
        if network is None:
            raise errors.NotFound(f"Neutron network {label!r} not found; check the neutron.net "
                                  f"option and that this project can see it")
        if self._foreign(network) and not network.get("shared"):
            raise errors.NotFound(
                f"Neutron network {label!r} belongs to project {network.get('project_id')} and is "
                f"not shared with project {self._caller()[0]}, whose credentials kuryrnet uses; "
                f"use a network of that project or one shared with it")
        if options.net_shared is not None and network.get("shared") != options.net_shared:
            raise errors.Conflict(f"Neutron network {label!r} has shared={network.get('shared')}, "
                                  f"but neutron.net.shared={options.net_shared} was given")
        linked = [t for t in network.get("tags", []) if t.startswith("kuryrnet.net.")]
        if not linked and self._foreign(network):
            group = self.security_groups.linking_group(network["id"])
            linked = [t for t in (group or {}).get("tags", []) if t.startswith("kuryrnet.net.")]
        if linked:
            raise errors.Conflict(f"Neutron network {label!r} already backs Docker network "
                                  f"{linked[0].removeprefix('kuryrnet.net.')}; remove that one first")
        return network

    def _caller(self) -> tuple[str | None, frozenset[str]]:
        if self._caller_identity is None:
            self._caller_identity = self.neutron.caller()
        return self._caller_identity

    def _foreign(self, network: dict) -> bool:
        """Return whether the network belongs to a project other than kuryrnet's (admins excepted)."""
        project_id, roles = self._caller()
        return (project_id is not None and "admin" not in roles
                and network.get("project_id") not in (None, project_id))

    def _security_group_step(self, req, network: dict, created: bool, undo: Rollback) -> None:
        link = tuple(t for t in network.get("tags", []) if t == tags.LINK or t.startswith("kuryrnet.pool."))
        group = self.security_groups.create_network_group(network["id"], req.network_id,
                                                          known_absent=created,
                                                          extra_tags=link if tags.LINK in link else ())
        undo.add(f"delete security group {group['id']}", self._delete_group, group["id"], network["id"])

    def _delete_group(self, group_id: str, network_id: str) -> None:
        self.neutron.delete("security-groups", group_id)
        self.security_groups.forget(network_id)

    def _subnet_step(self, req, network: dict, created: bool, data: model.IPAMData,
                     undo: Rollback) -> dict:
        docker_tag = tags.docker_network(req.network_id)
        # RequestPool of this daemon recorded what it reserved; after a restart
        # the reservation tags in Neutron tell the same, at the cost of a query.
        reservation = self.ipam.reservations.get(str(data.pool))
        if reservation is None:
            attached = self.neutron.list("subnets", tags=tags.reservation(data.pool))
        elif reservation.kind == "subnet":
            attached = [reservation.resource]
        else:
            attached = []
        if attached:
            subnet = attached[0]
            if subnet["network_id"] != network["id"]:
                raise errors.Conflict(
                    f"Neutron subnet {subnet['id']} ({subnet['cidr']}) belongs to network "
                    f"{subnet['network_id']}; pass -o neutron.net.uuid={subnet['network_id']}")
            self._tag_subnet(network, subnet, docker_tag, undo)
            return subnet

        for subnet in [] if created else self.lookup.subnets_of_network_id(network["id"]):
            if ipaddress.ip_network(subnet["cidr"]) == data.pool:
                # RequestPool reserved the CIDR in a subnet pool before the
                # network was known, and Docker's PoolID names that pool.
                option = "neutron.subnet.uuid" if data.pool.version == 4 else "neutron.subnet.v6.uuid"
                raise errors.Conflict(
                    f"Neutron network {network['id']} already has subnet {subnet['id']} "
                    f"({subnet['cidr']}); to use it, give --ipam-opt {option}={subnet['id']} "
                    f"instead of --subnet {data.pool} alone")

        attrs = self._subnet_attrs(req, network, data, reservation)
        try:
            subnet = self.neutron.create_tagged("subnets", attrs,
                                                [tags.OWNED, tags.docker_network(req.network_id)])
        except NeutronError as exc:
            raise errors.Conflict(f"could not create subnet {data.pool} on Neutron network "
                                  f"{network['id']}: {exc.detail or exc}") from exc
        crash_point("create_network.after_subnet")
        undo.add(f"delete subnet {subnet['id']}", self.neutron.delete, "subnets", subnet["id"])
        self.lookup.forget_subnets_of(network["id"])
        LOG.info("created subnet %s (%s) on network %s", subnet["id"], subnet["cidr"], network["id"])
        return subnet

    def _tag_subnet(self, network: dict, subnet: dict, docker_tag: str, undo: Rollback) -> None:
        """Tag an existing subnet with its Docker network; a shared network's subnet stays untagged."""
        if tags.LINK in network.get("tags", []):
            return
        self.neutron.add_tag("subnets", subnet["id"], docker_tag)
        undo.add(f"untag subnet {subnet['id']}", self.neutron.remove_tag, "subnets",
                 subnet["id"], docker_tag)

    def _subnet_attrs(self, req, network: dict, data: model.IPAMData, reservation) -> dict:
        attrs = {"network_id": network["id"], "ip_version": data.pool.version,
                 "cidr": str(data.pool), "enable_dhcp": False,
                 "name": f"kuryrnet-{req.network_id[:12]}-v{data.pool.version}"}
        if reservation is not None:
            pools = [reservation.resource]
            ip_range = reservation.ip_range
        else:
            pools = self.neutron.list("subnetpools", tags=tags.reservation(data.pool))
            ip_range = tags.ip_range_of(pools[0].get("tags", []), data.pool) if pools else None
        if pools:
            attrs["subnetpool_id"] = pools[0]["id"]
        attrs["gateway_ip"] = str(data.gateway.ip) if data.gateway is not None else None
        if ip_range is not None:
            attrs["allocation_pools"] = _allocation_pools(ipaddress.ip_network(ip_range), data.gateway)
        return attrs

    def _aux_address_step(self, subnet: dict, data: model.IPAMData, undo: Rollback) -> None:
        if not data.aux_addresses:
            return
        items = [{"network_id": subnet["network_id"], "name": f"kuryrnet-aux-{name}"[:255],
                  "fixed_ips": [{"subnet_id": subnet["id"], "ip_address": str(address.ip)}],
                  "device_owner": tags.AUX_DEVICE_OWNER, "tags": [tags.OWNED, tags.AUX]}
                 for name, address in sorted(data.aux_addresses.items())]
        try:
            ports = self.neutron.create_bulk("ports", items)
        except NeutronError as exc:
            raise errors.Conflict(f"could not reserve auxiliary addresses on subnet {subnet['id']}: "
                                  f"{exc.detail or exc}") from exc
        for port in ports:
            undo.add(f"delete aux port {port['id']}", self.neutron.delete, "ports", port["id"])

    # -- delete -------------------------------------------------------------------

    def delete_network(self, req: model.NetworkRef) -> None:
        with self._locks[req.network_id]:
            network = self.lookup.find_network(req.network_id)
            if network is None:
                LOG.info("Docker network %s has no Neutron network; nothing to delete", req.network_id)
                return
            for callback in self.on_deleting:
                callback(req.network_id, network)

            self._delete_owned_ports(network)
            crash_point("delete_network.after_ports")
            subnets = self.neutron.list("subnets", network_id=network["id"])
            if tags.OWNED in network.get("tags", []):
                self._delete_owned_network(network)
            else:
                self._detach_network(req.network_id, network, subnets)
            self.security_groups.delete_groups_of(req.network_id, network["id"])
            # Docker releases the address pools after DeleteNetwork, and
            # ReleasePool deletes a pool made for one CIDR; only a pool that
            # this daemon holds no reservation for is checked here.
            for subnet in subnets:
                reserved = str(ipaddress.ip_network(subnet["cidr"])) in self.ipam.reservations
                if subnet.get("subnetpool_id") and not reserved:
                    self.ipam.delete_cidr_pool_if_unused(subnet["subnetpool_id"])
            self.lookup.forget_network(req.network_id)
        LOG.info("deleted Docker network %s (Neutron network %s)", req.network_id, network["id"])

    def _delete_owned_ports(self, network: dict) -> None:
        ports = self.neutron.list("ports", network_id=network["id"], tags=tags.OWNED, fields="id")
        if not ports:
            return
        # Neutron has no bulk delete; parallel requests keep `network rm` short.
        with ThreadPoolExecutor(max_workers=min(8, len(ports))) as executor:
            list(executor.map(lambda port: self.neutron.delete("ports", port["id"]), ports))

    def _delete_owned_network(self, network: dict) -> None:
        # Ports released just before may still be going away in the background.
        deadline = time.monotonic() + 30
        while True:
            try:
                self.neutron.delete("networks", network["id"])
                return
            except NeutronError as exc:
                if exc.kind != "NetworkInUse" or time.monotonic() > deadline:
                    raise errors.Conflict(f"Neutron network {network['id']} could not be deleted: "
                                          f"{exc.detail or exc}") from exc
                self._delete_owned_ports(network)
                time.sleep(0.5)

    def _detach_network(self, docker_network_id: str, network: dict, subnets: list[dict]) -> None:
        docker_tag = tags.docker_network(docker_network_id)
        for subnet in subnets:
            if docker_tag not in subnet.get("tags", []):
                continue
            if tags.OWNED in subnet["tags"]:
                self.neutron.delete("subnets", subnet["id"])
            else:
                self.neutron.remove_tag("subnets", subnet["id"], docker_tag)
        if tags.LINK in network.get("tags", []):
            return  # the link goes with the network's security group
        for tag in network.get("tags", []):
            if tag == docker_tag or tag.startswith("kuryrnet.pool."):
                self.neutron.remove_tag("networks", network["id"], tag)


def _allocation_pools(ip_range, gateway) -> list[dict]:
    """Return Neutron allocation pools covering `ip_range` minus the gateway address."""
    hosts_first = ip_range.network_address
    hosts_last = ip_range.broadcast_address
    if ip_range.version == 4 and ip_range.prefixlen < 31:
        hosts_first += 1
        hosts_last -= 1
    if gateway is None or not (hosts_first <= gateway.ip <= hosts_last):
        return [{"start": str(hosts_first), "end": str(hosts_last)}]
    pools = []
    if gateway.ip > hosts_first:
        pools.append({"start": str(hosts_first), "end": str(gateway.ip - 1)})
    if gateway.ip < hosts_last:
        pools.append({"start": str(gateway.ip + 1), "end": str(hosts_last)})
    return pools
