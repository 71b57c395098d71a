"""A real MariaDB, migrated and seeded once, restored before each of 10+ marked tests."""

from __future__ import annotations

import pytest

from tests.helpers import SERVICES_IMAGE

pytestmark = pytest.mark.usefixtures("engine")

ROWS = 20000

CONFTEST = f'''
import pymysql
import pytest
from pytest_criu import ready, warm_container

MIGRATIONS = """
CREATE DATABASE shop;
USE shop;
CREATE TABLE shop.customers (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(40) NOT NULL);
CREATE TABLE shop.orders (id INT PRIMARY KEY AUTO_INCREMENT, customer INT NOT NULL,
                          total INT NOT NULL, INDEX (customer));
ALTER TABLE shop.orders ADD COLUMN note VARCHAR(20) DEFAULT 'new';
INSERT INTO shop.customers (name) SELECT CONCAT('c', seq) FROM seq_1_to_100;
INSERT INTO shop.orders (customer, total) SELECT 1 + seq % 100, seq FROM seq_1_to_{ROWS};
CREATE USER 'app'@'%' IDENTIFIED BY 'app-password';
GRANT ALL ON shop.* TO 'app'@'%';
"""

def migrate(handle):
    code, out = handle.exec(["mariadb", "-uroot", "-e", MIGRATIONS])
    assert code == 0, out

mariadb = warm_container(
    "{SERVICES_IMAGE}",
    command=["sh", "-c",
             "mariadb-install-db --user=root --datadir=/var/lib/mysql --skip-test-db >/dev/null"
             " && exec mariadbd --user=root --datadir=/var/lib/mysql --innodb-use-native-aio=0"
             " --bind-address=0.0.0.0 --skip-name-resolve --innodb-buffer-pool-size=16M"],
    environment={{"APP_PASSWORD": "app-password"}},
    ports=[3306],
    tmpfs={{"/run/mysqld": ""}},
    ready=[ready.cmd(["mariadb", "-uroot", "-e", "SELECT 1"]), ready.tcp(3306)],
    prepare=migrate,
    ready_timeout=120,
)

@pytest.fixture
def db(mariadb):
    connection = pymysql.connect(host=mariadb.host, port=mariadb.port(3306), user="app",
                                 password="app-password", database="shop", autocommit=True)
    yield connection.cursor()
    connection.close()
'''

TESTS = f"""
import pytest

@pytest.mark.parametrize("round", range(12))
@pytest.mark.criu_snapshot
def test_exact_counts_then_damage(db, mariadb, round):
    db.execute("SELECT COUNT(*), SUM(total) FROM orders")
    assert db.fetchone() == ({ROWS}, {ROWS * (ROWS + 1) // 2})
    db.execute("SELECT COUNT(*) FROM customers")
    assert db.fetchone() == (100,)
    db.execute("SELECT COUNT(*) FROM orders WHERE note <> 'new'")
    assert db.fetchone() == (0,)
    if round % 3 == 0:
        db.execute("DELETE FROM orders WHERE id <= 999")
    elif round % 3 == 1:
        db.execute("UPDATE orders SET note = 'touched', total = 0")
    else:
        db.execute("DROP TABLE customers")
"""


def test_mariadb_restored_twelve_times_with_exact_counts(
    pytester: pytest.Pytester, no_leaks: None
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=900)
    result.assert_outcomes(passed=12)
    result.stdout.fnmatch_lines(["mariadb: snapshot/fresh; prepared in *; 12 restores*"])
    assert "app-password" not in result.stdout.str()
