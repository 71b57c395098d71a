"""Work inside another process's network namespace (no tools needed): interfaces, ARP."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import TypeVar

CLONE_NEWNET = 0x40000000
SIOCGIFADDR = 0x8915
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCGIFHWADDR = 0x8927
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
ETH_P_ARP = 0x0806
ARP_REQUEST = 1
_IFREQ = "16sH22x"

T = TypeVar("T")


def interface_up(pid: int, name: str = "lo", timeout: float = 10.0) -> bool:
    """Bring ``name`` up in the network namespace of ``pid``; ``False`` if it already was.

    Raises ``OSError`` when the namespace or the interface cannot be reached.
    """

    def work() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            request = struct.pack(_IFREQ, name.encode(), 0)
            flags = struct.unpack(_IFREQ, fcntl.ioctl(probe, SIOCGIFFLAGS, request))[1]
            if flags & IFF_UP:
                return False
            fcntl.ioctl(probe, SIOCSIFFLAGS, struct.pack(_IFREQ, name.encode(), flags | IFF_UP))
        return True

    return _in_namespace(pid, work, timeout, f"setting {name} up")


def announce(pid: int, timeout: float = 10.0) -> int:
    """Broadcast a gratuitous ARP for every interface's IPv4 address in ``pid``'s namespace.

    Neighbours (the host's bridge among them) that still map an address to the MAC of a
    previous container that held it update their entry now instead of after ~30 s. Returns
    how many addresses were announced.
    """

    def work() -> int:
        announced = 0
        for _, name in socket.if_nameindex():
            frame = _gratuitous_arp(name)
            if frame is None:
                continue
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as raw:
                raw.bind((name, ETH_P_ARP))
                raw.send(frame)
            announced += 1
        return announced

    return _in_namespace(pid, work, timeout, "announcing its addresses")


def _in_namespace(pid: int, work: Callable[[], T], timeout: float, what: str) -> T:
    """Run ``work`` in a throwaway thread moved into ``pid``'s network namespace.

    ``setns`` moves only the calling thread, which ends afterwards; sockets belong to the
    namespace of the thread that creates them.
    """
    outcome: list[T | BaseException] = []

    def run() -> None:
        try:
            _enter(pid)
            outcome.append(work())
        except BaseException as error:  # handed to the caller's thread
            outcome.append(error)

    worker = threading.Thread(target=run, name="criu-netns", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise OSError(f"{what} in the network namespace of pid {pid} timed out")
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


def _enter(pid: int) -> None:
    """Move the calling thread into the network namespace of ``pid``."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns into pid {pid}'s network namespace failed")
    finally:
        os.close(target)


def _gratuitous_arp(name: str) -> bytes | None:
    """The broadcast frame announcing ``name``'s IPv4 address, or ``None`` (loopback, none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16s24x", name.encode())
        flags = struct.unpack(_IFREQ, fcntl.ioctl(probe, SIOCGIFFLAGS, request))[1]
        if flags & IFF_LOOPBACK or not flags & IFF_UP:
            return None
        mac = fcntl.ioctl(probe, SIOCGIFHWADDR, request)[18:24]
        try:
            ip = fcntl.ioctl(probe, SIOCGIFADDR, request)[20:24]
        except OSError as error:
            if error.errno == errno.EADDRNOTAVAIL:
                return None
            raise
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, ARP_REQUEST) + mac + ip + b"\x00" * 6 + ip
    return b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP) + arp
