"""Turn a run's results into the Markdown tables (and, with matplotlib, the PNG chart).

``python -m benchmarks.report benchmarks/results/RUN/results.json`` redraws both from a
saved run (:mod:`benchmarks.load` reads it, also as earlier harnesses wrote it). One module
per job: ``tables`` (strategies, engines, phases, sizes), ``targets``, ``details``
(restore-ahead, endurance, short tests, failed runs), ``charts`` (matplotlib, optional).
"""

from __future__ import annotations

from ..records import Results
from ..source import FrozenPlugin
from . import details, tables
from .common import title
from .targets import targets_section

MISSING_MATPLOTLIB = (
    "matplotlib is missing, so no results.png: pip install -e '.[bench]' (or pass --no-chart)"
)


def _plugin_line(plugin: FrozenPlugin | None) -> str:
    if plugin is None:
        return "as imported (not frozen)"
    commit = (plugin.commit or "?")[:12]
    if plugin.origin == "working tree":
        state = {True: "with uncommitted changes", False: "clean", None: "state unknown"}
        return f"working tree at {commit} ({state[plugin.dirty]}), sha256 {plugin.digest}"
    return f"{plugin.origin} = {commit}, sha256 {plugin.digest}"


def _engine_line(results: Results) -> str:
    host = results.meta.host
    parts = []
    for engine in results.engines():
        version = host.version(engine)
        if engine == "docker":
            parts.append(f"Docker {version} (containerd {host.containerd})")
        else:
            parts.append(f"{title(engine)} {version}")
    return ", ".join(parts)


def _header(results: Results) -> list[str]:
    meta, host = results.meta, results.meta.host
    load_after = host.load_after[0] if host.load_after else 0.0
    return [
        f"# pytest-criu benchmark, {meta.mode} mode",
        "",
        f"- date: {meta.started} (run {meta.run_id}, {meta.seconds:.0f} s)",
        f"- command: `{meta.command}`",
        f"- plugin: {_plugin_line(meta.plugin)}",
        f"- machine: {host.cores} cores, Linux {host.kernel}, {_engine_line(results)}, "
        f"CRIU {host.criu}, Python {host.python}; "
        f"load average before {host.load_before[0]:.1f}, after {load_after:.1f}",
        f"- engines: {', '.join(title(e) for e in results.engines())}"
        + "".join(
            f"; {title(engine)} skipped: {reason}"
            for engine, reason in meta.engines_skipped.items()
        ),
        "- shared and noisy: other jobs used the same engines. Strategies (and engines) ran "
        "interleaved (rotated order per round); compare ratios within this run, not absolute "
        "times across runs.",
        "- (a)-(c): seconds each test waited for its reset (`--criu-report`), first test of "
        "each run excluded (it never waits). (d), (e): the timed restore alone.",
        "",
    ]


def markdown(results: Results) -> str:
    """The whole ``results.md``."""
    lines = [
        *_header(results),
        *tables.strategy_section(results),
        *tables.engines_section(results),
        *targets_section(results),
        *tables.phases_section(results),
        *tables.sweep_section(results),
        *details.ahead_section(results),
        *details.flat_section(results),
        *details.short_section(results),
        *details.errors_section(results),
    ]
    return "\n".join(lines) + "\n"
