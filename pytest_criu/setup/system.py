"""The boundary to the host: commands run through a :class:`Runner`, so tests can fake it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class SetupError(Exception):
    """A step cannot be done; the message says what was seen and what to do."""


@dataclass(frozen=True)
class Completed:
    """What a command did."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def why(self) -> str:
        """The command and the last lines of its error output, for messages."""
        lines = [line for line in self.stderr.strip().splitlines() if line.strip()]
        tail = "; ".join(lines[-3:]) or self.stdout.strip()[-300:] or "no output"
        return f"`{' '.join(self.argv)}` exited with {self.returncode}: {tail}"


class Runner(Protocol):
    """Runs a command to completion; never raises for a non-zero exit or a missing binary."""

    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Completed: ...


def run(
    argv: Sequence[str],
    *,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Completed:
    """The real :class:`Runner`: no stdin, output captured, a timeout on everything."""
    full_env = {**os.environ, **env} if env is not None else None
    try:
        done = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=full_env,
            cwd=cwd,
            check=False,
        )
    except FileNotFoundError:
        return Completed(tuple(argv), 127, "", f"{argv[0]}: command not found")
    except subprocess.TimeoutExpired:
        return Completed(tuple(argv), 124, "", f"did not finish within {timeout:g} s")
    return Completed(tuple(argv), done.returncode, done.stdout, done.stderr)


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace ``path`` with ``text``, keeping an existing file's mode and owner."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".pytest-criu.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    if path.exists():
        st = path.stat()
        os.chmod(tmp, st.st_mode & 0o7777)
        os.chown(tmp, st.st_uid, st.st_gid)
    else:
        os.chmod(tmp, mode)
    os.replace(tmp, path)
