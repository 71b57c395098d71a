"""What a CRIU checkpoint's ``inventory.img`` says about how it must be restored (pure).

The image is CRIU's magic (4 bytes), the message's size (4 bytes, little endian) and a
protobuf ``inventory_entry``; only its ``network_lock_method`` (field 11) is read here.
"""

from __future__ import annotations

import struct

INVENTORY = "inventory.img"
INVENTORY_MAGIC = 0x58313116
NETWORK_LOCK_FIELD = 11
#: CRIU's NETWORK_LOCK_METHOD enum as images store it.
NETWORK_LOCKS = ("iptables", "nftables", "skip")
NFTABLES_LOCK_CHECK = ("check", "--feature", "network_lock_nftables")
"""The criu arguments that succeed where CRIU and the kernel can lock with nftables."""


class ImageError(ValueError):
    """The bytes are not a CRIU inventory image."""


def network_lock(inventory: bytes) -> str:
    """How the checkpoint locks the network on restore: ``iptables`` (also for images of
    CRIU releases that did not record it), ``nftables`` or ``skip``."""
    if len(inventory) < 8:
        raise ImageError(f"{INVENTORY} has {len(inventory)} bytes, too few")
    magic, size = struct.unpack_from("<II", inventory)
    if magic != INVENTORY_MAGIC:
        raise ImageError(f"{INVENTORY} starts with {magic:#x}, not CRIU's {INVENTORY_MAGIC:#x}")
    message = inventory[8 : 8 + size]
    if len(message) != size:
        raise ImageError(f"{INVENTORY} is cut short ({len(message)} of {size} bytes)")
    for field, value in _fields(message):
        if field == NETWORK_LOCK_FIELD and isinstance(value, int):
            if value >= len(NETWORK_LOCKS):
                raise ImageError(f"{INVENTORY} names network lock method {value}, unknown")
            return NETWORK_LOCKS[value]
    return NETWORK_LOCKS[0]


def _fields(message: bytes) -> list[tuple[int, int | bytes]]:
    fields: list[tuple[int, int | bytes]] = []
    at = 0
    while at < len(message):
        key, at = _varint(message, at)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(message, at)
            fields.append((field, value))
        elif wire == 2:
            length, at = _varint(message, at)
            fields.append((field, message[at : at + length]))
            at += length
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        else:
            raise ImageError(f"{INVENTORY} has a field of wire type {wire}, not protobuf")
    if at > len(message):
        raise ImageError(f"{INVENTORY}'s last field runs past its end")
    return fields


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while at < len(data):
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7
    raise ImageError(f"{INVENTORY} ends inside a number")
