"""What testcontainers users reach for: create options, health checks, log counts, copying.

Each runs on both engines and through every container pytest-criu creates: the source it
checkpoints, the restored ones, and (without CRIU) the recreated ones.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.helpers import TINY_IMAGE

pytestmark = pytest.mark.usefixtures("engine")

NO_CRIU = ("--criu-binary=/nonexistent/criu", "--criu-fallback=recreate")

OPTIONS_CONFTEST = f"""
from pytest_criu import ready, warm_container

def check(handle):
    code, out = handle.exec(["sh", "-c", "cat /proc/sys/kernel/hostname"])
    assert out.strip() == "db-host", out

box = warm_container(
    "{TINY_IMAGE}",
    command=["sh", "-c", "echo booted; exec sleep 100000"],
    ready=ready.log("booted"),
    prepare=check,
    create_options={{
        "hostname": "db-host",
        "stop_signal": "SIGINT",
        "cap_add": ["SYS_PTRACE"],
        "cpu_shares": 512,
        "dns": ["10.9.8.53"],
        "dns_search": ["test.internal"],
        "extra_hosts": {{"api.test": "10.9.8.7"}},
        "shm_size": "96m",
        "ulimits": [{{"name": "nofile", "soft": 1234, "hard": 2345}}],
        "cap_drop": ["NET_RAW"],
        "pids_limit": 321,
        "mem_limit": "300m",
    }},
)
"""

OPTIONS_TESTS = """
import pytest

def sh(handle, script):
    code, out = handle.exec(["sh", "-c", script])
    assert code == 0, out
    return out.strip()

@pytest.mark.parametrize("i", range(3))
@pytest.mark.criu_snapshot
def test_options_reach_the_container(box, i):
    assert sh(box, "hostname") == "db-host"
    resolv = sh(box, "cat /etc/resolv.conf")
    assert "nameserver 10.9.8.53" in resolv and "search test.internal" in resolv, resolv
    assert "10.9.8.7\\tapi.test" in sh(box, "cat /etc/hosts")
    shm = [line for line in sh(box, "cat /proc/mounts").splitlines() if " /dev/shm " in line]
    assert shm and "size=98304k" in shm[0], shm
    # the service's, restored by CRIU (exec'd processes may get soft = hard: see README)
    limits = [line for line in sh(box, "cat /proc/1/limits").splitlines() if "open files" in line]
    assert limits[0].split()[3:5] == ["1234", "2345"], limits
    capabilities = int(sh(box, "grep CapEff /proc/1/status").split()[1], 16)
    assert not capabilities & (1 << 13), "NET_RAW dropped"
    assert capabilities & (1 << 0), "CHOWN kept"
    assert capabilities & (1 << 19), "SYS_PTRACE added"
    info = box._controller.engine.inspect(box.id)
    assert info["Config"]["StopSignal"] in ("SIGINT", "2"), info["Config"]["StopSignal"]
    host = info["HostConfig"]
    assert host["CpuShares"] == 512
    assert host["PidsLimit"] == 321
    assert host["Memory"] == 300 * 1024 * 1024
    sh(box, "echo dirty > /dirty")
"""


@pytest.mark.parametrize("criu", [True, False], ids=["snapshot", "recreate"])
def test_create_options_reach_every_container(
    pytester: pytest.Pytester, no_leaks: None, criu: bool
) -> None:
    pytester.makeconftest(OPTIONS_CONFTEST)
    pytester.makepyfile(OPTIONS_TESTS)
    args = ("-p", "no:cacheprovider", *(() if criu else NO_CRIU))
    result = pytester.runpytest_subprocess(*args, timeout=300)
    result.assert_outcomes(passed=3)
    mode = "snapshot/fresh" if criu else "recreate (no CRIU)"
    result.stdout.fnmatch_lines([f"box: {mode}; *"])


def test_create_options_reach_the_inplace_container(
    pytester: pytest.Pytester, no_leaks: None
) -> None:
    pytester.makeconftest(
        OPTIONS_CONFTEST.replace("create_options=", 'strategy="inplace",\n    create_options=')
    )
    pytester.makepyfile(OPTIONS_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["box: snapshot/inplace; *"])


HEALTHY_TESTS = """
import time
import pytest

def health_after_restore(box):
    deadline = time.monotonic() + 20
    while True:
        health = box.health()
        if health is not None and health.status == "healthy" or time.monotonic() > deadline:
            return health
        time.sleep(0.2)

@pytest.mark.parametrize("i", range(2))
@pytest.mark.criu_snapshot
def test_health_checks_go_on_after_a_restore(box, i):
    assert box.exec(["cat", "/tmp/up"])[1].strip() == "up"
    health = health_after_restore(box)
    assert health is not None and health.status == "healthy", health
    assert health.exit_code == 0
"""


def _healthy_conftest(image: str, options: str = "None", timeout: str = "None") -> str:
    return f"""
from pytest_criu import ready, warm_container

def started(handle):
    assert handle.health().status == "healthy"

box = warm_container(
    "{image}",
    command=["sh", "-c", "sleep 1; echo up > /tmp/up; exec sleep 100000"],
    ready=ready.healthy(timeout={timeout}),
    prepare=started,
    create_options={options},
)
"""


@pytest.fixture
def health_image(derived_image: Callable[[str, str], str], monkeypatch: pytest.MonkeyPatch) -> str:
    """The tiny image with a HEALTHCHECK (Podman keeps it only in Docker's image format)."""
    monkeypatch.setenv("BUILDAH_FORMAT", "docker")
    return derived_image(
        "pytest-criu-test/healthy:latest",
        f"FROM {TINY_IMAGE}\n"
        'HEALTHCHECK --interval=1s --timeout=5s CMD test -f /tmp/up && echo "up there"\n',
    )


@pytest.mark.parametrize("criu", [True, False], ids=["snapshot", "recreate"])
def test_ready_healthy_on_the_images_healthcheck(
    pytester: pytest.Pytester, no_leaks: None, health_image: str, criu: bool
) -> None:
    pytester.makeconftest(_healthy_conftest(health_image))
    pytester.makepyfile(HEALTHY_TESTS)
    args = ("-p", "no:cacheprovider", *(() if criu else NO_CRIU))
    result = pytester.runpytest_subprocess(*args, timeout=300)
    result.assert_outcomes(passed=2)


def test_ready_healthy_on_a_declared_healthcheck(pytester: pytest.Pytester, no_leaks: None) -> None:
    declared = '{"healthcheck": {"test": ["CMD", "test", "-f", "/tmp/up"], "interval": 10**9}}'
    pytester.makeconftest(_healthy_conftest(TINY_IMAGE, declared))
    pytester.makepyfile(HEALTHY_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=2)


def test_ready_healthy_without_a_healthcheck_fails_set_up(
    pytester: pytest.Pytester, no_leaks: None
) -> None:
    pytester.makeconftest(_healthy_conftest(TINY_IMAGE))
    pytester.makepyfile(HEALTHY_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            f"*pytest-criu: box: ready.healthy() needs a health check, and image {TINY_IMAGE} "
            "has no HEALTHCHECK: add one to the image (Podman: build it with --format docker,*",
        ]
    )
    result.stdout.no_fnmatch_line("*starting container*")


def test_ready_healthy_timeout_shows_the_last_check(
    pytester: pytest.Pytester, no_leaks: None
) -> None:
    failing = (
        '{"healthcheck": {"test": ["CMD-SHELL", "echo still warming up; exit 1"], '
        '"interval": 10**9}}'
    )
    pytester.makeconftest(_healthy_conftest(TINY_IMAGE, failing, timeout="4"))
    pytester.makepyfile(HEALTHY_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*box: ready.healthy() did not pass within 4s (last attempt: health *; the last one "
            "exited 1: still warming up)*"
        ]
    )


def test_ready_log_times(pytester: pytest.Pytester, no_leaks: None) -> None:
    pytester.makeconftest(
        f"""
        from pytest_criu import ready, warm_container

        def second_start(handle):
            assert handle.exec(["cat", "/tmp/phase"])[1].strip() == "2"

        box = warm_container(
            "{TINY_IMAGE}",
            command=["sh", "-c", "echo 1 > /tmp/phase; echo ready to accept; sleep 1; "
                     "echo 2 > /tmp/phase; echo ready to accept; exec sleep 100000"],
            ready=ready.log("^ready to accept$", times=2),
            prepare=second_start,
        )
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.criu_snapshot
        def test_second_phase(box):
            assert box.exec(["cat", "/tmp/phase"])[1].strip() == "2"
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=1)


def test_copy_into_in_prepare_is_part_of_the_snapshot(
    pytester: pytest.Pytester, no_leaks: None
) -> None:
    seed = pytester.path / "seed"
    (seed / "sql").mkdir(parents=True)
    (seed / "sql" / "0001.sql").write_text("create table t (id int);\n")
    (seed / "app.ini").write_text("[app]\nmode = test\n")
    pytester.makeconftest(
        f"""
        from pathlib import Path
        from pytest_criu import ready, warm_container

        SEED = Path(__file__).parent / "seed"

        def copy(handle):
            assert handle.exec(["mkdir", "-p", "/opt"])[0] == 0
            assert handle.copy_into(SEED / "sql", "/opt") == "/opt/sql"
            assert handle.copy_into(SEED / "app.ini", "/etc/app.ini") == "/etc/app.ini"

        box = warm_container(
            "{TINY_IMAGE}",
            command=["sh", "-c", "echo booted; exec sleep 100000"],
            tmpfs={{"/data": ""}},
            ready=ready.log("booted"),
            prepare=copy,
        )
        """
    )
    pytester.makepyfile(
        """
        from pathlib import Path
        import pytest

        def sh(handle, script):
            return handle.exec(["sh", "-c", script])[1].strip()

        @pytest.mark.parametrize("i", range(3))
        @pytest.mark.criu_snapshot
        def test_copied_files_are_restored(box, i, tmp_path):
            assert sh(box, "cat /opt/sql/0001.sql") == "create table t (id int);"
            assert sh(box, "stat -c '%u:%g' /opt/sql/0001.sql") == "0:0"
            assert sh(box, "cat /etc/app.ini") == "[app]\\nmode = test"
            assert sh(box, "ls /tmp/extra 2>/dev/null || echo none") == "none"
            extra = tmp_path / "extra"
            extra.write_text("from a test")
            box.copy_into(extra, "/tmp")
            assert sh(box, "cat /tmp/extra") == "from a test"

        @pytest.mark.criu_snapshot
        def test_bad_destinations(box, tmp_path):
            with pytest.raises(FileNotFoundError, match="directory /nope does not exist"):
                box.copy_into(Path(__file__), "/nope/x.py")
            with pytest.raises(FileNotFoundError, match="does not exist on the host"):
                box.copy_into(tmp_path / "missing", "/tmp")
            with pytest.raises(ValueError, match="is on the tmpfs mount /data"):
                box.copy_into(Path(__file__), "/data")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=4)
