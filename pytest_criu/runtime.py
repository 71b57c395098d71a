"""The session's pytest-criu state: settings, the engine connection, controllers.

What the host allows is :mod:`.host_facts`'s; where snapshots are kept, :mod:`.stores`'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .engine import labels
from .engine.cachekey import cache_key, inputs_digest, source_digest
from .engine.errors import CriuError, HostLimitError
from .engine.paths import private_directory
from .fixtures import Declaration
from .host_facts import HostFacts
from .observing import Records
from .options import Settings
from .stores import Stores
from .version import __version__

if TYPE_CHECKING:
    # The engine modules import docker-py: loaded when a warm container is first used.
    from .engine.base import ContainerEngine
    from .engine.snapshot import PhaseReport, WarmContainer

RUNTIME_KEY = pytest.StashKey["Runtime"]()


class Runtime:
    """One per pytest process; created in ``pytest_configure``.

    Under pytest-xdist the controller and its workers share one session id: workers share
    snapshots through a :class:`RunStore`, and only the controller removes the session's
    resources at the end.
    """

    def __init__(
        self,
        settings: Settings,
        say: Callable[[str], None],
        *,
        on_phase: PhaseReport | None = None,
        rootdir: Path,
        session: str | None = None,
        owner_pid: int | None = None,
        worker: bool = False,
    ) -> None:
        self.settings = settings
        self.say = say
        self.on_phase = on_phase
        self.rootdir = rootdir
        self.worker = worker
        self.distributed = False
        self.owner = labels.Owner.current(session, owner_pid)
        self.controllers: dict[str, WarmContainer] = {}
        self.closed: list[WarmContainer] = []
        self.skipped = 0
        self.timings: list[tuple[str, str, float]] = []
        self.records = Records()
        """Restore and reset records for the hooks (``pytest_criu.hooks``)."""
        self.host = HostFacts(settings)
        """What the host allows (the doctor's report, run on first use)."""
        self.stores = Stores(
            settings, lambda: self.engine, session=self.owner.session, worker=worker
        )
        """Where snapshots are kept: the store, the cache, the run directory."""
        self._advised: set[str] = set()
        self._engine: ContainerEngine | None = None

    def advise(self, name: str) -> bool:
        """Whether ``name``'s advisories are still to be given (once per process)."""
        first = name not in self._advised
        self._advised.add(name)
        return first

    @property
    def engine_used(self) -> bool:
        """Whether this process connected to the engine (so may have created something)."""
        return self._engine is not None or bool(self.closed)

    @property
    def engine(self) -> ContainerEngine:
        if self._engine is None:
            from .engine.connect import connect

            self._engine = connect(
                self.settings.engine,
                self.settings.engine_url,
                timeout=self.settings.restore_timeout,
            )
            containers, images = labels.reap_orphans(self._engine, [self.owner.session])
            copies = self._engine.reap_leftovers()
            if containers or images or copies:
                self.say(
                    f"removed {containers} containers, {images} images and {copies} restore "
                    "copies left by crashed pytest-criu runs"
                )
        return self._engine

    # -- warm containers ----------------------------------------------------------------

    def start(self, name: str, declaration: Declaration) -> WarmContainer:
        """Start, prepare and (when the host allows) checkpoint a warm container."""
        declaration = self.effective(declaration)
        controller = self._controller(name, declaration)
        self.controllers[name] = controller
        try:
            if self.host.blocker_for(declaration) is not None:
                controller.start()
                if self.settings.fallback == "recreate":
                    controller.use_recreate()
                return controller
            parts = self.key_parts(controller, declaration, cache=self.settings.cache)
            key = cache_key(parts)
            provenance = {"parts": parts, "base_reference": declaration.spec.image}
            try:
                snapshot, origin = self.stores.store.obtain(
                    key, self.owner.labels(name, "snapshot"), controller.build_snapshot, provenance
                )
            except HostLimitError as error:
                if self.settings.fallback == "fail":
                    raise
                self._unavailable(controller, error)
                return controller
            if origin == "cache":
                self.say(f"{name}: snapshot {key[:12]} from the cache")
            elif origin.startswith("imported"):
                self.say(f"{name}: snapshot {key[:12]} {origin}")
            controller.adopt(snapshot, origin)
        except BaseException as error:
            first_line = str(error).splitlines()[0] if str(error) else ""
            controller.stats.failure = f"{type(error).__name__}: {first_line}"
            self.close(controller)
            raise
        return controller

    def _unavailable(self, controller: WarmContainer, error: HostLimitError) -> None:
        """Serve a container CRIU cannot dump here as ``--criu-fallback`` says."""
        controller.unavailable = error.reason
        self.say(f"{controller.name}: snapshots unavailable: {error.reason}")
        controller.start()  # the failed dump's container is gone with its state
        if self.settings.fallback == "recreate":
            controller.use_recreate()

    def keys(self, declarations: dict[str, Declaration]) -> dict[str, dict[str, object]]:
        """The cache key parts of each warm container, without preparing or starting it."""
        found: dict[str, dict[str, object]] = {}
        for name, declared in declarations.items():
            declaration = self.effective(declared)
            controller = self._controller(name, declaration)
            try:
                found[name] = self.key_parts(controller, declaration, cache=True)
            finally:
                controller.close()
        return found

    def effective(self, declaration: Declaration) -> Declaration:
        """The declaration with the session's defaults filled in (``--criu-userns``)."""
        if declaration.spec.userns is not None or self.settings.userns is None:
            return declaration
        spec = dataclasses.replace(declaration.spec, userns=self.settings.userns)
        return dataclasses.replace(declaration, spec=spec)

    def _controller(self, name: str, declaration: Declaration) -> WarmContainer:
        from .engine.snapshot import Options, WarmContainer

        options = Options(
            strategy=declaration.strategy or self.settings.strategy,
            ready_timeout=declaration.ready_timeout or self.settings.ready_timeout,
            restore_timeout=self.settings.restore_timeout,
            pull=declaration.pull,
            volume_policy=declaration.volume_policy,
            restore_ahead=self.settings.restore_ahead,
            restore_ahead_depth=self.settings.restore_ahead_depth,
            restore_retries=self.settings.restore_retries,
            network_holder=self.settings.network_holder,
            holder_image=self.settings.holder_image,
        )
        return WarmContainer(
            name=name,
            spec=declaration.spec,
            ready=declaration.ready,
            prepare=declaration.prepare,
            engine=self.engine,
            owner=self.owner,
            options=options,
            say=self.say,
            on_phase=self.on_phase,
            observer=self.records,
        )

    def key_parts(
        self, controller: WarmContainer, declaration: Declaration, *, cache: bool
    ) -> dict[str, object]:
        """What the snapshot's key covers; with ``cache``, also prepare's code and the host."""
        from .engine.holders import checkpoint_network

        image = controller.resolve_image()
        parts: dict[str, object] = {
            "name": controller.name,
            "plugin": __version__,
            "image": image,
            "spec": declaration.spec.fingerprint(),
            "tmpfs": sorted(controller.tmpfs.items()),
            # A checkpoint taken in a holder's namespace restores only into one.
            "network": checkpoint_network(controller.network),
        }
        if cache:
            version = self.engine.version()
            parts.update(
                prepare=source_digest(declaration.prepare, self.rootdir),
                inputs=inputs_digest(declaration.cache_inputs),
                criu=self.host.report.criu_version,
                kernel=platform.release(),
                engine=self.engine.name,
                docker=version.get("Version"),
            )
        return parts

    def close(self, controller: WarmContainer) -> None:
        if self.controllers.get(controller.name) is controller:
            del self.controllers[controller.name]
        controller.close()
        self.closed.append(controller)

    def close_all(self) -> None:
        """Remove whatever this process still holds, also after Ctrl-C."""
        for controller in list(self.controllers.values()):
            with contextlib.suppress(Exception):
                self.close(controller)
        self.stores.close()
        kept = {cid for c in self.closed for cid in c.tracker.kept}
        if self.worker:
            if kept:
                # The controller removes the session's containers; tell it which to spare.
                directory = private_directory(self.stores.run_directory)
                (directory / f"kept-{os.getpid()}").write_text("\n".join(sorted(kept)))
        else:
            self._remove_session(kept)
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def _remove_session(self, kept: set[str]) -> None:
        """The controller's final clean-up: everything labelled with the session."""
        run_directory = self.stores.run_directory
        for note in run_directory.glob("kept-*"):
            kept.update(note.read_text().split())
        shutil.rmtree(run_directory, ignore_errors=True)
        if self._engine is None and not self.distributed:
            return
        with contextlib.suppress(CriuError, Exception):
            labels.remove_session(self.engine, self.owner.session, keep=kept)


def runtime_of(config: pytest.Config) -> Runtime:
    try:
        return config.stash[RUNTIME_KEY]
    except KeyError:
        raise pytest.UsageError(
            "pytest-criu is not active: warm_container fixtures need the plugin "
            "(it was disabled with -p no:criu?)"
        ) from None
