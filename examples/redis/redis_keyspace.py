"""The keyspace the Redis example seeds, shared by its conftest.py and its tests.

(Tests import it as ``redis_keyspace``: ``from conftest import ...`` would pick up whichever
conftest.py pytest imported last when several directories are run together.)
"""

from __future__ import annotations

import redis

from pytest_criu import ContainerHandle

POPULATED_KEYS = 200_000
USERS = 20_000
LEADERBOARD = "leaderboard"
#: Every key prepare() creates: the populated ones, the user hashes and the leaderboard.
SEED_KEYS = POPULATED_KEYS + USERS + 1


def connect(handle: ContainerHandle) -> redis.Redis:
    """A client for the container ``handle`` currently points at."""
    host, port = handle.address(6379)
    return redis.Redis(host=host, port=port, socket_timeout=10, decode_responses=True)


def seed(handle: ContainerHandle) -> None:
    """Load the keyspace every marked test starts from."""
    code, output = handle.exec(["redis-cli", "DEBUG", "POPULATE", str(POPULATED_KEYS), "key", "64"])
    assert code == 0, output
    assert "OK" in output, output
    client = connect(handle)
    try:
        pipeline = client.pipeline(transaction=False)
        for number in range(USERS):
            pipeline.hset(
                f"user:{number}",
                mapping={"name": f"user {number}", "email": f"user{number}@example.com"},
            )
            pipeline.zadd(LEADERBOARD, {f"user:{number}": number % 1000})
        pipeline.execute()
        assert client.dbsize() == SEED_KEYS
    finally:
        client.close()  # no connection is left open across the checkpoint
