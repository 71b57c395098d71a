"""Processes on this host through /proc: who runs, with which PATH; start and stop daemons."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

PROC = Path("/proc")


def comm(pid: int, proc: Path = PROC) -> str | None:
    """The name of live process ``pid``; None when it is gone or a zombie.

    A zombie still has a /proc entry, which a daemon's own pid-file check takes for a live one.
    """
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    name, _, state = stat.partition("(")[2].rpartition(")")
    if state.split()[:1] in (["Z"], ["X"]):
        return None
    return name


#: What a process started by :func:`spawn_detached` is called before it execs the daemon.
LAUNCHERS = ("sh", "env", "nohup")


def starting_or_running(pid: int, name: str, proc: Path = PROC) -> bool:
    """Whether ``pid`` is the daemon ``name``, or still its launcher about to exec it."""
    return comm(pid, proc) in (name, *LAUNCHERS)


def read_pidfile(path: Path) -> int | None:
    try:
        digits = "".join(ch for ch in path.read_text() if ch.isdigit())
    except OSError:
        return None
    return int(digits) if digits else None


def pids(name: str, proc: Path = PROC) -> Iterator[int]:
    """Live processes called exactly ``name``."""
    for entry in proc.iterdir():
        if entry.name.isdigit() and comm(int(entry.name), proc) == name:
            yield int(entry.name)


def cmdline(pid: int, proc: Path = PROC) -> list[str]:
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def env_path(pid: int, proc: Path = PROC) -> str | None:
    """The PATH a running process was started with (None: unreadable or unset)."""
    try:
        raw = (proc / str(pid) / "environ").read_bytes()
    except OSError:
        return None
    for item in raw.split(b"\0"):
        if item.startswith(b"PATH="):
            return item[5:].decode(errors="replace")
    return None


def criu_problem(pid: int, criu: str) -> str | None:
    """Why the daemon ``pid`` would not run ``criu`` (None: its PATH finds it first)."""
    path = env_path(pid)
    found = shutil.which("criu", path=path or "/usr/sbin:/usr/bin:/sbin:/bin")
    if found is None:
        return f"has no criu on its PATH ({path})"
    if os.path.realpath(found) != os.path.realpath(criu):
        return f"finds {found} on its PATH ({path}), not {criu}"
    return None


def socket_alive(path: Path, timeout: float = 3.0) -> bool:
    """Whether something accepts connections on the unix socket ``path``."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def stale_pidfile(path: Path, name: str, proc: Path = PROC) -> bool:
    """A pid file whose process is not a live ``name`` (a killed daemon leaves it behind)."""
    if not path.exists():
        return False
    pid = read_pidfile(path)
    return pid is None or comm(pid, proc) != name


def spawn_detached(
    argv: Sequence[str], env: Mapping[str, str], log: Path, pidfile: Path, timeout: float = 5.0
) -> int:
    """Start a daemon in its own session (no terminal; it outlives this command), output
    appended to ``log``; the launcher writes the pid it is about to exec into ``pidfile``, so
    that a daemon dying at start-up is seen at once. Returns that pid.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.unlink(missing_ok=True)
    launcher = ["setsid", "-f", "sh", "-c", 'echo $$ >"$0"; exec "$@"', str(pidfile)]
    with open(log, "ab") as out:
        subprocess.run(
            [*launcher, "env", "-i", *(f"{k}={v}" for k, v in env.items()), *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd="/",
            check=True,
            timeout=timeout,
        )
    if not wait_until(lambda: read_pidfile(pidfile) is not None, timeout, step=0.05):
        raise OSError(f"the launcher did not write {pidfile} within {timeout:g} s")
    pid = read_pidfile(pidfile)
    assert pid is not None
    return pid


def stop(pid: int, name: str, grace: float = 30.0, say: Callable[[str], None] = print) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if wait_until(lambda: comm(pid) != name, grace):
        return
    say(f"{name} {pid} did not stop within {grace:g} s of SIGTERM; killing it")
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    wait_until(lambda: comm(pid) != name, 5.0)


def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


def log_tail(path: Path, marker: str, lines: int = 25) -> str:
    """The last ``lines`` lines of ``path`` written after the last ``marker`` line."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    after = text.rsplit(marker, 1)[-1].splitlines()[1:] if marker in text else text.splitlines()
    return "\n".join(after[-lines:])
