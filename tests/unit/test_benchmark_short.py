"""The short-tests part: what it folds from a run, and the section the report makes of it."""

from __future__ import annotations

import dataclasses
import json

from benchmarks import short
from benchmarks.load import results_from_json
from benchmarks.plugin_runs import Batch, BatchResult
from benchmarks.records import Host, Meta, Results, ShortResult, ShortRun
from benchmarks.report import details


def _result(wall: float, calls: list[tuple[float, float]], resets: list[float]) -> BatchResult:
    batch = Batch("redis-10k", "ahead", 3, kind="short")
    instrument = {"calls": [{"began": b, "ended": e} for b, e in calls]}
    return BatchResult(batch, 0, wall, resets=resets, instrument=instrument)


def test_a_run_gives_its_wall_its_test_phase_and_its_resets() -> None:
    run = ShortRun()
    short.absorb(run, _result(9.0, [(10.0, 10.5), (11.0, 11.2), (12.0, 13.0)], [0.4, 0.2]))
    assert run.walls == [9.0]
    assert run.test_phases == [3.0]
    assert run.resets == [0.4, 0.2]
    failed = _result(1.0, [], [])
    failed.error = "pytest exited with 1"
    short.absorb(run, failed)
    assert run.walls == [9.0], "a failed run is left out"
    assert run.errors == ["pytest exited with 1"]


def _results(pristine_walls: list[float], shared_walls: list[float]) -> Results:
    item = ShortResult("redis-10k", "docker", 50)
    item.runs = {
        "pristine": ShortRun(pristine_walls, [8.0], [0.3, 0.5, 0.4]),
        "shared": ShortRun(shared_walls, [0.5], [], ["pytest exited with 1\nthe details"]),
    }
    host = Host(2, "6.1", "3.11", "20.10", "1.6", None, "4.2.1", (1.0, 1.0, 1.0))
    results = Results(Meta("run", "quick", {}, "python -m benchmarks", "now", host))
    results.short = [item]
    # As the report reads it: results.json, through JSON and the loader.
    return results_from_json(json.loads(json.dumps(dataclasses.asdict(results))))


def test_the_section_reports_both_ratios_and_the_verdict() -> None:
    lines = details.short_section(_results([12.0, 14.0], [3.0, 3.0]))
    row = next(line for line in lines if line.startswith("| docker"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "redis-10k, 50 tests"
    assert cells[5] == "4.3x", "whole run: median 13 s / 3 s"
    assert cells[6] == "16.0x", "test phase: 8 s / 0.5 s"
    assert cells[7] == "0.400"
    assert cells[9] == "**missed**"
    assert lines[-2] == "- docker shared: pytest exited with 1", "a failed run's first line"
    met = details.short_section(_results([6.0], [3.0]))
    assert next(line for line in met if line.startswith("| docker")).rstrip(" |").endswith("met")


def test_no_short_results_no_section() -> None:
    results = _results([], [])
    results.short = []
    assert details.short_section(results) == []
