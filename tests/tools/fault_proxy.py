"""An HTTP proxy on loopback that injects faults between kuryrnet and Neutron.

Point the daemon at it with `[neutron] endpoint_override = <proxy url>`.
Without rules it forwards every request unchanged. A rule matches requests by
method and a regular expression on the path, for a number of matches or
forever, and then does one of:

- `status`: answer with an HTTP error (500, 503, ...) without forwarding;
- `reset`: close the client connection with a TCP reset, before forwarding,
  or after forwarding when `after_forward` is set (Neutron then did the work
  but the client never hears of it);
- `delay`: wait `seconds` and then forward.

With an `ssl_context`, the proxy serves HTTPS, for tests of TLS
verification towards Neutron.

`refuse()` closes the listening socket and the open client connections, so
connections are refused until `accept()` opens it again on the same port.

Tests use the `FaultProxy` object in-process. Run as a script, the proxy
takes rules over a control API on a second loopback port:

    python tests/tools/fault_proxy.py --upstream http://127.0.0.1:9696
    curl -X POST 127.0.0.1:<control>/rules -d '{"action": "status", "status": 503, "count": 2}'
    curl -X POST 127.0.0.1:<control>/refuse ; curl -X POST 127.0.0.1:<control>/accept
    curl 127.0.0.1:<control>/log ; curl -X DELETE 127.0.0.1:<control>/rules
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import re
import socket
import ssl
import struct
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass, field

ACTIONS = ("status", "reset", "delay")
# Hop-by-hop headers that a proxy must not pass on (RFC 9110, section 7.6.1).
HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "te", "trailer",
               "transfer-encoding", "upgrade"}


@dataclass
class Rule:
    """One fault: what it matches, what it does and how many more times."""

    action: str
    method: str | None = None  # None matches every method
    path: str | None = None  # a regular expression searched in the path and query
    count: int | None = 1  # remaining matches; None for every match
    status: int = 503
    seconds: float = 0.0
    after_forward: bool = False
    hits: int = 0

    def __post_init__(self):
        if self.action not in ACTIONS:
            raise ValueError(f"invalid action {self.action!r}: expected one of {', '.join(ACTIONS)}")
        self._pattern = re.compile(self.path) if self.path else None

    def matches(self, method: str, path: str) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        if self.method is not None and self.method != method:
            return False
        return self._pattern is None or bool(self._pattern.search(path))


@dataclass
class LogEntry:
    """A request that reached the proxy and what the proxy did with it."""

    method: str
    path: str
    outcome: str  # "forwarded 201", "status 503", "reset", "reset after 201", "delayed 2.0 s, 200"
    time: float = field(default_factory=time.time)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # a reset connection is the point of a `reset` rule, not an error


class FaultProxy:
    """A threaded HTTP proxy in front of `upstream`, listening on 127.0.0.1 (random port by default)."""

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0,
                 upstream_timeout: float = 120.0, ssl_context: ssl.SSLContext | None = None):
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"invalid upstream {upstream!r}: expected http://HOST:PORT")
        self.upstream_host = parsed.hostname
        self.upstream_port = parsed.port or 80
        self.upstream_timeout = upstream_timeout
        self.host = host
        self.port = port
        self.ssl_context = ssl_context  # serve HTTPS with this server context
        self.rules: list[Rule] = []
        self.log: list[LogEntry] = []
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()  # open client connections

    # -- lifecycle ----------------------------------------------------------------

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self) -> FaultProxy:
        self.accept()
        return self

    def accept(self) -> None:
        """Listen (again) on the proxy's port."""
        if self._server is not None:
            return
        handler = type("Handler", (_Handler,), {"proxy": self})
        server = _Server((self.host, self.port), handler)
        if self.ssl_context is not None:
            server.socket = self.ssl_context.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=f"fault-proxy-{self.port}",
                                        daemon=True)
        self._thread.start()

    def refuse(self) -> None:
        """Close the listening socket and the open connections; new connections are refused."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            self._thread.join(10)
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its handler

    def stop(self) -> None:
        self.refuse()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- rules ---------------------------------------------------------------------

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def fail(self, status: int = 503, method: str | None = None, path: str | None = None,
             count: int | None = 1) -> Rule:
        return self.add(Rule("status", method, path, count, status=status))

    def reset(self, method: str | None = None, path: str | None = None, count: int | None = 1,
              after_forward: bool = False) -> Rule:
        return self.add(Rule("reset", method, path, count, after_forward=after_forward))

    def delay(self, seconds: float, method: str | None = None, path: str | None = None,
              count: int | None = None) -> Rule:
        return self.add(Rule("delay", method, path, count, seconds=seconds))

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def take_rule(self, method: str, path: str) -> Rule | None:
        """Return the first rule that matches and count the match."""
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.hits += 1
                    if rule.count is not None:
                        rule.count -= 1
                    return rule
        return None

    def record(self, method: str, path: str, outcome: str) -> None:
        with self._lock:
            self.log.append(LogEntry(method, path, outcome))

    def outcomes(self, method: str | None = None, path: str | None = None) -> list[str]:
        """Return the outcomes of the logged requests that match `method` and the `path` pattern."""
        pattern = re.compile(path) if path else None
        with self._lock:
            return [entry.outcome for entry in self.log
                    if (method is None or entry.method == method)
                    and (pattern is None or pattern.search(entry.path))]


class _Handler(http.server.BaseHTTPRequestHandler):
    proxy: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass  # the proxy keeps its own log

    def setup(self):
        super().setup()
        with self.proxy._lock:
            self.proxy._connections.add(self.connection)

    def finish(self):
        with self.proxy._lock:
            self.proxy._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass  # the connection was reset or shut down

    def do_GET(self):
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        rule = self.proxy.take_rule(self.command, self.path)

        if rule is not None and rule.action == "status":
            self.proxy.record(self.command, self.path, f"status {rule.status}")
            self._send(rule.status, {"Content-Type": "application/json"}, json.dumps(
                {"NeutronError": {"type": "InjectedFault", "message": "injected by fault_proxy",
                                  "detail": ""}}).encode())
            return
        if rule is not None and rule.action == "reset" and not rule.after_forward:
            self.proxy.record(self.command, self.path, "reset")
            self._reset()
            return
        delayed = ""
        if rule is not None and rule.action == "delay":
            time.sleep(rule.seconds)
            delayed = f"delayed {rule.seconds:.1f} s, "

        try:
            status, headers, payload = self._forward(body)
        except OSError as exc:
            self.proxy.record(self.command, self.path, f"upstream failed: {exc}")
            self._send(502, {"Content-Type": "text/plain"}, f"upstream failed: {exc}".encode())
            return
        if rule is not None and rule.action == "reset":
            self.proxy.record(self.command, self.path, f"reset after {status}")
            self._reset()
            return
        self.proxy.record(self.command, self.path, f"{delayed}forwarded {status}")
        self._send(status, headers, payload)

    def _forward(self, body: bytes) -> tuple[int, dict, bytes]:
        connection = http.client.HTTPConnection(self.proxy.upstream_host, self.proxy.upstream_port,
                                                timeout=self.proxy.upstream_timeout)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
            connection.request(self.command, self.path, body=body or None, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            out_headers = {k: v for k, v in response.getheaders()
                           if k.lower() not in HOP_HEADERS and k.lower() != "content-length"}
            return response.status, out_headers, payload
        finally:
            connection.close()

    def _send(self, status: int, headers: dict, payload: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout makes close() send a TCP RST.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


# -- the control API of the script -------------------------------------------------


def control_handler(proxy: FaultProxy):
    class Control(http.server.BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002
            pass

        def _reply(self, status: int, payload) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/log":
                self._reply(200, [asdict(entry) for entry in proxy.log])
            elif self.path == "/rules":
                self._reply(200, [{k: v for k, v in asdict(rule).items()} for rule in proxy.rules])
            else:
                self._reply(404, {"error": f"unknown path {self.path}"})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if self.path == "/rules":
                try:
                    rule = proxy.add(Rule(**json.loads(self.rfile.read(length) or b"{}")))
                except (TypeError, ValueError, re.error) as exc:
                    self._reply(400, {"error": f"invalid rule: {exc}"})
                    return
                self._reply(201, asdict(rule))
            elif self.path == "/refuse":
                proxy.refuse()
                self._reply(200, {"listening": False})
            elif self.path == "/accept":
                proxy.accept()
                self._reply(200, {"listening": True, "url": proxy.url})
            else:
                self._reply(404, {"error": f"unknown path {self.path}"})

        def do_DELETE(self):
            if self.path == "/rules":
                proxy.clear()
                self._reply(200, [])
            else:
                self._reply(404, {"error": f"unknown path {self.path}"})

    return Control


def main() -> None:
    parser = argparse.ArgumentParser(description="Fault-injecting HTTP proxy in front of Neutron.")
    parser.add_argument("--upstream", default="http://127.0.0.1:9696",
                        help="URL of the service to forward to (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0,
                        help="loopback port of the proxy (default: a free port)")
    parser.add_argument("--control-port", type=int, default=0,
                        help="loopback port of the control API (default: a free port)")
    args = parser.parse_args()

    proxy = FaultProxy(args.upstream, port=args.port).start()
    control = http.server.ThreadingHTTPServer(("127.0.0.1", args.control_port), control_handler(proxy))
    print(json.dumps({"proxy": proxy.url, "control": f"http://127.0.0.1:{control.server_address[1]}"}),
          flush=True)
    try:
        control.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        control.server_close()
        proxy.stop()


if __name__ == "__main__":
    main()
