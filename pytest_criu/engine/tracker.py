"""The containers a warm container created: which holder each joined, which to keep, and
removing them (now, in the background, or all at the end)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING

from .errors import EngineError

if TYPE_CHECKING:
    from .base import ContainerEngine


ReuseHolder = Callable[[str], bool]
"""Takes the holder of a removed container for another one (``False``: remove it)."""


class ContainerTracker:
    """The containers (and network holders) to remove; safe across threads.

    Set-up, restore-ahead and the removal worker add and drop containers concurrently. A
    removal that fails is recorded in :attr:`failures` (the session's clean-up tries again).
    """

    def __init__(self, engine: ContainerEngine, name: str) -> None:
        self._engine = engine
        self._name = name
        self._lock = threading.Lock()
        self._ids: set[str] = set()
        self._holder_of: dict[str, str] = {}
        self._holders: set[str] = set()
        self._kept: set[str] = set()
        self._lasting: set[str] = set()
        self._remover = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"criu-rm-{name}")
        self.failures: list[str] = []
        """What could not be removed, one line each."""

    # -- what is tracked ----------------------------------------------------------------------

    def add(self, container_id: str, holder: str | None = None) -> None:
        """Track ``container_id``, which joined ``holder``'s network namespace, if any."""
        with self._lock:
            self._ids.add(container_id)
            if holder is not None:
                self._holder_of[container_id] = holder

    def add_holder(self, holder: str, *, lasting: bool = False) -> None:
        """Track a network holder (removed after the containers that joined it).

        A ``lasting`` holder serves the whole session: removing a container that joined it
        leaves it alone; only :meth:`close` (or an explicit :meth:`retire`) removes it.
        """
        with self._lock:
            self._ids.add(holder)
            self._holders.add(holder)
            if lasting:
                self._lasting.add(holder)

    def retire(self, holder: str) -> None:
        """A lasting holder is lasting no more (it stopped); remove it in the background."""
        with self._lock:
            self._lasting.discard(holder)
        self.discard(holder)

    def holder_of(self, container_id: str) -> str | None:
        with self._lock:
            return self._holder_of.get(container_id)

    def drop(self, container_id: str) -> str | None:
        """Stop tracking ``container_id`` (removed, or handed on); return its holder."""
        with self._lock:
            self._ids.discard(container_id)
            self._holders.discard(container_id)
            self._lasting.discard(container_id)
            return self._holder_of.pop(container_id, None)

    def keep(self, container_id: str) -> set[str]:
        """Keep ``container_id`` and its holder after the session; return what is kept."""
        with self._lock:
            self._kept.add(container_id)
            holder = self._holder_of.get(container_id)
            if holder is not None:
                self._kept.add(holder)
            return set(self._kept)

    def is_kept(self, container_id: str) -> bool:
        with self._lock:
            return container_id in self._kept

    @property
    def kept(self) -> set[str]:
        with self._lock:
            return set(self._kept)

    def kept_groups(self) -> list[tuple[str, ...]]:
        """Each kept container with its holder after it: what to remove together."""
        with self._lock:
            return [
                (cid, self._holder_of[cid]) if cid in self._holder_of else (cid,)
                for cid in sorted(self._kept - self._holders)
            ]

    def removal_order(self) -> list[str]:
        """Every tracked container but the kept ones: joined containers before holders."""
        with self._lock:
            left = self._ids - self._kept
            return sorted(left - self._holders) + sorted(left & self._holders)

    # -- removing -----------------------------------------------------------------------------

    def remove_now(self, container_id: str, reuse_holder: ReuseHolder | None = None) -> None:
        """Remove a container, then its holder unless ``reuse_holder`` takes it (only once
        the container is gone); kept ones and lasting holders stay."""
        with self._lock:
            if container_id in self._lasting:
                return
        kept = self.is_kept(container_id)
        removed = not kept and self._remove(container_id)
        holder = self.drop(container_id)
        if holder is None or kept:
            return
        if not (removed and reuse_holder is not None and reuse_holder(holder)):
            self.remove_now(holder)

    def discard(self, container_id: str, reuse_holder: ReuseHolder | None = None) -> None:
        """:meth:`remove_now` in the background (kept ones are only no longer tracked)."""
        if self.is_kept(container_id):
            self.drop(container_id)
            return
        self._remover.submit(self.remove_now, container_id, reuse_holder)

    def tidy(self, container_id: str) -> None:
        """In the background, drop what the engine keeps of a restore of a container that
        lives on (containerd's copy of the checkpoint)."""
        self._remover.submit(self._engine.tidy_after_restore, container_id)

    def drain(self, timeout: float) -> bool:
        """Wait until the background removals submitted so far are done; ``False`` on timeout."""
        try:
            self._remover.submit(lambda: None).result(timeout=max(0.0, timeout))
        except FutureTimeout:
            return False
        return True

    def settle(self, timeout: float) -> None:
        """:meth:`drain`, raising :class:`EngineError` on timeout."""
        if not self.drain(timeout):
            raise EngineError(
                f"{self._name}: removing replaced containers did not finish within {timeout:g}s"
            )

    def close(self) -> None:
        """Finish the background removals, then remove everything tracked but the kept."""
        self._remover.shutdown(wait=True)
        for container_id in self.removal_order():
            self._remove(container_id)
            self.drop(container_id)

    def _remove(self, container_id: str) -> bool:
        try:
            self._engine.remove(container_id)
        except Exception as error:  # the next session's reaper removes what is left
            first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
            with self._lock:
                self.failures.append(f"container {container_id[:12]}: {first_line}")
            return False
        return True
