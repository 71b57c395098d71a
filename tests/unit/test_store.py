"""Snapshot stores with a hand-written engine fake: locking, manifests, LRU eviction."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from pytest_criu.engine import labels
from pytest_criu.engine.errors import CriuError, HostError
from pytest_criu.engine.store import Build, CacheStore, LocalStore, RunStore, Snapshot


class FakeEngine:
    """Records removals; images 'exist' until removed."""

    def __init__(self) -> None:
        self.removed: list[str] = []
        self.removed_images: list[str] = []
        self.images: set[str] = set()

    def remove(self, container_id: str) -> None:
        self.removed.append(container_id)

    def remove_image(self, image_id: str) -> None:
        self.removed_images.append(image_id)
        self.images.discard(image_id)

    def image_exists(self, image_id: str) -> bool:
        return image_id in self.images


def builder(
    engine: FakeEngine, root: Path, size: int = 10
) -> tuple[list[Mapping[str, str]], Build]:
    calls: list[Mapping[str, str]] = []

    def build(image_labels: Mapping[str, str]) -> Snapshot:
        calls.append(dict(image_labels))
        checkpoint = root / f"source-{len(calls)}" / "checkpoints" / "pytest-criu"
        checkpoint.mkdir(parents=True)
        (checkpoint / "pages-1.img").write_bytes(b"p" * size)
        image = f"sha256:image-{len(calls)}-{root.name}"
        engine.images.add(image)
        return Snapshot(
            checkpoint=str(checkpoint),
            image=image,
            tmpfs={"/data": ""},
            prepare_seconds=1.5,
            checkpoint_seconds=0.2,
            source=f"container-{len(calls)}",
        )

    return calls, build


def test_local_store_builds_and_removes(tmp_path: Path) -> None:
    engine = FakeEngine()
    calls, build = builder(engine, tmp_path)
    store = LocalStore(engine)
    snapshot, origin = store.obtain("k", {"a": "b"}, build)
    assert origin == "prepared"
    assert calls == [{"a": "b"}]
    store.close()
    assert engine.removed == ["container-1"]
    assert engine.removed_images == [snapshot.image]


def test_run_store_builds_once_and_shares(tmp_path: Path) -> None:
    engine = FakeEngine()
    calls, build = builder(engine, tmp_path)
    first = RunStore(tmp_path / "run", lock_timeout=5)
    second = RunStore(tmp_path / "run", lock_timeout=5)
    built, origin = first.obtain("k", {}, build)
    shared, shared_origin = second.obtain("k", {}, build)
    assert (origin, shared_origin) == ("prepared", "prepared by another worker")
    assert shared == built
    assert len(calls) == 1


def test_run_store_shares_a_failure(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run", lock_timeout=5)

    def failing(image_labels: Mapping[str, str]) -> Snapshot:
        raise CriuError("box: prepare raised RuntimeError: nope\nlog tail")

    with pytest.raises(CriuError):
        store.obtain("k", {}, failing)
    with pytest.raises(CriuError, match="failed in another worker: box: prepare raised"):
        store.obtain("k", {}, failing)


def test_lock_wait_times_out_with_a_clear_message(tmp_path: Path) -> None:
    directory = tmp_path / "run"
    RunStore(directory, lock_timeout=5)
    script = (
        "import filelock, time\n"
        f"lock = filelock.FileLock({str(directory / 'k.lock')!r}); lock.acquire()\n"
        "print('held', flush=True); time.sleep(60)"
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline() == b"held\n"
            store = RunStore(directory, lock_timeout=0.5)
            with pytest.raises(HostError, match=r"waited 0.5s for .*k.lock held by another worker"):
                store.obtain("k", {}, lambda labels: pytest.fail("must not build"))
        finally:
            holder.kill()
    # a dead holder releases the lock
    _, build = builder(FakeEngine(), tmp_path)
    assert RunStore(directory, lock_timeout=5).obtain("k", {}, build)[1] == "prepared"


def test_cache_store_hit_after_miss_and_own_image_labels(tmp_path: Path) -> None:
    engine = FakeEngine()
    calls, build = builder(engine, tmp_path / "docker")
    cache = CacheStore(engine, tmp_path / "cache", max_bytes=10**9, lock_timeout=5)
    stored, origin = cache.obtain("key1", {labels.FIXTURE: "redis", labels.SESSION: "s"}, build)
    assert origin == "prepared"
    assert calls == [{labels.CACHE: "key1", labels.FIXTURE: "redis", labels.ROLE: "cache"}]
    assert Path(stored.checkpoint) == tmp_path / "cache" / "key1" / "checkpoint"
    assert (Path(stored.checkpoint) / "pages-1.img").read_bytes() == b"p" * 10
    assert engine.removed == ["container-1"], "the source container is not needed any more"
    cache.close()
    again = CacheStore(engine, tmp_path / "cache", max_bytes=10**9, lock_timeout=5)
    hit, origin = again.obtain("key1", {}, build)
    assert origin == "cache"
    assert hit == stored
    assert len(calls) == 1
    again.close()


def test_cache_entry_with_a_missing_image_is_rebuilt(tmp_path: Path) -> None:
    engine = FakeEngine()
    calls, build = builder(engine, tmp_path / "docker")
    cache = CacheStore(engine, tmp_path / "cache", max_bytes=10**9, lock_timeout=5)
    stored, _ = cache.obtain("key1", {}, build)
    engine.images.clear()  # e.g. `docker image prune -a`
    rebuilt, origin = cache.obtain("key1", {}, build)
    assert origin == "prepared"
    assert len(calls) == 2
    assert rebuilt.image != stored.image


def test_cache_evicts_least_recently_used_but_not_entries_in_use(tmp_path: Path) -> None:
    engine = FakeEngine()
    _, build = builder(engine, tmp_path / "docker", size=1000)
    directory = tmp_path / "cache"
    writer = CacheStore(engine, directory, max_bytes=10**9, lock_timeout=5)
    for key in ("old", "middle", "new"):
        writer.obtain(key, {}, build)
        time.sleep(0.01)
    writer.close()
    # "middle" is in use by this process (a live user), the others are not
    user = CacheStore(engine, directory, max_bytes=10**9, lock_timeout=5)
    user.obtain("middle", {}, build)
    manifest = directory / "old" / "snapshot.json"
    data = json.loads(manifest.read_text())
    data["last_used"] = 0
    manifest.write_text(json.dumps(data))
    small = CacheStore(engine, directory, max_bytes=2900, lock_timeout=5)
    assert small.evict() == ["old"]
    tiny = CacheStore(engine, directory, max_bytes=1, lock_timeout=5)
    assert tiny.evict() == ["new"], "the entry in use is spared"
    user.close()
    assert tiny.evict() == ["middle"]
    assert sorted(engine.removed_images) == sorted(f"sha256:image-{n}-docker" for n in (1, 2, 3))


def test_cache_clear_removes_entries_and_images(tmp_path: Path) -> None:
    engine = FakeEngine()
    _, build = builder(engine, tmp_path / "docker")
    cache = CacheStore(engine, tmp_path / "cache", max_bytes=10**9, lock_timeout=5)
    cache.obtain("a", {}, build)
    cache.obtain("b", {}, build)
    assert cache.clear() == 2
    assert not engine.images
    assert [p for p in (tmp_path / "cache").iterdir() if p.is_dir()] == []
