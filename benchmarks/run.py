"""Run the benchmarks: kuryrnet against kuryr-libnetwork and Docker's own drivers.

    python -m benchmarks.run          (or: make bench)

Options are BENCH_* environment variables; `python -m benchmarks.run --help`
lists them. Writes benchmarks/results/<timestamp>.json and .md. Needs the
local stack (`make stack-up`) and root.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
import time

from benchmarks import report, settings as settings_module
from benchmarks.daemons import kuryrnet_version, upstream_versions
from benchmarks.measure import Bench, StackDown
from benchmarks.stack import ROOT, STACK_DIR, StackError, read_env

LOG = logging.getLogger("benchmarks")
RESULTS_DIR = ROOT / "benchmarks" / "results"


class Terminated(BaseException):
    """SIGTERM arrived; raised like KeyboardInterrupt so that cleanup runs."""


def on_sigterm(signum, frame):
    raise Terminated()


def ignore_while_cleaning(signum, frame):
    LOG.warning("signal %d ignored: the benchmark is removing what it created", signum)


def usage() -> str:
    return (__doc__.strip() + "\n\nOptions (environment variables):\n" + settings_module.describe() + "\n")


def main(argv: list[str]) -> int:
    if any(arg in ("-h", "--help") for arg in argv):
        print(usage())
        return 0
    if argv:
        print(f"benchmarks.run takes no arguments (got {' '.join(argv)}); set BENCH_* variables "
              f"instead. See --help.", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        settings = settings_module.load()
        env = read_env()
    except (settings_module.SettingsError, StackError) as exc:
        print(f"benchmarks: {exc}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("benchmarks: run as root: the plugins create network interfaces and Docker's "
              "plugin folders are root's", file=sys.stderr)
        return 2

    stamp = time.strftime("%Y%m%dT%H%M%S")
    run_id = secrets.token_hex(3)
    workdir = STACK_DIR / "bench" / stamp
    workdir.mkdir(parents=True, exist_ok=True)
    bench = Bench(settings, env, run_id, workdir)
    results = bench.results
    results["run"] = {"started": stamp, "run_id": run_id, "workdir": str(workdir)}
    results["settings"] = {
        "runs": settings.runs, "warmup": settings.warmup, "burst": settings.burst,
        "net_runs": settings.net_runs, "count_runs": settings.count_runs,
        "endpoints": settings.endpoints, "growth_small": settings.growth_small,
        "growth_runs": settings.growth_runs, "rss_endpoints": settings.rss_endpoints,
        "start_runs": settings.start_runs, "parallel": settings.parallel,
        "subnet_base": str(settings.subnet_base), "skip": sorted(settings.skip),
        "quiet_seconds": settings.quiet_seconds, "image": env["TEST_IMAGE"]}
    results["machine"] = report.machine_info()
    started = time.monotonic()
    LOG.info("benchmark run %s; logs and configuration in %s", run_id, workdir)

    signal.signal(signal.SIGTERM, on_sigterm)
    interrupted = None
    try:
        bench.phase("check Neutron", bench.check_neutron)
        bench.phase("other kuryrnet daemons", bench.check_other_daemons)
        bench.phase("proxy", bench.start_proxy)
        bench.phase("proxy calibration", bench.calibrate_proxy)
        if "kuryrnet-pool" in settings.kinds or "kuryrnet-nopool" in settings.kinds:
            bench.phase("kuryrnet start", bench.start_kuryrnet)
        if "kuryr-libnetwork" in settings.kinds:
            bench.phase("kuryr-libnetwork start", bench.start_upstream)
        bench.phase("earlier leftovers", bench.remove_earlier_leftovers)
        bench.phase("networks", bench.create_networks)
        bench.phase("warm-up", bench.warm_up)
        bench.phase("docker run", bench.run_latency)
        bench.phase("container requests", bench.container_requests)
        bench.phase("burst", bench.burst)
        bench.phase("network create + rm", bench.network_latency)
        bench.phase("network requests", bench.network_requests)
        bench.phase("growth", bench.growth)
        bench.phase("other kuryrnet daemons", bench.check_other_daemons)
    except StackDown as exc:
        LOG.error("%s; removing what the benchmark created", exc)
        results["errors"].append({"phase": "run", "message": str(exc)})
    except (KeyboardInterrupt, Terminated) as exc:
        interrupted = type(exc).__name__
        LOG.warning("interrupted (%s); removing what the benchmark created", interrupted)
        results["errors"].append({"phase": "run", "message": f"interrupted by {interrupted}"})
    finally:
        signal.signal(signal.SIGINT, ignore_while_cleaning)
        signal.signal(signal.SIGTERM, ignore_while_cleaning)
        bench.teardown()
        bench.scan_kuryrnet_log()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    results["run"]["seconds"] = round(time.monotonic() - started, 1)
    results["load_average_end"] = list(os.getloadavg())
    results["versions"] = {"kuryrnet": kuryrnet_version(), "kuryr-libnetwork": upstream_versions(),
                           "docker": bench.docker.versions(), "components": report.component_versions(),
                           "neutron_api": bench.neutron.version()}
    results["ratios"] = report.ratios(results)
    results["targets"] = report.targets(results)
    json_path, markdown_path = report.write(results, RESULTS_DIR, stamp)
    print(report.render_markdown(results))
    LOG.info("results: %s and %s", json_path, markdown_path)
    if interrupted:
        return 130
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
