"""PoolID strings that Docker stores and sends back with every IPAM call.

A PoolID must let a restarted daemon find the pool again with no local state,
so it carries the Neutron ids and prefixes themselves:

- `pool@<subnetpool id>@<cidr>[@<ip range>]`: a prefix of a Neutron subnet
  pool; the subnet is created by CreateNetwork;
- `subnet@<subnet id>@<cidr>`: an existing Neutron subnet, attached by option.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass

from kuryrnet import errors
from kuryrnet.model import IPNetwork


@dataclass(frozen=True)
class PoolId:
    kind: str  # "pool" or "subnet"
    neutron_id: str
    cidr: IPNetwork
    ip_range: IPNetwork | None = None

    def __str__(self) -> str:
        text = f"{self.kind}@{self.neutron_id}@{self.cidr}"
        if self.ip_range is not None:
            text += f"@{self.ip_range}"
        return text

    @classmethod
    def parse(cls, text: str) -> PoolId:
        parts = text.split("@")
        try:
            if len(parts) not in (3, 4) or parts[0] not in ("pool", "subnet"):
                raise ValueError("wrong shape")
            uuid.UUID(parts[1])
            cidr = ipaddress.ip_network(parts[2])
            ip_range = ipaddress.ip_network(parts[3]) if len(parts) == 4 else None
        except ValueError:
            raise errors.InvalidRequest(
                f"invalid PoolID {text[:200]!r}: expected pool@<subnetpool id>@<cidr>[@<range>] "
                f"or subnet@<subnet id>@<cidr> as returned by RequestPool") from None
        return cls(parts[0], parts[1], cidr, ip_range)
