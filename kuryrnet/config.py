"""Configuration options, read with oslo.config from /etc/kuryr/kuryr.conf.

`make sample-config` generates etc/kuryr.conf.sample from these definitions.
"""

from __future__ import annotations

import socket

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

DEFAULT_CONFIG_FILE = "/etc/kuryr/kuryr.conf"

default_opts = [
    cfg.StrOpt("socket_path", default="/run/docker/plugins/kuryr.sock",
               help="Unix socket that Docker finds the plugin on. Empty to serve on TCP only."),
    cfg.StrOpt("socket_group", default="",
               help="Group that owns the unix socket (mode 0660). Empty keeps root's group."),
    cfg.StrOpt("listen_address", default="",
               help="Optional TCP address HOST:PORT to serve on as well. Without TLS it must be "
                    "a loopback address."),
    cfg.StrOpt("spec_file", default="/etc/docker/plugins/kuryr.json",
               help="Plugin spec file written for the TCP listener, so Docker finds it."),
    cfg.StrOpt("tls_cert_file", default="", help="Server certificate for the TCP listener."),
    cfg.StrOpt("tls_key_file", default="", help="Private key for the TCP listener."),
    cfg.StrOpt("tls_ca_file", default="",
               help="CA bundle; when set, TCP clients must present a certificate it signed."),
    cfg.StrOpt("spec_tls_cert_file", default="",
               help="Client certificate that Docker presents to the TCP listener, written to the "
                    ".json spec file. Empty uses tls_cert_file."),
    cfg.StrOpt("spec_tls_key_file", default="",
               help="Private key of spec_tls_cert_file. Empty uses tls_key_file."),
    cfg.StrOpt("capability_scope", default="local", choices=["local", "global"],
               help="Scope reported to Docker: local for one host, global for swarm."),
    cfg.StrOpt("host_id", default=socket.gethostname(), sample_default="<hostname>",
               help="binding:host_id of the ports bound on this host; must equal the Neutron "
                    "agent's or OVN chassis's host name."),
    cfg.StrOpt("docker_url", default="unix:///var/run/docker.sock",
               help="Docker engine API, used by reconciliation to list live endpoints."),
    cfg.BoolOpt("reconcile_at_start", default=True,
                help="Release leftovers of this host in the background when the daemon starts."),
    cfg.IntOpt("max_request_bytes", default=1024 * 1024, min=1024,
               help="Largest request body accepted, in bytes."),
    cfg.IntOpt("worker_threads", default=64, min=1,
               help="Threads that run Neutron and host operations concurrently."),
]

neutron_opts = [
    cfg.StrOpt("default_subnetpool_v4", default="10.128.0.0/12",
               help="Prefix of the IPv4 subnet pool that networks without --subnet draw from."),
    cfg.IntOpt("default_prefixlen_v4", default=24, min=8, max=30,
               help="Prefix length of an IPv4 subnet drawn from the default pool."),
    cfg.StrOpt("default_subnetpool_v6", default="fd6b:7572::/32",
               help="Prefix of the IPv6 subnet pool that networks without --subnet draw from."),
    cfg.IntOpt("default_prefixlen_v6", default=64, min=48, max=126,
               help="Prefix length of an IPv6 subnet drawn from the default pool."),
    cfg.IntOpt("retries", default=4, min=0,
               help="Retries of an idempotent Neutron request after a connection error or a "
                    "5xx answer."),
    cfg.FloatOpt("retry_backoff", default=0.25, min=0,
                 help="First wait between retries in seconds; it doubles each time."),
    cfg.FloatOpt("request_timeout", default=30.0, min=1,
                 help="Timeout of one Neutron request in seconds."),
]

binding_opts = [
    cfg.StrOpt("integration_bridge", default="br-int", help="Open vSwitch integration bridge."),
    cfg.StrOpt("ovsdb_connection", default="unix:/var/run/openvswitch/db.sock",
               help="OVSDB server of the local Open vSwitch."),
    cfg.StrOpt("veth_prefix", default="tap",
               help="Prefix of the host end of each veth pair (at most 4 characters)."),
    cfg.StrOpt("container_prefix", default="t_c",
               help="Prefix of the container end before Docker renames it (at most 4 characters)."),
    cfg.ListOpt("enabled_drivers", default=["ovs", "linux_bridge"],
                help="Binding drivers to load, by entry point name in kuryrnet.binding_drivers."),
    cfg.FloatOpt("ready_timeout", default=10.0, min=0,
                 help="Seconds Join waits for the backend to program the port (OVN's "
                      "ovn-installed mark or the port turning ACTIVE). 0 skips the wait."),
]

port_pool_opts = [
    cfg.BoolOpt("enabled", default=True,
                help="Keep ready, bound Neutron ports per network so a container start needs "
                     "no Neutron round trip."),
    cfg.IntOpt("low", default=2, min=0,
               help="Refill a network's pool when fewer ports than this are ready."),
    cfg.IntOpt("high", default=4, min=0, help="Fill a network's pool up to this many ports."),
    cfg.FloatOpt("recovery_grace", default=30.0, min=0,
                 help="Seconds after a restart before the unclaimed pool ports of the earlier run "
                      "are replaced; a lost claim found meanwhile in Docker is redone instead."),
]

AUTH_GROUP = "neutron"


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(default_opts)
    conf.register_opts(neutron_opts, group=AUTH_GROUP)
    conf.register_opts(binding_opts, group="binding")
    conf.register_opts(port_pool_opts, group="port_pool")
    ks_loading.register_session_conf_options(conf, AUTH_GROUP)
    ks_loading.register_auth_conf_options(conf, AUTH_GROUP)
    ks_loading.register_adapter_conf_options(conf, AUTH_GROUP)


def _keystoneauth_opts() -> list:
    opts = (ks_loading.get_session_conf_options()
            + ks_loading.get_auth_common_conf_options()
            + ks_loading.get_adapter_conf_options(include_deprecated=False))
    # The password plugin's options, so the sample shows how to log in.
    opts += ks_loading.get_auth_plugin_conf_options("password")
    seen, unique = set(), []
    for opt in opts:
        if opt.dest not in seen:
            seen.add(opt.dest)
            unique.append(opt)
    return unique


def list_opts():
    """Return the options per group for oslo-config-generator."""
    return [
        ("DEFAULT", default_opts),
        (AUTH_GROUP, neutron_opts + _keystoneauth_opts()),
        ("binding", binding_opts),
        ("port_pool", port_pool_opts),
    ]


def load(argv: list[str] | None = None, config_files: list[str] | None = None) -> cfg.ConfigOpts:
    """Return a fresh ConfigOpts with every option registered and the files parsed."""
    conf = cfg.ConfigOpts()
    register_opts(conf)
    if config_files is None:
        config_files = cfg.find_config_files(project="kuryr", prog="kuryr")
    conf(argv or [], project="kuryr", default_config_files=config_files)
    return conf
