"""Plugin behaviour that needs no Docker: markers, options, skip reasons, fallback modes."""

from __future__ import annotations

import json

import pytest

CONFTEST = """
from pytest_criu import ready, warm_container

box = warm_container("pytest-criu/tiny:latest", command=["sleep", "1000"])
other = warm_container("pytest-criu/tiny:latest", command=["sleep", "1000"])

import json

import pytest

@pytest.fixture
def plain():
    return 1
"""

MISSING_CRIU = "--criu-binary=/nonexistent/criu"

# What the plugin prints (its header, progress and summary), not paths that hold
# "pytest-criu", such as a clone's directory in a warning's location.
PLUGIN_OUTPUT = ("pytest-criu *", "*[[]pytest-criu[]]*", "*- pytest-criu -*")


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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("42", "expected warm-container fixture names (strings), got 42"),
        (
            "names=['box']",
            "takes no keyword arguments (got names=); it accepts warm-container fixture names "
            "as positional arguments: @pytest.mark.criu_snapshot('redis', 'db'), or none for "
            "every warm container the test uses",
        ),
    ],
)
def test_marker_arguments_are_validated(suite: pytest.Pytester, args: str, message: str) -> None:
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
    result.stderr.fnmatch_lines([f"*test_x: @pytest.mark.criu_snapshot: {message}"])
    result.stderr.no_fnmatch_line("*_validate_marker*")


def test_module_marker_applies_to_the_tests_with_warm_containers(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.criu_snapshot

        def test_marked(box):
            raise AssertionError("must not run: snapshots are unavailable")

        def test_plain(plain):
            pass

        class TestGroup:
            pytestmark = pytest.mark.criu_snapshot("other")

            def test_other(self, box, other):
                raise AssertionError("must not run")

            def test_box_only(self, box):
                pass
        """
    )
    result = suite.runpytest(MISSING_CRIU, "--criu-engine-url=unix:///nonexistent/d.sock")
    # test_box_only uses box without a reset: it errors (box cannot start without an
    # engine), which shows the class marker did not target it.
    result.assert_outcomes(passed=1, skipped=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR*test_box_only*"])


def test_module_marker_names_are_checked_before_deselection(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.criu_snapshot("other")

        def test_other(other):
            pass

        def test_plain(plain):
            pass
        """
    )
    result = suite.runpytest(MISSING_CRIU, "-k", "test_plain")
    result.assert_outcomes(passed=1, deselected=1)


def test_module_marker_naming_no_used_container_is_a_usage_error(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        test_typo="""
        import pytest

        pytestmark = pytest.mark.criu_snapshot("bx")

        def test_x(box):
            pass
        """
    )
    result = suite.runpytest(MISSING_CRIU)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*test_typo.py: @pytest.mark.criu_snapshot names 'bx', which no test under it uses "
            "as a warm container; fix the name or remove it"
        ]
    )


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
        (
            ["--criu-restore-timeout=inf"],
            "",
            "*--criu-restore-timeout: 'inf' is not a finite number of seconds; for no practical "
            "limit give a large one such as 86400",
        ),
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


def test_cli_overrides_ini(suite: pytest.Pytester) -> None:
    suite.makeini("[pytest]\ncriu_strategy = inplace\ncriu_fallback = recreate\n")
    suite.makepyfile("def test_x(box): pass")
    result = suite.runpytest("--criu-strategy=fresh", MISSING_CRIU, "--collect-only")
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
    for pattern in PLUGIN_OUTPUT:
        result.stdout.no_fnmatch_line(pattern)


def test_disabled_plugin_fails_warm_tests_in_one_line(suite: pytest.Pytester) -> None:
    suite.makepyfile("def test_x(box): pass")
    result = suite.runpytest_subprocess("-p", "no:criu")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_x*",
            "pytest-criu: box: the pytest-criu plugin is not active (disabled with "
            "-p no:criu?); warm_container fixtures need it: drop -p no:criu",
            "*short test summary*",
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")
    result.stdout.no_fnmatch_line("*During handling*")
    result.stdout.no_fnmatch_line("*UsageError*")


@pytest.mark.parametrize("autoload", [True, False])
def test_plugin_loads_with_its_package_name(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, autoload: bool
) -> None:
    if not autoload:
        monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess("-p", "pytest_criu", "--criu-strategy=inplace")
    result.assert_outcomes(passed=1)
    result = pytester.runpytest_subprocess("-p", "pytest_criu", "--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.criu_snapshot(*names)*"])


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
        (
            ["--criu-restore-ahead-depth=deep"],
            "*--criu-restore-ahead-depth: 'deep' is neither auto nor a whole number*",
        ),
        (
            ["--criu-restore-ahead-depth=9"],
            "*--criu-restore-ahead-depth: '9' must be auto or a number from 1 to 8*",
        ),
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


def test_fixtures_listing_shows_the_declaring_conftest_and_a_description(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        """
        from pytest_criu import warm_container


        def load_schema(handle):
            \"\"\"Creates the shop schema.

            More detail.
            \"\"\"


        shop = warm_container(
            "pytest-criu/services:latest", ports=[3306], prepare=load_schema
        )
        store = warm_container("pytest-criu/tiny:latest", doc="A Redis-like cache, empty.")
        """
    )
    result = pytester.runpytest("--fixtures")
    # The line of the warm_container(...) call: its first line, on Python 3.10 its last.
    result.stdout.fnmatch_lines(
        [
            "*fixtures defined from conftest*",
            "shop [[]session scope[]] -- conftest.py:1[12]",
            "    Warm container from pytest-criu/services:latest; ports 3306/tcp; prepared: "
            "Creates the shop schema. Value: a ContainerHandle; reset before tests marked "
            "criu_snapshot (pytest-criu).",
            "store [[]session scope[]] -- conftest.py:1[45]",
            "    A Redis-like cache, empty.",
        ]
    )
    result.stdout.no_fnmatch_line("*pytest_criu/fixtures.py*")


def test_doc_must_be_text(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        from pytest_criu import warm_container

        box = warm_container("pytest-criu/tiny:latest", doc=42)
        """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*SpecError: doc: expected the fixture's description as a string, got 42*"]
    )


PHASES_CONFTEST = """
import json

import pytest

@pytest.fixture
def phases(request):
    summary = request.config.pluginmanager.get_plugin("criu-summary")
    summary.phase("box", "prepare", None)
    summary.phase("box", "prepare", 0.25)
    summary.phase("box", "waiting for readiness", None)
    summary.phase("box", "waiting for readiness", 7.5)
    summary.say("box: restore-ahead failed (boom); restoring now")
"""


@pytest.mark.parametrize(
    ("verbosity", "shown", "hidden"),
    [
        (
            [],
            [
                "[[]pytest-criu[]] box: waiting for readiness done in 7.50s",
                "[[]pytest-criu[]] box: restore-ahead failed (boom); restoring now",
            ],
            ["*box: prepare*"],
        ),
        (
            ["-q"],
            ["[[]pytest-criu[]] box: waiting for readiness done in 7.50s"],
            ["*box: prepare*"],
        ),
        (["-qq"], [], list(PLUGIN_OUTPUT)),
        (
            ["-v"],
            [
                "[[]pytest-criu[]] box: prepare ...",
                "[[]pytest-criu[]] box: prepare done in 0.25s",
                "[[]pytest-criu[]] box: waiting for readiness ...",
                "[[]pytest-criu[]] box: waiting for readiness done in 7.50s",
            ],
            [],
        ),
    ],
)
def test_progress_follows_pytest_verbosity(
    pytester: pytest.Pytester, verbosity: list[str], shown: list[str], hidden: list[str]
) -> None:
    pytester.makeconftest(PHASES_CONFTEST)
    pytester.makepyfile("def test_x(phases): pass")
    result = pytester.runpytest(*verbosity)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(shown)
    for pattern in hidden:
        result.stdout.no_fnmatch_line(pattern)


@pytest.mark.parametrize("where", ["cli", "ini"])
def test_report_is_written_where_asked(pytester: pytest.Pytester, where: str) -> None:
    path = pytester.path / "reports" / "criu.json"
    args = [f"--criu-report={path}"] if where == "cli" else []
    if where == "ini":
        pytester.makeini(f"[pytest]\ncriu_report = {path}\n")
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=1)
    document = json.loads(path.read_text())
    assert (document["version"], document["containers"], document["tests"]) == (1, [], [])
    for pattern in PLUGIN_OUTPUT:
        result.stdout.no_fnmatch_line(pattern)
