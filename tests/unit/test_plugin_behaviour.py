"""Plugin behaviour that needs no Docker: markers, options, skip reasons, fallback modes."""

from __future__ import annotations

import pytest

CONFTEST = """
from pytest_criu import ready, warm_container

box = warm_container("pytest-criu/tiny:latest", command=["sleep", "1000"])
other = warm_container("pytest-criu/tiny:latest", command=["sleep", "1000"])

import pytest

@pytest.fixture
def plain():
    return 1
"""

MISSING_CRIU = "--criu-binary=/nonexistent/criu"


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    return pytester


def test_unknown_marker_name_is_a_usage_error(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest

        @pytest.mark.criu_snapshot("redis")
        def test_x(box):
            pass
        """
    )
    result = suite.runpytest(MISSING_CRIU)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*invalid markers:*",
            "*test_x*criu_snapshot names 'redis', which the test does not use as a warm "
            "container (warm containers it uses: box)*",
        ]
    )


def test_marker_without_warm_container_is_a_usage_error(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest

        @pytest.mark.criu_snapshot
        def test_x(plain):
            pass
        """
    )
    result = suite.runpytest(MISSING_CRIU)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_x*on a test that uses no warm container*"])


@pytest.mark.parametrize("args", ["42", "name='box'"])
def test_marker_arguments_are_validated(suite: pytest.Pytester, args: str) -> None:
    suite.makepyfile(
        f"""
        import pytest

        @pytest.mark.criu_snapshot({args})
        def test_x(box):
            pass
        """
    )
    result = suite.runpytest(MISSING_CRIU)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*test_x*@pytest.mark.criu_snapshot:*"])


def test_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.criu_snapshot(*names)*"])


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (
            ["--criu-fallback=maybe"],
            "",
            "*--criu-fallback: 'maybe' is not one of skip, recreate, fail*",
        ),
        (["--criu-strategy=fast"], "", "*--criu-strategy: 'fast' is not one of fresh, inplace*"),
        (["--criu-ready-timeout=-3"], "", "*--criu-ready-timeout: '-3' must be a positive*"),
        (["--criu-restore-timeout=soon"], "", "*--criu-restore-timeout: 'soon' is not a number*"),
        ([], "criu_fallback = never", "*ini option criu_fallback: 'never' is not one of*"),
        (
            [],
            "criu_keep_on_failure = perhaps",
            "*ini option criu_keep_on_failure: 'perhaps' is not a boolean*",
        ),
    ],
)
def test_invalid_option_values_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], ini: str, message: str
) -> None:
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_cli_overrides_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncriu_strategy = inplace\ncriu_fallback = recreate\n")
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--criu-strategy=fresh", MISSING_CRIU)
    result.stdout.fnmatch_lines(["pytest-criu *; strategy fresh, fallback recreate*"])


def test_missing_criu_skips_marked_tests_with_the_reason(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(3))
        @pytest.mark.criu_snapshot
        def test_marked(box, i):
            raise AssertionError("must not run")

        def test_unmarked_without_container():
            pass
        """
    )
    result = suite.runpytest(MISSING_CRIU, "-rs")
    result.assert_outcomes(passed=1, skipped=3)
    result.stdout.fnmatch_lines(
        [
            "pytest-criu: snapshots unavailable: */nonexistent/criu does not exist*",
            "3 marked tests skipped: snapshots unavailable: *; run `pytest-criu doctor` for details",
            "SKIPPED [[]3] test_missing*.py:3: pytest-criu: snapshots unavailable: */nonexistent/criu does not exist*",
        ]
    )


def test_fallback_fail_fails_marked_tests(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest

        @pytest.mark.criu_snapshot
        def test_marked(box):
            pass
        """
    )
    result = suite.runpytest(MISSING_CRIU, "--criu-fallback=fail")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*pytest-criu: snapshots unavailable: */nonexistent/criu does not exist*"]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_plugin_can_be_disabled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("-p", "no:criu")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*pytest-criu*")


def test_world_writable_cache_dir_is_refused_at_start(pytester: pytest.Pytester) -> None:
    cache = pytester.path / "cache"
    cache.mkdir()
    cache.chmod(0o777)
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--criu-cache", f"--criu-cache-dir={cache}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*pytest-criu cache: refusing {cache}: its mode is 0777*chmod 700*"]
    )
    assert cache.stat().st_mode & 0o777 == 0o777


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--criu-cache-size=lots"], "*--criu-cache-size: 'lots' is not a size such as 5G*"),
        (["--criu-cache-size=0"], "*--criu-cache-size: '0' must be a positive size*"),
        (["--criu-lock-timeout=0"], "*--criu-lock-timeout: '0' must be a positive*"),
        (["--criu-engine=lxc"], "*--criu-engine: 'lxc' is not one of auto, docker, podman*"),
    ],
)
def test_cache_options_are_validated(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_conflicting_options_are_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--criu-restore-ahead", "--criu-strategy=inplace")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--criu-restore-ahead needs the fresh strategy*"])


def test_default_restore_ahead_yields_to_the_inplace_strategy(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--criu-strategy=inplace")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*restore-ahead*")
    pytester.makeini("[pytest]\ncriu_strategy = inplace\ncriu_restore_ahead = true\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--criu-restore-ahead needs the fresh strategy*"])


def test_unreachable_docker_url_skips_marked_and_errors_users(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest

        @pytest.mark.criu_snapshot
        def test_marked(box):
            pass

        def test_unmarked(box):
            pass
        """
    )
    result = suite.runpytest("--criu-docker-url=unix:///nonexistent/docker.sock", "-rs")
    result.assert_outcomes(skipped=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "pytest-criu *Docker unreachable*",
            "*pytest-criu: box: cannot connect to Docker at unix:///nonexistent/docker.sock*",
            "SKIPPED*snapshots unavailable: docker: *",
        ]
    )


def test_unreachable_podman_socket_skips_with_podman_named(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest

        @pytest.mark.criu_snapshot
        def test_marked(box):
            pass
        """
    )
    suite.makeini("[pytest]\ncriu_engine = podman\ncriu_engine_url = unix:///nonexistent/p.sock\n")
    result = suite.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [
            "pytest-criu *Podman unreachable*",
            "SKIPPED*snapshots unavailable: podman: cannot reach Podman at "
            "unix:///nonexistent/p.sock: no socket at /nonexistent/p.sock*"
            "fix: start Podman's service on unix:///nonexistent/p.sock*(sudo pytest-criu setup --engine podman does this on Debian and Ubuntu)*",
        ]
    )


def test_criu_path_that_is_not_executable_skips_with_the_reason(suite: pytest.Pytester) -> None:
    not_executable = suite.path / "criu"
    not_executable.write_text("#!/bin/sh\n")
    not_executable.chmod(0o644)
    suite.makepyfile(
        """
        import pytest

        @pytest.mark.criu_snapshot
        def test_marked(box):
            pass
        """
    )
    result = suite.runpytest(f"--criu-binary={not_executable}", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([f"SKIPPED*snapshots unavailable: criu: {not_executable}*"])
