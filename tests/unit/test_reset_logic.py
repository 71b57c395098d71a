"""WarmContainer's reset logic with a hand-written engine fake: retries, damage, strategies."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from pytest_criu.engine.base import ContainerConfig, RestoreRequest
from pytest_criu.engine.errors import DamagedCheckpointError, EngineError, RestoreError, SpecError
from pytest_criu.engine.events import ResetRecord, RestoreRecord
from pytest_criu.engine.holders import holder_spec, joined_spec, network_path
from pytest_criu.engine.labels import ROLE, Owner
from pytest_criu.engine.snapshot import Options, WarmContainer
from pytest_criu.engine.spec import Port, build_spec
from pytest_criu.engine.store import Snapshot, file_sizes


class FakeEngine:
    """Containers are ids; restores fail while ``failures`` is positive."""

    name = "fake"
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

    stages_restores = True

    def restore_new(self, request: RestoreRequest) -> str:
        container_id = self.stage_restore(request)
        self.restore_staged(container_id, request)
        return container_id

    def stage_restore(self, request: RestoreRequest) -> str:
        container_id = self.create(request.config)
        request.created(container_id)
        self.place_checkpoint(request.checkpoint, container_id, request.name, owner=request.owner)
        return container_id

    def restore_staged(self, container_id: str, request: RestoreRequest) -> None:
        self.restore(container_id, request.name)
        request.lap("engine restore")

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
        self.events.append(f"killed {container_id}")

    def logs(self, container_id: str, *, tail: int | str = "all") -> str:
        return ""


class Recorder:
    """An observer keeping every restore record."""

    def __init__(self, records: list[RestoreRecord]) -> None:
        self.records = records

    def restored(self, record: RestoreRecord) -> None:
        self.records.append(record)

    def reset(self, record: ResetRecord) -> None:
        pass


def warm(
    tmp_path: Path,
    engine: FakeEngine,
    network: str | None = None,
    observer: Recorder | None = None,
    **options: Any,
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
        observer=observer,
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
    assert engine.created == ["c1", "c2", "c3"], "c3 was staged for a third test"
    assert sorted(engine.removed) == ["c1", "c2", "c3"]


def test_the_next_container_is_staged_while_the_test_runs(tmp_path: Path) -> None:
    engine = FakeEngine(tmp_path)
    records: list[RestoreRecord] = []
    controller, _ = warm(tmp_path, engine, observer=Recorder(records))
    controller.settle(timeout=10)
    staged = engine.created[-1]
    assert staged not in engine.restored
    assert (engine.checkpoint_dir(staged, "pytest-criu")).is_dir(), "its checkpoint is placed"
    controller.touch()
    controller.reset()
    assert controller.handle.id == staged, "the reset restored the staged container"
    assert "staged" in records[-1].phases
    assert "create" not in records[-1].phases
    assert "holder" not in records[-1].phases
    controller.close()
    assert sorted(engine.removed) == sorted(engine.created)


def test_a_staged_container_whose_holder_stopped_is_replaced(tmp_path: Path) -> None:
    engine = DockerLikeEngine(tmp_path)
    controller, _ = warm(tmp_path, engine)
    controller.settle(timeout=10)
    staged = [c for c in engine.created if c not in engine.holders()][-1]
    assert staged not in engine.restored
    engine.stopped.add(engine.joined(staged))  # a daemon restart stops holders, not created ones
    controller.touch()
    controller.reset()
    current = controller.handle.id
    assert current != staged
    assert current in engine.restored
    assert engine.joined(current) not in engine.stopped
    controller.settle(timeout=10)
    assert staged in engine.removed, "the unusable staged container was removed"
    controller.close()
    assert sorted(engine.removed) == sorted(engine.created)


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
    assert engine.restored == ["c1"]
    assert engine.created == ["c1", "c2"], "only c2, staged before the damage, was created"
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
    controller, _ = warm(tmp_path, engine, restore_ahead=True, restore_ahead_depth=1)
    controller.settle(timeout=10)
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


def test_a_deeper_restore_ahead_keeps_that_many_restored(tmp_path: Path) -> None:
    engine = FakeEngine(tmp_path)
    controller, _ = warm(tmp_path, engine, restore_ahead=True, restore_ahead_depth=3)
    assert controller.stats.ahead_depth == 3
    controller.settle(timeout=10)
    assert len(engine.restored) == 4, "the first restore and three ahead"
    handed = [controller.handle.id]
    for _ in range(5):
        controller.touch()
        controller.reset()
        handed.append(controller.handle.id)
        controller.settle(timeout=10)
        untaken = [c for c in engine.restored if c not in handed]
        assert len(untaken) == 3, "the pipeline was filled up again"
    assert len(set(handed)) == 6, "every test gets a container no test touched"
    controller.close()
    assert sorted(engine.removed) == sorted(engine.created)


def test_a_container_restored_ahead_that_stopped_is_replaced(tmp_path: Path) -> None:
    engine = DockerLikeEngine(tmp_path)
    controller, _ = warm(tmp_path, engine, restore_ahead=True, restore_ahead_depth=1)
    controller.settle(timeout=10)
    ahead = engine.restored[-1]
    assert ahead != controller.handle.id
    engine.stopped.add(ahead)  # a daemon restart stops what was restored ahead
    controller.touch()
    controller.reset()
    assert controller.handle.id not in (ahead, engine.restored[0])
    assert controller.handle.id in engine.restored, "restored now instead"
    controller.settle(timeout=10)
    assert ahead in engine.removed
    controller.close()
    assert sorted(engine.removed) == sorted(engine.created)


def test_failed_restore_ahead_is_made_up_for_at_the_reset(tmp_path: Path) -> None:
    engine = FakeEngine(tmp_path)
    engine.broken.add("c2")
    controller, said = warm(tmp_path, engine, restore_ahead=True, restore_ahead_depth=1)
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


def test_with_host_networking_the_previous_container_stops_first(tmp_path: Path) -> None:
    engine = FakeEngine(tmp_path)
    controller, _ = warm(tmp_path, engine, network="host")
    controller.touch()
    controller.reset()
    controller.settle(timeout=10)
    assert engine.events == ["restored c1", "killed c1", "restored c2", "removed c1"]
    controller.close()


class DockerLikeEngine(FakeEngine):
    """An engine whose warm containers join network holders; it records every config."""

    name = "docker"

    def __init__(self, root: Path, holder_fails: bool = False) -> None:
        super().__init__(root)
        self.configs: dict[str, ContainerConfig] = {}
        self.started: list[str] = []
        self.holder_fails = holder_fails
        self.stopped: set[str] = set()
        """Containers a daemon restart stopped meanwhile (inspect says not running)."""
        self.timeline: list[str] = []
        """``created X`` and ``removed X``, in order."""

    def create(self, config: ContainerConfig) -> str:
        container_id = super().create(config)
        self.configs[container_id] = config
        self.timeline.append(f"created {container_id}")
        return container_id

    def remove(self, container_id: str) -> None:
        super().remove(container_id)
        self.timeline.append(f"removed {container_id}")

    def start(self, container_id: str) -> None:
        if self.holder_fails:
            raise EngineError('Docker could not start the container: exec: "sleep": not found')
        self.started.append(container_id)

    def ensure_image(self, reference: str, *, pull: bool) -> dict[str, Any]:
        return {"Id": f"sha256:{reference}", "Config": {}}

    def inspect(self, container_id: str) -> dict[str, Any]:
        return {"State": {"Running": container_id not in self.stopped}, "Id": container_id}

    def published_ports(self, info: Mapping[str, Any]) -> dict[Port, int]:
        config = self.configs[info["Id"]]
        return {port: 40000 + int(info["Id"][1:]) for port in config.spec.ports}

    def holders(self) -> list[str]:
        return [c for c, config in self.configs.items() if config.labels.get(ROLE) == "holder"]

    def joined(self, container_id: str) -> str:
        mode = self.configs[container_id].spec.network_mode or ""
        return mode.removeprefix("container:")


def test_containers_alive_together_never_share_a_holder(tmp_path: Path) -> None:
    engine = DockerLikeEngine(tmp_path)
    controller, _ = warm(tmp_path, engine)
    assert controller.network == "holder"
    for _ in range(3):
        controller.touch()
        controller.reset()
        controller.settle(timeout=10)
    joined = [c for c in engine.created if c not in engine.holders()]
    live = [c for c in joined if c not in engine.removed]
    assert len(live) == 2, "the current container and the one staged for the next reset"
    assert len({engine.joined(c) for c in live}) == 2
    reused = 0
    for index, later in enumerate(joined):
        for earlier in joined[:index]:
            if engine.joined(earlier) == engine.joined(later):
                reused += 1
                assert engine.timeline.index(f"removed {earlier}") < engine.timeline.index(
                    f"created {later}"
                ), "a holder serves again only once the container in it is gone"
    assert reused >= 1, "the holder of a replaced container serves a later one"
    for container_id in engine.restored:
        assert engine.configs[container_id].spec.ports == (), "only the holder publishes"
    current = controller.handle.id
    assert controller.handle.port(80) == 40000 + int(engine.joined(current)[1:])
    controller.close()
    assert sorted(engine.removed) == sorted(engine.created)
    for container_id in engine.restored:
        assert engine.removed.index(container_id) < engine.removed.index(
            engine.joined(container_id)
        ), "a holder goes after the container that joined it"


def test_a_holder_a_daemon_restart_stopped_is_not_reused(tmp_path: Path) -> None:
    engine = DockerLikeEngine(tmp_path)
    controller, _ = warm(tmp_path, engine)
    controller.touch()
    controller.reset()
    controller.settle(timeout=10)
    first = engine.restored[0]
    engine.stopped.add(engine.joined(first))
    controller.touch()
    controller.reset()
    controller.settle(timeout=10)
    later = [c for c in engine.created if c not in engine.holders()][3:]
    assert later, "a container was staged after the holder came back"
    assert all(engine.joined(c) != engine.joined(first) for c in later)
    assert engine.joined(first) in engine.removed
    controller.close()


def test_holders_run_sleep_in_the_image_and_carry_no_secrets(tmp_path: Path) -> None:
    engine = DockerLikeEngine(tmp_path)
    controller = WarmContainer(
        name="box",
        spec=build_spec(image="tiny", ports=[80], environment={"PASSWORD": "hunter22"}),
        ready=(),
        prepare=None,
        engine=engine,  # type: ignore[arg-type]
        owner=Owner.current("session"),
        options=Options(restore_ahead=False),
    )
    controller.start()
    holder = engine.joined(controller.handle.id)
    spec = engine.configs[holder].spec
    assert spec.entrypoint == ("sleep",)
    assert spec.ports == (Port(80),)
    assert not spec.environment
    assert engine.configs[holder].image == "sha256:tiny"
    controller.close()


def test_a_kept_container_keeps_its_holder(tmp_path: Path) -> None:
    engine = DockerLikeEngine(tmp_path)
    controller, _ = warm(tmp_path, engine)
    kept = controller.keep_current()
    assert kept is not None
    assert controller.tracker.kept == {kept, engine.joined(kept)}
    controller.close()
    assert kept not in engine.removed
    assert engine.joined(kept) not in engine.removed


def test_a_holder_that_cannot_sleep_names_the_fix(tmp_path: Path) -> None:
    engine = DockerLikeEngine(tmp_path, holder_fails=True)
    with pytest.raises(EngineError) as raised:
        warm(tmp_path, engine)
    message = str(raised.value)
    assert message.startswith("box: its network holder (image tiny, running `sleep`) did not start")
    assert "--criu-holder-image" in message
    assert "--criu-network-holder=off (Docker <= 27 only)" in message


@pytest.mark.parametrize(
    ("engine", "network", "setting", "path"),
    [
        ("docker", None, "auto", "holder"),
        ("docker", "none", "auto", "holder"),
        ("docker", "bridge", "on", "holder"),
        ("docker", None, "off", "own"),
        ("docker", "none", "stable", "stable"),
        ("docker", "host", "stable", "host"),
        ("docker", "host", "auto", "host"),
        ("docker", "container:db", "auto", "joined"),
        ("podman", None, "auto", "own"),
        ("podman", "host", "on", "host"),
    ],
)
def test_network_path(engine: str, network: str | None, setting: Any, path: str) -> None:
    assert network_path(engine, network, setting) == path


@pytest.mark.parametrize("setting", ["on", "stable"])
def test_holders_on_podman_are_refused_with_the_choices(setting: Any) -> None:
    with pytest.raises(SpecError) as raised:
        network_path("podman", None, setting)
    assert str(raised.value) == (
        f"--criu-network-holder={setting}: network holders are for Docker; podman restores "
        "containers with a network namespace of their own. Use auto or off"
    )


def test_a_stable_address_keeps_one_holder_and_stops_the_previous_container_first(
    tmp_path: Path,
) -> None:
    engine = DockerLikeEngine(tmp_path)
    controller, said = warm(tmp_path, engine, network_holder="stable", restore_ahead=True)
    assert controller.network == "stable"
    assert said == [
        "box: restore-ahead is off: with a stable address the container restored ahead would "
        "take over the current one's ports"
    ]
    ports = {controller.handle.port(80)}
    for _ in range(3):
        controller.touch()
        previous = controller.handle.id
        controller.reset()
        ports.add(controller.handle.port(80))
        current = controller.handle.id
        assert engine.events.index(f"killed {previous}") < engine.events.index(
            f"restored {current}"
        )
    controller.settle(timeout=10)
    restored = engine.restored
    assert len(restored) == 4
    assert len(engine.holders()) == 1, "one holder for the session"
    joined = [c for c in engine.created if c not in engine.holders()]
    assert {engine.joined(c) for c in joined} == set(engine.holders()), "staged ones too"
    assert len(ports) == 1
    assert set(restored[:-1]) <= set(engine.removed), "replaced containers are removed"
    assert engine.holders()[0] not in engine.removed
    controller.close()
    assert sorted(engine.removed) == sorted(engine.created)
    assert engine.removed[-1] == engine.holders()[0], "the holder goes last"


def test_a_stable_holder_that_stopped_is_replaced(tmp_path: Path) -> None:
    engine = DockerLikeEngine(tmp_path)
    stopped = engine.stopped
    controller, _ = warm(tmp_path, engine, network_holder="stable")
    first = engine.joined(controller.handle.id)
    stopped.add(first)
    controller.touch()
    controller.reset()
    second = engine.joined(controller.handle.id)
    assert second != first
    controller.settle(timeout=10)
    assert first in engine.removed
    controller.close()
    assert second in engine.removed


def test_network_settings_go_to_the_holder_the_rest_to_the_container() -> None:
    spec = build_spec(
        image="tiny",
        ports=[80],
        create_options={"hostname": "db", "extra_hosts": {"api": "10.0.0.9"}, "shm_size": "64m"},
    )
    holder = holder_spec(spec)
    joined = joined_spec(spec, "h1")
    assert set(holder.create_options) == {"hostname", "extra_hosts"}
    assert dict(joined.create_options) == {"shm_size": "64m"}
    assert joined.network_mode == "container:h1"
    assert joined.ports == ()


def test_a_holder_stopped_meanwhile_is_replaced(tmp_path: Path) -> None:
    """A daemon restart stops the holder made ahead; the next restore gets a new one."""
    engine = DockerLikeEngine(tmp_path)
    stopped = engine.stopped
    controller, _ = warm(tmp_path, engine)
    controller.settle(timeout=10)
    spare = set(engine.holders()) - {engine.joined(controller.handle.id)}
    stopped |= spare
    controller.touch()
    controller.reset()
    assert engine.joined(controller.handle.id) not in spare
    controller.settle(timeout=10)
    assert spare <= set(engine.removed), "the stopped holder is removed"
    controller.close()


def test_a_container_that_cannot_be_removed_is_recorded(tmp_path: Path) -> None:
    engine = FakeEngine(tmp_path)
    controller, _ = warm(tmp_path, engine)
    refused = engine.remove

    def remove(container_id: str) -> None:
        if container_id == "c1":
            raise EngineError("Docker could not remove container c1: device or resource busy")
        refused(container_id)

    engine.remove = remove  # type: ignore[method-assign]
    controller.touch()
    controller.reset()
    controller.close()
    assert controller.tracker.failures == [
        "container c1: Docker could not remove container c1: device or resource busy"
    ]
