"""The example's schema (``migrations/*.sql``, applied in order) and its seed data.

``migrate_and_seed`` is the warm container's ``prepare``: it runs once, before the
checkpoint, and closes its connection (a client connection open at checkpoint time would be
dead in every restored container).
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from pytest_criu import ContainerHandle

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
PASSWORD = "pristine"  # a throwaway server's; never a real secret in a snapshot
DATABASE = "library"
AUTHORS = 500
BOOKS = 20_000
MEMBERS = 5_000
LOANS = 40_000


def migrations() -> list[tuple[int, Path]]:
    """``(version, file)`` for every migration, oldest first."""
    return sorted((int(path.name.split("_", 1)[0]), path) for path in MIGRATIONS.glob("*.sql"))


SOCKET_DIRECTORY = "/run/postgresql"  # not /var/run: a symlink, resolved on the host


def connect(handle: ContainerHandle) -> psycopg.Connection[tuple[object, ...]]:
    """A new connection to the database in the handle's current container, through the
    server's unix socket (the container has no network: see conftest.py)."""
    return psycopg.connect(
        host=handle.host_path(SOCKET_DIRECTORY),
        user="postgres",
        password=PASSWORD,
        dbname=DATABASE,
        connect_timeout=10,
        autocommit=True,
    )


def migrate_and_seed(handle: ContainerHandle) -> None:
    """Apply the migrations and load the seed rows with COPY; the state every test starts from."""
    with connect(handle) as connection:
        connection.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY)")
        for version, path in migrations():
            with connection.transaction():
                connection.execute(path.read_text())
                connection.execute("INSERT INTO schema_migrations VALUES (%s)", (version,))
        with connection.transaction(), connection.cursor() as cursor:
            with cursor.copy("COPY authors (name) FROM STDIN") as copy:
                for number in range(AUTHORS):
                    copy.write_row((f"author {number}",))
            with cursor.copy("COPY books (author_id, title, published) FROM STDIN") as copy:
                for number in range(BOOKS):
                    copy.write_row((number % AUTHORS + 1, f"book {number}", 1900 + number % 125))
            with cursor.copy("COPY members (email, joined) FROM STDIN") as copy:
                for number in range(MEMBERS):
                    copy.write_row((f"member{number}@example.test", "2026-01-01"))
            with cursor.copy("COPY loans (book_id, member_id, returned) FROM STDIN") as copy:
                for number in range(LOANS):
                    copy.write_row((number % BOOKS + 1, number % MEMBERS + 1, number % 3 == 0))
        connection.execute("VACUUM ANALYZE")
