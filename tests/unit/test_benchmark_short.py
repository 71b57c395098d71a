"""The short-tests part: what it folds from a run, and the section it reports."""

from __future__ import annotations

import dataclasses
import json

from benchmarks import short
from benchmarks.plugin_runs import Batch, BatchResult


def _result(wall: float, calls: list[tuple[float, float]], resets: list[float]) -> BatchResult:
    batch = Batch("redis-10k", "ahead", 3, kind="short")
    instrument = {"calls": [{"began": b, "ended": e} for b, e in calls]}
    return BatchResult(batch, 0, wall, resets=resets, instrument=instrument)


def test_a_run_gives_its_wall_its_test_phase_and_its_resets() -> None:
    run = short.ShortRun()
    short.absorb(run, _result(9.0, [(10.0, 10.5), (11.0, 11.2), (12.0, 13.0)], [0.4, 0.2]))
    assert run.walls == [9.0]
    assert run.test_phases == [3.0]
    assert run.resets == [0.4, 0.2]
    failed = _result(1.0, [], [])
    failed.error = "pytest exited with 1"
    short.absorb(run, failed)
    assert run.walls == [9.0], "a failed run is left out"
    assert run.errors == ["pytest exited with 1"]


def _item(pristine_walls: list[float], shared_walls: list[float]) -> dict[str, object]:
    result = short.ShortResult("redis-10k", "docker", 50)
    result.runs = {
        "pristine": short.ShortRun(pristine_walls, [8.0], [0.3, 0.5, 0.4]),
        "shared": short.ShortRun(shared_walls, [0.5], []),
    }
    # As the report reads it: results.json, through JSON.
    loaded: dict[str, object] = json.loads(json.dumps(dataclasses.asdict(result)))
    return loaded


def test_the_section_reports_both_ratios_and_the_verdict() -> None:
    lines = short.section([_item([12.0, 14.0], [3.0, 3.0])])
    row = next(line for line in lines if line.startswith("| docker"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "redis-10k, 50 tests"
    assert cells[5] == "4.3x", "whole run: median 13 s / 3 s"
    assert cells[6] == "16.0x", "test phase: 8 s / 0.5 s"
    assert cells[7] == "0.400"
    assert cells[9] == "**missed**"
    met = short.section([_item([6.0], [3.0])])
    assert next(line for line in met if line.startswith("| docker")).rstrip(" |").endswith("met")


def test_no_short_results_no_section() -> None:
    assert short.section([]) == []
