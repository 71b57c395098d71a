"""Every marked test starts with the shelves as prepare() stocked them, however it is reset."""

from __future__ import annotations

import pytest
import redis
from inventory_data import INVENTORY

pytestmark = pytest.mark.criu_snapshot

PRISTINE = {name: str(count) for name, count in INVENTORY.items()}


@pytest.mark.parametrize("fruit", ["apples", "pears"])
def test_sell_out(inventory: redis.Redis, fruit: str) -> None:
    assert inventory.hgetall("inventory") == PRISTINE
    inventory.hset("inventory", fruit, 0)


def test_close_the_shop(inventory: redis.Redis) -> None:
    assert inventory.hgetall("inventory") == PRISTINE
    inventory.flushall()
