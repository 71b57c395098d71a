"""Restoring a warm container's snapshot: into a new container, or into the same one again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from . import footprint
from .creation import ContainerFactory
from .errors import DamagedCheckpointError, EngineError
from .events import Observer, RestoreKind, RestoreRecord
from .handle import CurrentContainer
from .preparing import Preparer
from .staging import RestoreStaging, with_lap
from .store import Snapshot, file_sizes

CHECKPOINT_NAME = "pytest-criu"
LogTail = Callable[[str], str]


class Restorer:
    """Restores one snapshot again and again; tells the observer about every restore.

    Every error path ends here: containers made for a failed restore are removed (with the
    holder they took), and the error names the warm container, with the container's last log
    lines when there is a container to read them from. On engines that restore in two steps,
    the container of the next restore into a new container is staged after each one
    (:mod:`staging <pytest_criu.engine.staging>`), so that only the restore itself is waited for.
    """

    def __init__(
        self,
        factory: ContainerFactory,
        snapshot: Snapshot,
        image: str,
        *,
        log_tail: LogTail,
        observer: Observer | None,
    ) -> None:
        self.factory = factory
        self.snapshot = snapshot
        self.checkpoint = Path(snapshot.checkpoint)
        self.image = image
        """The image restored containers are created from (committed at checkpoint time)."""
        self._log_tail = log_tail
        self._observer = observer
        self._staging: RestoreStaging | None = None
        self._staging_lock = threading.Lock()
        self._closed = False

    @property
    def name(self) -> str:
        return self.factory.name

    def restore_new(self, *, keep: bool = False, ahead: bool = False) -> CurrentContainer:
        """Restore the checkpoint into a new container (``keep``: it can be restored again)."""
        damage = self.snapshot.damage()
        if damage is not None:
            raise DamagedCheckpointError(
                f"{self.name}: {damage}: the checkpoint was damaged or changed after it was "
                "taken; restoring it could hang CRIU. Rerun (with --criu-cache, "
                "--criu-cache-clear rebuilds it)"
            )
        record = _Recording(self.name, "fresh", ahead)
        staging = None if keep else self._staging_of_engine()
        if staging is not None:
            return self._restore_staged(staging, record)
        factory = self.factory
        attempt = factory.restore_attempt(
            self.image, self.checkpoint, CHECKPOINT_NAME, lap=record.lap, keep=keep
        )
        try:
            container_id = factory.engine.restore_new(attempt.request)
            container = factory.current(container_id)
            record.lap("inspect")
        except EngineError as error:
            first = attempt.created[0] if attempt.created else None
            tail = self._log_tail(first) if first else ""
            factory.abandon(attempt)
            self._tell(record.done(first, error))
            raise type(error)(f"{self.name}: {error}{tail}") from None
        self._tell(record.done(container_id))
        return container

    def _restore_staged(self, staging: RestoreStaging, record: _Recording) -> CurrentContainer:
        try:
            staged = staging.take(record.lap)
        except EngineError as error:
            staging.refill()
            self._tell(record.done(None, error))
            raise
        try:
            self.factory.engine.restore_staged(
                staged.container, with_lap(staged.request, record.lap)
            )
            container = self.factory.current(staged.container)
            record.lap("inspect")
        except EngineError as error:
            tail = self._log_tail(staged.container)
            staging.discard(staged)
            self._tell(record.done(staged.container, error))
            raise type(error)(f"{self.name}: {error}{tail}") from None
        finally:
            staging.refill()
        self._tell(record.done(staged.container))
        return container

    def _staging_of_engine(self) -> RestoreStaging | None:
        if not self.factory.engine.stages_restores:
            return None
        with self._staging_lock:
            if self._staging is None and not self._closed:
                self._staging = RestoreStaging(
                    self.factory, self.checkpoint, self.image, checkpoint_name=CHECKPOINT_NAME
                )
            return self._staging

    def settle(self, timeout: float) -> None:
        """Wait until the restore being staged (if any) is staged; :class:`EngineError` on
        timeout."""
        if self._staging is not None and not self._staging.idle(timeout):
            raise EngineError(f"{self.name}: staging the next restore took over {timeout:g}s")

    def close(self) -> None:
        """Stop staging restores; the staged container is removed."""
        with self._staging_lock:
            self._closed = True
            staging, self._staging = self._staging, None
        if staging is not None:
            staging.close()

    def restore_in_place(self, container_id: str) -> CurrentContainer:
        """Stop the container and restore the checkpoint into it again."""
        engine = self.factory.engine
        record = _Recording(self.name, "inplace", False)
        try:
            engine.restore_in_place(
                container_id, CHECKPOINT_NAME, owner=self.factory.owner.nonce, lap=record.lap
            )
            self.factory.tracker.tidy(container_id)
            container = self.factory.current(container_id)
            record.lap("inspect")
        except EngineError as error:
            self._tell(record.done(container_id, error))
            raise type(error)(f"{self.name}: {error}{self._log_tail(container_id)}") from None
        self._tell(record.done(container_id))
        return container

    def _tell(self, record: RestoreRecord) -> None:
        if self._observer is not None:
            self._observer.restored(record)


class _Recording:
    """The stopwatch of one restore: each lap books the time since the previous one."""

    def __init__(self, fixture: str, kind: RestoreKind, ahead: bool) -> None:
        self.fixture = fixture
        self.kind: RestoreKind = kind
        self.ahead = ahead
        self.began = self._clock = time.monotonic()
        self.phases: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        now = time.monotonic()
        self.phases[phase] = self.phases.get(phase, 0.0) + now - self._clock
        self._clock = now

    def done(self, container: str | None, error: BaseException | None = None) -> RestoreRecord:
        return RestoreRecord(
            fixture=self.fixture,
            kind=self.kind,
            container=container,
            began=self.began,
            ended=time.monotonic(),
            phases=dict(self.phases),
            ahead=self.ahead,
            thread=threading.current_thread().name,
            error=None if error is None else str(error).splitlines()[0],
        )


def take_snapshot(
    factory: ContainerFactory,
    preparer: Preparer,
    source: str,
    image_labels: Mapping[str, str],
    *,
    prepare_seconds: float | None,
) -> Snapshot:
    """Checkpoint the prepared ``source`` and commit its files into an image.

    The source's network holder is done then (unless it is the session's lasting one); the
    stopped source goes with the snapshot to whoever receives it.
    """
    engine, tracker = factory.engine, factory.tracker
    state = engine.inspect(source).get("State") or {}
    memory = footprint.process_memory(int(state.get("Pid") or 0))
    with preparer.phase("checkpoint (CRIU dump)"):
        began = time.monotonic()
        engine.checkpoint(source, CHECKPOINT_NAME)
    try:
        with preparer.phase("commit filesystem"):
            image = engine.snapshot_image(source, image_labels)
    except BaseException:
        tracker.remove_now(source)
        raise
    factory.holders.release(tracker.drop(source))
    checkpoint = engine.checkpoint_dir(source, CHECKPOINT_NAME)
    return Snapshot(
        checkpoint=str(checkpoint),
        files=file_sizes(checkpoint),
        image=image,
        tmpfs=dict(factory.tmpfs),
        prepare_seconds=prepare_seconds,
        checkpoint_seconds=time.monotonic() - began,
        source=source,
        memory=memory,
    )
