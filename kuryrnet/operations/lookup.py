"""Finding Neutron resources by the Docker ids that tags and PoolIDs carry.

Results are cached because Docker calls come in bursts for the same network;
every cache entry can be rebuilt from Neutron, so a restarted daemon starts
with empty caches and loses nothing.
"""

from __future__ import annotations

import ipaddress
import threading

from kuryrnet import errors
from kuryrnet.neutron import tags
from kuryrnet.neutron.client import NeutronClient
from kuryrnet.operations.pool_ids import PoolId


class Lookup:
    def __init__(self, neutron: NeutronClient):
        self.neutron = neutron
        self._lock = threading.Lock()
        self._networks: dict[str, dict] = {}  # Docker network id -> Neutron network
        self._subnets: dict[str, dict] = {}  # PoolID string -> Neutron subnet
        self._network_subnets: dict[str, list[dict]] = {}  # Neutron network id -> its subnets
        # (Neutron network id, address) -> the endpoint port that holds it,
        # from CreateEndpoint until ReleaseAddress.
        self._ports_by_address: dict[tuple[str, str], dict] = {}

    # -- networks -------------------------------------------------------------

    def find_network(self, docker_network_id: str) -> dict | None:
        with self._lock:
            cached = self._networks.get(docker_network_id)
        if cached is not None:
            return cached
        found = self.neutron.list("networks", tags=tags.docker_network(docker_network_id))
        if not found:
            return self._find_linked_network(docker_network_id)
        if len(found) > 1:
            ids = ", ".join(net["id"] for net in found)
            raise errors.Conflict(
                f"Docker network {docker_network_id} is linked to several Neutron networks "
                f"({ids}); remove the tag {tags.docker_network(docker_network_id)} from all but one")
        self.remember_network(docker_network_id, found[0])
        return found[0]

    def _find_linked_network(self, docker_network_id: str) -> dict | None:
        """Find a network that another project shares, through the security group that links it.

        The network gets the group's kuryrnet tags in memory (tags.LINK among
        them), so that callers read one set of tags whichever resource carries them.
        """
        groups = self.neutron.list("security-groups",
                                   tags=f"{tags.LINK},{tags.docker_network(docker_network_id)}")
        if not groups:
            return None
        network_id = groups[0]["name"].removeprefix("kuryrnet-net-")
        network = self.neutron.show("networks", network_id)
        if network is None:
            raise errors.NotFound(
                f"Docker network {docker_network_id} is linked by security group {groups[0]['id']} "
                f"to Neutron network {network_id}, which no longer exists (or is no longer shared); "
                f"remove the Docker network")
        # Never the group's OWNED tag: kuryrnet must not delete the network.
        network["tags"] = [*network.get("tags", []),
                           *(tag for tag in groups[0].get("tags", []) if tag != tags.OWNED)]
        self.remember_network(docker_network_id, network)
        return network

    def network(self, docker_network_id: str) -> dict:
        network = self.find_network(docker_network_id)
        if network is None:
            raise errors.NotFound(
                f"Docker network {docker_network_id} has no Neutron network tagged "
                f"{tags.docker_network(docker_network_id)}; recreate the Docker network")
        return network

    def find_network_by_id(self, neutron_network_id: str) -> dict | None:
        with self._lock:
            for network in self._networks.values():
                if network["id"] == neutron_network_id:
                    return network
        return self.neutron.show("networks", neutron_network_id)

    def remember_network(self, docker_network_id: str, network: dict) -> None:
        with self._lock:
            self._networks[docker_network_id] = network

    def forget_network(self, docker_network_id: str) -> None:
        with self._lock:
            network = self._networks.pop(docker_network_id, None)
            if network is None:
                return
            self._network_subnets.pop(network["id"], None)
            for key in [k for k, s in self._subnets.items() if s["network_id"] == network["id"]]:
                del self._subnets[key]
            for key in [k for k in self._ports_by_address if k[0] == network["id"]]:
                del self._ports_by_address[key]

    def subnets_of(self, network: dict) -> list[dict]:
        return self.subnets_of_network_id(network["id"])

    def subnets_of_network_id(self, network_id: str) -> list[dict]:
        with self._lock:
            cached = self._network_subnets.get(network_id)
        if cached is not None:
            return cached
        subnets = self.neutron.list("subnets", network_id=network_id)
        with self._lock:
            self._network_subnets[network_id] = subnets
        return subnets

    def forget_subnets_of(self, network_id: str) -> None:
        with self._lock:
            self._network_subnets.pop(network_id, None)

    # -- subnets by PoolID -------------------------------------------------------

    def subnet_for_pool(self, pool_id: PoolId) -> dict | None:
        key = str(pool_id)
        with self._lock:
            cached = self._subnets.get(key)
        if cached is not None:
            return cached
        if pool_id.kind == "subnet":
            subnet = self.neutron.show("subnets", pool_id.neutron_id)
        else:
            found = self.neutron.list("subnets", subnetpool_id=pool_id.neutron_id,
                                      cidr=str(pool_id.cidr))
            subnet = found[0] if found else None
        if subnet is not None:
            with self._lock:
                self._subnets[key] = subnet
        return subnet

    def subnet(self, pool_id: PoolId) -> dict:
        subnet = self.subnet_for_pool(pool_id)
        if subnet is None:
            raise errors.NotFound(
                f"no Neutron subnet for pool {pool_id} yet: Docker asks for endpoint addresses "
                f"only after CreateNetwork, which creates it; recreate the Docker network")
        return subnet

    def forget_subnet(self, pool_id: PoolId) -> None:
        with self._lock:
            self._subnets.pop(str(pool_id), None)

    # -- ports ------------------------------------------------------------------

    def port_by_address(self, network_id: str, address) -> dict | None:
        address = str(ipaddress.ip_address(address))
        with self._lock:
            cached = self._ports_by_address.get((network_id, address))
        if cached is not None:
            return cached
        found = self.neutron.list("ports", network_id=network_id, fixed_ips=f"ip_address={address}")
        return found[0] if found else None

    def remember_port(self, port: dict) -> None:
        with self._lock:
            for fixed_ip in port["fixed_ips"]:
                address = str(ipaddress.ip_address(fixed_ip["ip_address"]))
                self._ports_by_address[(port["network_id"], address)] = port

    def forget_port(self, port: dict) -> None:
        with self._lock:
            for fixed_ip in port["fixed_ips"]:
                address = str(ipaddress.ip_address(fixed_ip["ip_address"]))
                if self._ports_by_address.get((port["network_id"], address), {}).get("id") == port["id"]:
                    del self._ports_by_address[(port["network_id"], address)]

    def port_for_endpoint(self, endpoint_id: str) -> dict | None:
        found = self.neutron.list("ports", device_id=endpoint_id, device_owner=tags.DEVICE_OWNER)
        return found[0] if found else None
