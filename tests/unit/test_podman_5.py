"""What PodmanEngine does differently on Podman 5: a kill before a removal (its forced removal
stops gracefully), a wait for the clean-up after a kill (it refuses to restore before)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import docker.errors
import pytest

from pytest_criu.engine.podman import PodmanEngine


class RecordingApi:
    """The few APIClient calls remove() makes, recorded."""

    base_url = "http+docker://localhost"

    def __init__(self, version: str, running: bool = True, states: Sequence[str] = ()) -> None:
        self.calls: list[str] = []
        self._version = version
        self._running = running
        self._states = list(states)

    def version(self) -> dict[str, Any]:
        self.calls.append("version")
        return {"Version": self._version}

    def kill(self, container_id: str) -> None:
        self.calls.append(f"kill {container_id}")
        if not self._running:
            raise docker.errors.APIError("409 Client Error: container is not running")

    def remove_container(self, container_id: str, force: bool, v: bool) -> None:
        self.calls.append(f"remove {container_id} force={force} v={v}")

    def wait(self, container_id: str, timeout: float) -> dict[str, Any]:
        self.calls.append(f"wait {container_id}")
        return {"StatusCode": 137}

    def get(self, url: str, timeout: float) -> Inspected:
        state = self._states.pop(0) if len(self._states) > 1 else self._states[0]
        self.calls.append(f"inspect {url.rsplit('/', 2)[-2]}: {state}")
        return Inspected(state)


class Inspected:
    """A libpod inspect response."""

    status_code = 200

    def __init__(self, state: str) -> None:
        self._state = state

    def json(self) -> dict[str, Any]:
        return {"State": {"Status": self._state}}

    def close(self) -> None:
        pass


def engine_with(api: RecordingApi) -> PodmanEngine:
    engine = PodmanEngine.__new__(PodmanEngine)
    engine.api = api  # type: ignore[assignment]
    engine._imported_at = {}
    engine._major = None
    engine.timeout = 5
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


def test_podman_5_kill_waits_until_the_container_is_cleaned_up() -> None:
    api = RecordingApi("5.8.6", states=["stopped", "stopped", "exited"])
    engine_with(api).kill("c1")
    assert api.calls == [
        "kill c1",
        "wait c1",
        "version",
        "inspect c1: stopped",
        "inspect c1: stopped",
        "inspect c1: exited",
    ]


def test_podman_4_kill_does_not_wait_for_the_clean_up() -> None:
    api = RecordingApi("4.3.1", states=["stopped"])
    engine_with(api).kill("c1")
    assert api.calls == ["kill c1", "wait c1", "version"]
