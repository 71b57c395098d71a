"""``--criu-keys-to`` and ``pytest-criu key`` on suites that need no engine to answer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def test_keys_to_runs_no_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_would_fail():\n    assert False\n")
    keys = pytester.path / "keys.json"
    result = pytester.runpytest_inprocess(f"--criu-keys-to={keys}")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes()
    assert json.loads(keys.read_text()) == {"containers": {}, "key": "", "version": 1}


def test_key_command_says_when_no_warm_container_is_collected(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest_criu", "key"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr == "pytest-criu key: the collected tests use no warm container\n"


def test_key_command_shows_why_the_collection_failed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_broken="import no_such_module\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest_criu", "key"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "No module named 'no_such_module'" in done.stderr
    assert done.stderr.endswith("pytest-criu key: the collection failed (exit 1)\n")


def test_export_without_a_cache_says_how_to_make_one(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_criu",
            "export",
            "--cache-dir",
            str(tmp_path / "none"),
            str(tmp_path / "out.tar"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"pytest-criu export: no snapshot cache at {tmp_path / 'none'}; run the suite with "
        "--criu-cache (and the same --criu-cache-dir) first\n"
    )
