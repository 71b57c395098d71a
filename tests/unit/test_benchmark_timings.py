"""The benchmark harness reads per-test reset times from the plugin's ``--criu-report``."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import plugin_runs
from pytest_criu.reporting import write_report


def test_resets_come_from_the_report_in_run_order(tmp_path: Path) -> None:
    assert plugin_runs.REPORT_FLAG in plugin_runs.plugin_flags()
    report = tmp_path / "criu-report.json"
    assert plugin_runs.timing_options(report) == (f"--criu-report={report}",)
    fixture = plugin_runs.FIXTURE
    timings = [
        ("test_bench.py::test_reset[0]", fixture, 0.0),
        ("test_bench.py::test_reset[1]", fixture, 0.125),
        ("test_bench.py::test_reset[2]", fixture, 0.25),
    ]
    write_report(report, [], timings)
    # Terminal text is not read any more: reset lines in it change nothing.
    stdout = "reset svc 9.000s test_bench.py::test_reset[1]\n"
    assert plugin_runs.read_resets(report, stdout) == [0.0, 0.125, 0.25]
    assert plugin_runs.read_resets(tmp_path / "missing.json", stdout) == []


def test_a_plugin_without_the_report_is_read_from_its_timing_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A --plugin-ref from before --criu-report: its --criu-timings lines."""
    monkeypatch.setattr(plugin_runs, "plugin_flags", lambda: frozenset({"--criu-timings"}))
    report = tmp_path / "criu-report.json"
    assert plugin_runs.timing_options(report) == ("--criu-timings",)
    stdout = "..\nreset svc 0.000s t.py::test_reset[0]\nreset svc 0.512s t.py::test_reset[1]\n"
    assert plugin_runs.read_resets(report, stdout) == [0.0, 0.512]
