"""PodmanEngine.remove: Podman 5 gets a kill first (its forced removal stops gracefully)."""

from __future__ import annotations

from typing import Any

import docker.errors
import pytest

from pytest_criu.engine.podman import PodmanEngine


class RecordingApi:
    """The few APIClient calls remove() makes, recorded."""

    def __init__(self, version: str, running: bool = True) -> None:
        self.calls: list[str] = []
        self._version = version
        self._running = running

    def version(self) -> dict[str, Any]:
        self.calls.append("version")
        return {"Version": self._version}

    def kill(self, container_id: str) -> None:
        self.calls.append(f"kill {container_id}")
        if not self._running:
            raise docker.errors.APIError("409 Client Error: container is not running")

    def remove_container(self, container_id: str, force: bool, v: bool) -> None:
        self.calls.append(f"remove {container_id} force={force} v={v}")


def engine_with(api: RecordingApi) -> PodmanEngine:
    engine = PodmanEngine.__new__(PodmanEngine)
    engine.api = api  # type: ignore[assignment]
    engine._imported_at = {}
    engine._major = None
    return engine


@pytest.mark.parametrize("version", ["5.8.6", "5.4.2"])
def test_podman_5_kills_before_removing(version: str) -> None:
    api = RecordingApi(version)
    engine = engine_with(api)
    engine.remove("c1")
    engine.remove("c2")
    assert api.calls == [
        "version",
        "kill c1",
        "remove c1 force=True v=True",
        "kill c2",
        "remove c2 force=True v=True",
    ]


def test_podman_5_removes_a_stopped_container_although_the_kill_is_refused() -> None:
    api = RecordingApi("5.8.6", running=False)
    engine_with(api).remove("c1")
    assert api.calls[-1] == "remove c1 force=True v=True"


def test_podman_4_removes_without_a_kill() -> None:
    api = RecordingApi("4.3.1")
    engine_with(api).remove("c1")
    assert api.calls == ["version", "remove c1 force=True v=True"]
