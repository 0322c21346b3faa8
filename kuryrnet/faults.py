"""Crash points: named steps where a test can kill the daemon with SIGKILL.

The crash tests set the environment variable KURYRNET_CRASH_AT before they
start `kuryrnet serve`:

    KURYRNET_CRASH_AT=join.after_plug      kill at the first hit of that point
    KURYRNET_CRASH_AT=join.after_plug:3    kill at the third hit

The variable is read once, at import. Without it (in production),
`crash_point` returns after one comparison.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

LOG = logging.getLogger(__name__)

ENV_VAR = "KURYRNET_CRASH_AT"

# Every point that the operations call, so that a misspelt KURYRNET_CRASH_AT
# fails the test that sets it instead of never firing.
POINTS = frozenset({
    "request_address.after_port",
    "release_address.before_port_delete",
    "create_endpoint.after_claim",
    "join.after_plug",
    "leave.after_unplug",
    "delete_endpoint.after_unplug",
    "networks.before_tags",
    "security-groups.before_tags",
    "create_network.after_network",
    "create_network.after_subnet",
    "delete_network.after_ports",
    "pool.after_fill",
})


class CrashSpec:
    """The point to crash at and the hit that fires, parsed from `name` or `name:N`."""

    def __init__(self, text: str):
        name, separator, count = text.partition(":")
        if name not in POINTS:
            raise ValueError(f"invalid {ENV_VAR} {text!r}: unknown crash point {name!r}; "
                             f"known points: {', '.join(sorted(POINTS))}")
        if separator and not (count.isdigit() and int(count) >= 1):
            raise ValueError(f"invalid {ENV_VAR} {text!r}: the hit count after ':' must be a "
                             f"whole number of at least 1")
        self.name = name
        self.hit = int(count) if separator else 1
        self.seen = 0
        self.lock = threading.Lock()


_armed: CrashSpec | None = None


def arm(text: str | None) -> None:
    """Arm the crash point in `text` (`name` or `name:N`), or disarm with None or ""."""
    global _armed
    _armed = CrashSpec(text) if text else None


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL if `name` is the armed point and this is the armed hit."""
    spec = _armed
    if spec is None or spec.name != name:
        return
    with spec.lock:
        spec.seen += 1
        fire = spec.seen == spec.hit
    if fire:
        LOG.warning("crash point %s reached (hit %d): killing process %d with SIGKILL",
                    name, spec.hit, os.getpid())
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)


arm(os.environ.get(ENV_VAR))
