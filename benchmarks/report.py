"""Turn ``results.json`` into the Markdown tables and the PNG chart.

``python -m benchmarks.report benchmarks/results/RUN/results.json`` redraws both from a
saved run. Every workload, restore-ahead and endurance result carries its engine (results
from before ``--engines`` have none: they are Docker's).
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import short
from .stats import bootstrap_ratio, linear_fit, median, milliseconds, p95, ratio, seconds

LABELS = {
    "fresh": "(a) plugin, fresh restore",
    "fresh-own": "(a-own) (a) with --criu-network-holder=off: a namespace per restore",
    "fresh-stable": "(a-stable) (a) with --criu-network-holder=stable: one holder, same address",
    "inplace": "(b) plugin, in-place restore",
    "recreate": "(c) baseline: new container + ready + prepare",
    "engine": "(d) engine floor: start?checkpoint= only",
    "engine-rm": "(d') (d) while the previous container is removed",
    "criu": "(e) physical floor: criu restore, plain process",
}
SHORT = {
    "fresh": "a",
    "fresh-own": "a-own",
    "fresh-stable": "a-stable",
    "inplace": "b",
    "recreate": "c",
    "engine": "d",
    "engine-rm": "d'",
    "criu": "e",
}
FRESH_PHASES = (
    "staged",
    "holder",
    "create",
    "place checkpoint",
    "engine restore",
    "inspect",
    "other (plugin)",
)
INPLACE_PHASES = ("stop", "engine restore", "inspect", "other (plugin)")
OVERHEAD_TARGET = 0.10
SPEEDUP_TARGET = 5.0
AHEAD_TARGET = 0.050
TARGET_WORKLOADS = ("pyservice", "mariadb")
ENGINE_TITLES = {"docker": "Docker", "podman": "Podman"}
#: What the engine floor (d) times, per engine.
FLOOR_CALLS = {"docker": "start?checkpoint=", "podman": "libpod import/restore"}
#: The strategies whose medians the "Podman vs Docker" table compares ((e) uses no engine).
ENGINE_COMPARED = ("fresh", "inplace", "recreate", "engine", "engine-rm")


def engine_of(item: dict[str, Any]) -> str:
    """The engine a workload, restore-ahead or endurance result ran on."""
    return str(item.get("engine") or "docker")


def engines_in(data: dict[str, Any]) -> list[str]:
    """The engines of a run, in the order they were given."""
    named = (data.get("meta") or {}).get("engines")
    found = [engine_of(item) for item in [*data["workloads"], *data["ahead"], *flats(data)]]
    return list(dict.fromkeys([*(named or []), *found])) or ["docker"]


def flats(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The endurance runs: a list (one per engine), or one object or null before engines."""
    flat = data.get("flat")
    if not flat:
        return []
    return [flat] if isinstance(flat, dict) else list(flat)


def label(strategy: str, engine: str = "docker") -> str:
    """A strategy's name in the tables; the engine floor names its engine's call."""
    if strategy == "engine":
        return f"(d) engine floor: {FLOOR_CALLS.get(engine, 'restore call')} only"
    return LABELS[strategy]


def _title(engine: str) -> str:
    return ENGINE_TITLES.get(engine, engine)


def _by_name(data: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Workload results by workload name, then by engine."""
    grouped: dict[str, dict[str, dict[str, Any]]] = {}
    for workload in data["workloads"]:
        grouped.setdefault(workload["name"], {})[engine_of(workload)] = workload
    return grouped


def _mb(value: int | None) -> str:
    return "-" if not value else f"{value / 1e6:.1f}"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.0f}%"


def _plugin_line(plugin: dict[str, Any]) -> str:
    if plugin.get("origin") in (None, "not frozen"):
        return "as imported (not frozen)"
    commit = (plugin.get("commit") or "?")[:12]
    if plugin["origin"] == "working tree":
        state = {True: "with uncommitted changes", False: "clean", None: "state unknown"}
        return f"working tree at {commit} ({state[plugin.get('dirty')]}), sha256 {plugin['digest']}"
    return f"{plugin['origin']} = {commit}, sha256 {plugin['digest']}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _series(workload: dict[str, Any], strategy: str) -> dict[str, Any]:
    series: dict[str, Any] = workload["series"].get(strategy) or {}
    return series


def _samples(workload: dict[str, Any], strategy: str) -> list[float]:
    samples: list[float] = _series(workload, strategy).get("samples") or []
    return samples


def _round_ratios(top: dict[str, Any], bottom: dict[str, Any]) -> list[float]:
    """Per-round ratio of medians: each round's two batches ran minutes apart at most."""
    ratios = []
    for upper, lower in zip(top.get("rounds") or [], bottom.get("rounds") or [], strict=False):
        value = ratio(median(upper), median(lower))
        if value is not None:
            ratios.append(value)
    return ratios


def _verdict(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "**missed**")


# -- Markdown -----------------------------------------------------------------------------


def _engine_line(data: dict[str, Any]) -> str:
    host = data["meta"]["host"]
    parts = []
    for engine in engines_in(data):
        version = host.get(engine)
        if engine == "docker":
            parts.append(f"Docker {version} (containerd {host.get('containerd')})")
        else:
            parts.append(f"{_title(engine)} {version}")
    return ", ".join(parts)


def markdown(data: dict[str, Any]) -> str:
    meta = data["meta"]
    host = meta["host"]
    engines = engines_in(data)
    lines = [
        f"# pytest-criu benchmark, {meta['mode']} mode",
        "",
        f"- date: {meta['started']} (run {meta['run_id']}, {meta.get('seconds', 0):.0f} s)",
        f"- command: `{meta['command']}`",
        f"- plugin: {_plugin_line(meta.get('plugin') or {})}",
        f"- machine: {host['cores']} cores, Linux {host['kernel']}, {_engine_line(data)}, "
        f"CRIU {host['criu']}, Python {host['python']}; "
        f"load average before {host['load_before'][0]:.1f}, after "
        f"{host.get('load_after', [0.0])[0]:.1f}",
        f"- engines: {', '.join(_title(e) for e in engines)}"
        + "".join(
            f"; {_title(engine)} skipped: {reason}"
            for engine, reason in (meta.get("engines_skipped") or {}).items()
        ),
        "- shared and noisy: other jobs used the same engines. Strategies (and engines) ran "
        "interleaved (rotated order per round); compare ratios within this run, not absolute "
        "times across runs.",
        "- (a)-(c): seconds each test waited for its reset (`--criu-report`), first test of "
        "each run excluded (it never waits). (d), (e): the timed restore alone.",
        "",
    ]
    lines += _strategy_section(data)
    lines += _engines_section(data)
    lines += _targets_section(data)
    lines += _phases_section(data)
    lines += _sweep_section(data)
    lines += _ahead_section(data)
    lines += _flat_section(data)
    lines += short.section(data.get("short") or [])
    lines += _errors_section(data)
    return "\n".join(lines) + "\n"


def _strategy_section(data: dict[str, Any]) -> list[str]:
    if not data["workloads"]:
        return []
    rows = []
    for workload in data["workloads"]:
        baseline = median(_samples(workload, "recreate"))
        floor = median(_samples(workload, "engine"))
        engine = engine_of(workload)
        for strategy in LABELS:
            if strategy not in workload["series"]:
                continue
            name = label(strategy, engine)
            series = _series(workload, strategy)
            if series.get("skipped"):
                rows.append(
                    [workload["name"], engine, _mb(workload["checkpoint_bytes"]), name, "0"]
                    + ["-"] * 5
                    + [series["skipped"]]
                )
                continue
            samples = _samples(workload, strategy)
            middle = median(samples)
            speedup = ratio(baseline, middle)
            rows.append(
                [
                    workload["name"],
                    engine,
                    _mb(workload["checkpoint_bytes"]),
                    name,
                    str(len(samples)),
                    seconds(middle),
                    seconds(p95(samples)),
                    _times(ratio(middle, baseline)),
                    _times(speedup) if strategy != "recreate" else "1.00x",
                    _times(ratio(middle, floor)),
                    f"{len(series.get('errors') or [])} failed runs"
                    if series.get("errors")
                    else "",
                ]
            )
    header = [
        "workload",
        "engine",
        "ckpt MB",
        "strategy",
        "n",
        "median s",
        "p95 s",
        "÷ baseline (c)",
        "speed-up vs (c)",
        "÷ engine floor (d)",
        "notes",
    ]
    notes = []
    if "podman" in engines_in(data):
        notes.append(
            "`ckpt MB`: the checkpoint the restores read (Docker: the checkpoint directory; "
            "Podman: the exported archive, which also holds the container's file changes)."
        )
    if len(engines_in(data)) > 1:
        notes.append(
            "Each row's ratios are within its engine: (c) and (d) are that engine's. (e) uses no "
            "engine and is measured once per workload."
        )
    if notes:
        notes.append("")
    return ["## Per-test reset by strategy", "", *_table(header, rows), "", *notes]


def _engines_section(data: dict[str, Any]) -> list[str]:
    """Per engine: the fresh reset against its baseline; then Podman (or any) vs Docker."""
    engines = engines_in(data)
    if len(engines) < 2 or not data["workloads"]:
        return []
    rows = []
    for name, by_engine in _by_name(data).items():
        for engine in engines:
            workload = by_engine.get(engine)
            if workload is None:
                continue
            a, c = _samples(workload, "fresh"), _samples(workload, "recreate")
            d = _samples(workload, "engine")
            rows.append(
                [
                    name,
                    engine,
                    str(len(a)),
                    seconds(median(a)),
                    seconds(p95(a)),
                    seconds(median(c)),
                    seconds(p95(c)),
                    _times(ratio(median(a), median(c))),
                    _times(ratio(median(c), median(a))),
                    seconds(median(d)),
                    _percent(None if not (a and d) else (ratio(median(a), median(d)) or 0) - 1),
                ]
            )
    lines = [
        "## Engines side by side",
        "",
        "The fresh reset (a) against each engine's own recreate baseline (c) and engine floor "
        "(d), per workload and engine:",
        "",
        *_table(
            [
                "workload",
                "engine",
                "n (a)",
                "(a) median s",
                "(a) p95 s",
                "(c) median s",
                "(c) p95 s",
                "(a) / (c)",
                "speed-up (c) / (a)",
                "(d) median s",
                "(a) over (d)",
            ],
            rows,
        ),
        "",
    ]
    reference = engines[0]
    for other in engines[1:]:
        lines += _engine_vs(data, other, reference)
    return lines


def _engine_vs(data: dict[str, Any], other: str, reference: str) -> list[str]:
    """The ratio of medians ``other`` / ``reference`` per strategy and workload."""
    rows = []
    for name, by_engine in _by_name(data).items():
        mine, theirs = by_engine.get(other), by_engine.get(reference)
        if mine is None or theirs is None:
            continue
        for strategy in ENGINE_COMPARED:
            top, bottom = _series(mine, strategy), _series(theirs, strategy)
            upper, lower = top.get("samples") or [], bottom.get("samples") or []
            if not upper and not lower:
                continue
            interval = bootstrap_ratio(upper, lower)
            rows.append(
                [
                    name,
                    SHORT[strategy],
                    seconds(median(lower)),
                    seconds(median(upper)),
                    _times(ratio(median(upper), median(lower))),
                    "-" if interval is None else f"{_times(interval[0])} .. {_times(interval[1])}",
                    ", ".join(_times(x) for x in _round_ratios(top, bottom)) or "-",
                ]
            )
    if not rows:
        return []
    return [
        f"## {_title(other)} vs {_title(reference)}",
        "",
        f"Ratio of medians, {_title(other)} / {_title(reference)}, per strategy (below 1: "
        f"{_title(other)} is faster). The two engines' batches of a strategy ran back to back "
        f"in every round; (d) is each engine's own floor call ({FLOOR_CALLS.get(reference, '?')} "
        f"vs {FLOOR_CALLS.get(other, '?')}).",
        "",
        *_table(
            [
                "workload",
                "strategy",
                f"{_title(reference)} median s",
                f"{_title(other)} median s",
                f"{_title(other)} / {_title(reference)}",
                "95% bootstrap",
                "per round",
            ],
            rows,
        ),
        "",
    ]


def targets(data: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, computed from the results."""
    overhead = []
    speedups = []
    for workload in data["workloads"]:
        fresh, engine = _series(workload, "fresh"), _series(workload, "engine")
        a, d = fresh.get("samples") or [], engine.get("samples") or []
        if a and d:
            interval = bootstrap_ratio(a, d)
            round_ratios = _round_ratios(fresh, engine)
            value = ratio(median(a), median(d))
            phases = fresh.get("phases") or {}
            own = [
                median(phases.get(phase) or [])
                for phase in FRESH_PHASES
                if phase != "engine restore"
            ]
            overhead.append(
                {
                    "workload": workload["name"],
                    "engine_name": engine_of(workload),
                    "a": median(a),
                    "d": median(d),
                    "d_rm": median(_samples(workload, "engine-rm")),
                    "a_engine": median(phases.get("engine restore") or []),
                    "own_steps": sum(x for x in own if x is not None),
                    "overhead": None if value is None else value - 1,
                    "interval": None if interval is None else [x - 1 for x in interval],
                    "rounds": [x - 1 for x in round_ratios],
                    "gap_overhead": (
                        None
                        if not fresh.get("gaps")
                        else (ratio(median(fresh["gaps"]), median(d)) or 0) - 1
                    ),
                    "met": None if value is None else value - 1 <= OVERHEAD_TARGET,
                }
            )
        c = _samples(workload, "recreate")
        if a and c:
            interval = bootstrap_ratio(c, a)
            value = ratio(median(c), median(a))
            speedups.append(
                {
                    "workload": workload["name"],
                    "engine_name": engine_of(workload),
                    "a": median(a),
                    "c": median(c),
                    "speedup": value,
                    "interval": interval,
                    "met": None if value is None else value >= SPEEDUP_TARGET,
                    "targeted": workload["name"] in TARGET_WORKLOADS,
                }
            )
    ahead = []
    for result in data["ahead"]:
        with_ahead = result["series"]["ahead"]["samples"]
        without = result["series"]["fresh"]["samples"]
        middle = median(with_ahead)
        ahead.append(
            {
                "workload": result["workload"],
                "engine_name": engine_of(result),
                "ahead": middle,
                "ahead_p95": p95(with_ahead),
                "steady": median(result["steady"]["ahead"]),
                "steady_p95": p95(result["steady"]["ahead"]),
                "fresh": median(without),
                "untouched": result["unique_containers"]
                and not result["changed_under_test"]
                and not result["probes_failed"],
                "met": None if middle is None else middle <= AHEAD_TARGET,
            }
        )
    flat = []
    for run in flats(data):
        samples = [s for s in run["samples"] if not s.get("after_session")]
        if not samples:
            continue
        first, last = samples[0], samples[-1]
        control = [s for s in run.get("control_samples") or [] if not s.get("after_session")]
        flat.append(
            {
                "engine": engine_of(run),
                "tests": run["tests"],
                "control_rss_kib": [control[0]["rss_kib"], control[-1]["rss_kib"]]
                if control
                else None,
                "first_test": first["test"],
                "last_test": last["test"],
                "rss_kib": [first["rss_kib"], last["rss_kib"]],
                "threads": [first["threads"], last["threads"]],
                "fds": [first["fds"], last["fds"]],
                "containers_max": max((s.get("containers", 0) for s in samples), default=0),
                "leftover_containers": run["leftover_containers"],
            }
        )
    return {
        "overhead": overhead,
        "speedup": speedups,
        "ahead": ahead,
        "flat": flat,
    }


def _targets_section(data: dict[str, Any]) -> list[str]:
    found = targets(data)
    lines = ["## Targets (measured, not asserted)", ""]
    rows = []
    for entry in found["overhead"]:
        interval = entry["interval"]
        spread = entry["rounds"]
        rows.append(
            [
                entry["workload"],
                entry["engine_name"],
                seconds(entry["a"]),
                seconds(entry["d"]),
                seconds(entry["d_rm"]),
                milliseconds(entry["own_steps"]),
                milliseconds(entry["a_engine"]),
                _percent(entry["overhead"]),
                "-" if interval is None else f"{_percent(interval[0])} .. {_percent(interval[1])}",
                ", ".join(_percent(x) for x in spread) or "-",
                _percent(entry["gap_overhead"]),
                _verdict(entry["met"]),
            ]
        )
    if rows:
        lines += [
            f"Plugin overhead over the engine floor, (a) vs (d) at the median "
            f"(target <= {OVERHEAD_TARGET:.0%}). `own steps` = the median create + place + "
            "inspect + other of (a); `(a) engine restore` = the same Engine API call as (d), timed "
            "inside the plugin, where the previous test's container is being removed meanwhile, "
            "as in (d')."
            + (
                " On Podman the one restore call also creates the container: there are no "
                "create and place steps."
                if "podman" in engines_in(data)
                else ""
            ),
            "",
            *_table(
                [
                    "workload",
                    "engine",
                    "(a) median s",
                    "(d) median s",
                    "(d') median s",
                    "(a) own steps ms",
                    "(a) engine restore ms",
                    "overhead",
                    "95% bootstrap",
                    "per round",
                    "overhead of the test-to-test gap",
                    "target",
                ],
                rows,
            ),
            "",
        ]
    rows = [
        [
            entry["workload"] + (" (target)" if entry["targeted"] else ""),
            entry["engine_name"],
            seconds(entry["c"]),
            seconds(entry["a"]),
            _times(entry["speedup"]),
            "-"
            if entry["interval"] is None
            else f"{_times(entry['interval'][0])} .. {_times(entry['interval'][1])}",
            _verdict(entry["met"]) if entry["targeted"] else ("yes" if entry["met"] else "no"),
        ]
        for entry in found["speedup"]
    ]
    if rows:
        lines += [
            f"Per-test reset vs the baseline, (c) / (a) at the median (target >= "
            f"{SPEEDUP_TARGET:.0f}x on {' and '.join(TARGET_WORKLOADS)}):",
            "",
            *_table(
                [
                    "workload",
                    "engine",
                    "(c) median s",
                    "(a) median s",
                    "speed-up",
                    "95% bootstrap",
                    "target",
                ],
                rows,
            ),
            "",
        ]
    rows = [
        [
            entry["workload"],
            entry["engine_name"],
            milliseconds(entry["fresh"]),
            milliseconds(entry["ahead"]),
            milliseconds(entry["ahead_p95"]),
            milliseconds(entry["steady"]),
            "yes" if entry["untouched"] else "**NO**",
            _verdict(entry["met"]),
        ]
        for entry in found["ahead"]
    ]
    if rows:
        lines += [
            f"Restore-ahead, tests longer than a restore: median visible reset "
            f"(target <= {AHEAD_TARGET * 1000:.0f} ms):",
            "",
            *_table(
                [
                    "workload",
                    "engine",
                    "without ahead, median ms",
                    "with ahead, median ms",
                    "with ahead, p95 ms",
                    "with ahead, 3rd test on, median ms",
                    "containers untouched",
                    "target",
                ],
                rows,
            ),
            "",
        ]
    for flat in found["flat"]:
        control = flat["control_rss_kib"]
        control_text = (
            ""
            if not control
            else f" The same number of tests without a warm container (pytest alone): RSS "
            f"{control[0] / 1024:.1f} -> {control[1] / 1024:.1f} MiB."
        )
        lines += [
            f"Endurance on {_title(flat['engine'])}, {flat['tests']} tests on the tiny image "
            f"(pytest process, sampled "
            f"inside tests {flat['first_test']} and {flat['last_test']}): RSS "
            f"{flat['rss_kib'][0] / 1024:.1f} -> {flat['rss_kib'][1] / 1024:.1f} MiB, threads "
            f"{flat['threads'][0]} -> {flat['threads'][1]}, open fds {flat['fds'][0]} -> "
            f"{flat['fds'][1]}, at most {flat['containers_max']} containers of the run at once, "
            f"{flat['leftover_containers']} left after the run.{control_text}",
            "",
        ]
    return lines if len(lines) > 2 else []


def _phase_medians(series: dict[str, Any], phases: Sequence[str]) -> list[str]:
    values = series.get("phases") or {}
    return [milliseconds(median(values.get(phase) or [])) for phase in phases]


def _phases_section(data: dict[str, Any]) -> list[str]:
    if not data["workloads"]:
        return []
    rows = []
    for workload in data["workloads"]:
        fresh = _series(workload, "fresh")
        engine = _series(workload, "engine")
        where = [workload["name"], engine_of(workload)]
        rows.append(
            [
                *where,
                "(a) fresh",
                milliseconds(median(fresh.get("samples") or [])),
                *_phase_medians(fresh, FRESH_PHASES),
                milliseconds(median(fresh.get("criu") or [])),
            ]
        )
        rows.append(
            [
                *where,
                "(d) engine floor",
                milliseconds(median(engine.get("samples") or [])),
                "-",
                "-",
                *_phase_medians(engine, ("create", "place checkpoint")),
                milliseconds(median(engine.get("samples") or [])),
                *_phase_medians(engine, ("inspect",)),
                "-",
                milliseconds(median(engine.get("criu") or [])),
            ]
        )
        concurrent = _series(workload, "engine-rm")
        if concurrent.get("samples"):
            rows.append(
                [
                    *where,
                    "(d') engine floor, previous container removed meanwhile",
                    milliseconds(median(concurrent["samples"])),
                    "-",
                    "-",
                    *_phase_medians(concurrent, ("create", "place checkpoint")),
                    milliseconds(median(concurrent["samples"])),
                    *_phase_medians(concurrent, ("inspect",)),
                    "-",
                    milliseconds(median(concurrent.get("criu") or [])),
                ]
            )
        inplace = _series(workload, "inplace")
        if inplace.get("samples"):
            stop, restore, inspect, other = _phase_medians(inplace, INPLACE_PHASES)
            rows.append(
                [
                    *where,
                    f"(b) inplace (stop {stop})",
                    milliseconds(median(inplace["samples"])),
                    "-",
                    "-",
                    "-",
                    "-",
                    restore,
                    inspect,
                    other,
                    milliseconds(median(inplace.get("criu") or [])),
                ]
            )
    header = [
        "workload",
        "engine",
        "path",
        "reset ms",
        "staged (wait)",
        "holder",
        "create",
        "place checkpoint",
        "engine restore",
        "inspect",
        "other (plugin)",
        "CRIU itself (of engine restore)",
    ]
    text = [
        "Engine restore is one API call. Docker's is `start?checkpoint=`: dockerd uploads the "
        "checkpoint into containerd's content store, containerd and runc set the container "
        "up, CRIU restores the processes (its own time from its restore.log in the last "
        "column). For (d) the create/place/inspect steps ran untimed around the timed call. "
        "On Docker the plugin stages the next restore's container (holder, create, place) "
        "after each restore, while the test runs: `staged (wait)` is how long a reset waited "
        "for that; `holder`, `create` and `place checkpoint` appear only when a container "
        "had to be staged during the reset. `other` is the reset's time outside the restore "
        "phases (damage check, bookkeeping, callbacks)."
    ]
    if "podman" in engines_in(data):
        text.append(
            "Podman's is `/libpod/containers/import/restore`: it creates the container from the "
            "archive's config, unpacks the archive (CRIU images and file changes) and restores "
            "it, so its create and place columns are empty. Podman deletes CRIU's log after a "
            "successful restore: its CRIU column is the `restore_time` of the CRIU statistics "
            "the floor's call asks for (`printStats`), for (d) only. That is CRIU's restore "
            "stage alone, without the start-up and final steps the Docker figure (the log's "
            "last timestamp) includes: compare the CRIU columns within an engine, not across."
        )
    return [
        "## Where one restore's time goes (medians per restore, ms)",
        "",
        " ".join(text),
        "",
        *_table(header, rows),
        "",
    ]


def sweep(data: dict[str, Any]) -> list[dict[str, Any]]:
    points = []
    for workload in data["workloads"]:
        if not workload["checkpoint_bytes"]:
            continue
        points.append(
            {
                "workload": workload["name"],
                "engine_name": engine_of(workload),
                "mb": workload["checkpoint_bytes"] / 1e6,
                "physical_mb": (workload["physical_bytes"] or 0) / 1e6,
                **{
                    strategy: median(_samples(workload, strategy))
                    for strategy in ("fresh", "inplace", "engine", "criu", "recreate")
                },
                "criu_in_engine": median(_series(workload, "engine").get("criu") or []),
            }
        )
    return sorted(points, key=lambda point: (str(point["engine_name"]), float(point["mb"])))


def _sweep_section(data: dict[str, Any]) -> list[str]:
    points = sweep(data)
    if not points:
        return []
    rows = [
        [
            point["workload"],
            point["engine_name"],
            f"{point['mb']:.1f}",
            seconds(point["fresh"]),
            seconds(point["inplace"]),
            seconds(point["engine"]),
            seconds(point["criu_in_engine"]),
            seconds(point["criu"]),
            f"{point['physical_mb']:.1f}" if point["physical_mb"] else "-",
        ]
        for point in points
    ]
    fits = []
    for engine in engines_in(data):
        mine = [p for p in points if p["engine_name"] == engine]
        for key, name in (
            ("fresh", "(a)"),
            ("engine", "(d)"),
            ("criu_in_engine", "CRIU in (d)"),
            ("criu", "(e)"),
        ):
            fit = linear_fit([(p["mb"], p[key]) for p in mine if p[key] is not None])
            if fit:
                fits.append(f"{engine} {name} {fit[0] * 1000:.0f} ms + {fit[1] * 1000:.1f} ms/MB")
    return [
        "## Restore time vs checkpoint size (medians, s)",
        "",
        *_table(
            [
                "workload",
                "engine",
                "ckpt MB",
                "(a) fresh",
                "(b) inplace",
                "(d) engine floor",
                "CRIU itself in (d)",
                "(e) plain criu",
                "(e) dump MB",
            ],
            rows,
        ),
        "",
        "Least-squares fits over the workloads: " + ("; ".join(fits) or "too few points") + ".",
        "",
    ]


def _ahead_section(data: dict[str, Any]) -> list[str]:
    lines = []
    for result in data["ahead"]:
        tests = result["tests"]
        lines += [
            f"- {result['workload']} on {_title(engine_of(result))} (tests sleep "
            f"{result['sleep']} s; test body median "
            f"{seconds(median(result.get('test_seconds') or []))} s, a restore made ahead median "
            f"{seconds(median(result.get('background_restores') or []))} s): "
            f"{result['restored_ahead']} containers handed to tests were restored ahead; "
            f"at reset the restore-ahead was already finished {result['ahead_ready']} times, "
            f"still running {result['ahead_pending']} times; {tests} tests checked: "
            f"containers unique {'yes' if result['unique_containers'] else 'NO'}, "
            f"changed under a running test {result['changed_under_test']}, "
            f"probes that found a touched container {result['probes_failed']}.",
        ]
    if not lines:
        return []
    return ["## Restore-ahead details", "", *lines, ""]


def _flat_section(data: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for flat in flats(data):
        if not flat["samples"]:
            continue
        rows = [
            [
                "after the session" if sample.get("after_session") else str(sample["test"]),
                f"{sample['rss_kib'] / 1024:.1f}",
                str(sample["threads"]),
                str(sample["fds"]),
                str(sample.get("containers", "-")),
            ]
            for sample in flat["samples"]
        ]
        if len(rows) > 14:
            rows = [*rows[:4], ["...", "", "", "", ""], *rows[-6:]]
        resets = flat["resets"]
        halves = len(resets) // 2
        trend = ""
        if halves >= 2:
            trend = (
                f" Reset median, first half {seconds(statistics.median(resets[:halves]))} s, "
                f"second half {seconds(statistics.median(resets[halves:]))} s."
            )
        lines += [
            f"## Endurance on {_title(engine_of(flat))}: {flat['tests']} restores in one "
            "pytest process",
            "",
            *_table(["test", "RSS MiB", "threads", "open fds", "containers of the run"], rows),
            "",
            f"Containers of the run left after it: {flat['leftover_containers']}.{trend}",
            "",
        ]
    return lines


def _errors_section(data: dict[str, Any]) -> list[str]:
    lines = []
    for workload in data["workloads"]:
        where = f"{workload['name']} [{engine_of(workload)}]"
        if workload.get("error"):
            lines.append(f"- {where}: {workload['error']}")
        for strategy, series in workload["series"].items():
            for error in series.get("errors") or []:
                lines.append(f"- {where} {SHORT[strategy]}: {error.splitlines()[0]}")
    for result in data["ahead"]:
        for error in result["errors"]:
            lines.append(
                f"- ahead {result['workload']} [{engine_of(result)}]: {error.splitlines()[0]}"
            )
    for flat in flats(data):
        if flat.get("error"):
            lines.append(f"- flat [{engine_of(flat)}]: {flat['error'].splitlines()[0]}")
    if not lines:
        return []
    return [
        "## Failed runs (samples of a failed run are dropped; each was retried once)",
        "",
        *lines,
        "",
    ]


# -- chart --------------------------------------------------------------------------------


def chart(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(3, 2, figsize=(15, 15))
    figure.suptitle(
        f"pytest-criu benchmark ({data['meta']['mode']}, {data['meta']['started']}, "
        f"{data['meta']['host']['cores']} cores, noisy shared machine)"
    )
    if data["workloads"]:
        _chart_strategies(axes[0][0], data)
        _chart_sweep(axes[0][1], data)
        _chart_phases(axes[1][0], data)
    else:
        for axis in (axes[0][0], axes[0][1], axes[1][0]):
            axis.set_visible(False)
    if data["ahead"]:
        _chart_ahead(axes[1][1], data)
    else:
        axes[1][1].set_visible(False)
    _chart_flat(axes[2][0], axes[2][1], data)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _chart_name(data: dict[str, Any], item: dict[str, Any], key: str = "name") -> str:
    """An x-axis label: the workload, and its engine when the run has several."""
    if len(engines_in(data)) < 2:
        return str(item[key])
    return f"{item[key]}\n{engine_of(item)}"


def _chart_strategies(axis: Any, data: dict[str, Any]) -> None:
    # One group of bars per workload and engine, a workload's engines side by side.
    workloads = data["workloads"]
    engines = engines_in(data)
    present = [s for s in LABELS if any(_samples(w, s) for w in workloads)]
    width = 0.8 / max(1, len(present))
    for index, strategy in enumerate(present):
        medians, highs, positions = [], [], []
        for position, workload in enumerate(workloads):
            samples = _samples(workload, strategy)
            if samples:
                middle = statistics.median(samples)
                medians.append(middle)
                highs.append((p95(samples) or middle) - middle)
                positions.append(position + (index - (len(present) - 1) / 2) * width)
        axis.bar(
            positions,
            medians,
            width,
            yerr=[[0.0] * len(highs), highs],
            label=label(strategy, engines[0])
            if strategy != "engine" or len(engines) < 2
            else "(d) engine floor: the engine's restore call only",
            capsize=2,
        )
    axis.set_xticks(range(len(workloads)), [_chart_name(data, w) for w in workloads], rotation=20)
    axis.set_yscale("log")
    axis.set_ylabel("seconds per reset (median; whisker: p95)")
    axis.set_title("Per-test reset by strategy")
    axis.legend(fontsize=7)


def _chart_sweep(axis: Any, data: dict[str, Any]) -> None:
    points = sweep(data)
    engines = engines_in(data)
    styles = ("-", "--", ":")
    for number, engine in enumerate(engines):
        mine = [p for p in points if p["engine_name"] == engine]
        suffix = f" [{engine}]" if len(engines) > 1 else ""
        for key, name, marker in (
            ("fresh", LABELS["fresh"], "o"),
            ("inplace", LABELS["inplace"], "s"),
            ("engine", label("engine", engine), "^"),
            ("criu_in_engine", "CRIU's own time inside (d)", "v"),
            ("criu", LABELS["criu"], "x"),
        ):
            xy = [(p["mb"], p[key]) for p in mine if p[key] is not None]
            if xy:
                axis.plot(
                    [x for x, _ in xy],
                    [y for _, y in xy],
                    marker=marker,
                    linestyle=styles[number % len(styles)],
                    label=name + suffix,
                )
    for point in points:
        axis.annotate(point["workload"], (point["mb"], point["fresh"] or 0), fontsize=7)
    axis.set_xlabel("checkpoint size, MB")
    axis.set_ylabel("median restore, s")
    axis.set_title("Restore time vs checkpoint size")
    axis.legend(fontsize=7)


def _chart_phases(axis: Any, data: dict[str, Any]) -> None:
    workloads = [w for w in data["workloads"] if _samples(w, "fresh")]
    bottoms = [0.0] * len(workloads)
    for phase in FRESH_PHASES:
        heights = []
        for workload in workloads:
            values = (_series(workload, "fresh").get("phases") or {}).get(phase) or []
            heights.append(statistics.median(values) if values else 0.0)
        axis.bar(range(len(workloads)), heights, bottom=bottoms, label=phase)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    criu = [
        (position, median(_series(w, "fresh").get("criu") or []))
        for position, w in enumerate(workloads)
    ]
    known = [(x, y) for x, y in criu if y is not None]  # Podman keeps no log to read it from
    axis.scatter(
        [x for x, _ in known],
        [y for _, y in known],
        color="black",
        marker="_",
        s=400,
        zorder=3,
        label="CRIU's own time (within engine restore)",
    )
    axis.set_xticks(range(len(workloads)), [_chart_name(data, w) for w in workloads], rotation=20)
    axis.set_ylabel("seconds (median per phase)")
    axis.set_title("(a) fresh restore: where one reset's time goes")
    axis.legend(fontsize=7)


def _chart_ahead(axis: Any, data: dict[str, Any]) -> None:
    for result in data["ahead"]:
        names = {"fresh": "no", "ahead": "restore-ahead"}
        for mode, marker in (("fresh", "o"), ("ahead", "x")):
            if mode not in result["series"]:
                continue
            points = [
                (index + 2, value * 1000)
                for batch in result["series"][mode]["rounds"]
                for index, value in enumerate(batch)
            ]
            if points:
                name = f"{_chart_name(data, result, 'workload')}, {names[mode]}".replace("\n", " ")
                axis.scatter(
                    [x for x, _ in points],
                    [y for _, y in points],
                    marker=marker,
                    label=name,
                    alpha=0.7,
                )
    if data["ahead"]:
        axis.axhline(AHEAD_TARGET * 1000, color="red", linestyle="--", label="target 50 ms")
        axis.set_yscale("symlog", linthresh=1)
        axis.set_ylim(bottom=0)
        axis.legend(fontsize=7)
    axis.set_xlabel("test number in its run")
    axis.set_ylabel("visible reset, ms")
    axis.set_title("Restore-ahead: what tests longer than a restore wait")


def _chart_flat(left: Any, right: Any, data: dict[str, Any]) -> None:
    runs = [flat for flat in flats(data) if flat["samples"]]
    if not runs:
        left.set_visible(False)
        right.set_visible(False)
        return
    several = len(runs) > 1
    styles = ("-", "--", ":")
    for number, flat in enumerate(runs):
        suffix = f" [{engine_of(flat)}]" if several else ""
        style = styles[number % len(styles)]
        samples = [s for s in flat["samples"] if not s.get("after_session")]
        tests = [s["test"] for s in samples]
        for key, name in (
            ("rss_kib", "RSS MiB"),
            ("fds", "open fds"),
            ("threads", "threads"),
            ("containers", "containers of the run"),
        ):
            values = [(s.get(key) or 0) / (1024 if key == "rss_kib" else 1) for s in samples]
            left.plot(tests, values, linestyle=style, label=name + suffix)
        resets = flat["resets"]
        right.plot(
            range(2, len(resets) + 2),
            resets,
            linewidth=0.6,
            linestyle=style,
            label=engine_of(flat),
        )
    left.set_xlabel("test number")
    left.set_title(f"Endurance: the pytest process over {runs[0]['tests']} restores")
    left.legend(fontsize=7)
    right.set_xlabel("test number")
    right.set_ylabel("reset, s")
    right.set_title("Endurance: reset per test")
    if several:
        right.legend(fontsize=7)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if len(arguments) != 1:
        print("usage: python -m benchmarks.report RESULTS.json", file=sys.stderr)
        return 2
    source = Path(arguments[0])
    data = json.loads(source.read_text())
    text = markdown(data)
    (source.parent / "results.md").write_text(text)
    chart(data, source.parent / "results.png")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
