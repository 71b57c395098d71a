"""``-p benchmarks.third_party.pristine``, in the pristine run only: a restore before every test.

Declares the server as a warm container (``server.py``'s settings; ``prepare`` runs what
pg8000's CI runs), makes every test use it (an autouse fixture, so that the warm container
is in every test's fixture closure, where pytest-criu looks for it) and marks every collected
test ``criu_snapshot`` before pytest-criu reads the markers (``tryfirst``). The relay of
``plugin.py`` follows the handle: its first connection after a restore looks up the new
container's socket.
"""

from __future__ import annotations

import os

import pytest

from pytest_criu import ContainerHandle, ready, warm_container

from .plugin import RELAY_KEY
from .server import (
    COMMAND,
    ENVIRONMENT,
    IMAGE,
    LABEL,
    READY_COMMAND,
    READY_PATTERN,
    SETUP_COMMAND,
    SOCKET_DIRECTORY,
    SOCKET_NAME,
    userns,
)


def prepare(handle: ContainerHandle) -> None:
    """Run pg8000's CI set-up (CREATE EXTENSION hstore) with psql inside the container."""
    code, output = handle.exec(SETUP_COMMAND)
    if code != 0:
        raise RuntimeError(f"set-up failed ({code}): {output}")


pg8000_server = warm_container(
    IMAGE,
    environment=ENVIRONMENT,
    command=COMMAND,
    network_mode="none",
    userns=userns(os.environ.get("THIRD_PARTY_ENGINE", "podman")),
    labels={LABEL: os.environ.get("THIRD_PARTY_RUN_ID", "manual")},
    ready=[ready.log(READY_PATTERN), ready.cmd(READY_COMMAND)],
    prepare=prepare,
    ready_timeout=120,
)


@pytest.fixture(autouse=True)
def _pg8000_pristine_server(request: pytest.FixtureRequest, pg8000_server: ContainerHandle) -> None:
    relay = request.config.stash[RELAY_KEY]
    if relay.target is None:
        latest = [("", "")]  # (container id, its socket): replaced whole, read whole

        def target() -> str:
            current, path = latest[0]
            if current != pg8000_server.id:
                current = pg8000_server.id
                path = f"{pg8000_server.host_path(SOCKET_DIRECTORY)}/{SOCKET_NAME}"
                latest[0] = (current, path)
            return path

        relay.target = target


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.criu_snapshot)


def pytest_report_collectionfinish(items: list[pytest.Item]) -> str:
    """The suite's fixtures that outlive a test: a connection held in one would be cut by
    the next restore (or, held across restores, would not be reset). A class-scoped fixture
    of a test outside a class lives for that test only."""
    wider = set()
    for item in items:
        info = getattr(item, "_fixtureinfo", None)  # pytest has no public API for this
        for name, definitions in (info.name2fixturedefs if info else {}).items():
            scope = definitions[-1].scope
            per_test = scope == "class" and item.getparent(pytest.Class) is None
            if definitions[-1].baseid and scope != "function" and not per_test:
                wider.add(f"{name} ({scope}, {definitions[-1].baseid})")
    return f"suite fixtures wider than a test: {', '.join(sorted(wider)) or 'none'}"
