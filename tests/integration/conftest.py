"""Everything under tests/integration needs a real engine (Docker, and Podman) with CRIU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import podman_url_or_skip

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


@pytest.fixture(params=["docker", "podman"])
def engine(
    request: pytest.FixtureRequest, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Run the test once per engine: the suites it starts get ``--criu-engine=<engine>``.

    Modules opt in with ``pytestmark = pytest.mark.usefixtures("engine")``. Depends on
    ``pytester``, which clears ``PYTEST_ADDOPTS`` when it starts.
    """
    name = str(request.param)
    if name == "podman":
        podman_url_or_skip()
    addopts = os.environ.get("PYTEST_ADDOPTS", "")
    monkeypatch.setenv("PYTEST_ADDOPTS", f"{addopts} --criu-engine={name}".strip())
    return name
