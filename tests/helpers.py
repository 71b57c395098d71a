"""Helpers shared by the test layers: image names and counting labelled resources."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pytest_criu.engine.base import ContainerEngine
from pytest_criu.engine.docker import DockerEngine
from pytest_criu.engine.labels import (
    OWNER_PID,
    ROLE,
    SESSION,
    SNAPSHOT_IMAGE,
    owner_alive,
)
from pytest_criu.engine.podman import PodmanEngine
from pytest_criu.engine.procfs import start_time as process_start_time

TINY_IMAGE = os.environ.get("PYTEST_CRIU_TINY_IMAGE", "pytest-criu/tiny:latest")
SERVICES_IMAGE = os.environ.get("PYTEST_CRIU_SERVICES_IMAGE", "pytest-criu/services:latest")


BOX_CONFTEST = f"""
import os
from pytest_criu import ready, warm_container

def seed(handle):
    with open(os.environ["PREPARE_LOG"], "a") as log:
        log.write(f"{{os.getpid()}}\\n")
    code, out = handle.exec(["sh", "-c", "echo seeded > /seed && echo t > /data/seed"])
    assert code == 0, out

box = warm_container(
    os.environ.get("BOX_IMAGE", "{TINY_IMAGE}"),
    command=["sh", "-c", "echo booted; exec sleep 100000"],
    tmpfs={{"/data": ""}},
    ready=ready.log("booted"),
    prepare=seed,
)
"""
"""A conftest declaring ``box``: a tiny container whose ``prepare`` logs to $PREPARE_LOG."""


def box_tests(count: int) -> str:
    """A test module with ``count`` marked tests that check ``box`` is pristine, then dirty it."""
    return f"""
import pytest

def sh(handle, script):
    return handle.exec(["sh", "-c", script])[1].strip()

@pytest.mark.parametrize("i", range({count}))
@pytest.mark.criu_snapshot
def test_pristine(box, i):
    assert sh(box, "cat /seed") == "seeded"
    assert sh(box, "ls /data") == "seed"
    assert sh(box, "test -e /dirty && echo dirty || echo clean") == "clean"
    sh(box, "touch /dirty /data/dirty")
"""


def prepares(path: Path) -> list[str]:
    """The lines ``prepare`` of :data:`BOX_CONFTEST` logged: one per call."""
    return path.read_text().splitlines() if path.exists() else []


@contextmanager
def engines() -> Iterator[list[ContainerEngine]]:
    """Connections to every engine running here: Docker, and Podman when its service is up."""
    connected: list[ContainerEngine] = [DockerEngine()]
    if Path(PodmanEngine.default_url().removeprefix("unix://")).exists():
        connected.append(PodmanEngine())
    try:
        yield connected
    finally:
        for engine in connected:
            engine.close()


def podman_url_or_skip() -> str:
    """Podman's rootful socket; skip without its service (fail under CI, which sets it up)."""
    url = PodmanEngine.default_url()
    if not Path(url.removeprefix("unix://")).exists():
        why = f"Podman's service is not running at {url}; run: sudo .venv/bin/pytest-criu setup --engine podman"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return url


def engine_named(name: str) -> ContainerEngine:
    """A new connection to ``docker`` or ``podman`` (close it)."""
    return PodmanEngine() if name == "podman" else DockerEngine()


def labelled_resources() -> tuple[set[str], set[str]]:
    """Ids of containers and images pytest-criu labelled for this process or a finished one.

    Those of other live pytest runs (a developer's second terminal) are not counted. Podman
    reports the owner a restored container's name records (see ``PodmanEngine.containers``).
    """
    containers: set[str] = set()
    images: set[str] = set()
    with engines() as connected:
        for engine in connected:
            containers |= {
                str(c["Id"])
                for c in engine.containers(SESSION)
                if _ours_or_orphaned(c.get("Labels") or {})
            }
            images |= {
                str(i["Id"])
                for i in engine.images(SESSION, SNAPSHOT_IMAGE)
                if _ours_or_orphaned(i.get("Labels") or {})
            }
    return containers, images


def _ours_or_orphaned(labels: dict[str, str]) -> bool:
    return labels.get(OWNER_PID) == str(os.getpid()) or not owner_alive(labels)


def containers_of(pid: int, *, holders: bool = True) -> set[str]:
    """Ids of the containers pytest-criu created for the pytest process ``pid``.

    ``holders=False`` leaves out the network holders (Docker's warm containers join them).
    """
    with engines() as connected:
        return {
            str(c["Id"])
            for engine in connected
            for c in engine.containers(f"{OWNER_PID}={pid}")
            if holders or (c.get("Labels") or {}).get(ROLE) != "holder"
        }


def orphaned_restore_copies(since: float) -> set[str]:
    """containerd's unpacked restore copies, made since ``since``, of finished runs' containers.

    Copies of live runs (another terminal, a benchmark) are not counted.
    """
    engine = DockerEngine()
    try:
        copies = [c for c in engine.restore_copies() if c.modified >= since]
        owners: dict[str, str] = {}
        for copy in copies:
            pid, _, start = copy.owner.partition("-")
            if not pid.isdigit():
                continue  # not placed by pytest-criu (e.g. a benchmark's bare engine restore)
            if process_start_time(int(pid)) == start and int(pid) != os.getpid():
                continue  # a live run's restore, still in use
            owners[copy.container] = copy.path
        if not owners:
            return set()
        alive = {str(c["Id"]) for c in engine.api.containers(all=True)}
    finally:
        engine.close()
    return {path for owner, path in owners.items() if owner not in alive}


def doctor(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pytest_criu doctor ARGS`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "pytest_criu", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def line_of(output: str, name: str) -> str:
    """The doctor's report line of the check called ``name``."""
    for line in output.splitlines():
        if line[7:].split("  ")[0].strip() == name:
            return line
    raise AssertionError(f"no line for {name!r} in:\n{output}")
