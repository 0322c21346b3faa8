"""The local Open vSwitch database, through one ovsdbapp connection per process.

The connection opens lazily on first use: opening it fetches the schema from
ovsdb-server and downloads the monitored tables, which must not slow down or
break the start of a daemon on a host whose endpoints never use OVS.
ovsdbapp runs every transaction on its own connection thread, so worker
threads may call these helpers concurrently.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from ovsdbapp.backend.ovs_idl import command, connection, event, idlutils
from ovsdbapp.schema.open_vswitch import impl_idl

from kuryrnet.errors import BindingError

LOG = logging.getLogger(__name__)

SCHEMA = "Open_vSwitch"
# Only the tables these helpers read or write are monitored. ovsdbapp reads the
# Open_vSwitch table to wait until ovs-vswitchd applied a change.
MONITORED_TABLES = ("Open_vSwitch", "Bridge", "Port", "Interface")
# Seconds a transaction may wait for the connection thread and ovs-vswitchd.
TRANSACTION_TIMEOUT = 10.0
# ovsdbapp raises command errors to the caller without logging a traceback,
# because each helper raises them again as a BindingError for the caller to log.
_RAISE_QUIETLY = {"check_error": True, "log_errors": False}


@dataclass(frozen=True)
class OvsInterface:
    """One Interface row: its name and external_ids."""

    name: str
    external_ids: dict[str, str]


class _NotifyingIdl(connection.OvsdbIdl):
    """An IDL that passes every row change to an ovsdbapp RowEventHandler."""

    event_handler: event.RowEventHandler | None = None

    def notify(self, event_type, row, updates=None):
        if self.event_handler is not None:
            self.event_handler.notify(event_type, row, updates)


class _InterfaceMarkEvent(event.WaitEvent):
    """A one-time wait for the Interface `ifname` to get external_ids[key] == value."""

    def __init__(self, ifname: str, key: str, value: str, timeout: float):
        super().__init__((self.ROW_CREATE, self.ROW_UPDATE), "Interface",
                         (("name", "=", ifname),), timeout=timeout)
        self.mark_key = key
        self.mark_value = value

    # ovsdbapp compares events by table and conditions, so two waits on one
    # interface would count as one watched event. Compare by identity instead.
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def match_fn(self, event_type, row, old):
        return row.external_ids.get(self.mark_key) == self.mark_value


class _EnsurePortCommand(command.BaseCommand):
    """Put port `port` with one Interface of the same name on `bridge`, with `external_ids`.

    A port that exists keeps its rows, so a replug does not renumber its
    OpenFlow port. Only its bridge and Interface external_ids are corrected.
    """

    def __init__(self, api, bridge: str, port: str, external_ids: dict[str, str]):
        super().__init__(api)
        self.bridge = bridge
        self.port = port
        self.external_ids = external_ids

    def run_idl(self, txn):
        try:
            bridge = idlutils.row_by_value(self.api.idl, "Bridge", "name", self.bridge)
        except idlutils.RowNotFound:
            raise BindingError(f"failed to add port {self.port}: OVS bridge {self.bridge} "
                               f"not found; create it or set [binding] integration_bridge")
        port = idlutils.row_by_value(self.api.idl, "Port", "name", self.port, None)
        if port is None:
            self._insert_port(txn, bridge)
        else:
            self._update_port(bridge, port)

    def _insert_port(self, txn, bridge) -> None:
        interface = txn.insert(self.api.tables["Interface"])
        interface.name = self.port
        interface.external_ids = self.external_ids
        # The vsctl-style transaction of ovsdbapp checks after the commit
        # that ovs-vswitchd gave these interfaces an OpenFlow port number.
        txn.expected_ifaces.add(interface.uuid)

        port = txn.insert(self.api.tables["Port"])
        port.name = self.port
        port.interfaces = [interface]
        bridge.addvalue("ports", port)

    def _update_port(self, bridge, port) -> None:
        for other in self.api.tables["Bridge"].rows.values():
            if other.uuid != bridge.uuid and port in other.ports:
                LOG.info("Moving OVS port %s from bridge %s to %s",
                         self.port, other.name, self.bridge)
                other.delvalue("ports", port)
        if port not in bridge.ports:
            bridge.addvalue("ports", port)
        for interface in port.interfaces:
            if dict(interface.external_ids) != self.external_ids:
                interface.external_ids = self.external_ids


class OvsdbClient:
    """Helpers on one OVSDB server; open it with `client_for`."""

    def __init__(self, remote: str, api: impl_idl.OvsdbIdl, idl: _NotifyingIdl):
        self.remote = remote
        self.api = api
        self._idl = idl

    def ensure_port(self, bridge: str, port: str, external_ids: dict[str, str]) -> None:
        """Add `port` to `bridge` with its Interface external_ids, or correct the existing port.

        The Port and Interface rows and the external_ids are written in one
        transaction, so ovn-controller never reads the interface without its
        iface-id and a failure never leaves a half-created port behind.
        """
        try:
            with self.api.transaction(**_RAISE_QUIETLY) as txn:
                txn.add(_EnsurePortCommand(self.api, bridge, port, external_ids))
        except BindingError:
            raise
        except Exception as exc:
            raise BindingError(f"failed to add port {port} to OVS bridge {bridge}: {exc}") from exc

    def delete_ports(self, ports: list[str]) -> None:
        """Delete the named ports and their Interfaces in one transaction, skipping absent ports."""
        try:
            with self.api.transaction(**_RAISE_QUIETLY) as txn:
                for port in ports:
                    txn.add(self.api.del_port(port, if_exists=True))
        except Exception as exc:
            raise BindingError(f"failed to delete OVS ports {', '.join(ports)}: {exc}") from exc

    def interface_external_ids(self, name: str) -> dict[str, str] | None:
        """Return the external_ids of Interface `name`, or None when there is no such row."""
        try:
            rows = self.api.db_find("Interface", ("name", "=", name),
                                    columns=["external_ids"]).execute(**_RAISE_QUIETLY)
        except Exception as exc:
            raise BindingError(f"failed to read OVS interface {name}: {exc}") from exc
        return dict(rows[0]["external_ids"]) if rows else None

    def port_exists(self, name: str) -> bool:
        """Return whether a Port row called `name` exists."""
        try:
            rows = self.api.db_find("Port", ("name", "=", name),
                                    columns=["name"]).execute(**_RAISE_QUIETLY)
        except Exception as exc:
            raise BindingError(f"failed to read OVS port {name}: {exc}") from exc
        return bool(rows)

    def find_interfaces_with_key(self, key: str) -> list[OvsInterface]:
        """Return the Interfaces whose external_ids contain `key`."""
        try:
            rows = self.api.db_list("Interface", columns=["name", "external_ids"]).execute(
                **_RAISE_QUIETLY)
        except Exception as exc:
            raise BindingError(f"failed to list OVS interfaces: {exc}") from exc
        return [OvsInterface(row["name"], dict(row["external_ids"]))
                for row in rows if key in row["external_ids"]]

    def wait_for_interface_mark(self, name: str, key: str, value: str, timeout: float) -> bool:
        """Wait up to `timeout` seconds for Interface `name` to get external_ids[key] == value.

        Returns whether it did. The watch starts before the current row is
        read, so a change between the read and the wait is not missed.
        """
        waiter = _InterfaceMarkEvent(name, key, value, timeout)
        handler = self._idl.event_handler
        handler.watch_event(waiter)
        try:
            external_ids = self.interface_external_ids(name)
            if external_ids is not None and external_ids.get(key) == value:
                return True
            return waiter.wait()
        finally:
            handler.unwatch_event(waiter)


_clients: dict[str, OvsdbClient] = {}
_clients_lock = threading.Lock()


def client_for(remote: str) -> OvsdbClient:
    """Return the process's client for the OVSDB server at `remote`, connecting on first use.

    A failed connection is not cached, so the next call tries again.
    """
    with _clients_lock:
        client = _clients.get(remote)
        if client is None:
            client = _connect(remote)
            _clients[remote] = client
        return client


def _connect(remote: str) -> OvsdbClient:
    LOG.info("Connecting to OVSDB at %s", remote)
    try:
        helper = idlutils.get_schema_helper(remote, SCHEMA)
        for table in MONITORED_TABLES:
            helper.register_table(table)
        idl = _NotifyingIdl(remote, helper)
        idl.event_handler = event.RowEventHandler()
        ovsdb_connection = connection.Connection(idl=idl, timeout=TRANSACTION_TIMEOUT)
        # ovsdbapp keeps the connection in a class attribute, so one class per
        # server keeps two servers from sharing the first one's connection.
        api_class = type("OvsdbApi", (impl_idl.OvsdbIdl,), {"_ovsdb_connection": None})
        api = api_class(ovsdb_connection)
    except Exception as exc:
        raise BindingError(f"failed to connect to OVSDB at {remote}: {exc}. Check that "
                           f"ovsdb-server runs and that [binding] ovsdb_connection "
                           f"names its socket") from exc
    return OvsdbClient(remote, api, idl)
