"""Explicit rollback of the steps an operation has done so far."""

from __future__ import annotations

import logging
from typing import Callable

LOG = logging.getLogger(__name__)


class Rollback:
    """Collect undo steps; on an exception inside the `with` block, run them newest first.

    Each step is written next to the step it undoes:

        with Rollback("create network abc") as undo:
            net = create_network()
            undo.add(f"delete network {net['id']}", delete_network, net["id"])
    """

    def __init__(self, operation: str):
        self.operation = operation
        self._steps: list[tuple[str, Callable, tuple]] = []

    def add(self, description: str, func: Callable, *args) -> None:
        self._steps.append((description, func, args))

    def __enter__(self) -> Rollback:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            return False
        LOG.warning("%s failed (%s); rolling back %d step(s)", self.operation, exc, len(self._steps))
        for description, func, args in reversed(self._steps):
            try:
                func(*args)
                LOG.info("rollback of %s: %s", self.operation, description)
            except Exception:  # noqa: BLE001 - keep undoing the other steps
                LOG.exception("rollback of %s: %s failed; the resource is left behind "
                              "for `kuryrnet gc`", self.operation, description)
        return False
