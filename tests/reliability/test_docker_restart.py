"""dockerd killed with SIGKILL while containers run, then started again.

Containers with a restart policy must come back connected, with the
address they asked for with `--ip`, and no port of their earlier endpoint
may hold that address. The stack started dockerd, so the test ends it by
the PID in the stack's pid file and brings it back with `stack/stack up`,
as an operator would.
"""

import json
import os
import pathlib
import signal
import subprocess

from kuryrnet.neutron import tags
from tests.reliability.support import live_endpoints, neutron_network_of
from tests.stack import STACK_DIR, unique, wait_for

REPO = pathlib.Path(__file__).resolve().parents[2]
DOCKER_PIDFILE = STACK_DIR / "run" / "docker.pid"


def kill_dockerd() -> int:
    pid = int(DOCKER_PIDFILE.read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pathlib.Path(f"/proc/{pid}").exists(), timeout=30,
             what=f"dockerd {pid} to exit after SIGKILL")
    return pid


def start_dockerd() -> None:
    result = subprocess.run([str(REPO / "stack" / "stack"), "up"], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"stack/stack up failed: {result.stdout[-2000:]} {result.stderr[-2000:]}"


def container_state(docker, name: str) -> tuple[bool, str, str]:
    result = docker.run("inspect", name, check=False)
    if result.returncode != 0:
        return False, "", ""
    info = json.loads(result.stdout)[0]
    networks = info["NetworkSettings"]["Networks"] or {}
    settings = next(iter(networks.values()), {}) if networks else {}
    return info["State"]["Running"], settings.get("IPAddress", ""), settings.get("EndpointID", "")


def test_restart_policy_keeps_address(plugin, docker, neutron):
    plugin.start()
    network = unique("rel")
    docker.network_create(network, "--subnet", "10.154.0.0/24")
    fixed, dynamic = unique("c"), unique("c")
    docker.container(fixed, "--network", network, "--ip", "10.154.0.50", "--restart", "always")
    docker.container(dynamic, "--network", network, "--restart", "unless-stopped")
    plugin.wait_idle()
    old_endpoints = {name: container_state(docker, name)[2] for name in (fixed, dynamic)}

    kill_dockerd()
    try:
        start_dockerd()
    finally:
        # Later tests need dockerd whatever happened here.
        if docker.run("version", check=False).returncode != 0:
            start_dockerd()

    for name in (fixed, dynamic):
        wait_for(lambda name=name: container_state(docker, name)[0] and container_state(docker, name)[2],
                 timeout=120, what=f"container {name} to run again after dockerd restarted")
    running, address, endpoint = container_state(docker, fixed)
    assert address == "10.154.0.50"
    assert "10.154.0.50/" in docker.exec(fixed, "ip", "-o", "addr", "show", "eth0").stdout
    for name in (fixed, dynamic):
        address = container_state(docker, name)[1]
        docker.exec(fixed if name != fixed else dynamic, "ping", "-c", "1", "-W", "5", address)
    plugin.wait_idle()

    # Every kuryrnet port on the network belongs to a live endpoint or the pool;
    # none is left of the endpoints from before the kill.
    neutron_network = neutron_network_of(neutron, docker, network)

    def stray():
        live = live_endpoints(docker)
        return [f"{port['id']} {port['name']} device {port['device_id'] or '-'} "
                f"{[ip['ip_address'] for ip in port['fixed_ips']]}"
                for port in neutron.list("ports", network_id=neutron_network["id"], tags=tags.OWNED)
                if port["device_id"] and port["device_id"] not in live]
    wait_for(lambda: not stray(), timeout=60, what="the ports of the endpoints from before the kill to go")
    holders = [port for port in neutron.list("ports", network_id=neutron_network["id"])
               if any(ip["ip_address"] == "10.154.0.50" for ip in port["fixed_ips"])]
    assert [port["device_id"] for port in holders] == [container_state(docker, fixed)[2]], \
        (old_endpoints, holders)
