"""Tests of the daemon's listeners on a real unix socket and real TCP ports on loopback.

The driver is the fake one; the `kuryrnet serve` tests run the real command
in a subprocess with only build_driver replaced (see test_api_fakes.py).
"""

import asyncio
import datetime
import grp
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import stat
import tempfile
import time
from pathlib import Path

import aiohttp
import pytest

from kuryrnet.api import server
from kuryrnet.api.server import Server, StartupError

from test_api_fakes import SLEEP_OPTION, FakeDriver, ServeProcess, make_conf

NETWORK_ID = "8d5623916b7d1a9711f6c95096ee153bf63ef8376283209104d1b306abfaeec8"


@pytest.fixture
def short_dir():
    """A temporary directory with a short path, because unix socket paths are limited to 107 bytes."""
    path = tempfile.mkdtemp(prefix="kn-", dir="/tmp")
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


async def post_unix(socket_path, name: str, body=None, timeout: float = 10) -> tuple[int, dict]:
    connector = aiohttp.UnixConnector(path=str(socket_path))
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        data = b"" if body is None else json.dumps(body).encode()
        async with session.post(f"http://plugin/{name}", data=data) as response:
            return response.status, await response.json(content_type=None)


async def post_tcp(url: str, name: str, ssl_context=None) -> tuple[int, dict]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.post(f"{url}/{name}", data=b"", ssl=ssl_context) as response:
            return response.status, await response.json(content_type=None)


def http_url(address: server.TcpAddress, scheme: str = "http") -> str:
    return address.url().replace("tcp://", f"{scheme}://")


# --- unix socket ---------------------------------------------------------------------


async def test_unix_socket_serves_with_mode_0660(short_dir):
    socket_path = short_dir / "plugins" / "kuryr.sock"
    driver = FakeDriver()
    served = Server(make_conf(socket_path=str(socket_path)), driver)
    await served.start()
    try:
        mode = os.stat(socket_path).st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o660
        assert driver.started
        assert await post_unix(socket_path, "Plugin.Activate") == \
            (200, {"Implements": ["NetworkDriver", "IpamDriver"]})
    finally:
        await served.stop()
    assert driver.stopped
    assert not socket_path.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's group to another needs root")
async def test_unix_socket_group(short_dir):
    group = grp.getgrnam("daemon") if "daemon" in {g.gr_name for g in grp.getgrall()} else None
    if group is None:
        pytest.skip("no group named daemon on this machine")
    socket_path = short_dir / "kuryr.sock"
    served = Server(make_conf(socket_path=str(socket_path), socket_group="daemon"), FakeDriver())
    await served.start()
    try:
        assert os.stat(socket_path).st_gid == group.gr_gid
    finally:
        await served.stop()


async def test_unknown_socket_group_fails(short_dir):
    socket_path = short_dir / "kuryr.sock"
    served = Server(make_conf(socket_path=str(socket_path),
                              socket_group="no-such-group-kuryrnet"), FakeDriver())
    with pytest.raises(StartupError, match="socket_group 'no-such-group-kuryrnet' does not exist"):
        await served.start()
    assert not socket_path.exists()


async def test_stale_socket_is_replaced(short_dir):
    socket_path = short_dir / "kuryr.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(socket_path))
    stale.close()  # the file stays, nothing listens
    served = Server(make_conf(socket_path=str(socket_path)), FakeDriver())
    await served.start()
    try:
        assert (await post_unix(socket_path, "Plugin.Activate"))[0] == 200
    finally:
        await served.stop()


async def test_socket_in_use_fails(short_dir):
    socket_path = short_dir / "kuryr.sock"
    first = Server(make_conf(socket_path=str(socket_path)), FakeDriver())
    await first.start()
    try:
        second = Server(make_conf(socket_path=str(socket_path)), FakeDriver())
        with pytest.raises(StartupError, match=f"another kuryrnet is serving on {socket_path}"):
            await second.start()
        # The failed start must leave the first daemon's socket alone.
        assert (await post_unix(socket_path, "Plugin.Activate"))[0] == 200
    finally:
        await first.stop()


async def test_regular_file_at_socket_path_fails(short_dir):
    socket_path = short_dir / "kuryr.sock"
    socket_path.write_text("not a socket")
    served = Server(make_conf(socket_path=str(socket_path)), FakeDriver())
    with pytest.raises(StartupError, match="exists and is not a socket"):
        await served.start()
    assert socket_path.read_text() == "not a socket"


async def test_nothing_to_serve_on_fails():
    served = Server(make_conf(socket_path="", listen_address=""), FakeDriver())
    with pytest.raises(StartupError, match="socket_path and listen_address are both empty"):
        await served.start()


async def test_driver_start_failure_removes_socket(short_dir):
    socket_path = short_dir / "kuryr.sock"
    driver = FakeDriver()

    def fail():
        raise RuntimeError("no Neutron")

    driver.start = fail
    served = Server(make_conf(socket_path=str(socket_path)), driver)
    with pytest.raises(StartupError, match="the driver failed to start: RuntimeError: no Neutron"):
        await served.start()
    assert not socket_path.exists()


async def test_stop_lets_calls_in_progress_finish(short_dir):
    socket_path = short_dir / "kuryr.sock"
    served = Server(make_conf(socket_path=str(socket_path)), FakeDriver())
    await served.start()
    body = {"NetworkID": NETWORK_ID, "IPv4Data": [], "IPv6Data": [],
            "Options": {"com.docker.network.generic": {SLEEP_OPTION: "1"}}}
    call = asyncio.create_task(post_unix(socket_path, "NetworkDriver.CreateNetwork", body))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await served.stop()
    assert await call == (200, {})
    assert time.monotonic() - started >= 0.5
    assert not socket_path.exists()


# --- TCP listener --------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:23750", server.TcpAddress("127.0.0.1", 23750)),
    ("[::1]:0", server.TcpAddress("::1", 0)),
    ("localhost:80", server.TcpAddress("localhost", 80)),
])
def test_parse_listen_address(text, expected):
    assert server.parse_listen_address(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1", ":80", "127.0.0.1:http", "::1:80",
                                  "127.0.0.1:65536", "127.0.0.1:-1"])
def test_parse_listen_address_rejects(text):
    with pytest.raises(StartupError, match=f"invalid listen_address {text!r}"):
        server.parse_listen_address(text)


@pytest.mark.parametrize("address", ["0.0.0.0:0", "192.0.2.10:23750", "[::]:0"])
async def test_non_loopback_without_tls_fails(short_dir, address):
    socket_path = short_dir / "kuryr.sock"
    spec_path = short_dir / "kuryr.json"
    served = Server(make_conf(socket_path=str(socket_path), listen_address=address,
                              spec_file=str(spec_path)), FakeDriver())
    with pytest.raises(StartupError, match="is not a loopback address and TLS is off"):
        await served.start()
    assert not socket_path.exists()
    assert not spec_path.exists()


async def test_tcp_loopback_writes_json_spec(short_dir):
    spec_path = short_dir / "docker-plugins" / "kuryr.json"
    served = Server(make_conf(socket_path="", listen_address="127.0.0.1:0",
                              spec_file=str(spec_path)), FakeDriver())
    await served.start()
    try:
        port = served.tcp_address.port
        assert port > 0
        assert json.loads(spec_path.read_text()) == {"Name": "kuryr",
                                                     "Addr": f"tcp://127.0.0.1:{port}"}
        assert stat.S_IMODE(os.stat(spec_path).st_mode) == 0o644
        assert (await post_tcp(http_url(served.tcp_address), "Plugin.Activate"))[0] == 200
    finally:
        await served.stop()
    assert not spec_path.exists()


async def test_tcp_ipv6_loopback_writes_url_spec(short_dir):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    spec_path = short_dir / "kuryr.spec"
    served = Server(make_conf(socket_path="", listen_address="[::1]:0",
                              spec_file=str(spec_path)), FakeDriver())
    try:
        await served.start()
    except StartupError as exc:
        if "Cannot assign requested address" in str(exc):
            pytest.skip("::1 is not configured on this machine")
        raise
    try:
        assert spec_path.read_text() == f"tcp://[::1]:{served.tcp_address.port}\n"
        assert (await post_tcp(http_url(served.tcp_address), "Plugin.Activate"))[0] == 200
    finally:
        await served.stop()
    assert not spec_path.exists()


async def test_spec_file_with_unknown_extension_fails(short_dir):
    served = Server(make_conf(socket_path="", listen_address="127.0.0.1:0",
                              spec_file=str(short_dir / "kuryr.txt")), FakeDriver())
    with pytest.raises(StartupError, match="must end in .json or .spec"):
        await served.start()


# --- TLS ----------------------------------------------------------------------------------


def write_pem(path: Path, *items) -> str:
    from cryptography.hazmat.primitives import serialization

    chunks = []
    for item in items:
        if hasattr(item, "private_bytes"):
            chunks.append(item.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
        else:
            chunks.append(item.public_bytes(serialization.Encoding.PEM))
    path.write_bytes(b"".join(chunks))
    return str(path)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.timezone.utc)

    def certificate(common_name, key, issuer_name, issuer_key, ca=False, san=None, usage=None):
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                   .issuer_name(issuer_name)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        if usage:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                              content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=False,
                              encipher_only=False, decipher_only=False), critical=True)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kuryrnet test CA")])
    ca_cert = certificate("kuryrnet test CA", ca_key, ca_name, ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = certificate("127.0.0.1", server_key, ca_name, ca_key,
                              san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
                              usage=[ExtendedKeyUsageOID.SERVER_AUTH,
                                     ExtendedKeyUsageOID.CLIENT_AUTH])
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = certificate("docker", client_key, ca_name, ca_key,
                              usage=[ExtendedKeyUsageOID.CLIENT_AUTH])
    return {
        "ca": write_pem(directory / "ca.pem", ca_cert),
        "cert": write_pem(directory / "server.pem", server_cert),
        "key": write_pem(directory / "server-key.pem", server_key),
        "client_cert": write_pem(directory / "client.pem", client_cert),
        "client_key": write_pem(directory / "client-key.pem", client_key),
    }


async def test_tls_on_any_address(short_dir, certificates):
    spec_path = short_dir / "kuryr.json"
    conf = make_conf(socket_path="", listen_address="0.0.0.0:0", spec_file=str(spec_path),
                     tls_cert_file=certificates["cert"], tls_key_file=certificates["key"])
    served = Server(conf, FakeDriver())
    await served.start()
    try:
        # Docker runs on this host, so the spec file names loopback for a wildcard address.
        assert served.tcp_address.host == "127.0.0.1"
        assert json.loads(spec_path.read_text()) == {
            "Name": "kuryr", "Addr": f"tcp://127.0.0.1:{served.tcp_address.port}",
            "TLSConfig": {"InsecureSkipVerify": True, "CAFile": "", "CertFile": "",
                          "KeyFile": ""}}
        client = ssl.create_default_context(cafile=certificates["ca"])
        assert await post_tcp(http_url(served.tcp_address, "https"), "Plugin.Activate",
                              client) == (200, {"Implements": ["NetworkDriver", "IpamDriver"]})
        with pytest.raises(aiohttp.ClientError):
            await post_tcp(http_url(served.tcp_address), "Plugin.Activate")
    finally:
        await served.stop()
    assert not spec_path.exists()


async def test_tls_with_ca_requires_client_certificate(short_dir, certificates):
    spec_path = short_dir / "kuryr.json"
    conf = make_conf(socket_path="", listen_address="127.0.0.1:0", spec_file=str(spec_path),
                     tls_cert_file=certificates["cert"], tls_key_file=certificates["key"],
                     tls_ca_file=certificates["ca"])
    served = Server(conf, FakeDriver())
    await served.start()
    try:
        assert json.loads(spec_path.read_text())["TLSConfig"] == {
            "InsecureSkipVerify": False, "CAFile": certificates["ca"],
            "CertFile": certificates["cert"], "KeyFile": certificates["key"]}
        url = http_url(served.tcp_address, "https")

        anonymous = ssl.create_default_context(cafile=certificates["ca"])
        with pytest.raises(aiohttp.ClientError):
            await post_tcp(url, "Plugin.Activate", anonymous)

        with_certificate = ssl.create_default_context(cafile=certificates["ca"])
        with_certificate.load_cert_chain(certificates["client_cert"], certificates["client_key"])
        assert (await post_tcp(url, "Plugin.Activate", with_certificate))[0] == 200

        # The certificate that the spec file gives Docker works too.
        as_docker = ssl.create_default_context(cafile=certificates["ca"])
        as_docker.load_cert_chain(certificates["cert"], certificates["key"])
        assert (await post_tcp(url, "Plugin.Activate", as_docker))[0] == 200
    finally:
        await served.stop()


async def test_tls_with_url_spec_fails(short_dir, certificates):
    conf = make_conf(socket_path="", listen_address="127.0.0.1:0",
                     spec_file=str(short_dir / "kuryr.spec"),
                     tls_cert_file=certificates["cert"], tls_key_file=certificates["key"])
    with pytest.raises(StartupError, match="cannot carry TLS settings"):
        await Server(conf, FakeDriver()).start()


@pytest.mark.parametrize("settings, message", [
    ({"tls_cert_file": "/nonexistent/cert.pem"}, "needs both tls_cert_file and tls_key_file"),
    ({"tls_ca_file": "/nonexistent/ca.pem"}, "tls_ca_file is set without tls_cert_file"),
    ({"tls_cert_file": "/nonexistent/c.pem", "tls_key_file": "/nonexistent/k.pem"},
     "cannot load the TLS certificate /nonexistent/c.pem"),
])
async def test_tls_settings_are_checked(short_dir, settings, message):
    conf = make_conf(socket_path=str(short_dir / "kuryr.sock"), listen_address="127.0.0.1:0",
                     spec_file=str(short_dir / "kuryr.json"), **settings)
    with pytest.raises(StartupError, match=message):
        await Server(conf, FakeDriver()).start()
    assert not (short_dir / "kuryr.sock").exists()


# --- kuryrnet serve in a subprocess ------------------------------------------------------------


@pytest.fixture
def serve_process(short_dir):
    started = []

    def start(**kwargs) -> ServeProcess:
        process = ServeProcess(short_dir, f"serve{len(started)}", **kwargs)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
async def test_serve_stops_cleanly_on_signal(serve_process, signal_number):
    daemon = serve_process()
    daemon.wait_ready()
    assert stat.S_IMODE(os.stat(daemon.socket_path).st_mode) == 0o660
    assert json.loads(daemon.spec_path.read_text())["Addr"].startswith("tcp://127.0.0.1:")
    assert (await post_unix(daemon.socket_path, "Plugin.Activate"))[0] == 200

    daemon.process.send_signal(signal_number)
    assert daemon.process.wait(30) == 0
    output = daemon.output()
    assert f"received {signal.Signals(signal_number).name}, stopping" in output
    assert "fake driver stopped" in output
    assert "kuryrnet stopped" in output
    assert "Traceback" not in output
    assert not daemon.socket_path.exists()
    assert not daemon.spec_path.exists()


async def test_serve_finishes_call_in_progress_on_sigterm(serve_process):
    daemon = serve_process()
    daemon.wait_ready()
    body = {"NetworkID": NETWORK_ID, "IPv4Data": [], "IPv6Data": [],
            "Options": {"com.docker.network.generic": {SLEEP_OPTION: "1.5"}}}
    call = asyncio.create_task(post_unix(daemon.socket_path, "NetworkDriver.CreateNetwork", body))
    await asyncio.sleep(0.5)
    daemon.process.send_signal(signal.SIGTERM)
    assert await call == (200, {})
    assert await asyncio.to_thread(daemon.process.wait, 30) == 0
    assert "NetworkDriver.CreateNetwork network=" in daemon.output()


async def test_serve_refuses_second_daemon_on_same_socket(serve_process):
    first = serve_process()
    first.wait_ready()
    second = serve_process()
    assert second.process.wait(30) == 1
    assert f"another kuryrnet is serving on {first.socket_path}" in second.output()
    assert (await post_unix(first.socket_path, "Plugin.Activate"))[0] == 200
    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(30) == 0


async def test_serve_refuses_public_address_without_tls(serve_process):
    daemon = serve_process(listen_address="0.0.0.0:23750")
    assert daemon.process.wait(30) == 1
    assert "is not a loopback address and TLS is off" in daemon.output()
    assert not daemon.socket_path.exists()
