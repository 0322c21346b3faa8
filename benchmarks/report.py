"""Machine facts, ratios, targets and the Markdown rendering of one run's results."""

from __future__ import annotations

import importlib.metadata
import json
import os
import pathlib
import platform
import subprocess
import sys

from benchmarks.stack import STACK_DIR
from benchmarks.stats import ratio

KIND_TITLES = {
    "kuryrnet-pool": "kuryrnet, port pools on",
    "kuryrnet-nopool": "kuryrnet, port pools off",
    "kuryr-libnetwork": "kuryr-libnetwork 18.0.0",
    "bridge": "Docker bridge driver",
    "none": "--network none",
}
MIB = 1024 * 1024


def machine_info() -> dict:
    """Return the CPU, memory, kernel, OS and load of this machine."""
    info: dict = {"cores": os.cpu_count(), "kernel": platform.release(), "machine": platform.machine()}
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
        for line in pathlib.Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                info["os"] = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    info["load_average"] = list(os.getloadavg())
    return info


def _first_line(command: list[str]) -> str:
    try:
        output = subprocess.run(command, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"
    return output.strip().splitlines()[0] if output.strip() else "unknown"


def component_versions() -> dict:
    """Return the versions of Neutron, Open vSwitch and OVN on the stack."""
    neutron_python = STACK_DIR / "venv-neutron" / "bin" / "python"
    neutron = _first_line([str(neutron_python), "-c",
                           "import importlib.metadata as m; print(m.version('neutron'))"])
    return {"neutron": neutron,
            "openvswitch": _first_line(["ovs-vsctl", "--version"]),
            "ovn": _first_line(["ovn-controller", "--version"]),
            "aiohttp (kuryrnet)": importlib.metadata.version("aiohttp")}


# -- derived figures ---------------------------------------------------------------------

def _get(results: dict, *path, default=None):
    value = results
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return default
        value = value[key]
    return value


def ratios(results: dict) -> dict:
    """Return kuryrnet/kuryr-libnetwork and kuryrnet/bridge ratios of the main figures."""
    answer = {}
    for kind in ("kuryrnet-pool", "kuryrnet-nopool"):
        for reference in ("kuryr-libnetwork", "bridge"):
            figures = {
                "docker_run_median": ratio(_get(results, "docker_run", kind, "median"),
                                           _get(results, "docker_run", reference, "median")),
                "docker_run_p90": ratio(_get(results, "docker_run", kind, "p90"),
                                        _get(results, "docker_run", reference, "p90")),
                "burst_total": ratio(_get(results, "burst", kind, "total_seconds"),
                                     _get(results, "burst", reference, "total_seconds")),
                "network_create_plus_rm_median": ratio(
                    _get(results, "network_create_rm", kind, "create_plus_rm", "median"),
                    _get(results, "network_create_rm", reference, "create_plus_rm", "median")),
            }
            if reference == "kuryr-libnetwork":
                figures["neutron_requests_per_lifecycle"] = ratio(
                    _get(results, "container_requests", kind, "per_lifecycle"),
                    _get(results, "container_requests", reference, "per_lifecycle"))
            answer[f"{kind}/{reference}"] = figures
    return answer


def growth_ratio(results: dict, kind: str) -> float | None:
    points = results.get("growth") or {}
    if len(points) < 2:
        return None
    small, large = sorted(points, key=int)[0], sorted(points, key=int)[-1]
    return ratio(_get(points, large, "docker_run", kind, "median"),
                 _get(points, small, "docker_run", kind, "median"))


def targets(results: dict) -> list[dict]:
    """Compare the run with the project's targets; each row has the figure and whether it is met."""
    rows = []

    def add(target: str, value, met: bool | None, text: str) -> None:
        rows.append({"target": target, "value": value, "met": met if value is not None else None,
                     "text": text if value is not None else "not measured"})

    value = _get(results, "ratios", "kuryrnet-nopool/kuryr-libnetwork", "docker_run_median")
    add("pools off: `docker run` median at most 0.5x kuryr-libnetwork's", value,
        value is not None and value <= 0.5, f"{value:.2f}x" if value is not None else "")
    value = _get(results, "ratios", "kuryrnet-pool/bridge", "docker_run_median")
    add("pools on: `docker run` median within 1.15x of the bridge driver's", value,
        value is not None and value <= 1.15, f"{value:.2f}x" if value is not None else "")
    value = _get(results, "ratios", "kuryrnet-pool/bridge", "burst_total")
    burst = results.get("settings", {}).get("burst")
    add(f"pools on: burst of {burst} within 1.25x of the bridge driver's", value,
        value is not None and value <= 1.25, f"{value:.2f}x" if value is not None else "")
    for kind in ("kuryrnet-pool", "kuryrnet-nopool"):
        value = _get(results, "container_requests", kind, "per_lifecycle")
        add(f"{KIND_TITLES[kind]}: at most 2 Neutron requests per container lifecycle", value,
            value is not None and value <= 2, f"{value:.1f}" if value is not None else "")
    value = _get(results, "container_requests", "kuryrnet-pool", "start_path")
    add("pools on: no Neutron request on the start path (up to the end of Join)", value,
        value is not None and value == 0, f"{value:.1f}" if value is not None else "")
    for step in ("create", "remove"):
        values = [_get(results, "network_requests", kind, step) for kind in ("kuryrnet-pool", "kuryrnet-nopool")]
        values = [v for v in values if v is not None]
        value = max(values) if values else None
        add(f"at most 5 Neutron requests per network {step}", value,
            value is not None and value <= 5, f"{value:.1f}" if value is not None else "")
    values = [_get(results, "network_create_rm", kind, "create", "median")
              for kind in ("kuryrnet-pool", "kuryrnet-nopool")]
    values = [v for v in values if v is not None]
    value = max(values) if values else None
    add("`docker network create` median under 0.4 s", value, value is not None and value < 0.4,
        f"{value:.3f} s" if value is not None else "")
    for kind in ("kuryrnet-pool", "kuryrnet-nopool"):
        value = growth_ratio(results, kind)
        bridge = growth_ratio(results, "bridge")
        text = f"{value:.2f}x (bridge driver: {bridge:.2f}x)" if value and bridge else (
            f"{value:.2f}x" if value else "")
        # "Flat" here means: the kuryrnet median grows at most 10% more than
        # the bridge driver's between the two growth points.
        met = value is not None and bridge is not None and value <= bridge * 1.10
        add(f"{KIND_TITLES[kind]}: per-container latency flat with more endpoints", value, met, text)
    memory = _get(results, "daemons", "kuryrnet", "rss_bytes_with_endpoints") or {}
    target_count = str(results.get("settings", {}).get("rss_endpoints", 200))
    value = memory.get(target_count)
    add(f"daemon RSS under 80 MiB with {target_count} endpoints", value,
        value is not None and value < 80 * MIB, f"{value / MIB:.0f} MiB" if value else "")
    value = _get(results, "daemons", "kuryrnet", "start_to_first_request", "median")
    add("daemon start to first request under 1 s", value, value is not None and value < 1.0,
        f"{value:.2f} s" if value is not None else "")
    return rows


# -- Markdown ----------------------------------------------------------------------------

def _seconds(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _number(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _mib(value) -> str:
    return "-" if value is None else f"{value / MIB:.0f} MiB"


def render_markdown(results: dict) -> str:
    settings = results.get("settings", {})
    kinds = [kind for kind in KIND_TITLES if kind in (results.get("docker_run") or {})
             or kind in (results.get("burst") or {})]
    lines = [f"## Run {results['run']['started']}", ""]

    machine = results.get("machine", {})
    versions = results.get("versions", {})
    lines += [
        f"Machine: {machine.get('cpu', '?')}, {machine.get('cores')} cores, "
        f"{machine.get('memory_gib')} GiB, kernel {machine.get('kernel')}, {machine.get('os', '?')}; "
        f"load average at start {', '.join(f'{x:.2f}' for x in machine.get('load_average', []))}, "
        f"at end {', '.join(f'{x:.2f}' for x in results.get('load_average_end', []))}.",
        "",
        f"Versions: kuryrnet {versions.get('kuryrnet', {}).get('commit', '?')[:12]}"
        f"{' (with uncommitted changes)' if versions.get('kuryrnet', {}).get('dirty') else ''}; "
        f"kuryr-libnetwork {versions.get('kuryr-libnetwork', {}).get('kuryr-libnetwork', '?')} with "
        f"kuryr-lib {versions.get('kuryr-libnetwork', {}).get('kuryr-lib', '?')} and pyroute2 "
        f"{versions.get('kuryr-libnetwork', {}).get('pyroute2', '?')}; "
        f"Docker {versions.get('docker', {}).get('Server', {}).get('Version', '?')}; "
        f"Neutron {versions.get('components', {}).get('neutron', '?')} (ML2/OVN); "
        f"{versions.get('components', {}).get('openvswitch', '?')}; "
        f"{versions.get('components', {}).get('ovn', '?')}.",
        "",
        f"Settings: {settings.get('runs')} interleaved runs per network, burst of "
        f"{settings.get('burst')}, {settings.get('net_runs')} network create + rm pairs, "
        f"{settings.get('count_runs')} counted lifecycles, growth at "
        f"{settings.get('growth_small')} and {settings.get('endpoints')} endpoints. "
        f"Run time {results['run'].get('seconds', 0) / 60:.1f} min. The Neutron proxy adds "
        f"{_number(_get(results, 'proxy_overhead', 'added_ms'), 2)} ms to a small request.",
        "",
        "| network | `docker run --rm` median s | p90 s | failed runs | Neutron requests per "
        "lifecycle | burst total s (failed) | network create + rm median s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for kind in kinds:
        run = _get(results, "docker_run", kind) or {}
        requests = _get(results, "container_requests", kind)
        burst = _get(results, "burst", kind) or {}
        network = _get(results, "network_create_rm", kind, "create_plus_rm", "median")
        request_text = "-" if requests is None else (
            f"{requests['per_lifecycle']:.1f} ({requests['during_run']:.1f} during the run)")
        burst_text = "-" if not burst else f"{burst['total_seconds']:.2f} ({burst['failures']})"
        lines.append(f"| {KIND_TITLES[kind]} | {_seconds(run.get('median'))} | {_seconds(run.get('p90'))} "
                     f"| {run.get('failures', '-')} | {request_text} | {burst_text} | {_seconds(network)} |")

    pool = results.get("docker_run_pool")
    if pool:
        lines += ["", f"kuryrnet's port pools during the timed runs: {pool['hits']} hits, "
                      f"{pool['misses']} misses."]

    lines += ["", "Ratios (same run):", "",
              "| ratio | run median | run p90 | burst total | network create + rm | Neutron requests |",
              "| --- | --- | --- | --- | --- | --- |"]
    for name, figures in (results.get("ratios") or {}).items():
        if all(value is None for value in figures.values()):
            continue
        kind, reference = name.split("/")
        lines.append(f"| {KIND_TITLES[kind]} / {KIND_TITLES[reference]} "
                     f"| {_ratio(figures.get('docker_run_median'))} | {_ratio(figures.get('docker_run_p90'))} "
                     f"| {_ratio(figures.get('burst_total'))} "
                     f"| {_ratio(figures.get('network_create_plus_rm_median'))} "
                     f"| {_ratio(figures.get('neutron_requests_per_lifecycle'))} |")

    lines += ["", "Networks:", "",
              "| network | create median s | rm median s | Neutron requests per create | per remove |",
              "| --- | --- | --- | --- | --- |"]
    for kind in kinds:
        figures = _get(results, "network_create_rm", kind)
        if not figures:
            continue
        requests = _get(results, "network_requests", kind) or {}
        lines.append(f"| {KIND_TITLES[kind]} | {_seconds(figures['create']['median'])} "
                     f"| {_seconds(figures['rm']['median'])} | {_number(requests.get('create'))} "
                     f"| {_number(requests.get('remove'))} |")

    lines += ["", "Daemons:", "",
              "| daemon | start to first request, median s | RSS idle | RSS with endpoints |",
              "| --- | --- | --- | --- |"]
    for name in ("kuryrnet", "kuryr-libnetwork"):
        daemon = _get(results, "daemons", name)
        if not daemon:
            continue
        memory = daemon.get("rss_bytes_with_endpoints") or {}
        memory_text = ", ".join(f"{_mib(value)} with {count}" for count, value in memory.items()) or (
            f"{_mib(daemon.get('rss_bytes_after_runs'))} after the runs"
            if daemon.get("rss_bytes_after_runs") else "-")
        lines.append(f"| {name} | {_seconds(_get(daemon, 'start_to_first_request', 'median'))} "
                     f"| {_mib(daemon.get('rss_idle_bytes'))} | {memory_text} |")

    growth = results.get("growth") or {}
    if growth:
        points = sorted(growth, key=int)
        lines += ["", "Growth (`docker run --rm` median s, and Neutron requests per lifecycle, "
                      "with existing endpoints on the host):", "",
                  "| network | " + " | ".join(f"{point} endpoints" for point in points) + " | ratio |",
                  "| --- |" + " --- |" * (len(points) + 1)]
        for kind in kinds:
            cells = []
            for point in points:
                median = _get(growth, point, "docker_run", kind, "median")
                requests = _get(growth, point, "requests", kind, "per_lifecycle")
                cells.append(_seconds(median) + ("" if requests is None else f" ({requests:.1f} req)"))
            lines.append(f"| {KIND_TITLES[kind]} | " + " | ".join(cells)
                         + f" | {_ratio(growth_ratio(results, kind))} |")

    lines += ["", "Neutron requests per container lifecycle, by request:", ""]
    for kind in NEUTRON_ORDER:
        requests = _get(results, "container_requests", kind)
        if not requests:
            continue
        parts = ", ".join(f"{key} x{count:g}" for key, count in requests["breakdown"].items())
        start_path = requests.get("start_path")
        start_text = "" if start_path is None else f"; {start_path:.1f} before Join returned"
        neutron_ms = requests["neutron_seconds_during_run"] * 1000
        lines.append(f"- {KIND_TITLES[kind]} ({requests['per_lifecycle']:.1f}{start_text}; "
                     f"the requests that started during a run of {requests['run_seconds']:.2f} s "
                     f"took {neutron_ms:.0f} ms added up, overlapping ones included): "
                     f"{parts or 'none'}")

    profile = results.get("profile") or {}
    if profile:
        lines += ["", "kuryrnet plugin calls during the counted lifecycles (median ms, from the "
                      "daemon's log):", ""]
        for kind, calls in profile.items():
            parts = ", ".join(f"{name} {values['median_ms']:g}" for name, values in calls.items())
            lines.append(f"- {KIND_TITLES[kind]}: {parts or 'no calls logged'}")

    lines += ["", "Targets:", "", "| target | this run | met |", "| --- | --- | --- |"]
    for row in results.get("targets", []):
        met = {True: "yes", False: "no", None: "-"}[row["met"]]
        lines.append(f"| {row['target']} | {row['text']} | {met} |")

    errors = results.get("errors") or []
    warnings = results.get("warnings") or []
    leftovers = _get(results, "cleanup", "neutron_leftovers") or []
    if errors or warnings or leftovers:
        lines += ["", "Problems:", ""]
        lines += [f"- {error['phase']}: {error['message']}" for error in errors]
        lines += [f"- warning: {warning}" for warning in sorted(set(warnings))]
        lines += [f"- left behind and removed by the benchmark: {line}" for line in leftovers]
    return "\n".join(lines) + "\n"


NEUTRON_ORDER = ("kuryrnet-pool", "kuryrnet-nopool", "kuryr-libnetwork")


def write(results: dict, directory: pathlib.Path, stamp: str) -> tuple[pathlib.Path, pathlib.Path]:
    """Write <stamp>.json and <stamp>.md into `directory`; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / f"{stamp}.json"
    markdown_path = directory / f"{stamp}.md"
    json_path.write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n")
    markdown_path.write_text(render_markdown(results))
    return json_path, markdown_path


def main(argv: list[str]) -> int:
    """Print the Markdown of saved results: python -m benchmarks.report RESULTS.json."""
    if len(argv) != 1:
        print("usage: python -m benchmarks.report benchmarks/results/<timestamp>.json", file=sys.stderr)
        return 2
    results = json.loads(pathlib.Path(argv[0]).read_text())
    results["ratios"] = ratios(results)
    results["targets"] = targets(results)
    print(render_markdown(results), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
