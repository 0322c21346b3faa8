"""Security of a real `kuryrnet serve`: the unix socket's owner and mode, the
TCP listener's loopback rule, TLS verification towards Neutron, and
credentials kept out of logs and error messages."""

import datetime
import grp
import ipaddress
import json
import os
import secrets
import signal
import socket
import ssl
import stat
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.reliability.support import LOG_DIR, SOCKET, write_config
from tests.stack import unique
from tests.tools.fake_keystone import FakeKeystone
from tests.tools.fault_proxy import FaultProxy


def serve(env, config_path) -> subprocess.Popen:
    return subprocess.Popen([env["KURYRNET"], "serve", "--config-file", env["KURYR_CONFIG"],
                             "--config-file", str(config_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop(process: subprocess.Popen) -> str:
    """Stop a daemon started by `serve` with SIGTERM and return its output."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate(timeout=10)
    return output


# -- the unix socket ------------------------------------------------------------------


def existing_group() -> grp.struct_group:
    for name in ("docker", "daemon", "adm", "nogroup"):
        try:
            return grp.getgrnam(name)
        except KeyError:
            continue
    pytest.skip("no group to give the socket to")


@pytest.mark.parametrize("with_group", [False, True], ids=["default-group", "socket_group"])
def test_socket_is_owned_by_root_with_mode_0660(plugin, plugin_config, with_group):
    group = existing_group() if with_group else None
    if group is not None:
        write_config(plugin_config, {"DEFAULT": {"socket_group": group.gr_name}})

    plugin.start()

    info = os.stat(SOCKET)
    assert stat.S_ISSOCK(info.st_mode)
    assert info.st_uid == 0
    assert stat.S_IMODE(info.st_mode) == 0o660
    assert info.st_gid == (group.gr_gid if group is not None else 0)


# -- the TCP listener -------------------------------------------------------------------


def test_tcp_listener_on_non_loopback_without_tls_is_refused(stack_env, tmp_path):
    spec = tmp_path / "kuryrrel.json"
    config = write_config(tmp_path / "tcp.conf", {"DEFAULT": {
        "socket_path": "", "listen_address": "0.0.0.0:0", "spec_file": spec}})

    process = serve(stack_env, config)
    try:
        code = process.wait(30)
    finally:
        output = stop(process)

    assert code == 1
    assert "listen_address 0.0.0.0:0 is not a loopback address and TLS is off" in output
    assert not spec.exists()


def test_tcp_listener_on_loopback_serves(stack_env, tmp_path):
    spec = tmp_path / "kuryrrel.json"
    config = write_config(tmp_path / "tcp.conf", {"DEFAULT": {
        "socket_path": "", "listen_address": "127.0.0.1:0", "spec_file": spec}})

    process = serve(stack_env, config)
    try:
        deadline = time.monotonic() + 30
        while not spec.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        assert spec.exists(), "the daemon wrote no spec file"
        address = json.loads(spec.read_text())["Addr"]
        assert address.startswith("tcp://127.0.0.1:")
        host, port = address.removeprefix("tcp://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(b"POST /Plugin.Activate HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}")
            reply = connection.makefile("rb").read()
        assert reply.split(b"\r\n", 1)[0].split()[1] == b"200", reply[:200]
        assert b"NetworkDriver" in reply
    finally:
        output = stop(process)
    assert "without TLS (loopback only)" in output
    assert not spec.exists(), "the spec file outlived the daemon"


# -- TLS towards Neutron ------------------------------------------------------------------


def self_signed_certificate(directory) -> tuple[str, str]:
    """Write a certificate for 127.0.0.1 and its key; return their paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kuryrnet test Neutron")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder()
                   .subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName(
                       [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "neutron.pem", directory / "neutron.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture
def https_neutron(stack_env, tmp_path):
    """The stack's Neutron behind an HTTPS proxy with a self-signed certificate."""
    cert, key = self_signed_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with FaultProxy(stack_env["NEUTRON_URL"], ssl_context=context) as proxy:
        yield proxy, cert


def run_gc(env, config_path) -> subprocess.CompletedProcess:
    return subprocess.run([env["KURYRNET"], "gc", "--config-file", env["KURYR_CONFIG"],
                           "--config-file", str(config_path)],
                          capture_output=True, text=True, timeout=120)


def test_untrusted_neutron_certificate_is_rejected(stack_env, tmp_path, https_neutron, plugin,
                                                   plugin_config, docker):
    proxy, cert = https_neutron
    write_config(plugin_config, {"neutron": {"endpoint_override": proxy.url, "retries": 0}})

    result = run_gc(stack_env, plugin_config)
    assert result.returncode == 1
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr or "certificate verify failed" in result.stderr
    assert proxy.outcomes() == []  # nothing reached Neutron

    plugin.start()
    created = docker.network_create(unique("rel"), "--subnet", "10.159.0.0/24", check=False)
    docker.networks.pop()  # not created
    assert created.returncode != 0
    assert "certificate verify failed" in created.stderr.lower(), created.stderr
    assert proxy.outcomes() == []

    # Its background jobs keep retrying; the fixtures' cleanup needs a daemon that reaches Neutron.
    plugin.stop()
    write_config(plugin_config)


def test_neutron_certificate_trusted_through_cafile(stack_env, tmp_path, https_neutron, plugin,
                                                    plugin_config, docker):
    proxy, cert = https_neutron
    write_config(plugin_config, {"neutron": {"endpoint_override": proxy.url, "cafile": cert}})

    result = run_gc(stack_env, plugin_config)
    assert result.returncode == 0, result.stderr

    plugin.start()
    network = unique("rel")
    docker.network_create(network, "--subnet", "10.159.1.0/24")
    docker.run("run", "--rm", "--network", network, docker.image, "true")
    assert any(outcome.startswith("forwarded 201") for outcome in proxy.outcomes("POST"))


# -- credentials ----------------------------------------------------------------------------


def test_password_and_token_stay_out_of_logs(stack_env, plugin, plugin_config, docker, tmp_path):
    username = "kuryrnet-log-test"
    password = "pw-" + secrets.token_hex(16)
    with FakeKeystone(username, password) as keystone:
        auth = {"auth_type": "password", "auth_url": keystone.url, "username": username,
                "password": password, "project_name": "kuryrnet-test",
                "user_domain_name": "Default", "project_domain_name": "Default"}
        write_config(plugin_config, {"neutron": auth})

        # A whole lifecycle, with exposed ports and the status and gc commands.
        plugin.start()
        network = unique("rel")
        docker.network_create(network, "--subnet", "10.159.2.0/24")
        container = unique("c")
        docker.container(container, "--network", network, "--expose", "8080")
        docker.run("rm", "-f", container)
        docker.run("network", "rm", network)
        docker.networks.remove(network)
        plugin.wait_idle()
        outputs = [run_gc(stack_env, plugin_config)]
        assert outputs[0].returncode == 0, outputs[0].stderr
        assert keystone.tokens, "kuryrnet never logged in"

        # A wrong password: the error reaches Docker and the log without the password.
        wrong = "pw-" + secrets.token_hex(16)
        write_config(plugin_config, {"neutron": {**auth, "password": wrong}})
        plugin.start()
        failed = docker.network_create(unique("rel"), "--subnet", "10.159.3.0/24", check=False)
        docker.networks.pop()  # not created
        assert failed.returncode != 0
        assert keystone.rejected >= 1
        outputs.append(run_gc(stack_env, plugin_config))
        assert outputs[1].returncode == 1
        plugin.stop()

    # The fixtures' cleanup starts a daemon again: give it Neutron without Keystone.
    write_config(plugin_config)
    texts = {"daemon log": plugin.log_text(), "Docker's error": failed.stderr,
             **{f"gc output {i}": o.stdout + o.stderr for i, o in enumerate(outputs)}}
    (LOG_DIR / "credentials-scan.txt").write_text(
        f"scanned {sum(len(t) for t in texts.values())} characters of {', '.join(texts)} "
        f"for 2 passwords and {len(keystone.tokens)} tokens\n")
    for label, text in texts.items():
        assert password not in text, label
        assert wrong not in text, label
        for token in keystone.tokens:
            assert token not in text, label
