"""pytest-criu: warm, pristine containers for every test, restored by CRIU."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .engine import ready
from .engine.errors import (
    CheckpointError,
    CriuError,
    DamagedCheckpointError,
    EngineError,
    HostError,
    ImageNotFoundError,
    PrepareError,
    ReadinessTimeoutError,
    RestoreError,
    SpecError,
)
from .engine.ready import Health
from .engine.snapshot import ContainerHandle
from .fixtures import warm_container

try:
    __version__ = version("pytest-criu")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
    __version__ = "0+unknown"

__all__ = [
    "CheckpointError",
    "ContainerHandle",
    "CriuError",
    "DamagedCheckpointError",
    "EngineError",
    "Health",
    "HostError",
    "ImageNotFoundError",
    "PrepareError",
    "ReadinessTimeoutError",
    "RestoreError",
    "SpecError",
    "__version__",
    "ready",
    "warm_container",
]
