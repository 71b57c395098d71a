"""Each marked test damages the migrated, seeded database; the next one sees it intact."""

from __future__ import annotations

import pymysql
import pytest
from shop_schema import CUSTOMERS, ORDERS, migrations

pytestmark = pytest.mark.criu_snapshot


def count(cursor: pymysql.cursors.Cursor, query: str) -> int:
    cursor.execute(query)
    row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def assert_seeded(cursor: pymysql.cursors.Cursor) -> None:
    assert count(cursor, "SELECT COUNT(*) FROM customers") == CUSTOMERS
    assert count(cursor, "SELECT COUNT(*) FROM orders") == ORDERS
    assert count(cursor, "SELECT MAX(version) FROM schema_migrations") == migrations()[-1][0]


def test_delete_cancelled_orders(cursor: pymysql.cursors.Cursor) -> None:
    assert_seeded(cursor)
    deleted = cursor.execute("DELETE FROM orders WHERE status = 'cancelled'")
    assert deleted == ORDERS // 4
    assert count(cursor, "SELECT COUNT(*) FROM orders") == ORDERS - ORDERS // 4


def test_update_every_customer(cursor: pymysql.cursors.Cursor) -> None:
    assert_seeded(cursor)
    assert count(cursor, "SELECT COUNT(*) FROM customers WHERE country = 'DE'") == CUSTOMERS
    assert cursor.execute("UPDATE customers SET country = 'FR'") == CUSTOMERS
    assert count(cursor, "SELECT COUNT(*) FROM customers WHERE country = 'DE'") == 0


def test_drop_tables(cursor: pymysql.cursors.Cursor) -> None:
    assert_seeded(cursor)
    cursor.execute("DROP TABLE orders")
    cursor.execute("DROP TABLE customers")
    cursor.execute("SHOW TABLES")
    assert sorted(row[0] for row in cursor.fetchall()) == ["order_events", "schema_migrations"]


@pytest.mark.parametrize("round_", range(2))
def test_inserts_do_not_leak(cursor: pymysql.cursors.Cursor, round_: int) -> None:
    assert_seeded(cursor)
    assert count(cursor, "SELECT COUNT(*) FROM orders WHERE note IS NOT NULL") == 0
    cursor.execute(
        "INSERT INTO orders (customer_id, total, status, note) VALUES (1, 10, 'new', %s)",
        (f"round {round_}",),
    )
    assert count(cursor, "SELECT COUNT(*) FROM orders") == ORDERS + 1


def test_the_index_from_migration_4_is_there(cursor: pymysql.cursors.Cursor) -> None:
    cursor.execute("SHOW INDEX FROM orders WHERE Key_name = 'orders_status'")
    assert cursor.fetchall()
    cursor.execute("ALTER TABLE orders DROP INDEX orders_status")
