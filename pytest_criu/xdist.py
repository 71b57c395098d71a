"""pytest-xdist support: the controller hands its session to workers, who share snapshots."""

from __future__ import annotations

from typing import Any

import pytest

from .runtime import RUNTIME_KEY

SESSION_KEY = "pytest_criu_session"
OWNER_KEY = "pytest_criu_owner_pid"


def worker_identity(config: pytest.Config) -> tuple[str, int] | None:
    """The session id and controller pid a worker was handed, or ``None`` outside workers."""
    workerinput = getattr(config, "workerinput", None)
    if not isinstance(workerinput, dict) or SESSION_KEY not in workerinput:
        return None
    return str(workerinput[SESSION_KEY]), int(workerinput[OWNER_KEY])


class XdistHooks:
    """Registered on the controller only when pytest-xdist is active."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl
    def pytest_configure_node(self, node: Any) -> None:
        runtime = self.config.stash[RUNTIME_KEY]
        runtime.distributed = True
        node.workerinput[SESSION_KEY] = runtime.owner.session
        node.workerinput[OWNER_KEY] = runtime.owner.pid
