"""with_engine's command line: which engines it knows, what it refuses."""

from __future__ import annotations

import pytest

from tests.tooling.with_engine import ENGINES, main, split_arguments


def test_it_knows_the_docker_and_the_podman_installs() -> None:
    assert ENGINES == ("docker-26", "docker-28", "podman-5.8", "podman-5.4")


def test_the_command_follows_the_separator() -> None:
    assert split_arguments(["podman-5.8", "--", "pytest", "-k", "podman"]) == (
        "podman-5.8",
        ["pytest", "-k", "podman"],
    )


@pytest.mark.parametrize(
    "argv",
    [[], ["docker-28"], ["podman-9", "--", "true"], ["docker-28", "true"], ["docker-28", "--"]],
)
def test_a_known_engine_and_a_command_after_the_separator_are_needed(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert (
        "usage: python -m tests.tooling.with_engine "
        "{docker-26,docker-28,podman-5.8,podman-5.4} -- COMMAND [ARG...]"
    ) in capsys.readouterr().err
