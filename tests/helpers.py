"""Helpers shared by the test layers: image names and counting labelled resources."""

from __future__ import annotations

import os

import docker

from pytest_criu.engine.labels import SESSION

TINY_IMAGE = os.environ.get("PYTEST_CRIU_TINY_IMAGE", "pytest-criu/tiny:latest")
SERVICES_IMAGE = os.environ.get("PYTEST_CRIU_SERVICES_IMAGE", "pytest-criu/services:latest")


def labelled_resources() -> tuple[set[str], set[str]]:
    """Ids of every container and image carrying pytest-criu's session label."""
    client = docker.from_env()
    try:
        containers = {c.id for c in client.containers.list(all=True, filters={"label": SESSION})}
        images = {i.id for i in client.images.list(filters={"label": SESSION})}
    finally:
        client.close()
    return containers, images
