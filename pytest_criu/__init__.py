"""pytest-criu: warm, pristine containers for every test, restored by CRIU.

Importing this package is cheap: the engine layer (and docker-py) loads when a warm
container is first used. ``-p pytest_criu`` loads the plugin like ``-p criu`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .advisories import NotResetWarning, PytestCriuWarning
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
from .fixtures import warm_container
from .version import __version__

if TYPE_CHECKING:
    import pytest

    from .engine.handle import ContainerHandle


PLUGIN_NAME = "criu"
"""The plugin's name (its pytest11 entry point): ``-p no:criu`` disables it."""


def __getattr__(name: str) -> Any:
    if name == "ContainerHandle":
        from .engine.handle import ContainerHandle

        return ContainerHandle
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """``-p pytest_criu`` registered this package: load the plugin under its own name."""
    if pluginmanager.is_blocked(PLUGIN_NAME) or pluginmanager.get_plugin(PLUGIN_NAME) is not None:
        return
    if not pluginmanager.load_setuptools_entrypoints("pytest11", name=PLUGIN_NAME):
        # A source tree on sys.path, not installed: no entry point to load it by.
        from . import plugin

        pluginmanager.register(plugin, PLUGIN_NAME)


__all__ = [
    "CheckpointError",
    "ContainerHandle",
    "CriuError",
    "DamagedCheckpointError",
    "EngineError",
    "Health",
    "HostError",
    "ImageNotFoundError",
    "NotResetWarning",
    "PrepareError",
    "PytestCriuWarning",
    "ReadinessTimeoutError",
    "RestoreError",
    "SpecError",
    "__version__",
    "ready",
    "warm_container",
]
