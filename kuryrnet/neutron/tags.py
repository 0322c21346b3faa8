"""Neutron tags that link Neutron resources to Docker's ids.

Neutron is kuryrnet's only store: a restarted daemon finds its networks,
subnets, pools and ports again through these tags. Tags never contain a `/`
or a `,`, because they travel in URL paths and in comma-separated filters.
"""

OWNED = "kuryrnet"  # created by kuryrnet, so kuryrnet may delete it
AUX = "kuryrnet.aux"  # a port that reserves a Docker auxiliary address
# On a network's security group: the group, not the network, links the Docker
# network to it, because the network belongs to another project that shares
# it and Neutron lets only its owner tag it.
LINK = "kuryrnet.link"
POOL_MEMBER = "kuryrnet.pool-member"  # a ready port in this host's port pool
DEVICE_OWNER = "kuryr:container"  # device_owner of endpoint ports
AUX_DEVICE_OWNER = "kuryr:aux"
POOL_DEVICE_OWNER = "kuryr:pool"


def network_description(host_id: str) -> str:
    """Description of the networks kuryrnet creates on `host_id`, set in their POST.

    Tags take a second request, so a crash in between leaves a network with
    this description and no tags; reconciliation finds it by this value.
    """
    return f"kuryrnet network of host {host_id}"


def docker_network(network_id: str) -> str:
    return f"kuryrnet.net.{network_id}"


def host(host_id: str) -> str:
    return f"kuryrnet.host.{host_id}"


def reservation(cidr) -> str:
    """Tag on a subnet pool that reserves `cidr` for a Docker network not created yet."""
    return "kuryrnet.reserved." + str(cidr).replace("/", "_")


def reserved_cidr(tag: str) -> str | None:
    prefix = "kuryrnet.reserved."
    if not tag.startswith(prefix):
        return None
    return tag[len(prefix):].replace("_", "/")


def ip_range(cidr, sub_range) -> str:
    """Tag on a subnet pool that records the --ip-range given for a reserved `cidr`."""
    return f"kuryrnet.range.{cidr}.{sub_range}".replace("/", "_")


def ip_range_of(tag_list: list[str], cidr) -> str | None:
    prefix = f"kuryrnet.range.{cidr}.".replace("/", "_")
    for tag in tag_list:
        if tag.startswith(prefix):
            return tag[len(prefix):].replace("_", "/")
    return None


def port_pool(enabled: bool, low: int, high: int) -> str:
    """Tag on a Neutron network that records its port pool settings from `-o kuryrnet.port_pool.*`."""
    return f"kuryrnet.pool.{'on' if enabled else 'off'}.{low}.{high}"


def parse_port_pool(tag: str) -> tuple[bool, int, int] | None:
    parts = tag.split(".")
    if len(parts) != 5 or parts[:2] != ["kuryrnet", "pool"] or parts[2] not in ("on", "off"):
        return None
    try:
        return parts[2] == "on", int(parts[3]), int(parts[4])
    except ValueError:
        return None
