"""Strategy (d), the engine floor: the engine's bare restore call, everything else untimed.

The snapshot is built through the plugin's own engine layer
(:meth:`WarmContainer.build_snapshot <pytest_criu.engine.snapshot.WarmContainer.build_snapshot>`,
exactly what the plugin does before the first test). Each engine has its own floor:

- Docker (:class:`EngineFloor`): for every sample a container is created from the committed
  image and the checkpoint is hard-linked into it *before* the clock starts; only
  ``POST /containers/ID/start?checkpoint=`` is timed;
- Podman (:class:`PodmanFloor`): only ``POST /libpod/containers/import/restore`` of the
  already exported archive is timed, with the parameters the plugin's
  ``PodmanEngine.restore_new`` sends (plus ``printStats``, for CRIU's own time); that one call
  creates the container, unpacks the archive and restores it, so there is nothing to do
  before the clock starts.

The container is removed (synchronously, untimed) before the next sample, so no other work
of ours overlaps the timed call.

A diagnostic variant, (d'), does what the plugin's fresh reset does around the same call: the
previous sample's container is removed in a background thread, started just before the new
container is created, so the removal overlaps the timed restore.

CRIU's own share of each restore: on Docker from its ``restore.log``, which containerd keeps
in the running task's work directory (the log's last timestamp is CRIU's run time); on
Podman, which deletes that log after a successful restore, from the ``restore_time`` of the
CRIU statistics the call returns.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_criu.engine import labels as labelling

try:
    from pytest_criu.engine.base import ContainerConfig
except ImportError:  # a --plugin-ref from before engine/base.py (it was engine/compat.py)
    from pytest_criu.engine.compat import ContainerConfig  # type: ignore[import-not-found,no-redef,unused-ignore]
from pytest_criu.engine.docker import DockerEngine
from pytest_criu.engine.snapshot import CHECKPOINT_NAME, Options, WarmContainer
from pytest_criu.engine.spec import build_spec
from pytest_criu.engine.store import Snapshot

from .workloads import BENCH_LABEL, Workload

if TYPE_CHECKING:  # not at run time: commits before the Podman backend lack these modules
    from pytest_criu.engine.base import ContainerEngine

TASK_ROOTS = (
    "/run/docker/containerd/daemon/io.containerd.runtime.v2.task/moby",
    "/run/containerd/io.containerd.runtime.v2.task/moby",
)
_TIMESTAMP = re.compile(rb"^\((\d+)\.(\d+)\)")

# The floor is today's own-namespace path: a snapshot taken in a holder's namespace restores
# only into one (a plugin from before network holders has no such option).
OWN_NETWORK: dict[str, Any] = (
    {"network_holder": "off"}
    if "network_holder" in {f.name for f in dataclasses.fields(Options)}
    else {}
)


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
    create: float | None
    """``None`` where the restore call creates the container itself (Podman)."""
    place: float | None
    inspect: float
    criu: float | None


@dataclass
class _Restored:
    """What an engine's timed restore made: the container and its timings."""

    container: str
    restore: float
    create: float | None = None
    place: float | None = None
    criu: float | None = None


@dataclass
class BuiltSnapshot:
    """A workload's snapshot built by the harness, and what it took."""

    snapshot: Snapshot
    prepare_seconds: float
    checkpoint_seconds: float
    bytes: int
    engine_phases: dict[str, float] = field(default_factory=dict)


class EngineFloor:
    """Builds one workload's snapshot and times bare engine restores of it (Docker)."""

    engine_name = "docker"
    label = "start?checkpoint="
    """The timed call, for the report."""

    def __init__(self, engine: ContainerEngine, workload: Workload, run_id: str) -> None:
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
            options=Options(ready_timeout=workload.ready_timeout, pull=False, **OWN_NETWORK),
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
            image=snapshot.image or self.controller.resolve_image(),
            labels={
                **self.spec.labels,
                **self.owner.labels(self.controller.name, "floor"),
            },
            tmpfs=snapshot.tmpfs,
        )
        try:
            restored = self._restore(config, Path(snapshot.checkpoint))
            began = time.monotonic()
            self.engine.inspect(restored.container)
            inspected = time.monotonic() - began
            if restored.criu is None:
                restored.criu = criu_restore_seconds(restored.container)
        except BaseException:
            if remover is not None:
                remover.join()
                remover = None
            for container_id in list(self._containers):
                with contextlib.suppress(Exception):
                    self._remove(container_id)
            raise
        finally:
            if remover is not None:
                remover.join()
        if remove_previous_concurrently:
            self._previous = restored.container
        else:
            self._remove(restored.container)
        return FloorSample(
            restore=restored.restore,
            create=restored.create,
            place=restored.place,
            inspect=inspected,
            criu=restored.criu,
        )

    def _restore(self, config: ContainerConfig, checkpoint: Path) -> _Restored:
        """Create the container and place the checkpoint, untimed; time the restore call."""
        engine = self.engine
        assert isinstance(engine, DockerEngine)
        began = time.monotonic()
        container_id = engine.create(config)
        self._containers.add(container_id)
        created = time.monotonic()
        engine.place_checkpoint(checkpoint, container_id, CHECKPOINT_NAME)
        placed = time.monotonic()
        engine.restore(container_id, CHECKPOINT_NAME)
        return _Restored(
            container=container_id,
            restore=time.monotonic() - placed,
            create=created - began,
            place=placed - created,
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
                if snapshot.image:
                    self.engine.remove_image(snapshot.image)


class PodmanFloor(EngineFloor):
    """The engine floor on Podman: a bare ``/libpod/containers/import/restore``.

    The parameters are those of ``PodmanEngine.restore_new`` (a new name recording the
    owner, CRIU's options, ports published on the loopback address), plus ``printStats``:
    Podman deletes CRIU's restore log after a successful restore, the statistics it returns
    instead carry CRIU's ``restore_time``.
    """

    engine_name = "podman"
    label = "libpod import/restore"

    def __init__(self, engine: ContainerEngine, workload: Workload, run_id: str) -> None:
        # Imported here: commits before the Podman backend have no such module.
        from pytest_criu.engine import podman

        super().__init__(engine, workload, run_id)
        self._podman = podman

    def _restore(self, config: ContainerConfig, checkpoint: Path) -> _Restored:
        podman = self._podman
        engine = self.engine
        assert isinstance(engine, podman.PodmanEngine)
        name = labelling.owner_name(config.labels)
        params: dict[str, Any] = {
            "import": "true",
            "name": name,
            "printStats": "true",
            **podman.CRIU_OPTIONS,
        }
        if config.spec.network_mode not in ("host", "none") and config.spec.ports:
            params["publishPorts"] = [
                f"{config.host_ip}::{port.number}/{port.protocol}" for port in config.spec.ports
            ]
        url = f"{engine.api.base_url}/{podman.LIBPOD_VERSION}/libpod/containers/import/restore"
        self._containers.add(name)  # removed by name should the import fail half-way
        with open(checkpoint / podman.ARCHIVE, "rb") as archive:
            began = time.monotonic()
            response = engine.api.post(
                url,
                params=params,
                data=archive,
                headers={"Content-Type": "application/x-tar"},
                timeout=engine.timeout,
            )
            restored = time.monotonic() - began
        if response.status_code >= 300:
            raise RuntimeError(f"Podman could not restore: {response.text.strip()[:300]}")
        answer = response.json()
        self._containers.discard(name)
        container_id = str(answer["Id"])
        self._containers.add(container_id)
        statistics = answer.get("criu_statistics") or {}
        criu = statistics.get("restore_time")
        return _Restored(
            container=container_id,
            restore=restored,
            criu=None if criu is None else criu / 1e6,
        )


def make_floor(engine: ContainerEngine, workload: Workload, run_id: str) -> EngineFloor:
    """The engine floor of ``engine`` (Docker's, or Podman's)."""
    if getattr(engine, "name", "docker") == "podman":
        return PodmanFloor(engine, workload, run_id)
    return EngineFloor(engine, workload, run_id)
