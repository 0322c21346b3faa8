"""The `kuryrnet` command: serve the plugin, show its status, release leftovers.

    kuryrnet serve [--config-file F ...] [--debug]
    kuryrnet status [--config-file F ...]
    kuryrnet gc [--remove] [--grace SECONDS] [--config-file F ...]

Without --config-file, /etc/kuryr/kuryr.conf is read when it exists.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys

import aiohttp
from oslo_config import cfg

from kuryrnet import config
from kuryrnet.errors import KuryrnetError

LOG = logging.getLogger("kuryrnet")

LOG_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
STATUS_TIMEOUT = 10.0  # seconds


def build_parser() -> argparse.ArgumentParser:
    config_options = argparse.ArgumentParser(add_help=False)
    config_options.add_argument(
        "--config-file", action="append", default=[], metavar="PATH",
        help=f"configuration file to read. Repeat the option to read several files, where "
             f"later files override earlier ones (default: {config.DEFAULT_CONFIG_FILE} when "
             f"it exists)")
    config_options.add_argument(
        "--config-dir", action="append", default=[], metavar="DIR",
        help="directory whose *.conf files are read after the configuration files")
    config_options.add_argument("--debug", action="store_true",
                                help="log at DEBUG level instead of INFO")

    parser = argparse.ArgumentParser(
        prog="kuryrnet",
        description="Docker network and IPAM driver that puts containers on OpenStack Neutron "
                    "networks.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("serve", parents=[config_options],
                        help="serve the plugin API to Docker until SIGTERM or SIGINT")
    commands.add_parser("status", parents=[config_options],
                        help="print the state of the running daemon, read over its unix socket")
    gc_command = commands.add_parser(
        "gc", parents=[config_options],
        help="list the Neutron ports, networks and host interfaces that no Docker endpoint "
             "or network uses")
    gc_command.add_argument("--remove", action="store_true",
                            help="release what is listed instead of only listing it")
    gc_command.add_argument("--grace", type=non_negative_seconds, default=None, metavar="SECONDS",
                            help="count a port not yet given to an endpoint, or a network, as a "
                                 "leftover only when it is older than this many seconds "
                                 "(default: 60). A smaller value can release what a call in "
                                 "progress is creating")
    return parser


def non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}: must be 0 or more")
    return value


def load_config(args: argparse.Namespace) -> cfg.ConfigOpts:
    """Read the configuration files named on the command line, or the default one."""
    argv = []
    for path in args.config_file:
        argv += ["--config-file", path]
    for path in args.config_dir:
        argv += ["--config-dir", path]
    default_files = ([config.DEFAULT_CONFIG_FILE]
                     if os.path.exists(config.DEFAULT_CONFIG_FILE) else [])
    return config.load(argv, config_files=default_files)


def check_config_values(conf: cfg.ConfigOpts) -> None:
    """Read every registered option once, because oslo.config checks a value only when it is read.

    Raises cfg.Error naming the option with an invalid value.
    """
    for name in conf:
        value = conf[name]
        if isinstance(value, cfg.ConfigOpts.GroupAttr):
            for option_name in value:
                value[option_name]


def setup_logging(debug: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format=LOG_FORMAT,
                        stream=sys.stderr, force=True)
    # kuryrnet.api.handlers logs each call once, so aiohttp's access log is
    # off, and its other loggers stay quiet unless debugging.
    if not debug:
        logging.getLogger("aiohttp").setLevel(logging.WARNING)
    # Even when debugging, the libraries' own debug output stays off: pyroute2
    # logs every netlink message, and keystoneauth logs request and response
    # bodies, which can hold credentials.
    for name in ("pyroute2", "keystoneauth", "urllib3", "stevedore"):
        logging.getLogger(name).setLevel(logging.INFO)


def serve(conf: cfg.ConfigOpts) -> int:
    # Imported here so `status` and `gc` do not load the server and the driver.
    from kuryrnet.api import server
    from kuryrnet.operations import driver as driver_module

    LOG.info("starting kuryrnet: socket_path=%r listen_address=%r capability_scope=%s "
             "worker_threads=%d", conf.socket_path, conf.listen_address,
             conf.capability_scope, conf.worker_threads)
    try:
        driver = driver_module.build_driver(conf)
    except KuryrnetError as exc:
        LOG.error("cannot build the driver: %s", exc.message)
        return 1
    try:
        server.run(conf, driver)
    except server.StartupError as exc:
        LOG.error("cannot start: %s", exc)
        return 1
    return 0


async def fetch_status(socket_path: str) -> dict:
    from kuryrnet.api.handlers import STATUS_PATH

    connector = aiohttp.UnixConnector(path=socket_path)
    timeout = aiohttp.ClientTimeout(total=STATUS_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async with session.get(f"http://kuryrnet{STATUS_PATH}") as response:
            payload = await response.json(content_type=None)
            if response.status != 200:
                message = payload.get("Err") if isinstance(payload, dict) else payload
                raise RuntimeError(f"HTTP {response.status}: {message}")
            return payload


def status(conf: cfg.ConfigOpts) -> int:
    if not conf.socket_path:
        print("kuryrnet status: socket_path is empty; status is read over the unix socket",
              file=sys.stderr)
        return 1
    try:
        state = asyncio.run(fetch_status(conf.socket_path))
    except (OSError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
        print(f"kuryrnet status: cannot reach the daemon on {conf.socket_path}: {exc or type(exc).__name__}. "
              f"Is `kuryrnet serve` running?", file=sys.stderr)
        return 1
    except (RuntimeError, ValueError) as exc:
        print(f"kuryrnet status: the daemon on {conf.socket_path} failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(state, indent=2, sort_keys=True, default=str))
    return 0


def gc(conf: cfg.ConfigOpts, remove: bool, grace: float | None = None) -> int:
    from kuryrnet.operations import reconcile

    grace_option = {} if grace is None else {"grace_seconds": grace}
    try:
        lines = reconcile.run_gc(conf, remove, **grace_option)
    except KuryrnetError as exc:
        print(f"kuryrnet gc: {exc.message}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    if not lines:
        print("no leftovers found")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.debug)
    try:
        conf = load_config(args)
        check_config_values(conf)
    except cfg.Error as exc:
        print(f"kuryrnet: invalid configuration: {exc}", file=sys.stderr)
        return 2

    if args.command == "serve":
        return serve(conf)
    if args.command == "status":
        return status(conf)
    return gc(conf, args.remove, args.grace)


if __name__ == "__main__":
    sys.exit(main())
