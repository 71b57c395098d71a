"""What /proc says about processes: their parent, name, command line and environment."""

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
