"""Faults during a session: a container dies mid-test, a checkpoint is damaged."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.engines import EngineDaemon, find_engine, running_daemon
from tests.helpers import TINY_IMAGE

BOX = f"""
from pytest_criu import ready, warm_container

def seed(handle):
    handle.exec(["sh", "-c", "echo seeded > /seed"])

box = warm_container(
    "{TINY_IMAGE}",
    command=["sh", "-c", "echo booted; exec sleep 100000"],
    ready=ready.log("booted"),
    prepare=seed,
)
"""


@pytest.mark.usefixtures("engine")
def test_container_killed_during_a_test_fails_it_and_the_next_is_pristine(
    pytester: pytest.Pytester, no_leaks: None
) -> None:
    pytester.makeconftest(BOX)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.criu_snapshot
        def test_killed(box):
            box.exec(["touch", "/dirty"])
            box._controller.engine.kill(box.id)

        @pytest.mark.criu_snapshot
        def test_after(box):
            assert box.exec(["cat", "/seed"]) == (0, "seeded\\n")
            assert box.exec(["ls", "/dirty"])[0] != 0
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*pytest-criu: box: the container stopped during the test: the container exited "
            "with code 137; the next marked test gets a fresh restore*",
            "*- pytest-criu: box container -*",
            "FAILED *test_killed*",
        ]
    )


@pytest.mark.usefixtures("engine")
def test_damaged_checkpoint_errors_clearly_and_later_tests_run(
    pytester: pytest.Pytester, no_leaks: None
) -> None:
    pytester.makeconftest(BOX)
    pytester.makepyfile(
        """
        import os
        import pytest

        @pytest.mark.criu_snapshot
        def test_first(box):
            pass

        def test_damage_the_checkpoint(box):
            # The snapshot's largest file: memory pages (Docker) or the archive (Podman).
            checkpoint = box._controller.checkpoint
            largest = max(
                (p for p in checkpoint.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size
            )
            os.truncate(largest, 10)

        @pytest.mark.criu_snapshot
        def test_second(box):
            pass

        def test_unmarked_after_it(box):
            box.exec(["true"])
        """
    )
    # Without restore-ahead: a restore in flight while the file is cut would read the cut
    # file (placed checkpoints are hard links) and spin until the restore timeout.
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--criu-no-restore-ahead", timeout=300
    )
    # the marked test errors in set-up; the unmarked one after it is told why
    result.assert_outcomes(passed=2, errors=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*box: reset failed: box: checkpoint file * has 10 bytes, * at "
            "checkpoint time: the checkpoint was damaged*",
            "*box: no running container: the last reset failed; the next marked test tries again*",
        ]
    )


@pytest.fixture
def restartable_daemon() -> Iterator[EngineDaemon]:
    """A second Docker daemon (26.1) that a test may restart without disturbing the main one."""
    install, why = find_engine("docker-26")
    if install is None:
        pytest.fail(f"{why}; run: sudo .venv/bin/python -m tests.tooling.engines")
    criu = shutil.which("criu")
    assert criu is not None, "no criu on PATH; run: sudo .venv/bin/pytest-criu setup"
    with running_daemon(install, criu_dir=os.path.dirname(criu)) as daemon:
        yield daemon


DAEMON_RESTART_TESTS = """
import os
import time
import pytest

def wait_for(path):
    deadline = time.monotonic() + 120
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"nobody wrote {path}"
        time.sleep(0.05)

@pytest.mark.criu_snapshot
def test_before(box):
    assert box.exec(["cat", "/seed"]) == (0, "seeded\\n")

@pytest.mark.criu_snapshot
def test_during_restart(box):
    open(os.environ["RESTART_NOW"], "w").close()
    wait_for(os.environ["RESTARTED"])

@pytest.mark.criu_snapshot
def test_after(box):
    assert box.exec(["cat", "/seed"]) == (0, "seeded\\n")
    assert box.exec(["ls", "/dirty"])[0] != 0
    box.exec(["touch", "/dirty"])

@pytest.mark.criu_snapshot
def test_after_again(box):
    assert box.exec(["ls", "/dirty"])[0] != 0
"""


def test_daemon_restart_mid_session_fails_one_test_and_recovers(
    pytester: pytest.Pytester, restartable_daemon: EngineDaemon
) -> None:
    restart_now, restarted = pytester.path / "restart-now", pytester.path / "restarted"
    pytester.makeconftest(BOX)
    pytester.makepyfile(test_restart=DAEMON_RESTART_TESTS)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        f"--criu-docker-url={restartable_daemon.url}",
        "--criu-restore-timeout=60",
    ]
    environment = {**os.environ, "RESTART_NOW": str(restart_now), "RESTARTED": str(restarted)}
    with subprocess.Popen(
        command,
        cwd=pytester.path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ) as run:
        try:
            deadline = time.monotonic() + 120
            while not restart_now.exists():
                assert run.poll() is None, run.communicate()[0].decode()
                assert time.monotonic() < deadline, "the inner run never reached the restart"
                time.sleep(0.05)
            restartable_daemon.restart()
            restarted.touch()
            output = run.communicate(timeout=300)[0].decode()
        finally:
            if run.poll() is None:
                run.kill()
                run.communicate()
    assert "1 failed, 3 passed" in output, output
    assert "box: the container stopped during the test" in output, output
    client = restartable_daemon.client()
    try:
        assert client.containers(all=True) == [], "the session removed its containers"
    finally:
        client.close()
