"""The summary's wording and the ``--criu-report`` document, from plain reports."""

from __future__ import annotations

import json
from pathlib import Path

from pytest_criu.reporting import ContainerReport, report_data, summary_lines, write_report


def _report(**changes: object) -> ContainerReport:
    values: dict[str, object] = {
        "name": "box",
        "mode": "snapshot/fresh",
        "origin": "prepared",
        "prepare_seconds": 2.0,
        "checkpoint_seconds": 0.5,
        "restores": 3,
        "resets": [0.1, 0.2, 0.3],
        "checkpoint_bytes": 4096,
        "network": "holder",
    }
    values.update(changes)
    return ContainerReport(**values)  # type: ignore[arg-type]


def test_summary_says_what_snapshots_saved() -> None:
    (line,) = summary_lines([_report()])
    assert line == (
        "box: snapshot/fresh; prepared in 2.000s + checkpoint 0.500s; 3 restores; reset before "
        "a test: median 0.200s, p95 0.300s over 3; saved 5.4s vs re-preparing per test"
    )


def test_summary_never_claims_a_negative_saving() -> None:
    (line,) = summary_lines([_report(prepare_seconds=0.1, restores=1, resets=[0.4])])
    assert "saved" not in line
    assert "; 1 restore;" in line


def test_recreations_are_counted_in_the_singular_too() -> None:
    (line,) = summary_lines([_report(mode="recreate (no CRIU)", restores=1, resets=[1.0])])
    assert "; 1 recreation;" in line


def test_report_document_lists_containers_and_tests(tmp_path: Path) -> None:
    timings = [
        ("t.py::test_a", "box", 0.25),
        ("t.py::test_a", "db", 0.5),
        ("t.py::test_b", "box", 0.0),
    ]
    path = tmp_path / "out" / "criu.json"
    write_report(
        path, [_report(), _report(name="db", origin="cache", prepare_seconds=None)], timings
    )
    document = json.loads(path.read_text())
    assert document == report_data(
        [_report(), _report(name="db", origin="cache", prepare_seconds=None)], timings
    )
    assert document["version"] == 1
    box, db = document["containers"]
    assert box["name"] == "box"
    assert box["network"] == "holder"
    assert box["origin"] == "prepared"
    assert box["mode"] == "snapshot/fresh"
    assert box["prepare_seconds"] == 2.0
    assert box["checkpoint_seconds"] == 0.5
    assert box["checkpoint_bytes"] == 4096
    assert box["restores"] == 3
    assert box["reset_seconds"] == [0.1, 0.2, 0.3]
    assert db["origin"] == "cache"
    assert db["prepare_seconds"] is None
    assert document["tests"] == [
        {"nodeid": "t.py::test_a", "resets": {"box": 0.25, "db": 0.5}, "reset_seconds": 0.75},
        {"nodeid": "t.py::test_b", "resets": {"box": 0.0}, "reset_seconds": 0.0},
    ]
    assert [p.name for p in path.parent.iterdir()] == ["criu.json"]


def test_summary_says_where_an_imported_snapshot_was_made() -> None:
    origin = "imported from Docker 20.10.24, CRIU 4.2.1, Linux 6.18.44"
    (line,) = summary_lines([_report(origin=origin, prepare_seconds=None, resets=[0.2])])
    assert line == (
        f"box: snapshot/fresh; {origin} (prepare skipped); 3 restores; reset before a test: "
        "median 0.200s, p95 0.200s over 1"
    )


def test_containers_that_could_not_be_removed_are_shown_not_swallowed() -> None:
    failures = ["container 0123456789ab: Docker could not remove it: device busy"]
    line = summary_lines([_report(cleanup_failures=failures)])[1]
    assert line == (
        "box: could not remove 1 container (the next run reaps them): "
        "container 0123456789ab: Docker could not remove it: device busy"
    )
    merged = _report(cleanup_failures=list(failures))
    merged.merge(_report(cleanup_failures=["container ba9876543210: gone wrong"]))
    assert "could not remove 2 containers" in summary_lines([merged])[1]


def test_summary_says_where_the_checkpoint_s_bytes_are() -> None:
    footprint = "checkpoint 18.0 MB: process memory redis-server (pid 1) 17.0 MB"
    main, where = summary_lines([_report(footprint=footprint)])
    assert main.startswith("box: snapshot/fresh; ")
    assert where == f"box: {footprint}"


def test_report_document_has_the_memory_and_the_restore_ahead_depth() -> None:
    memory = {"redis-server (pid 1)": 17 * 1024**2}
    (box,) = report_data([_report(checkpoint_memory=memory, restore_ahead=2)], [])["containers"]
    assert box["checkpoint_memory"] == memory
    assert box["restore_ahead"] == 2
    (db,) = report_data([_report(name="db")], [])["containers"]
    assert db["checkpoint_memory"] == {}
    assert db["restore_ahead"] is None


def test_merged_worker_reports_keep_the_footprint() -> None:
    controller_side = _report(origin="shared", footprint=None, checkpoint_memory={})
    controller_side.merge(_report(footprint="checkpoint 1.0 MB", checkpoint_memory={"a": 1}))
    assert controller_side.footprint == "checkpoint 1.0 MB"
    assert controller_side.checkpoint_memory == {"a": 1}
