"""The MariaDB example's schema and seed: migrations, row counts and the prepare function.

Shared by its conftest.py and its tests. (Tests import it as ``shop_schema``: ``from conftest
import ...`` would pick up whichever conftest.py pytest imported last when several directories
are run together.)
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pymysql

from pytest_criu import ContainerHandle

DATABASE = "shop"
USER = "app"
PASSWORD = "app-password"  # a throwaway password for a throwaway server

CUSTOMERS = 5_000
ORDERS = 40_000
STATUSES = ("new", "paid", "shipped", "cancelled")

MIGRATIONS = Path(__file__).parent / "migrations"


def migrations() -> list[tuple[int, list[str]]]:
    """``(version, statements)`` of every ``NNNN_name.sql`` file, in version order."""
    found = []
    for path in sorted(MIGRATIONS.glob("*.sql")):
        statements = [part.strip() for part in path.read_text().split(";") if part.strip()]
        found.append((int(path.name.split("_", 1)[0]), statements))
    return found


def connect(handle: ContainerHandle) -> pymysql.connections.Connection[pymysql.cursors.Cursor]:
    """A PyMySQL connection to the container ``handle`` currently points at."""
    host, port = handle.address(3306)
    return pymysql.connect(
        host=host,
        port=port,
        user=USER,
        password=PASSWORD,
        database=DATABASE,
        autocommit=True,
        connect_timeout=10,
        read_timeout=60,
    )


def migrate_and_seed(handle: ContainerHandle) -> None:
    """Create the application user and database, migrate the schema, seed the rows."""
    code, output = handle.exec(
        [
            "mariadb",
            "-uroot",
            "-e",
            f"CREATE DATABASE {DATABASE};"
            f"CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}';"
            f"GRANT ALL ON {DATABASE}.* TO '{USER}'@'%';",
        ]
    )
    assert code == 0, output
    connection = connect(handle)
    try:
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE schema_migrations (version INT PRIMARY KEY) ENGINE=InnoDB")
            for version, statements in migrations():
                for statement in statements:
                    cursor.execute(statement)
                cursor.execute("INSERT INTO schema_migrations VALUES (%s)", (version,))
            connection.begin()
            cursor.executemany(
                "INSERT INTO customers (email, name) VALUES (%s, %s)",
                [(f"c{n}@example.com", f"Customer {n}") for n in range(1, CUSTOMERS + 1)],
            )
            cursor.executemany(
                "INSERT INTO orders (customer_id, total, status) VALUES (%s, %s, %s)",
                [
                    (n % CUSTOMERS + 1, Decimal(n % 500) + Decimal("0.99"), STATUSES[n % 4])
                    for n in range(ORDERS)
                ],
            )
            connection.commit()
    finally:
        connection.close()  # nothing connected while CRIU dumps the server
