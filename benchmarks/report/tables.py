"""The report's tables of the strategies: per workload, engines side by side, phases, sizes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..records import Results, Series, WorkloadResult
from ..stats import bootstrap_ratio, linear_fit, median, milliseconds, p95, ratio, seconds
from .common import (
    ENGINE_COMPARED,
    FLOOR_CALLS,
    FRESH_PHASES,
    INPLACE_PHASES,
    LABELS,
    SHORT,
    label,
    mb,
    percent,
    round_ratios,
    table,
    times,
    title,
)


def by_name(results: Results) -> dict[str, dict[str, WorkloadResult]]:
    """Workload results by workload name, then by engine."""
    grouped: dict[str, dict[str, WorkloadResult]] = {}
    for workload in results.workloads:
        grouped.setdefault(workload.name, {})[workload.engine] = workload
    return grouped


def strategy_section(results: Results) -> list[str]:
    """Per workload, engine and strategy: samples, median, p95 and the ratios to (c) and (d)."""
    if not results.workloads:
        return []
    rows = []
    for workload in results.workloads:
        baseline = median(workload.of("recreate").samples)
        floor = median(workload.of("engine").samples)
        for strategy in LABELS:
            if strategy not in workload.series:
                continue
            name = label(strategy, workload.engine)
            series = workload.of(strategy)
            where = [workload.name, workload.engine, mb(workload.checkpoint_bytes), name]
            if series.skipped:
                rows.append([*where, "0", *["-"] * 5, series.skipped])
                continue
            middle = median(series.samples)
            speedup = ratio(baseline, middle)
            rows.append(
                [
                    *where,
                    str(len(series.samples)),
                    seconds(middle),
                    seconds(p95(series.samples)),
                    times(ratio(middle, baseline)),
                    times(speedup) if strategy != "recreate" else "1.00x",
                    times(ratio(middle, floor)),
                    f"{len(series.errors)} failed runs" if series.errors else "",
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
    engines = results.engines()
    if "podman" in engines:
        notes.append(
            "`ckpt MB`: the checkpoint the restores read (Docker: the checkpoint directory; "
            "Podman: the exported archive, which also holds the container's file changes)."
        )
    if len(engines) > 1:
        notes.append(
            "Each row's ratios are within its engine: (c) and (d) are that engine's. (e) uses no "
            "engine and is measured once per workload."
        )
    if notes:
        notes.append("")
    return ["## Per-test reset by strategy", "", *table(header, rows), "", *notes]


def engines_section(results: Results) -> list[str]:
    """Per engine: the fresh reset against its baseline; then Podman (or any) vs Docker."""
    engines = results.engines()
    if len(engines) < 2 or not results.workloads:
        return []
    rows = []
    for name, by_engine in by_name(results).items():
        for engine in engines:
            workload = by_engine.get(engine)
            if workload is None:
                continue
            a, c = workload.of("fresh").samples, workload.of("recreate").samples
            d = workload.of("engine").samples
            rows.append(
                [
                    name,
                    engine,
                    str(len(a)),
                    seconds(median(a)),
                    seconds(p95(a)),
                    seconds(median(c)),
                    seconds(p95(c)),
                    times(ratio(median(a), median(c))),
                    times(ratio(median(c), median(a))),
                    seconds(median(d)),
                    percent(None if not (a and d) else (ratio(median(a), median(d)) or 0) - 1),
                ]
            )
    lines = [
        "## Engines side by side",
        "",
        "The fresh reset (a) against each engine's own recreate baseline (c) and engine floor "
        "(d), per workload and engine:",
        "",
        *table(
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
        lines += engine_vs(results, other, reference)
    return lines


def engine_vs(results: Results, other: str, reference: str) -> list[str]:
    """The ratio of medians ``other`` / ``reference`` per strategy and workload."""
    rows = []
    for name, by_engine in by_name(results).items():
        mine, theirs = by_engine.get(other), by_engine.get(reference)
        if mine is None or theirs is None:
            continue
        for strategy in ENGINE_COMPARED:
            top, bottom = mine.of(strategy), theirs.of(strategy)
            upper, lower = top.samples, bottom.samples
            if not upper and not lower:
                continue
            interval = bootstrap_ratio(upper, lower)
            rows.append(
                [
                    name,
                    SHORT[strategy],
                    seconds(median(lower)),
                    seconds(median(upper)),
                    times(ratio(median(upper), median(lower))),
                    "-" if interval is None else f"{times(interval[0])} .. {times(interval[1])}",
                    ", ".join(times(x) for x in round_ratios(top, bottom)) or "-",
                ]
            )
    if not rows:
        return []
    return [
        f"## {title(other)} vs {title(reference)}",
        "",
        f"Ratio of medians, {title(other)} / {title(reference)}, per strategy (below 1: "
        f"{title(other)} is faster). The two engines' batches of a strategy ran back to back "
        f"in every round; (d) is each engine's own floor call ({FLOOR_CALLS.get(reference, '?')} "
        f"vs {FLOOR_CALLS.get(other, '?')}).",
        "",
        *table(
            [
                "workload",
                "strategy",
                f"{title(reference)} median s",
                f"{title(other)} median s",
                f"{title(other)} / {title(reference)}",
                "95% bootstrap",
                "per round",
            ],
            rows,
        ),
        "",
    ]


def _phase_medians(series: Series, phases: Sequence[str]) -> list[str]:
    return [milliseconds(median(series.phase(phase))) for phase in phases]


def _floor_row(where: list[str], path: str, series: Series) -> list[str]:
    """A row of (d) or (d'): the timed call is the engine restore column."""
    return [
        *where,
        path,
        milliseconds(median(series.samples)),
        "-",
        "-",
        *_phase_medians(series, ("create", "place checkpoint")),
        milliseconds(median(series.samples)),
        *_phase_medians(series, ("inspect",)),
        "-",
        milliseconds(median(series.criu)),
    ]


def phases_section(results: Results) -> list[str]:
    """The median of each phase of one restore, per workload and path."""
    if not results.workloads:
        return []
    rows = []
    for workload in results.workloads:
        fresh = workload.of("fresh")
        where = [workload.name, workload.engine]
        rows.append(
            [
                *where,
                "(a) fresh",
                milliseconds(median(fresh.samples)),
                *_phase_medians(fresh, FRESH_PHASES),
                milliseconds(median(fresh.criu)),
            ]
        )
        rows.append(_floor_row(where, "(d) engine floor", workload.of("engine")))
        concurrent = workload.of("engine-rm")
        if concurrent.samples:
            path = "(d') engine floor, previous container removed meanwhile"
            rows.append(_floor_row(where, path, concurrent))
        inplace = workload.of("inplace")
        if inplace.samples:
            stop, restore, inspect, other = _phase_medians(inplace, INPLACE_PHASES)
            rows.append(
                [
                    *where,
                    f"(b) inplace (stop {stop})",
                    milliseconds(median(inplace.samples)),
                    "-",
                    "-",
                    "-",
                    "-",
                    restore,
                    inspect,
                    other,
                    milliseconds(median(inplace.criu)),
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
    if "podman" in results.engines():
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
        *table(header, rows),
        "",
    ]


@dataclass(frozen=True)
class SweepPoint:
    """One workload on one engine: its checkpoint's size and the strategies' medians."""

    workload: str
    engine_name: str
    mb: float
    physical_mb: float
    fresh: float | None
    inplace: float | None
    engine: float | None
    criu: float | None
    recreate: float | None
    criu_in_engine: float | None
    """CRIU's own time inside (d)."""


#: The medians the size sweep fits a line through, and their names.
FITTED: tuple[tuple[Callable[[SweepPoint], float | None], str], ...] = (
    (lambda point: point.fresh, "(a)"),
    (lambda point: point.engine, "(d)"),
    (lambda point: point.criu_in_engine, "CRIU in (d)"),
    (lambda point: point.criu, "(e)"),
)


def sweep(results: Results) -> list[SweepPoint]:
    """The workloads that have a checkpoint size, by engine and size."""
    points = [
        SweepPoint(
            workload=workload.name,
            engine_name=workload.engine,
            mb=workload.checkpoint_bytes / 1e6,
            physical_mb=(workload.physical_bytes or 0) / 1e6,
            fresh=median(workload.of("fresh").samples),
            inplace=median(workload.of("inplace").samples),
            engine=median(workload.of("engine").samples),
            criu=median(workload.of("criu").samples),
            recreate=median(workload.of("recreate").samples),
            criu_in_engine=median(workload.of("engine").criu),
        )
        for workload in results.workloads
        if workload.checkpoint_bytes
    ]
    return sorted(points, key=lambda point: (point.engine_name, point.mb))


def sweep_section(results: Results) -> list[str]:
    """Restore time against checkpoint size, with a least-squares fit per engine."""
    points = sweep(results)
    if not points:
        return []
    rows = [
        [
            point.workload,
            point.engine_name,
            f"{point.mb:.1f}",
            seconds(point.fresh),
            seconds(point.inplace),
            seconds(point.engine),
            seconds(point.criu_in_engine),
            seconds(point.criu),
            f"{point.physical_mb:.1f}" if point.physical_mb else "-",
        ]
        for point in points
    ]
    fits = []
    for engine in results.engines():
        mine = [p for p in points if p.engine_name == engine]
        for value_of, name in FITTED:
            xy = [(p.mb, value) for p in mine if (value := value_of(p)) is not None]
            fit = linear_fit(xy)
            if fit:
                fits.append(f"{engine} {name} {fit[0] * 1000:.0f} ms + {fit[1] * 1000:.1f} ms/MB")
    return [
        "## Restore time vs checkpoint size (medians, s)",
        "",
        *table(
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
