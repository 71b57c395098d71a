"""Where this process's snapshots are kept: the store its settings choose, the cache, and the
run's scratch directory that pytest-xdist workers share."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .engine.paths import default_cache_directory
from .options import Settings

if TYPE_CHECKING:
    # The stores import docker-py: loaded when a warm container is first used.
    from .engine.base import ContainerEngine
    from .engine.store import CacheStore, SnapshotStore


class Stores:
    """The snapshot store of one pytest process, made on first use.

    ``--criu-cache`` gives a :class:`~.engine.store.CacheStore`; a pytest-xdist worker a
    :class:`~.engine.store.RunStore` shared through the run directory; else a
    :class:`~.engine.store.LocalStore`. ``engine`` is called only when a store needs it.
    """

    def __init__(
        self,
        settings: Settings,
        engine: Callable[[], ContainerEngine],
        *,
        session: str,
        worker: bool,
    ) -> None:
        self.settings = settings
        self.session = session
        self.worker = worker
        self._engine = engine
        self._store: SnapshotStore | None = None

    @property
    def run_directory(self) -> Path:
        """Private scratch space shared by the run's processes (locks, manifests)."""
        return Path(tempfile.gettempdir(), f"pytest-criu-{os.geteuid()}", self.session)

    def cache_directory(self) -> Path:
        """``--criu-cache-dir``, else the user's default cache directory."""
        if self.settings.cache_dir:
            return Path(self.settings.cache_dir).expanduser()
        return default_cache_directory()

    @property
    def store(self) -> SnapshotStore:
        if self._store is None:
            from .engine.store import LocalStore, RunStore

            if self.settings.cache:
                self._store = self.cache()
            elif self.worker:
                self._store = RunStore(self.run_directory, self.settings.lock_timeout)
            else:
                self._store = LocalStore(self._engine())
        return self._store

    def cache(self) -> CacheStore:
        """A connection to the snapshot cache (also for ``--criu-cache-clear``)."""
        from .engine.store import CacheStore

        return CacheStore(
            self._engine(),
            self.cache_directory(),
            max_bytes=self.settings.cache_size,
            lock_timeout=self.settings.lock_timeout,
        )

    def close(self) -> None:
        """Close the store if one was made (also after Ctrl-C: failures are not raised)."""
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()
