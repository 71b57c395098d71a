"""A pytest plugin the benchmark loads into its pytest runs (``-p benchmarks.instrument``).

It changes nothing the plugin does: it implements pytest-criu's public hooks
(``pytest_criu_restored``, ``pytest_criu_reset``; see ``pytest_criu/hooks.py``) and pytest's
own, records in memory, and writes one JSON file at the end of the session (path in
``$PYTEST_CRIU_BENCH_OUT``):

- every restore pytest-criu makes, with its phases, the thread it ran in and whether it was
  made ahead (restore-ahead runs in a background thread);
- every reset: how long the test waited, and whether a restored-ahead container was
  waiting for it;
- every test call's start and end, so the gap between two tests (what the user waits,
  pytest included) can be compared with the reset the plugin reports;
- CRIU's own time of each restore a reset handed over, from its ``restore.log`` (read when
  the test starts, outside every timed span);
- with ``$PYTEST_CRIU_BENCH_SAMPLE_EVERY=N``, every N-th test: the pytest process's RSS,
  threads and open file descriptors, and the number of containers the benchmark run owns
  (on the engine ``$PYTEST_CRIU_BENCH_ENGINE``, through a connection of its own).

With ``$PYTEST_CRIU_BENCH_LIGHT=1`` only those samples are taken (nothing is kept per test),
so that the endurance run's memory figures are the plugin's and pytest's own. The per-warm
container figures (prepare, checkpoint, size) come from the plugin's ``--criu-report``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import pytest_criu

from .engine_floor import criu_restore_seconds
from .workloads import BENCH_LABEL

if TYPE_CHECKING:
    from pytest_criu.engine.base import ContainerEngine
    from pytest_criu.engine.events import ResetRecord, RestoreRecord

OUTPUT_ENV = "PYTEST_CRIU_BENCH_OUT"
LIGHT_ENV = "PYTEST_CRIU_BENCH_LIGHT"
SAMPLE_ENV = "PYTEST_CRIU_BENCH_SAMPLE_EVERY"
RUN_ENV = "PYTEST_CRIU_BENCH_RUN"
ENGINE_ENV = "PYTEST_CRIU_BENCH_ENGINE"


class Recorder:
    """What one pytest process saw."""

    def __init__(self) -> None:
        self.restores: list[dict[str, Any]] = []
        self.resets: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.samples: list[dict[str, Any]] = []
        self.criu: list[dict[str, Any]] = []
        self.tests = 0
        self._handed: list[str] = []
        """Containers resets handed over whose CRIU time is still to be read."""
        self._engine: ContainerEngine | None = None
        self._lock = threading.Lock()

    @property
    def recording(self) -> bool:
        return bool(os.environ.get(OUTPUT_ENV)) and not os.environ.get(LIGHT_ENV)

    def restored(self, record: RestoreRecord) -> None:
        entry = dataclasses.asdict(record)
        entry["ok"] = record.ok
        self.restores.append(entry)

    def reset(self, item: pytest.Item, record: ResetRecord) -> None:
        self.resets.append(
            {
                "nodeid": item.nodeid,
                "fixture": record.fixture,
                "ahead_pending": record.ahead_pending,
                "ahead_done": record.ahead_ready,
                "began": record.began,
                "ended": record.ended,
                "seconds": record.seconds,
                "container": record.container,
            }
        )
        if record.seconds > 0 and record.container:
            self._handed.append(record.container)

    def note_criu(self) -> None:
        """CRIU's time of the restores behind the containers the last resets handed over."""
        handed, self._handed = self._handed, []
        for container in handed:
            self.criu.append({"container": container, "criu": criu_restore_seconds(container)})

    def sample(self, index: int) -> None:
        status = Path("/proc/self/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        entry: dict[str, Any] = {
            "test": index,
            "rss_kib": int(fields["VmRSS"].split()[0]),
            "threads": int(fields["Threads"]),
            "fds": len(os.listdir("/proc/self/fd")),
            "python_threads": threading.active_count(),
        }
        run = os.environ.get(RUN_ENV)
        if run:
            entry["containers"] = len(self._connection().containers(f"{BENCH_LABEL}={run}"))
        self.samples.append(entry)

    def _connection(self) -> ContainerEngine:
        if self._engine is None:
            from pytest_criu.engine.connect import connect

            podman = os.environ.get(ENGINE_ENV) == "podman"
            self._engine = connect("podman" if podman else "docker", None, timeout=60.0)
        return self._engine

    def dump(self, path: Path) -> None:
        data = {
            "plugin_file": pytest_criu.__file__,
            "restores": self.restores,
            "resets": self.resets,
            "calls": self.calls,
            "criu": self.criu,
            "samples": self.samples,
        }
        path.write_text(json.dumps(data))
        if self._engine is not None:
            self._engine.close()


_RECORDER = Recorder()


# Optional: a --plugin-ref from before these hooks has no spec for them.
@pytest.hookimpl(optionalhook=True)
def pytest_criu_restored(config: pytest.Config, record: RestoreRecord) -> None:
    if _RECORDER.recording:
        _RECORDER.restored(record)


@pytest.hookimpl(optionalhook=True)
def pytest_criu_reset(item: pytest.Item, record: ResetRecord) -> None:
    if _RECORDER.recording:
        _RECORDER.reset(item, record)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    began = time.monotonic()
    if _RECORDER.recording:
        _RECORDER.note_criu()
    every = int(os.environ.get(SAMPLE_ENV) or 0)
    _RECORDER.tests += 1
    index = _RECORDER.tests
    if every and (index == 1 or index % every == 0):
        _RECORDER.sample(index)
    body = time.monotonic()
    try:
        return (yield)
    finally:
        if _RECORDER.recording:
            _RECORDER.calls.append(
                {"nodeid": item.nodeid, "began": began, "body": body, "ended": time.monotonic()}
            )


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    output = os.environ.get(OUTPUT_ENV)
    if not output:
        return
    every = int(os.environ.get(SAMPLE_ENV) or 0)
    if every:
        _RECORDER.sample(_RECORDER.tests + 1)
        _RECORDER.samples[-1]["after_session"] = True
    _RECORDER.dump(Path(output))
