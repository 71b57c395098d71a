"""Warm containers: prepare once, checkpoint, and reset to the checkpoint before each test.

Three ways to reset:

- ``fresh``: restore the checkpoint into a new container created from the image committed at
  checkpoint time, so memory, tmpfs and the filesystem are all as prepared;
- ``inplace``: restore the checkpoint into the same container again; the container's
  writable layer is NOT reset, so it is correct only when all mutable state lives in memory
  or tmpfs;
- ``recreate`` (fallback without CRIU): a new container from the base image, readiness and
  ``prepare`` again; slow but correct.
"""

from __future__ import annotations

import contextlib
import os
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import archive
from . import labels as labelling
from .compat import ContainerConfig, ContainerEngine
from .errors import (
    DamagedCheckpointError,
    EngineError,
    PrepareError,
    ReadinessTimeoutError,
    SpecError,
)
from .holders import HolderPool, HolderSetting, NetworkPath, holder_spec, joined_spec, network_path
from .ready import Health, ReadyCheck, wait_until_ready
from .spec import ContainerSpec, Port, PortLike, Strategy
from .store import Snapshot, file_sizes
from .tracker import ContainerTracker

CHECKPOINT_NAME = "pytest-criu"
Mode = Literal["snapshot", "recreate", "shared"]
Say = Callable[[str], None]
PhaseReport = Callable[[str, str, "float | None"], None]
"""Called with the warm container's name and a phase: ``None`` when it begins, then its seconds."""


@dataclass
class Options:
    """How a warm container is reset and how long its waits may take."""

    strategy: Strategy = "fresh"
    ready_timeout: float = 60.0
    restore_timeout: float = 120.0
    pull: bool = True
    volume_policy: Literal["tmpfs", "refuse"] = "tmpfs"
    restore_ahead: bool = True
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
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds spent per restore phase, summed over every restore (constant size)."""

    def add_phase(self, phase: str, seconds: float) -> None:
        self.phases[phase] = self.phases.get(phase, 0.0) + seconds


@dataclass
class _Container:
    id: str
    ports: dict[Port, int]
    address: str | None


class ContainerHandle:
    """The fixture value of a warm container: always points at the current container."""

    def __init__(self, controller: WarmContainer) -> None:
        self._controller = controller
        self._listeners: list[Callable[[ContainerHandle], object]] = []

    @property
    def name(self) -> str:
        """The fixture's name."""
        return self._controller.name

    @property
    def host(self) -> str:
        """The host to connect to for published ports."""
        return self._controller.host

    @property
    def id(self) -> str:
        """The id of the current container (changes with every fresh restore)."""
        return self._controller.current.id

    @property
    def restores(self) -> int:
        """How many times the container was reset so far; reconnect when it changes."""
        return self._controller.restores

    def port(self, container_port: PortLike) -> int:
        """The host port the current container's ``container_port`` is published on."""
        port = Port.parse(container_port, where="port()")
        try:
            return self._controller.current.ports[port]
        except KeyError:
            published = sorted(str(p) for p in self._controller.current.ports) or "none"
            raise KeyError(
                f"{self.name}: container port {port} is not published; published: {published}; "
                f"add it to warm_container(ports=[...])"
            ) from None

    def address(self, container_port: PortLike) -> tuple[str, int]:
        """``(host, port)`` for ``container_port``, ready for ``socket.create_connection``."""
        return self.host, self.port(container_port)

    def container_address(self) -> str | None:
        """The container's own IP address on its bridge network, if it has one."""
        return self._controller.current.address

    def exec(self, argv: Sequence[str], *, user: str | None = None) -> tuple[int, str]:
        """Run ``argv`` in the current container; return its exit code and combined output."""
        if isinstance(argv, str):
            raise TypeError(f"exec() takes a list of arguments, not the string {argv!r}")
        return self._controller.engine.exec(self.id, argv, user=user)

    def logs(self, tail: int | None = None) -> str:
        """The current container's output (stdout and stderr), or its last ``tail`` lines."""
        return self._controller.engine.logs(self.id, tail="all" if tail is None else tail)

    def copy_into(self, source: str | os.PathLike[str], destination: str) -> str:
        """Copy a host file or directory into the current container; return the path made.

        As ``cp -r``: into ``destination`` if it is an existing directory, else to that path
        (its directory must exist). Copies belong to root and keep their modes. Made in
        ``prepare``, they are part of the snapshot; tmpfs mounts are refused (Docker's
        archive API cannot reach them).
        """
        return archive.copy_into(
            self._controller.engine,
            self.id,
            source,
            destination,
            tmpfs=self._controller.tmpfs,
            what=f"{self.name}: copy_into",
        )

    def health(self) -> Health | None:
        """The engine's health-check state of the current container (``None``: it has none).

        Meaningful before the checkpoint; after a restore Docker reports ``starting`` until
        its next check and Podman the state saved in the checkpoint.
        """
        return self._controller.engine.health(self.id)

    def on_restore(self, callback: Callable[[ContainerHandle], object]) -> None:
        """Call ``callback(handle)`` after every reset, e.g. to reconnect a client."""
        self._listeners.append(callback)

    def _notify(self) -> None:
        for callback in list(self._listeners):
            callback(self)

    def __repr__(self) -> str:
        current = self._controller._current
        where = f"id={current.id[:12]}" if current else "no container"
        return f"<ContainerHandle {self.name} {where} restores={self.restores}>"


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
    ) -> None:
        self.name = name
        self.spec = spec
        self.ready = tuple(ready)
        self.prepare_function = prepare
        self.engine = engine
        self.owner = owner
        self.options = options
        self.say = say
        self.on_phase = on_phase
        self.stats = Stats()
        self.handle = ContainerHandle(self)
        self.restores = 0
        self.mode: Mode = "shared"
        self.host = _host_of(engine.base_url)
        self._current: _Container | None = None
        self._lost = "set-up has not finished"
        self._tmpfs: dict[str, str] = dict(spec.tmpfs)
        self._base_image = ""
        self._snapshot_image: str | None = None
        self._snapshot: Snapshot | None = None
        self._checkpoint: Path | None = None
        self._tracked = ContainerTracker()
        self._dirty = False
        self.network: NetworkPath = network_path(
            engine.name, spec.network_mode, options.network_holder
        )
        self._holders: HolderPool | None = None
        self._holder_image = ""
        self._remover = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"criu-rm-{name}")
        self._ahead: ThreadPoolExecutor | None = None
        self._next: Future[_Container] | None = None
        self.not_reset: list[str] = [
            f"{source} -> {target}" for source, target in spec.volumes.items()
        ]

    # -- public life cycle ----------------------------------------------------------------

    @property
    def current(self) -> _Container:
        if self._current is None:
            raise EngineError(f"{self.name}: no running container: {self._lost}")
        return self._current

    def resolve_image(self) -> str:
        """Make sure the base image is here; cover its declared volumes; return its id."""
        if not self._base_image:
            image = self.engine.ensure_image(self.spec.image, pull=self.options.pull)
            for check in self.ready:
                problem = check.unusable_with(image.get("Config") or {}, self.spec)
                if problem is not None:
                    raise SpecError(f"{self.name}: {problem}")
            self._base_image = str(image["Id"])
            self._cover_declared_volumes(image)
        return self._base_image

    @property
    def tmpfs(self) -> Mapping[str, str]:
        """The tmpfs mounts of every container: the spec's plus covered VOLUMEs."""
        return dict(self._tmpfs)

    def start(self) -> None:
        """Create the first container, wait until it is ready and run ``prepare``."""
        began = time.monotonic()
        self._current = self._start_prepared(self.resolve_image(), "source")
        self.stats.prepare_seconds = time.monotonic() - began

    def build_snapshot(self, image_labels: Mapping[str, str]) -> Snapshot:
        """Prepare a container, checkpoint it and commit its files; hand both to the caller.

        The stopped source container holds the checkpoint files; whoever receives the
        snapshot (a :mod:`store <pytest_criu.engine.store>`) removes it and the image.
        """
        self.start()
        source = self.current.id
        with self._phase("checkpoint (CRIU dump)"):
            began = time.monotonic()
            self.engine.checkpoint(source, CHECKPOINT_NAME)
        self._current = None
        try:
            with self._phase("commit filesystem"):
                image = self.engine.snapshot_image(source, image_labels)
        except BaseException:
            self._remove_now(source)
            raise
        # The stopped source goes to the store; the holder of its namespace is done.
        holder = self._tracked.drop(source)
        if holder is not None:
            self._discard(holder)
        checkpoint = self.engine.checkpoint_dir(source, CHECKPOINT_NAME)
        return Snapshot(
            checkpoint=str(checkpoint),
            files=file_sizes(checkpoint),
            image=image,
            tmpfs=self.tmpfs,
            prepare_seconds=self.stats.prepare_seconds,
            checkpoint_seconds=time.monotonic() - began,
            source=source,
        )

    def adopt(self, snapshot: Snapshot, origin: str) -> None:
        """Restore from ``snapshot`` before every marked test; make the first restore now."""
        self._snapshot = snapshot
        self._checkpoint = Path(snapshot.checkpoint)
        # An engine whose checkpoint carries the files restores onto the base image.
        self._snapshot_image = snapshot.image or self.resolve_image()
        self._tmpfs = dict(snapshot.tmpfs)
        self.stats.origin = origin
        self.stats.checkpoint_bytes = sum(snapshot.files.values()) or None
        if origin == "prepared" or origin.startswith("prepared "):
            self.stats.prepare_seconds = snapshot.prepare_seconds
            self.stats.checkpoint_seconds = snapshot.checkpoint_seconds
        self.mode = "snapshot"
        self.stats.mode = f"snapshot/{self.options.strategy}"
        with self._phase("first restore"):
            self._current = self._restore_one()
        self.restores = 1
        if self.options.restore_ahead and self.spec.network_mode == "host":
            # The next container would bind the same host ports and take new connections.
            self.say(
                f"{self.name}: restore-ahead is off: with host networking the container "
                "restored ahead would take over the current one's ports"
            )
        elif self.options.restore_ahead and self.options.strategy == "fresh":
            self._ahead = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"criu-ahead-{self.name}"
            )
            # The first test gets the first restore; the second one's is made meanwhile.
            self._next = self._ahead.submit(self._restore_one)

    def use_recreate(self) -> None:
        self.mode = "recreate"
        self.stats.mode = "recreate (no CRIU)"

    def keep_current(self) -> str | None:
        """Keep the current container (and its network holder) after the session; its id.

        Not possible with the in-place strategy, whose container holds the checkpoint.
        """
        if self._current is None or (
            self.mode == "snapshot" and self.options.strategy == "inplace"
        ):
            return None
        self._tracked.keep(self._current.id)
        return self._current.id

    @property
    def kept(self) -> set[str]:
        """Ids of the containers (and their network holders) kept after the session."""
        return self._tracked.kept

    def kept_groups(self) -> list[tuple[str, ...]]:
        """Each kept container's id, followed by its network holder's (removed together)."""
        return self._tracked.kept_groups()

    def touch(self) -> None:
        """Record that a test is using the current container."""
        self._dirty = True

    def reset(self) -> float:
        """Give the next test a pristine container; return how long the test waited."""
        began = time.monotonic()
        if self.mode == "shared":
            raise EngineError(f"{self.name}: snapshots are unavailable, cannot reset")
        if not self._dirty and self._current is not None:
            self._dirty = True
            return 0.0
        previous = self._current
        self._current = None
        self._lost = "the last reset failed; the next marked test tries again"
        replaced: str | None = None
        if previous is not None and (self.mode == "recreate" or self.options.strategy == "fresh"):
            if self.spec.network_mode == "host":
                # Gone before the next one listens on the same host ports: CRIU would let
                # both listen, and the test could reach the old one.
                self._remove_now(previous.id)
            else:
                # Removed once the next one runs: removing it meanwhile slows the restore
                # (Podman's by about half, measured by the benchmarks).
                replaced = previous.id
            previous = None
        retries = self.options.restore_retries
        try:
            for attempt in range(retries + 1):
                try:
                    self._current = self._reset_once(previous)
                    break
                except DamagedCheckpointError:
                    raise
                except EngineError as error:
                    if attempt == retries:
                        raise
                    first_line = str(error).splitlines()[0]
                    self.say(
                        f"{self.name}: reset failed ({first_line}); retry {attempt + 1}/{retries}"
                    )
        finally:
            if replaced is not None:
                self._discard(replaced)
        elapsed = time.monotonic() - began
        self.restores += 1
        self.stats.resets.append(elapsed)
        self._dirty = True
        self.handle._notify()
        if self._ahead is not None:
            self._next = self._ahead.submit(self._restore_one)
        return elapsed

    def _reset_once(self, previous: _Container | None) -> _Container:
        if self.mode == "recreate":
            return self._start_prepared(self._base_image, "recreated")
        if self.options.strategy == "inplace" and previous is not None:
            return self._restore_in_place(previous.id)
        return self._take_next()

    def settle(self, timeout: float) -> None:
        """Wait until the background work is done: restore and holder ahead, removals.

        Afterwards the process holds only what a warm container keeps between tests, which
        makes resource samples exact. Raises :class:`EngineError` after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        pending = self._next
        if pending is not None:
            done, _ = wait([pending], timeout=timeout)
            if not done:
                raise EngineError(
                    f"{self.name}: the restore ahead did not finish within {timeout:g}s"
                )
        if self._holders is not None and not self._holders.idle(timeout):
            raise EngineError(
                f"{self.name}: the network holder ahead did not start within {timeout:g}s"
            )
        drained = self._remover.submit(lambda: None)
        try:
            drained.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            raise EngineError(
                f"{self.name}: removing replaced containers did not finish within {timeout:g}s"
            ) from None

    def close(self) -> None:
        """Remove every container and image this warm container created."""
        if self._next is not None:
            # Whatever it restored is tracked already; only wait for it to finish.
            with contextlib.suppress(Exception):
                self._next.result(timeout=self.options.restore_timeout)
        if self._ahead is not None:
            self._ahead.shutdown(wait=True)
        if self._holders is not None:
            self._holders.close()
        self._remover.shutdown(wait=True)
        for container_id in self._tracked.removal_order():
            with contextlib.suppress(Exception):
                self.engine.remove(container_id)
            self._tracked.drop(container_id)
        self._current = None

    @property
    def running(self) -> bool:
        """Whether there is a current container (set-up succeeded and nothing removed it)."""
        return self._current is not None

    def container_state(self) -> str | None:
        """``None`` while the current container runs, else how it ended."""
        if self._current is None:
            return "no container"
        return self._exited(self._current.id)()

    # -- internals ------------------------------------------------------------------------

    def _cover_declared_volumes(self, image: dict[str, Any]) -> None:
        declared = sorted((image.get("Config") or {}).get("Volumes") or {})
        mounted = set(self._tmpfs) | {t.partition(":")[0] for t in self.spec.volumes.values()}
        uncovered = [path for path in declared if path not in mounted]
        if not uncovered:
            return
        if self.options.volume_policy == "refuse":
            raise SpecError(
                f"{self.name}: image {self.spec.image} declares VOLUME {', '.join(uncovered)}; "
                "data there would survive restores in an anonymous volume. Mount tmpfs over "
                "them (tmpfs={...}) or use volume_policy='tmpfs'"
            )
        for path in uncovered:
            self._tmpfs[path] = ""
        self.say(
            f"{self.name}: VOLUME {', '.join(uncovered)} mounted as tmpfs so restores reset it"
        )

    def _config(self, image: str, role: str, holder: str | None = None) -> ContainerConfig:
        return ContainerConfig(
            spec=joined_spec(self.spec, holder) if holder else self.spec,
            image=image,
            labels={**self.spec.labels, **self.owner.labels(self.name, role)},
            tmpfs=self._tmpfs,
        )

    def _create(self, image: str, role: str) -> str:
        holder = self._take_holder()
        try:
            container_id = self.engine.create(self._config(image, role, holder))
        except BaseException:
            if holder is not None:
                self._discard(holder)
            raise
        self._tracked.add(container_id, holder)
        return container_id

    def _take_holder(self) -> str | None:
        """A running network holder for the next container, when this path uses them."""
        if self.network != "holder":
            return None
        if self._holders is None:
            self._holders = HolderPool(
                self._make_holder, self._discard, self._holder_running, name=self.name
            )
        return self._holders.take()

    def _holder_running(self, holder: str) -> bool:
        try:
            return bool((self.engine.inspect(holder).get("State") or {}).get("Running"))
        except Exception:  # gone, or the engine does not answer: make a new one
            return False

    def _make_holder(self) -> str:
        if not self._holder_image:
            wanted = self.options.holder_image
            image = self.engine.ensure_image(wanted, pull=self.options.pull) if wanted else None
            self._holder_image = str(image["Id"]) if image else self.resolve_image()
        spec = holder_spec(self.spec, self.options.holder_image)
        holder = self.engine.create(
            ContainerConfig(
                spec=spec,
                image=self._holder_image,
                labels={**self.spec.labels, **self.owner.labels(self.name, "holder")},
            )
        )
        self._tracked.add_holder(holder)
        try:
            self.engine.start(holder)
        except EngineError as error:
            self._remove_now(holder)
            raise EngineError(
                f"{self.name}: its network holder (image {spec.image}, running `sleep`) did not "
                f"start: {str(error).splitlines()[0]}. An image without a `sleep` program needs "
                "--criu-holder-image naming one that has it (any busybox or Debian image), or "
                "--criu-network-holder=off (Docker <= 27 only)"
            ) from None
        return holder

    def _start_prepared(self, image: str, role: str) -> _Container:
        with self._phase("starting container"):
            container_id = self._create(image, role)
            self.engine.start(container_id)
            container = self._inspect(container_id)
        self._current = container
        if self.ready:
            with self._phase("waiting for readiness"):
                self._wait_ready(container_id)
        if self.prepare_function is not None:
            with self._phase("prepare"):
                try:
                    self.prepare_function(self.handle)
                except Exception as error:
                    raise PrepareError(
                        self.spec.redact(
                            f"{self.name}: prepare raised {type(error).__name__}: {error}"
                            + self._log_tail(container_id)
                        )
                    ) from error
        return container

    def _wait_ready(self, container_id: str) -> None:
        try:
            wait_until_ready(
                self.ready,
                self.handle,
                default_timeout=self.options.ready_timeout,
                exited=self._exited(container_id),
                what=self.name,
            )
        except ReadinessTimeoutError as error:
            raise ReadinessTimeoutError(self.spec.redact(str(error))) from None

    def _restore_one(self) -> _Container:
        assert self._checkpoint is not None
        assert self._snapshot_image is not None
        damage = self._snapshot.damage() if self._snapshot else None
        if damage is not None:
            raise DamagedCheckpointError(
                f"{self.name}: {damage}: the checkpoint was damaged or changed after it was "
                "taken; restoring it could hang CRIU. Rerun (with --criu-cache, "
                "--criu-cache-clear rebuilds it)"
            )
        lap = self._lapper()
        created: list[str] = []
        holder = self._take_holder()
        lap("holder")

        def track(container_id: str) -> None:
            created.append(container_id)
            self._tracked.add(container_id, holder)

        try:
            container_id = self.engine.restore_new(
                self._config(self._snapshot_image, "restored", holder),
                self._checkpoint,
                CHECKPOINT_NAME,
                owner=self.owner.nonce,
                created=track,
                lap=lap,
                keep=self.options.strategy == "inplace",
            )
        except EngineError as error:
            tail = self._log_tail(created[0]) if created else ""
            for leftover in created:
                self._discard(leftover)
            if holder is not None and not created:
                self._discard(holder)
            raise type(error)(f"{self.name}: {error}{tail}") from None
        container = self._inspect(container_id)
        lap("inspect")
        return container

    def _restore_in_place(self, container_id: str) -> _Container:
        lap = self._lapper()
        self.engine.restore_in_place(container_id, CHECKPOINT_NAME, owner=self.owner.nonce, lap=lap)
        self._remover.submit(self.engine.tidy_after_restore, container_id)
        container = self._inspect(container_id)
        lap("inspect")
        return container

    def _lapper(self) -> Callable[[str], None]:
        """A stopwatch: each call books the time since the previous one to a phase."""
        clock = [time.monotonic()]

        def lap(phase: str) -> None:
            now = time.monotonic()
            self.stats.add_phase(phase, now - clock[0])
            clock[0] = now

        return lap

    def _take_next(self) -> _Container:
        future, self._next = self._next, None
        if future is not None:
            try:
                return future.result(timeout=self.options.restore_timeout)
            except Exception as error:
                self.say(f"{self.name}: restore-ahead failed ({error}); restoring now")
        return self._restore_one()

    def _inspect(self, container_id: str) -> _Container:
        holder = self._tracked.holder_of(container_id)
        # A container that joined a holder publishes nothing itself: the holder does.
        info = self.engine.inspect(holder or container_id)
        return _Container(
            id=container_id,
            ports=self.engine.published_ports(info),
            address=self.engine.address(info),
        )

    def _remove_now(self, container_id: str) -> None:
        """Remove a container, then its holder (kept ones stay); what fails, the session's
        clean-up removes."""
        kept = self._tracked.is_kept(container_id)
        if not kept:
            with contextlib.suppress(Exception):
                self.engine.remove(container_id)
        holder = self._tracked.drop(container_id)
        if holder is not None and not kept:
            self._remove_now(holder)

    def _discard(self, container_id: str) -> None:
        """:meth:`_remove_now` in the background."""
        if self._tracked.is_kept(container_id):
            self._tracked.drop(container_id)
            return
        self._remover.submit(self._remove_now, container_id)

    def _exited(self, container_id: str) -> Callable[[], str | None]:
        def check() -> str | None:
            state = self.engine.inspect(container_id).get("State") or {}
            if state.get("Running"):
                return None
            return f"the container exited with code {state.get('ExitCode')}"

        return check

    def _log_tail(self, container_id: str) -> str:
        try:
            lines = self.engine.logs(container_id, tail=30).splitlines()
        except EngineError:
            return ""
        if not lines:
            return ""
        return "\nlast lines of the container log:\n" + "\n".join(f"  | {line}" for line in lines)

    @contextlib.contextmanager
    def _phase(self, what: str) -> Iterator[None]:
        if self.on_phase is None:
            yield
            return
        began = time.monotonic()
        self.on_phase(self.name, what, None)
        yield
        self.on_phase(self.name, what, time.monotonic() - began)


def _host_of(base_url: str | None) -> str:
    if base_url:
        parsed = urllib.parse.urlparse(base_url)
        if parsed.scheme in ("tcp", "http", "https") and parsed.hostname:
            return parsed.hostname
    return "127.0.0.1"
