"""What /proc says about processes (their parent, name, command line, environment, status)
and about the machine (available memory, CPU cores).

The one module that reads /proc; every reader returns an empty value (or ``None``) for a
process that is gone or unreadable rather than raising.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    name: str
    """The kernel's command name (``comm``), at most 15 characters."""
    argv: tuple[bytes, ...]


def processes() -> Iterator[Process]:
    """Every process readable now (those that end meanwhile are skipped)."""
    with os.scandir("/proc") as entries:
        pids = [int(entry.name) for entry in entries if entry.name.isdigit()]
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        if len(fields) < 2 or not fields[1].isdigit():
            continue
        name = stat[stat.find("(") + 1 : stat.rfind(")")]
        yield Process(pid, int(fields[1]), name, tuple(part for part in argv if part))


def child_named(parent: int, name: str) -> int | None:
    """A child of ``parent`` whose command name is ``name``."""
    for process in processes():
        if process.ppid == parent and process.name == name:
            return process.pid
    return None


def kill_trees(matches: Callable[[Process], bool]) -> int:
    """SIGKILL every process ``matches`` accepts, and all their descendants; count them."""
    children: dict[int, list[int]] = {}
    roots: list[int] = []
    for process in processes():
        children.setdefault(process.ppid, []).append(process.pid)
        if matches(process):
            roots.append(process.pid)
    victims: list[int] = []
    while roots:
        pid = roots.pop()
        victims.append(pid)
        roots.extend(children.get(pid, []))
    for pid in victims:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return len(victims)


def restore_of(container_id: str) -> Callable[[Process], bool]:
    """Matches the runtime's ``restore`` of ``container_id`` (runc names it on its command line)."""
    wanted = container_id.encode()
    return lambda process: b"restore" in process.argv and wanted in process.argv


def cmdline(pid: int) -> list[str]:
    """The command line of ``pid`` (empty when unreadable)."""
    raw = _read_bytes(f"/proc/{pid}/cmdline")
    return [part.decode(errors="replace") for part in (raw or b"").split(b"\0") if part]


def environment(pid: int) -> dict[str, str] | None:
    """The environment ``pid`` started with, or ``None`` when it is not readable."""
    raw = _read_bytes(f"/proc/{pid}/environ")
    if raw is None:
        return None
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {key: value for key, sep, value in pairs if sep}


def status(pid: int | str = "self") -> str:
    """The text of ``/proc/<pid>/status`` (empty when unreadable)."""
    raw = _read_bytes(f"/proc/{pid}/status")
    return raw.decode(errors="replace") if raw is not None else ""


def executable_name(pid: int) -> str | None:
    """The file name of the program ``pid`` runs, or ``None``."""
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return None


def start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (distinguishes a reused pid), or ``None``."""
    raw = _read_bytes(f"/proc/{pid}/stat")
    if raw is None:
        return None
    # The command name (field 2) may hold spaces; fields after it are space separated.
    return raw.decode(errors="replace").rpartition(")")[2].split()[19]


def pid_namespace() -> str:
    """This process's PID namespace; pids from another one say nothing here."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def anonymous_memory(pid: int) -> int | None:
    """The ``Anonymous`` memory of /proc/PID/smaps_rollup in bytes (what CRIU dumps of a
    process, roughly), or ``None``."""
    data = _read_bytes(f"/proc/{pid}/smaps_rollup")
    return _kilobytes(data, "Anonymous")


def namespace_pid(pid: int) -> int | None:
    """The pid of ``pid`` in its innermost pid namespace (``NSpid``'s last field)."""
    for line in status(pid).splitlines():
        if line.startswith("NSpid:") and line.split()[1:]:
            last = line.split()[-1]
            return int(last) if last.isdigit() else None
    return None


def uid_map(pid: int) -> list[tuple[int, int, int]] | None:
    """/proc/PID/uid_map as ``(inside, outside, count)`` lines, or ``None``."""
    data = _read_bytes(f"/proc/{pid}/uid_map")
    if data is None:
        return None
    lines = [line.split() for line in data.decode(errors="replace").splitlines()]
    return [
        (int(line[0]), int(line[1]), int(line[2]))
        for line in lines
        if len(line) == 3 and all(part.isdigit() for part in line)
    ]


def available_memory() -> int | None:
    """``MemAvailable`` of /proc/meminfo in bytes, or ``None`` when it cannot be read."""
    return _kilobytes(_read_bytes("/proc/meminfo"), "MemAvailable")


def _kilobytes(data: bytes | None, field: str) -> int | None:
    for line in (data or b"").decode(errors="replace").splitlines():
        name, _, value = line.partition(":")
        if name == field and value.split() and value.split()[0].isdigit():
            return int(value.split()[0]) * 1024
    return None


def cpu_cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) or 1


def _read_bytes(path: str) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except OSError:
        return None
