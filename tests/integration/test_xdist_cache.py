"""Prepare once per run under pytest-xdist, and once per host with the snapshot cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import BOX_CONFTEST, TINY_IMAGE, box_tests, prepares

pytestmark = pytest.mark.usefixtures("engine")

CONFTEST = BOX_CONFTEST
TESTS = box_tests(8)


@pytest.fixture
def suite(pytester: pytest.Pytester, prepare_log: Path) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_box=TESTS)
    return pytester


@pytest.mark.parametrize("workers", [2, 4])
def test_xdist_prepares_once_per_run(
    suite: pytest.Pytester, prepare_log: Path, workers: int, no_leaks: None
) -> None:
    report = suite.path / "criu-report.json"
    result = suite.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", str(workers), f"--criu-report={report}", timeout=600
    )
    result.assert_outcomes(passed=8)
    assert len(prepares(prepare_log)) == 1
    result.stdout.fnmatch_lines(
        [
            "*- pytest-criu -*",
            f"box: snapshot/fresh; prepared in *; shared by {workers} workers; * restores*",
        ]
    )
    # The controller's report holds every worker's tests.
    document = json.loads(report.read_text())
    assert sorted(test["nodeid"] for test in document["tests"]) == sorted(
        f"test_box.py::test_pristine[{i}]" for i in range(8)
    )
    (container,) = document["containers"]
    assert container["processes"] == workers
    assert container["origin"] == "prepared"


def test_cache_skips_prepare_on_the_second_run(
    suite: pytest.Pytester,
    prepare_log: Path,
    no_leaks: None,
    derived_image: Callable[[str, str], str],
) -> None:
    cache = suite.path / "cache"
    args = ["-p", "no:cacheprovider", "--criu-cache", f"--criu-cache-dir={cache}"]
    try:
        first = suite.runpytest_subprocess(*args, timeout=600)
        first.assert_outcomes(passed=8)
        assert len(prepares(prepare_log)) == 1
        first.stdout.fnmatch_lines(["box: snapshot/fresh; prepared in *"])
        assert (cache.stat().st_mode & 0o777) == 0o700

        second = suite.runpytest_subprocess(*args, timeout=600)
        second.assert_outcomes(passed=8)
        assert len(prepares(prepare_log)) == 1, "the second run did not prepare"
        second.stdout.fnmatch_lines(["box: snapshot/fresh; from the cache (prepare skipped)*"])

        # a change to prepare's source invalidates the entry
        suite.makeconftest(CONFTEST.replace("echo t > /data/seed", "echo t > /data/seed; true"))
        third = suite.runpytest_subprocess(*args, timeout=600)
        third.assert_outcomes(passed=8)
        assert len(prepares(prepare_log)) == 2

        # so does another image
        image = derived_image(
            "pytest-criu-test/tiny-variant:latest", f"FROM {TINY_IMAGE}\nLABEL variant=1\n"
        )
        fourth = suite.runpytest_subprocess(*args, timeout=600)
        assert len(prepares(prepare_log)) == 2, "same image, same source: a cache hit"
        os.environ["BOX_IMAGE"] = image
        try:
            fifth = suite.runpytest_subprocess(*args, timeout=600)
        finally:
            del os.environ["BOX_IMAGE"]
        fifth.assert_outcomes(passed=8)
        fourth.assert_outcomes(passed=8)
        assert len(prepares(prepare_log)) == 3
    finally:
        cleared = suite.runpytest_subprocess(*args, "--criu-cache-clear", "--co", timeout=600)
    cleared.stdout.fnmatch_lines(["*cache cleared: 3 entries removed*"])
    assert [p for p in cache.iterdir() if p.is_dir()] == []


def test_two_concurrent_runs_share_the_cache(
    suite: pytest.Pytester, prepare_log: Path, no_leaks: None
) -> None:
    cache = suite.path / "cache"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--criu-cache",
        f"--criu-cache-dir={cache}",
    ]
    runs = [
        subprocess.Popen(command, cwd=suite.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    try:
        outputs = [run.communicate(timeout=600)[0].decode() for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
        subprocess.run(
            [*command, "--criu-cache-clear", "--co"],
            cwd=suite.path,
            capture_output=True,
            check=False,
            timeout=600,
        )
    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, output
        assert "8 passed" in output, output
    assert len(prepares(prepare_log)) == 1, "one run prepared, the other waited and reused it"


def test_killed_worker_does_not_hang_the_run(
    pytester: pytest.Pytester, prepare_log: Path, no_leaks: None
) -> None:
    # The first prepare kills its own worker while it holds the snapshot lock.
    pytester.makeconftest(
        CONFTEST.replace(
            "def seed(handle):\n",
            "def seed(handle):\n"
            "    import signal\n"
            "    first = os.environ['PREPARE_LOG'] + '.first'\n"
            "    if not os.path.exists(first):\n"
            "        open(first, 'w').close()\n"
            "        os.kill(os.getpid(), signal.SIGKILL)\n",
        )
    )
    pytester.makepyfile(test_box=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", timeout=600)
    outcomes = result.parseoutcomes()
    # the killed worker's test is reported as crashed; every other test passes
    assert outcomes.get("passed", 0) >= 6, outcomes
    assert outcomes.get("failed", 0) <= 1, outcomes
    assert len(prepares(prepare_log)) == 1, "after the first worker died, one other prepared"
