"""Which containers a warm container created, which holder each joined, which to keep."""

from __future__ import annotations

import threading


class ContainerTracker:
    """The containers (and network holders) to remove at the end; safe across threads.

    Set-up, restore-ahead and the removal worker add and drop containers concurrently.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: set[str] = set()
        self._holder_of: dict[str, str] = {}
        self._holders: set[str] = set()
        self._kept: set[str] = set()

    def add(self, container_id: str, holder: str | None = None) -> None:
        """Track ``container_id``, which joined ``holder``'s network namespace, if any."""
        with self._lock:
            self._ids.add(container_id)
            if holder is not None:
                self._holder_of[container_id] = holder

    def add_holder(self, holder: str) -> None:
        """Track a network holder (removed after the containers that joined it)."""
        with self._lock:
            self._ids.add(holder)
            self._holders.add(holder)

    def holder_of(self, container_id: str) -> str | None:
        with self._lock:
            return self._holder_of.get(container_id)

    def drop(self, container_id: str) -> str | None:
        """Stop tracking ``container_id`` (removed, or handed on); return its holder."""
        with self._lock:
            self._ids.discard(container_id)
            self._holders.discard(container_id)
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
