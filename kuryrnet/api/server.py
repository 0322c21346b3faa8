"""The daemon's listeners and lifecycle: the unix socket, the optional TCP listener and the spec file.

Docker finds the plugin through the unix socket in /run/docker/plugins/ or,
for a TCP listener, through a spec file in /etc/docker/plugins/. Both are
created at start and removed at stop.
"""

from __future__ import annotations

import asyncio
import grp
import ipaddress
import json
import logging
import os
import signal
import socket
import ssl
import stat
from dataclasses import dataclass

from aiohttp import web

from kuryrnet.api.handlers import PluginApi, build_app

LOG = logging.getLogger(__name__)

PLUGIN_NAME = "kuryr"
SOCKET_MODE = 0o660
# Seconds that calls in progress get to finish when the daemon stops. The
# default timeout of Docker's plugin client for managed plugins is 30 s too.
SHUTDOWN_TIMEOUT = 30.0
DRIVER_STOP_TIMEOUT = 30.0
# Seconds to wait for a connection when checking whether a socket is in use.
PROBE_TIMEOUT = 2.0


class StartupError(Exception):
    """The daemon cannot start with this configuration or on this host."""


@dataclass(frozen=True)
class TcpAddress:
    host: str
    port: int

    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"


def parse_listen_address(text: str) -> TcpAddress:
    """Parse listen_address: "HOST:PORT", with an IPv6 host in brackets such as "[::1]:23750"."""
    expected = ("HOST:PORT such as 127.0.0.1:23750 or [::1]:23750, with a port from 0 to 65535 "
                "(0 picks a free port)")
    host, separator, port_text = text.rpartition(":")
    if not separator or not host or not port_text.isdigit() or not port_text.isascii():
        raise StartupError(f"invalid listen_address {text!r}: expected {expected}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise StartupError(f"invalid listen_address {text!r}: expected {expected}. Put an IPv6 "
                           f"host in brackets.")
    port = int(port_text)
    if port > 65535:
        raise StartupError(f"invalid listen_address {text!r}: expected {expected}")
    return TcpAddress(host=host, port=port)


def resolve(address: TcpAddress) -> list[tuple]:
    """Return getaddrinfo's results for a listen address."""
    try:
        return socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM,
                                  flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"cannot resolve listen_address host {address.host!r}: {exc}") from None


def check_loopback(address: TcpAddress, resolved: list[tuple]) -> None:
    """Reject a non-loopback listen address, because without TLS anyone who reaches it could drive the plugin."""
    for *_, sockaddr in resolved:
        if not ipaddress.ip_address(sockaddr[0].split("%")[0]).is_loopback:
            raise StartupError(
                f"listen_address {address.host}:{address.port} is not a loopback address and "
                f"TLS is off: anyone who reaches it could create and remove networks. Use "
                f"127.0.0.1 or ::1, or set tls_cert_file and tls_key_file")


def build_ssl_context(conf) -> ssl.SSLContext | None:
    """Build the TLS context of the TCP listener, or None when TLS is off.

    With tls_ca_file set, clients must present a certificate that the CA signed.
    """
    cert_file, key_file, ca_file = conf.tls_cert_file, conf.tls_key_file, conf.tls_ca_file
    if not cert_file and not key_file:
        if ca_file:
            raise StartupError("tls_ca_file is set without tls_cert_file and tls_key_file. Set all "
                               "three to require client certificates")
        return None
    if not cert_file or not key_file:
        raise StartupError("TLS needs both tls_cert_file and tls_key_file, but only one is set")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(
            f"cannot load the TLS certificate {cert_file} with key {key_file}: {exc}") from None
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise StartupError(f"cannot load the TLS CA file {ca_file}: {exc}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def resolve_group(name: str) -> int:
    """Return the gid of a group given by name or number."""
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        if name.isdigit():
            return int(name)
        raise StartupError(f"socket_group {name!r} does not exist. Create it or set "
                           f"socket_group to an existing group") from None


def claim_socket_path(path: str) -> None:
    """Remove a stale socket file at `path`, or raise StartupError when a process still serves on it."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise StartupError(f"{path} exists and is not a socket. Remove it or change socket_path")

    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(PROBE_TIMEOUT)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        LOG.info("removing the stale socket %s, which nothing serves on", path)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    except OSError as exc:
        raise StartupError(f"cannot check whether {path} is in use: {exc}") from None
    finally:
        probe.close()
    raise StartupError(f"another kuryrnet is serving on {path}. Stop it first or change "
                       f"socket_path")


def open_unix_socket(path: str, group: str) -> socket.socket:
    """Bind the unix socket with mode 0660 and the configured group, before it listens."""
    gid = resolve_group(group) if group else None
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, mode=0o755, exist_ok=True)
    claim_socket_path(path)

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        # Docker cannot connect before the socket listens, so setting the
        # mode and group here leaves no window with looser permissions.
        os.chmod(path, SOCKET_MODE)
        if gid is not None:
            os.chown(path, -1, gid)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot create the unix socket {path}: {exc}") from None
    return sock


def open_tcp_socket(address: TcpAddress, resolved: list[tuple]) -> socket.socket:
    family, kind, protocol, _, sockaddr = resolved[0]
    sock = socket.socket(family, kind, protocol)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {address.host}:{address.port}: {exc}") from None
    return sock


def spec_address(address: TcpAddress, bound_port: int) -> TcpAddress:
    """Return the address Docker should dial: the bound port, and loopback for a wildcard host."""
    host = address.host
    try:
        if ipaddress.ip_address(host).is_unspecified:
            host = "::1" if ipaddress.ip_address(host).version == 6 else "127.0.0.1"
    except ValueError:
        pass  # a host name
    return TcpAddress(host=host, port=bound_port)


def spec_content(conf, address: TcpAddress) -> str:
    """Return the text of the spec file, which gives Docker the address of the TCP listener.

    A `.spec` file holds only a URL, so it cannot describe TLS. In the
    `.json` form, Docker verifies the server with tls_ca_file and, when
    client certificates are required, presents spec_tls_cert_file (by
    default the server's own certificate).
    """
    path = conf.spec_file
    tls = bool(conf.tls_cert_file)
    if path.endswith(".spec"):
        if tls:
            raise StartupError(f"spec_file {path} is a .spec file, which cannot carry TLS "
                               f"settings. Use a .json spec file with TLS")
        return address.url() + "\n"
    if not path.endswith(".json"):
        raise StartupError(f"spec_file {path} must end in .json or .spec, the forms Docker reads")

    document: dict = {"Name": PLUGIN_NAME, "Addr": address.url()}
    if tls:
        ca_file = conf.tls_ca_file
        document["TLSConfig"] = {
            "InsecureSkipVerify": not ca_file,
            "CAFile": ca_file,
            "CertFile": (conf.spec_tls_cert_file or conf.tls_cert_file) if ca_file else "",
            "KeyFile": (conf.spec_tls_key_file or conf.tls_key_file) if ca_file else "",
        }
    return json.dumps(document, indent=2) + "\n"


def write_file_atomically(path: str, content: str) -> None:
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    temporary = f"{path}.tmp.{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(content)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


class Server:
    """The plugin API served on the configured listeners, with the driver's start and stop."""

    def __init__(self, conf, driver):
        self.conf = conf
        self.driver = driver
        self.api: PluginApi | None = None
        self.runner: web.AppRunner | None = None
        self.unix_path: str | None = None
        self._unix_inode: int | None = None
        self.tcp_address: TcpAddress | None = None
        self.spec_path: str | None = None
        self._driver_started = False

    async def start(self) -> None:
        """Open the listeners, write the spec file, then start the driver's background work."""
        conf = self.conf
        if not conf.socket_path and not conf.listen_address:
            raise StartupError("socket_path and listen_address are both empty. Set at least one")

        tcp_plan = self._plan_tcp() if conf.listen_address else None
        try:
            await self._open_listeners(tcp_plan)
            await self._start_driver()
        except BaseException:
            await self.stop()
            raise

    def _plan_tcp(self) -> tuple[TcpAddress, list[tuple], ssl.SSLContext | None]:
        """Check the TCP settings before anything is opened, so a bad setting changes nothing."""
        address = parse_listen_address(self.conf.listen_address)
        resolved = resolve(address)
        ssl_context = build_ssl_context(self.conf)
        if ssl_context is None:
            check_loopback(address, resolved)
        if self.conf.spec_file:
            spec_content(self.conf, address)
        return address, resolved, ssl_context

    async def _open_listeners(self, tcp_plan) -> None:
        self.api = PluginApi(self.conf, self.driver)
        self.runner = web.AppRunner(build_app(self.api), access_log=None, handle_signals=False,
                                    shutdown_timeout=SHUTDOWN_TIMEOUT)
        await self.runner.setup()

        if self.conf.socket_path:
            sock = open_unix_socket(self.conf.socket_path, self.conf.socket_group)
            self.unix_path = self.conf.socket_path
            self._unix_inode = os.stat(self.unix_path).st_ino
            await web.SockSite(self.runner, sock).start()
            LOG.info("serving on unix socket %s", self.unix_path)

        if tcp_plan is not None:
            address, resolved, ssl_context = tcp_plan
            sock = open_tcp_socket(address, resolved)
            await web.SockSite(self.runner, sock, ssl_context=ssl_context).start()
            self.tcp_address = spec_address(address, sock.getsockname()[1])
            LOG.info("serving on %s%s", self.tcp_address.url(),
                     " with TLS" if ssl_context else " without TLS (loopback only)")
            if self.conf.spec_file:
                write_file_atomically(self.conf.spec_file, spec_content(self.conf, self.tcp_address))
                self.spec_path = self.conf.spec_file
                LOG.info("wrote the plugin spec file %s", self.spec_path)

    async def _start_driver(self) -> None:
        try:
            await self.api.run_in_worker(self.driver.start)
        except Exception as exc:
            LOG.exception("the driver failed to start")
            raise StartupError(f"the driver failed to start: {type(exc).__name__}: {exc}") from exc
        self._driver_started = True

    async def stop(self) -> None:
        """Stop accepting calls, let running calls finish, stop the driver and remove the files.

        Calls still running after SHUTDOWN_TIMEOUT are cancelled, but their
        worker threads cannot be interrupted and finish in the background.
        """
        if self.spec_path:
            remove_file(self.spec_path)
            self.spec_path = None
        if self.runner is not None:
            in_flight = self.api.in_flight if self.api else 0
            if in_flight:
                LOG.info("waiting up to %.0f s for %d calls in progress", SHUTDOWN_TIMEOUT,
                         in_flight)
            await self.runner.cleanup()
            self.runner = None
        if self._driver_started:
            self._driver_started = False
            try:
                await asyncio.wait_for(asyncio.to_thread(self.driver.stop), DRIVER_STOP_TIMEOUT)
            except asyncio.TimeoutError:
                LOG.error("the driver did not stop within %.0f s", DRIVER_STOP_TIMEOUT)
            except Exception:
                LOG.exception("the driver failed to stop")
        if self.api is not None:
            self.api.close()
            self.api = None
        if self.unix_path:
            self._remove_own_socket()
            self.unix_path = None

    def _remove_own_socket(self) -> None:
        # Another daemon may have replaced the file since, and its socket must stay.
        try:
            if os.stat(self.unix_path).st_ino == self._unix_inode:
                os.unlink(self.unix_path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            LOG.error("cannot remove the socket %s: %s", self.unix_path, exc)


def remove_file(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        LOG.error("cannot remove %s: %s", path, exc)


async def serve(conf, driver, stop_event: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM or SIGINT (or until `stop_event` is set), then stop cleanly."""
    stop_event = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()

    def request_stop(signal_number: int) -> None:
        LOG.info("received %s, stopping", signal.Signals(signal_number).name)
        stop_event.set()

    handled = (signal.SIGTERM, signal.SIGINT)
    for signal_number in handled:
        loop.add_signal_handler(signal_number, request_stop, signal_number)
    server = Server(conf, driver)
    try:
        await server.start()
        LOG.info("kuryrnet is ready")
        await stop_event.wait()
        await server.stop()
        LOG.info("kuryrnet stopped")
    finally:
        for signal_number in handled:
            loop.remove_signal_handler(signal_number)


def run(conf, driver) -> None:
    """Run the daemon in a new event loop until SIGTERM or SIGINT."""
    asyncio.run(serve(conf, driver))
