"""``ready.log(times=)`` and ``ready.healthy()`` against a hand-written target."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from pytest_criu import ReadinessTimeoutError, SpecError, ready
from pytest_criu.engine.ready import Health, wait_until_ready
from pytest_criu.engine.spec import PortLike, build_spec


class FakeTarget:
    """A container whose log and health state the test sets."""

    host = "127.0.0.1"

    def __init__(self, log: str = "", health: Health | None = None) -> None:
        self.log = log
        self.state = health
        self.looks = 0

    def port(self, container_port: PortLike) -> int:
        raise KeyError(container_port)

    def exec(self, argv: Sequence[str]) -> tuple[int, str]:
        return 0, ""

    def logs(self) -> str:
        return self.log

    def container_address(self) -> str | None:
        return None

    def health(self) -> Health | None:
        self.looks += 1
        return self.state


READY_LINE = "database system is ready to accept connections"


def test_log_times_waits_for_the_second_match() -> None:
    check = ready.log(READY_LINE, times=2)
    target = FakeTarget(f"init\n{READY_LINE}\nshutting down\n")
    assert not check.probe(target)
    assert check.last_error == "matched 1 of 2 times"
    target.log += f"restarting\n{READY_LINE}\n"
    assert check.probe(target)
    assert check.description == f"ready.log({READY_LINE!r}, times=2)"


def test_log_once_is_the_default() -> None:
    check = ready.log("Ready")
    assert check.probe(FakeTarget("Ready to accept\n"))
    assert check.description == "ready.log('Ready')"


@pytest.mark.parametrize("times", [0, -1, 1.5, True, "2"])
def test_log_times_must_be_a_whole_number_from_one(times: object) -> None:
    with pytest.raises(SpecError) as info:
        ready.log("Ready", times=times)  # type: ignore[arg-type]
    assert str(info.value) == (
        "ready.log: times must be a whole number >= 1 (how many matches to wait for), "
        f"got {times!r}"
    )


def test_healthy_passes_on_healthy_only() -> None:
    check = ready.healthy()
    target = FakeTarget(health=Health("starting"))
    assert not check.probe(target)
    assert check.last_error == "health starting; no health check has run yet"
    target.state = Health("unhealthy", "connection refused\n", 1)
    assert not check.probe(target)
    assert check.last_error == "health unhealthy; the last one exited 1: connection refused"
    target.state = Health("healthy", "", 0)
    assert check.probe(target)


def test_healthy_timeout_shows_the_last_health_check_output() -> None:
    target = FakeTarget("booting\n", Health("unhealthy", "pg_isready: no response", 2))
    with pytest.raises(ReadinessTimeoutError) as info:
        wait_until_ready(
            [ready.healthy(timeout=0.2)],
            target,
            default_timeout=60,
            exited=lambda: None,
            what="db",
        )
    message = str(info.value)
    assert message.startswith(
        "db: ready.healthy() did not pass within 0.2s (last attempt: health unhealthy; "
        "the last one exited 2: pg_isready: no response)"
    )
    assert "  | booting" in message
    assert target.looks > 1


@pytest.mark.parametrize(
    ("image_config", "options", "problem"),
    [
        ({}, None, "has no HEALTHCHECK"),
        ({"Healthcheck": {"Test": ["NONE"]}}, None, "disables it (HEALTHCHECK NONE)"),
        ({"Healthcheck": None}, None, "has no HEALTHCHECK"),
    ],
)
def test_healthy_without_a_health_check_is_refused(
    image_config: dict[str, object], options: dict[str, object] | None, problem: str
) -> None:
    spec = build_spec(image="tiny", create_options=options)
    message = ready.healthy().unusable_with(image_config, spec)
    assert message is not None
    assert message.startswith(f"ready.healthy() needs a health check, and image tiny {problem}")
    assert "create_options={'healthcheck': {'test': [...]}}" in message
    assert "--format docker" in message


def test_healthy_accepts_the_image_or_the_declaration() -> None:
    check = ready.healthy()
    image = {"Healthcheck": {"Test": ["CMD-SHELL", "true"]}}
    assert check.unusable_with(image, build_spec(image="x")) is None
    declared = build_spec(image="x", create_options={"healthcheck": {"test": ["CMD", "true"]}})
    assert check.unusable_with({}, declared) is None
    assert ready.tcp(1).unusable_with({}, build_spec(image="x")) is None
