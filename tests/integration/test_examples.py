"""The examples under examples/ are collected as the docs promise, and the recreate one works
without CRIU. (`scripts/run examples` runs every example against real snapshots.)"""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SUITES = {
    "redis": 7,
    "mariadb": 6,
    "pyservice": 6,
    "mixed": 8,
    "recreate": 3,
    "postgres": 8,
}


def test_every_example_is_collected_with_the_examples_ini(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        str(EXAMPLES), "--collect-only", "-q", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    # Node ids relative to examples/ show that examples/pytest.ini made it the rootdir.
    collected = [line for line in result.stdout.lines if "::" in line]
    for suite, count in SUITES.items():
        mine = [line for line in collected if line.startswith(f"{suite}/")]
        assert len(mine) == count, f"{suite}: expected {count} tests, got {mine}"
    assert len(collected) == sum(SUITES.values())


def test_recreate_example_passes_without_criu(pytester: pytest.Pytester, no_leaks: None) -> None:
    # Its own pytest.ini sets criu_fallback = recreate; a missing CRIU binary makes the host
    # "unable to snapshot", so every marked test gets a new, re-prepared container.
    result = pytester.runpytest_subprocess(
        str(EXAMPLES / "recreate"), "--criu-binary=/nonexistent/criu", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=SUITES["recreate"])
    result.stdout.fnmatch_lines(
        [
            "configfile: pytest.ini",
            # The host line follows collection (it is examined once warm containers are found).
            "collected 3 items",
            "*fallback recreate*",
            "pytest-criu: snapshots unavailable: criu: /nonexistent/criu does not exist*",
            "*- pytest-criu -*",
            "shop: recreate (no CRIU); prepared in *s; * reset before a test: median *s, p95 *s over 2",
        ]
    )


def test_recreate_example_uses_snapshots_where_it_can(
    pytester: pytest.Pytester, no_leaks: None
) -> None:
    result = pytester.runpytest_subprocess(str(EXAMPLES / "recreate"), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=SUITES["recreate"])
    result.stdout.fnmatch_lines(["shop: snapshot/fresh; prepared in *s + checkpoint *s; *"])
