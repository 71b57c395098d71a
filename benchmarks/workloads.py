"""The benchmark's workloads: what is prepared once, and what every test checks.

Each :class:`Workload` describes one warm container (image, command, readiness, ``prepare``)
and a ``probe`` that every benchmark test runs: it asserts that the container is pristine
(so a fast but wrong reset would fail the run, not win it) and then dirties it, as a real
test would. The same definitions are used by the generated pytest suites (which declare them
with :func:`declare`) and by the engine-floor measurements, which drive
:class:`~pytest_criu.engine.snapshot.WarmContainer` directly.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from pytest_criu import ContainerHandle, ready, warm_container

TINY_IMAGE = os.environ.get("PYTEST_CRIU_TINY_IMAGE", "pytest-criu/tiny:latest")
SERVICES_IMAGE = os.environ.get("PYTEST_CRIU_SERVICES_IMAGE", "pytest-criu/services:latest")
REPOSITORY = Path(__file__).resolve().parent.parent
BENCH_LABEL = "io.pytest-criu.benchmark"
"""Label on every container and image the benchmark creates (value: the run's id)."""

Prepare = Callable[[ContainerHandle], object]
Probe = Callable[[ContainerHandle], None]


@dataclass(frozen=True)
class Workload:
    """One warm container to benchmark."""

    name: str
    description: str
    image: str
    command: tuple[str, ...]
    ready: tuple[Any, ...]
    prepare: Prepare | None
    probe: Probe
    ports: tuple[int, ...] = ()
    tmpfs: dict[str, str] = field(default_factory=dict)
    ready_timeout: float = 120.0
    inplace_ok: bool = True
    """Whether every state the probe dirties lives in memory or tmpfs (what inplace resets)."""

    def declaration_kwargs(self, run_id: str) -> dict[str, Any]:
        """Keyword arguments of ``warm_container`` for this workload."""
        return {
            "command": list(self.command),
            "ports": list(self.ports),
            "tmpfs": dict(self.tmpfs),
            "ready": list(self.ready),
            "prepare": self.prepare,
            "ready_timeout": self.ready_timeout,
            "pull": False,
            "labels": {BENCH_LABEL: run_id},
        }


def declare(name: str, run_id: str) -> Any:
    """``warm_container(...)`` for the workload ``name``: used by the generated conftests."""
    workload = WORKLOADS[name]
    return warm_container(workload.image, **workload.declaration_kwargs(run_id))


def _address(handle: ContainerHandle, port: int) -> tuple[str, int]:
    """The container's own address (as ``ready.tcp`` uses), else its published port.

    Through Docker's userland proxy (the published port on 127.0.0.1) a reply was lost now
    and then on this machine: MariaDB had finished a 25,000-row INSERT and sat idle while the
    client waited for the answer until its 60 s timeout (3 of about 40 prepares).
    """
    address = handle.container_address()
    return (address, port) if address else handle.address(port)


# -- tiny: busybox ------------------------------------------------------------------------


def _tiny_prepare(handle: ContainerHandle) -> None:
    code, output = handle.exec(["sh", "-c", "echo seeded > /seed && echo seeded > /data/seed"])
    assert code == 0, output


def _tiny_probe(handle: ContainerHandle) -> None:
    # Only tmpfs is dirtied: the in-place strategy does not reset the writable layer.
    script = "test -e /data/dirty && echo dirty; cat /seed /data/seed; touch /data/dirty"
    code, output = handle.exec(["sh", "-c", script])
    assert code == 0, output
    assert output.split() == ["seeded", "seeded"], f"container not pristine: {output!r}"


# -- Redis: DEBUG POPULATE ----------------------------------------------------------------


def _redis_client(handle: ContainerHandle) -> Any:
    import redis

    host, port = _address(handle, 6379)
    return redis.Redis(host=host, port=port, socket_timeout=30)


def _redis_prepare(keys: int) -> Prepare:
    def prepare(handle: ContainerHandle) -> None:
        client = _redis_client(handle)
        try:
            client.execute_command("DEBUG", "POPULATE", keys, "key", 64)
            assert client.dbsize() == keys
        finally:
            client.close()  # nothing connected at checkpoint time

    prepare.__name__ = prepare.__qualname__ = f"populate_{keys}"
    return prepare


def _redis_probe(keys: int) -> Probe:
    def probe(handle: ContainerHandle) -> None:
        client = _redis_client(handle)
        try:
            size = client.dbsize()
            assert size == keys, f"container not pristine: {size} keys, expected {keys}"
            # Dirty it cheaply (FLUSHALL of a million keys takes seconds): any later probe
            # that sees this container finds a different key count.
            client.delete(*[f"key:{number}" for number in range(100)])
            client.set("probe:dirty", 1)
        finally:
            client.close()

    return probe


def _redis_short_test(handle: ContainerHandle, i: int, *, pristine: bool) -> None:
    """A millisecond test, as most are: connect, write two keys, read one back."""
    client = _redis_client(handle)
    try:
        client.set(f"user:{i}", "name")
        count = client.incr("short:counter")
        assert client.get(f"user:{i}") == b"name"
        if pristine:
            assert count == 1, f"container not pristine: counter is {count}"
    finally:
        client.close()


def _redis(name: str, keys: int) -> Workload:
    return Workload(
        name=name,
        description=f"redis-server, {keys:,} keys from DEBUG POPULATE (64-byte values)",
        image=SERVICES_IMAGE,
        command=(
            "redis-server",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            "--enable-debug-command",
            "yes",
        ),
        ports=(6379,),
        tmpfs={"/data": ""},
        ready=(ready.tcp(6379),),
        prepare=_redis_prepare(keys),
        probe=_redis_probe(keys),
    )


# -- MariaDB: migrations and a few hundred thousand rows ----------------------------------

MARIADB_DATABASE = "shop"
MARIADB_USER = "app"
MARIADB_PASSWORD = "app-password"  # a throwaway password for a throwaway server
CUSTOMERS = 20_000
PRODUCTS = 5_000
ORDERS = 100_000
ORDER_ITEMS = 200_000
CHUNK = 25_000
STATUSES = ("new", "paid", "shipped", "cancelled")
SEED_ROWS = CUSTOMERS + PRODUCTS + ORDERS + ORDER_ITEMS

#: Schema migrations, one list of DDL statements per version, as a migration tool runs them.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE customers (id INT PRIMARY KEY AUTO_INCREMENT,"
        " email VARCHAR(255) NOT NULL, name VARCHAR(255) NOT NULL) ENGINE=InnoDB",
        "CREATE UNIQUE INDEX customers_email ON customers (email)",
        "CREATE TABLE addresses (id INT PRIMARY KEY AUTO_INCREMENT, customer_id INT NOT NULL,"
        " street VARCHAR(255) NOT NULL, city VARCHAR(100) NOT NULL) ENGINE=InnoDB",
    ),
    (
        "CREATE TABLE categories (id INT PRIMARY KEY AUTO_INCREMENT,"
        " name VARCHAR(100) NOT NULL) ENGINE=InnoDB",
        "CREATE TABLE products (id INT PRIMARY KEY AUTO_INCREMENT, sku VARCHAR(32) NOT NULL,"
        " name VARCHAR(255) NOT NULL, price DECIMAL(10, 2) NOT NULL) ENGINE=InnoDB",
        "CREATE UNIQUE INDEX products_sku ON products (sku)",
        "CREATE TABLE product_categories (product_id INT NOT NULL, category_id INT NOT NULL,"
        " PRIMARY KEY (product_id, category_id)) ENGINE=InnoDB",
    ),
    (
        "CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, customer_id INT NOT NULL,"
        " total DECIMAL(10, 2) NOT NULL, status VARCHAR(16) NOT NULL) ENGINE=InnoDB",
        "CREATE TABLE order_items (id INT PRIMARY KEY AUTO_INCREMENT, order_id INT NOT NULL,"
        " product_id INT NOT NULL, quantity INT NOT NULL) ENGINE=InnoDB",
        "ALTER TABLE orders ADD CONSTRAINT orders_customer"
        " FOREIGN KEY (customer_id) REFERENCES customers (id)",
        "ALTER TABLE order_items ADD CONSTRAINT order_items_order"
        " FOREIGN KEY (order_id) REFERENCES orders (id)",
    ),
    (
        "ALTER TABLE customers ADD COLUMN country CHAR(2) NOT NULL DEFAULT 'DE'",
        "ALTER TABLE customers ADD COLUMN created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP",
        "CREATE INDEX customers_country ON customers (country)",
    ),
    (
        "CREATE INDEX orders_status ON orders (status)",
        "ALTER TABLE orders ADD COLUMN note TEXT NULL",
        "ALTER TABLE orders ADD COLUMN placed_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP",
        "CREATE INDEX orders_placed_at ON orders (placed_at)",
    ),
    (
        "CREATE TABLE payments (id INT PRIMARY KEY AUTO_INCREMENT, order_id INT NOT NULL,"
        " amount DECIMAL(10, 2) NOT NULL, method VARCHAR(16) NOT NULL) ENGINE=InnoDB",
        "CREATE INDEX payments_order ON payments (order_id)",
        "CREATE TABLE shipments (id INT PRIMARY KEY AUTO_INCREMENT, order_id INT NOT NULL,"
        " carrier VARCHAR(32) NOT NULL, shipped_at TIMESTAMP NULL) ENGINE=InnoDB",
        "CREATE INDEX shipments_order ON shipments (order_id)",
    ),
    (
        "CREATE TABLE order_events (id BIGINT PRIMARY KEY AUTO_INCREMENT, order_id INT NOT NULL,"
        " happened_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,"
        " KEY order_events_order (order_id)) ENGINE=InnoDB",
        "CREATE TABLE reviews (id INT PRIMARY KEY AUTO_INCREMENT, product_id INT NOT NULL,"
        " customer_id INT NOT NULL, stars TINYINT NOT NULL, body TEXT NULL) ENGINE=InnoDB",
        "CREATE INDEX reviews_product ON reviews (product_id)",
    ),
    (
        "ALTER TABLE products ADD COLUMN stock INT NOT NULL DEFAULT 0",
        "ALTER TABLE products ADD COLUMN active BOOLEAN NOT NULL DEFAULT TRUE",
        "CREATE INDEX products_active ON products (active)",
        "CREATE TABLE coupons (code VARCHAR(32) PRIMARY KEY,"
        " percent TINYINT NOT NULL, valid_until DATE NULL) ENGINE=InnoDB",
    ),
    (
        "ALTER TABLE order_items ADD COLUMN unit_price DECIMAL(10, 2) NOT NULL DEFAULT 0",
        "CREATE INDEX order_items_product ON order_items (product_id)",
        "ALTER TABLE addresses ADD COLUMN zip VARCHAR(10) NULL",
        "CREATE INDEX addresses_customer ON addresses (customer_id)",
    ),
    (
        "CREATE TABLE audit_log (id BIGINT PRIMARY KEY AUTO_INCREMENT,"
        " entity VARCHAR(32) NOT NULL, entity_id INT NOT NULL, change_json TEXT NOT NULL)"
        " ENGINE=InnoDB",
        "CREATE INDEX audit_log_entity ON audit_log (entity, entity_id)",
        "ALTER TABLE orders ADD COLUMN coupon_code VARCHAR(32) NULL",
    ),
)
MIGRATION_STATEMENTS = sum(len(statements) for statements in MIGRATIONS)
MARIADB_COMMAND = (
    "sh",
    "-c",
    "mariadb-install-db --user=root --datadir=/var/lib/mysql --skip-test-db"
    " --auth-root-authentication-method=normal >/dev/null"
    " && exec mariadbd --user=root --datadir=/var/lib/mysql"
    " --innodb-use-native-aio=0 --bind-address=0.0.0.0 --skip-networking=0"
    " --skip-name-resolve --performance-schema=OFF"
    # The server settings of examples/mariadb: small buffers keep the checkpoint small.
    " --innodb-buffer-pool-size=16M --innodb-log-buffer-size=2M --innodb-log-file-size=8M"
    " --aria-pagecache-buffer-size=1M --key-buffer-size=1M",
)


def _mariadb_connect(handle: ContainerHandle) -> Any:
    import pymysql

    host, port = _address(handle, 3306)
    return pymysql.connect(
        host=host,
        port=port,
        user=MARIADB_USER,
        password=MARIADB_PASSWORD,
        database=MARIADB_DATABASE,
        autocommit=True,
        connect_timeout=10,
        read_timeout=60,
    )


def _mariadb_prepare(handle: ContainerHandle) -> None:
    """Create the user and database, run every migration, seed the rows."""
    code, output = handle.exec(
        [
            "mariadb",
            "-uroot",
            "-e",
            f"CREATE DATABASE {MARIADB_DATABASE};"
            f"CREATE USER '{MARIADB_USER}'@'%' IDENTIFIED BY '{MARIADB_PASSWORD}';"
            f"GRANT ALL ON {MARIADB_DATABASE}.* TO '{MARIADB_USER}'@'%';",
        ]
    )
    assert code == 0, output
    connection = _mariadb_connect(handle)
    try:
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE schema_migrations (version INT PRIMARY KEY)")
            for version, statements in enumerate(MIGRATIONS, start=1):
                for statement in statements:
                    cursor.execute(statement)
                cursor.execute("INSERT INTO schema_migrations VALUES (%s)", (version,))
            connection.begin()
            # Explicit ids, so that the generated foreign keys below always match.
            cursor.executemany(
                "INSERT INTO customers (id, email, name) VALUES (%s, %s, %s)",
                [(n, f"c{n}@example.com", f"Customer {n}") for n in range(1, CUSTOMERS + 1)],
            )
            cursor.executemany(
                "INSERT INTO products (id, sku, name, price) VALUES (%s, %s, %s, %s)",
                [
                    (n, f"SKU-{n:06d}", f"Product {n}", Decimal(n % 300) + Decimal("0.49"))
                    for n in range(1, PRODUCTS + 1)
                ],
            )
            connection.commit()
            # The big tables are loaded as fixtures usually are: from the client, in batched
            # multi-row INSERTs (PyMySQL's executemany), one transaction per chunk.
            for first in range(1, ORDERS + 1, CHUNK):
                connection.begin()
                cursor.executemany(
                    "INSERT INTO orders (id, customer_id, total, status) VALUES (%s, %s, %s, %s)",
                    [
                        (n, n % CUSTOMERS + 1, Decimal(n % 500) + Decimal("0.99"), STATUSES[n % 4])
                        for n in range(first, min(first + CHUNK, ORDERS + 1))
                    ],
                )
                connection.commit()
            for first in range(1, ORDER_ITEMS + 1, CHUNK):
                connection.begin()
                cursor.executemany(
                    "INSERT INTO order_items (id, order_id, product_id, quantity, unit_price)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    [
                        (n, n % ORDERS + 1, n % PRODUCTS + 1, n % 5 + 1, Decimal(n % 90) + 1)
                        for n in range(first, min(first + CHUNK, ORDER_ITEMS + 1))
                    ],
                )
                connection.commit()
            cursor.execute("SELECT COUNT(*) FROM order_items")
            (count,) = cursor.fetchone()
            assert count == ORDER_ITEMS, count
    finally:
        connection.close()  # nothing connected at checkpoint time


def _mariadb_probe(handle: ContainerHandle) -> None:
    connection = _mariadb_connect(handle)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM orders")
            (orders,) = cursor.fetchone()
            cursor.execute("SELECT COUNT(*) FROM schema_migrations")
            (versions,) = cursor.fetchone()
            assert (orders, versions) == (ORDERS, len(MIGRATIONS)), (
                f"container not pristine: {orders} orders, {versions} migrations"
            )
            cursor.execute("DELETE FROM order_items WHERE order_id <= 100")
            cursor.execute("UPDATE orders SET status = 'probed' WHERE id <= 100")
    finally:
        with contextlib.suppress(Exception):
            connection.close()


# -- a slow-booting Python service --------------------------------------------------------

PYSERVICE_SOURCE = (REPOSITORY / "examples" / "pyservice" / "service.py").read_text()


def _http(handle: ContainerHandle, method: str, path: str, body: object = None) -> Any:
    host, port = _address(handle, 8000)
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{host}:{port}{path}", data=data, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _pyservice_probe(handle: ContainerHandle) -> None:
    stats = _http(handle, "GET", "/stats")
    assert stats["changes"] == 0, f"container not pristine: {stats}"
    _http(handle, "PUT", "/items/probe", {"price": 1})


# -- the table ----------------------------------------------------------------------------

WORKLOADS: dict[str, Workload] = {
    workload.name: workload
    for workload in (
        Workload(
            name="tiny",
            description="busybox sleeping; a seeded file on tmpfs and one in the writable layer",
            image=TINY_IMAGE,
            command=("sh", "-c", "echo booted; exec sleep 100000"),
            tmpfs={"/data": ""},
            ready=(ready.log("booted"),),
            prepare=_tiny_prepare,
            probe=_tiny_probe,
        ),
        _redis("redis-10k", 10_000),
        _redis("redis-100k", 100_000),
        _redis("redis-1m", 1_000_000),
        Workload(
            name="mariadb",
            description=(
                f"MariaDB, {len(MIGRATIONS)} migrations ({MIGRATION_STATEMENTS} DDL statements),"
                f" {SEED_ROWS:,} seeded rows"
            ),
            image=SERVICES_IMAGE,
            command=MARIADB_COMMAND,
            ports=(3306,),
            tmpfs={"/run/mysqld": ""},
            ready=(ready.cmd(["mariadb", "-uroot", "-e", "SELECT 1"]), ready.tcp(3306)),
            prepare=_mariadb_prepare,
            probe=_mariadb_probe,
            inplace_ok=False,  # its data directory is in the writable layer
        ),
        Workload(
            name="pyservice",
            description="examples/pyservice: Python HTTP service, >= 3 s to build its index",
            image=SERVICES_IMAGE,
            command=("python3", "-u", "-c", PYSERVICE_SOURCE),
            ports=(8000,),
            ready=(ready.http(8000, "/health"),),
            prepare=None,
            probe=_pyservice_probe,
        ),
    )
}

ShortTest = Callable[..., None]
#: The short-tests part's test bodies, by workload: ``body(handle, i, pristine=...)``.
SHORT_BODIES: dict[str, ShortTest] = {"redis-10k": _redis_short_test}
