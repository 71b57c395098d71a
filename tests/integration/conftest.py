"""Everything under tests/integration needs a real Docker Engine with CRIU."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def prepare_log(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the suites' ``prepare`` logs each call (see ``tests.helpers.BOX_CONFTEST``)."""
    path = pytester.path / "prepare.log"
    monkeypatch.setenv("PREPARE_LOG", str(path))
    return path
