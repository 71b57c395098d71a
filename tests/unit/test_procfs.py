"""The /proc walker shared by daemon discovery and the killing of stuck restores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pytest_criu.engine import procfs


def test_finds_this_process_and_its_parent() -> None:
    me = next(p for p in procfs.processes() if p.pid == os.getpid())
    assert me.ppid == os.getppid()
    assert any(b"pytest" in part for part in me.argv)


def test_child_named_finds_a_direct_child() -> None:
    with subprocess.Popen(["sleep", "30"]) as child:
        try:
            assert procfs.child_named(os.getpid(), "sleep") == child.pid
            assert procfs.child_named(os.getpid(), "no-such-name") is None
        finally:
            child.kill()


def test_kill_trees_kills_the_match_and_its_descendants() -> None:
    script = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"
    marker = "pytest-criu-restore-0123456789ab"
    with subprocess.Popen([sys.executable, "-c", script, "restore", marker]) as parent:
        for _ in range(200):
            if procfs.child_named(parent.pid, "sleep"):
                break
            subprocess.run(["sleep", "0.02"], check=True)
        grandchild = procfs.child_named(parent.pid, "sleep")
        assert grandchild is not None
        assert procfs.kill_trees(procfs.restore_of(marker)) == 2
        assert parent.wait(timeout=10) == -9
    assert _dead(grandchild)


def _dead(pid: int) -> bool:
    """Gone, or a zombie waiting for its new parent to reap it."""
    for _ in range(250):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rpartition(")")[2].split()[0] in ("Z", "X"):
                    return True
        except OSError:
            return True
        subprocess.run(["sleep", "0.02"], check=True)
    return False


def test_restore_of_needs_both_words() -> None:
    process = procfs.Process(1, 0, "runc", (b"runc", b"restore", b"abc"))
    assert procfs.restore_of("abc")(process)
    assert not procfs.restore_of("abd")(process)
    assert not procfs.restore_of("abc")(procfs.Process(1, 0, "runc", (b"runc", b"abc")))


def test_available_memory_is_meminfo_s_figure() -> None:
    line = next(
        line
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemAvailable:")
    )
    expected = int(line.split()[1]) * 1024
    available = procfs.available_memory()
    assert available is not None
    assert abs(available - expected) < 256 * 1024**2, "within what changed meanwhile"


def test_cpu_cores_are_those_this_process_may_use() -> None:
    assert procfs.cpu_cores() == len(os.sched_getaffinity(0))
