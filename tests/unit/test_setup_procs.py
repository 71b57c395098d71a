"""``pytest-criu setup``'s /proc reading, against a hand-made /proc tree."""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
from pathlib import Path

from pytest_criu.setup import procs
from pytest_criu.setup.podman import PodmanSettings, serves


def fake_process(proc: Path, pid: int, name: str, state: str = "S", **files: bytes) -> None:
    entry = proc / str(pid)
    entry.mkdir(parents=True)
    (entry / "stat").write_text(f"{pid} ({name}) {state} 1 2 3\n")
    for file, content in files.items():
        (entry / file).write_bytes(content)


def test_comm_reads_names_with_spaces_and_parentheses_and_skips_zombies(tmp_path: Path) -> None:
    fake_process(tmp_path, 10, "tmux: server (x)")
    fake_process(tmp_path, 11, "dockerd", state="Z")
    assert procs.comm(10, tmp_path) == "tmux: server (x)"
    assert procs.comm(11, tmp_path) is None
    assert procs.comm(12, tmp_path) is None


def test_a_pidfile_is_stale_when_its_process_is_gone_or_another(tmp_path: Path) -> None:
    fake_process(tmp_path / "proc", 10, "dockerd")
    fake_process(tmp_path / "proc", 11, "sleep")
    pidfile = tmp_path / "docker.pid"
    assert not procs.stale_pidfile(pidfile, "dockerd", tmp_path / "proc")
    for content, stale in (("10\n", False), ("11", True), ("99", True), ("", True)):
        pidfile.write_text(content)
        assert procs.stale_pidfile(pidfile, "dockerd", tmp_path / "proc") is stale


def test_environment_path_and_command_line(tmp_path: Path) -> None:
    fake_process(
        tmp_path,
        10,
        "dockerd",
        environ=b"HOME=/root\0PATH=/usr/local/sbin:/usr/bin\0",
        cmdline=b"/usr/sbin/dockerd\0--debug\0",
    )
    assert procs.env_path(10, tmp_path) == "/usr/local/sbin:/usr/bin"
    assert procs.cmdline(10, tmp_path) == ["/usr/sbin/dockerd", "--debug"]
    assert procs.env_path(11, tmp_path) is None
    assert list(procs.pids("dockerd", tmp_path)) == [10]


def test_which_podman_process_serves_which_socket(tmp_path: Path) -> None:
    fake_process(tmp_path, 10, "podman", cmdline=b"podman\0system\0service\0--time=0\0")
    fake_process(
        tmp_path, 11, "podman", cmdline=b"podman\0system\0service\0unix:///tmp/other.sock\0"
    )
    fake_process(tmp_path, 12, "podman", cmdline=b"podman\0ps\0")
    default, other = PodmanSettings(), PodmanSettings(url="unix:///tmp/other.sock")
    assert [serves(pid, default, tmp_path) for pid in (10, 11, 12)] == [True, False, False]
    assert [serves(pid, other, tmp_path) for pid in (10, 11, 12)] == [False, True, False]
    assert other.socket == Path("/tmp/other.sock")
    assert default.pidfile.name == "podman-service.pid"
    assert other.pidfile.name.startswith("podman-service-")


def test_a_socket_nobody_listens_on_is_dead(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(path))
        listening.listen(1)
        assert procs.socket_alive(path)
    assert not procs.socket_alive(path)


def test_log_tail_starts_at_the_last_marker(tmp_path: Path) -> None:
    log = tmp_path / "d.log"
    log.write_text("old\n==== t1 MARK ====\nfirst run\n==== t2 MARK ====\na\nb\n")
    assert procs.log_tail(log, "MARK") == "a\nb"
    assert procs.log_tail(log, "MARK", lines=1) == "b"
    assert procs.log_tail(tmp_path / "none", "MARK") == "(no log)"


def test_wait_until_gives_up_after_its_timeout() -> None:
    assert not procs.wait_until(lambda: False, 0.05, step=0.01)
    assert procs.wait_until(lambda: True, 0)


def test_a_detached_daemon_reports_its_pid_and_stops_on_sigterm(tmp_path: Path) -> None:
    pidfile, log = tmp_path / "run" / "sleep.pid", tmp_path / "log" / "sleep.log"
    pid = procs.spawn_detached(["sleep", "30"], {"PATH": "/usr/bin:/bin"}, log, pidfile)
    try:
        assert procs.read_pidfile(pidfile) == pid
        assert procs.wait_until(lambda: procs.comm(pid) == "sleep", 5, step=0.02)
        assert os.getsid(pid) == pid  # its own session: it outlives this process
    finally:
        said: list[str] = []
        procs.stop(pid, "sleep", grace=5, say=said.append)
    assert procs.comm(pid) is None
    assert said == []
    assert log.exists()


def test_a_launcher_about_to_exec_the_daemon_is_not_taken_for_a_dead_one(tmp_path: Path) -> None:
    for pid, name in ((10, "nohup"), (11, "podman"), (12, "sleep")):
        fake_process(tmp_path, pid, name)
    fake_process(tmp_path, 13, "podman", state="Z")
    alive = [procs.starting_or_running(pid, "podman", tmp_path) for pid in (10, 11, 12, 13, 14)]
    assert alive == [True, True, False, False, False]


def test_which_criu_a_daemon_would_run(tmp_path: Path) -> None:
    """The daemon's own PATH decides; a real process stands in for the daemon."""
    ours, other = tmp_path / "ours", tmp_path / "other"
    for directory in (ours, other):
        directory.mkdir()
        (directory / "criu").write_text("#!/bin/sh\n")
        (directory / "criu").chmod(0o755)
    empty = tmp_path / "empty"
    empty.mkdir()
    sleep = shutil.which("sleep")
    assert sleep is not None
    cases = {
        f"{ours}:{other}": None,
        f"{other}:{ours}": f"finds {other}/criu on its PATH ({other}:{ours}), not {ours}/criu",
        str(empty): f"has no criu on its PATH ({empty})",
    }
    for path, expected in cases.items():
        with subprocess.Popen([sleep, "30"], env={"PATH": path}) as daemon:
            try:
                # Right after Popen returns, /proc may not show the new environment yet.
                assert procs.wait_until(functools.partial(_has_path, daemon.pid, path), 10)
                assert procs.criu_problem(daemon.pid, str(ours / "criu")) == expected
            finally:
                daemon.kill()


def _has_path(pid: int, path: str) -> bool:
    return procs.env_path(pid) == path
