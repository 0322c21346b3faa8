"""A small Neutron REST client on a keystoneauth session.

Only the calls kuryrnet needs, as plain dictionaries. Idempotent requests
(GET, PUT, DELETE) are retried with bounded backoff after connection errors
and 5xx answers. A POST is retried only when the connection was refused,
because then Neutron never saw it; any other failure of a POST is reported,
since a retry could create a second resource.
"""

from __future__ import annotations

import logging
import time
import uuid
import urllib.parse

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading

from kuryrnet import errors
from kuryrnet.config import AUTH_GROUP
from kuryrnet.faults import crash_point

LOG = logging.getLogger(__name__)

_RETRIED_STATUSES = {500, 502, 503, 504}


class NeutronError(errors.KuryrnetError):
    """Neutron answered with an error; `kind` is Neutron's error type, for example IpAddressAlreadyAllocated."""

    def __init__(self, method: str, path: str, status: int, kind: str, detail: str):
        super().__init__(f"Neutron {method} {path} failed with {status} {kind}: {detail}")
        self.status = status if 400 <= status < 500 else 502
        self.http_status = status
        self.kind = kind
        self.detail = detail


def _decode_error(response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:300]
    if isinstance(body, dict) and isinstance(body.get("NeutronError"), dict):
        error = body["NeutronError"]
        return str(error.get("type", "")), str(error.get("message", ""))[:500]
    return "", str(body)[:300]


def _key(collection: str) -> str:
    """Return the JSON key of a collection: the URL says security-groups, the body security_groups."""
    return collection.replace("-", "_")


def _never_sent(exc: Exception) -> bool:
    """Return whether a connection failure happened before the request left this host."""
    if isinstance(exc, ks_exc.ConnectFailure):
        text = str(exc).lower()
        return "refused" in text or "newconnectionerror" in text
    return False


class NeutronClient:
    """Neutron v2.0 API calls over one keystoneauth adapter (thread-safe)."""

    def __init__(self, conf, session=None):
        self.retries = conf.neutron.retries
        self.backoff = conf.neutron.retry_backoff
        self.timeout = conf.neutron.request_timeout
        if session is None:
            auth = ks_loading.load_auth_from_conf_options(conf, AUTH_GROUP)
            session = ks_loading.load_session_from_conf_options(conf, AUTH_GROUP, auth=auth)
        self.adapter = ks_loading.load_adapter_from_conf_options(
            conf, AUTH_GROUP, session=session, service_type="network")
        self.requests_sent = 0  # for benchmarks: every request that reached the wire

    def caller(self) -> tuple[str | None, frozenset[str]]:
        """Return the project id and role names of kuryrnet's credentials.

        Without Keystone (`auth_type = none`) there is no project: (None, {}).
        """
        auth = self.adapter.auth or self.adapter.session.auth
        if auth is None or not hasattr(auth, "get_access"):
            return None, frozenset()
        access = auth.get_access(self.adapter.session)
        return access.project_id, frozenset(access.role_names or ())

    # -- transport ------------------------------------------------------------

    def request(self, method: str, path: str, body: dict | None = None,
                params: dict | None = None, ok_statuses=(200, 201, 204)) -> dict:
        url = "/v2.0" + path
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        idempotent = method != "POST"
        attempt = 0
        while True:
            attempt += 1
            try:
                self.requests_sent += 1
                response = self.adapter.request(
                    url, method, json=body, raise_exc=False, timeout=self.timeout,
                    headers={"Accept": "application/json"})
            except (ks_exc.ConnectFailure, ks_exc.ConnectTimeout, ks_exc.RequestTimeout) as exc:
                retry = idempotent or _never_sent(exc)
                if retry and attempt <= self.retries:
                    self._wait(method, path, attempt, str(exc))
                    continue
                raise errors.BackendUnavailable(
                    f"Neutron {method} {path} failed: {exc}. Check that Neutron is reachable "
                    f"at the configured endpoint.") from exc
            except ks_exc.SSLError as exc:
                raise errors.BackendUnavailable(
                    f"Neutron {method} {path} failed: the TLS connection to Neutron failed: "
                    f"{exc}. If Neutron's certificate is signed by a private CA, set [neutron] "
                    f"cafile to that CA's certificate.") from exc
            except ks_exc.HttpServerError as exc:
                # Keystone failed to issue a token, so the Neutron request was
                # never sent and may be retried whatever its method.
                if attempt <= self.retries:
                    self._wait(method, path, attempt, f"Keystone answered {exc.http_status}")
                    continue
                raise errors.BackendUnavailable(
                    f"Neutron {method} {path} failed before it was sent: Keystone answered "
                    f"{exc.http_status} to the token request: {exc}. Check that Keystone at the "
                    f"configured auth_url is running.") from exc
            except ks_exc.ClientException as exc:
                # Failures before the request is sent: Keystone rejected the
                # credentials, or no Neutron endpoint was found.
                raise errors.BackendError(
                    f"Neutron {method} {path} failed before it was sent: "
                    f"{type(exc).__name__}: {exc}. Check the authentication options in "
                    f"[neutron].") from exc
            if response.status_code in ok_statuses:
                if response.status_code == 204 or not response.content:
                    return {}
                return response.json()
            if idempotent and response.status_code in _RETRIED_STATUSES and attempt <= self.retries:
                self._wait(method, path, attempt, f"status {response.status_code}")
                continue
            kind, detail = _decode_error(response)
            raise NeutronError(method, path, response.status_code, kind, detail)

    def _wait(self, method: str, path: str, attempt: int, reason: str) -> None:
        delay = self.backoff * (2 ** (attempt - 1))
        LOG.warning("Neutron %s %s failed (%s); retry %d of %d in %.2f s",
                    method, path, reason, attempt, self.retries, delay)
        time.sleep(delay)

    # -- generic resources ------------------------------------------------------

    def list(self, collection: str, **filters) -> list[dict]:
        return self.request("GET", f"/{collection}", params=filters or None)[_key(collection)]

    def show(self, collection: str, resource_id: str) -> dict | None:
        singular = _key(collection)[:-1]
        try:
            return self.request("GET", f"/{collection}/{resource_id}")[singular]
        except NeutronError as exc:
            if exc.http_status == 404:
                return None
            raise

    def create(self, collection: str, attrs: dict) -> dict:
        singular = _key(collection)[:-1]
        if collection == "ports":
            return self._create_ports([attrs], bulk=False)[0]
        return self.request("POST", f"/{collection}", {singular: attrs})[singular]

    def _create_ports(self, items: list[dict], bulk: bool) -> list[dict]:
        """Create ports, retrying after a 5xx answer once Neutron is known to hold none of them.

        ML2/OVN on Neutron 29 sometimes fails a port create in its postcommit
        step under concurrent load (StandardAttributeIDNotFound) and deletes
        the port again, and a connection lost after the request was sent
        hides whether Neutron created the ports. Each port carries a unique
        description, so a query shows what the failed request created: all
        of the ports are kept, a part of them is deleted before the retry.
        """
        items = [{**item, "description": item.get("description") or
                  f"kuryrnet request {uuid.uuid4().hex}"} for item in items]
        tokens = [item["description"] for item in items]
        for attempt in range(1, self.retries + 2):
            try:
                if bulk:
                    return self.request("POST", "/ports", {"ports": items})["ports"]
                return [self.request("POST", "/ports", {"port": items[0]})["port"]]
            except (NeutronError, errors.BackendUnavailable) as exc:
                if isinstance(exc, NeutronError) and exc.http_status < 500:
                    raise
                created = self.list("ports", description=tokens)
                if len(created) == len(items):
                    LOG.info("Neutron created %d port(s) although POST /ports failed (%s)",
                             len(created), exc)
                    return created
                for port in created:
                    self.delete("ports", port["id"])
                if attempt > self.retries:
                    raise
                reason = (f"status {exc.http_status} {exc.kind}" if isinstance(exc, NeutronError)
                          else "connection lost")
                self._wait("POST", "/ports", attempt, reason)
        raise AssertionError("unreachable")

    def create_tagged(self, collection: str, attrs: dict, tag_list: list[str]) -> dict:
        """Create a resource and set its tags; undo the create when tagging fails.

        Neutron 29 accepts tags in the POST body only for ports, so other
        resources take a second request.
        """
        if collection == "ports":
            return self.create(collection, {**attrs, "tags": tag_list})
        resource = self.create(collection, attrs)
        crash_point(f"{collection}.before_tags")
        try:
            resource["tags"] = self.set_tags(collection, resource["id"], tag_list)
        except errors.KuryrnetError:
            self.delete(collection, resource["id"])
            raise
        return resource

    def set_tags(self, collection: str, resource_id: str, tag_list: list[str]) -> list[str]:
        return self.request("PUT", f"/{collection}/{resource_id}/tags", {"tags": tag_list})["tags"]

    def create_bulk(self, collection: str, items: list[dict]) -> list[dict]:
        if collection == "ports":
            return self._create_ports(items, bulk=True)
        return self.request("POST", f"/{collection}", {_key(collection): items})[_key(collection)]

    def update(self, collection: str, resource_id: str, attrs: dict) -> dict:
        singular = _key(collection)[:-1]
        return self.request("PUT", f"/{collection}/{resource_id}", {singular: attrs})[singular]

    def delete(self, collection: str, resource_id: str) -> bool:
        """Delete a resource; return False when it was already gone."""
        try:
            self.request("DELETE", f"/{collection}/{resource_id}")
        except NeutronError as exc:
            if exc.http_status == 404:
                return False
            raise
        return True

    def add_tag(self, collection: str, resource_id: str, tag: str) -> None:
        self.request("PUT", f"/{collection}/{resource_id}/tags/{urllib.parse.quote(tag, safe='')}",
                     ok_statuses=(200, 201, 204))

    def remove_tag(self, collection: str, resource_id: str, tag: str) -> None:
        try:
            self.request("DELETE",
                         f"/{collection}/{resource_id}/tags/{urllib.parse.quote(tag, safe='')}")
        except NeutronError as exc:
            if exc.http_status == 403:
                # Another project's shared resource, which kuryrnet could not tag either.
                LOG.info("not removing tag %s from %s %s: Neutron forbids it to this project",
                         tag, collection, resource_id)
            elif exc.http_status != 404:
                raise
