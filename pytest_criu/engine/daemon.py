"""Where a local dockerd keeps its runtime state, found through its socket and /proc.

Docker's API does not say where runc's state, containerd's task directories (with CRIU's
logs) or containerd's unpacked restore copies live; they follow from the daemon's
``--exec-root`` and its containerd's ``TMPDIR``. Two daemons on one host (a test matrix)
differ in both, so each engine finds its own daemon through its socket.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from . import procfs

DEFAULT_EXEC_ROOT = "/var/run/docker"


def socket_peer_pid(path: str, timeout: float = 2.0) -> int | None:
    """The pid of the process serving the unix socket ``path`` (SO_PEERCRED), or ``None``."""
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    pid: int = struct.unpack("3i", raw)[0]
    return pid or None


def option_value(cmdline: Sequence[str], option: str) -> str | None:
    """The value of ``--option VALUE`` or ``--option=VALUE`` in a command line."""
    for index, argument in enumerate(cmdline):
        if argument == option and index + 1 < len(cmdline):
            return cmdline[index + 1]
        if argument.startswith(f"{option}="):
            return argument.split("=", 1)[1]
    return None


@dataclass(frozen=True)
class DaemonPaths:
    """The local daemon's state directories."""

    exec_root: str = DEFAULT_EXEC_ROOT
    containerd_tmp: str = "/tmp"

    @property
    def runc_roots(self) -> tuple[str, ...]:
        return (f"{self.exec_root}/runtime-runc/moby", "/run/docker/runtime-runc/moby")

    @property
    def task_roots(self) -> tuple[str, ...]:
        return (
            f"{self.exec_root}/containerd/daemon/io.containerd.runtime.v2.task/moby",
            "/run/containerd/io.containerd.runtime.v2.task/moby",
        )

    @classmethod
    def of_socket(cls, path: str | None) -> DaemonPaths:
        """Find the daemon behind ``path`` (default socket if ``None``) and its containerd."""
        pid = socket_peer_pid(path or "/var/run/docker.sock")
        if pid is None:
            return cls()
        exec_root = option_value(procfs.cmdline(pid), "--exec-root") or DEFAULT_EXEC_ROOT
        containerd = procfs.child_named(pid, "containerd")
        tmp = (procfs.environment(containerd) or {}).get("TMPDIR") if containerd else None
        if tmp is None:  # a managed containerd inherits it
            tmp = (procfs.environment(pid) or {}).get("TMPDIR")
        return cls(exec_root=exec_root.rstrip("/"), containerd_tmp=tmp or "/tmp")
