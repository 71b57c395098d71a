"""Hand-written fakes for the set-up's unit tests: a command runner and a plan that records."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pytest_criu.setup.plan import Plan
from pytest_criu.setup.system import Completed

Answer = Completed | Callable[[tuple[str, ...]], Completed]


class FakeRunner:
    """Answers commands by their longest matching argv prefix; unknown commands exit 127."""

    def __init__(self, answers: Mapping[tuple[str, ...], Answer] | None = None) -> None:
        self.answers: dict[tuple[str, ...], Answer] = dict(answers or {})
        self.calls: list[tuple[str, ...]] = []

    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Completed:
        key = tuple(argv)
        self.calls.append(key)
        for length in range(len(key), 0, -1):
            answer = self.answers.get(key[:length])
            if answer is not None:
                return answer(key) if callable(answer) else answer
        return Completed(key, 127, "", f"{key[0]}: not faked")

    def ran(self, *prefix: str) -> bool:
        return any(call[: len(prefix)] == prefix for call in self.calls)


def ok(stdout: str = "") -> Completed:
    return Completed(("faked",), 0, stdout, "")


def fails(stderr: str, code: int = 1) -> Completed:
    return Completed(("faked",), code, "", stderr)


def compare_versions(argv: tuple[str, ...]) -> Completed:
    """``dpkg --compare-versions A ge B`` for plain dotted versions."""
    a, _, b = argv[2:5]

    def key(version: str) -> tuple[int, ...]:
        plain = version.partition("~")[0].partition("-")[0]
        return tuple(int(part) for part in plain.split("."))

    return Completed(argv, 0 if key(a) >= key(b) else 1)


def plan(check: bool = False) -> tuple[Plan, list[str]]:
    said: list[str] = []
    return Plan(check=check, say=said.append), said
