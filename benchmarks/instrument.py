"""A pytest plugin the benchmark loads into its pytest runs (``-p benchmarks.instrument``).

It changes nothing the plugin does; it only records, in memory, and writes one JSON file at
the end of the session (path in ``$PYTEST_CRIU_BENCH_OUT``):

- every restore pytest-criu makes, with its phases (wrapping ``Stats.add_phase``, where the
  plugin's own phase timer books them; ``WarmContainer._lap`` in older commits) and the
  thread it ran in (restore-ahead runs in a background thread);
- every ``reset()``: how long the test waited, and whether a restored-ahead container was
  waiting for it;
- every test call's start and end, so the gap between two tests (what the user waits,
  pytest included) can be compared with the reset the plugin reports;
- CRIU's own time of each restore, from its ``restore.log`` (read when the test starts,
  outside every timed span);
- with ``$PYTEST_CRIU_BENCH_SAMPLE_EVERY=N``, every N-th test: the pytest process's RSS,
  threads and open file descriptors, and the number of containers the benchmark run owns.

With ``$PYTEST_CRIU_BENCH_LIGHT=1`` only those samples are taken (nothing is wrapped or kept
per test), so that the endurance run's memory figures are the plugin's and pytest's own.

``$PYTEST_CRIU_BENCH_PROPOSALS`` (comma-separated) prototypes proposed plugin changes, for
measuring them before anyone edits the plugin; both only move existing calls:

- ``defer-remove``: a fresh reset removes the previous test's container after the new one is
  restored instead of before (``_discard`` calls made inside ``reset`` are held back and
  submitted when it returns), so the removal no longer competes with create and restore;
- ``ahead-at-adopt``: with ``--criu-restore-ahead``, the first restore-ahead is started right
  after the first restore instead of after the first reset, so the second test finds a
  container waiting as well.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

import pytest_criu
from pytest_criu.engine.snapshot import Stats, WarmContainer
from pytest_criu.runtime import RUNTIME_KEY

from .engine_floor import criu_restore_seconds
from .workloads import BENCH_LABEL

OUTPUT_ENV = "PYTEST_CRIU_BENCH_OUT"
LIGHT_ENV = "PYTEST_CRIU_BENCH_LIGHT"
PROPOSALS_ENV = "PYTEST_CRIU_BENCH_PROPOSALS"
PROPOSALS = ("defer-remove", "ahead-at-adopt")
SAMPLE_ENV = "PYTEST_CRIU_BENCH_SAMPLE_EVERY"
RUN_ENV = "PYTEST_CRIU_BENCH_RUN"


class Recorder:
    """What one pytest process saw."""

    def __init__(self) -> None:
        self.restores: list[dict[str, Any]] = []
        self.resets: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.samples: list[dict[str, Any]] = []
        self.criu: list[dict[str, Any]] = []
        self.nodeid = ""
        self.tests = 0
        self._local = threading.local()
        self._lock = threading.Lock()
        self._seen_restores: set[tuple[str, int]] = set()

    def install(self) -> None:
        recorder = self
        original_restore_one = WarmContainer._restore_one
        original_in_place = WarmContainer._restore_in_place
        original_reset = WarmContainer.reset
        self._install_phase_timer()

        def restore_one(self: WarmContainer) -> Any:
            with recorder._group("fresh"):
                container = original_restore_one(self)
                recorder._local.group["container"] = container.id
            return container

        def restore_in_place(self: WarmContainer, container_id: str) -> Any:
            with recorder._group("inplace"):
                recorder._local.group["container"] = container_id
                return original_in_place(self, container_id)

        def reset(self: WarmContainer) -> float:
            pending = self._next
            entry: dict[str, Any] = {
                "nodeid": recorder.nodeid,
                "fixture": self.name,
                "ahead_pending": pending is not None,
                "ahead_done": bool(pending is not None and pending.done()),
                "began": time.monotonic(),
            }
            waited = original_reset(self)
            entry.update(ended=time.monotonic(), seconds=waited)
            entry["container"] = self._current.id if self._current else None
            with recorder._lock:
                recorder.resets.append(entry)
            return waited

        WarmContainer._restore_one = restore_one  # type: ignore[method-assign]
        WarmContainer._restore_in_place = restore_in_place  # type: ignore[method-assign]
        WarmContainer.reset = reset  # type: ignore[method-assign]

    def _note_phase(self, phase: str, seconds: float) -> None:
        group = getattr(self._local, "group", None)
        if group is not None:
            group["phases"][phase] = group["phases"].get(phase, 0.0) + seconds

    def _install_phase_timer(self) -> None:
        """Record each restore phase the plugin books, in the thread that books it.

        Since the engine interface (one ``restore_new`` per engine) the plugin books phases
        through ``Stats.add_phase``, called by the stopwatch ``WarmContainer._lapper`` hands
        to the engine; before it, ``WarmContainer._lap(phase, since)`` (``--plugin-ref`` of
        an older commit).
        """
        recorder = self
        original_lap = getattr(WarmContainer, "_lap", None)
        if original_lap is not None:

            def lap(self: WarmContainer, phase: str, since: float) -> float:
                now: float = original_lap(self, phase, since)
                recorder._note_phase(phase, now - since)
                return now

            WarmContainer._lap = lap  # type: ignore[attr-defined]
            return
        original_add_phase = Stats.add_phase

        def add_phase(self: Stats, phase: str, seconds: float) -> None:
            original_add_phase(self, phase, seconds)
            recorder._note_phase(phase, seconds)

        Stats.add_phase = add_phase  # type: ignore[method-assign]

    def _group(self, kind: str) -> Any:
        recorder = self

        class Group:
            def __enter__(self) -> None:
                recorder._local.group = {
                    "kind": kind,
                    "thread": threading.current_thread().name,
                    "began": time.monotonic(),
                    "phases": {},
                    "container": None,
                }

            def __exit__(self, *exc: object) -> None:
                group = recorder._local.group
                recorder._local.group = None
                group["ended"] = time.monotonic()
                group["ok"] = exc[0] is None
                with recorder._lock:
                    recorder.restores.append(group)

        return Group()

    def note_criu(self, config: pytest.Config) -> None:
        """CRIU's time of the restore behind each current container (once per restore)."""
        runtime = config.stash.get(RUNTIME_KEY, None)
        if runtime is None:
            return
        for controller in list(runtime.controllers.values()):
            current = controller._current
            if current is None or controller.mode != "snapshot":
                continue
            key = (current.id, controller.restores)
            if key in self._seen_restores:
                continue
            self._seen_restores.add(key)
            self.criu.append(
                {
                    "container": current.id,
                    "restores": controller.restores,
                    "criu": criu_restore_seconds(current.id),
                }
            )

    def sample(self, config: pytest.Config, index: int) -> None:
        status = Path("/proc/self/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        entry: dict[str, Any] = {
            "test": index,
            "rss_kib": int(fields["VmRSS"].split()[0]),
            "threads": int(fields["Threads"]),
            "fds": len(os.listdir("/proc/self/fd")),
            "python_threads": threading.active_count(),
        }
        runtime = config.stash.get(RUNTIME_KEY, None)
        run = os.environ.get(RUN_ENV)
        if runtime is not None and run:
            controllers = list(runtime.controllers.values())
            if controllers:
                found = controllers[0].engine.containers(f"{BENCH_LABEL}={run}")
                entry["containers"] = len(found)
        self.samples.append(entry)

    def dump(self, config: pytest.Config, path: Path) -> None:
        runtime = config.stash.get(RUNTIME_KEY, None)
        controllers: list[dict[str, Any]] = []
        if runtime is not None:
            for controller in [*runtime.closed, *runtime.controllers.values()]:
                snapshot = controller._snapshot
                stats = controller.stats
                controllers.append(
                    {
                        "name": controller.name,
                        "mode": stats.mode,
                        "origin": stats.origin,
                        "prepare_seconds": stats.prepare_seconds,
                        "checkpoint_seconds": stats.checkpoint_seconds,
                        "restores": controller.restores,
                        "resets": list(stats.resets),
                        "phases": dict(stats.phases),
                        "checkpoint_bytes": sum(snapshot.files.values()) if snapshot else None,
                        "failure": stats.failure,
                    }
                )
        data = {
            "plugin_file": pytest_criu.__file__,
            "controllers": controllers,
            "restores": self.restores,
            "resets": self.resets,
            "calls": self.calls,
            "criu": self.criu,
            "samples": self.samples,
        }
        path.write_text(json.dumps(data))


_RECORDER = Recorder()


def install_proposals(names: set[str]) -> None:
    """Patch ``WarmContainer`` with the proposed changes named (see the module docstring)."""
    unknown = names - set(PROPOSALS)
    if unknown:
        raise pytest.UsageError(f"unknown proposals: {', '.join(sorted(unknown))}")
    if "defer-remove" in names:
        original_reset = WarmContainer.reset
        original_discard = WarmContainer._discard
        held = threading.local()

        def discard(self: WarmContainer, container_id: str) -> None:
            pending = getattr(held, "pending", None)
            if pending is None:
                original_discard(self, container_id)
            else:
                pending.append(container_id)

        def reset(self: WarmContainer) -> float:
            held.pending = []
            try:
                return original_reset(self)
            finally:
                pending, held.pending = held.pending, None
                for container_id in pending:
                    original_discard(self, container_id)

        WarmContainer._discard = discard  # type: ignore[method-assign]
        WarmContainer.reset = reset  # type: ignore[method-assign]
    if "ahead-at-adopt" in names:
        original_adopt = WarmContainer.adopt

        def adopt(self: WarmContainer, snapshot: Any, origin: str) -> None:
            original_adopt(self, snapshot, origin)
            if self._ahead is not None and self._next is None:
                self._next = self._ahead.submit(self._restore_one)

        WarmContainer.adopt = adopt  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    proposals = {p.strip() for p in os.environ.get(PROPOSALS_ENV, "").split(",") if p.strip()}
    if proposals:
        install_proposals(proposals)
    if os.environ.get(OUTPUT_ENV) and not os.environ.get(LIGHT_ENV):
        _RECORDER.install()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    _RECORDER.nodeid = item.nodeid
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    began = time.monotonic()
    light = bool(os.environ.get(LIGHT_ENV))
    if not light:
        _RECORDER.note_criu(item.config)
    every = int(os.environ.get(SAMPLE_ENV) or 0)
    _RECORDER.tests += 1
    index = _RECORDER.tests
    if every and (index == 1 or index % every == 0):
        _RECORDER.sample(item.config, index)
    body = time.monotonic()
    try:
        return (yield)
    finally:
        if not light:
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
        _RECORDER.sample(session.config, _RECORDER.tests + 1)
        _RECORDER.samples[-1]["after_session"] = True
    _RECORDER.dump(session.config, Path(output))
