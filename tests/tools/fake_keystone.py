"""A minimal Keystone v3 on loopback for tests that need password authentication
without the stack's Keystone mode.

It accepts one user and password, hands out random tokens with a short or
long lifetime, and counts the logins. Neutron in noauth mode ignores the
token, so a kuryrnet daemon configured with `auth_type = password` and this
`auth_url` works against the noauth stack while going through keystoneauth's
whole password login.
"""

from __future__ import annotations

import datetime
import http.server
import json
import secrets
import threading


class FakeKeystone:
    """Serve /v3 and /v3/auth/tokens on 127.0.0.1 (random port)."""

    def __init__(self, username: str, password: str, project: str = "kuryrnet-test",
                 token_lifetime: float = 3600.0):
        self.username = username
        self.password = password
        self.project = project
        self.token_lifetime = token_lifetime
        self.tokens: list[str] = []
        self.rejected = 0
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v3"

    def start(self) -> FakeKeystone:
        handler = type("Handler", (_Handler,), {"keystone": self})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeKeystone:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def issue(self, body: dict) -> tuple[int, dict, str | None]:
        """Check a password login; return status, body and the new token."""
        try:
            user = body["auth"]["identity"]["password"]["user"]
            name, password = user["name"], user["password"]
        except (KeyError, TypeError):
            return 400, {"error": {"code": 400, "message": "invalid auth request"}}, None
        if name != self.username or password != self.password:
            with self._lock:
                self.rejected += 1
            return 401, {"error": {"code": 401, "title": "Unauthorized",
                                   "message": "The request you have made requires authentication."}}, None
        token = secrets.token_hex(32)
        now = datetime.datetime.now(datetime.timezone.utc)
        expires = now + datetime.timedelta(seconds=self.token_lifetime)
        with self._lock:
            self.tokens.append(token)
        return 201, {"token": {
            "methods": ["password"],
            "user": {"id": "u-" + name, "name": name, "domain": {"id": "default", "name": "Default"}},
            "project": {"id": "p-" + self.project, "name": self.project,
                        "domain": {"id": "default", "name": "Default"}},
            "roles": [{"id": "r-admin", "name": "admin"}],
            "issued_at": now.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "catalog": [],
        }}, token


class _Handler(http.server.BaseHTTPRequestHandler):
    keystone: FakeKeystone
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass

    def _reply(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.rstrip("/") in ("", "/v3"):
            self._reply(200, {"version": {
                "id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
                "links": [{"rel": "self", "href": self.keystone.url + "/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.identity-v3+json"}]}})
        else:
            self._reply(404, {"error": {"code": 404, "message": "not found"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if self.path.rstrip("/") != "/v3/auth/tokens":
            self._reply(404, {"error": {"code": 404, "message": "not found"}})
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            body = {}
        status, reply, token = self.keystone.issue(body)
        self._reply(status, reply, {"X-Subject-Token": token} if token else None)
