"""What a warm container tells an observer: each restore it made and each reset a test waited for.

The pytest layer turns these into the ``pytest_criu_restored`` and ``pytest_criu_reset`` hooks
(:mod:`pytest_criu.hooks`); the benchmarks record them. Restores made ahead happen in a
background thread, so an observer may be called from one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

RestoreKind = Literal["fresh", "inplace"]


@dataclass(frozen=True)
class RestoreRecord:
    """One restore of a checkpoint, successful or not."""

    fixture: str
    kind: RestoreKind
    container: str | None
    """The restored container's id (``None`` when the restore failed before creating it)."""
    began: float
    ended: float
    """``time.monotonic()`` at the start and end."""
    phases: Mapping[str, float] = field(default_factory=dict)
    """Seconds per step: ``holder``, ``create``, ``place checkpoint``, ``engine restore``, ..."""
    ahead: bool = False
    """Made ahead, in the background, for a later test."""
    thread: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class ResetRecord:
    """One reset before a marked test: what the test waited for."""

    fixture: str
    seconds: float
    """How long the test waited (0 when its container was still pristine)."""
    began: float
    ended: float
    container: str | None
    ahead_pending: bool = False
    """A restore made ahead existed when the reset began."""
    ahead_ready: bool = False
    """... and had already finished."""


class Observer(Protocol):
    """Receives a warm container's records."""

    def restored(self, record: RestoreRecord) -> None: ...

    def reset(self, record: ResetRecord) -> None: ...
