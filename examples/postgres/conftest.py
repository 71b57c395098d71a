"""Postgres as its image starts it, migrated and seeded once, restored before every marked test.

The image's entrypoint runs as root, initialises the data directory and hands over to the
``postgres`` user, as Docker Hub's ``postgres`` image does. CRIU can dump such a service only
where root has CAP_SYS_RESOURCE (GitHub's hosted runners, most VMs) or inside a user
namespace: ``userns="auto"`` gives the container one on Podman. Podman restores such a
container without its network (Podman issue 18502), so this one has none
(``network_mode="none"``) and the tests reach the server through its unix socket, which the
host sees at ``handle.host_path("/run/postgresql")``. Where neither works, the marked
tests skip and the reason names the fix.

``prepare`` applies ``migrations/*.sql`` and loads the seed rows, then closes its connection.
Every marked test may DELETE, UPDATE, TRUNCATE or DROP: the next one sees the seed again,
served by a server whose caches are already warm.

Run: ``pytest examples/postgres --criu-engine=podman`` (as root, on a host that passes
``pytest-criu doctor``); with Docker where root has CAP_SYS_RESOURCE.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import psycopg
import pytest
from library import DATABASE, PASSWORD, SOCKET_DIRECTORY, connect, migrate_and_seed

from pytest_criu import ContainerHandle, ready, warm_container

IMAGE = os.environ.get("PYTEST_CRIU_POSTGRES_IMAGE", "pytest-criu/postgres:latest")

postgres = warm_container(
    IMAGE,
    environment={
        "POSTGRES_PASSWORD": PASSWORD,
        "POSTGRES_DB": DATABASE,
        # 1 MB WAL segments instead of 16 MB: the data directory is part of the checkpoint.
        "POSTGRES_INITDB_ARGS": "--wal-segsize=1",
    },
    # The image's own command, with settings that keep the checkpoint small (restore time
    # grows with its size) and a test server fast: nothing here needs to survive a crash.
    command=[
        "postgres",
        *("-c", "shared_buffers=16MB", "-c", "max_connections=20", "-c", "jit=off"),
        *("-c", "huge_pages=off", "-c", "fsync=off", "-c", "synchronous_commit=off"),
        *("-c", "full_page_writes=off", "-c", "min_wal_size=2MB", "-c", "max_wal_size=32MB"),
    ],
    network_mode="none",
    userns="auto",
    # The image's first server (it creates the database) logs the line too, then stops.
    ready=[
        ready.log("database system is ready to accept connections", times=2),
        ready.cmd(["pg_isready", "-h", SOCKET_DIRECTORY, "-U", "postgres"]),
    ],
    prepare=migrate_and_seed,
    ready_timeout=120,
    # With --criu-cache, an edited migration must invalidate the cached snapshot.
    cache_inputs=["migrations"],
)


class Database:
    """Hands out a connection to the current container, reconnecting after each restore.

    ``handle.restores`` changes with every restore: a connection opened before it points at
    a container that is gone, so a new one is made.
    """

    def __init__(self, handle: ContainerHandle) -> None:
        self.handle = handle
        self._connection: psycopg.Connection[tuple[object, ...]] | None = None
        self._opened_at = -1

    def connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._connection is None or self._opened_at != self.handle.restores:
            self.close()
            self._connection = connect(self.handle)
            self._opened_at = self.handle.restores
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(psycopg.Error):
                self._connection.close()
            self._connection = None


@pytest.fixture(scope="session")
def database(postgres: ContainerHandle) -> Iterator[Database]:
    """The session's connection keeper."""
    keeper = Database(postgres)
    yield keeper
    keeper.close()


@pytest.fixture
def cursor(database: Database) -> Iterator[psycopg.Cursor[tuple[object, ...]]]:
    """A cursor on a connection to the container this test runs against."""
    with database.connection().cursor() as cursor:
        yield cursor
