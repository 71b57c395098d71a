"""The "short tests" part: a suite of millisecond tests, pristine per test vs one shared container.

Most integration tests last milliseconds, so restore-ahead hides little and every test waits
for a restore. This part runs the same suite of ``tests`` short tests against a small Redis
twice per round and engine, interleaved:

- ``pristine``: every test marked ``criu_snapshot`` (the plugin's defaults: fresh strategy,
  restore-ahead on), each asserting that it sees the prepared state;
- ``shared``: the same tests unmarked, all against one container (what users do today).

It reports the whole run's wall time (pytest start to exit, set-up included), the test phase
(first test's call to the last one's end) and their ratios, and the visible reset per test
(``--criu-report``). The goal of issue 17: the whole run at most 4x the shared one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .plugin_runs import Batch, BatchResult, run_batch
from .stats import median, p95, ratio, seconds

MODES = ("pristine", "shared")
TARGET_RATIO = 4.0


@dataclass
class ShortRun:
    """What one mode measured on one engine, over every round."""

    walls: list[float] = field(default_factory=list)
    """Whole pytest runs, seconds."""
    test_phases: list[float] = field(default_factory=list)
    """First test call's start to the last one's end, seconds."""
    resets: list[float] = field(default_factory=list)
    """Visible reset per test (pristine only), first test excluded."""
    errors: list[str] = field(default_factory=list)


@dataclass
class ShortResult:
    workload: str
    engine: str
    tests: int
    runs: dict[str, ShortRun] = field(default_factory=dict)


def test_phase(result: BatchResult) -> float | None:
    """Seconds from the first test call's start to the last one's end (instrument's calls)."""
    calls = result.instrument.get("calls") or []
    if not calls:
        return None
    return float(calls[-1]["ended"]) - float(calls[0]["began"])


def absorb(run: ShortRun, result: BatchResult) -> None:
    if result.error:
        run.errors.append(result.error)
        return
    run.walls.append(result.wall)
    phase = test_phase(result)
    if phase is not None:
        run.test_phases.append(phase)
    run.resets.extend(result.resets)


def measure_short(
    workload: str,
    tests: int,
    rounds: int,
    run_id: str,
    engines: Sequence[str],
    *,
    log: Callable[[str], None],
    rotated: Callable[[Sequence[str], int], list[str]],
) -> list[ShortResult]:
    """``rounds`` interleaved rounds of both modes on every engine."""
    results = {
        engine: ShortResult(workload, engine, tests, {mode: ShortRun() for mode in MODES})
        for engine in engines
    }
    for round_number in range(rounds):
        for mode in rotated(MODES, round_number):
            for engine in rotated(engines, round_number):
                batch = Batch(
                    workload,
                    "ahead",
                    tests,
                    kind="short",
                    engine=engine,
                    pristine=mode == "pristine",
                )
                result = run_batch(batch, run_id)
                absorb(results[engine].runs[mode], result)
                state = "FAILED: " + result.error.splitlines()[0] if result.error else "ok"
                log(f"short {workload} [{engine}] r{round_number + 1} {mode}: "
                    f"{result.wall:.1f}s, {state}")  # fmt: skip
    return list(results.values())


def section(items: Sequence[dict[str, Any]]) -> list[str]:
    """The report's section for the ``short`` results (as read back from results.json)."""
    rows = []
    for item in items:
        pristine, shared = item["runs"]["pristine"], item["runs"]["shared"]
        whole = ratio(median(pristine["walls"]), median(shared["walls"]))
        phase = ratio(median(pristine["test_phases"]), median(shared["test_phases"]))
        reset = median(pristine["resets"])
        verdict = "-" if whole is None else ("met" if whole <= TARGET_RATIO else "**missed**")
        rows.append(
            [
                item["engine"],
                f"{item['workload']}, {item['tests']} tests",
                str(len(pristine["walls"])),
                seconds(median(shared["walls"])),
                seconds(median(pristine["walls"])),
                "-" if whole is None else f"{whole:.1f}x",
                "-" if phase is None else f"{phase:.1f}x",
                seconds(reset),
                seconds(p95(pristine["resets"])),
                verdict,
            ]
        )
    if not rows:
        return []
    header = [
        "engine", "suite", "runs", "shared: whole run s", "pristine: whole run s",
        "whole-run ratio", "test-phase ratio", "visible reset median s", "p95 s",
        f"target <= {TARGET_RATIO:g}x",
    ]  # fmt: skip
    lines = [
        "## Short tests: a pristine container per test vs one shared container",
        "",
        "The same suite of millisecond tests (each connects, writes two keys, reads one back) "
        "against a small Redis, every test marked `criu_snapshot` (plugin defaults, "
        "restore-ahead on) vs unmarked against one shared container; medians over the runs. "
        "Whole run = pytest start to exit (set-up, prepare and checkpoint included); test "
        "phase = the first test's call to the last one's end.",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]
    errors = [
        f"- {item['engine']} {mode}: {error.splitlines()[0]}"
        for item in items
        for mode, run in item["runs"].items()
        for error in run["errors"]
    ]
    return lines + (["Failed runs (left out):", "", *errors, ""] if errors else [])
