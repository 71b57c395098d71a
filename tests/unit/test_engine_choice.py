"""Choosing the engine (auto/docker/podman), its socket, and owners recorded in names."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pytest_criu.engine import docker as docker_module
from pytest_criu.engine import labels as labelling
from pytest_criu.engine import podman as podman_module
from pytest_criu.engine.connect import engine_url, identify, mismatch
from pytest_criu.engine.docker import DockerEngine
from pytest_criu.engine.errors import EngineError
from pytest_criu.engine.podman import PodmanEngine

PODMAN_VERSION = {
    "Platform": {"Name": "linux/amd64/debian-12"},
    "Components": [
        {"Name": "Podman Engine", "Version": "4.3.1"},
        {"Name": "Conmon", "Version": "conmon version 2.1.6"},
    ],
    "Version": "4.3.1",
    "ApiVersion": "1.41",
}
DOCKER_VERSION = {
    "Platform": {"Name": ""},
    "Components": [
        {"Name": "Engine", "Version": "20.10.24+dfsg1"},
        {"Name": "containerd", "Version": "1.6.20"},
    ],
    "Version": "20.10.24+dfsg1",
    "ApiVersion": "1.41",
}


class TestIdentify:
    def test_podman_names_itself_among_the_components(self) -> None:
        assert identify(PODMAN_VERSION) == "podman"

    def test_anything_else_is_docker(self) -> None:
        assert identify(DOCKER_VERSION) == "docker"
        assert identify({}) == "docker"


class TestMismatch:
    def test_auto_and_the_right_engine_are_fine(self) -> None:
        assert mismatch("auto", "podman", "unix:///x.sock", "4.3.1") is None
        assert mismatch("podman", "podman", "unix:///x.sock", "4.3.1") is None

    def test_the_wrong_engine_names_both_and_the_fix(self) -> None:
        problem = mismatch("docker", "podman", "unix:///run/podman/podman.sock", "4.3.1")
        assert problem == (
            "--criu-engine=docker but unix:///run/podman/podman.sock is Podman 4.3.1; use "
            "--criu-engine=podman (or auto), or point --criu-engine-url at a Docker socket"
        )


class TestEngineUrl:
    @pytest.fixture
    def sockets(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
        paths = {"docker": tmp_path / "docker.sock", "podman": tmp_path / "podman.sock"}
        monkeypatch.delenv("DOCKER_HOST", raising=False)
        monkeypatch.delenv("CONTAINER_HOST", raising=False)
        monkeypatch.setattr(docker_module, "DEFAULT_URL", f"unix://{paths['docker']}")
        monkeypatch.setattr(podman_module, "DEFAULT_URL", f"unix://{paths['podman']}")
        return paths

    def test_an_explicit_url_wins(self, sockets: dict[str, Path]) -> None:
        assert engine_url("podman", "unix:///elsewhere.sock") == "unix:///elsewhere.sock"

    def test_auto_prefers_docker_when_its_socket_exists(self, sockets: dict[str, Path]) -> None:
        sockets["docker"].touch()
        sockets["podman"].touch()
        assert engine_url("auto", None) == f"unix://{sockets['docker']}"

    def test_auto_takes_podman_when_only_its_socket_exists(self, sockets: dict[str, Path]) -> None:
        sockets["podman"].touch()
        assert engine_url("auto", None) == f"unix://{sockets['podman']}"

    def test_auto_with_neither_names_docker(self, sockets: dict[str, Path]) -> None:
        assert engine_url("auto", None) == f"unix://{sockets['docker']}"

    def test_docker_host_decides_for_auto(
        self, sockets: dict[str, Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        sockets["podman"].touch()
        monkeypatch.setenv("DOCKER_HOST", "unix:///custom.sock")
        assert engine_url("auto", None) == "unix:///custom.sock"

    def test_podman_uses_container_host_or_its_rootful_socket(
        self, sockets: dict[str, Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        assert engine_url("podman", None) == f"unix://{sockets['podman']}"
        monkeypatch.setenv("CONTAINER_HOST", "unix:///run/user/1000/podman/podman.sock")
        assert engine_url("podman", None) == "unix:///run/user/1000/podman/podman.sock"

    def test_missing_socket_is_named_with_the_way_to_start_the_engine(
        self, sockets: dict[str, Path]
    ) -> None:
        with pytest.raises(
            EngineError,
            match=r"Podman at unix://.*podman.sock: no such socket.*sudo pytest-criu setup --engine podman does",
        ):
            PodmanEngine()
        with pytest.raises(EngineError, match=r"cannot connect to Docker at .*docker.sock"):
            DockerEngine(f"unix://{sockets['docker']}")


class TestOwnerInName:
    def test_round_trip(self) -> None:
        owner = labelling.Owner(
            session="0123456789abcdef", pid=4242, start="987654", host="h", pidns="pid:[4026531836]"
        )
        labels = owner.labels("redis", "restored")
        name = labelling.owner_name(labels)
        assert name.startswith("pytest-criu.0123456789abcdef.4242.987654.4026531836.restored.")
        recorded = labelling.owner_from_name(name)
        assert recorded == {key: labels[key] for key in recorded}
        assert set(recorded) == {
            labelling.SESSION,
            labelling.OWNER_PID,
            labelling.OWNER_START,
            labelling.OWNER_PIDNS,
            labelling.ROLE,
        }

    def test_names_are_unique(self) -> None:
        labels = labelling.Owner.current().labels("redis", "restored")
        assert len({labelling.owner_name(labels) for _ in range(100)}) == 100

    @pytest.mark.parametrize(
        "name", ["redis", "pytest-criu", "pytest-criu.x.notapid.1.2.restored.ab", ""]
    )
    def test_other_names_record_nothing(self, name: str) -> None:
        assert labelling.owner_from_name(name) == {}

    def test_a_name_with_a_dead_owner_is_an_orphan(self) -> None:
        labels = labelling.Owner.current().labels("redis", "restored")
        alive = {**labels, **labelling.owner_from_name(labelling.owner_name(labels))}
        assert labelling.owner_alive(alive)
        dead = {**labels, labelling.OWNER_PID: "999999999"}
        recorded = labelling.owner_from_name(labelling.owner_name(dead))
        assert not labelling.owner_alive({**labels, **recorded})


@pytest.mark.parametrize("engine", [DockerEngine, PodmanEngine])
def test_sub_second_timeouts_reach_the_engine_connection(
    tmp_path: Path, engine: type[DockerEngine] | type[PodmanEngine]
) -> None:
    """0.5 s stays 0.5 s (it used to become 0: "Attempted to set connect timeout to 0")."""
    path = tmp_path / "silent.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.bind(str(path))
        silent.listen(1)  # never accepts: the version request times out
        with pytest.raises(
            EngineError, match=r"cannot connect to .*silent.sock.*timed out"
        ) as info:
            engine(f"unix://{path}", timeout=0.5)
    assert "timeout to 0" not in str(info.value)
