"""Removal of what a benchmark run created, also after a failure or a killed run.

Docker objects carry the label `kuryrnet-bench`. Neutron resources are
found by address: every subnet and subnet pool inside BENCH_SUBNET_BASE is
the benchmark's, with the networks, ports and Open vSwitch interfaces that
belong to them. Whatever a driver left behind is removed here and reported,
because a leftover is a finding about that driver.
"""

from __future__ import annotations

import ipaddress
import logging
import subprocess

from benchmarks.stack import Docker, Neutron, StackError

LOG = logging.getLogger(__name__)


def remove_docker_objects(docker: Docker, run_id: str | None) -> list[str]:
    """Remove the labelled containers, then networks, of one run (or of every run); return errors."""
    errors = []
    try:
        containers = docker.labelled("ps", run_id)
        if containers:
            LOG.info("removing %d benchmark containers", len(containers))
            errors += docker.remove_containers(containers)
        for network in docker.labelled("network", run_id):
            error = docker.remove_network(network)
            if error:
                errors.append(error)
    except StackError as exc:
        errors.append(str(exc))
    return errors


def _inside(cidr: str, base: ipaddress.IPv4Network) -> bool:
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
    return network.version == 4 and network.subnet_of(base)


def find_neutron_leftovers(neutron: Neutron, base: ipaddress.IPv4Network,
                           docker_network_ids: set[str]) -> dict[str, list[dict]]:
    """Return the Neutron resources inside `base`, and the security groups tagged with a run's Docker networks."""
    subnets = [subnet for subnet in neutron.list("subnets") if _inside(subnet["cidr"], base)]
    network_ids = {subnet["network_id"] for subnet in subnets}
    networks = [network for network in neutron.list("networks") if network["id"] in network_ids]
    ports = [port for port in neutron.list("ports") if port["network_id"] in network_ids]
    pools = [pool for pool in neutron.list("subnetpools")
             if pool.get("prefixes") and all(_inside(prefix, base) for prefix in pool["prefixes"])]
    reservations = []
    for pool in neutron.list("subnetpools"):
        for tag in pool.get("tags", []):
            if tag.startswith("kuryrnet.reserved."):
                cidr = tag[len("kuryrnet.reserved."):].replace("_", "/")
                if _inside(cidr, base):
                    reservations.append({"id": pool["id"], "tag": tag, "name": pool.get("name", "")})
    groups = []
    for group in neutron.list("security-groups"):
        tags = group.get("tags", [])
        if any(tag.startswith("kuryrnet.net.") and tag[len("kuryrnet.net."):] in docker_network_ids
               for tag in tags):
            groups.append(group)
    return {"ports": ports, "networks": networks, "subnetpools": pools,
            "reservation_tags": reservations, "security-groups": groups}


def ovs_interfaces_of(port_ids: set[str]) -> list[str]:
    """Return the Open vSwitch interfaces whose iface-id is one of the Neutron ports."""
    if not port_ids:
        return []
    try:
        output = subprocess.run(
            ["ovs-vsctl", "--format=csv", "--data=bare", "--no-headings", "--columns=name,external_ids",
             "list", "Interface"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        LOG.warning("cannot list Open vSwitch interfaces: %s", exc)
        return []
    names = []
    for line in output.splitlines():
        name, _, external_ids = line.partition(",")
        if any(f"iface-id={port_id}" in external_ids for port_id in port_ids):
            names.append(name.strip('"'))
    return names


def sweep_neutron(neutron: Neutron, base: ipaddress.IPv4Network,
                  docker_network_ids: set[str]) -> list[str]:
    """Delete the benchmark's Neutron resources that still exist; return one line per leftover."""
    try:
        found = find_neutron_leftovers(neutron, base, docker_network_ids)
    except StackError as exc:
        return [f"cannot list Neutron resources: {exc}"]
    lines = []
    port_ids = {port["id"] for port in found["ports"] if port.get("device_owner") != "network:dhcp"}
    for interface in ovs_interfaces_of(port_ids):
        lines.append(f"Open vSwitch interface {interface}")
        subprocess.run(["ovs-vsctl", "--if-exists", "del-port", interface], capture_output=True)
        subprocess.run(["ip", "link", "delete", interface], capture_output=True)

    steps = [("ports", found["ports"]), ("networks", found["networks"]),
             ("subnetpools", found["subnetpools"]), ("security-groups", found["security-groups"])]
    for collection, items in steps:
        for item in items:
            if collection == "ports" and item.get("device_owner", "").startswith("network:"):
                continue  # Neutron removes its own ports with the network
            lines.append(f"Neutron {collection[:-1]} {item['id']} {item.get('name', '')}".rstrip())
            try:
                neutron.delete(collection, item["id"])
            except StackError as exc:
                lines.append(f"  could not delete it: {exc}")
    for reservation in found["reservation_tags"]:
        lines.append(f"tag {reservation['tag']} on Neutron subnet pool {reservation['id']}")
        try:
            neutron.request("DELETE", f"subnetpools/{reservation['id']}/tags/{reservation['tag']}")
        except StackError as exc:
            lines.append(f"  could not delete it: {exc}")
    for line in lines:
        LOG.warning("removed leftover: %s", line)
    return lines
