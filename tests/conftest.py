"""Fixtures shared by every test layer."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import labelled_resources, orphaned_restore_copies


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """Fail the test if it leaves labelled containers or images behind."""
    before = labelled_resources()
    started = time.time() - 1
    yield
    after = labelled_resources()
    copies = orphaned_restore_copies(started)
    assert not copies, f"leaked containerd restore copies: {copies}"
    assert not after[0] - before[0], f"leaked containers: {after[0] - before[0]}"
    assert not after[1] - before[1], f"leaked images: {after[1] - before[1]}"


@pytest.fixture
def derived_image(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[str, str], str]]:
    """Build small images ``FROM`` the tiny image for a test; remove them afterwards.

    Built with the engine the test runs on (its ``engine`` fixture), else with Docker.
    """
    cli = request.getfixturevalue("engine") if "engine" in request.fixturenames else "docker"
    built: list[str] = []

    def build(tag: str, dockerfile: str) -> str:
        context = tmp_path / f"build-{len(built)}"
        context.mkdir()
        (context / "Dockerfile").write_text(dockerfile)
        subprocess.run(
            [cli, "build", "-q", "-t", tag, str(context)],
            check=True,
            capture_output=True,
            timeout=300,
        )
        built.append(tag)
        return tag

    yield build
    for tag in built:
        subprocess.run([cli, "rmi", "-f", tag], check=False, capture_output=True, timeout=120)
