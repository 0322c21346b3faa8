"""Background Neutron work with bounded retries, off Docker's request path."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

LOG = logging.getLogger(__name__)


def _final(exc: Exception) -> bool:
    """Return whether retrying cannot help: Neutron rejected the request itself (4xx)."""
    status = getattr(exc, "http_status", None)
    return status is not None and 400 <= status < 500


class Background:
    """Run jobs in worker threads; a failing job is retried with backoff, then logged and counted."""

    def __init__(self, workers: int = 8, attempts: int = 8, first_delay: float = 0.25):
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kuryrnet-bg")
        self.attempts = attempts
        self.first_delay = first_delay
        self._lock = threading.Lock()
        self.queued = 0
        self.failures = 0
        self._stopping = threading.Event()

    def submit(self, description: str, func: Callable, *args,
               on_done: Callable[[], None] | None = None) -> None:
        """Queue `func(*args)`; `on_done` runs once when the job ends, after its last attempt."""
        with self._lock:
            self.queued += 1
        try:
            self._executor.submit(self._run, description, func, args, on_done)
        except RuntimeError:
            with self._lock:
                self.queued -= 1
            raise

    def _run(self, description: str, func: Callable, args: tuple,
             on_done: Callable[[], None] | None = None) -> None:
        delay = self.first_delay
        try:
            for attempt in range(1, self.attempts + 1):
                try:
                    func(*args)
                    return
                except Exception as exc:  # noqa: BLE001 - logged, retried, then counted
                    if attempt == self.attempts or self._stopping.is_set() or _final(exc):
                        with self._lock:
                            self.failures += 1
                        LOG.error("background job failed after %d attempt(s): %s: %s",
                                  attempt, description, exc)
                        return
                    LOG.warning("background job %s failed (%s); retry %d in %.1f s",
                                description, exc, attempt, delay)
                    # stop() sets the event, so a retry that waits ends at once.
                    self._stopping.wait(delay)
                    delay = min(delay * 2, 15)
        finally:
            if on_done is not None:
                on_done()
            with self._lock:
                self.queued -= 1

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no job is queued or running; return whether that happened in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.queued == 0:
                    return True
            time.sleep(0.05)
        return False

    def stop(self, timeout: float = 10.0) -> None:
        self.wait_idle(timeout)
        self._stopping.set()
        self._executor.shutdown(wait=False, cancel_futures=True)
