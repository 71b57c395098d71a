"""Each marked test damages the migrated, seeded database; the next one sees it intact."""

from __future__ import annotations

import psycopg
import pytest
from library import AUTHORS, BOOKS, LOANS, MEMBERS, migrations

from pytest_criu import ContainerHandle

pytestmark = pytest.mark.criu_snapshot

Cursor = psycopg.Cursor[tuple[object, ...]]


def count(cursor: Cursor, query: str) -> int:
    row = cursor.execute(query).fetchone()
    assert row is not None
    return int(str(row[0]))


def assert_seeded(cursor: Cursor) -> None:
    assert count(cursor, "SELECT count(*) FROM authors") == AUTHORS
    assert count(cursor, "SELECT count(*) FROM books") == BOOKS
    assert count(cursor, "SELECT count(*) FROM members") == MEMBERS
    assert count(cursor, "SELECT count(*) FROM loans") == LOANS
    assert count(cursor, "SELECT max(version) FROM schema_migrations") == migrations()[-1][0]


def test_the_server_runs_as_postgres_not_root(postgres: ContainerHandle) -> None:
    code, users = postgres.exec(["ps", "-o", "user=", "-C", "postgres"])
    assert code == 0, users
    assert set(users.split()) == {"postgres"}


def test_delete_returned_loans(cursor: Cursor) -> None:
    assert_seeded(cursor)
    cursor.execute("DELETE FROM loans WHERE returned")
    assert cursor.rowcount == (LOANS + 2) // 3
    assert count(cursor, "SELECT count(*) FROM loans") == LOANS - (LOANS + 2) // 3


def test_update_every_book(cursor: Cursor) -> None:
    assert_seeded(cursor)
    cursor.execute("UPDATE books SET published = 2026")
    assert cursor.rowcount == BOOKS
    assert count(cursor, "SELECT count(*) FROM books WHERE published <> 2026") == 0


def test_truncate_cascades(cursor: Cursor) -> None:
    assert_seeded(cursor)
    cursor.execute("TRUNCATE authors CASCADE")
    assert count(cursor, "SELECT count(*) FROM loans") == 0


def test_drop_tables(cursor: Cursor) -> None:
    assert_seeded(cursor)
    cursor.execute("DROP TABLE loans, members CASCADE")
    tables = cursor.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
    ).fetchall()
    assert [row[0] for row in tables] == ["authors", "books", "schema_migrations"]


@pytest.mark.parametrize("round_", range(2))
def test_identities_start_where_the_seed_left_them(cursor: Cursor, round_: int) -> None:
    assert_seeded(cursor)
    row = cursor.execute(
        "INSERT INTO members (email, joined) VALUES (%s, now()) RETURNING id",
        (f"new{round_}@example.test",),
    ).fetchone()
    assert row == (MEMBERS + 1,)


def test_the_partial_index_from_migration_3_is_there(cursor: Cursor) -> None:
    names = cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'loans'").fetchall()
    assert ("loans_open",) in names
