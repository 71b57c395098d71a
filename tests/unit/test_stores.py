"""Which snapshot store a process uses: chosen by the settings, the engine asked only when needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_criu.engine.store import CacheStore, LocalStore, RunStore
from pytest_criu.options import Settings
from pytest_criu.stores import Stores


def settings(**changes: Any) -> Settings:
    values: dict[str, Any] = {
        "fallback": "recreate",
        "strategy": "fresh",
        "criu_binary": "criu",
        "engine": "auto",
        "engine_url": None,
        "ready_timeout": 60.0,
        "restore_timeout": 120.0,
        "keep_on_failure": False,
        "restore_ahead": True,
        "restore_ahead_depth": None,
        "timings": False,
        "report": None,
        "restore_retries": 1,
        "lock_timeout": 5.0,
        "cache": False,
        "cache_dir": None,
        "cache_size": 1 << 30,
        "cache_clear": False,
        "network_holder": "auto",
        "holder_image": None,
    }
    return Settings(**{**values, **changes})


class EngineCalls:
    """Counts how often the stores asked for the engine (a connection in real runs)."""

    def __init__(self) -> None:
        self.count = 0
        self.engine: Any = object()

    def __call__(self) -> Any:
        self.count += 1
        return self.engine


def test_a_worker_shares_the_run_directory_without_connecting() -> None:
    engine = EngineCalls()
    stores = Stores(settings(), engine, session="s-1", worker=True)
    store = stores.store
    assert isinstance(store, RunStore)
    assert stores.store is store
    assert stores.run_directory.name == "s-1"
    assert engine.count == 0


def test_a_single_process_keeps_snapshots_with_the_engine() -> None:
    engine = EngineCalls()
    stores = Stores(settings(), engine, session="s-1", worker=False)
    assert engine.count == 0
    assert isinstance(stores.store, LocalStore)
    assert engine.count == 1


def test_the_cache_wins_over_the_worker_store_and_lives_in_cache_dir(tmp_path: Path) -> None:
    engine = EngineCalls()
    directory = tmp_path / "cache"
    stores = Stores(
        settings(cache=True, cache_dir=str(directory)), engine, session="s", worker=True
    )
    store = stores.store
    assert isinstance(store, CacheStore)
    assert store.directory == directory
    assert stores.cache_directory() == directory
    assert directory.stat().st_mode & 0o777 == 0o700


def test_cache_dir_expands_the_home_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    stores = Stores(settings(cache_dir="~/c"), EngineCalls(), session="s", worker=False)
    assert stores.cache_directory() == Path("/home/someone/c")


def test_closing_before_any_store_was_made_does_nothing() -> None:
    engine = EngineCalls()
    Stores(settings(), engine, session="s", worker=False).close()
    assert engine.count == 0
