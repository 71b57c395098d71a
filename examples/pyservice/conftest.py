"""A Python HTTP service that takes seconds to boot, restored by CRIU in well under that.

``service.py`` (next to this file) builds an in-memory index before it listens. Its text is
handed to ``python3 -c``: a bind mount would work as well, but bind mounts are not reset by
restores, and the command line is part of the container's config, so every restored
container runs exactly the same program.

Run: ``pytest examples/pyservice`` (as root, on a host that passes ``pytest-criu doctor``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from service_client import Client

from pytest_criu import ContainerHandle, ready, warm_container

IMAGE = os.environ.get("PYTEST_CRIU_SERVICES_IMAGE", "pytest-criu/services:latest")
SOURCE = (Path(__file__).parent / "service.py").read_text()

service = warm_container(
    IMAGE,
    command=["python3", "-u", "-c", SOURCE],
    ports=[8000],
    ready=ready.http(8000, "/health"),
)


@pytest.fixture
def api(service: ContainerHandle) -> Client:
    """A client of the service in the container this test runs against."""
    return Client(service)
