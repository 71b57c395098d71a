"""Two small Redis servers for a module that mixes marked and unmarked tests.

- ``cache`` uses ``strategy="inplace"``: resets restore the checkpoint into the same container,
  which is faster but does NOT reset the container's writable layer. That is correct here
  because Redis keeps everything in memory (``--save ""``, no append-only file) and its only
  data directory, ``/data``, is a tmpfs, which the checkpoint does hold.
- ``queue`` uses the default ``fresh`` strategy.

Clients are function-scoped: each test connects to whatever container the handle points at
now, which is the simplest way to follow restores (the host port changes with every one).

Run: ``pytest examples/mixed`` (as root, on a host that passes ``pytest-criu doctor``).
The tests in test_mixed_example.py depend on running in file order, to show what unmarked
tests share; do not shuffle them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from pytest_criu import ContainerHandle, ready, warm_container

IMAGE = os.environ.get("PYTEST_CRIU_SERVICES_IMAGE", "pytest-criu/services:latest")
REDIS = ["redis-server", "--save", "", "--appendonly", "no", "--protected-mode", "no"]


def seed_cache(handle: ContainerHandle) -> None:
    code, output = handle.exec(["redis-cli", "SET", "greeting", "hello"])
    assert code == 0, output
    assert "OK" in output, output


cache = warm_container(
    IMAGE,
    command=REDIS,
    ports=[6379],
    tmpfs={"/data": ""},
    ready=ready.cmd(["redis-cli", "ping"]),
    prepare=seed_cache,
    strategy="inplace",
)

queue = warm_container(
    IMAGE,
    command=REDIS,
    ports=[6379],
    tmpfs={"/data": ""},
    ready=ready.tcp(6379),
)


def client_for(handle: ContainerHandle) -> Iterator[redis.Redis]:
    host, port = handle.address(6379)
    client = redis.Redis(host=host, port=port, socket_timeout=10, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def cache_client(cache: ContainerHandle) -> Iterator[redis.Redis]:
    """A client of the ``cache`` container this test runs against."""
    yield from client_for(cache)


@pytest.fixture
def queue_client(queue: ContainerHandle) -> Iterator[redis.Redis]:
    """A client of the ``queue`` container this test runs against."""
    yield from client_for(queue)
