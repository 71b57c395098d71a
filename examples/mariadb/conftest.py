"""MariaDB migrated and seeded once, then restored by CRIU before every marked test.

The container initialises an empty data directory and starts ``mariadbd`` as root (CRIU on
hosts without CAP_SYS_RESOURCE cannot dump services running as another user) with native
AIO off (CRIU cannot dump io_uring). ``prepare`` creates an application user, runs the
SQL migrations in ``migrations/`` and seeds thousands of rows through PyMySQL, then closes its
connection. The default ``fresh`` strategy commits the container's filesystem at checkpoint
time, so the data directory (in the container's writable layer) is reset along with the
server's memory: every marked test may DELETE, UPDATE or DROP and the next one sees exact
seed counts again.

Run: ``pytest examples/mariadb`` (as root, on a host that passes ``pytest-criu doctor``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pymysql
import pytest
from shop_schema import connect, migrate_and_seed

from pytest_criu import ContainerHandle, ready, warm_container

IMAGE = os.environ.get("PYTEST_CRIU_SERVICES_IMAGE", "pytest-criu/services:latest")

mariadb = warm_container(
    IMAGE,
    command=[
        "sh",
        "-c",
        "mariadb-install-db --user=root --datadir=/var/lib/mysql --skip-test-db"
        " --auth-root-authentication-method=normal >/dev/null"
        " && exec mariadbd --user=root --datadir=/var/lib/mysql"
        " --innodb-use-native-aio=0 --bind-address=0.0.0.0 --skip-networking=0"
        " --skip-name-resolve --performance-schema=OFF"
        # Small buffers keep the checkpoint small; restore time grows with its size.
        " --innodb-buffer-pool-size=16M --innodb-log-buffer-size=2M --innodb-log-file-size=8M"
        " --aria-pagecache-buffer-size=1M --key-buffer-size=1M",
    ],
    ports=[3306],
    tmpfs={"/run/mysqld": ""},  # the server's socket and pid file
    ready=[ready.cmd(["mariadb", "-uroot", "-e", "SELECT 1"]), ready.tcp(3306)],
    prepare=migrate_and_seed,
    ready_timeout=120,
    # With --criu-cache, an edited migration must invalidate the cached snapshot. The cache
    # key covers the files holding prepare and the code it calls (shop_schema.py included),
    # not the data files they read: name those here.
    cache_inputs=["migrations"],
)


class Database:
    """Hands out a connection to the current container, reconnecting after each restore.

    Instead of a callback this watches ``handle.restores``: when the number changed since the
    connection was opened, the container behind it is gone and a new connection is made.
    """

    def __init__(self, handle: ContainerHandle) -> None:
        self.handle = handle
        self._connection: pymysql.connections.Connection[pymysql.cursors.Cursor] | None = None
        self._opened_at = -1

    def connection(self) -> pymysql.connections.Connection[pymysql.cursors.Cursor]:
        if self._connection is None or self._opened_at != self.handle.restores:
            self.close()
            self._connection = connect(self.handle)
            self._opened_at = self.handle.restores
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(pymysql.Error):
                self._connection.close()
            self._connection = None


@pytest.fixture(scope="session")
def database(mariadb: ContainerHandle) -> Iterator[Database]:
    """The session's connection keeper."""
    keeper = Database(mariadb)
    yield keeper
    keeper.close()


@pytest.fixture
def cursor(database: Database) -> Iterator[pymysql.cursors.Cursor]:
    """A cursor on a connection to the container this test runs against."""
    with database.connection().cursor() as cursor:
        yield cursor
