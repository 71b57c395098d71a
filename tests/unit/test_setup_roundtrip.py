"""``pytest-criu setup``'s round trip, against a hand-written engine fake."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pytest

from pytest_criu.engine.base import ContainerConfig, RestoreRequest
from pytest_criu.engine.errors import CheckpointError
from pytest_criu.setup.roundtrip import counters, restored_in_memory, round_trip
from pytest_criu.setup.system import SetupError


class FakeEngine:
    """Containers whose output is scripted; a restore either keeps the stamp or restarts."""

    title = "Fake Engine"

    def __init__(self, *, restore_keeps_memory: bool = True, checkpoint_fails: bool = False):
        self.keeps = restore_keeps_memory
        self.checkpoint_fails = checkpoint_fails
        self.output: dict[str, list[str]] = {}
        self.running: dict[str, bool] = {}
        self.removed: list[str] = []
        self.configs: dict[str, ContainerConfig] = {}

    def containers(self, label: str) -> list[dict[str, Any]]:
        return []

    def create(self, config: ContainerConfig) -> str:
        container = f"c{len(self.output)}"
        self.output[container] = []
        self.running[container] = False
        self.configs[container] = config
        return container

    def start(self, container_id: str) -> None:
        self.running[container_id] = True
        self.output[container_id] += [f"100.5 {i}" for i in range(1, 9)]

    def inspect(self, container_id: str) -> dict[str, Any]:
        return {"State": {"Running": self.running[container_id]}}

    def remove(self, container_id: str) -> None:
        self.removed.append(container_id)

    def logs(self, container_id: str, *, tail: int | Literal["all"] = "all") -> str:
        return "\n".join(self.output[container_id]) + "\n"

    def exec(self, container_id: str, argv: Sequence[str]) -> tuple[int, str]:
        return 0, "root:x:0:0:root:/root:/bin/sh\n"

    def checkpoint(self, container_id: str, name: str) -> None:
        if self.checkpoint_fails:
            raise CheckpointError("cannot checkpoint the container: CRIU says no")
        self.running[container_id] = False

    def checkpoint_dir(self, container_id: str, name: str) -> Path:
        return Path("/nonexistent") / container_id / name

    def restore_new(self, request: RestoreRequest) -> str:
        container = self.create(request.config)
        request.created(container)
        self.running[container] = True
        stamp, start = ("100.5", 8) if self.keeps else ("230.1", 9)
        self.output[container] = [f"{stamp} {i}" for i in range(start, start + 5)]
        return container


def test_counter_lines_are_picked_out_of_the_output() -> None:
    assert counters("noise\n12.3 1\n12.3 2\nnc: x\n") == [("12.3", 1), ("12.3", 2)]


@pytest.mark.parametrize(
    ("after", "restored"),
    [
        ([("1.0", 10), ("1.0", 11)], True),
        ([("1.0", 11), ("1.0", 12)], True),
        ([("2.0", 11)], False),  # another stamp: a new process
        ([("1.0", 12), ("1.0", 11)], False),  # counting backwards
        ([("1.0", 10)], False),  # not counting on
        ([], False),
    ],
)
def test_what_counts_as_restored_memory(after: list[tuple[str, int]], restored: bool) -> None:
    assert restored_in_memory(("1.0", 10), after) is restored


def test_a_good_round_trip_reports_and_removes_both_containers() -> None:
    engine = FakeEngine()
    said: list[str] = []
    result = round_trip(engine, "tiny", said.append)
    assert (result.at_checkpoint, result.after_restore) == (8, 12)
    assert str(result).startswith("OK (checkpoint ")
    assert sorted(engine.removed) == ["c0", "c1"]
    assert said == ["round trip: checkpointed at counter 8; restoring"]


def test_a_restarted_container_fails_the_round_trip_and_is_removed() -> None:
    engine = FakeEngine(restore_keeps_memory=False)
    with pytest.raises(SetupError, match=r"restarted its loop \(memory not restored\)"):
        round_trip(engine, "tiny", lambda _: None)
    assert sorted(engine.removed) == ["c0", "c1"]


def test_an_engine_error_names_the_engine() -> None:
    engine = FakeEngine(checkpoint_fails=True)
    with pytest.raises(SetupError) as caught:
        round_trip(engine, "tiny", lambda _: None)
    assert str(caught.value) == (
        "round trip on Fake Engine: cannot checkpoint the container: CRIU says no"
    )
    assert engine.removed == ["c0"]


def test_on_docker_both_containers_join_a_holder_of_their_own() -> None:
    engine = FakeEngine()
    round_trip(engine, "tiny", lambda _: None, holders=True)
    modes = {
        c: (config.spec.network_mode, config.spec.entrypoint)
        for c, config in engine.configs.items()
    }
    assert modes == {
        "c0": (None, ("sleep",)),
        "c1": ("container:c0", None),
        "c2": (None, ("sleep",)),
        "c3": ("container:c2", None),
    }
    # Each container goes before the holder whose namespace it joined.
    assert engine.removed == ["c3", "c2", "c1", "c0"]
