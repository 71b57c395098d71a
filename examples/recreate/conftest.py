"""The same tests with or without CRIU: the ``recreate`` fallback.

This directory's pytest.ini sets ``criu_fallback = recreate``. On a host that can snapshot,
marked tests are reset by restoring the checkpoint as usual. On a host that cannot, they are
reset by starting a new container, waiting for readiness and running ``prepare`` again, so
they still start from the same state, only slower. The summary line says which happened:
``snapshot/fresh`` or ``recreate (no CRIU)``.

Run, on a host with snapshots:           pytest examples/recreate
Pretend CRIU is missing (recreate mode): pytest examples/recreate --criu-binary=/nonexistent
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis
from inventory_data import INVENTORY

from pytest_criu import ContainerHandle, ready, warm_container

IMAGE = os.environ.get("PYTEST_CRIU_SERVICES_IMAGE", "pytest-criu/services:latest")


def stock_shelves(handle: ContainerHandle) -> None:
    host, port = handle.address(6379)
    with redis.Redis(host=host, port=port, socket_timeout=10) as client:
        client.hset("inventory", mapping=INVENTORY)


shop = warm_container(
    IMAGE,
    command=["redis-server", "--save", "", "--appendonly", "no", "--protected-mode", "no"],
    ports=[6379],
    tmpfs={"/data": ""},
    ready=ready.cmd(["redis-cli", "ping"]),
    prepare=stock_shelves,
)


@pytest.fixture
def inventory(shop: ContainerHandle) -> Iterator[redis.Redis]:
    """A client of the shop container this test runs against."""
    host, port = shop.address(6379)
    with redis.Redis(host=host, port=port, socket_timeout=10, decode_responses=True) as client:
        yield client
