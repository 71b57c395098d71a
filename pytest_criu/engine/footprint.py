"""Where a checkpoint's bytes are: each process's memory at checkpoint time, and the
checkpoint's files by kind (memory pages, tmpfs contents, the rest).

So that a user can shrink what ``prepare`` leaves behind: the bigger the checkpoint, the
longer every restore takes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from . import procfs

_PAGES = re.compile(r"(^|/)pages-\d+\.img$")
_TMPFS = re.compile(r"(^|/)tmpfs-dev-\d+\.tar\.gz\.img$")
SHOWN_PROCESSES = 3


@dataclass(frozen=True)
class FileKinds:
    """A checkpoint's file sizes by kind, in bytes."""

    pages: int
    tmpfs: int
    other: int

    @property
    def total(self) -> int:
        return self.pages + self.tmpfs + self.other


def file_kinds(files: Mapping[str, int]) -> FileKinds | None:
    """Sizes by kind of a CRIU image directory's files; ``None`` for an engine whose
    checkpoint is one archive (Podman)."""
    if not any(_PAGES.search(name) for name in files):
        return None
    pages = sum(size for name, size in files.items() if _PAGES.search(name))
    tmpfs = sum(size for name, size in files.items() if _TMPFS.search(name))
    return FileKinds(pages, tmpfs, sum(files.values()) - pages - tmpfs)


def process_memory(root_pid: int) -> dict[str, int]:
    """The anonymous memory of ``root_pid`` and its descendants, biggest first, keyed by
    ``name (pid N)`` with the pid as the container sees it; empty when /proc cannot say."""
    if root_pid <= 0:
        return {}
    children: dict[int, list[procfs.Process]] = {}
    found: dict[int, procfs.Process] = {}
    for process in procfs.processes():
        children.setdefault(process.ppid, []).append(process)
        found[process.pid] = process
    if root_pid not in found:
        return {}
    sizes: list[tuple[int, str]] = []
    pending = [found[root_pid]]
    while pending:
        process = pending.pop()
        pending.extend(children.get(process.pid, ()))
        anonymous = procfs.anonymous_memory(process.pid)
        if anonymous is not None:
            inner = procfs.namespace_pid(process.pid) or process.pid
            sizes.append((anonymous, f"{process.name} (pid {inner})"))
    return {label: size for size, label in sorted(sizes, reverse=True)}


def describe(memory: Mapping[str, int], files: Mapping[str, int]) -> str | None:
    """One line: where the checkpoint's bytes are; ``None`` when nothing is known."""
    if not memory and not files:
        return None
    parts: list[str] = []
    if memory:
        shown = list(memory.items())[:SHOWN_PROCESSES]
        text = ", ".join(f"{label} {_mb(size)}" for label, size in shown)
        if len(memory) > SHOWN_PROCESSES:
            rest = sum(list(memory.values())[SHOWN_PROCESSES:])
            text += f", {len(memory) - SHOWN_PROCESSES} more {_mb(rest)}"
        parts.append(f"process memory {text}")
    kinds = file_kinds(files)
    if kinds is not None:
        parts.append(
            f"files: pages {_mb(kinds.pages)}, tmpfs {_mb(kinds.tmpfs)}, other {_mb(kinds.other)}"
        )
    total = sum(files.values())
    head = f"checkpoint {_mb(total)}" if total else "checkpoint"
    return f"{head}: " + "; ".join(parts) if parts else None


def _mb(size: int) -> str:
    return f"{size / 1024**2:.1f} MB"
