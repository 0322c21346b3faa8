"""A counting HTTP proxy in front of Neutron, on loopback.

Each driver gets its own listener, so the requests of two drivers never mix
even when background work overlaps. Every forwarded request is recorded
with its start and end time (time.monotonic()), method, path template and
status; the benchmark slices these records by time window.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import re
import threading
import time

import aiohttp
from aiohttp import web

LOG = logging.getLogger(__name__)

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Headers not copied from one connection to the other: the hop-by-hop ones,
# those that the proxy's HTTP library sets itself, and the encoding ones,
# because the proxy asks Neutron for uncompressed bodies.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "transfer-encoding", "upgrade", "host", "content-length",
              "accept-encoding", "content-encoding"}
REQUEST_TIMEOUT = 120.0  # seconds; generous, so that a slow Neutron shows as slow, not as failed


@dataclasses.dataclass(frozen=True)
class Record:
    """One request forwarded to Neutron."""

    started: float
    finished: float
    method: str
    template: str
    status: int

    @property
    def key(self) -> str:
        """Return "METHOD /path/template", the unit in which requests are counted."""
        return f"{self.method} {self.template}"

    @property
    def seconds(self) -> float:
        return self.finished - self.started


def path_template(path: str, query_keys: list[str]) -> str:
    """Replace ids and tag values in a Neutron URL path; append the sorted query keys.

    `/v2.0/ports/<uuid>/tags/foo` becomes `/ports/{id}/tags/{tag}`, and a list
    filtered by `device_id` and `tags` becomes `/ports?device_id&tags`.
    """
    segments = []
    previous = ""
    for segment in path.strip("/").split("/"):
        if segment.endswith(".json"):
            segment = segment[:-len(".json")]
        if UUID_RE.match(segment):
            segment = "{id}"
        elif previous == "tags" and segment:
            segment = "{tag}"
        segments.append(segment)
        previous = segment
    if segments and re.fullmatch(r"v\d+(\.\d+)?", segments[0]):
        segments = segments[1:]
    template = "/" + "/".join(segments)
    keys = sorted({key for key in query_keys if key not in ("fields", "limit", "marker")})
    if keys:
        template += "?" + "&".join(keys)
    return template


class CountingProxy:
    """Forwards HTTP requests from loopback listeners to Neutron and records each one."""

    def __init__(self, upstream_url: str):
        self.upstream_url = upstream_url.rstrip("/")
        self._records: dict[str, list[Record]] = collections.defaultdict(list)
        self._in_flight: dict[str, int] = collections.defaultdict(int)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._session: aiohttp.ClientSession | None = None
        self._runners: list[web.AppRunner] = []
        self.urls: dict[str, str] = {}

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="neutron-proxy",
                                        daemon=True)
        self._thread.start()
        self._call(self._open_session())

    async def _open_session(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
            auto_decompress=False)

    def add_listener(self, label: str) -> str:
        """Open a listener on a free loopback port for `label`; return its URL."""
        url = self._call(self._add_listener(label))
        self.urls[label] = url
        LOG.info("Neutron proxy for %s listens on %s", label, url)
        return url

    def stop(self) -> None:
        if self._loop is None:
            return
        try:
            self._call(self._shutdown())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(10)
            if not self._loop.is_running():
                self._loop.close()
            self._loop = None

    def _call(self, coroutine):
        assert self._loop is not None, "the proxy is not started"
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)

    async def _add_listener(self, label: str) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", lambda request: self._forward(label, request))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    async def _shutdown(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # -- forwarding ---------------------------------------------------------------------

    async def _forward(self, label: str, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        with self._lock:
            self._in_flight[label] += 1
        status = 502
        try:
            body = await request.read()
            headers = {name: value for name, value in request.headers.items()
                       if name.lower() not in HOP_BY_HOP}
            assert self._session is not None
            async with self._session.request(request.method, self.upstream_url + request.path_qs,
                                             headers=headers, data=body or None,
                                             allow_redirects=False) as answer:
                payload = await answer.read()
                status = answer.status
                reply_headers = {name: value for name, value in answer.headers.items()
                                 if name.lower() not in HOP_BY_HOP}
                if "Content-Encoding" in answer.headers:
                    reply_headers["Content-Encoding"] = answer.headers["Content-Encoding"]
                return web.Response(status=status, body=payload, headers=reply_headers)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            LOG.warning("Neutron proxy for %s: %s %s failed: %s", label, request.method,
                        request.path_qs, exc or type(exc).__name__)
            return web.json_response({"NeutronError": {"message": f"proxy: {exc}"}}, status=502)
        finally:
            record = Record(started=started, finished=time.monotonic(), method=request.method,
                            template=path_template(request.path, list(request.query.keys())),
                            status=status)
            with self._lock:
                self._records[label].append(record)
                self._in_flight[label] -= 1

    # -- reading the records ------------------------------------------------------------

    def records(self, label: str, since: float = float("-inf"),
                until: float = float("inf")) -> list[Record]:
        """Return the requests of `label` that started in [since, until)."""
        with self._lock:
            return [record for record in self._records[label] if since <= record.started < until]

    def count(self, label: str) -> int:
        with self._lock:
            return len(self._records[label])

    def idle_for(self, label: str) -> float:
        """Return the seconds since the last request of `label` ended, 0 while one runs."""
        with self._lock:
            if self._in_flight[label]:
                return 0.0
            records = self._records[label]
            last = records[-1].finished if records else float("-inf")
        return time.monotonic() - last

    def wait_quiet(self, label: str, quiet_seconds: float, timeout: float = 120.0) -> bool:
        """Wait until `label` sent no request for `quiet_seconds`; return False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            idle = self.idle_for(label)
            if idle >= quiet_seconds:
                return True
            time.sleep(min(0.1, quiet_seconds - idle + 0.01))
        return False


def summarize(records: list[Record]) -> dict[str, int]:
    """Count records per "METHOD /template", most frequent first."""
    counts = collections.Counter(record.key for record in records)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
