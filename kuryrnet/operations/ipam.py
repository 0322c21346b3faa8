"""Docker's IPAM calls on Neutron subnet pools, subnets and ports.

Docker requests pools and the gateway before CreateNetwork, so no Neutron
subnet exists yet at that point. RequestPool therefore records the chosen
prefix as a reservation tag on the Neutron subnet pool (or on the existing
subnet being attached), and CreateNetwork finds it through that tag.
Endpoint addresses are Neutron port addresses: the port is created when
Docker asks for the address, before the endpoint exists.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import threading
from dataclasses import dataclass

from kuryrnet import errors, model
from kuryrnet.faults import crash_point
from kuryrnet.neutron import tags
from kuryrnet.neutron.client import NeutronClient, NeutronError
from kuryrnet.operations.lookup import Lookup
from kuryrnet.operations.pool_ids import PoolId

LOG = logging.getLogger(__name__)

GATEWAY_KEY = "com.docker.network.gateway"


@dataclass(frozen=True)
class Reservation:
    """A CIDR reserved by RequestPool, kept so CreateNetwork needs no query to find it."""

    kind: str  # "pool" or "subnet", as in PoolId
    resource: dict  # the Neutron subnet pool or subnet
    ip_range: str | None = None


class Ipam:
    def __init__(self, conf, neutron: NeutronClient, lookup: Lookup, ports):
        self.conf = conf
        self.neutron = neutron
        self.lookup = lookup
        self.ports = ports  # kuryrnet.operations.ports.PortFactory
        self._pool_lock = threading.Lock()
        # Neutron network id -> IPv4-only ports handed out and not yet given
        # their IPv6 address, oldest first (see request_address).
        self._awaiting_v6: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._pairing_lock = threading.Lock()
        self.reservations: dict[str, Reservation] = {}  # CIDR -> its reservation by this daemon

    # -- pools ------------------------------------------------------------------

    def request_pool(self, req: model.RequestPool) -> model.PoolResponse:
        version = req.pool.version if req.pool is not None else (6 if req.v6 else 4)
        subnet_uuid, subnet_name = req.neutron.subnet_ref(version)
        pool_uuid, pool_name = req.neutron.pool_ref(version)

        if subnet_uuid or subnet_name:
            return self._attach_subnet(req, version, subnet_uuid, subnet_name)

        if pool_uuid or pool_name:
            subnetpool = self._find_subnetpool(pool_uuid, pool_name, version)
        elif req.pool is not None:
            subnetpool = self._ensure_cidr_pool(req.pool, req.sub_pool)
        else:
            subnetpool = self._ensure_default_pool(version)

        if req.pool is None:
            cidr = self._reserve_free_prefix(subnetpool, version)
        else:
            cidr = req.pool
            self._check_in_pool(cidr, subnetpool)
            if req.sub_pool is not None and not req.sub_pool.subnet_of(cidr):
                raise errors.InvalidRequest(f"ip range {req.sub_pool} is not inside subnet {cidr}")
            # A subnet pool made for this CIDR got its tags with its create.
            if tags.reservation(cidr) not in subnetpool.get("tags", []):
                self.neutron.add_tag("subnetpools", subnetpool["id"], tags.reservation(cidr))
        if req.sub_pool is not None and tags.ip_range(cidr, req.sub_pool) not in subnetpool.get("tags", []):
            self.neutron.add_tag("subnetpools", subnetpool["id"], tags.ip_range(cidr, req.sub_pool))
        pool_id = PoolId("pool", subnetpool["id"], cidr, req.sub_pool)
        self.reservations[str(cidr)] = Reservation(
            "pool", subnetpool, str(req.sub_pool) if req.sub_pool is not None else None)
        LOG.info("pool %s reserved in Neutron subnet pool %s", pool_id, subnetpool["id"])
        return model.PoolResponse(str(pool_id), cidr)

    def release_pool(self, req: model.ReleasePool) -> None:
        pool_id = PoolId.parse(req.pool_id)
        self.reservations.pop(str(pool_id.cidr), None)
        collection = "subnetpools" if pool_id.kind == "pool" else "subnets"
        self.neutron.remove_tag(collection, pool_id.neutron_id, tags.reservation(pool_id.cidr))
        if pool_id.ip_range is not None:
            self.neutron.remove_tag(collection, pool_id.neutron_id,
                                    tags.ip_range(pool_id.cidr, pool_id.ip_range))
        if pool_id.kind == "pool":
            self.delete_cidr_pool_if_unused(pool_id.neutron_id)
        self.lookup.forget_subnet(pool_id)
        LOG.info("pool %s released", pool_id)

    def delete_cidr_pool_if_unused(self, subnetpool_id: str) -> None:
        """Delete a subnet pool kuryrnet made for one CIDR once no subnet or reservation uses it."""
        subnetpool = self.neutron.show("subnetpools", subnetpool_id)
        if subnetpool is None or not subnetpool["name"].startswith("kuryrnet-cidr-"):
            return
        if any(tags.reserved_cidr(tag) for tag in subnetpool.get("tags", [])):
            return
        if self.neutron.list("subnets", subnetpool_id=subnetpool_id, fields="id"):
            return
        try:
            self.neutron.delete("subnetpools", subnetpool_id)
            LOG.info("deleted unused subnet pool %s (%s)", subnetpool_id, subnetpool["name"])
        except NeutronError as exc:
            LOG.warning("could not delete subnet pool %s: %s", subnetpool_id, exc)

    def _attach_subnet(self, req, version, subnet_uuid, subnet_name) -> model.PoolResponse:
        if subnet_uuid:
            subnet = self.neutron.show("subnets", subnet_uuid)
            label = subnet_uuid
        else:
            found = self.neutron.list("subnets", name=subnet_name)
            if len(found) > 1:
                raise errors.Conflict(f"several Neutron subnets are named {subnet_name!r}; "
                                      f"give neutron.subnet.uuid instead")
            subnet = found[0] if found else None
            label = subnet_name
        if subnet is None:
            raise errors.NotFound(f"Neutron subnet {label!r} not found; check the neutron.subnet "
                                  f"option and that this project can see it")
        cidr = ipaddress.ip_network(subnet["cidr"])
        if cidr.version != version:
            raise errors.InvalidRequest(f"Neutron subnet {label!r} is IPv{cidr.version} ({cidr}) but "
                                        f"the pool request is for IPv{version}")
        if req.pool is not None and req.pool != cidr:
            raise errors.Conflict(f"--subnet {req.pool} differs from Neutron subnet {label!r} "
                                  f"({cidr}); give the subnet's CIDR or leave --subnet out")

        try:
            self.neutron.add_tag("subnets", subnet["id"], tags.reservation(cidr))
        except NeutronError as exc:
            if exc.http_status != 403:
                raise
            # Another project's shared subnet: only its owner may tag it. The
            # PoolID names the subnet, so nothing but this daemon's memory needs the reservation.
            LOG.info("subnet %s of project %s cannot be tagged by this project; its reservation for "
                     "pool %s is kept in memory", subnet["id"], subnet.get("project_id"), cidr)
        pool_id = PoolId("subnet", subnet["id"], cidr)
        self.reservations[str(cidr)] = Reservation("subnet", subnet)
        data = {}
        if subnet.get("gateway_ip"):
            data[GATEWAY_KEY] = f"{subnet['gateway_ip']}/{cidr.prefixlen}"
        LOG.info("pool %s attached to existing Neutron subnet %s", pool_id, subnet["id"])
        return model.PoolResponse(str(pool_id), cidr, data)

    def _find_subnetpool(self, pool_uuid, pool_name, version) -> dict:
        if pool_uuid:
            pool = self.neutron.show("subnetpools", pool_uuid)
        else:
            found = self.neutron.list("subnetpools", name=pool_name)
            pool = found[0] if found else None
        label = pool_uuid or pool_name
        if pool is None:
            raise errors.NotFound(f"Neutron subnet pool {label!r} not found; check the "
                                  f"neutron.pool option")
        if pool["ip_version"] != version:
            raise errors.InvalidRequest(f"Neutron subnet pool {label!r} is IPv{pool['ip_version']} "
                                        f"but the request is for IPv{version}")
        return pool

    def _ensure_cidr_pool(self, cidr, sub_pool=None) -> dict:
        """Return the subnet pool for `cidr`: one that already covers it, or a new one.

        A new pool is created with its reservation (and --ip-range) tags, so
        that they take no request of their own.
        """
        name = f"kuryrnet-cidr-{cidr}".replace("/", "_")
        with self._pool_lock:
            found = self.neutron.list("subnetpools", name=name)
            if found:
                return found[0]
            pool_tags = [tags.OWNED, tags.reservation(cidr)]
            if sub_pool is not None:
                pool_tags.append(tags.ip_range(cidr, sub_pool))
            pool = self.neutron.create_tagged("subnetpools", {
                "name": name, "prefixes": [str(cidr)], "default_prefixlen": cidr.prefixlen,
                "min_prefixlen": cidr.prefixlen,
                "description": f"kuryrnet: pool for Docker networks on {cidr}"}, pool_tags)
            LOG.info("created subnet pool %s for %s", pool["id"], cidr)
            return pool

    def _ensure_default_pool(self, version: int) -> dict:
        name = f"kuryrnet-default-v{version}"
        prefix = getattr(self.conf.neutron, f"default_subnetpool_v{version}")
        prefixlen = getattr(self.conf.neutron, f"default_prefixlen_v{version}")
        with self._pool_lock:
            found = self.neutron.list("subnetpools", name=name)
            if found:
                return found[0]
            pool = self.neutron.create_tagged("subnetpools", {
                "name": name, "prefixes": [prefix], "default_prefixlen": prefixlen,
                "description": "kuryrnet: prefixes for Docker networks created without --subnet"},
                [tags.OWNED])
            LOG.info("created default IPv%d subnet pool %s (%s)", version, pool["id"], prefix)
            return pool

    def _reserve_free_prefix(self, subnetpool: dict, version: int):
        """Reserve and return the first prefix of the pool that no subnet and no reservation holds.

        The reservation tag is set under the lock, so parallel RequestPool
        calls of this daemon never pick the same prefix.
        NOTE: daemons on other hosts drawing from the same pool are not
        serialized; the second subnet create then fails with Neutron's error.
        """
        prefixlen = subnetpool.get("default_prefixlen") or getattr(
            self.conf.neutron, f"default_prefixlen_v{version}")
        prefixlen = int(prefixlen)
        with self._pool_lock:
            current = self.neutron.show("subnetpools", subnetpool["id"]) or subnetpool
            taken = [ipaddress.ip_network(s["cidr"]) for s in
                     self.neutron.list("subnets", subnetpool_id=subnetpool["id"], fields="cidr")]
            taken += [ipaddress.ip_network(c) for c in map(tags.reserved_cidr, current.get("tags", [])) if c]
            for prefix in current["prefixes"]:
                for candidate in ipaddress.ip_network(prefix).subnets(new_prefix=prefixlen):
                    if not any(candidate.overlaps(used) for used in taken):
                        self.neutron.add_tag("subnetpools", subnetpool["id"],
                                             tags.reservation(candidate))
                        return candidate
        raise errors.Exhausted(f"Neutron subnet pool {subnetpool['name']} ({subnetpool['id']}) has no "
                               f"free /{prefixlen} left; remove unused networks or give --subnet")

    @staticmethod
    def _check_in_pool(cidr, subnetpool) -> None:
        prefixes = [ipaddress.ip_network(p) for p in subnetpool["prefixes"]]
        if not any(cidr.version == p.version and cidr.subnet_of(p) for p in prefixes):
            raise errors.InvalidRequest(
                f"subnet {cidr} is outside Neutron subnet pool {subnetpool['name']} "
                f"({', '.join(map(str, prefixes))}); choose a subnet inside it")

    # -- addresses ----------------------------------------------------------------

    def request_address(self, req: model.RequestAddress) -> model.AddressResponse:
        pool_id = PoolId.parse(req.pool_id)
        if req.address is not None and req.address not in pool_id.cidr:
            raise errors.InvalidRequest(f"address {req.address} is outside pool {pool_id.cidr}")

        if req.kind is model.AddressKind.GATEWAY:
            return self._gateway(pool_id, req.address)

        subnet = self.lookup.subnet_for_pool(pool_id)
        if subnet is None:
            # Auxiliary addresses arrive before CreateNetwork, which reserves them.
            if req.address is None:
                raise errors.NotFound(f"no Neutron subnet for pool {pool_id} yet; Docker asks for "
                                      f"endpoint addresses only after CreateNetwork")
            return model.AddressResponse(ipaddress.ip_interface(f"{req.address}/{pool_id.cidr.prefixlen}"))

        if subnet["ip_version"] == 6:
            paired = self._pair_v6(subnet, req)
            if paired is not None:
                return paired

        port = self.ports.port_for_address(subnet, req.address, req.mac_address)
        crash_point("request_address.after_port")
        if subnet["ip_version"] == 4 and _has_v6_sibling(self.lookup, subnet):
            with self._pairing_lock:
                self._awaiting_v6[subnet["network_id"]].append(port)
        address = _address_in(port, subnet)
        return model.AddressResponse(ipaddress.ip_interface(f"{address}/{pool_id.cidr.prefixlen}"))

    def release_address(self, req: model.ReleaseAddress) -> None:
        pool_id = PoolId.parse(req.pool_id)
        subnet = self.lookup.subnet_for_pool(pool_id)
        if subnet is None:
            return
        if subnet.get("gateway_ip") and ipaddress.ip_address(subnet["gateway_ip"]) == req.address:
            return
        port = self.lookup.port_by_address(subnet["network_id"], req.address)
        if port is None:
            return
        if tags.OWNED not in port.get("tags", []):
            LOG.info("address %s belongs to port %s, which kuryrnet did not create; left alone",
                     req.address, port["id"])
            return
        crash_point("release_address.before_port_delete")
        self.ports.release(port)
        self.lookup.forget_port(port)

    def _gateway(self, pool_id: PoolId, address) -> model.AddressResponse:
        if pool_id.kind == "subnet":
            subnet = self.lookup.subnet(pool_id)
            if not subnet.get("gateway_ip"):
                raise errors.InvalidRequest(f"Neutron subnet {subnet['id']} has no gateway; give "
                                            f"--gateway or set one on the subnet")
            address = subnet["gateway_ip"]
        elif address is None:
            address = next(pool_id.cidr.hosts())
        return model.AddressResponse(ipaddress.ip_interface(f"{address}/{pool_id.cidr.prefixlen}"))

    def _pair_v6(self, subnet: dict, req: model.RequestAddress) -> model.AddressResponse | None:
        """Give the IPv6 address to the endpoint's IPv4 port, if one waits for it.

        NOTE: Docker sends nothing that links an endpoint's IPv4 and IPv6
        requests, so they are paired by order per network. Docker sends the
        two calls back to back for each endpoint.
        """
        with self._pairing_lock:
            waiting = self._awaiting_v6.get(subnet["network_id"])
            port = waiting.popleft() if waiting else None
        if port is None:
            return None
        port = self.ports.add_address(port, subnet, req.address)
        prefixlen = ipaddress.ip_network(subnet["cidr"]).prefixlen
        return model.AddressResponse(ipaddress.ip_interface(f"{_address_in(port, subnet)}/{prefixlen}"))


def _address_in(port: dict, subnet: dict) -> str:
    for fixed_ip in port["fixed_ips"]:
        if fixed_ip["subnet_id"] == subnet["id"]:
            return fixed_ip["ip_address"]
    raise errors.BackendError(f"Neutron port {port['id']} has no address on subnet {subnet['id']}")


def _has_v6_sibling(lookup: Lookup, subnet: dict) -> bool:
    return any(s["ip_version"] == 6 for s in lookup.subnets_of_network_id(subnet["network_id"]))
