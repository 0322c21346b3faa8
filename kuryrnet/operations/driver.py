"""The entry point of the operations: one method per libnetwork call.

The API layer parses each request into a typed object from kuryrnet.model and
calls the matching method here from a worker thread. Methods are synchronous
and idempotent, and raise kuryrnet.errors.KuryrnetError subclasses.
"""

from __future__ import annotations

import threading

from kuryrnet import model
from kuryrnet.operations.background import Background
from kuryrnet.operations.endpoints import Endpoints
from kuryrnet.operations.ipam import Ipam
from kuryrnet.operations.lookup import Lookup
from kuryrnet.operations.networks import Networks
from kuryrnet.operations.pool import PortPool
from kuryrnet.operations.ports import PortFactory
from kuryrnet.operations.reconcile import GRACE_SECONDS
from kuryrnet.operations.security_groups import SecurityGroups

# Seconds between the daemon's reconciliation passes after the second one.
RECONCILE_INTERVAL = 300.0


class Driver:
    """Docker's network driver and IPAM driver on top of Neutron."""

    def __init__(self, conf, neutron, bindings, docker=None):
        self.conf = conf
        self.neutron = neutron
        self.bindings = bindings
        self.docker = docker
        self.lookup = Lookup(neutron)
        self.security_groups = SecurityGroups(neutron, conf.host_id)
        self.ports = PortFactory(conf, neutron, self.lookup, self.security_groups)
        self.ipam = Ipam(conf, neutron, self.lookup, self.ports)
        self.networks = Networks(conf, neutron, self.lookup, self.security_groups, self.ipam)
        self.endpoints = Endpoints(conf, neutron, self.lookup, self.ports, self.security_groups,
                                   bindings)
        self.background = Background()
        self.pool = PortPool(conf, neutron, self.lookup, self.ports, self.background, docker)
        self.ports.pool = self.pool
        self.endpoints.claim = self.pool.claim
        self.networks.on_created.append(self.pool.network_created)
        self.networks.on_deleting.append(self.pool.network_deleting)
        self._reconcile_timer: threading.Timer | None = None
        self._stopping = threading.Event()

    # IPAM driver

    def request_pool(self, req: model.RequestPool) -> model.PoolResponse:
        return self.ipam.request_pool(req)

    def release_pool(self, req: model.ReleasePool) -> None:
        self.ipam.release_pool(req)

    def request_address(self, req: model.RequestAddress) -> model.AddressResponse:
        return self.ipam.request_address(req)

    def release_address(self, req: model.ReleaseAddress) -> None:
        self.ipam.release_address(req)

    # Network driver

    def create_network(self, req: model.CreateNetwork) -> None:
        self.networks.create_network(req)

    def delete_network(self, req: model.NetworkRef) -> None:
        self.networks.delete_network(req)

    def create_endpoint(self, req: model.CreateEndpoint) -> model.EndpointInterface:
        return self.endpoints.create_endpoint(req)

    def delete_endpoint(self, req: model.EndpointRef) -> None:
        self.endpoints.delete_endpoint(req)

    def endpoint_oper_info(self, req: model.EndpointRef) -> dict:
        return self.endpoints.endpoint_oper_info(req)

    def join(self, req: model.Join) -> model.JoinResponse:
        return self.endpoints.join(req)

    def leave(self, req: model.EndpointRef) -> None:
        self.endpoints.leave(req)

    def program_external_connectivity(self, req: model.ExternalConnectivity) -> None:
        self.endpoints.program_external_connectivity(req)

    def revoke_external_connectivity(self, req: model.EndpointRef) -> None:
        self.endpoints.revoke_external_connectivity(req)

    # Daemon

    def start(self) -> None:
        """Start background work (reconciliation, pool recovery); returns at once."""
        self.background.submit("recover port pools", self.pool.recover)
        if self.conf.reconcile_at_start and self.docker is not None:
            self.background.submit("reconcile leftovers of this host", self._reconcile)
            # Leftovers younger than the grace, such as the pending port of a
            # call that the previous process died in, are skipped at start.
            # Later passes release them, and what a Neutron outage strands
            # while the daemon runs (a port whose create answer was lost).
            self._schedule_reconcile(GRACE_SECONDS + 5)

    def _schedule_reconcile(self, delay: float) -> None:
        timer = threading.Timer(delay, self._periodic_reconcile)
        timer.daemon = True
        self._reconcile_timer = timer
        timer.start()

    def _periodic_reconcile(self) -> None:
        if self._stopping.is_set():
            return
        self.background.submit("reconcile leftovers of this host", self._reconcile)
        self._schedule_reconcile(RECONCILE_INTERVAL)

    def _reconcile(self) -> None:
        from kuryrnet.operations.reconcile import reconcile

        reconcile(self, remove=True)

    def stop(self) -> None:
        """Finish queued background work (bounded) and stop."""
        self._stopping.set()
        if self._reconcile_timer is not None:
            self._reconcile_timer.cancel()
        self.background.stop()

    def status(self) -> dict:
        """Return the daemon's state for `kuryrnet status` (pools, background queue)."""
        return {"host_id": self.conf.host_id,
                "neutron_requests": self.neutron.requests_sent,
                "binding_drivers": sorted(self.bindings),
                "port_pool": self.pool.status()}


def build_driver(conf) -> Driver:
    """Build the driver with its Neutron client and binding drivers from the configuration."""
    from kuryrnet.binding import load_drivers
    from kuryrnet.neutron.client import NeutronClient

    from kuryrnet.docker_engine import DockerEngine

    return Driver(conf, NeutronClient(conf), load_drivers(conf), DockerEngine(conf.docker_url))
