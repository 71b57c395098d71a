"""The issue's targets, measured, never asserted: overhead, speed-up, restore-ahead, endurance."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..records import AheadResult, FlatResult, Results, Series, WorkloadResult
from ..stats import bootstrap_ratio, median, milliseconds, p95, ratio, seconds
from .common import (
    AHEAD_TARGET,
    FRESH_PHASES,
    OVERHEAD_TARGET,
    SPEEDUP_TARGET,
    TARGET_WORKLOADS,
    percent,
    round_ratios,
    table,
    times,
    title,
    verdict,
)


@dataclass(frozen=True)
class Overhead:
    """The plugin's fresh reset (a) over the engine floor (d) on one workload and engine."""

    workload: str
    engine_name: str
    a: float | None
    d: float | None
    d_rm: float | None
    a_engine: float | None
    """The engine restore call inside (a)."""
    own_steps: float
    """The median of each of (a)'s phases but the engine restore, summed."""
    overhead: float | None
    interval: tuple[float, float] | None
    rounds: list[float]
    gap_overhead: float | None
    """The same for the test-to-test gap (pytest included)."""
    met: bool | None


@dataclass(frozen=True)
class Speedup:
    """The baseline (c) over the fresh reset (a) on one workload and engine."""

    workload: str
    engine_name: str
    a: float | None
    c: float | None
    speedup: float | None
    interval: tuple[float, float] | None
    met: bool | None
    targeted: bool
    """One of the workloads the target is set for."""


@dataclass(frozen=True)
class AheadTarget:
    """The visible reset with restore-ahead, on one workload and engine."""

    workload: str
    engine_name: str
    ahead: float | None
    ahead_p95: float | None
    steady: float | None
    steady_p95: float | None
    fresh: float | None
    untouched: bool
    """Every container a test got was unique and unchanged, and every probe passed."""
    met: bool | None


@dataclass(frozen=True)
class Endurance:
    """The first and the last sample of the endurance run's pytest process."""

    engine: str
    tests: int
    control_rss_kib: tuple[int, int] | None
    first_test: int
    last_test: int
    rss_kib: tuple[int, int]
    threads: tuple[int, int]
    fds: tuple[int, int]
    containers_max: int
    leftover_containers: int | None


@dataclass
class Targets:
    overhead: list[Overhead] = field(default_factory=list)
    speedup: list[Speedup] = field(default_factory=list)
    ahead: list[AheadTarget] = field(default_factory=list)
    flat: list[Endurance] = field(default_factory=list)


def _overhead(workload: WorkloadResult) -> Overhead | None:
    fresh, engine = workload.of("fresh"), workload.of("engine")
    a, d = fresh.samples, engine.samples
    if not (a and d):
        return None
    interval = bootstrap_ratio(a, d)
    value = ratio(median(a), median(d))
    own = [median(fresh.phase(phase)) for phase in FRESH_PHASES if phase != "engine restore"]
    return Overhead(
        workload=workload.name,
        engine_name=workload.engine,
        a=median(a),
        d=median(d),
        d_rm=median(workload.of("engine-rm").samples),
        a_engine=median(fresh.phase("engine restore")),
        own_steps=sum(x for x in own if x is not None),
        overhead=None if value is None else value - 1,
        interval=None if interval is None else (interval[0] - 1, interval[1] - 1),
        rounds=[x - 1 for x in round_ratios(fresh, engine)],
        gap_overhead=(None if not fresh.gaps else (ratio(median(fresh.gaps), median(d)) or 0) - 1),
        met=None if value is None else value - 1 <= OVERHEAD_TARGET,
    )


def _speedup(workload: WorkloadResult) -> Speedup | None:
    a, c = workload.of("fresh").samples, workload.of("recreate").samples
    if not (a and c):
        return None
    value = ratio(median(c), median(a))
    return Speedup(
        workload=workload.name,
        engine_name=workload.engine,
        a=median(a),
        c=median(c),
        speedup=value,
        interval=bootstrap_ratio(c, a),
        met=None if value is None else value >= SPEEDUP_TARGET,
        targeted=workload.name in TARGET_WORKLOADS,
    )


def _ahead(result: AheadResult) -> AheadTarget:
    with_ahead = (result.series.get("ahead") or Series()).samples
    middle = median(with_ahead)
    steady = result.steady.get("ahead") or []
    return AheadTarget(
        workload=result.workload,
        engine_name=result.engine,
        ahead=middle,
        ahead_p95=p95(with_ahead),
        steady=median(steady),
        steady_p95=p95(steady),
        fresh=median((result.series.get("fresh") or Series()).samples),
        untouched=result.unique_containers
        and not result.changed_under_test
        and not result.probes_failed,
        met=None if middle is None else middle <= AHEAD_TARGET,
    )


def _endurance(run: FlatResult) -> Endurance | None:
    samples = [s for s in run.samples if not s.after_session]
    if not samples:
        return None
    first, last = samples[0], samples[-1]
    control = [s for s in run.control_samples if not s.after_session]
    return Endurance(
        engine=run.engine,
        tests=run.tests,
        control_rss_kib=(control[0].rss_kib, control[-1].rss_kib) if control else None,
        first_test=first.test,
        last_test=last.test,
        rss_kib=(first.rss_kib, last.rss_kib),
        threads=(first.threads, last.threads),
        fds=(first.fds, last.fds),
        containers_max=max((s.containers or 0 for s in samples), default=0),
        leftover_containers=run.leftover_containers,
    )


def targets(results: Results) -> Targets:
    """The issue's targets, computed from the results."""
    found = Targets(ahead=[_ahead(result) for result in results.ahead])
    for workload in results.workloads:
        overhead, speedup = _overhead(workload), _speedup(workload)
        if overhead is not None:
            found.overhead.append(overhead)
        if speedup is not None:
            found.speedup.append(speedup)
    found.flat = [entry for run in results.flat if (entry := _endurance(run)) is not None]
    return found


def _overhead_lines(found: Targets, podman: bool) -> list[str]:
    rows = [
        [
            entry.workload,
            entry.engine_name,
            seconds(entry.a),
            seconds(entry.d),
            seconds(entry.d_rm),
            milliseconds(entry.own_steps),
            milliseconds(entry.a_engine),
            percent(entry.overhead),
            "-"
            if entry.interval is None
            else f"{percent(entry.interval[0])} .. {percent(entry.interval[1])}",
            ", ".join(percent(x) for x in entry.rounds) or "-",
            percent(entry.gap_overhead),
            verdict(entry.met),
        ]
        for entry in found.overhead
    ]
    if not rows:
        return []
    return [
        f"Plugin overhead over the engine floor, (a) vs (d) at the median "
        f"(target <= {OVERHEAD_TARGET:.0%}). `own steps` = the median create + place + "
        "inspect + other of (a); `(a) engine restore` = the same Engine API call as (d), timed "
        "inside the plugin, where the previous test's container is being removed meanwhile, "
        "as in (d')."
        + (
            " On Podman the one restore call also creates the container: there are no "
            "create and place steps."
            if podman
            else ""
        ),
        "",
        *table(
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


def _speedup_lines(found: Targets) -> list[str]:
    rows = [
        [
            entry.workload + (" (target)" if entry.targeted else ""),
            entry.engine_name,
            seconds(entry.c),
            seconds(entry.a),
            times(entry.speedup),
            "-"
            if entry.interval is None
            else f"{times(entry.interval[0])} .. {times(entry.interval[1])}",
            verdict(entry.met) if entry.targeted else ("yes" if entry.met else "no"),
        ]
        for entry in found.speedup
    ]
    if not rows:
        return []
    return [
        f"Per-test reset vs the baseline, (c) / (a) at the median (target >= "
        f"{SPEEDUP_TARGET:.0f}x on {' and '.join(TARGET_WORKLOADS)}):",
        "",
        *table(
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


def _ahead_lines(found: Targets) -> list[str]:
    rows = [
        [
            entry.workload,
            entry.engine_name,
            milliseconds(entry.fresh),
            milliseconds(entry.ahead),
            milliseconds(entry.ahead_p95),
            milliseconds(entry.steady),
            "yes" if entry.untouched else "**NO**",
            verdict(entry.met),
        ]
        for entry in found.ahead
    ]
    if not rows:
        return []
    return [
        f"Restore-ahead, tests longer than a restore: median visible reset "
        f"(target <= {AHEAD_TARGET * 1000:.0f} ms):",
        "",
        *table(
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


def _endurance_lines(flat: Endurance) -> list[str]:
    control = flat.control_rss_kib
    control_text = (
        ""
        if not control
        else f" The same number of tests without a warm container (pytest alone): RSS "
        f"{control[0] / 1024:.1f} -> {control[1] / 1024:.1f} MiB."
    )
    return [
        f"Endurance on {title(flat.engine)}, {flat.tests} tests on the tiny image "
        f"(pytest process, sampled "
        f"inside tests {flat.first_test} and {flat.last_test}): RSS "
        f"{flat.rss_kib[0] / 1024:.1f} -> {flat.rss_kib[1] / 1024:.1f} MiB, threads "
        f"{flat.threads[0]} -> {flat.threads[1]}, open fds {flat.fds[0]} -> "
        f"{flat.fds[1]}, at most {flat.containers_max} containers of the run at once, "
        f"{flat.leftover_containers} left after the run.{control_text}",
        "",
    ]


def targets_section(results: Results) -> list[str]:
    """The targets' tables, or nothing when the run measured none of them."""
    found = targets(results)
    lines = [
        *_overhead_lines(found, "podman" in results.engines()),
        *_speedup_lines(found),
        *_ahead_lines(found),
    ]
    for flat in found.flat:
        lines += _endurance_lines(flat)
    return ["## Targets (measured, not asserted)", "", *lines] if lines else []
