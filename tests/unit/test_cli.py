"""Tests of the `kuryrnet` command: argument parsing, configuration, serve, status and gc."""

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import pytest

from kuryrnet import cli, config
from kuryrnet.errors import BackendUnavailable

from test_api_fakes import FakeDriver, ServeProcess


@pytest.fixture
def short_dir():
    """A temporary directory with a short path, because unix socket paths are limited to 107 bytes."""
    path = tempfile.mkdtemp(prefix="kn-", dir="/tmp")
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def no_default_config(monkeypatch, tmp_path):
    """Keep a real /etc/kuryr/kuryr.conf of this machine out of the tests."""
    monkeypatch.setattr(config, "DEFAULT_CONFIG_FILE", str(tmp_path / "absent.conf"))


def write_config(directory: Path, text: str) -> str:
    path = directory / "kuryr.conf"
    path.write_text(text)
    return str(path)


# --- arguments and configuration ------------------------------------------------------------


def test_parser_serve_options():
    args = cli.build_parser().parse_args(
        ["serve", "--config-file", "a.conf", "--config-file", "b.conf", "--debug"])
    assert args.command == "serve"
    assert args.config_file == ["a.conf", "b.conf"]
    assert args.debug is True


def test_parser_gc_remove():
    args = cli.build_parser().parse_args(["gc", "--remove"])
    assert args.command == "gc"
    assert args.remove is True
    assert cli.build_parser().parse_args(["gc"]).remove is False


def test_parser_requires_command(capsys):
    with pytest.raises(SystemExit) as info:
        cli.build_parser().parse_args([])
    assert info.value.code == 2


def test_help_runs_as_module():
    result = subprocess.run([sys.executable, "-m", "kuryrnet.cli", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for command in ("serve", "status", "gc"):
        assert command in result.stdout


def test_load_config_reads_given_files(tmp_path, no_default_config):
    first = write_config(tmp_path, "[DEFAULT]\nworker_threads = 3\n")
    second = tmp_path / "override.conf"
    second.write_text("[DEFAULT]\ncapability_scope = global\n")
    args = cli.build_parser().parse_args(
        ["status", "--config-file", first, "--config-file", str(second)])
    conf = cli.load_config(args)
    assert conf.worker_threads == 3
    assert conf.capability_scope == "global"


def test_load_config_uses_default_file_when_present(tmp_path, monkeypatch):
    default = write_config(tmp_path, "[DEFAULT]\nsocket_path = /tmp/from-default.sock\n")
    monkeypatch.setattr(config, "DEFAULT_CONFIG_FILE", default)
    conf = cli.load_config(cli.build_parser().parse_args(["status"]))
    assert conf.socket_path == "/tmp/from-default.sock"


def test_load_config_without_default_file(no_default_config):
    conf = cli.load_config(cli.build_parser().parse_args(["status"]))
    assert conf.socket_path == "/run/docker/plugins/kuryr.sock"


def test_missing_config_file_exits_2(tmp_path, capsys, no_default_config):
    assert cli.main(["status", "--config-file", str(tmp_path / "nope.conf")]) == 2
    assert "kuryrnet: invalid configuration:" in capsys.readouterr().err


def test_invalid_option_value_exits_2(tmp_path, capsys, no_default_config):
    path = write_config(tmp_path, "[DEFAULT]\ncapability_scope = planet\n")
    assert cli.main(["status", "--config-file", path]) == 2
    assert "capability_scope" in capsys.readouterr().err


# --- serve ----------------------------------------------------------------------------------


def test_serve_builds_driver_from_config(short_dir, monkeypatch, no_default_config):
    built = []

    def build_driver(conf):
        built.append(conf)
        return FakeDriver()

    from kuryrnet.operations import driver as driver_module
    monkeypatch.setattr(driver_module, "build_driver", build_driver)
    # A public address without TLS stops the daemon before it serves.
    path = write_config(short_dir, f"[DEFAULT]\nsocket_path = {short_dir}/k.sock\n"
                                   f"listen_address = 0.0.0.0:0\n")
    assert cli.main(["serve", "--config-file", path]) == 1
    assert len(built) == 1
    assert built[0].socket_path == f"{short_dir}/k.sock"


def test_serve_reports_driver_build_error(short_dir, monkeypatch, capsys, no_default_config):
    def build_driver(conf):
        raise BackendUnavailable("Neutron at http://127.0.0.1:9696 is unreachable")

    from kuryrnet.operations import driver as driver_module
    monkeypatch.setattr(driver_module, "build_driver", build_driver)
    path = write_config(short_dir, f"[DEFAULT]\nsocket_path = {short_dir}/k.sock\n")
    assert cli.main(["serve", "--config-file", path]) == 1
    assert "ERROR kuryrnet: cannot build the driver: Neutron at http://127.0.0.1:9696 is " \
        "unreachable" in capsys.readouterr().err


def test_serve_logs_with_timestamps_and_no_secrets(short_dir):
    secret = "s3cret-Password-Value"
    daemon = ServeProcess(short_dir, "serve", extra_config=(
        "[neutron]\nauth_type = password\nauth_url = http://127.0.0.1:5000/v3\n"
        f"username = kuryr\npassword = {secret}\n"))
    try:
        daemon.wait_ready()
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.process.wait(30) == 0
    finally:
        daemon.stop()
    output = daemon.output()
    assert secret not in output
    first_line = output.splitlines()[0]
    # "2026-01-31 12:00:00,123 <pid> INFO kuryrnet: starting kuryrnet: ..."
    assert first_line[4] == "-"
    assert first_line[13] == ":"
    assert " INFO kuryrnet: starting kuryrnet" in first_line


# --- status -------------------------------------------------------------------------------


def test_status_prints_daemon_state(short_dir, capsys, no_default_config):
    daemon = ServeProcess(short_dir, "serve")
    try:
        daemon.wait_ready()
        path = write_config(short_dir, f"[DEFAULT]\nsocket_path = {daemon.socket_path}\n")
        assert cli.main(["status", "--config-file", path]) == 0
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.process.wait(30) == 0
    finally:
        daemon.stop()
    out = capsys.readouterr().out
    assert json.loads(out) == {"calls": 0, "driver": "fake"}
    assert out.startswith("{\n  ")


def test_status_without_daemon(short_dir, capsys, no_default_config):
    path = write_config(short_dir, f"[DEFAULT]\nsocket_path = {short_dir}/none.sock\n")
    assert cli.main(["status", "--config-file", path]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach the daemon on {short_dir}/none.sock" in err
    assert "Is `kuryrnet serve` running?" in err


def test_status_without_socket_path(short_dir, capsys, no_default_config):
    path = write_config(short_dir, "[DEFAULT]\nsocket_path =\nlisten_address = 127.0.0.1:0\n")
    assert cli.main(["status", "--config-file", path]) == 1
    assert "socket_path is empty" in capsys.readouterr().err


# --- gc -------------------------------------------------------------------------------------


@pytest.fixture
def fake_reconcile(monkeypatch):
    """Replace kuryrnet.operations.reconcile with a module whose run_gc records its calls."""
    import kuryrnet.operations

    module = types.ModuleType("kuryrnet.operations.reconcile")
    module.calls = []
    module.result = []

    def run_gc(conf, remove):
        module.calls.append((conf, remove))
        if isinstance(module.result, Exception):
            raise module.result
        return module.result

    module.run_gc = run_gc
    monkeypatch.setitem(sys.modules, "kuryrnet.operations.reconcile", module)
    monkeypatch.setattr(kuryrnet.operations, "reconcile", module, raising=False)
    return module


def test_gc_lists_leftovers(tmp_path, capsys, fake_reconcile, no_default_config):
    fake_reconcile.result = ["port 5f0c... (10.99.0.7) has no Docker endpoint",
                             "interface tap5f0c1d2e3f has no port"]
    path = write_config(tmp_path, "[DEFAULT]\n")
    assert cli.main(["gc", "--config-file", path]) == 0
    assert capsys.readouterr().out.splitlines() == fake_reconcile.result
    [(conf, remove)] = fake_reconcile.calls
    assert remove is False
    assert conf.socket_path == "/run/docker/plugins/kuryr.sock"


def test_gc_remove(tmp_path, capsys, fake_reconcile, no_default_config):
    path = write_config(tmp_path, "[DEFAULT]\n")
    assert cli.main(["gc", "--remove", "--config-file", path]) == 0
    assert fake_reconcile.calls[0][1] is True
    assert capsys.readouterr().out == "no leftovers found\n"


def test_gc_error(tmp_path, capsys, fake_reconcile, no_default_config):
    fake_reconcile.result = BackendUnavailable("Neutron is unreachable")
    path = write_config(tmp_path, "[DEFAULT]\n")
    assert cli.main(["gc", "--config-file", path]) == 1
    assert capsys.readouterr().err == "kuryrnet gc: Neutron is unreachable\n"
