"""A Redis server seeded once, then restored by CRIU before every marked test.

``prepare`` loads 200,000 keys with ``DEBUG POPULATE`` plus 20,000 user hashes and a
leaderboard through a ``redis`` client pipeline. CRIU checkpoints the server with that
keyspace in memory; each test marked ``@pytest.mark.criu_snapshot`` gets a new container
restored from the checkpoint, so it may FLUSHALL or delete keys without affecting the next.

Run: ``pytest examples/redis`` (as root, on a host that passes ``pytest-criu doctor``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis
from redis_keyspace import connect, seed

from pytest_criu import ContainerHandle, ready, warm_container

IMAGE = os.environ.get("PYTEST_CRIU_SERVICES_IMAGE", "pytest-criu/services:latest")

redis_server = warm_container(
    IMAGE,
    command=[
        "redis-server",
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "no",
        "--enable-debug-command",
        "yes",
    ],
    ports=[6379],
    tmpfs={"/data": ""},
    ready=ready.cmd(["redis-cli", "ping"]),
    prepare=seed,
)


class Reconnecting:
    """One client for the whole session that follows the container across restores.

    A fresh restore puts the server in a new container on a new host port, so connections
    to the previous one are useless. ``handle.on_restore`` calls :meth:`reconnect` after
    every reset, before the test body runs.
    """

    def __init__(self, handle: ContainerHandle) -> None:
        self.handle = handle
        self.client = connect(handle)
        self.connected_at = handle.restores
        handle.on_restore(self.reconnect)

    def reconnect(self, handle: ContainerHandle) -> None:
        self.client.close()
        self.client = connect(handle)
        self.connected_at = handle.restores

    def close(self) -> None:
        self.client.close()


@pytest.fixture(scope="session")
def redis_connection(redis_server: ContainerHandle) -> Iterator[Reconnecting]:
    """The session's reconnecting client (shared by every test)."""
    connection = Reconnecting(redis_server)
    yield connection
    connection.close()


@pytest.fixture
def r(redis_connection: Reconnecting, redis_server: ContainerHandle) -> redis.Redis:
    """A client connected to the container this test runs against."""
    assert redis_connection.connected_at == redis_server.restores
    return redis_connection.client
