"""pytest-xdist support: the controller hands its session to workers, who share snapshots.

Every xdist hook lives here, in classes registered only when xdist is in play; nothing
imports xdist.
"""

from __future__ import annotations

from typing import Any

import pytest

from .reporting import Summary
from .runtime import Runtime

SESSION_KEY = "pytest_criu_session"
OWNER_KEY = "pytest_criu_owner_pid"
WORKER_OUTPUT_KEY = "pytest_criu_report"


def worker_identity(config: pytest.Config) -> tuple[str, int] | None:
    """The session id and controller pid a worker was handed, or ``None`` outside workers."""
    workerinput = getattr(config, "workerinput", None)
    if not isinstance(workerinput, dict) or SESSION_KEY not in workerinput:
        return None
    return str(workerinput[SESSION_KEY]), int(workerinput[OWNER_KEY])


def register(config: pytest.Config, runtime: Runtime, summary: Summary) -> None:
    """Register the hooks this process needs: a worker's or the controller's, or none."""
    if runtime.worker:
        config.pluginmanager.register(WorkerHooks(config, summary), "criu-xdist-worker")
    elif config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(ControllerHooks(runtime, summary), "criu-xdist")


class ControllerHooks:
    """On the controller: hand workers the session, collect their summaries."""

    def __init__(self, runtime: Runtime, summary: Summary) -> None:
        self.runtime = runtime
        self.summary = summary

    @pytest.hookimpl
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[SESSION_KEY] = self.runtime.owner.session
        node.workerinput[OWNER_KEY] = self.runtime.owner.pid

    @pytest.hookimpl
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        data = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT_KEY)
        if isinstance(data, dict):
            self.summary.add_worker_output(data)
        if error is not None or not isinstance(data, dict) or data.get("engine_used"):
            # The session's containers are removed at the end: only if a worker made any
            # (or crashed before it could say).
            self.runtime.distributed = True


class WorkerHooks:
    """On a worker: send this worker's part of the summary to the controller."""

    def __init__(self, config: pytest.Config, summary: Summary) -> None:
        self.config = config
        self.summary = summary

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        workeroutput = getattr(self.config, "workeroutput", None)
        runtime = self.summary.runtime
        if isinstance(workeroutput, dict) and runtime is not None:
            workeroutput[WORKER_OUTPUT_KEY] = {
                **self.summary.worker_output(),
                "engine_used": runtime.engine_used,
            }
