"""Services as their images start them, dropping root: Postgres as postgres, Redis as redis,
MariaDB as mysql. Where root lacks CAP_SYS_RESOURCE (this project's machines), Podman dumps
them in a user namespace (``userns="auto"``); Docker cannot, and the marked tests skip with a
reason naming the fix. Where root has the capability, both engines restore them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import engine_named
from tests.tooling.images import OFFICIAL_IMAGES

pytestmark = pytest.mark.usefixtures("engine")

#: For each service: its image, the declaration's other arguments, a seed script, a script
#: printing the seeded count, one that damages it, and the user its server runs as.
SERVICES: dict[str, dict[str, str]] = {
    "postgres": {
        "arguments": """
    environment={"POSTGRES_PASSWORD": "pristine", "POSTGRES_DB": "app"},
    command=["postgres", "-c", "shared_buffers=16MB", "-c", "max_connections=20",
             "-c", "jit=off", "-c", "huge_pages=off"],
    ready=[ready.log("database system is ready to accept connections", times=2),
           ready.cmd(["pg_isready", "-h", "/run/postgresql", "-U", "postgres"])],
""",
        "seed": "psql -U postgres -d app -v ON_ERROR_STOP=1 -c "
        "'CREATE TABLE t AS SELECT generate_series(1, 1000) AS n'",
        "count": "psql -U postgres -d app -tA -c 'SELECT count(*) FROM t'",
        "damage": "psql -U postgres -d app -c 'DELETE FROM t WHERE n > 1'",
        "process": "postgres",
        "user": "postgres",
    },
    "redis": {
        "arguments": """
    command=["redis-server", "--save", "", "--enable-debug-command", "yes"],
    ready=ready.cmd(["redis-cli", "ping"]),
""",
        "seed": "redis-cli debug populate 1000 key 8",
        "count": "redis-cli dbsize",
        "damage": "redis-cli flushall",
        "process": "redis-server",
        "user": "redis",
    },
    "mariadb": {
        "arguments": """
    environment={"MARIADB_ALLOW_EMPTY_ROOT_PASSWORD": "1", "MARIADB_DATABASE": "app"},
    # CRIU cannot dump io_uring; small buffers keep the checkpoint small.
    command=["mariadbd", "--innodb-use-native-aio=0", "--innodb-buffer-pool-size=16M",
             "--performance-schema=OFF"],
    ready=ready.cmd(["mariadb", "-uroot", "-e", "SELECT 1"]),
    ready_timeout=120,
""",
        "seed": "mariadb -uroot app -e 'CREATE TABLE t (n INT) ENGINE=InnoDB; "
        "INSERT INTO t SELECT seq FROM seq_1_to_1000'",
        "count": "mariadb -uroot app -N -e 'SELECT COUNT(*) FROM t'",
        "damage": "mariadb -uroot app -e 'DELETE FROM t'",
        "process": "mariadbd",
        "user": "mysql",
    },
}

CONFTEST = """
from pytest_criu import ready, warm_container

def sh(handle, script):
    code, out = handle.exec(["sh", "-c", script])
    assert code == 0, out
    return out.strip()

def seed(handle):
    sh(handle, {seed!r})

service = warm_container(
    {image!r},
    network_mode="none",
    userns="auto",
    prepare=seed,
{arguments})
"""

TESTS = """
import pytest
from conftest import sh

@pytest.mark.criu_snapshot
@pytest.mark.parametrize("round_", range(3))
def test_pristine(service, round_):
    assert sh(service, {count!r}) == "1000"
    users = sh(service, "ps -o user= -C {process}").split()
    assert users and set(users) == {{{user!r}}}, users
    sh(service, {damage!r})
    assert sh(service, {count!r}) != "1000"
"""


def _podman_major() -> int:
    engine = engine_named("podman")
    try:
        return int(str(engine.version().get("Version", "0")).split(".")[0])
    finally:
        engine.close()


def _has_sys_resource() -> bool:
    status = Path("/proc/self/status").read_text()
    cap_eff = next(line for line in status.splitlines() if line.startswith("CapEff"))
    return bool(int(cap_eff.split()[1], 16) & (1 << 24))


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_service_that_drops_root(
    pytester: pytest.Pytester, engine: str, service: str, no_leaks: None
) -> None:
    spec = SERVICES[service]
    pytester.makeconftest(
        CONFTEST.format(
            image=OFFICIAL_IMAGES[service], seed=spec["seed"], arguments=spec["arguments"]
        )
    )
    pytester.makepyfile(
        test_service=TESTS.format(
            count=spec["count"], damage=spec["damage"], process=spec["process"], user=spec["user"]
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs", timeout=600)
    if engine == "docker" and not _has_sys_resource():
        result.assert_outcomes(skipped=3)
        result.stdout.fnmatch_lines(
            [
                "*snapshots unavailable: CRIU could not read the rlimits of a process running "
                "as another user*fix: use a host whose root has CAP_SYS_RESOURCE*or Podman "
                "with a user namespace (--criu-engine=podman --criu-userns=auto)*",
            ]
        )
        return
    if engine == "podman" and _podman_major() >= 5:
        result.assert_outcomes(skipped=3)
        result.stdout.fnmatch_lines(
            [
                "*snapshots unavailable: podman userns: Podman 5.* cannot restore a container in "
                "a user namespace*Failed to open_tree*(fix: Podman 4.x*"
            ]
        )
        return
    result.assert_outcomes(passed=3)
    expected = "service: snapshot/fresh; * restores; *"
    if engine == "podman":
        expected = "service: snapshot/fresh; *; user namespace (root is host uid *); * restores*"
    result.stdout.fnmatch_lines(["*- pytest-criu -*", expected])
