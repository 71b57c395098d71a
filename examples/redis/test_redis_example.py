"""Each marked test mutates the seeded keyspace; the next one still sees the seed."""

from __future__ import annotations

import pytest
import redis
from redis_keyspace import LEADERBOARD, SEED_KEYS, USERS

from pytest_criu import ContainerHandle

pytestmark = pytest.mark.criu_snapshot


def test_flushall(r: redis.Redis) -> None:
    assert r.dbsize() == SEED_KEYS
    r.flushall()
    assert r.dbsize() == 0


def test_delete_users(r: redis.Redis) -> None:
    assert r.dbsize() == SEED_KEYS
    deleted = r.delete(*(f"user:{number}" for number in range(0, USERS, 2)))
    assert deleted == USERS // 2
    assert r.dbsize() == SEED_KEYS - USERS // 2


def test_rewrite_leaderboard(r: redis.Redis) -> None:
    assert r.zcard(LEADERBOARD) == USERS
    assert r.zscore(LEADERBOARD, "user:1999") == 999
    r.zadd(LEADERBOARD, {"user:1999": 10_000})
    r.zremrangebyscore(LEADERBOARD, 0, 500)
    assert r.zrevrange(LEADERBOARD, 0, 0) == ["user:1999"]


@pytest.mark.parametrize("round_", range(3))
def test_writes_do_not_leak(r: redis.Redis, round_: int) -> None:
    assert r.get("written-by-a-test") is None
    assert r.hget("user:42", "name") == "user 42"
    r.set("written-by-a-test", round_)
    r.hset("user:42", "name", "renamed")
    r.incrby("counter", 1000)
    assert r.dbsize() == SEED_KEYS + 2


def test_tmpfs_is_restored_too(r: redis.Redis, redis_server: ContainerHandle) -> None:
    assert redis_server.restores >= 1
    assert r.info("server")["redis_version"]
    code, output = redis_server.exec(["sh", "-c", "ls /data; echo scratch > /data/scratch"])
    assert code == 0
    assert output.strip() == ""  # the tmpfs is restored as it was at checkpoint time
