"""Reading a checkpoint's inventory.img: the network lock CRIU restores it with."""

from __future__ import annotations

import pytest

from pytest_criu.engine.criu_images import ImageError, network_lock

MAGIC = bytes.fromhex("16313158")
# The message of an inventory.img CRIU 4.2.1 wrote through runc with `network-lock nftables`
# (img_version, fdinfo_per_id, root_ids, ns_per_id, root_cg_set, lsmtype, the lock, plugins).
DUMPED = bytes.fromhex(
    "0802 1001 1a18 080110011801200128013002380340044806500758086005 2001 2801 3000 5801 6200"
)


def image(message: bytes) -> bytes:
    return MAGIC + len(message).to_bytes(4, "little") + message


def test_the_lock_of_a_real_dump_is_read_past_nested_fields() -> None:
    assert network_lock(image(DUMPED)) == "nftables"


@pytest.mark.parametrize(
    ("fields", "method"),
    [(b"\x08\x02\x58\x00", "iptables"), (b"\x08\x02\x58\x02", "skip"), (b"\x08\x02", "iptables")],
    ids=["iptables", "skip", "CRIU before 3.16 did not record it"],
)
def test_each_method(fields: bytes, method: str) -> None:
    assert network_lock(image(fields)) == method


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x16\x31", "has 2 bytes, too few"),
        (b"\x00" * 4 + b"\x02\x00\x00\x00\x08\x02", "starts with 0x0, not CRIU's 0x58313116"),
        (MAGIC + b"\x09\x00\x00\x00\x08\x02", "is cut short (2 of 9 bytes)"),
        (image(b"\x08\x82"), "ends inside a number"),
        (image(b"\x08\x02\x58\x07"), "network lock method 7, unknown"),
        (image(b"\x0b\x02"), "wire type 3, not protobuf"),
    ],
)
def test_what_is_not_an_inventory_is_named(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        network_lock(data)
