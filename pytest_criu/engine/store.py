"""Where prepared snapshots come from: built here, shared by a run's workers, or cached.

A :class:`Snapshot` is what restores need: the checkpoint files, the image committed at
checkpoint time, and the tmpfs mounts the checkpoint was taken with.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import filelock

from . import labels as labelling
from . import procfs
from .errors import CriuError, HostError
from .paths import make_private, private_directory, tree_size
from .placing import NONCE_FILE, link_tree

MANIFEST = "snapshot.json"
PROVENANCE = "provenance"
"""Manifest field: what shaped the entry's key (``parts``) and the base image's reference."""
IMPORTED = "imported"
"""Manifest field of an imported entry: where it was prepared (``from``) and its key there."""


@dataclass(frozen=True)
class Snapshot:
    """A prepared, checkpointed container, ready to be restored any number of times."""

    checkpoint: str
    image: str
    tmpfs: Mapping[str, str] = field(default_factory=dict)
    prepare_seconds: float | None = None
    checkpoint_seconds: float | None = None
    source: str | None = None
    files: Mapping[str, int] = field(default_factory=dict)
    """Size of every checkpoint file at checkpoint time, to notice damage before CRIU does."""
    memory: Mapping[str, int] = field(default_factory=dict)
    """Anonymous memory of each process at checkpoint time (:mod:`.footprint`)."""

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "tmpfs": dict(self.tmpfs),
            "files": dict(self.files),
            "memory": dict(self.memory),
        }

    def damage(self) -> str | None:
        """What changed in the checkpoint files since they were written, or ``None``."""
        root = Path(self.checkpoint)
        for name, size in self.files.items():
            try:
                actual = (root / name).stat().st_size
            except OSError:
                return f"checkpoint file {name} is missing from {root}"
            if actual != size:
                return f"checkpoint file {name} has {actual} bytes, {size} at checkpoint time"
        return None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Snapshot:
        return cls(
            checkpoint=str(data["checkpoint"]),
            image=str(data["image"]),
            tmpfs=dict(data.get("tmpfs") or {}),
            prepare_seconds=data.get("prepare_seconds"),
            checkpoint_seconds=data.get("checkpoint_seconds"),
            source=data.get("source"),
            files=dict(data.get("files") or {}),
            memory=dict(data.get("memory") or {}),
        )


Build = Callable[[Mapping[str, str]], Snapshot]
"""Prepare and checkpoint a container; its argument is the labels for the committed image."""


class Engine(Protocol):
    def remove(self, container_id: str) -> None: ...

    def remove_image(self, image_id: str) -> None: ...

    def image_exists(self, image_id: str) -> bool: ...


class SnapshotStore(Protocol):
    """Gives each warm container its snapshot; says where it came from."""

    def obtain(
        self,
        key: str,
        labels: Mapping[str, str],
        build: Build,
        provenance: Mapping[str, Any] | None = None,
    ) -> tuple[Snapshot, str]:
        """The snapshot for ``key`` and its origin ("prepared", "cache", "imported from ...").

        ``provenance`` (what the key covers) is kept by stores whose entries can be exported.
        """
        ...

    def close(self) -> None:
        """Release what this process holds; remove what only it uses."""
        ...


class LocalStore:
    """Builds every snapshot in this process and removes it at the end."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._built: list[Snapshot] = []

    def obtain(
        self,
        key: str,
        labels: Mapping[str, str],
        build: Build,
        provenance: Mapping[str, Any] | None = None,
    ) -> tuple[Snapshot, str]:
        snapshot = build(labels)
        self._built.append(snapshot)
        return snapshot, "prepared"

    def close(self) -> None:
        for snapshot in self._built:
            with contextlib.suppress(CriuError, Exception):
                if snapshot.source:
                    self.engine.remove(snapshot.source)
                if snapshot.image:
                    self.engine.remove_image(snapshot.image)
        self._built.clear()


class RunStore:
    """Shares snapshots between the workers of one pytest-xdist run.

    The first worker to take a key's lock builds the snapshot and writes its manifest; the
    others wait for the lock and read it. The run's controller removes everything at the end,
    so workers never remove a snapshot another worker may still restore.
    """

    def __init__(self, directory: Path, lock_timeout: float) -> None:
        self.directory = private_directory(directory)
        self.lock_timeout = lock_timeout

    def obtain(
        self,
        key: str,
        labels: Mapping[str, str],
        build: Build,
        provenance: Mapping[str, Any] | None = None,
    ) -> tuple[Snapshot, str]:
        manifest = self.directory / f"{key}.json"
        with _locked(self.directory / f"{key}.lock", self.lock_timeout, "another worker"):
            if manifest.exists():
                data = json.loads(manifest.read_text())
                if "error" in data:
                    raise CriuError(f"preparing it failed in another worker: {data['error']}")
                return Snapshot.from_json(data), "prepared by another worker"
            try:
                snapshot = build(labels)
            except CriuError as error:
                write_json(manifest, {"error": str(error).splitlines()[0]})
                raise
            write_json(manifest, snapshot.to_json())
            return snapshot, "prepared"

    def close(self) -> None:
        """Nothing to do in a worker: the controller removes the run's snapshots."""


class CacheStore:
    """Keeps snapshots across runs in a private directory, keyed by what shaped them.

    Entries are built under a temporary name and renamed into place while the key's lock is
    held. Least recently used entries beyond ``max_bytes`` are evicted, except those a live
    process is using.
    """

    def __init__(
        self, engine: Engine, directory: Path, *, max_bytes: int, lock_timeout: float
    ) -> None:
        self.engine = engine
        self.directory = private_directory(directory)
        self.max_bytes = max_bytes
        self.lock_timeout = lock_timeout
        self._using: list[Path] = []

    def obtain(
        self,
        key: str,
        labels: Mapping[str, str],
        build: Build,
        provenance: Mapping[str, Any] | None = None,
    ) -> tuple[Snapshot, str]:
        entry = self.directory / key
        with _locked(self.directory / f"{key}.lock", self.lock_timeout, "another run"):
            cached = self._read(entry)
            if cached is not None:
                self._use(entry)
                return cached, entry_origin(entry)
            shutil.rmtree(entry, ignore_errors=True)
            # Not the session's labels: the image outlives the session.
            fixture = labels.get(labelling.FIXTURE, "")
            snapshot = build(
                {labelling.CACHE: key, labelling.FIXTURE: fixture, labelling.ROLE: "cache"}
            )
            scratch = self.directory / f"{key}.tmp-{os.getpid()}"
            shutil.rmtree(scratch, ignore_errors=True)
            private_directory(scratch)
            try:
                link_tree(Path(snapshot.checkpoint), scratch / "checkpoint")
                # Process memory: CRIU writes its images readable by all (hard links share
                # the mode, so the source's copy becomes private too).
                make_private(scratch / "checkpoint")
                stored = replace(snapshot, checkpoint=str(entry / "checkpoint"), source=None)
                data = {**stored.to_json(), "last_used": time.time()}
                if provenance:
                    data[PROVENANCE] = dict(provenance)
                write_json(scratch / MANIFEST, data)
                scratch.rename(entry)
            except BaseException:
                shutil.rmtree(scratch, ignore_errors=True)
                raise
            finally:
                if snapshot.source:
                    with contextlib.suppress(Exception):
                        self.engine.remove(snapshot.source)
            self._use(entry)
        self.evict()
        return stored, "prepared"

    def close(self) -> None:
        for entry in self._using:
            with contextlib.suppress(OSError):
                (entry / "users" / _me()).unlink()
        self._using.clear()

    def clear(self) -> int:
        """Remove every entry and its image; return how many were removed."""
        removed = 0
        for entry in self._entries():
            with _locked(self.directory / f"{entry.name}.lock", self.lock_timeout, "another run"):
                self._remove(entry)
            removed += 1
        return removed

    def evict(self) -> list[str]:
        """Drop least recently used entries until the cache fits; return their keys."""
        entries = sorted(self._entries(), key=_last_used)
        sizes = {entry: tree_size(entry) for entry in entries}
        total = sum(sizes.values())
        evicted: list[str] = []
        for entry in entries:
            if total <= self.max_bytes:
                break
            if _live_users(entry):
                continue
            lock = filelock.FileLock(str(self.directory / f"{entry.name}.lock"))
            try:
                lock.acquire(timeout=0)
            except filelock.Timeout:
                continue
            try:
                self._remove(entry)
            finally:
                lock.release()
            total -= sizes[entry]
            evicted.append(entry.name)
        return evicted

    def add(self, key: str, fill: Callable[[Path], Mapping[str, Any]]) -> Path:
        """Add (or replace) entry ``key``: ``fill(scratch)`` writes its files, returns its manifest.

        The manifest's ``checkpoint`` is rewritten to the entry's own path.
        """
        entry = self.directory / key
        with _locked(self.directory / f"{key}.lock", self.lock_timeout, "another run"):
            scratch = self.directory / f"{key}.tmp-{os.getpid()}"
            shutil.rmtree(scratch, ignore_errors=True)
            private_directory(scratch)
            try:
                data = dict(fill(scratch))
                data.update(checkpoint=str(entry / "checkpoint"), last_used=time.time())
                write_json(scratch / MANIFEST, data)
                if entry.exists():
                    self._remove(entry, keep_image=str(data.get("image") or ""))
                scratch.rename(entry)
            except BaseException:
                shutil.rmtree(scratch, ignore_errors=True)
                raise
        return entry

    def entries(self) -> list[Path]:
        """The directories of the complete entries."""
        return self._entries()

    def _entries(self) -> list[Path]:
        return [p for p in self.directory.iterdir() if p.is_dir() and (p / MANIFEST).exists()]

    def _read(self, entry: Path) -> Snapshot | None:
        try:
            data = json.loads((entry / MANIFEST).read_text())
            snapshot = Snapshot.from_json(data)
        except (OSError, ValueError, KeyError):
            return None
        if not Path(snapshot.checkpoint).is_dir():
            return None
        if snapshot.image and not self.engine.image_exists(snapshot.image):
            return None
        return snapshot

    def _use(self, entry: Path) -> None:
        users = private_directory(entry / "users")
        (users / _me()).touch(mode=0o600)
        manifest = entry / MANIFEST
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(manifest.read_text())
            data["last_used"] = time.time()
            write_json(manifest, data)
        self._using.append(entry)

    def _remove(self, entry: Path, *, keep_image: str = "") -> None:
        snapshot = self._read_quietly(entry)
        if snapshot is not None and snapshot.image and snapshot.image != keep_image:
            with contextlib.suppress(Exception):
                self.engine.remove_image(snapshot.image)
        shutil.rmtree(entry, ignore_errors=True)

    @staticmethod
    def _read_quietly(entry: Path) -> Snapshot | None:
        try:
            return Snapshot.from_json(json.loads((entry / MANIFEST).read_text()))
        except (OSError, ValueError, KeyError):
            return None


@contextlib.contextmanager
def _locked(path: Path, timeout: float, holder: str) -> Iterator[None]:
    lock = filelock.FileLock(str(path), mode=0o600)
    try:
        lock.acquire(timeout=timeout)
    except filelock.Timeout:
        raise HostError(
            f"waited {timeout:g}s for {path} held by {holder} that is preparing the same "
            "snapshot; raise --criu-lock-timeout if preparing takes longer"
        ) from None
    try:
        yield
    finally:
        lock.release()


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically, readable by its owner only."""
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as stream:
        json.dump(data, stream, indent=1, sort_keys=True)
    scratch.replace(path)


def entry_origin(entry: Path) -> str:
    """``cache``, or ``imported from <where it was prepared>`` for an imported entry."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        imported = json.loads((entry / MANIFEST).read_text()).get(IMPORTED)
        if imported:
            return f"imported from {imported.get('from') or 'another host'}"
    return "cache"


def _me() -> str:
    return f"{os.getpid()}-{procfs.start_time(os.getpid())}"


def _live_users(entry: Path) -> bool:
    users = entry / "users"
    if not users.is_dir():
        return False
    for marker in users.iterdir():
        pid, _, start = marker.name.partition("-")
        if pid.isdigit() and procfs.start_time(int(pid)) == start:
            return True
        with contextlib.suppress(OSError):
            marker.unlink()
    return False


def _last_used(entry: Path) -> float:
    try:
        return float(json.loads((entry / MANIFEST).read_text()).get("last_used", 0.0))
    except (OSError, ValueError):
        return 0.0


def file_sizes(checkpoint: Path) -> dict[str, int]:
    """Sizes of the files of a checkpoint directory, by path relative to it."""
    return {
        str(path.relative_to(checkpoint)): path.stat().st_size
        for path in sorted(checkpoint.rglob("*"))
        if path.is_file() and path.name != NONCE_FILE
    }
