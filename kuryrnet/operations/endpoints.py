"""Endpoint calls: CreateEndpoint, Join, Leave, DeleteEndpoint and their kin."""

from __future__ import annotations

import ipaddress
import logging
import threading
import time

from kuryrnet import errors, model
from kuryrnet.binding import interface_names
from kuryrnet.binding.base import Vif
from kuryrnet.faults import crash_point
from kuryrnet.neutron import tags
from kuryrnet.neutron.client import NeutronClient, NeutronError
from kuryrnet.operations.lookup import Lookup
from kuryrnet.operations.ports import PortFactory, endpoint_port_name
from kuryrnet.operations.rollback import Rollback
from kuryrnet.operations.security_groups import SecurityGroups

LOG = logging.getLogger(__name__)

_UNBOUND = ("binding_failed", "unbound", "")


class Endpoints:
    def __init__(self, conf, neutron: NeutronClient, lookup: Lookup, ports: PortFactory,
                 security_groups: SecurityGroups, bindings: dict):
        self.conf = conf
        self.neutron = neutron
        self.lookup = lookup
        self.ports = ports
        self.security_groups = security_groups
        self.bindings = bindings  # vif_type -> BindingDriver
        self._lock = threading.Lock()
        self._ports: dict[str, dict] = {}  # Docker endpoint id -> its Neutron port
        # Endpoints created by this process -> whether ports were exposed for
        # them. For these, revoking and deleting need no Neutron lookup when
        # nothing was exposed; after a restart the lookups run.
        self._exposed: dict[str, bool] = {}
        self.claim = None  # set by the port pool: claims a pooled port for an endpoint

    # -- CreateEndpoint ---------------------------------------------------------------

    def create_endpoint(self, req: model.CreateEndpoint) -> model.EndpointInterface:
        network = self.lookup.network(req.network_id)
        port = self._port_for_request(req, network)

        if port["device_id"] not in ("", req.endpoint_id):
            raise errors.Conflict(
                f"address {req.address or req.address_ipv6} of endpoint {req.endpoint_id} is held by "
                f"Neutron port {port['id']} of another device ({port['device_id']})")
        mac_change = req.mac_address and req.mac_address.lower() != port["mac_address"].lower()
        if port["device_id"] != req.endpoint_id or mac_change:
            port = self._claim(port, req, mac_change)
        crash_point("create_endpoint.after_claim")

        self._remember(req.endpoint_id, port)
        self.lookup.remember_port(port)
        with self._lock:
            self._exposed.setdefault(req.endpoint_id, False)
        LOG.info("endpoint %s of Docker network %s is Neutron port %s (%s)", req.endpoint_id,
                 req.network_id, port["id"], ", ".join(ip["ip_address"] for ip in port["fixed_ips"]))
        return model.EndpointInterface(
            mac_address=None if req.mac_address else port["mac_address"])

    def _port_for_request(self, req: model.CreateEndpoint, network: dict) -> dict:
        known = self._known(req.endpoint_id)
        if known is not None:
            return known
        for address in (req.address, req.address_ipv6):
            if address is None:
                continue
            port = self.ports.pool.find_handed_out(address.ip) if self.ports.pool else None
            port = port or self.lookup.port_by_address(network["id"], address.ip)
            if port is not None:
                return port
        port = self.lookup.port_for_endpoint(req.endpoint_id)
        if port is not None:
            return port
        return self._create_for_builtin_ipam(req, network)

    def _create_for_builtin_ipam(self, req: model.CreateEndpoint, network: dict) -> dict:
        """Create the port when Docker's own IPAM chose the address (`-d kuryr` without `--ipam-driver kuryr`)."""
        fixed_ips = []
        for address in (req.address, req.address_ipv6):
            if address is None:
                continue
            subnet = next((s for s in self.lookup.subnets_of(network)
                           if address.ip in ipaddress.ip_network(s["cidr"])), None)
            if subnet is None:
                raise errors.NotFound(f"address {address} of endpoint {req.endpoint_id} is in no "
                                      f"subnet of Neutron network {network['id']}")
            fixed_ips.append({"subnet_id": subnet["id"], "ip_address": str(address.ip)})
        if not fixed_ips:
            raise errors.InvalidRequest(f"endpoint {req.endpoint_id} has no address; use the kuryr "
                                        f"IPAM driver (--ipam-driver kuryr) or give --subnet")
        attrs = self.ports.port_attrs(network["id"], fixed_ips, name=endpoint_port_name(req.endpoint_id))
        attrs["device_id"] = req.endpoint_id
        if req.mac_address:
            attrs["mac_address"] = req.mac_address
        try:
            port = self.neutron.create("ports", attrs)
        except NeutronError as exc:
            raise errors.Conflict(f"could not create the port of endpoint {req.endpoint_id} on "
                                  f"network {network['id']}: {exc.detail or exc}") from exc
        LOG.info("created port %s for endpoint %s (address chosen by Docker's IPAM)",
                 port["id"], req.endpoint_id)
        return port

    def _claim(self, port: dict, req: model.CreateEndpoint, mac_change: bool) -> dict:
        attrs = {"device_id": req.endpoint_id, "name": endpoint_port_name(req.endpoint_id)}
        if mac_change:
            attrs["mac_address"] = req.mac_address
        if self.claim is not None and not mac_change:
            # A pooled port: Neutron learns its new owner in the background.
            return self.claim(port, attrs)
        try:
            if mac_change:
                return self._change_mac(port, attrs)
            return self.neutron.update("ports", port["id"], attrs)
        except NeutronError as exc:
            if exc.kind == "MacAddressInUse":
                raise errors.Conflict(f"MAC address {req.mac_address} is already in use on network "
                                      f"{port['network_id']}; choose another --mac-address") from exc
            raise

    def _change_mac(self, port: dict, attrs: dict) -> dict:
        """Give a bound port Docker's MAC: Neutron changes the MAC of unbound ports only."""
        self.neutron.update("ports", port["id"], {"binding:host_id": ""})
        try:
            return self.neutron.update("ports", port["id"], {**attrs, "binding:host_id": self.conf.host_id})
        except NeutronError:
            self.neutron.update("ports", port["id"], {"binding:host_id": self.conf.host_id})
            raise

    # -- Join and Leave ---------------------------------------------------------------

    def join(self, req: model.Join) -> model.JoinResponse:
        network = self.lookup.network(req.network_id)
        port = self._port(req.endpoint_id)
        driver = self._binding_driver(port)
        vif = self._vif(req.endpoint_id, port, network)

        with Rollback(f"join endpoint {req.endpoint_id}") as undo:
            driver.plug(vif)
            crash_point("join.after_plug")
            undo.add(f"unplug {vif.host_ifname}", driver.unplug, vif)
            self._wait_ready(driver, vif, port)

        subnets = self.lookup.subnets_of(network)
        LOG.info("endpoint %s joined sandbox %s through %s (port %s)", req.endpoint_id,
                 req.sandbox_key, vif.host_ifname, port["id"])
        return _join_response(vif, port, subnets)

    def leave(self, req: model.EndpointRef) -> None:
        self._unplug(req.network_id, req.endpoint_id)
        crash_point("leave.after_unplug")
        LOG.info("endpoint %s left", req.endpoint_id)

    def _unplug(self, docker_network_id: str, endpoint_id: str) -> None:
        host_ifname, container_ifname = interface_names(self.conf, endpoint_id)
        port = self._known(endpoint_id)
        network = self.lookup.find_network(docker_network_id)
        vif = Vif(port_id=port["id"] if port else "", network_id=network["id"] if network else "",
                  endpoint_id=endpoint_id, mac_address="", mtu=0,
                  vif_type=port.get("binding:vif_type", "") if port else "",
                  vif_details=port.get("binding:vif_details") or {} if port else {},
                  host_ifname=host_ifname, container_ifname=container_ifname)
        for driver in self._drivers_for_unplug(vif):
            driver.unplug(vif)

    def _drivers_for_unplug(self, vif: Vif):
        if vif.vif_type in self.bindings:
            return [self.bindings[vif.vif_type]]
        # After a restart the vif type is unknown: each driver removes only what it finds.
        return list({id(d): d for d in self.bindings.values()}.values())

    def _binding_driver(self, port: dict):
        vif_type = port.get("binding:vif_type") or ""
        if vif_type in _UNBOUND:
            raise errors.BindingError(
                f"Neutron could not bind port {port['id']} to host {port.get('binding:host_id')!r} "
                f"(binding:vif_type={vif_type or 'none'}): check that a Neutron agent or OVN chassis "
                f"runs on this host with that host name, or set [DEFAULT] host_id")
        driver = self.bindings.get(vif_type)
        if driver is None:
            raise errors.BindingError(
                f"port {port['id']} has binding:vif_type={vif_type}, which no enabled binding driver "
                f"handles (enabled: {', '.join(sorted(self.bindings)) or 'none'}); check "
                f"[binding] enabled_drivers")
        return driver

    def _vif(self, endpoint_id: str, port: dict, network: dict) -> Vif:
        host_ifname, container_ifname = interface_names(self.conf, endpoint_id)
        return Vif(port_id=port["id"], network_id=network["id"], endpoint_id=endpoint_id,
                   mac_address=port["mac_address"], mtu=int(network.get("mtu") or 1500),
                   vif_type=port["binding:vif_type"], vif_details=port.get("binding:vif_details") or {},
                   host_ifname=host_ifname, container_ifname=container_ifname)

    def _wait_ready(self, driver, vif: Vif, port: dict) -> None:
        timeout = self.conf.binding.ready_timeout
        if timeout <= 0:
            return
        started = time.monotonic()
        if driver.wait_ready(vif, timeout):
            return
        # No local readiness signal: wait for Neutron to report the port ACTIVE.
        # The port is checked at least once, because a pooled port that someone
        # deleted never gets the local signal and must not start a container.
        while True:
            current = self.neutron.show("ports", port["id"])
            if current is None:
                raise errors.NotFound(f"Neutron port {port['id']} of endpoint {vif.endpoint_id} was "
                                      f"deleted while the endpoint joined; start the container again")
            if current["status"] == "ACTIVE":
                return
            if time.monotonic() - started >= timeout:
                break
            time.sleep(0.2)
        LOG.warning("port %s of endpoint %s is not ACTIVE after %.1f s; going on", port["id"],
                    vif.endpoint_id, timeout)

    # -- DeleteEndpoint, EndpointOperInfo ---------------------------------------------

    def delete_endpoint(self, req: model.EndpointRef) -> None:
        self._unplug(req.network_id, req.endpoint_id)
        crash_point("delete_endpoint.after_unplug")
        if self._may_have_exposed(req.endpoint_id):
            port = self._known(req.endpoint_id) or self.lookup.port_for_endpoint(req.endpoint_id)
            self.security_groups.unexpose(port, req.endpoint_id)
        with self._lock:
            self._ports.pop(req.endpoint_id, None)
            self._exposed.pop(req.endpoint_id, None)
        LOG.info("endpoint %s deleted (its port goes with the address release)", req.endpoint_id)

    def endpoint_oper_info(self, req: model.EndpointRef) -> dict:
        port = self._port(req.endpoint_id)
        return {"port_id": port["id"], "network_id": port["network_id"], "status": port["status"],
                "mac_address": port["mac_address"],
                "addresses": [ip["ip_address"] for ip in port["fixed_ips"]],
                "binding:vif_type": port.get("binding:vif_type")}

    # -- external connectivity ------------------------------------------------------------

    def program_external_connectivity(self, req: model.ExternalConnectivity) -> None:
        if not req.exposed_ports:
            return
        with self._lock:
            self._exposed[req.endpoint_id] = True
        port = self.neutron.show("ports", self._port(req.endpoint_id)["id"])
        self.security_groups.expose(port, req.endpoint_id, req.network_id, req.exposed_ports)

    def revoke_external_connectivity(self, req: model.EndpointRef) -> None:
        if not self._may_have_exposed(req.endpoint_id):
            return
        known = self._known(req.endpoint_id)
        port = self.neutron.show("ports", known["id"]) if known else self.lookup.port_for_endpoint(req.endpoint_id)
        self.security_groups.unexpose(port, req.endpoint_id)

    def _may_have_exposed(self, endpoint_id: str) -> bool:
        """Return False only for an endpoint created by this process with no exposed ports."""
        with self._lock:
            return self._exposed.get(endpoint_id, True)

    # -- endpoint -> port -----------------------------------------------------------------

    def _remember(self, endpoint_id: str, port: dict) -> None:
        with self._lock:
            self._ports[endpoint_id] = port

    def _known(self, endpoint_id: str) -> dict | None:
        with self._lock:
            return self._ports.get(endpoint_id)

    def _port(self, endpoint_id: str) -> dict:
        port = self._known(endpoint_id)
        if port is not None:
            return port
        port = self.lookup.port_for_endpoint(endpoint_id)
        if port is None:
            raise errors.NotFound(f"endpoint {endpoint_id} has no Neutron port (device_id "
                                  f"{endpoint_id}); recreate the container's endpoint")
        self._remember(endpoint_id, port)
        return port


def _join_response(vif: Vif, port: dict, subnets: list[dict]) -> model.JoinResponse:
    port_subnets = {ip["subnet_id"] for ip in port["fixed_ips"]}
    gateway_v4 = gateway_v6 = None
    routes = []
    for subnet in subnets:
        if subnet["id"] not in port_subnets:
            continue
        if subnet.get("gateway_ip"):
            gateway = ipaddress.ip_address(subnet["gateway_ip"])
            if gateway.version == 4:
                gateway_v4 = gateway_v4 or gateway
            else:
                gateway_v6 = gateway_v6 or gateway
        for route in subnet.get("host_routes") or []:
            routes.append(model.StaticRoute(ipaddress.ip_network(route["destination"]),
                                            ipaddress.ip_address(route["nexthop"])))
    return model.JoinResponse(src_name=vif.container_ifname, dst_prefix="eth", gateway=gateway_v4,
                              gateway_ipv6=gateway_v6, static_routes=tuple(routes),
                              disable_gateway_service=True)
