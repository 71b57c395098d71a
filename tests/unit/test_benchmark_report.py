"""The benchmark report reads typed results: files of the first harness and of this one."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import report
from benchmarks.load import ResultsFileError, load_results, results_from_json
from benchmarks.records import Results
from benchmarks.report.__main__ import main as report_main


def _series(samples: list[float], **extra: Any) -> dict[str, Any]:
    return {
        "samples": samples,
        "rounds": [samples],
        "criu": [],
        "phases": {"engine restore": [s / 2 for s in samples]},
        "gaps": [],
        "prepare": [],
        "checkpoint": [],
        "checkpoint_bytes": [],
        "batch_seconds": [],
        "errors": [],
        "skipped": None,
        **extra,
    }


def _sample(test: int, **extra: Any) -> dict[str, Any]:
    return {"test": test, "rss_kib": 51200, "threads": 3, "fds": 12, **extra}


#: As the first harness (d73c755) wrote it: no engines anywhere, ``flat`` one object, no
#: ``short``, no Podman in the host facts, an unfrozen plugin.
OLD: dict[str, Any] = {
    "meta": {
        "run_id": "20261120-101010-aaaaaa",
        "mode": "quick",
        "plan": {"mode": "quick", "rounds": 2},
        "command": "python -m benchmarks --quick",
        "started": "2026-11-20T10:10:10+00:00",
        "host": {
            "cores": 2,
            "kernel": "6.1.0",
            "python": "3.11.2",
            "docker": "20.10.24",
            "containerd": "1.6.20",
            "criu": "4.2.1",
            "load_before": [1.0, 1.0, 1.0],
            "load_after": [2.0, 1.0, 1.0],
        },
        "plugin": {"origin": "not frozen"},
        "leftovers_removed": {"containers": 0, "images": 0},
        "seconds": 300.4,
    },
    "workloads": [
        {
            "name": "tiny",
            "description": "busybox",
            "checkpoint_bytes": 2_000_000,
            "physical_bytes": None,
            "prepare_seconds": 0.5,
            "checkpoint_seconds": 0.2,
            "series": {
                "fresh": _series([0.3, 0.4]),
                "recreate": _series([2.0, 2.2], errors=["pytest exited with 1\ndetails"]),
                "engine": _series([0.2, 0.3]),
            },
            "error": None,
        }
    ],
    "ahead": [],
    "flat": {
        "tests": 40,
        "resets": [0.3, 0.3, 0.4, 0.4],
        "samples": [_sample(5), _sample(10), _sample(41, after_session=True)],
        "leftover_containers": 0,
        "error": None,
    },
}

#: As this harness writes it: the engine on every result, ``flat`` a list, ``short``.
CURRENT: dict[str, Any] = {
    "meta": {
        **OLD["meta"],
        "host": {**OLD["meta"]["host"], "podman": "4.3.1"},
        "engines": ["docker", "podman"],
        "engines_skipped": {},
        "plugin": {
            "path": "/tmp/pytest-criu-bench-src-x",
            "origin": "working tree",
            "commit": "0123456789abcdef",
            "dirty": False,
            "digest": "feedbeef",
        },
        "leftovers_removed": {"containers": 1, "images": 0, "engines": {"docker": {}}},
    },
    "workloads": [{**OLD["workloads"][0], "engine": engine} for engine in ("docker", "podman")],
    "ahead": [],
    "flat": [
        {
            **OLD["flat"],
            "engine": "podman",
            "samples": [_sample(5, containers=1), _sample(41, after_session=True)],
            "control_samples": [_sample(5), _sample(41, after_session=True)],
        }
    ],
    "short": [
        {
            "workload": "redis-10k",
            "engine": "podman",
            "tests": 50,
            "runs": {
                "pristine": {"walls": [9.0], "test_phases": [4.0], "resets": [0.3], "errors": []},
                "shared": {"walls": [3.0], "test_phases": [0.5], "resets": [], "errors": []},
            },
        }
    ],
}
CURRENT["meta"]["leftovers_removed"]["engines"] = {"docker": {"containers": 1, "images": 0}}


def _written(tmp_path: Path, name: str, data: object) -> Path:
    path = tmp_path / name / "results.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data, indent=1))
    return path


def test_an_old_and_a_current_results_file_load_into_the_dataclasses(tmp_path: Path) -> None:
    old = load_results(_written(tmp_path, "old", OLD))
    assert [w.engine for w in old.workloads] == ["docker"], "before --engines: Docker"
    assert old.meta.engines == []
    assert old.engines() == ["docker"]
    assert old.meta.plugin is None, "not frozen"
    assert old.meta.host.podman is None
    assert old.meta.host.load_after == (2.0, 1.0, 1.0)
    assert [flat.engine for flat in old.flat] == ["docker"], "one object became a list"
    assert old.flat[0].control_samples == []
    assert old.short == []
    assert [s.after_session for s in old.flat[0].samples] == [False, False, True]
    assert old.flat[0].samples[0].containers is None
    assert old.workloads[0].of("inplace").samples == [], "a strategy the run did not have"
    assert old.workloads[0].of("fresh").phase("engine restore") == [0.15, 0.2]

    current = load_results(_written(tmp_path, "current", CURRENT))
    assert [w.engine for w in current.workloads] == ["docker", "podman"]
    assert current.engines() == ["docker", "podman"]
    assert current.meta.plugin is not None
    assert current.meta.plugin.digest == "feedbeef"
    assert current.meta.leftovers_removed is not None
    assert current.meta.leftovers_removed.engines == {"docker": {"containers": 1, "images": 0}}
    assert current.flat[0].engine == "podman"
    assert current.flat[0].samples[0].containers == 1
    assert current.short[0].runs["pristine"].walls == [9.0]
    # What a run writes (asdict of these classes) loads back into the same values.
    again = json.loads(json.dumps(dataclasses.asdict(current)))
    assert results_from_json(again) == current


def test_the_report_of_either_file(tmp_path: Path) -> None:
    old = report.markdown(load_results(_written(tmp_path, "old", OLD)))
    assert "- plugin: as imported (not frozen)" in old
    assert "Docker 20.10.24 (containerd 1.6.20), CRIU 4.2.1" in old
    assert "## Endurance on Docker: 40 restores in one pytest process" in old
    assert "| after the session | 50.0 | 3 | 12 | - |" in old
    assert "- tiny [docker] c: pytest exited with 1" in old
    assert "Podman" not in old
    assert "## Short tests" not in old
    current = report.markdown(load_results(_written(tmp_path, "current", CURRENT)))
    assert "- engines: Docker, Podman" in current
    assert "working tree at 0123456789ab (clean), sha256 feedbeef" in current
    assert "## Podman vs Docker" in current
    assert "## Endurance on Podman" in current
    assert "| podman | redis-10k, 50 tests | 1 | 3.000 | 9.000 | 3.0x |" in current


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("meta"), "results.json: no 'meta'; is this a benchmark run's file?"),
        (
            lambda d: d["workloads"][0].pop("name"),
            "results.json: workloads[0]: no 'name'; is this a benchmark run's file?",
        ),
        (
            lambda d: d["workloads"][0]["series"]["fresh"].update(samples=["0.3"]),
            "results.json: workloads[0].series.fresh.samples: expected a list of numbers, "
            "found list",
        ),
        (
            lambda d: d["meta"]["host"].update(load_before=[1.0]),
            "results.json: meta.host.load_before: expected three numbers, found [1.0]",
        ),
        (
            lambda d: d.update(flat="none"),
            'results.json: flat: expected a list, found "none"',
        ),
    ],
)
def test_a_file_that_is_not_a_runs_results_says_where(change: Any, message: str) -> None:
    data = json.loads(json.dumps(OLD))
    change(data)
    with pytest.raises(ResultsFileError) as raised:
        results_from_json(data)
    assert str(raised.value) == message


def test_the_command_writes_the_markdown_and_says_when_matplotlib_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _written(tmp_path, "run", CURRENT)
    monkeypatch.delitem(sys.modules, "benchmarks.report.charts", raising=False)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # importing it raises ImportError
    assert report_main([str(path)]) == 0
    written = (path.parent / "results.md").read_text()
    assert written == report.markdown(load_results(path))
    out, err = capsys.readouterr()
    assert out == written + "\n"
    assert err == f"benchmarks.report: {report.MISSING_MATPLOTLIB}\n"
    assert not (path.parent / "results.png").exists()
    assert report_main([str(path), "--no-chart"]) == 0
    assert capsys.readouterr().err == "", "--no-chart: nothing to say"


def test_the_command_names_a_file_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "results.json"
    path.write_text("{not json")
    assert report_main([str(path), "--no-chart"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"benchmarks.report: {path}: not JSON (")
    assert report_main([str(tmp_path / "missing.json"), "--no-chart"]) == 2
    assert f"{tmp_path / 'missing.json'}: cannot read it (" in capsys.readouterr().err


def test_a_run_writes_what_the_report_reads_back(tmp_path: Path) -> None:
    from benchmarks.run import write_results

    results: Results = load_results(_written(tmp_path, "source", CURRENT))
    markdown = write_results(results, tmp_path / "out", chart=False)
    assert (tmp_path / "out" / "results.md").read_text() == markdown
    assert load_results(tmp_path / "out" / "results.json") == results
    assert markdown == report.markdown(results)


def test_a_list_is_not_a_results_file() -> None:
    with pytest.raises(ResultsFileError, match=r"^run\.json: expected an object, found list$"):
        results_from_json([], "run.json")
