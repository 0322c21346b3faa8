"""Creating, extending and deleting the Neutron ports behind endpoint addresses."""

from __future__ import annotations

import ipaddress
import logging

from kuryrnet import errors
from kuryrnet.neutron import tags
from kuryrnet.neutron.client import NeutronClient, NeutronError
from kuryrnet.operations.lookup import Lookup

LOG = logging.getLogger(__name__)

PENDING_NAME = "kuryrnet-pending"


def endpoint_port_name(endpoint_id: str) -> str:
    return f"kuryrnet-{endpoint_id[:12]}"


class PortFactory:
    def __init__(self, conf, neutron: NeutronClient, lookup: Lookup, security_groups):
        self.conf = conf
        self.neutron = neutron
        self.lookup = lookup
        self.security_groups = security_groups
        self.pool = None  # set by the driver when port pools are on

    def port_attrs(self, network_id: str, fixed_ips: list[dict], name: str = PENDING_NAME,
                   extra_tags: tuple[str, ...] = ()) -> dict:
        """Return the POST body of a port bound to this host on `network_id`."""
        attrs = {
            "network_id": network_id,
            "name": name,
            "fixed_ips": fixed_ips,
            "binding:host_id": self.conf.host_id,
            "device_owner": tags.DEVICE_OWNER,
            "admin_state_up": True,
            "tags": [tags.OWNED, *extra_tags],
        }
        group = self.security_groups.network_group_id(network_id)
        if group is not None:
            attrs["security_groups"] = [group]
        return attrs

    def port_for_address(self, subnet: dict, address, mac_address: str | None) -> dict:
        """Return a port holding `address` (or any free address) on `subnet`, bound to this host."""
        if address is None and mac_address is None and self.pool is not None:
            port = self.pool.take(subnet)
            if port is not None:
                return port

        existing = self._existing_pending(subnet, address) if address is not None else None
        if existing is not None:
            return existing

        fixed_ip = {"subnet_id": subnet["id"]}
        if address is not None:
            fixed_ip["ip_address"] = str(address)
        attrs = self.port_attrs(subnet["network_id"], [fixed_ip])
        if mac_address:
            attrs["mac_address"] = mac_address
        try:
            port = self.neutron.create("ports", attrs)
        except NeutronError as exc:
            error = _address_error(exc, subnet, address)
            if isinstance(error, errors.Exhausted) and address is None and self.pool is not None:
                # The last free addresses may be in the pool, or on their way to it.
                port = self.pool.take(subnet, wait=10.0)
                if port is not None:
                    return port
            raise error from exc
        LOG.info("created port %s with %s on network %s", port["id"],
                 _addresses(port), subnet["network_id"])
        return port

    def _existing_pending(self, subnet: dict, address) -> dict | None:
        """Return the port a repeated request already created for `address`, if any."""
        port = self.lookup.port_by_address(subnet["network_id"], address)
        if port is None:
            return None
        if self.pool is not None and self.pool.take_port(port):
            return port
        if tags.OWNED in port.get("tags", []) and not port["device_id"] and tags.AUX not in port["tags"]:
            return port
        raise errors.Conflict(
            f"address {address} on subnet {subnet['id']} ({subnet['cidr']}) is already used by "
            f"Neutron port {port['id']} (device {port['device_id'] or 'none'}); choose another "
            f"--ip or remove that port")

    def add_address(self, port: dict, subnet: dict, address) -> dict:
        """Add an address on `subnet` to an existing port (an endpoint's second address family)."""
        for fixed_ip in port["fixed_ips"]:
            if fixed_ip["subnet_id"] == subnet["id"]:
                if address is None or ipaddress.ip_address(fixed_ip["ip_address"]) == address:
                    return port
        port_id = port["id"]
        port = self.neutron.show("ports", port_id)
        if port is None:
            raise errors.NotFound(f"Neutron port {port_id} vanished before its IPv6 address was added")
        new_ip = {"subnet_id": subnet["id"]}
        if address is not None:
            new_ip["ip_address"] = str(address)
        try:
            kept = [ip for ip in port["fixed_ips"] if ip["subnet_id"] != subnet["id"]]
            port = self.neutron.update("ports", port_id, {"fixed_ips": kept + [new_ip]})
        except NeutronError as exc:
            raise _address_error(exc, subnet, address) from exc
        LOG.info("added %s to port %s", _addresses(port), port_id)
        return port

    def release(self, port: dict) -> None:
        if self.pool is not None and self.pool.release(port):
            return
        if self.neutron.delete("ports", port["id"]):
            LOG.info("deleted port %s (%s)", port["id"], _addresses(port))


def _addresses(port: dict) -> str:
    return ", ".join(ip["ip_address"] for ip in port["fixed_ips"]) or "no address"


def _address_error(exc: NeutronError, subnet: dict, address) -> errors.KuryrnetError:
    where = f"subnet {subnet['id']} ({subnet['cidr']}) of network {subnet['network_id']}"
    if exc.kind == "IpAddressGenerationFailure":
        return errors.Exhausted(f"no free address left on {where}; remove containers or use a "
                                f"larger subnet")
    if exc.kind in ("IpAddressAlreadyAllocated", "IpAddressInUse"):
        return errors.Conflict(f"address {address} is already in use on {where}; choose another --ip")
    if exc.kind in ("InvalidIpForSubnet", "InvalidInput") and address is not None:
        return errors.InvalidRequest(f"address {address} cannot be used on {where}: {exc.detail}")
    if exc.kind == "MacAddressInUse":
        return errors.Conflict(f"the requested MAC address is already in use on network "
                               f"{subnet['network_id']}; choose another --mac-address")
    return exc
