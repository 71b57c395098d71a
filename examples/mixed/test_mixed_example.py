"""Marked tests start from the checkpoint; unmarked tests share the container as it is.

Read top to bottom: the tests run in file order and each states what it expects to find.
"""

from __future__ import annotations

import pytest
import redis

from pytest_criu import ContainerHandle


def test_1_unmarked_starts_from_the_checkpoint(cache_client: redis.Redis) -> None:
    # Nothing has reset the container yet: it is the first restore of the checkpoint.
    assert cache_client.get("greeting") == "hello"
    cache_client.set("visits", 1)


def test_2_unmarked_sees_what_test_1_left(cache_client: redis.Redis) -> None:
    assert cache_client.get("visits") == "1"  # no reset: state carries over
    cache_client.incr("visits")


@pytest.mark.criu_snapshot
def test_3_marked_starts_pristine(cache_client: redis.Redis) -> None:
    assert cache_client.get("visits") is None
    assert cache_client.get("greeting") == "hello"
    cache_client.set("greeting", "changed by test 3")


def test_4_unmarked_after_a_marked_test_sees_its_changes(cache_client: redis.Redis) -> None:
    # Unmarked tests get the container as the previous test left it, marked or not.
    assert cache_client.get("greeting") == "changed by test 3"


@pytest.mark.criu_snapshot
def test_5_marked_again(cache_client: redis.Redis, cache: ContainerHandle) -> None:
    assert cache_client.get("greeting") == "hello"
    code, output = cache.exec(["sh", "-c", "ls /data; echo x > /data/scratch"])
    assert (code, output.strip()) == (0, "")


def test_6_unmarked_queue_gets_work(queue_client: redis.Redis) -> None:
    queue_client.rpush("jobs", "a", "b")


@pytest.mark.criu_snapshot("cache")
def test_7_only_the_named_container_is_reset(
    cache_client: redis.Redis, queue_client: redis.Redis
) -> None:
    # The marker names "cache", so "queue" keeps what test 6 pushed.
    assert cache_client.get("greeting") == "hello"
    assert queue_client.lrange("jobs", 0, -1) == ["a", "b"]


@pytest.mark.criu_snapshot
def test_8_without_names_every_warm_container_is_reset(
    cache_client: redis.Redis, queue_client: redis.Redis
) -> None:
    assert queue_client.llen("jobs") == 0
    assert cache_client.get("visits") is None
