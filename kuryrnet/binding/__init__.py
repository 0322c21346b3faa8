"""The host binding layer: wires a Neutron port to this host by its vif type.

`load_drivers` builds the enabled drivers from the `kuryrnet.binding_drivers`
entry points, and `interface_names` derives the veth names of an endpoint.
"""

from __future__ import annotations

import logging
import re
from importlib import metadata

from kuryrnet.binding.base import BindingDriver, Vif
from kuryrnet.errors import BindingError, InvalidRequest

LOG = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "kuryrnet.binding_drivers"

# The kernel's IFNAMSIZ is 16 bytes including the terminating NUL.
MAX_IFNAME_LENGTH = 15
MAX_PREFIX_LENGTH = 4

# Prefixes of the interfaces of a hybrid OVS plug (per-port Linux bridge and the
# veth pair from it into OVS), and of the per-network Linux bridges. The
# configured prefixes must not overlap them, or two interfaces could share a name.
HYBRID_BRIDGE_PREFIX = "qbr"
HYBRID_BRIDGE_VETH_PREFIX = "qvb"
HYBRID_OVS_VETH_PREFIX = "qvo"
NETWORK_BRIDGE_PREFIX = "brq"
RESERVED_PREFIXES = (HYBRID_BRIDGE_PREFIX, HYBRID_BRIDGE_VETH_PREFIX,
                     HYBRID_OVS_VETH_PREFIX, NETWORK_BRIDGE_PREFIX)

_PREFIX_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_ENDPOINT_ID_PATTERN = re.compile(r"^[0-9a-f]{64}$")


def load_drivers(conf) -> dict[str, BindingDriver]:
    """Instantiate the drivers named in `[binding] enabled_drivers`, keyed by vif type.

    Raises BindingError for an unknown driver name, a driver that fails to load,
    two drivers claiming one vif type, or invalid interface name prefixes.
    """
    validate_prefixes(conf)
    available = {entry.name: entry for entry in metadata.entry_points(group=ENTRY_POINT_GROUP)}

    drivers: dict[str, BindingDriver] = {}
    for name in conf.binding.enabled_drivers:
        driver = _load_driver(conf, name, available)
        for vif_type in driver.vif_types:
            if vif_type in drivers:
                raise BindingError(
                    f"binding drivers {type(drivers[vif_type]).__name__} and "
                    f"{type(driver).__name__} both handle vif type {vif_type!r}. "
                    f"Enable only one of them in [binding] enabled_drivers")
            drivers[vif_type] = driver
        LOG.info("Loaded binding driver %s for vif types %s", name, ", ".join(driver.vif_types))
    return drivers


def _load_driver(conf, name: str, available: dict) -> BindingDriver:
    if name not in available:
        names = ", ".join(sorted(available)) or "none installed"
        raise BindingError(
            f"unknown binding driver {name!r} in [binding] enabled_drivers. "
            f"Available drivers: {names}")
    try:
        driver_class = available[name].load()
    except (ImportError, AttributeError) as exc:
        raise BindingError(f"failed to load binding driver {name!r} "
                           f"({available[name].value}): {exc}") from exc
    if not (isinstance(driver_class, type) and issubclass(driver_class, BindingDriver)):
        raise BindingError(f"binding driver {name!r} ({available[name].value}) "
                           f"is not a BindingDriver subclass")
    return driver_class(conf)


def validate_prefixes(conf) -> None:
    """Check `[binding] veth_prefix` and `container_prefix`, and raise BindingError if one is invalid."""
    prefixes = {"veth_prefix": conf.binding.veth_prefix,
                "container_prefix": conf.binding.container_prefix}
    for option, prefix in prefixes.items():
        _validate_prefix(option, prefix)

    host, container = prefixes["veth_prefix"], prefixes["container_prefix"]
    if host.startswith(container) or container.startswith(host):
        raise BindingError(
            f"invalid [binding] veth_prefix {host!r} and container_prefix {container!r}: "
            f"neither may start with the other, or host and container interface names can clash")


def _validate_prefix(option: str, prefix: str) -> None:
    if not 1 <= len(prefix) <= MAX_PREFIX_LENGTH:
        raise BindingError(f"invalid [binding] {option} {prefix!r}: "
                           f"must be 1 to {MAX_PREFIX_LENGTH} characters long")
    if not _PREFIX_PATTERN.match(prefix):
        raise BindingError(f"invalid [binding] {option} {prefix!r}: must start with a letter "
                           f"and contain only letters, digits, '_', '.' and '-'")
    for reserved in RESERVED_PREFIXES:
        if prefix.startswith(reserved) or reserved.startswith(prefix):
            raise BindingError(f"invalid [binding] {option} {prefix!r}: it overlaps the "
                               f"prefix {reserved!r} that the binding drivers use")


def validate_endpoint_id(endpoint_id: str) -> None:
    """Raise InvalidRequest unless `endpoint_id` is a Docker endpoint id (64 lowercase hex digits)."""
    if not _ENDPOINT_ID_PATTERN.match(endpoint_id):
        raise InvalidRequest(f"invalid endpoint id {endpoint_id!r}: "
                             f"expected 64 lowercase hexadecimal digits")


def interface_names(conf, endpoint_id: str) -> tuple[str, str]:
    """Return (host_ifname, container_ifname) of the endpoint's veth pair.

    Each name is the configured prefix followed by the leading digits of the
    endpoint id, cut to 15 characters.
    """
    validate_prefixes(conf)
    validate_endpoint_id(endpoint_id)
    return (_name_from_id(conf.binding.veth_prefix, endpoint_id),
            _name_from_id(conf.binding.container_prefix, endpoint_id))


def veth_names(conf, vif: Vif) -> tuple[str, str]:
    """Return the (host, container) veth names of `vif`: its own when set, else derived."""
    if vif.host_ifname and vif.container_ifname:
        return vif.host_ifname, vif.container_ifname
    return interface_names(conf, vif.endpoint_id)


def hybrid_names(endpoint_id: str) -> tuple[str, str, str]:
    """Return (bridge, bridge_veth, ovs_veth) names of a hybrid OVS plug of the endpoint."""
    validate_endpoint_id(endpoint_id)
    return (_name_from_id(HYBRID_BRIDGE_PREFIX, endpoint_id),
            _name_from_id(HYBRID_BRIDGE_VETH_PREFIX, endpoint_id),
            _name_from_id(HYBRID_OVS_VETH_PREFIX, endpoint_id))


def _name_from_id(prefix: str, identifier: str) -> str:
    return (prefix + identifier)[:MAX_IFNAME_LENGTH]
