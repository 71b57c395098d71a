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

from .plugin_runs import Batch, BatchResult, run_batch
from .records import ShortResult, ShortRun

MODES = ("pristine", "shared")


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
