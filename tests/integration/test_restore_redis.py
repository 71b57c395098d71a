"""A real Redis, seeded once, restored by CRIU before each marked test."""

from __future__ import annotations

import pytest

from tests.helpers import SERVICES_IMAGE

pytestmark = pytest.mark.usefixtures("engine")

CONFTEST = f'''
import pytest
from pytest_criu import ready, warm_container

SEED = 1000

def seed(handle):
    code, out = handle.exec(["sh", "-c", "redis-cli debug populate 1000 key 8 && echo seeded > /root/seed-marker"])
    assert code == 0 and "OK" in out, out
    assert handle.exec(["redis-cli", "dbsize"])[1].strip() == str(SEED)

redis = warm_container(
    image="{SERVICES_IMAGE}",
    command=["redis-server", "--save", "", "--appendonly", "no", "--protected-mode", "no",
             "--enable-debug-command", "yes"],
    ports=[6379],
    tmpfs={{"/data": ""}},
    ready=ready.cmd(["redis-cli", "ping"]),
    prepare=seed,
)

def pytest_addoption(parser):
    parser.addoption("--reverse", action="store_true")

def pytest_collection_modifyitems(config, items):
    if config.getoption("--reverse"):
        items.reverse()
'''

TESTS = r"""
import pytest
import redis as redis_client

import os

def client(handle):
    return redis_client.Redis(host=handle.host, port=handle.port(6379), socket_timeout=5)

def sh(handle, script):
    code, out = handle.exec(["sh", "-c", script])
    assert code == 0, out
    return out.strip()

@pytest.mark.parametrize("round", range(6))
@pytest.mark.criu_snapshot
def test_pristine_then_dirty(redis, round):
    c = client(redis)
    assert c.dbsize() == 1000
    assert c.get("dirty") is None
    assert sh(redis, "cat /root/seed-marker") == "seeded"
    assert sh(redis, "ls /data") == ""
    assert sh(redis, "test -e /root/dirty && echo yes || echo no") == "no"
    with open(os.environ["PORTS_FILE"], "a") as log:
        log.write(f"{redis.id} {redis.port(6379)} {redis.restores}\n")
    # dirty memory, tmpfs and the container's filesystem
    c.set("dirty", round)
    c.delete("key:1", "key:2", "key:3")
    sh(redis, "echo x > /data/dirty && echo x > /root/dirty && rm /root/seed-marker")
    c.close()

@pytest.mark.parametrize("round", range(6))
@pytest.mark.criu_snapshot("redis")
def test_flushall_does_not_leak(redis, round):
    c = client(redis)
    assert c.dbsize() == 1000
    c.flushall()
    c.close()

def test_unmarked_tests_share_the_container(redis):
    assert redis.exec(["true"])[0] == 0
"""


@pytest.mark.parametrize(
    ("order", "extra"),
    [("forward", []), ("reverse", []), ("forward", ["--criu-restore-ahead"])],
    ids=["forward", "reverse", "restore-ahead"],
)
def test_every_marked_test_sees_the_seed(
    pytester: pytest.Pytester,
    order: str,
    extra: list[str],
    no_leaks: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ports_file = pytester.path / "ports.log"
    monkeypatch.setenv("PORTS_FILE", str(ports_file))
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_redis=TESTS)
    args = ["-p", "no:cacheprovider", "-v", *extra] + (["--reverse"] if order == "reverse" else [])
    result = pytester.runpytest_subprocess(*args, timeout=600)
    result.assert_outcomes(passed=13)
    result.stdout.fnmatch_lines(
        [
            "*- pytest-criu -*",
            "redis: snapshot/fresh*restores; reset before a test: median*",
            "redis: checkpoint * MB: process memory redis-server (pid 1) * MB*",
        ]
    )
    rows = [line.split() for line in ports_file.read_text().splitlines()]
    assert len(rows) == 6
    assert len({row[0] for row in rows}) == 6, "every marked test got its own container"
    assert len({row[1] for row in rows}) > 1, "host ports are ephemeral and change"
    assert [int(row[2]) for row in rows] == sorted(int(row[2]) for row in rows)
