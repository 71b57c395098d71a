"""The restore-ahead depth: chosen from cores and memory, or as set."""

from __future__ import annotations

import pytest

from pytest_criu.engine.depth import AUTO_AHEAD_DEPTH, ahead_depth

MB = 1024**2


def test_auto_follows_the_cores() -> None:
    chosen = ahead_depth(None, cores=2, available=8000 * MB, checkpoint_bytes=5 * MB)
    assert chosen.depth == 2
    assert chosen.reason == "2 CPU cores"


def test_auto_is_capped() -> None:
    chosen = ahead_depth(None, cores=64, available=None, checkpoint_bytes=None)
    assert chosen.depth == AUTO_AHEAD_DEPTH


def test_auto_is_bounded_by_memory() -> None:
    chosen = ahead_depth(None, cores=4, available=1000 * MB, checkpoint_bytes=100 * MB)
    assert chosen.depth == 2
    assert chosen.reason == "4 CPU cores; a quarter of the available memory holds 2 checkpoint(s)"


@pytest.mark.parametrize("available", [10 * MB, 1])
def test_auto_never_goes_below_one(available: int) -> None:
    assert ahead_depth(None, cores=2, available=available, checkpoint_bytes=100 * MB).depth == 1


def test_a_setting_wins() -> None:
    chosen = ahead_depth(3, cores=1, available=1, checkpoint_bytes=100 * MB)
    assert chosen.depth == 3
    assert chosen.reason == "--criu-restore-ahead-depth"
