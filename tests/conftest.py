"""Fixtures shared by every test layer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import labelled_resources


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """Fail the test if it leaves labelled containers or images behind."""
    before = labelled_resources()
    yield
    after = labelled_resources()
    assert not after[0] - before[0], f"leaked containers: {after[0] - before[0]}"
    assert not after[1] - before[1], f"leaked images: {after[1] - before[1]}"
