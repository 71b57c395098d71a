"""Strategy (e), the physical floor: ``criu restore`` of a plain process, no container engine.

A Python process allocating (and touching) enough memory to match a workload's checkpoint is
dumped once with ``criu dump -t PID --shell-job``; every sample is then
``criu restore --shell-job -d -v4`` of that image (the log level runc uses), timed from the
fork of ``criu`` until it exits with the process running again. The restored process is
killed and reaped before the next sample (this process makes itself a child subreaper, so
restored processes become its children).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .engine_floor import last_timestamp

PR_SET_CHILD_SUBREAPER = 36
MIB = 1024 * 1024
# What a bare ``python3 -c`` dumps besides the allocation (interpreter, libraries, heap).
_INTERPRETER_BYTES = 6 * MIB

HOLDER = """
import os, sys, time
block = bytearray(b"\\x5a") * int(sys.argv[1])  # touched: every page is dumped
os.write(1, b"ready\\n")
os.close(1)
while True:
    time.sleep(3600)
"""


def become_subreaper() -> None:
    """Adopt orphaned descendants (restored processes), so they can be waited for."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


@dataclass
class CriuSample:
    """One timed ``criu restore``: wall clock around the command, and CRIU's own log."""

    restore: float
    criu: float | None


class CriuFloor:
    """A plain process of a given size, dumped once and restored on demand."""

    def __init__(self, target_bytes: int, criu: str | None = None) -> None:
        found = criu or shutil.which("criu")
        if found is None:
            raise RuntimeError("criu is not on PATH; the physical floor needs it")
        self.criu = found
        self.target_bytes = target_bytes
        self.directory = Path(tempfile.mkdtemp(prefix="pytest-criu-bench-criu-"))
        self.images = self.directory / "images"
        self.images.mkdir()
        self.bytes = 0
        self._pid: int | None = None

    def dump(self) -> int:
        """Start the holder process, dump it (CRIU kills it); return the image size."""
        allocate = max(MIB, self.target_bytes - _INTERPRETER_BYTES)
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(allocate)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            assert holder.stdout is not None
            if holder.stdout.readline() != b"ready\n":
                raise RuntimeError("the memory-holding process did not start")
            holder.stdout.close()
            self._run(
                "dump",
                "-t",
                str(holder.pid),
                "--shell-job",
                "-D",
                str(self.images),
                "-o",
                "dump.log",
            )
            holder.wait(timeout=30)
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait()
        self.bytes = sum(path.stat().st_size for path in self.images.glob("*.img"))
        return self.bytes

    def sample(self) -> CriuSample:
        """Restore the image once (timed), then kill and reap the restored process."""
        pidfile = self.directory / "restored.pid"
        with contextlib.suppress(FileNotFoundError):
            pidfile.unlink()
        began = time.monotonic()
        self._run(
            "restore",
            "--shell-job",
            "-d",
            "-D",
            str(self.images),
            "-v4",  # runc runs CRIU at log level 4 too; the log's timestamps time CRIU itself
            "-o",
            "restore.log",
            "--pidfile",
            str(pidfile),
        )
        elapsed = time.monotonic() - began
        self._pid = int(pidfile.read_text().strip())
        self._reap()
        log = (self.images / "restore.log").read_bytes()
        return CriuSample(restore=elapsed, criu=last_timestamp(log))

    def close(self) -> None:
        """Kill a restored process that is still around; remove the images."""
        self._reap()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _reap(self) -> None:
        pid, self._pid = self._pid, None
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)

    def _run(self, *arguments: str) -> None:
        result = subprocess.run(
            [self.criu, *arguments],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            log = self.images / f"{arguments[0]}.log"
            tail = log.read_text(errors="replace").splitlines()[-5:] if log.exists() else []
            raise RuntimeError(
                f"criu {arguments[0]} failed with exit status {result.returncode}: "
                + " | ".join(tail or [result.stderr.strip()])
            )
