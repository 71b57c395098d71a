"""``pytest-criu setup`` on this host: idempotent after the bootstrap, and its round trip works
through the real engines (the full, changing run is the bootstrap's and CI's ``.ci/wheel``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pytest_criu.engine.docker import DockerEngine
from pytest_criu.engine.podman import PodmanEngine
from pytest_criu.setup.roundtrip import LABELS, round_trip
from tests.helpers import podman_url_or_skip

TINY = "pytest-criu/tiny:latest"


def test_check_on_a_set_up_host_changes_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest_criu", "setup", "--check", "--engine", "all"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("[setup] nothing to change") for line in lines), done.stdout
    assert "[setup] round trip: not run (--check or --no-round-trip)" in lines


@pytest.mark.parametrize(
    ("name", "holders"),
    [("docker", True), ("docker", False), ("podman", False)],
    ids=["docker-holders", "docker-own-namespace", "podman"],
)
def test_the_round_trip_keeps_memory_and_sockets(name: str, holders: bool) -> None:
    # Setup takes the holder path on Docker (the only one Docker 28 restores).
    engine = PodmanEngine(podman_url_or_skip()) if name == "podman" else DockerEngine()
    label = ",".join(f"{k}={v}" for k, v in LABELS.items())
    try:
        result = round_trip(engine, TINY, lambda _message: None, holders=holders)
        assert result.after_restore > result.at_checkpoint > 5
        assert engine.containers(label) == []  # both containers removed
    finally:
        engine.close()
