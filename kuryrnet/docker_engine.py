"""A minimal Docker Engine API client, used to find the live endpoints of kuryr networks."""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import urllib.parse

from kuryrnet import errors


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class DockerEngine:
    def __init__(self, url: str, timeout: float = 10.0):
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("unix", "http"):
            raise errors.InvalidRequest(f"invalid docker_url {url!r}: expected unix:///path or http://host:port")
        self.url = parsed
        self.timeout = timeout

    def _get(self, path: str):
        if self.url.scheme == "unix":
            conn = _UnixConnection(self.url.path, self.timeout)
        else:
            conn = http.client.HTTPConnection(self.url.netloc, timeout=self.timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
        except OSError as exc:
            raise errors.BackendUnavailable(f"Docker engine at {self.url.geturl()} is unreachable: {exc}") from exc
        finally:
            conn.close()
        if response.status != 200:
            raise errors.BackendError(f"Docker GET {path} failed with {response.status}: {body[:200]!r}")
        return json.loads(body)

    def kuryr_networks(self) -> list[dict]:
        """Return the inspected Docker networks whose driver is a kuryr one."""
        networks = self._get("/networks")
        result = []
        for summary in networks:
            if "kuryr" not in (summary.get("Driver") or ""):
                continue
            result.append(self._get(f"/networks/{summary['Id']}"))
        return result

    def live_endpoints(self) -> dict:
        """Return {address: endpoint id} and {endpoint id: Docker network id} entries for live endpoints."""
        live = {}
        for network in self.kuryr_networks():
            for container in (network.get("Containers") or {}).values():
                endpoint = container.get("EndpointID")
                if not endpoint:
                    continue
                live[endpoint] = network["Id"]
                for key in ("IPv4Address", "IPv6Address"):
                    if container.get(key):
                        live[str(ipaddress.ip_interface(container[key]).ip)] = endpoint
        return live
