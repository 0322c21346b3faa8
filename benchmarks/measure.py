"""The measurements of one benchmark run, against one Neutron and one Docker engine.

Network kinds: kuryrnet-pool and kuryrnet-nopool (one kuryrnet daemon, port
pools switched per network), kuryr-libnetwork, Docker's bridge driver and
`--network none`. Each phase catches its own failures, records them in
`results["errors"]` and lets the next phase run.
"""

from __future__ import annotations

import collections
import concurrent.futures
import datetime
import http.client
import ipaddress
import logging
import pathlib
import re
import statistics
import subprocess
import time
import traceback
import urllib.parse

from benchmarks import cleanup, stats
from benchmarks.daemons import (KURYRNET_DRIVER, PLUGIN_DIR, DaemonError, KuryrnetDaemon,
                                UnixHTTPConnection, UpstreamDriver, install_upstream,
                                plugin_request, upstream_driver_name)
from benchmarks.proxy import CountingProxy, Record, summarize
from benchmarks.settings import Settings
from benchmarks.stack import DOCKER_TIMEOUT, Docker, Neutron, StackError, Timed

LOG = logging.getLogger(__name__)

KURYRNET_KINDS = ("kuryrnet-pool", "kuryrnet-nopool")
NEUTRON_KINDS = ("kuryrnet-pool", "kuryrnet-nopool", "kuryr-libnetwork")
# Label of the proxy listener that serves each kind.
PROXY_LABEL = {"kuryrnet-pool": "kuryrnet", "kuryrnet-nopool": "kuryrnet",
               "kuryr-libnetwork": "kuryr-libnetwork"}
SETTLE_SECONDS = 3.0  # after a daemon start, before its idle RSS is read
CALL_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \d+ \w+ [\w.]+: "
                       r"(?P<call>(?:Plugin|NetworkDriver|IpamDriver)\.\w+) .*: (?P<status>\d{3}) "
                       r"in (?P<ms>[\d.]+) ms")
READY_TIMEOUT_LINE = re.compile(r"was not marked ovn-installed within")
CLAIM_GONE_LINE = re.compile(r"claim port \S+ for \S+: Neutron PUT /ports/\S+ failed with 404")
PLUG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*Plugged endpoint .* in (?P<ms>[\d.]+) ms")


class StackDown(RuntimeError):
    """Docker or Neutron stopped responding during the run; later phases would measure nothing."""


class Bench:
    """State of one run: the stack, the daemons under test, the networks and the results."""

    def __init__(self, settings: Settings, env: dict[str, str], run_id: str, workdir: pathlib.Path):
        self.settings = settings
        self.env = env
        self.run_id = run_id
        self.workdir = workdir
        self.docker = Docker(env, run_id)
        self.neutron = Neutron(env["NEUTRON_URL"])
        self.proxy = CountingProxy(env["NEUTRON_URL"])
        self.kuryrnet: KuryrnetDaemon | None = None
        self.upstream: UpstreamDriver | None = None
        self.networks: dict[str, str] = {}  # kind -> Docker network name
        self.docker_network_ids: set[str] = set()
        self.subnet_counter = 0
        self.endpoints: list[str] = []  # ids of the long-running growth containers
        self.results: dict = {"errors": []}

    # -- helpers ------------------------------------------------------------------------

    def error(self, phase: str, message: str) -> None:
        LOG.error("%s: %s", phase, message)
        self.results["errors"].append({"phase": phase, "message": message})

    def phase(self, name: str, function, *args) -> None:
        """Run one phase; record an exception as an error of that phase instead of raising it."""
        LOG.info("phase %s", name)
        started = time.monotonic()
        try:
            function(*args)
        except (StackError, DaemonError, OSError, RuntimeError, ValueError, KeyError) as exc:
            self.error(name, f"{type(exc).__name__}: {exc}")
            LOG.debug("%s", traceback.format_exc())
        self.results.setdefault("phase_seconds", {})[name] = round(time.monotonic() - started, 1)
        down = [piece for piece, up in (("Docker", self.docker.reachable()),
                                        ("Neutron", self.neutron.reachable())) if not up]
        if down:
            raise StackDown(f"{' and '.join(down)} stopped responding during phase {name!r}; "
                            f"the figures of this phase and the later ones are missing or wrong")

    def kinds(self, *allowed: str) -> list[str]:
        """Return the measured kinds among `allowed` (all when empty) whose network exists."""
        return [kind for kind in self.settings.kinds
                if (not allowed or kind in allowed) and (kind == "none" or kind in self.networks)]

    def network_of(self, kind: str) -> str:
        return "none" if kind == "none" else self.networks[kind]

    def subnet(self, index: int) -> str:
        """Return the /22 number `index` of the benchmark's base range."""
        base = self.settings.subnet_base
        return str(ipaddress.IPv4Network((int(base.network_address) + index * 1024, 22)))

    def scratch_subnet(self) -> str:
        """Return a fresh /24 from the upper half of the base range, for create + remove pairs."""
        base = self.settings.subnet_base
        half = base.num_addresses // 2
        offset = half + (self.subnet_counter * 256) % half
        self.subnet_counter += 1
        return str(ipaddress.IPv4Network((int(base.network_address) + offset, 24)))

    def wait_quiet(self, kinds: list[str] | tuple[str, ...]) -> None:
        """Wait until the drivers behind `kinds` finished their background Neutron work."""
        labels = {PROXY_LABEL[kind] for kind in kinds if kind in PROXY_LABEL}
        if "kuryrnet" in labels and self.kuryrnet and self.kuryrnet.running():
            if not self.kuryrnet.wait_background_idle():
                LOG.warning("kuryrnet's background queue did not drain within 120 s")
        for label in labels:
            if not self.proxy.wait_quiet(label, self.settings.quiet_seconds):
                LOG.warning("the %s driver still sends Neutron requests after 120 s", label)

    def driver_args(self, kind: str) -> tuple[str, tuple[str, ...]]:
        """Return the Docker driver name and the -o options of a network of `kind`."""
        if kind == "kuryrnet-pool":
            return KURYRNET_DRIVER, ()
        if kind == "kuryrnet-nopool":
            return KURYRNET_DRIVER, ("kuryrnet.port_pool.enabled=false",)
        if kind == "kuryr-libnetwork":
            return upstream_driver_name(self.settings.upstream_port), ()
        return "bridge", ()

    def create_network(self, kind: str, name: str, subnet: str) -> Timed:
        driver, options = self.driver_args(kind)
        result = self.docker.network_create(name, driver, subnet, options)
        if result.ok:
            self.docker_network_ids.add(result.stdout.strip())
        return result

    def kuryrnet_status(self) -> dict | None:
        if not self.kuryrnet or not self.kuryrnet.running():
            return None
        try:
            return self.kuryrnet.status()
        except (OSError, DaemonError) as exc:
            LOG.warning("cannot read kuryrnet's status: %s", exc)
            return None

    # -- setup ---------------------------------------------------------------------------

    def check_neutron(self) -> None:
        self.neutron.list("networks", limit=1)

    def check_other_daemons(self) -> None:
        """Record a warning when another kuryrnet daemon serves this host during the run.

        kuryrnet assumes one daemon per host: a daemon that starts replaces
        the unclaimed pool ports of this host after a grace period, including
        those of another daemon that still uses them.
        """
        others = []
        for socket_path in sorted(PLUGIN_DIR.glob("*.sock")):
            if socket_path.name == f"{KURYRNET_DRIVER}.sock":
                continue
            try:
                status, _ = plugin_request(UnixHTTPConnection(str(socket_path), 2.0),
                                           "GET", "/kuryrnet/status")
            except OSError:
                continue
            if status == 200:
                others.append(str(socket_path))
        if others:
            message = (f"another kuryrnet daemon serves {', '.join(others)}; the two daemons may "
                       f"replace each other's pool ports, and its tests may see this run's ports")
            LOG.warning("%s", message)
            self.results.setdefault("warnings", []).append(message)

    def start_proxy(self) -> None:
        self.proxy.start()
        for label in ("kuryrnet", "kuryr-libnetwork", "calibration"):
            self.proxy.add_listener(label)

    def calibrate_proxy(self, samples: int = 30) -> None:
        """Measure the time that the proxy adds to one small Neutron request.

        Both paths use one kept-alive connection, as the drivers' HTTP clients do.
        """
        path = "/v2.0/networks?limit=1"
        connections = {"direct": http.client.HTTPConnection(
                           urllib.parse.urlsplit(self.env["NEUTRON_URL"]).netloc, timeout=30),
                       "proxied": http.client.HTTPConnection(
                           urllib.parse.urlsplit(self.proxy.urls["calibration"]).netloc, timeout=30)}
        timings: dict[str, list[float]] = {"direct": [], "proxied": []}
        try:
            for _ in range(samples):
                for label, connection in connections.items():
                    started = time.perf_counter()
                    connection.request("GET", path, headers={"Accept": "application/json"})
                    connection.getresponse().read()
                    timings[label].append(time.perf_counter() - started)
        finally:
            for connection in connections.values():
                connection.close()
        direct = statistics.median(timings["direct"])
        proxied = statistics.median(timings["proxied"])
        self.results["proxy_overhead"] = {
            "request": "GET /v2.0/networks?limit=1", "samples": samples,
            "direct_median_ms": round(direct * 1000, 2), "proxied_median_ms": round(proxied * 1000, 2),
            "added_ms": round((proxied - direct) * 1000, 2)}

    def start_kuryrnet(self) -> None:
        """Start kuryrnet BENCH_START_RUNS times, timing each start; leave the last one running."""
        daemon = KuryrnetDaemon(self.workdir, self.env, self.proxy.urls["kuryrnet"])
        daemon.check_socket_free()
        daemon.write_config()
        self.kuryrnet = daemon
        start_seconds = []
        for attempt in range(self.settings.start_runs):
            start_seconds.append(daemon.start())
            if attempt < self.settings.start_runs - 1:
                daemon.stop()
        time.sleep(SETTLE_SECONDS)
        self.results.setdefault("daemons", {})["kuryrnet"] = {
            "start_to_first_request": stats.summary(start_seconds),
            "rss_idle_bytes": daemon.rss(),
            "log": str(daemon.log_path)}

    def start_upstream(self) -> None:
        install_upstream()
        driver = UpstreamDriver(self.workdir, self.env, self.proxy.urls["kuryr-libnetwork"],
                                self.settings.upstream_port)
        driver.write_config()
        if driver.spec_path.exists() and not driver.served():
            LOG.info("removing the stale spec file %s", driver.spec_path)
            driver.spec_path.unlink()
        driver.write_spec()
        self.upstream = driver
        start_seconds = []
        for attempt in range(self.settings.start_runs):
            start_seconds.append(driver.start())
            if attempt < self.settings.start_runs - 1:
                driver.stop()
        time.sleep(SETTLE_SECONDS)
        self.results.setdefault("daemons", {})["kuryr-libnetwork"] = {
            "start_to_first_request": stats.summary(start_seconds),
            "rss_idle_bytes": driver.rss(),
            "log": str(driver.log_path)}

    def remove_earlier_leftovers(self) -> None:
        """Remove Docker objects and Neutron resources that a killed earlier run left."""
        errors = cleanup.remove_docker_objects(self.docker, None)
        for message in errors:
            self.error("earlier leftovers", message)
        lines = cleanup.sweep_neutron(self.neutron, self.settings.subnet_base, set())
        self.results["earlier_leftovers"] = lines

    def create_networks(self) -> None:
        for index, kind in enumerate(self.settings.kinds):
            if kind == "none":
                continue
            if kind in KURYRNET_KINDS and not (self.kuryrnet and self.kuryrnet.running()):
                self.error("networks", f"{kind}: the kuryrnet daemon is not running")
                continue
            if kind == "kuryr-libnetwork" and not (self.upstream and self.upstream.running()):
                self.error("networks", f"{kind}: kuryr-libnetwork is not running")
                continue
            name = f"kb{self.run_id}-{kind}"
            result = self.create_network(kind, name, self.subnet(index))
            if result.ok:
                self.networks[kind] = name
            else:
                self.error("networks", f"docker network create for {kind} failed: {result.error_line()}")
        self.wait_quiet(NEUTRON_KINDS)

    # -- docker run --rm -----------------------------------------------------------------

    def warm_up(self) -> None:
        for _ in range(self.settings.warmup):
            for kind in self.kinds():
                result = self.docker.run_rm(self.network_of(kind))
                if not result.ok:
                    self.error("warm-up", f"{kind}: {result.error_line()}")
        self.wait_quiet(NEUTRON_KINDS)

    def interleaved_runs(self, runs: int, kinds: list[str]) -> dict[str, dict]:
        """Time `runs` rounds of `docker run --rm ... true`; each round rotates the order of the kinds."""
        samples: dict[str, list[float]] = collections.defaultdict(list)
        failures: dict[str, list[str]] = collections.defaultdict(list)
        for round_index in range(runs):
            shift = round_index % len(kinds)
            for kind in kinds[shift:] + kinds[:shift]:
                result = self.docker.run_rm(self.network_of(kind))
                if result.ok:
                    samples[kind].append(result.seconds)
                else:
                    failures[kind].append(result.error_line())
            LOG.info("round %d/%d: %s", round_index + 1, runs,
                     ", ".join(f"{kind} {samples[kind][-1]:.3f}s" for kind in kinds if samples[kind]))
        return {kind: {**stats.summary(samples[kind]), "failures": len(failures[kind]),
                       "failure_messages": sorted(set(failures[kind]))[:5]}
                for kind in kinds}

    def run_latency(self) -> None:
        before = self.kuryrnet_status()
        started = time.time()
        self.results["docker_run"] = self.interleaved_runs(self.settings.runs, self.kinds())
        after = self.kuryrnet_status()
        self.results["docker_run_pool"] = pool_delta(before, after)
        self.results["docker_run_window"] = [started, time.time()]
        self.wait_quiet(NEUTRON_KINDS)

    # -- Neutron requests per container lifecycle -----------------------------------------

    def count_lifecycles(self, kind: str, lifecycles: int) -> dict:
        """Run containers one at a time and count the Neutron requests of each lifecycle."""
        label = PROXY_LABEL[kind]
        totals, during, after, neutron_seconds, run_seconds = [], [], [], [], []
        records: list[Record] = []
        windows: list[tuple[float, float, float, list[Record]]] = []
        failures = []
        status_before = self.kuryrnet_status() if kind in KURYRNET_KINDS else None
        wall_started = time.time()

        for _ in range(lifecycles):
            self.wait_quiet([kind])
            started_wall = time.time()
            started = time.monotonic()
            result = self.docker.run_rm(self.network_of(kind))
            finished = time.monotonic()
            if not result.ok:
                failures.append(result.error_line())
            self.wait_quiet([kind])
            window = self.proxy.records(label, started, time.monotonic())
            in_run = [record for record in window if record.started < finished]
            totals.append(len(window))
            during.append(len(in_run))
            after.append(len(window) - len(in_run))
            neutron_seconds.append(sum(record.seconds for record in in_run))
            run_seconds.append(result.seconds)
            records += window
            windows.append((started_wall, started, finished - started, window))

        status_after = self.kuryrnet_status() if kind in KURYRNET_KINDS else None
        answer = {"lifecycles": lifecycles, "failures": len(failures),
                  "failure_messages": sorted(set(failures))[:5],
                  "per_lifecycle": statistics.mean(totals),
                  "during_run": statistics.mean(during), "after_run": statistics.mean(after),
                  "max_per_lifecycle": max(totals),
                  "neutron_seconds_during_run": statistics.median(neutron_seconds),
                  "run_seconds": statistics.median(run_seconds),
                  "breakdown": {key: round(count / lifecycles, 2)
                                for key, count in summarize(records).items()},
                  "errors_from_neutron": sum(1 for record in records if record.status >= 400),
                  "wall_window": [wall_started, time.time()]}
        if kind in KURYRNET_KINDS:
            answer["start_path"] = self.start_path_requests(windows)
        if status_before and status_after:
            answer["pool"] = pool_delta(status_before, status_after)
            answer["daemon_counter_delta"] = ((status_after.get("neutron_requests") or 0)
                                              - (status_before.get("neutron_requests") or 0))
        return answer

    def join_times(self) -> list[float]:
        """Return the wall-clock times at which kuryrnet logged a successful Join."""
        if not self.kuryrnet:
            return []
        times = []
        for line in self.kuryrnet.log_path.read_text(errors="replace").splitlines():
            match = CALL_LINE.match(line)
            if match and match.group("call") == "NetworkDriver.Join" and match.group("status") == "200":
                times.append(log_time(match.group(1)))
        return times

    def start_path_requests(self, windows: list[tuple[float, float, float, list[Record]]]) -> float | None:
        """Return the mean number of Neutron requests sent before Join returned, per lifecycle.

        Each window is (wall-clock start, monotonic start, run seconds, records).
        The Join's log line is written when Join returns, with a resolution of 1 ms.
        """
        joins = self.join_times()
        counts = []
        for wall_start, monotonic_start, seconds, window in windows:
            inside = [stamp for stamp in joins if wall_start <= stamp <= wall_start + seconds]
            if not inside:
                continue
            join_end = monotonic_start + (inside[0] - wall_start)
            counts.append(sum(1 for record in window if record.started <= join_end))
        return statistics.mean(counts) if counts else None

    def container_requests(self) -> None:
        counts = {}
        for kind in self.kinds(*NEUTRON_KINDS):
            counts[kind] = self.count_lifecycles(kind, self.settings.count_runs)
        self.results["container_requests"] = counts
        self.results["profile"] = self.kuryrnet_profile(counts)

    def kuryrnet_profile(self, counts: dict) -> dict:
        """Return the median time of each plugin call per kuryrnet kind, read from the daemon's log."""
        if not self.kuryrnet:
            return {}
        lines = self.kuryrnet.log_path.read_text(errors="replace").splitlines()
        profile = {}
        for kind in KURYRNET_KINDS:
            if kind not in counts:
                continue
            first, last = counts[kind]["wall_window"]
            calls: dict[str, list[float]] = collections.defaultdict(list)
            for line in lines:
                match = CALL_LINE.match(line) or PLUG_LINE.match(line)
                if not match:
                    continue
                stamp = log_time(match.group(1))
                if first <= stamp <= last:
                    name = match.groupdict().get("call") or "OVS plug (inside Join)"
                    calls[name].append(float(match.group("ms")))
            medians = {name: statistics.median(values) for name, values in calls.items()}
            entry = {name: {"n": len(calls[name]), "median_ms": round(medians[name], 1)}
                     for name in sorted(calls)}
            plug = medians.get("OVS plug (inside Join)")
            if plug is not None and "NetworkDriver.Join" in medians:
                # An estimate from two medians: the part of Join after the
                # veth and OVSDB work, mostly the wait for the port to be wired.
                entry["Join after the OVS plug (estimate)"] = {
                    "n": len(calls["NetworkDriver.Join"]),
                    "median_ms": round(medians["NetworkDriver.Join"] - plug, 1)}
            entry["all plugin calls (sum of medians)"] = {
                "n": 0, "median_ms": round(sum(value for name, value in medians.items()
                                               if not name.startswith("OVS plug")), 1)}
            profile[kind] = entry
        return profile

    # -- burst ---------------------------------------------------------------------------

    def burst(self) -> None:
        answer = {}
        for kind in self.kinds():
            self.wait_quiet(NEUTRON_KINDS)
            before = self.kuryrnet_status() if kind in KURYRNET_KINDS else None
            started = time.perf_counter()
            processes = [self.docker.popen(*self.docker.run_args(self.network_of(kind)))
                         for _ in range(self.settings.burst)]
            messages = []
            failures = 0
            deadline = time.monotonic() + DOCKER_TIMEOUT
            for process in processes:
                try:
                    _, stderr = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
                    _, stderr = process.communicate()
                    stderr += f"\ndocker run timed out after {DOCKER_TIMEOUT:.0f} s"
                if process.returncode != 0:
                    failures += 1
                    lines = [line for line in stderr.strip().splitlines() if line.strip()]
                    messages.append(lines[-1][:300] if lines else f"exit code {process.returncode}")
            total = time.perf_counter() - started
            answer[kind] = {"containers": self.settings.burst, "total_seconds": total,
                            "failures": failures, "failure_messages": sorted(set(messages))[:5]}
            if before is not None:
                answer[kind]["pool"] = pool_delta(before, self.kuryrnet_status())
            LOG.info("burst of %d on %s: %.2f s, %d failed", self.settings.burst, kind, total, failures)
        self.results["burst"] = answer
        self.wait_quiet(NEUTRON_KINDS)

    # -- networks ------------------------------------------------------------------------

    def network_latency(self) -> None:
        kinds = self.kinds("kuryrnet-pool", "kuryrnet-nopool", "kuryr-libnetwork", "bridge")
        creates: dict[str, list[float]] = collections.defaultdict(list)
        removes: dict[str, list[float]] = collections.defaultdict(list)
        pairs: dict[str, list[float]] = collections.defaultdict(list)
        failures: dict[str, list[str]] = collections.defaultdict(list)
        for round_index in range(self.settings.net_runs):
            shift = round_index % len(kinds)
            for kind in kinds[shift:] + kinds[:shift]:
                name = f"kb{self.run_id}-scratch-{round_index}-{kind}"
                created = self.create_network(kind, name, self.scratch_subnet())
                if not created.ok:
                    failures[kind].append(f"create: {created.error_line()}")
                    continue
                removed = self.docker.network_rm(name)
                if not removed.ok:
                    failures[kind].append(f"rm: {removed.error_line()}")
                    error = self.docker.remove_network(name)
                    if error:
                        self.error("network create + rm", error)
                    continue
                creates[kind].append(created.seconds)
                removes[kind].append(removed.seconds)
                pairs[kind].append(created.seconds + removed.seconds)
                self.wait_quiet([kind])
        self.results["network_create_rm"] = {
            kind: {"create": stats.summary(creates[kind]), "rm": stats.summary(removes[kind]),
                   "create_plus_rm": stats.summary(pairs[kind]), "failures": len(failures[kind]),
                   "failure_messages": sorted(set(failures[kind]))[:5]}
            for kind in kinds}

    def network_requests(self) -> None:
        answer = {}
        for kind in self.kinds(*NEUTRON_KINDS):
            label = PROXY_LABEL[kind]
            create_counts, remove_counts = [], []
            create_records: list[Record] = []
            remove_records: list[Record] = []
            for index in range(self.settings.count_runs):
                self.wait_quiet([kind])
                name = f"kb{self.run_id}-count-{index}-{kind}"
                started = time.monotonic()
                created = self.create_network(kind, name, self.scratch_subnet())
                if not created.ok:
                    self.error("network requests", f"{kind}: create failed: {created.error_line()}")
                    continue
                self.wait_quiet([kind])
                middle = time.monotonic()
                error = self.docker.remove_network(name)
                if error:
                    self.error("network requests", f"{kind}: {error}")
                self.wait_quiet([kind])
                window_create = self.proxy.records(label, started, middle)
                window_remove = self.proxy.records(label, middle, time.monotonic())
                create_counts.append(len(window_create))
                remove_counts.append(len(window_remove))
                create_records += window_create
                remove_records += window_remove
            if not create_counts:
                continue
            runs = len(create_counts)
            answer[kind] = {
                "pairs": runs,
                "create": statistics.mean(create_counts), "remove": statistics.mean(remove_counts),
                "create_breakdown": {key: round(count / runs, 2)
                                     for key, count in summarize(create_records).items()},
                "remove_breakdown": {key: round(count / runs, 2)
                                     for key, count in summarize(remove_records).items()}}
        self.results["network_requests"] = answer

    # -- growth and memory ---------------------------------------------------------------

    def add_endpoints(self, target: int) -> None:
        """Start long-running containers on the kuryrnet-pool network until `target` exist."""
        network = self.networks["kuryrnet-pool"]
        missing = target - len(self.endpoints)
        if missing <= 0:
            return
        LOG.info("starting %d containers on %s (%d exist)", missing, network, len(self.endpoints))

        def start(index: int) -> Timed:
            name = f"kb{self.run_id}-ep{index}"
            return self.docker.command(*self.docker.run_args(network, ("sleep", "86400"),
                                                             detach=True, name=name))

        failures = []
        first = len(self.endpoints)
        with concurrent.futures.ThreadPoolExecutor(self.settings.parallel) as pool:
            for result in pool.map(start, range(first, first + missing)):
                if result.ok:
                    self.endpoints.append(result.stdout.strip())
                else:
                    failures.append(result.error_line())
        if failures:
            self.error("endpoints", f"{len(failures)} of {missing} containers failed to start: "
                                    f"{sorted(set(failures))[:3]}")
        self.wait_quiet(KURYRNET_KINDS)

    def growth(self) -> None:
        if "kuryrnet-pool" in self.settings.skip:
            LOG.info("growth skipped: its endpoints live on the kuryrnet-pool network, which BENCH_SKIP leaves out")
            return
        if "kuryrnet-pool" not in self.networks:
            self.error("growth", "the kuryrnet-pool network does not exist")
            return
        checkpoints = sorted({self.settings.growth_small, self.settings.rss_endpoints,
                              self.settings.endpoints})
        growth: dict = {}
        memory: dict = {}
        for target in checkpoints:
            self.add_endpoints(target)
            existing = len(self.endpoints)
            if target in (self.settings.rss_endpoints, self.settings.endpoints) and self.kuryrnet:
                memory[str(existing)] = self.kuryrnet.rss()
            if target in (self.settings.growth_small, self.settings.endpoints):
                LOG.info("growth point: %d existing endpoints", existing)
                point = {"existing_endpoints": existing,
                         "docker_run": self.interleaved_runs(self.settings.growth_runs, self.kinds()),
                         "requests": {kind: self.count_lifecycles(kind, min(3, self.settings.count_runs))
                                      for kind in self.kinds(*NEUTRON_KINDS)}}
                growth[str(target)] = point
        self.results["growth"] = growth
        self.results.setdefault("daemons", {}).setdefault("kuryrnet", {})["rss_bytes_with_endpoints"] = memory
        if self.upstream:
            self.results.setdefault("daemons", {}).setdefault("kuryr-libnetwork", {})[
                "rss_bytes_after_runs"] = self.upstream.rss()

    def scan_kuryrnet_log(self) -> None:
        """Count the log lines of kuryrnet that explain slow or broken container starts."""
        if not self.kuryrnet or not self.kuryrnet.log_path.exists():
            return
        text = self.kuryrnet.log_path.read_text(errors="replace")
        counts = {"ready_timeouts": len(READY_TIMEOUT_LINE.findall(text)),
                  "pooled_ports_gone_before_claim": len(CLAIM_GONE_LINE.findall(text)),
                  "errors": text.count(" ERROR ")}
        self.results["kuryrnet_log"] = counts
        if counts["pooled_ports_gone_before_claim"]:
            self.results.setdefault("warnings", []).append(
                f"{counts['pooled_ports_gone_before_claim']} pooled ports were gone from Neutron when "
                f"kuryrnet claimed them (PUT returned 404), and each such start waited for "
                f"[binding] ready_timeout; another kuryrnet daemon on this host deletes the pool "
                f"ports it does not know")
        if counts["ready_timeouts"]:
            self.results.setdefault("warnings", []).append(
                f"{counts['ready_timeouts']} Joins waited the full [binding] ready_timeout for "
                f"OVN's ovn-installed mark")

    # -- teardown ------------------------------------------------------------------------

    def teardown(self) -> None:
        """Remove everything this run created; safe to call after any failure."""
        report: dict = {"errors": []}

        def step(description: str, function, *args):
            try:
                return function(*args)
            except Exception as exc:  # noqa: BLE001 - every later step must still run
                LOG.exception("cleanup: %s failed", description)
                report["errors"].append(f"{description}: {type(exc).__name__}: {exc}")
                return None

        LOG.info("cleanup: removing containers and networks of run %s", self.run_id)
        report["docker_errors"] = step("removing Docker objects", cleanup.remove_docker_objects,
                                       self.docker, self.run_id)
        if self.kuryrnet and self.kuryrnet.running():
            if not step("waiting for kuryrnet's background jobs", self.kuryrnet.wait_background_idle):
                report["errors"].append("kuryrnet's background queue did not drain within 120 s")
        for daemon in (self.kuryrnet, self.upstream):
            if daemon:
                step(f"stopping {daemon.name}", daemon.stop)
        if self.upstream:
            step("removing the spec file", self.upstream.remove_spec)
        report["neutron_leftovers"] = step("removing Neutron leftovers", cleanup.sweep_neutron,
                                           self.neutron, self.settings.subnet_base,
                                           self.docker_network_ids)
        step("stopping the Neutron proxy", self.proxy.stop)
        self.results["cleanup"] = report


def pool_delta(before: dict | None, after: dict | None) -> dict | None:
    """Return the change of kuryrnet's pool hits, misses and Neutron requests between two status responses."""
    if not before or not after:
        return None
    pool_before = before.get("port_pool") or {}
    pool_after = after.get("port_pool") or {}
    return {"hits": (pool_after.get("hits") or 0) - (pool_before.get("hits") or 0),
            "misses": (pool_after.get("misses") or 0) - (pool_before.get("misses") or 0),
            "neutron_requests": ((after.get("neutron_requests") or 0)
                                 - (before.get("neutron_requests") or 0))}


def log_time(text: str) -> float:
    """Convert a Python logging asctime ("2025-01-31 12:00:00,123", local time) to a Unix time."""
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()
