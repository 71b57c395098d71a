"""Warm containers: prepare once, checkpoint, and reset to the checkpoint before each test.

:class:`WarmContainer` coordinates the parts: a :class:`~.creation.ContainerFactory` makes
containers (with their network holders), a :class:`~.tracker.ContainerTracker` removes them,
a :class:`~.preparing.Preparer` starts and prepares the source, a
:class:`~.restorer.Restorer` restores the snapshot, and a reset strategy
(:mod:`~.resets`: fresh, in place, recreate) gives each test its container.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from . import footprint, procfs, userns
from . import labels as labelling
from .base import ContainerEngine
from .creation import ContainerFactory
from .errors import EngineError
from .events import Observer, ResetRecord
from .handle import ContainerHandle, CurrentContainer, RestoreListener
from .holders import HolderSetting, NetworkPath, network_path
from .preparing import PhaseReport, Preparer, Say, VolumePolicy
from .ready import ReadyCheck
from .resets import RecreateReset, ResetStrategy, next_container, snapshot_strategy
from .restorer import CHECKPOINT_NAME, Restorer, take_snapshot
from .spec import ContainerSpec, Strategy
from .store import Snapshot
from .tracker import ContainerTracker

__all__ = [
    "CHECKPOINT_NAME",
    "ContainerHandle",
    "Options",
    "PhaseReport",
    "Stats",
    "WarmContainer",
]

Mode = Literal["snapshot", "recreate", "shared"]


@dataclass
class Options:
    """How a warm container is reset and how long its waits may take."""

    strategy: Strategy = "fresh"
    ready_timeout: float = 60.0
    restore_timeout: float = 120.0
    pull: bool = True
    volume_policy: VolumePolicy = "tmpfs"
    restore_ahead: bool = True
    restore_ahead_depth: int | None = None
    """Restores ahead at once; ``None``: chosen from the machine (:mod:`.depth`)."""
    restore_retries: int = 0
    network_holder: HolderSetting = "auto"
    holder_image: str | None = None


@dataclass
class Stats:
    """What the terminal summary reports about one warm container."""

    origin: str = "prepared"
    prepare_seconds: float | None = None
    checkpoint_seconds: float | None = None
    resets: list[float] = field(default_factory=list)
    mode: str = ""
    failure: str | None = None
    checkpoint_bytes: int | None = None
    ahead_depth: int | None = None
    """Restores made ahead at once (``None``: no restore-ahead)."""
    checkpoint_memory: dict[str, int] = field(default_factory=dict)
    """Each process's anonymous memory at checkpoint time."""
    footprint: str | None = None
    """Where the checkpoint's bytes are, one line."""
    userns: str | None = None
    """The user namespace the service runs in, when not the host's."""

    def absorb(self, snapshot: Snapshot, origin: str) -> None:
        """What the summary reports of the snapshot restores come from."""
        self.origin = origin
        self.checkpoint_bytes = sum(snapshot.files.values()) or None
        self.checkpoint_memory = dict(snapshot.memory)
        self.footprint = footprint.describe(snapshot.memory, snapshot.files)
        if origin == "prepared" or origin.startswith("prepared "):
            self.prepare_seconds = snapshot.prepare_seconds
            self.checkpoint_seconds = snapshot.checkpoint_seconds


class WarmContainer:
    """Owns one warm container's life: prepare, checkpoint, resets, clean-up."""

    def __init__(
        self,
        *,
        name: str,
        spec: ContainerSpec,
        ready: Sequence[ReadyCheck],
        prepare: Callable[[ContainerHandle], object] | None,
        engine: ContainerEngine,
        owner: labelling.Owner,
        options: Options,
        say: Say = lambda message: None,
        on_phase: PhaseReport | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.name = name
        self.spec = spec
        self.engine = engine
        self.options = options
        self.say = say
        self.observer = observer
        self.stats = Stats()
        self.handle = ContainerHandle(self)
        self.restores = 0
        self.unavailable: str | None = None
        """Why this host cannot snapshot the container as declared (found at checkpoint)."""
        self.host = _host_of(engine.base_url)
        self.network: NetworkPath = network_path(
            engine.name, spec.network_mode, options.network_holder
        )
        self.tracker = ContainerTracker(engine, name)
        self.factory = ContainerFactory(
            name=name,
            spec=spec,
            engine=engine,
            owner=owner,
            network=self.network,
            tracker=self.tracker,
            image=self.resolve_image,
            holder_image=options.holder_image,
            pull=options.pull,
        )
        self.preparer = Preparer(
            factory=self.factory,
            ready=ready,
            prepare=prepare,
            ready_timeout=options.ready_timeout,
            volume_policy=options.volume_policy,
            say=say,
            on_phase=on_phase,
        )
        self.restorer: Restorer | None = None
        self.not_reset: list[str] = [
            f"{source} -> {target}" for source, target in spec.volumes.items()
        ]
        self._strategy: ResetStrategy | None = None
        self._current: CurrentContainer | None = None
        self._lost = "set-up has not finished"
        self._base_image = ""
        self._dirty = False
        self._listeners: list[RestoreListener] = []

    # -- what the handle reads ------------------------------------------------------------

    @property
    def current(self) -> CurrentContainer:
        """The container tests use now; :class:`EngineError` saying why when there is none."""
        if self._current is None:
            raise EngineError(f"{self.name}: no running container: {self._lost}")
        return self._current

    @property
    def current_or_none(self) -> CurrentContainer | None:
        return self._current

    @property
    def tmpfs(self) -> Mapping[str, str]:
        """The tmpfs mounts of every container: the spec's plus covered VOLUMEs."""
        return dict(self.factory.tmpfs)

    def on_restore(self, callback: RestoreListener) -> None:
        """Call ``callback(handle)`` after every reset."""
        self._listeners.append(callback)

    # -- set-up ---------------------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        if self._strategy is None:
            return "shared"
        return "recreate" if isinstance(self._strategy, RecreateReset) else "snapshot"

    @property
    def checkpoint(self) -> Path | None:
        """The directory (or Podman's archive) restores use, once there is a snapshot."""
        return self.restorer.checkpoint if self.restorer else None

    def resolve_image(self) -> str:
        """Make sure the base image is here; cover its declared volumes; return its id."""
        if not self._base_image:
            image = self.engine.ensure_image(self.spec.image, pull=self.options.pull)
            self.preparer.check_image(image)
            self._base_image = str(image["Id"])
        return self._base_image

    def start(self) -> None:
        """Create the first container, wait until it is ready and run ``prepare``."""
        began = time.monotonic()
        container = self._start_prepared("source")
        self.stats.prepare_seconds = time.monotonic() - began
        pid = int((self.engine.inspect(container.id).get("State") or {}).get("Pid") or 0)
        self.stats.userns = userns.describe(procfs.uid_map(pid)) if pid > 0 else None

    def build_snapshot(self, image_labels: Mapping[str, str]) -> Snapshot:
        """Prepare a container, checkpoint it and commit its files; hand both to the caller.

        The stopped source container holds the checkpoint files; whoever receives the
        snapshot (a :mod:`store <pytest_criu.engine.store>`) removes it and the image.
        """
        self.start()
        source, self._current = self.current.id, None
        return take_snapshot(
            self.factory,
            self.preparer,
            source,
            image_labels,
            prepare_seconds=self.stats.prepare_seconds,
        )

    def adopt(self, snapshot: Snapshot, origin: str) -> None:
        """Restore from ``snapshot`` before every marked test; make the first restore now."""
        # An engine whose checkpoint carries the files restores onto the base image.
        image = snapshot.image or self.resolve_image()
        self.factory.tmpfs = dict(snapshot.tmpfs)
        restorer = Restorer(
            self.factory,
            snapshot,
            image,
            log_tail=self.preparer.log_tail,
            observer=self.observer,
        )
        self.restorer = restorer
        self.stats.absorb(snapshot, origin)
        inplace = self.options.strategy == "inplace"
        with self.preparer.phase("first restore"):
            self._current = restorer.restore_new(keep=inplace)
        self.restores = 1
        self._strategy = snapshot_strategy(
            restorer,
            inplace=inplace,
            ahead=self.options.restore_ahead,
            depth=self.options.restore_ahead_depth,
            network=self.network,
            timeout=self.options.restore_timeout,
            say=self.say,
        )
        self.stats.mode = self._strategy.mode
        self.stats.ahead_depth = self._strategy.ahead_depth

    def use_recreate(self) -> None:
        """Reset by recreating and preparing again (no CRIU)."""
        self._strategy = RecreateReset(lambda: self._start_prepared("recreated"))
        self.stats.mode = self._strategy.mode

    # -- per test -------------------------------------------------------------------------

    def touch(self) -> None:
        """Record that a test is using the current container."""
        self._dirty = True

    def reset(self) -> float:
        """Give the next test a pristine container; return how long the test waited."""
        began = time.monotonic()
        strategy = self._strategy
        if strategy is None:
            raise EngineError(f"{self.name}: snapshots are unavailable, cannot reset")
        if not self._dirty and self._current is not None:
            self._dirty = True
            self._tell(ResetRecord(self.name, 0.0, began, began, self._current.id))
            return 0.0
        pending, ready = strategy.ahead_state
        previous, self._current = self._current, None
        self._lost = "the last reset failed; the next marked test tries again"
        self._current = next_container(
            strategy,
            previous,
            kill_first=self.engine.kill if self._one_namespace else None,
            discard=self.factory.retire,
            retries=self.options.restore_retries,
            say=self.say,
            name=self.name,
        )
        ended = time.monotonic()
        self.restores += 1
        self.stats.resets.append(ended - began)
        self._dirty = True
        for callback in list(self._listeners):
            callback(self.handle)
        strategy.after_reset()
        self._tell(ResetRecord(self.name, ended - began, began, ended, self._current.id,
                               pending, ready))  # fmt: skip
        return ended - began

    # -- keeping and clean-up -------------------------------------------------------------

    def keep_current(self) -> str | None:
        """Keep the current container (and its network holder) after the session; its id.

        Not possible with the in-place strategy, whose container holds the checkpoint.
        """
        if self._current is None or (self._strategy and self._strategy.holds_checkpoint):
            return None
        self.tracker.keep(self._current.id)
        return self._current.id

    def settle(self, timeout: float) -> None:
        """Wait until the background work is done: restore and holder ahead, removals.

        Afterwards the process holds only what a warm container keeps between tests, which
        makes resource samples exact. Raises :class:`EngineError` after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        if self._strategy is not None:
            self._strategy.settle(timeout)
        if self.restorer is not None:
            self.restorer.settle(max(0.0, deadline - time.monotonic()))
        self.factory.holders.settle(max(0.0, deadline - time.monotonic()))
        self.tracker.settle(deadline - time.monotonic())

    def close(self) -> None:
        """Remove every container and image this warm container created."""
        if self._strategy is not None:
            self._strategy.close()
        if self.restorer is not None:
            self.restorer.close()
        self.factory.close()
        self.tracker.close()
        self._current = None

    @property
    def running(self) -> bool:
        """Whether there is a current container (set-up succeeded and nothing removed it)."""
        return self._current is not None

    def container_state(self) -> str | None:
        """``None`` while the current container runs, else how it ended."""
        if self._current is None:
            return "no container"
        return self.preparer.exited(self._current.id)()

    # -- internals ------------------------------------------------------------------------

    @property
    def _one_namespace(self) -> bool:
        """Whether every container of the session listens in the same network namespace."""
        return self.network in ("host", "stable")

    def _start_prepared(self, role: str) -> CurrentContainer:
        def became(container: CurrentContainer) -> None:
            self._current = container

        return self.preparer.start(self.resolve_image(), role, self.handle, became)

    def _tell(self, record: ResetRecord) -> None:
        if self.observer is not None:
            self.observer.reset(record)


def _host_of(base_url: str | None) -> str:
    if base_url:
        parsed = urllib.parse.urlparse(base_url)
        if parsed.scheme in ("tcp", "http", "https") and parsed.hostname:
            return parsed.hostname
    return "127.0.0.1"
