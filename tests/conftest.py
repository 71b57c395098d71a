"""Shared test helpers: image names and counting what pytest-criu left behind."""

from __future__ import annotations

import os

import docker
import pytest

from pytest_criu.engine.labels import SESSION

TINY_IMAGE = os.environ.get("PYTEST_CRIU_TINY_IMAGE", "pytest-criu/tiny:latest")
SERVICES_IMAGE = os.environ.get("PYTEST_CRIU_SERVICES_IMAGE", "pytest-criu/services:latest")


def labelled_resources() -> tuple[list[str], list[str]]:
    """Ids of every container and image carrying pytest-criu's session label."""
    client = docker.from_env()
    try:
        containers = [c.id for c in client.containers.list(all=True, filters={"label": SESSION})]
        images = [i.id for i in client.images.list(filters={"label": SESSION})]
    finally:
        client.close()
    return containers, images


@pytest.fixture
def no_leaks() -> object:
    """Fail the test if it leaves labelled containers or images behind."""
    before = labelled_resources()
    yield
    after = labelled_resources()
    leaked_containers = set(after[0]) - set(before[0])
    leaked_images = set(after[1]) - set(before[1])
    assert not leaked_containers, f"leaked containers: {leaked_containers}"
    assert not leaked_images, f"leaked images: {leaked_images}"
