"""WarmContainer's reset logic with a hand-written engine fake: retries, damage, strategies."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from pytest_criu.engine.compat import ContainerConfig
from pytest_criu.engine.errors import DamagedCheckpointError, RestoreError
from pytest_criu.engine.labels import Owner
from pytest_criu.engine.snapshot import Options, WarmContainer
from pytest_criu.engine.spec import Port, build_spec
from pytest_criu.engine.store import Snapshot, file_sizes


class FakeEngine:
    """Containers are ids; restores fail while ``failures`` is positive."""

    base_url = None

    def __init__(self, root: Path, failures: int = 0) -> None:
        self.root = root
        self.failures = failures
        self.created: list[str] = []
        self.removed: list[str] = []
        self.restored: list[str] = []
        self.broken: set[str] = set()
        """Containers whose restore fails."""
        self.events: list[str] = []

    def create(self, config: ContainerConfig) -> str:
        container_id = f"c{len(self.created) + 1}"
        self.created.append(container_id)
        return container_id

    def checkpoint_dir(self, container_id: str, name: str) -> Path:
        return self.root / container_id / name

    def place_checkpoint(self, source: Path, container_id: str, name: str, *, owner: str) -> Path:
        target = self.checkpoint_dir(container_id, name)
        target.mkdir(parents=True)
        return target

    def restore(self, container_id: str, name: str) -> None:
        if container_id in self.broken:
            raise RestoreError("CRIU could not restore the checkpoint: restore failed")
        if self.failures:
            self.failures -= 1
            raise RestoreError("CRIU could not restore the checkpoint: content already exists")
        self.restored.append(container_id)
        self.events.append(f"restored {container_id}")

    def restore_new(
        self,
        config: ContainerConfig,
        checkpoint: Path,
        name: str,
        *,
        owner: str,
        created: Callable[[str], None],
        lap: Callable[[str], None],
        keep: bool = False,
    ) -> str:
        container_id = self.create(config)
        created(container_id)
        self.place_checkpoint(checkpoint, container_id, name, owner=owner)
        self.restore(container_id, name)
        lap("engine restore")
        return container_id

    def restore_in_place(
        self, container_id: str, name: str, *, owner: str, lap: Callable[[str], None]
    ) -> None:
        self.kill(container_id)
        self.restore(container_id, name)
        lap("engine restore")

    def tidy_after_restore(self, container_id: str) -> None:
        pass

    def inspect(self, container_id: str) -> dict[str, Any]:
        return {"State": {"Running": True}}

    def published_ports(self, info: Mapping[str, Any]) -> dict[Port, int]:
        return {Port(80): 30000 + len(self.restored)}

    def address(self, info: Mapping[str, Any]) -> str | None:
        return None

    def remove(self, container_id: str) -> None:
        self.removed.append(container_id)
        self.events.append(f"removed {container_id}")

    def kill(self, container_id: str) -> None:
        pass

    def logs(self, container_id: str, *, tail: int | str = "all") -> str:
        return ""


def warm(
    tmp_path: Path, engine: FakeEngine, network: str | None = None, **options: Any
) -> tuple[WarmContainer, list[str]]:
    said: list[str] = []
    checkpoint = tmp_path / "source" / "checkpoints" / "pytest-criu"
    checkpoint.mkdir(parents=True)
    (checkpoint / "pages-1.img").write_bytes(b"p" * 100)
    controller = WarmContainer(
        name="box",
        spec=build_spec(image="tiny", ports=[] if network else [80], network_mode=network),
        ready=(),
        prepare=None,
        engine=engine,  # type: ignore[arg-type]
        owner=Owner.current("session"),
        options=Options(**{"restore_ahead": False, **options}),
        say=said.append,
    )
    snapshot = Snapshot(
        checkpoint=str(checkpoint), image="sha256:snap", files=file_sizes(checkpoint)
    )
    controller.adopt(snapshot, "prepared")
    return controller, said


def test_first_test_gets_the_first_restore_without_waiting(tmp_path: Path) -> None:
    engine = FakeEngine(tmp_path)
    controller, _ = warm(tmp_path, engine)
    assert controller.reset() == 0.0
    assert engine.restored == ["c1"]
    controller.reset()
    assert engine.restored == ["c1", "c2"]
    assert controller.handle.port(80) == 30002
    assert controller.restores == 2
    controller.close()
    assert sorted(engine.removed) == ["c1", "c2"]


def test_failed_restore_is_retried_when_asked(tmp_path: Path) -> None:
    engine = FakeEngine(tmp_path)
    controller, said = warm(tmp_path, engine, restore_retries=1)
    controller.touch()
    engine.failures = 1
    controller.reset()
    assert engine.restored == ["c1", "c3"], "c2 failed, c3 is the retry"
    assert any(
        "reset failed (box: CRIU could not restore" in line and "retry 1/1" in line for line in said
    )
    controller.close()
    assert "c2" in engine.removed, "the failed container is removed"


def test_without_retries_the_failure_reaches_the_test(tmp_path: Path) -> None:
    engine = FakeEngine(tmp_path)
    controller, _ = warm(tmp_path, engine)
    controller.touch()
    engine.failures = 1
    with pytest.raises(RestoreError, match="box: CRIU could not restore"):
        controller.reset()
    with pytest.raises(Exception, match="box: no running container: the last reset failed"):
        _ = controller.handle.id
    controller.reset()
    assert controller.handle.id == "c3"
    controller.close()


def test_damaged_checkpoint_is_not_retried(tmp_path: Path) -> None:
    engine = FakeEngine(tmp_path)
    controller, _ = warm(tmp_path, engine, restore_retries=3)
    controller.touch()
    (tmp_path / "source" / "checkpoints" / "pytest-criu" / "pages-1.img").write_bytes(b"x")
    with pytest.raises(
        DamagedCheckpointError, match=r"pages-1\.img has 1 bytes, 100 at checkpoint"
    ):
        controller.reset()
    assert engine.created == ["c1"], "no container was created for a damaged checkpoint"
    controller.close()


def test_inplace_restores_the_same_container(tmp_path: Path) -> None:
    engine = FakeEngine(tmp_path)
    controller, _ = warm(tmp_path, engine, strategy="inplace")
    controller.touch()
    controller.reset()
    controller.reset()
    assert engine.restored == ["c1", "c1", "c1"]
    assert engine.created == ["c1"]
    controller.close()


def test_restore_ahead_restores_the_second_container_during_set_up(tmp_path: Path) -> None:
    engine = FakeEngine(tmp_path)
    controller, _ = warm(tmp_path, engine, restore_ahead=True)
    assert controller._next is not None
    controller._next.result(timeout=10)
    assert engine.restored == ["c1", "c2"], "c2 was restored ahead while set-up finished"
    assert controller.reset() == 0.0
    assert controller.handle.id == "c1"
    handed: list[str] = [controller.handle.id]
    for _ in range(3):
        controller.touch()
        controller.reset()
        handed.append(controller.handle.id)
    assert handed == ["c1", "c2", "c3", "c4"], "every test gets a container no test touched"
    controller.close()
    assert sorted(engine.removed) == sorted(engine.created)


def test_failed_restore_ahead_is_made_up_for_at_the_reset(tmp_path: Path) -> None:
    engine = FakeEngine(tmp_path)
    engine.broken.add("c2")
    controller, said = warm(tmp_path, engine, restore_ahead=True)
    assert controller.handle.id == "c1"
    controller.touch()
    controller.reset()
    assert controller.handle.id == "c3", "c2 (restored ahead) failed; c3 was restored now"
    assert any("restore-ahead failed" in line for line in said)
    controller.close()
    assert "c2" in engine.removed


def test_the_previous_container_goes_after_the_next_one_runs(tmp_path: Path) -> None:
    engine = FakeEngine(tmp_path)
    controller, _ = warm(tmp_path, engine)
    controller.touch()
    controller.reset()
    controller.close()
    assert engine.events.index("restored c2") < engine.events.index("removed c1")


def test_with_host_networking_the_previous_container_goes_first(tmp_path: Path) -> None:
    engine = FakeEngine(tmp_path)
    controller, _ = warm(tmp_path, engine, network="host")
    controller.touch()
    controller.reset()
    assert engine.events == ["restored c1", "removed c1", "restored c2"]
    controller.close()
