"""Strategy (d), the engine floor: a bare ``start?checkpoint=`` of an already placed checkpoint.

The snapshot is built through the plugin's own engine layer
(:meth:`WarmContainer.build_snapshot <pytest_criu.engine.snapshot.WarmContainer.build_snapshot>`,
exactly what the plugin does before the first test). For every sample a container is created
from the committed image and the checkpoint is hard-linked into it *before* the clock starts;
only the Engine API call that restores it is timed. The container is removed (synchronously,
untimed) before the next sample, so no other work of ours overlaps the timed call.

A diagnostic variant, (d'), does what the plugin's fresh reset does around the same call: the
previous sample's container is removed in a background thread, started just before the new
container is created, so the removal overlaps the timed restore.

CRIU's own share of each restore is read from its ``restore.log``, which containerd keeps in
the running task's work directory: the log's last timestamp is CRIU's run time.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pytest_criu.engine import labels as labelling
from pytest_criu.engine.docker import ContainerConfig, DockerEngine
from pytest_criu.engine.snapshot import CHECKPOINT_NAME, Options, WarmContainer
from pytest_criu.engine.spec import build_spec
from pytest_criu.engine.store import Snapshot

from .workloads import BENCH_LABEL, Workload

TASK_ROOTS = (
    "/run/docker/containerd/daemon/io.containerd.runtime.v2.task/moby",
    "/run/containerd/io.containerd.runtime.v2.task/moby",
)
_TIMESTAMP = re.compile(rb"^\((\d+)\.(\d+)\)")


def criu_restore_seconds(container_id: str) -> float | None:
    """CRIU's run time for the last restore of a running container, from its restore.log."""
    for root in TASK_ROOTS:
        log = Path(root, container_id, "work", "restore.log")
        try:
            with log.open("rb") as stream:
                stream.seek(0, 2)
                size = stream.tell()
                stream.seek(max(0, size - 8192))
                tail = stream.read()
        except OSError:
            continue
        return last_timestamp(tail)
    return None


def last_timestamp(log: bytes) -> float | None:
    """The last ``(SS.micros)`` timestamp of a CRIU log, in seconds."""
    for line in reversed(log.splitlines()):
        match = _TIMESTAMP.match(line)
        if match:
            return float(match.group(1) + b"." + match.group(2))
    return None


@dataclass
class FloorSample:
    """One timed engine restore, and the untimed steps around it."""

    restore: float
    create: float
    place: float
    inspect: float
    criu: float | None


@dataclass
class BuiltSnapshot:
    """A workload's snapshot built by the harness, and what it took."""

    snapshot: Snapshot
    prepare_seconds: float
    checkpoint_seconds: float
    bytes: int
    engine_phases: dict[str, float] = field(default_factory=dict)


class EngineFloor:
    """Builds one workload's snapshot and times bare engine restores of it."""

    def __init__(self, engine: DockerEngine, workload: Workload, run_id: str) -> None:
        self.engine = engine
        self.workload = workload
        self.run_id = run_id
        self.owner = labelling.Owner.current()
        self.spec = build_spec(
            image=workload.image,
            command=list(workload.command),
            ports=list(workload.ports),
            tmpfs=dict(workload.tmpfs),
            labels={BENCH_LABEL: run_id},
        )
        self.controller = WarmContainer(
            name=f"floor-{workload.name}",
            spec=self.spec,
            ready=workload.ready,
            prepare=workload.prepare,
            engine=engine,
            owner=self.owner,
            options=Options(ready_timeout=workload.ready_timeout, pull=False),
        )
        self.built: BuiltSnapshot | None = None
        self._containers: set[str] = set()
        self._previous: str | None = None

    def build(self) -> BuiltSnapshot:
        """Prepare and checkpoint the workload once (the plugin's own code path)."""
        self.controller.resolve_image()
        snapshot = self.controller.build_snapshot(
            {**self.owner.labels(self.controller.name, "snapshot"), BENCH_LABEL: self.run_id}
        )
        self.built = BuiltSnapshot(
            snapshot=snapshot,
            prepare_seconds=snapshot.prepare_seconds or 0.0,
            checkpoint_seconds=snapshot.checkpoint_seconds or 0.0,
            bytes=sum(snapshot.files.values()),
        )
        return self.built

    def sample(self, *, remove_previous_concurrently: bool = False) -> FloorSample:
        """Create and place untimed, time the Engine API restore, remove untimed.

        With ``remove_previous_concurrently`` the previous sample's container (left running)
        is removed in a thread while this sample is created and restored, as the plugin's
        fresh reset removes the test's container in the background; this sample's container
        is then left running for the next one.
        """
        assert self.built is not None
        remover: threading.Thread | None = None
        if remove_previous_concurrently and self._previous is not None:
            remover = threading.Thread(target=self._remove, args=(self._previous,))
            self._previous = None
            remover.start()
        elif not remove_previous_concurrently:
            self.flush()
        snapshot = self.built.snapshot
        config = ContainerConfig(
            spec=self.spec,
            image=snapshot.image,
            labels={
                **self.spec.labels,
                **self.owner.labels(self.controller.name, "floor"),
            },
            tmpfs=snapshot.tmpfs,
        )
        began = time.monotonic()
        container_id = self.engine.create(config)
        self._containers.add(container_id)
        created = time.monotonic()
        self.engine.place_checkpoint(Path(snapshot.checkpoint), container_id, CHECKPOINT_NAME)
        placed = time.monotonic()
        try:
            self.engine.restore(container_id, CHECKPOINT_NAME)
            restored = time.monotonic()
            self.engine.inspect(container_id)
            inspected = time.monotonic()
            criu = criu_restore_seconds(container_id)
        except BaseException:
            self._remove(container_id)
            raise
        finally:
            if remover is not None:
                remover.join()
        if remove_previous_concurrently:
            self._previous = container_id
        else:
            self._remove(container_id)
        return FloorSample(
            restore=restored - placed,
            create=created - began,
            place=placed - created,
            inspect=inspected - restored,
            criu=criu,
        )

    def flush(self) -> None:
        """Remove the container a concurrent-removal sample left running."""
        previous, self._previous = self._previous, None
        if previous is not None:
            self._remove(previous)

    def _remove(self, container_id: str) -> None:
        self.engine.remove(container_id)
        self._containers.discard(container_id)

    def close(self) -> None:
        """Remove every container and the image this floor created."""
        for container_id in list(self._containers):
            with contextlib.suppress(Exception):
                self.engine.remove(container_id)
        self.controller.close()
        if self.built is not None:
            snapshot = self.built.snapshot
            with contextlib.suppress(Exception):
                if snapshot.source:
                    self.engine.remove(snapshot.source)
            with contextlib.suppress(Exception):
                self.engine.remove_image(snapshot.image)
