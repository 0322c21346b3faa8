"""Benchmark options, read from BENCH_* environment variables."""

from __future__ import annotations

import dataclasses
import ipaddress
import os


class SettingsError(ValueError):
    """An invalid BENCH_* environment variable."""


@dataclasses.dataclass(frozen=True)
class Option:
    name: str
    default: int | str
    help: str


OPTIONS = [
    Option("BENCH_RUNS", 30,
           "timed `docker run --rm` runs per network, interleaved between networks"),
    Option("BENCH_WARMUP", 2, "untimed runs per network before the timed runs"),
    Option("BENCH_BURST", 20, "concurrent `docker run --rm` in the burst of each network"),
    Option("BENCH_NET_RUNS", 10, "timed `docker network create` + `rm` pairs per driver"),
    Option("BENCH_COUNT_RUNS", 5,
           "container lifecycles (and network create + remove pairs) whose Neutron requests "
           "are counted per driver"),
    Option("BENCH_ENDPOINTS", 300,
           "existing endpoints on the host for the second growth measurement"),
    Option("BENCH_GROWTH_SMALL", 10,
           "existing endpoints on the host for the first growth measurement"),
    Option("BENCH_GROWTH_RUNS", 10,
           "timed `docker run --rm` runs per network at each growth point"),
    Option("BENCH_RSS_ENDPOINTS", 200, "endpoints at which the daemon's RSS is read"),
    Option("BENCH_START_RUNS", 5, "daemon starts timed to the first served request"),
    Option("BENCH_PARALLEL", 4,
           "`docker run -d` commands in flight while the growth endpoints are created"),
    Option("BENCH_SUBNET_BASE", "10.250.0.0/16",
           "address range reserved for the benchmark's networks; Neutron subnets and subnet "
           "pools inside it are treated as the benchmark's own and removed at the end"),
    Option("BENCH_SKIP", "",
           "comma-separated networks to leave out: kuryrnet-pool, kuryrnet-nopool, "
           "kuryr-libnetwork, bridge, none"),
    Option("BENCH_UPSTREAM_PORT", 23751,
           "loopback TCP port of kuryr-libnetwork, which Docker knows as driver klbench<port>"),
    Option("BENCH_QUIET_SECONDS", "1.5",
           "seconds without a Neutron request after which a driver counts as idle"),
]

NETWORK_KINDS = ("kuryrnet-pool", "kuryrnet-nopool", "kuryr-libnetwork", "bridge", "none")


@dataclasses.dataclass(frozen=True)
class Settings:
    runs: int
    warmup: int
    burst: int
    net_runs: int
    count_runs: int
    endpoints: int
    growth_small: int
    growth_runs: int
    rss_endpoints: int
    start_runs: int
    parallel: int
    subnet_base: ipaddress.IPv4Network
    skip: frozenset[str]
    quiet_seconds: float
    upstream_port: int

    @property
    def kinds(self) -> tuple[str, ...]:
        """Return the networks to measure, in the fixed order of the report."""
        return tuple(kind for kind in NETWORK_KINDS if kind not in self.skip)


def _int(environ: dict, option: Option, minimum: int) -> int:
    raw = environ.get(option.name, str(option.default))
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{option.name}={raw!r} is not an integer") from None
    if value < minimum:
        raise SettingsError(f"{option.name}={value} is invalid: the minimum is {minimum}")
    return value


def load(environ: dict | None = None) -> Settings:
    """Read the settings from the environment; raise SettingsError on an invalid value."""
    environ = os.environ if environ is None else environ
    by_name = {option.name: option for option in OPTIONS}

    raw_base = environ.get("BENCH_SUBNET_BASE", by_name["BENCH_SUBNET_BASE"].default)
    try:
        subnet_base = ipaddress.IPv4Network(raw_base)
    except ValueError as exc:
        raise SettingsError(f"BENCH_SUBNET_BASE={raw_base!r} is not an IPv4 prefix: {exc}") from None
    if subnet_base.prefixlen > 16:
        raise SettingsError(f"BENCH_SUBNET_BASE={raw_base} is too small: it must be a /16 or larger")

    skip = frozenset(word.strip() for word in environ.get("BENCH_SKIP", "").split(",") if word.strip())
    unknown = skip - set(NETWORK_KINDS)
    if unknown:
        raise SettingsError(f"BENCH_SKIP names unknown networks {sorted(unknown)}; "
                            f"known: {', '.join(NETWORK_KINDS)}")

    raw_quiet = environ.get("BENCH_QUIET_SECONDS", by_name["BENCH_QUIET_SECONDS"].default)
    try:
        quiet_seconds = float(raw_quiet)
    except ValueError:
        raise SettingsError(f"BENCH_QUIET_SECONDS={raw_quiet!r} is not a number") from None
    if quiet_seconds <= 0:
        raise SettingsError(f"BENCH_QUIET_SECONDS={raw_quiet} must be positive")

    settings = Settings(
        runs=_int(environ, by_name["BENCH_RUNS"], 1),
        warmup=_int(environ, by_name["BENCH_WARMUP"], 0),
        burst=_int(environ, by_name["BENCH_BURST"], 1),
        net_runs=_int(environ, by_name["BENCH_NET_RUNS"], 1),
        count_runs=_int(environ, by_name["BENCH_COUNT_RUNS"], 1),
        endpoints=_int(environ, by_name["BENCH_ENDPOINTS"], 0),
        growth_small=_int(environ, by_name["BENCH_GROWTH_SMALL"], 0),
        growth_runs=_int(environ, by_name["BENCH_GROWTH_RUNS"], 1),
        rss_endpoints=_int(environ, by_name["BENCH_RSS_ENDPOINTS"], 0),
        start_runs=_int(environ, by_name["BENCH_START_RUNS"], 1),
        parallel=_int(environ, by_name["BENCH_PARALLEL"], 1),
        subnet_base=subnet_base,
        skip=skip,
        quiet_seconds=quiet_seconds,
        upstream_port=_int(environ, by_name["BENCH_UPSTREAM_PORT"], 1),
    )
    if settings.growth_small > settings.endpoints:
        raise SettingsError(f"BENCH_GROWTH_SMALL={settings.growth_small} must not exceed "
                            f"BENCH_ENDPOINTS={settings.endpoints}")
    # The growth endpoints and the pool ports share one /22 (1021 addresses).
    if max(settings.endpoints, settings.rss_endpoints) + settings.burst > 900:
        raise SettingsError("BENCH_ENDPOINTS (or BENCH_RSS_ENDPOINTS) plus BENCH_BURST must stay "
                            "at most 900: the benchmark's networks are /22 subnets")
    return settings


def describe() -> str:
    """Return one line per option with its default, for --help and the docs."""
    return "\n".join(f"  {option.name} (default {option.default!s}): {option.help}"
                     for option in OPTIONS)
