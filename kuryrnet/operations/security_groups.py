"""Security groups that follow Docker's isolation model.

Each Docker network gets a group whose members reach each other freely.
Ports a container exposes get a group of their own, added to its port by
ProgramExternalConnectivity and removed by RevokeExternalConnectivity, so
only those ports are reachable from outside the network.
"""

from __future__ import annotations

import logging
import threading

from kuryrnet import model
from kuryrnet.neutron import tags
from kuryrnet.neutron.client import NeutronClient

LOG = logging.getLogger(__name__)


def network_group_name(neutron_network_id: str) -> str:
    return f"kuryrnet-net-{neutron_network_id}"


def endpoint_group_name(endpoint_id: str) -> str:
    return f"kuryrnet-ep-{endpoint_id}"


class SecurityGroups:
    def __init__(self, neutron: NeutronClient, host_id: str = ""):
        self.neutron = neutron
        self.host_id = host_id  # tags the groups of exposed ports, which are per host
        self._lock = threading.Lock()
        self._network_groups: dict[str, str | None] = {}  # Neutron network id -> group id

    def network_group_id(self, neutron_network_id: str) -> str | None:
        with self._lock:
            if neutron_network_id in self._network_groups:
                return self._network_groups[neutron_network_id]
        found = self.neutron.list("security-groups", name=network_group_name(neutron_network_id),
                                  fields="id")
        group_id = found[0]["id"] if found else None
        with self._lock:
            self._network_groups[neutron_network_id] = group_id
        return group_id

    def create_network_group(self, neutron_network_id: str, docker_network_id: str,
                             known_absent: bool = False, extra_tags: tuple[str, ...] = ()) -> dict:
        """Create the group of a Docker network; `known_absent` skips the lookup for a new network.

        `extra_tags` make the group the link to a network that kuryrnet may not tag (tags.LINK).
        """
        existing = None if known_absent else self.network_group_id(neutron_network_id)
        if existing is not None:
            return {"id": existing}
        group = self.neutron.create_tagged("security-groups", {
            "name": network_group_name(neutron_network_id),
            "description": f"kuryrnet: members of Docker network {docker_network_id}"},
            [tags.OWNED, tags.docker_network(docker_network_id), *extra_tags])
        rules = [{"security_group_id": group["id"], "direction": "ingress", "ethertype": ethertype,
                  "remote_group_id": group["id"]} for ethertype in ("IPv4", "IPv6")]
        self.neutron.create_bulk("security-group-rules", rules)
        with self._lock:
            self._network_groups[neutron_network_id] = group["id"]
        LOG.info("created security group %s for Docker network %s", group["id"], docker_network_id)
        return group

    def delete_groups_of(self, docker_network_id: str, neutron_network_id: str) -> None:
        groups = [group for group in self.neutron.list("security-groups",
                                                       tags=tags.docker_network(docker_network_id))
                  if tags.OWNED in group.get("tags", [])]
        name = network_group_name(neutron_network_id)
        if not any(group["name"] == name for group in groups):
            # A crash between the group's create and its tagging leaves it
            # with kuryrnet's name only.
            groups += self.neutron.list("security-groups", name=name)
        for group in groups:
            self.neutron.delete("security-groups", group["id"])
            LOG.info("deleted security group %s of Docker network %s", group["id"], docker_network_id)
        with self._lock:
            self._network_groups.pop(neutron_network_id, None)

    def linking_group(self, neutron_network_id: str) -> dict | None:
        """Return the group that links a Docker network to this network in its stead, if any."""
        for group in self.neutron.list("security-groups", name=network_group_name(neutron_network_id)):
            if tags.LINK in group.get("tags", []):
                return group
        return None

    def forget(self, neutron_network_id: str) -> None:
        with self._lock:
            self._network_groups.pop(neutron_network_id, None)

    # -- exposed ports ------------------------------------------------------------

    def expose(self, port: dict, endpoint_id: str, docker_network_id: str,
               exposed: tuple[model.ExposedPort, ...]) -> None:
        """Open the exposed ports of an endpoint to every source, through a group on its port."""
        name = endpoint_group_name(endpoint_id)
        found = self.neutron.list("security-groups", name=name)
        if found:
            group = found[0]
        else:
            group = self.neutron.create_tagged("security-groups", {
                "name": name, "description": f"kuryrnet: exposed ports of endpoint {endpoint_id}"},
                [tags.OWNED, tags.docker_network(docker_network_id), tags.host(self.host_id)])
            rules = []
            for item in exposed:
                for ethertype, prefix in (("IPv4", "0.0.0.0/0"), ("IPv6", "::/0")):
                    rule = {"security_group_id": group["id"], "direction": "ingress",
                            "ethertype": ethertype, "remote_ip_prefix": prefix}
                    rule.update(_protocol_fields(item, ethertype))
                    rules.append(rule)
            self.neutron.create_bulk("security-group-rules", rules)
        if group["id"] not in port["security_groups"]:
            self.neutron.update("ports", port["id"],
                                {"security_groups": port["security_groups"] + [group["id"]]})
        LOG.info("exposed %s of endpoint %s through security group %s on port %s",
                 ", ".join(f"{p.port}/{p.protocol}" for p in exposed), endpoint_id, group["id"], port["id"])

    def unexpose(self, port: dict | None, endpoint_id: str) -> None:
        for group in self.neutron.list("security-groups", name=endpoint_group_name(endpoint_id)):
            if port is not None and group["id"] in port["security_groups"]:
                remaining = [g for g in port["security_groups"] if g != group["id"]]
                self.neutron.update("ports", port["id"], {"security_groups": remaining})
            self.neutron.delete("security-groups", group["id"])
            LOG.info("removed exposed ports of endpoint %s (security group %s)", endpoint_id, group["id"])


def _protocol_fields(item: model.ExposedPort, ethertype: str) -> dict:
    if item.protocol == "icmp":
        return {"protocol": "icmp" if ethertype == "IPv4" else "ipv6-icmp"}
    return {"protocol": item.protocol, "port_range_min": item.port, "port_range_max": item.port}
