"""Hooks pytest-criu calls, for plugins and conftests that observe restores and resets.

Implement them in a ``conftest.py`` or plugin, e.g. to log each reset's cost::

    def pytest_criu_reset(item, record):
        print(item.nodeid, record.fixture, record.seconds)

Both are called in pytest's main thread; a restore made ahead (in the background) is
reported at the next reset, or at the end of the session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .engine.events import ResetRecord, RestoreRecord

hookspec = pytest.hookspec


@hookspec
def pytest_criu_restored(config: pytest.Config, record: RestoreRecord) -> None:
    """A warm container's checkpoint was restored (or a restore failed: ``record.error``).

    ``record.phases`` holds the seconds of each step (network holder, create, place
    checkpoint, engine restore, inspect); ``record.ahead`` is true for restores made ahead.
    """


@hookspec
def pytest_criu_reset(item: pytest.Item, record: ResetRecord) -> None:
    """A warm container was reset before ``item`` ran; ``record.seconds`` is how long the
    test waited (0 when its container was still pristine)."""
