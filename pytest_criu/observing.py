"""The warm containers' restore and reset records, handed to the hooks in the main thread."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .engine.events import ResetRecord, RestoreRecord


class Records:
    """An :class:`~pytest_criu.engine.events.Observer` that queues what it is told.

    Restores made ahead are told from a background thread; :meth:`deliver` calls the hooks
    for everything queued, from the thread that calls it (pytest's).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: list[RestoreRecord | ResetRecord] = []

    def restored(self, record: RestoreRecord) -> None:
        with self._lock:
            self._queued.append(record)

    def reset(self, record: ResetRecord) -> None:
        with self._lock:
            self._queued.append(record)

    def deliver(self, config: pytest.Config, item: pytest.Item | None) -> None:
        """Call ``pytest_criu_restored`` and (with ``item``) ``pytest_criu_reset`` in order."""
        from .engine.events import RestoreRecord

        with self._lock:
            queued, self._queued = self._queued, []
        for record in queued:
            if isinstance(record, RestoreRecord):
                config.hook.pytest_criu_restored(config=config, record=record)
            elif item is not None:
                config.hook.pytest_criu_reset(item=item, record=record)
