"""When ``pytest-criu setup`` starts, restarts or leaves alone Docker's daemon and Podman's
service: the decisions, with the processes and the API replaced by fakes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_criu.setup import dockerd, podman
from pytest_criu.setup.system import SetupError
from tests.unit.setup_fakes import FakeRunner, plan

CRIU = "/usr/local/sbin/criu"
GOOD = {"ExperimentalBuild": True, "ServerVersion": "20.10.24"}


class FakeDockerd:
    """A daemon that runs (pid 42) or not, answers or not, and can be started and stopped."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, running: bool, answer: Any) -> None:
        self.running, self.answer = running, answer
        self.events: list[str] = []
        monkeypatch.setattr(dockerd, "running_pid", lambda: 42 if self.running else None)
        monkeypatch.setattr(dockerd, "info", lambda: self.answer if self.running else None)
        monkeypatch.setattr(dockerd, "bridge_problem", lambda: None)
        monkeypatch.setattr("pytest_criu.setup.procs.criu_problem", self.criu_problem)
        monkeypatch.setattr(dockerd, "_start", self.start)
        monkeypatch.setattr(dockerd, "_stop", self.stop)
        self.path_problem: str | None = None

    def criu_problem(self, pid: int, criu: str) -> str | None:
        return self.path_problem

    def start(self, *args: object) -> None:
        self.events.append("start")
        self.running, self.answer, self.path_problem = True, GOOD, None

    def stop(self, *args: object) -> None:
        self.events.append("stop")
        self.running = False


def test_a_good_daemon_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    daemon = FakeDockerd(monkeypatch, running=True, answer=GOOD)
    doing, said = plan()
    dockerd.ensure_dockerd(FakeRunner(), doing, CRIU, dockerd.DockerdSettings(timeout=0))
    assert daemon.events == []
    assert doing.changes == []
    assert said == []


def test_a_missing_daemon_is_started(monkeypatch: pytest.MonkeyPatch) -> None:
    daemon = FakeDockerd(monkeypatch, running=False, answer=None)
    doing, _ = plan()
    dockerd.ensure_dockerd(FakeRunner(), doing, CRIU, dockerd.DockerdSettings(timeout=0))
    assert daemon.events == ["start"]
    assert doing.changes == ["start dockerd"]


@pytest.mark.parametrize(
    ("answer", "path_problem", "why"),
    [
        ({"ExperimentalBuild": False}, None, "runs without experimental features"),
        (GOOD, "finds /usr/sbin/criu on its PATH, not /usr/local/sbin/criu", "finds /usr/sbin"),
    ],
)
def test_a_daemon_that_cannot_checkpoint_is_restarted_but_not_in_check_mode(
    monkeypatch: pytest.MonkeyPatch, answer: dict[str, Any], path_problem: str | None, why: str
) -> None:
    daemon = FakeDockerd(monkeypatch, running=True, answer=answer)
    daemon.path_problem = path_problem
    checking, said = plan(check=True)
    dockerd.ensure_dockerd(FakeRunner(), checking, CRIU, dockerd.DockerdSettings(timeout=0))
    assert daemon.events == []
    assert said[0].startswith(f"would restart dockerd (pid 42): it {why}")

    doing, _ = plan()
    dockerd.ensure_dockerd(FakeRunner(), doing, CRIU, dockerd.DockerdSettings(timeout=0))
    assert daemon.events == ["stop", "start"]
    assert doing.changes[0].endswith("(running containers stop)")


def test_a_daemon_that_runs_but_never_answers_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeDockerd(monkeypatch, running=True, answer=None)
    monkeypatch.setattr("pytest_criu.setup.procs.comm", lambda pid, proc=None: "dockerd")
    with pytest.raises(SetupError, match=r"dockerd \(pid 42\) runs but does not answer .* 0 s"):
        dockerd.ensure_dockerd(FakeRunner(), plan()[0], CRIU, dockerd.DockerdSettings(timeout=0))


class FakeService:
    """Podman's service: answering or not, served by pid 7 or by nobody we can see."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, answers: bool, pid: int | None) -> None:
        self.answering, self.pid = answers, pid
        self.events: list[str] = []
        self.path_problem: str | None = None
        monkeypatch.setattr(podman, "answers", lambda settings: self.answering)
        monkeypatch.setattr(podman, "service_pid", lambda settings: self.pid)
        monkeypatch.setattr(
            "pytest_criu.setup.procs.criu_problem", lambda pid, criu: self.path_problem
        )
        monkeypatch.setattr(podman, "check_socket", lambda sock: self.events.append("socket"))
        monkeypatch.setattr(podman, "start", self.start)
        monkeypatch.setattr(
            "pytest_criu.setup.procs.stop", lambda pid, name, say: self.events.append("stop")
        )
        monkeypatch.setattr("shutil.which", lambda name, path=None: CRIU)

    def start(self, plan: object, settings: object) -> None:
        self.events.append("start")
        self.answering, self.pid, self.path_problem = True, 8, None


def settings(tmp_path: Path) -> podman.PodmanSettings:
    return podman.PodmanSettings(url=f"unix://{tmp_path}/podman.sock")


def test_a_good_service_is_left_alone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    service = FakeService(monkeypatch, answers=True, pid=7)
    doing, _ = plan()
    podman.ensure_service(doing, CRIU, settings(tmp_path), conf_changed=False)
    assert service.events == ["socket"]
    assert doing.changes == []


def test_a_changed_configuration_restarts_the_service(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    service = FakeService(monkeypatch, answers=True, pid=7)
    doing, _ = plan()
    podman.ensure_service(doing, CRIU, settings(tmp_path), conf_changed=True)
    assert service.events == ["stop", "start", "socket"]
    assert doing.changes == [
        "restart the Podman service (pid 7): it was started before its configuration changed"
    ]


def test_a_missing_service_is_started_unless_checking(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    service = FakeService(monkeypatch, answers=False, pid=None)
    checking, said = plan(check=True)
    podman.ensure_service(checking, CRIU, settings(tmp_path), conf_changed=False)
    assert service.events == []
    assert said == [f"would start the Podman service on unix://{tmp_path}/podman.sock"]
    podman.ensure_service(plan()[0], CRIU, settings(tmp_path), conf_changed=False)
    assert service.events == ["start", "socket"]


def test_a_service_nobody_here_runs_is_used_as_it_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    service = FakeService(monkeypatch, answers=True, pid=None)
    doing, said = plan()
    podman.ensure_service(doing, CRIU, settings(tmp_path), conf_changed=True)
    assert service.events == ["socket"]
    assert "no podman process here serves it" in said[0]
    assert said[1].startswith("WARNING: restart that service yourself: it has not read")
