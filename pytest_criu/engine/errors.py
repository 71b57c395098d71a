"""Exceptions raised by the engine layer.

Every error carries a message that says what went wrong and what to do about it.
"""

from __future__ import annotations


class CriuError(Exception):
    """Base class of every error pytest-criu raises on purpose."""


class SpecError(CriuError, ValueError):
    """A warm-container specification is invalid (raised when it is declared)."""


class HostError(CriuError):
    """The host cannot take or restore snapshots; the message gives the reason and the fix."""


class EngineError(CriuError):
    """A container-engine call failed."""


class ImageNotFoundError(EngineError):
    """The requested image is not available locally and could not be pulled."""


class ReadinessTimeoutError(CriuError):
    """A readiness check did not pass in time, or the container stopped while waiting."""


class PrepareError(CriuError):
    """The user's ``prepare`` callable raised."""


class CheckpointError(EngineError):
    """CRIU could not dump the container; the message quotes CRIU's log and explains it."""


class HostLimitError(CheckpointError):
    """CRIU cannot dump this container on this host (a limit of the host, not a fault of the
    declaration): marked tests follow ``--criu-fallback``; ``reason`` names the fix."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class RestoreError(EngineError):
    """CRIU could not restore the checkpoint; the message quotes CRIU's log and explains it."""


class DamagedCheckpointError(RestoreError):
    """The checkpoint files changed since they were written; retrying cannot help."""


class TransferError(CriuError):
    """A snapshot cannot be exported, or cannot restore where it is being imported."""
