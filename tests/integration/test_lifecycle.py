"""Strategies, fallbacks, failures and clean-up, against a real Docker Engine with CRIU."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest

from pytest_criu.engine.labels import reap_orphans
from tests.helpers import (
    BOX_CONFTEST,
    SERVICES_IMAGE,
    TINY_IMAGE,
    box_tests,
    containers_of,
    engine_named,
    labelled_resources,
    prepares,
)

pytestmark = pytest.mark.usefixtures("engine")

BOX = BOX_CONFTEST
BOX_TESTS = box_tests(3)


def prepare_count(path: Path) -> int:
    return len(prepares(path))


def test_fresh_strategy_prepares_once(
    pytester: pytest.Pytester, prepare_log: Path, no_leaks: None
) -> None:
    pytester.makeconftest(BOX)
    pytester.makepyfile(BOX_TESTS)
    junit = pytester.path / "junit.xml"
    report = pytester.path / "criu-report.json"
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-v",
        f"--junitxml={junit}",
        f"--criu-report={report}",
        timeout=300,
    )
    result.assert_outcomes(passed=3)
    assert prepare_count(prepare_log) == 1
    result.stdout.fnmatch_lines(
        [
            "*box: starting container*",
            "*box: waiting for readiness*",
            "*box: prepare*",
            "*box: checkpoint (CRIU dump)*",
            "*box: commit filesystem*",
            "box: snapshot/fresh; prepared in *s + checkpoint *s; 3 restores*",
            f"timings written to {report}",
        ]
    )
    # Every marked test's reset time, in JUnit XML and in the report.
    cases = ElementTree.parse(junit).getroot().iter("testcase")
    resets = {
        str(case.get("name")): [
            float(str(prop.get("value")))
            for prop in case.iter("property")
            if prop.get("name") == "criu_reset_seconds[box]"
        ]
        for case in cases
    }
    assert sorted(resets) == ["test_pristine[0]", "test_pristine[1]", "test_pristine[2]"]
    assert all(len(seconds) == 1 and seconds[0] >= 0 for seconds in resets.values())
    document = json.loads(report.read_text())
    (container,) = document["containers"]
    assert container["name"] == "box"
    assert container["origin"] == "prepared"
    assert container["mode"] == "snapshot/fresh"
    assert container["prepare_seconds"] > 0
    assert container["checkpoint_seconds"] > 0
    assert container["checkpoint_bytes"] > 0
    assert container["restores"] == 3
    # The first test gets the restore made at set-up: it waits for none.
    assert len(container["reset_seconds"]) == 2
    assert [test["nodeid"].rsplit("::", 1)[1] for test in document["tests"]] == sorted(resets)
    assert all(list(test["resets"]) == ["box"] for test in document["tests"])


def test_recreate_fallback_prepares_per_marked_test(
    pytester: pytest.Pytester, prepare_log: Path, no_leaks: None
) -> None:
    pytester.makeconftest(BOX)
    pytester.makepyfile(BOX_TESTS)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-q",
        "--criu-binary=/nonexistent/criu",
        "--criu-fallback=recreate",
        timeout=300,
    )
    result.assert_outcomes(passed=3)
    # the first marked test gets the container prepared at set-up; each later one a new one
    assert prepare_count(prepare_log) == 3
    result.stdout.fnmatch_lines(["box: recreate (no CRIU); prepared in *; 2 recreations*"])
    # -q: no per-phase lines (these phases take well under the slow-phase threshold here)
    result.stdout.no_fnmatch_line("[[]pytest-criu[]] *")


def test_inplace_resets_memory_and_tmpfs_but_not_files(
    pytester: pytest.Pytester, no_leaks: None
) -> None:
    pytester.makeconftest(
        f"""
        from pytest_criu import ready, warm_container

        def seed(handle):
            handle.exec(["redis-cli", "set", "seed", "1"])
            handle.exec(["sh", "-c", "echo t > /data/seed"])

        redis = warm_container(
            "{SERVICES_IMAGE}",
            command=["redis-server", "--save", "", "--appendonly", "no"],
            tmpfs={{"/data": ""}},
            ready=ready.cmd(["redis-cli", "ping"]),
            prepare=seed,
            strategy="inplace",
        )
        """
    )
    pytester.makepyfile(
        """
        import pytest

        def sh(handle, script):
            return handle.exec(["sh", "-c", script])[1].strip()

        IDS = set()

        @pytest.mark.parametrize("i", range(4))
        @pytest.mark.criu_snapshot
        def test_inplace(redis, i):
            IDS.add(redis.id)
            assert len(IDS) == 1, "in place: always the same container"
            assert sh(redis, "redis-cli dbsize") == "1"
            assert sh(redis, "ls /data") == "seed"
            # files outside tmpfs are NOT reset by the inplace strategy
            assert sh(redis, "cat /root/count 2>/dev/null | wc -l") == str(i)
            sh(redis, "redis-cli set dirty 1; touch /data/dirty; echo x >> /root/count")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["redis: snapshot/inplace; prepared in *; 4 restores*"])


def test_failing_prepare_errors_with_log_tail_and_leaks_nothing(
    pytester: pytest.Pytester, no_leaks: None
) -> None:
    pytester.makeconftest(
        f"""
        from pytest_criu import ready, warm_container

        def seed(handle):
            raise RuntimeError("migration 0003 failed")

        box = warm_container(
            "{TINY_IMAGE}",
            command=["sh", "-c", "echo hello-from-box; exec sleep 100000"],
            environment={{"DB_PASSWORD": "s3cret-value"}},
            ready=ready.log("hello-from-box"),
            prepare=seed,
        )
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.criu_snapshot
        def test_marked(box):
            pass

        def test_unmarked(box):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*pytest-criu: box: prepare raised RuntimeError: migration 0003 failed*",
            "*| hello-from-box*",
            "box: set-up failed: PrepareError: box: prepare raised RuntimeError*",
        ]
    )
    assert "s3cret-value" not in result.stdout.str()


def test_readiness_timeout_names_the_check(pytester: pytest.Pytester, no_leaks: None) -> None:
    pytester.makeconftest(
        f"""
        from pytest_criu import ready, warm_container

        box = warm_container(
            "{TINY_IMAGE}",
            command=["sh", "-c", "echo still-booting; exec sleep 100000"],
            ready=ready.log("never printed", timeout=1.5),
        )
        """
    )
    pytester.makepyfile("def test_x(box): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*box: ready.log('never printed') did not pass within 1.5s*", "*| still-booting*"]
    )


def test_container_exiting_during_readiness_fails_fast(
    pytester: pytest.Pytester, no_leaks: None
) -> None:
    pytester.makeconftest(
        f"""
        from pytest_criu import ready, warm_container

        box = warm_container(
            "{TINY_IMAGE}",
            command=["sh", "-c", "echo bad config >&2; exit 3"],
            # Far longer than the run may take: only noticing the exit can end the wait.
            ready=ready.tcp(80, timeout=3600),
            ports=[80],
        )
        """
    )
    pytester.makepyfile("def test_x(box): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*box: the container exited with code 3 while waiting for ready.tcp(80/tcp)*",
            "*| bad config*",
        ]
    )


def test_missing_image_is_a_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        from pytest_criu import warm_container

        box = warm_container("pytest-criu/no-such-image:1", pull=False)
        """
    )
    pytester.makepyfile("def test_x(box): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*image 'pytest-criu/no-such-image:1' is not available locally; build it*"]
    )


def test_declared_volume_is_covered_by_tmpfs(
    pytester: pytest.Pytester, no_leaks: None, derived_image: Callable[[str, str], str]
) -> None:
    image = derived_image(
        "pytest-criu-test/with-volume:latest", f"FROM {TINY_IMAGE}\nVOLUME /state\n"
    )
    pytester.makeconftest(
        f"""
        from pytest_criu import ready, warm_container

        box = warm_container(
            "{image}",
            command=["sh", "-c", "echo seed > /state/seed; echo up; exec sleep 100000"],
            ready=ready.log("up"),
        )
        strict = warm_container("{image}", command=["sleep", "1000"], volume_policy="refuse")
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("i", range(3))
        @pytest.mark.criu_snapshot
        def test_volume_reset(box, i):
            assert box.exec(["ls", "/state"])[1].split() == ["seed"]
            box.exec(["touch", "/state/dirty"])

        def test_refused(strict):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*box: VOLUME /state mounted as tmpfs so restores reset it*",
            "*strict: image pytest-criu-test/with-volume:latest declares VOLUME /state*",
        ]
    )


def test_failed_marked_test_shows_container_logs(
    pytester: pytest.Pytester, prepare_log: Path, no_leaks: None
) -> None:
    pytester.makeconftest(BOX.replace("echo booted;", "echo booted; echo line-from-service;"))
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.criu_snapshot
        def test_fails(box):
            box.exec(["sh", "-c", "echo during-test > /proc/1/fd/1"])
            assert False, "boom"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*- pytest-criu: box container -*", "*during-test*"])


def test_keep_on_failure_keeps_the_container(
    pytester: pytest.Pytester, prepare_log: Path, no_leaks: None, engine: str
) -> None:
    pytester.makeconftest(BOX)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.criu_snapshot
        def test_fails(box):
            assert False
        """
    )
    before = labelled_resources()[0]
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--criu-keep-on-failure", timeout=300
    )
    result.assert_outcomes(failed=1)
    kept = labelled_resources()[0] - before
    try:
        # On Docker the container's network holder stays with it.
        assert len(kept) == (2 if engine == "docker" else 1)
        line = next(line for line in result.outlines if "box: kept container" in line)
        command = line.partition("(")[2].rstrip(")").split()
        assert command[:3] == [engine, "rm", "-f"]
        assert {cid[:12] for cid in kept} == set(command[3:]), line
    finally:
        # What a user does with a kept container, plus what the next run would reap: its
        # snapshot image (in use by the kept container at the end of the run).
        connection = engine_named(engine)
        for container_id in kept:
            connection.remove(container_id)
        reap_orphans(connection)
        connection.close()


def test_checkpoint_failure_is_explained(pytester: pytest.Pytester, no_leaks: None) -> None:
    status = Path("/proc/self/status").read_text()
    cap_eff = int(
        next(line for line in status.splitlines() if line.startswith("CapEff")).split()[1], 16
    )
    if cap_eff & (1 << 24):
        pytest.skip("this host has CAP_SYS_RESOURCE: a non-root service dumps fine here")
    pytester.makeconftest(
        f"""
        from pytest_criu import ready, warm_container

        box = warm_container(
            "{TINY_IMAGE}",
            command=["sh", "-c", "echo up; exec sleep 100000"],
            user="1000",
            ready=ready.log("up"),
        )
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.criu_snapshot
        def test_marked(box):
            pass
        """
    )
    # A limit of the host: by default the marked test skips with the reason and its fix ...
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs", timeout=300)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*snapshots unavailable: CRIU could not read the rlimits of a process running as "
            "another user*; fix: *CAP_SYS_RESOURCE*",
        ]
    )
    # ... and with --criu-fallback=fail it errors with all of it, CRIU's own lines included.
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--criu-fallback=fail", timeout=300
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*CRIU could not checkpoint the container*",
            "*why: CRIU could not read the rlimits of a process running as another user*",
            "*CRIU log:*",
        ]
    )


@contextlib.contextmanager
def _run_until(
    pytester: pytest.Pytester, marker: Path, poll: float = 0.1
) -> Iterator[subprocess.Popen[bytes]]:
    """Start an inner pytest run, yield it once its test runs; never leave it behind."""
    with subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "MARKER": str(marker)},
    ) as process:
        try:
            deadline = time.monotonic() + 120
            while not marker.exists():
                assert process.poll() is None, process.communicate()[0].decode()
                assert time.monotonic() < deadline, "the inner run never reached the test"
                time.sleep(poll)
            yield process
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=120)


WAITING_TESTS = """
import os, time
import pytest

@pytest.mark.criu_snapshot
def test_waits(box):
    open(os.environ["MARKER"], "w").close()
    time.sleep(120)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_removes_everything(
    pytester: pytest.Pytester, prepare_log: Path, sig: signal.Signals, no_leaks: None
) -> None:
    pytester.makeconftest(BOX)
    pytester.makepyfile(test_waits=WAITING_TESTS)
    with _run_until(pytester, pytester.path / "in-test") as process:
        # Source, current and (restore-ahead, perhaps still in flight) the next container.
        assert len(containers_of(process.pid)) >= 2, "source and restored containers exist"
        process.send_signal(sig)
        output = process.communicate(timeout=120)[0].decode()
    assert "KeyboardInterrupt" in output, output
    assert containers_of(process.pid) == set()


def test_killed_run_is_reaped_by_the_next(
    pytester: pytest.Pytester, prepare_log: Path, no_leaks: None, engine: str
) -> None:
    pytester.makeconftest(BOX)
    pytester.makepyfile(test_waits=WAITING_TESTS)
    before = labelled_resources()
    with _run_until(pytester, pytester.path / "in-test") as process:
        process.kill()
    leftovers = labelled_resources()
    assert len(leftovers[0] - before[0]) >= 2, "SIGKILL leaves containers behind"
    # Docker: the committed snapshot image; Podman's checkpoint archive holds the files.
    assert len(leftovers[1] - before[1]) == (1 if engine == "docker" else 0)
    (pytester.path / "test_waits.py").unlink()
    pytester.makepyfile(test_other="def test_nothing(): pass")
    # any run that talks to Docker reaps; one with a warm container certainly does
    pytester.makepyfile(test_uses="def test_uses(box): pass")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*removed * containers, * images and * restore copies left by crashed pytest-criu runs*"]
    )


def test_sigint_during_prepare_removes_everything(
    pytester: pytest.Pytester, prepare_log: Path, no_leaks: None
) -> None:
    pytester.makeconftest(
        BOX.replace(
            "    assert code == 0, out\n",
            "    assert code == 0, out\n"
            "    import time\n"
            "    open(os.environ['MARKER'], 'w').close()\n"
            "    time.sleep(120)\n",
        )
    )
    pytester.makepyfile(test_waits=BOX_TESTS)
    with _run_until(pytester, pytester.path / "in-prepare") as process:
        assert len(containers_of(process.pid, holders=False)) == 1, (
            "the source container is being prepared"
        )
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=120)[0].decode()
    assert "KeyboardInterrupt" in output, output
    assert "conftest.py:" in output, f"interrupted inside prepare (in conftest.py): {output}"
    assert containers_of(process.pid) == set()


RESTORING_TESTS = """
import os
import pytest

@pytest.mark.parametrize("i", range(40))
@pytest.mark.criu_snapshot
def test_quick(box, i):
    if i == 3:
        open(os.environ["MARKER"], "w").close()
"""


def test_sigint_while_restoring_between_tests_removes_everything(
    pytester: pytest.Pytester, prepare_log: Path, no_leaks: None
) -> None:
    pytester.makeconftest(BOX)
    pytester.makepyfile(test_quick=RESTORING_TESTS)
    # Test 3 ends as the marker appears; the next test's reset (a restore, 0.15-0.5 s) follows.
    # A signal sent at once can still land in test 3's last line: wait until it has returned.
    with _run_until(pytester, pytester.path / "after-3", poll=0.005) as process:
        time.sleep(0.03)
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=120)[0].decode()
    (where,) = [line for line in output.splitlines() if line.endswith(": KeyboardInterrupt")]
    assert "test_quick.py" not in where, f"interrupted in the plugin's reset, not the test: {where}"
    assert containers_of(process.pid) == set()


def test_bind_mount_advisory_is_a_warning_that_w_error_can_act_on(
    pytester: pytest.Pytester, no_leaks: None
) -> None:
    shared = pytester.path / "shared"
    shared.mkdir()
    pytester.makeconftest(
        f"""
        from pytest_criu import warm_container

        box = warm_container(
            "{TINY_IMAGE}", command=["sleep", "100000"], volumes={{"{shared}": "/shared"}}
        )
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.criu_snapshot
        def test_x(box):
            pass
        """
    )
    fallback = ["--criu-binary=/nonexistent/criu", "--criu-fallback=recreate"]
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *fallback, timeout=300)
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*warnings summary*",
            f"*NotResetWarning: pytest-criu: box: NOT reset by restores: bind mount {shared} -> "
            "/shared; tests see each other's writes there",
        ]
    )
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        *fallback,
        "-W",
        "error::pytest_criu.NotResetWarning",
        timeout=300,
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["E * pytest_criu.NotResetWarning: pytest-criu: box: *"])


HOOK_RECORDER = """
import json
import os
import threading


def _write(kind, data):
    with open(os.environ["HOOK_LOG"], "a") as log:
        log.write(json.dumps({"hook": kind, "thread": threading.current_thread().name,
                              **data}) + "\\n")


def pytest_criu_restored(config, record):
    _write("restored", {"fixture": record.fixture, "kind": record.kind, "ahead": record.ahead,
                        "container": record.container, "phases": dict(record.phases),
                        "ok": record.ok, "made_in": record.thread})


def pytest_criu_reset(item, record):
    _write("reset", {"nodeid": item.nodeid, "fixture": record.fixture,
                     "seconds": record.seconds, "container": record.container})
"""


def test_hooks_report_every_restore_and_reset_in_the_main_thread(
    pytester: pytest.Pytester,
    prepare_log: Path,
    no_leaks: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = pytester.path / "hooks.jsonl"
    monkeypatch.setenv("HOOK_LOG", str(log))
    pytester.makeconftest(BOX + HOOK_RECORDER)
    pytester.makepyfile(BOX_TESTS)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--criu-restore-ahead", timeout=300
    )
    result.assert_outcomes(passed=3)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert {entry["thread"] for entry in entries} == {"MainThread"}
    resets = [e for e in entries if e["hook"] == "reset"]
    assert [e["nodeid"].rsplit("[", 1)[1] for e in resets] == ["0]", "1]", "2]"]
    assert resets[0]["seconds"] == 0.0, "the first test gets the first restore"
    restores = [e for e in entries if e["hook"] == "restored"]
    assert all(e["ok"] and e["kind"] == "fresh" for e in restores)
    handed = {e["container"] for e in resets}
    assert handed <= {e["container"] for e in restores}, "each test's container was restored"
    assert not restores[0]["ahead"], "the first restore is made at set-up"
    assert any(e["ahead"] and e["made_in"].startswith("criu-ahead") for e in restores)
    assert "engine restore" in restores[0]["phases"]
    # Every restore is reported before the reset that hands its container over.
    for reset in resets:
        index = entries.index(reset)
        assert reset["container"] in {
            e["container"] for e in entries[:index] if e["hook"] == "restored"
        }
