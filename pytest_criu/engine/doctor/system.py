"""The doctor's I/O: commands with a timeout, files, sockets, and the engine's process."""

from __future__ import annotations

import gzip
import os
import shutil
import socket
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .. import procfs
from ..daemon import socket_peer_pid
from ..docker import DEFAULT_URL as DEFAULT_DOCKER_URL
from .rules import parse_cap_eff

DOCKER_PIDFILES = ("/var/run/docker.pid", "/run/docker.pid")


@dataclass(frozen=True)
class EngineProcess:
    """What /proc tells about the local engine process (dockerd or Podman's service)."""

    pid: int
    cmdline: tuple[str, ...]
    environ: Mapping[str, str] | None
    cap_eff: int | None


@dataclass(frozen=True)
class Output:
    """What a command printed, and how it ended (``returncode`` ``None``: timed out)."""

    returncode: int | None
    text: str
    timeout: float

    def summary(self) -> str:
        if self.returncode is None:
            return f"no answer within {self.timeout:g} s"
        return f"exit status {self.returncode}"


def run(command: Sequence[str], timeout: float) -> Output:
    """Run ``command`` (stdout and stderr together); never raises, never outlives ``timeout``."""
    try:
        completed = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        partial = expired.output or b""
        return Output(None, partial.decode(errors="replace"), timeout)
    except OSError as error:
        return Output(-1, str(error), timeout)
    return Output(completed.returncode, completed.stdout.decode(errors="replace"), timeout)


def read_text(path: str) -> str | None:
    """A file's text (``.gz`` decompressed), or ``None`` when it cannot be read."""
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rt", errors="replace") as stream:
                return stream.read()
        return Path(path).read_text(errors="replace")
    except (OSError, EOFError):
        return None


def resolve_executable(binary: str) -> tuple[str | None, str]:
    """``(path, "")`` for an executable path or PATH name, else ``(None, why not)``."""
    if os.sep in binary:
        if not os.path.exists(binary):
            return None, f"{binary} does not exist"
        if os.path.isdir(binary):
            return None, f"{binary} is a directory, not the criu binary"
        if not os.access(binary, os.X_OK):
            return None, f"{binary} is not executable"
        return binary, ""
    found = shutil.which(binary)
    if found is None:
        return None, f"{binary} is not on this process's PATH"
    return found, ""


def find_engine_process(url: str, timeout: float) -> EngineProcess | None:
    """The local engine process behind ``url``: the socket's peer, else the default pid file."""
    pid = None
    parts = urlsplit(url)
    if parts.scheme in ("unix", "http+unix"):
        pid = socket_peer_pid(parts.path, timeout)
    if pid is not None and not _is_engine(pid):
        pid = None  # e.g. systemd socket activation: the peer is pid 1
    if pid is None and url in (DEFAULT_DOCKER_URL, "unix:///run/docker.sock"):
        pid = _pid_from_files(DOCKER_PIDFILES)
    if pid is None or not _is_engine(pid):
        return None
    return EngineProcess(
        pid=pid,
        cmdline=tuple(procfs.cmdline(pid)),
        environ=procfs.environment(pid),
        cap_eff=parse_cap_eff(procfs.status(pid)),
    )


def unix_socket_problem(url: str, timeout: float, daemon: str = "dockerd") -> str | None:
    """Why nothing answers on a ``unix://`` URL, in plain words (``None``: try the API)."""
    parts = urlsplit(url)
    if parts.scheme not in ("unix", "http+unix"):
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(parts.path)
    except FileNotFoundError:
        return f"no socket at {parts.path} ({daemon} is not running)"
    except ConnectionRefusedError:
        return f"connection refused on {parts.path} (stale socket: {daemon} is not running)"
    except PermissionError:
        return f"Permission denied on {parts.path}"
    except OSError as error:
        return f"{parts.path}: {error.strerror or error}"
    return None


def writable(path: str | Path) -> bool:
    """Whether this process may read, write and enter ``path``."""
    return os.access(path, os.R_OK | os.W_OK | os.X_OK)


def which(name: str, path: str) -> str | None:
    return shutil.which(name, path=path)


def _pid_from_files(paths: Iterable[str]) -> int | None:
    for path in paths:
        text = read_text(path)
        if text and text.strip().isdigit():
            return int(text.strip())
    return None


def _is_engine(pid: int) -> bool:
    """Whether ``pid`` runs ``dockerd`` or ``podman`` (Podman's service)."""
    return procfs.executable_name(pid) in ("dockerd", "podman")
