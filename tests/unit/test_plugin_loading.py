"""``-p pytest_criu``: the package loads the plugin under its entry-point name, once."""

from __future__ import annotations

from types import ModuleType
from typing import Any, cast

import pytest

import pytest_criu
from pytest_criu import plugin


class FakePluginManager:
    """What ``pytest_addhooks`` asks of pytest's plugin manager."""

    def __init__(self, *, entry_points: int, blocked: bool = False, loaded: bool = False) -> None:
        self.entry_points = entry_points
        self.blocked = blocked
        self.plugins: dict[str, ModuleType] = {"criu": plugin} if loaded else {}
        self.loaded_by_entry_point: list[str] = []

    def is_blocked(self, name: str) -> bool:
        return self.blocked and name == "criu"

    def get_plugin(self, name: str) -> ModuleType | None:
        return self.plugins.get(name)

    def load_setuptools_entrypoints(self, group: str, name: str) -> int:
        assert group == "pytest11"
        self.loaded_by_entry_point.append(name)
        return self.entry_points

    def register(self, module: ModuleType, name: str) -> None:
        self.plugins[name] = module


def _add_hooks(manager: FakePluginManager) -> None:
    pytest_criu.pytest_addhooks(cast("pytest.PytestPluginManager", cast("Any", manager)))


def test_the_entry_point_loads_the_plugin_when_installed() -> None:
    manager = FakePluginManager(entry_points=1)
    _add_hooks(manager)
    assert manager.loaded_by_entry_point == ["criu"]
    assert manager.plugins == {}  # the entry point registered it (not modelled here)


def test_a_source_tree_without_the_entry_point_registers_the_module() -> None:
    manager = FakePluginManager(entry_points=0)
    _add_hooks(manager)
    assert manager.plugins == {"criu": plugin}


@pytest.mark.parametrize(("blocked", "loaded"), [(True, False), (False, True)])
def test_a_blocked_or_loaded_plugin_is_left_alone(blocked: bool, loaded: bool) -> None:
    manager = FakePluginManager(entry_points=1, blocked=blocked, loaded=loaded)
    _add_hooks(manager)
    assert manager.loaded_by_entry_point == []
    assert manager.plugins == ({"criu": plugin} if loaded else {})
