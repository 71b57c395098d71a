"""Set a network interface up inside another process's network namespace (no tools needed)."""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import socket
import struct
import threading

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
_IFREQ = "16sH22x"


def interface_up(pid: int, name: str = "lo", timeout: float = 10.0) -> bool:
    """Bring ``name`` up in the network namespace of ``pid``; ``False`` if it already was.

    Runs in a throwaway thread: ``setns`` moves only the calling thread, which then ends.
    Raises ``OSError`` when the namespace or the interface cannot be reached.
    """
    result: list[bool | BaseException] = []
    worker = threading.Thread(
        target=_in_thread, args=(pid, name, result), name="criu-netns", daemon=True
    )
    worker.start()
    worker.join(timeout)
    if not result:
        raise OSError(f"setting {name} up in the network namespace of pid {pid} timed out")
    outcome = result[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _in_thread(pid: int, name: str, result: list[bool | BaseException]) -> None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                error = ctypes.get_errno()
                raise OSError(error, f"setns into pid {pid}'s network namespace failed")
        finally:
            os.close(target)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            request = struct.pack(_IFREQ, name.encode(), 0)
            flags = struct.unpack(_IFREQ, fcntl.ioctl(probe, SIOCGIFFLAGS, request))[1]
            if flags & IFF_UP:
                result.append(False)
                return
            fcntl.ioctl(probe, SIOCSIFFLAGS, struct.pack(_IFREQ, name.encode(), flags | IFF_UP))
        result.append(True)
    except BaseException as error:  # handed to the caller's thread
        result.append(error)
