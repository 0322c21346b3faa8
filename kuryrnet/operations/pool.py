"""Port pools: ready, bound Neutron ports per network, so a container start
needs no synchronous Neutron request.

Life of a pooled port:
1. filled: created in the background (one bulk POST) with this host's
   `binding:host_id`, the network's security group, an address on every
   subnet of the network, the name `kuryrnet-pool` and the pool-member tag;
2. handed out: RequestAddress takes it from memory;
3. claimed: CreateEndpoint gives it the endpoint's `device_id` and name;
   the PUT runs in the background right away;
4. released: ReleaseAddress deletes it in the background. A used port is
   never handed to a second container.

After a restart the unclaimed ports of this host are not reused: a crash
between handing a port out and claiming it could otherwise give one port to
two containers. They are deleted after a grace period unless a live Docker
endpoint holds their address, in which case the lost claim is redone.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import threading
import time

from kuryrnet.faults import crash_point
from kuryrnet.neutron import tags
from kuryrnet.neutron.client import NeutronError
from kuryrnet.operations.background import Background

LOG = logging.getLogger(__name__)

POOL_PORT_NAME = "kuryrnet-pool"


class PortPool:
    def __init__(self, conf, neutron, lookup, ports, background: Background, docker=None):
        self.conf = conf
        self.neutron = neutron
        self.lookup = lookup
        self.ports = ports
        self.background = background
        self.docker = docker
        self._lock = threading.Lock()
        self._ready: dict[str, collections.deque] = collections.defaultdict(collections.deque)
        self._filling: dict[str, int] = collections.defaultdict(int)  # ports being created
        self._settings: dict[str, tuple[bool, int, int]] = {}  # Neutron network id -> (on, low, high)
        self._handed_out: dict[str, dict] = {}  # address -> port, until CreateEndpoint claims it
        self._claiming: set[str] = set()  # ports whose background claim has not finished
        self._released_while_claiming: set[str] = set()
        self.hits = 0
        self.misses = 0

    # -- settings -------------------------------------------------------------------

    def settings(self, network: dict) -> tuple[bool, int, int]:
        with self._lock:
            known = self._settings.get(network["id"])
        if known is not None:
            return known
        enabled, low, high = self.conf.port_pool.enabled, self.conf.port_pool.low, self.conf.port_pool.high
        for tag in network.get("tags", []):
            parsed = tags.parse_port_pool(tag)
            if parsed is not None:
                enabled, low, high = parsed
        value = (enabled and high > 0, low, high)
        with self._lock:
            self._settings[network["id"]] = value
        return value

    # -- network lifecycle ----------------------------------------------------------------

    def network_created(self, docker_network_id: str, network: dict, req) -> None:
        if self.settings(network)[0]:
            self._refill(network)

    def network_deleting(self, docker_network_id: str, network: dict) -> None:
        """Forget the network's ready ports; DeleteNetwork deletes them with its other ports."""
        with self._lock:
            self._ready.pop(network["id"], None)
            self._settings.pop(network["id"], None)

    # -- taking and giving back -------------------------------------------------------------

    def take(self, subnet: dict, wait: float = 0.0) -> dict | None:
        """Hand out a ready port with an address on `subnet`.

        With `wait`, wait up to that many seconds for a fill in progress, as a
        subnet whose last addresses went to the pool has nothing else left.
        """
        network = self.lookup.find_network_by_id(subnet["network_id"])
        if network is None or not self.settings(network)[0]:
            return None
        deadline = time.monotonic() + wait
        while True:
            port = self._pop_ready(subnet)
            if port is not None or time.monotonic() >= deadline:
                break
            with self._lock:
                filling = self._filling[subnet["network_id"]]
            if not filling:
                break
            time.sleep(0.1)
        with self._lock:
            if port is None:
                self.misses += 1
            else:
                self.hits += 1
                for fixed_ip in port["fixed_ips"]:
                    self._handed_out[fixed_ip["ip_address"]] = port
        self._refill(network)
        if port is not None:
            LOG.info("handed out pooled port %s on network %s (pool hits %d, misses %d)",
                     port["id"], subnet["network_id"], self.hits, self.misses)
        else:
            LOG.info("pool of network %s has no ready port; the port is created on the request path "
                     "(pool hits %d, misses %d)", subnet["network_id"], self.hits, self.misses)
        return port

    def _pop_ready(self, subnet: dict) -> dict | None:
        with self._lock:
            ready = self._ready[subnet["network_id"]]
            for candidate in list(ready):
                if any(ip["subnet_id"] == subnet["id"] for ip in candidate["fixed_ips"]):
                    ready.remove(candidate)
                    return candidate
        return None

    def take_port(self, port: dict) -> bool:
        """Hand out this ready port, because a request asked for one of its addresses."""
        with self._lock:
            ready = self._ready.get(port["network_id"])
            match = next((p for p in ready or () if p["id"] == port["id"]), None)
            if match is None:
                return False
            ready.remove(match)
            self.hits += 1
            for fixed_ip in match["fixed_ips"]:
                self._handed_out[fixed_ip["ip_address"]] = match
        network = self.lookup.find_network_by_id(port["network_id"])
        if network is not None:
            self._refill(network)
        return True

    def find_handed_out(self, address) -> dict | None:
        with self._lock:
            port = self._handed_out.get(str(address))
            if port is not None:
                for fixed_ip in port["fixed_ips"]:
                    self._handed_out.pop(fixed_ip["ip_address"], None)
            return port

    def claim(self, port: dict, attrs: dict) -> dict:
        """Give a port its endpoint's identity now in memory, in Neutron in the background."""
        if POOL_PORT_NAME != port.get("name"):
            return self.neutron.update("ports", port["id"], attrs)
        with self._lock:
            self._claiming.add(port["id"])
        self.background.submit(f"claim port {port['id']} for {attrs['device_id']}",
                               self._claim_in_neutron, port["id"], attrs,
                               on_done=lambda: self._claim_done(port["id"]))
        return {**port, **attrs}

    def _claim_in_neutron(self, port_id: str, attrs: dict) -> None:
        with self._lock:
            if port_id in self._released_while_claiming:
                return
        try:
            self.neutron.update("ports", port_id, attrs)
        except NeutronError as exc:
            with self._lock:
                released = port_id in self._released_while_claiming
            if exc.http_status != 404 or not released:
                raise
            # A short-lived container: its release deleted the port first.
            LOG.info("port %s was released before its claim by %s reached Neutron",
                     port_id, attrs["device_id"])

    def _claim_done(self, port_id: str) -> None:
        with self._lock:
            self._claiming.discard(port_id)
            self._released_while_claiming.discard(port_id)

    def release(self, port: dict) -> bool:
        """Delete a used pooled port in the background; return False for other ports."""
        if tags.POOL_MEMBER not in port.get("tags", []):
            return False
        with self._lock:
            if port["id"] in self._claiming:
                self._released_while_claiming.add(port["id"])
        self.background.submit(f"delete used port {port['id']}", self.neutron.delete, "ports", port["id"])
        return True

    # -- filling ---------------------------------------------------------------------------

    def _refill(self, network: dict) -> None:
        enabled, low, high = self.settings(network)
        if not enabled:
            return
        high = min(high, self._size_limit(network))
        low = min(low, high)
        with self._lock:
            have = len(self._ready[network["id"]]) + self._filling[network["id"]]
            if have >= low and have > 0:
                return
            count = high - have
            if count <= 0:
                return
            self._filling[network["id"]] += count
        # The count goes down once, when the job ends: a failed fill is retried.
        self.background.submit(f"fill pool of network {network['id']} with {count} port(s)",
                               self._fill, network, count,
                               on_done=lambda: self._filled(network["id"], count))

    def _filled(self, network_id: str, count: int) -> None:
        with self._lock:
            self._filling[network_id] -= count

    def _size_limit(self, network: dict) -> int:
        """Return the most ports the pool may keep: an eighth of the IPv4 subnet, so small subnets keep their addresses for fixed requests."""
        for subnet in self.lookup.subnets_of_network_id(network["id"]):
            if subnet["ip_version"] == 4:
                return (ipaddress.ip_network(subnet["cidr"]).num_addresses - 2) // 8
        return self.conf.port_pool.high

    def _fill(self, network: dict, count: int) -> None:
        subnets = self.lookup.subnets_of_network_id(network["id"])
        if not subnets:
            return
        items = []
        for _ in range(count):
            attrs = self.ports.port_attrs(network["id"], [{"subnet_id": s["id"]} for s in subnets],
                                          name=POOL_PORT_NAME, extra_tags=(tags.POOL_MEMBER,))
            items.append(attrs)
        created = self.neutron.create_bulk("ports", items)
        crash_point("pool.after_fill")
        with self._lock:
            deleted = network["id"] not in self._settings
            if not deleted:
                self._ready[network["id"]].extend(created)
        if deleted:
            # DeleteNetwork came while the ports were created; it may have listed them too.
            LOG.info("network %s went away during a pool fill; deleting its %d new port(s)",
                     network["id"], len(created))
            for port in created:
                self.neutron.delete("ports", port["id"])
            return
        LOG.info("pool of network %s filled with %d port(s)", network["id"], len(created))

    # -- restart ------------------------------------------------------------------------------

    def recover(self) -> None:
        """Replace the unclaimed pool ports left by an earlier run of this host (see module doc)."""
        grace_seconds = self.conf.port_pool.recovery_grace
        leftovers = self.neutron.list("ports", tags=tags.POOL_MEMBER, name=POOL_PORT_NAME,
                                      **{"binding:host_id": self.conf.host_id})
        if not leftovers:
            return
        LOG.info("found %d unclaimed pool port(s) of an earlier run; replacing them in %.0f s",
                 len(leftovers), grace_seconds)
        # A timer thread waits out the grace, so that no background worker
        # sleeps and a stopping daemon need not wait for it.
        timer = threading.Timer(grace_seconds, self._submit_replacement, ([p["id"] for p in leftovers],))
        timer.daemon = True
        timer.start()

    def _submit_replacement(self, port_ids: list[str]) -> None:
        try:
            self.background.submit("replace unclaimed pool ports", self._replace_leftovers, port_ids)
        except RuntimeError:
            LOG.info("not replacing %d unclaimed pool port(s): the daemon is stopping", len(port_ids))

    def _replace_leftovers(self, port_ids: list[str]) -> None:
        live = self.docker.live_endpoints() if self.docker is not None else None
        # A fill of this process may have created ports before recover() listed them.
        with self._lock:
            own = {p["id"] for ready in self._ready.values() for p in ready}
            own |= {p["id"] for p in self._handed_out.values()}
        for port_id in port_ids:
            if port_id in own:
                continue
            port = self.neutron.show("ports", port_id)
            if port is None or port["name"] != POOL_PORT_NAME or port["device_id"]:
                continue
            endpoint = _endpoint_holding(port, live) if live is not None else None
            if endpoint is not None:
                self.neutron.update("ports", port_id, {"device_id": endpoint,
                                                       "name": f"kuryrnet-{endpoint[:12]}"})
                LOG.info("redid the lost claim of port %s by endpoint %s", port_id, endpoint)
            elif live is not None:
                self.neutron.delete("ports", port_id)
                LOG.info("deleted unclaimed pool port %s of an earlier run", port_id)

    def status(self) -> dict:
        with self._lock:
            return {"hits": self.hits, "misses": self.misses,
                    "ready": {net: len(q) for net, q in self._ready.items()},
                    "filling": dict(self._filling),
                    "background_queue": self.background.queued,
                    "background_failures": self.background.failures}


def _endpoint_holding(port: dict, live: dict) -> str | None:
    """Return the id of the live Docker endpoint that uses one of the port's addresses."""
    for fixed_ip in port["fixed_ips"]:
        address = str(ipaddress.ip_address(fixed_ip["ip_address"]))
        endpoint = live.get((port["network_id"], address)) or live.get(address)
        if endpoint:
            return endpoint
    return None
