"""The entry point of the operations: one method per libnetwork call.

The API layer parses each request into a typed object from kuryrnet.model and
calls the matching method here from a worker thread. Methods are synchronous
and idempotent, and raise kuryrnet.errors.KuryrnetError subclasses.
"""

from __future__ import annotations

from kuryrnet import model


class Driver:
    """Docker's network driver and IPAM driver on top of Neutron."""

    def __init__(self, conf, neutron, bindings, docker=None):
        self.conf = conf
        self.neutron = neutron
        self.bindings = bindings
        self.docker = docker

    # IPAM driver

    def request_pool(self, req: model.RequestPool) -> model.PoolResponse:
        raise NotImplementedError

    def release_pool(self, req: model.ReleasePool) -> None:
        raise NotImplementedError

    def request_address(self, req: model.RequestAddress) -> model.AddressResponse:
        raise NotImplementedError

    def release_address(self, req: model.ReleaseAddress) -> None:
        raise NotImplementedError

    # Network driver

    def create_network(self, req: model.CreateNetwork) -> None:
        raise NotImplementedError

    def delete_network(self, req: model.NetworkRef) -> None:
        raise NotImplementedError

    def create_endpoint(self, req: model.CreateEndpoint) -> model.EndpointInterface:
        raise NotImplementedError

    def delete_endpoint(self, req: model.EndpointRef) -> None:
        raise NotImplementedError

    def endpoint_oper_info(self, req: model.EndpointRef) -> dict:
        raise NotImplementedError

    def join(self, req: model.Join) -> model.JoinResponse:
        raise NotImplementedError

    def leave(self, req: model.EndpointRef) -> None:
        raise NotImplementedError

    def program_external_connectivity(self, req: model.ExternalConnectivity) -> None:
        raise NotImplementedError

    def revoke_external_connectivity(self, req: model.EndpointRef) -> None:
        raise NotImplementedError

    # Daemon

    def start(self) -> None:
        """Start background work (reconciliation, pool filling); returns at once."""

    def stop(self) -> None:
        """Stop background work."""

    def status(self) -> dict:
        """Return the daemon's state for `kuryrnet status` (pools, background queue)."""
        return {}


def build_driver(conf) -> Driver:
    """Build the driver with its Neutron client and binding drivers from the configuration."""
    raise NotImplementedError
