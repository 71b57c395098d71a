"""Export and import of cached snapshots with a hand-written engine and criu: the manifest,
checksums, the compatibility judgement, base layers left out, and private file modes."""

from __future__ import annotations

import hashlib
import io
import json
import platform
import stat
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from pytest_criu.engine.cachekey import cache_key, rekeyed, suite_key
from pytest_criu.engine.errors import TransferError
from pytest_criu.engine.store import CacheStore, Snapshot
from pytest_criu.engine.transfer import (
    ENTRY_MANIFEST,
    INDEX,
    HostFacts,
    checksum_problem,
    checksums,
    export,
    import_snapshots,
    incompatibility,
)

HERE = HostFacts("docker", "20.10.24", "4.2.1", "6.18.44")
BASE = "sha256:base"
BASE_LAYERS = ["sha256:layer-base"]
CONFIG = json.dumps({"rootfs": {"diff_ids": [*BASE_LAYERS, "sha256:layer-top"]}}).encode()
SNAPSHOT_IMAGE = f"sha256:{hashlib.sha256(CONFIG).hexdigest()}"

FAKE_CRIU = """#!/bin/sh
# criu --version | cpuinfo dump -D DIR | cpuinfo check -D DIR, as far as these tests need
case "$1" in
  --version) echo "Version: ${FAKE_CRIU_VERSION:-4.2.1}" ;;
  cpuinfo)
    if [ "$2" = dump ]; then echo cpu > "$4/cpuinfo.img"
    elif grep -q cpu "$4/cpuinfo.img"; then :
    else echo "Error (criu/arch/x86/cpu.c:262): cpu: CPU xfeatures has unsupported bits" >&2
      exit 1
    fi ;;
  check)  # check --feature network_lock_nftables
    [ "${FAKE_CRIU_NFTABLES:-yes}" = yes ] || {
      echo "Error (criu/cr-check.c:1720): nftables based locking requires libnftables" >&2
      exit 1
    } ;;
esac
"""


def inventory(lock: int | None) -> bytes:
    """An inventory.img: img_version 2 and, unless ``None``, network_lock_method ``lock``."""
    message = b"\x08\x02" + (b"" if lock is None else bytes([11 << 3, lock]))
    return (0x58313116).to_bytes(4, "little") + len(message).to_bytes(4, "little") + message


class FakeEngine:
    """Images as a set of ids; ``docker save`` as a tar of a base and a committed layer."""

    name = "docker"
    title = "Docker"

    def __init__(self, version: str = "20.10.24") -> None:
        self._version = version
        self.images: set[str] = {BASE}
        self.loaded: list[set[str]] = []
        self.removed: list[str] = []

    def version(self) -> dict[str, Any]:
        return {"Version": self._version}

    def image_exists(self, image_id: str) -> bool:
        return image_id in self.images

    def image_layers(self, image_id: str) -> list[str]:
        return list(BASE_LAYERS)

    def remove(self, container_id: str) -> None:
        self.removed.append(container_id)

    def remove_image(self, image_id: str) -> None:
        self.images.discard(image_id)

    def save_image(self, image_id: str, out: BinaryIO) -> None:
        files = {
            "base/layer.tar": b"base layer" * 100,
            "top/layer.tar": b"prepared files",
            "config.json": CONFIG,
            "manifest.json": json.dumps(
                [{"Config": "config.json", "Layers": ["base/layer.tar", "top/layer.tar"]}]
            ).encode(),
        }
        with tarfile.open(fileobj=out, mode="w:") as archive:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))

    def load_image(self, archive: BinaryIO) -> None:
        with tarfile.open(fileobj=archive, mode="r:") as packed:
            self.loaded.append(set(packed.getnames()))
        self.images.add(SNAPSHOT_IMAGE)


@pytest.fixture
def criu(tmp_path: Path) -> str:
    path = tmp_path / "bin" / "criu"
    path.parent.mkdir()
    path.write_text(FAKE_CRIU)
    path.chmod(0o755)
    return str(path)


def _parts() -> dict[str, object]:
    return {"name": "box", "image": BASE, "prepare": "p", **HERE.key_parts()}


def _cache_with_entry(
    tmp_path: Path, engine: FakeEngine, name: str = "cache", lock: int | None = 1
) -> CacheStore:
    cache = CacheStore(engine, tmp_path / name, max_bytes=10**9, lock_timeout=5)

    def build(labels: Mapping[str, str]) -> Snapshot:
        checkpoint = tmp_path / "docker" / "checkpoint"
        checkpoint.mkdir(parents=True)
        (checkpoint / "pages-1.img").write_bytes(b"memory" * 50)
        (checkpoint / "pages-1.img").chmod(0o644)  # as CRIU writes it
        (checkpoint / "inventory.img").write_bytes(inventory(lock))
        engine.images.add(SNAPSHOT_IMAGE)
        return Snapshot(
            checkpoint=str(checkpoint),
            image=SNAPSHOT_IMAGE,
            tmpfs={"/data": ""},
            prepare_seconds=1.0,
            files={"pages-1.img": 300, "inventory.img": len(inventory(lock))},
            source="container",
        )

    parts = _parts()
    cache.obtain(cache_key(parts), {}, build, {"parts": parts, "base_reference": "tiny:latest"})
    return cache


def _modes(root: Path) -> set[int]:
    return {stat.S_IMODE(path.stat().st_mode) for path in root.rglob("*") if path.is_file()}


# -- the judgement -------------------------------------------------------------------------


def test_another_engine_version_is_compatible() -> None:
    assert incompatibility(HERE, HostFacts("docker", "28.5.2", "4.2.2", "6.19.1")) is None


@pytest.mark.parametrize(
    ("there", "reason"),
    [
        (
            HostFacts("podman", "4.3.1", "4.2.1", "6.18.44"),
            "made with Docker and this host restores with Podman",
        ),
        (
            HostFacts("docker", "20.10.24", "4.1.1", "6.18.44"),
            "made with CRIU 4.2.1 and this host has CRIU 4.1.1; install CRIU 4.2.x here",
        ),
        (
            HostFacts("docker", "20.10.24", "4.2.1", "5.15.0"),
            "made on Linux 6.18.44 and this host runs Linux 5.15.0",
        ),
    ],
)
def test_what_cannot_restore_is_named(there: HostFacts, reason: str) -> None:
    problem = incompatibility(HERE, there)
    assert problem is not None
    assert reason in problem


def test_checksums_name_the_changed_missing_and_added_file(tmp_path: Path) -> None:
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "pages-1.img").write_bytes(b"a")
    (tmp_path / ENTRY_MANIFEST).write_text("{}")
    recorded = checksums(tmp_path)
    assert list(recorded) == ["checkpoint/pages-1.img"], "the manifest holds them, is not in them"
    assert checksum_problem(tmp_path, recorded) is None
    (tmp_path / "checkpoint" / "pages-1.img").write_bytes(b"b")
    assert "checkpoint/pages-1.img has SHA-256" in (checksum_problem(tmp_path, recorded) or "")
    (tmp_path / "checkpoint" / "pages-1.img").unlink()
    assert checksum_problem(tmp_path, recorded) == "checkpoint/pages-1.img is missing"
    (tmp_path / "extra").write_text("x")
    assert checksum_problem(tmp_path, {}) == "extra was not in the export"


def test_the_suite_key_ignores_the_engine_version_and_an_import_rekeys() -> None:
    there = {**_parts(), "docker": "28.5.2"}
    assert suite_key({"box": _parts()}) == suite_key({"box": there})
    assert suite_key({"box": _parts()}) != suite_key({"box": {**there, "criu": "4.1.1"}})
    assert rekeyed(_parts(), {"docker": "28.5.2"}) == {
        "name": "box",
        "image": BASE,
        "prepare": "p",
        "docker": "28.5.2",
    }


# -- export and import ---------------------------------------------------------------------


def test_cache_entries_hold_memory_in_private_files(tmp_path: Path) -> None:
    cache = _cache_with_entry(tmp_path, FakeEngine())
    (entry,) = cache.entries()
    assert _modes(entry) == {0o600}


@pytest.mark.parametrize("target", ["export", "snapshot.tar", "snapshot.tar.gz"])
def test_an_export_imports_on_another_daemon_under_its_own_key(
    tmp_path: Path, criu: str, target: str
) -> None:
    engine = FakeEngine()
    cache = _cache_with_entry(tmp_path, engine)
    (done,) = export(cache, engine, tmp_path / target, criu_binary=criu)
    assert done.layers_left_out == 1
    exported = tmp_path / target
    if exported.is_dir():
        assert _modes(exported) == {0o600}
    else:
        assert stat.S_IMODE(exported.stat().st_mode) == 0o600
        with tarfile.open(exported) as packed:
            assert {m.mode for m in packed.getmembers() if m.isfile()} == {0o600}

    other = FakeEngine(version="28.5.2")
    there = CacheStore(other, tmp_path / "there", max_bytes=10**9, lock_timeout=5)
    (result,) = import_snapshots(exported, there, other, criu_binary=criu)
    assert result.refused is None
    here = HostFacts("docker", "28.5.2", "4.2.1", platform.release())
    assert result.local_key == cache_key(rekeyed(_parts(), here.key_parts()))
    (image,) = other.loaded
    assert "base/layer.tar" not in image, "the base image's layers are left out"
    assert "top/layer.tar" in image
    (entry,) = there.entries()
    assert entry.name == result.local_key
    assert _modes(entry) == {0o600}
    snapshot, origin = there.obtain(result.local_key, {}, lambda labels: pytest.fail("built"))
    assert origin == f"imported from Docker 20.10.24, CRIU 4.2.1, Linux {platform.release()}"
    assert (Path(snapshot.checkpoint) / "pages-1.img").read_bytes() == b"memory" * 50
    if exported.is_dir():
        assert (exported / result.key / "checkpoint" / "pages-1.img").exists(), "source kept"


def _exported(tmp_path: Path, criu: str, lock: int | None = 1) -> tuple[Path, str]:
    engine = FakeEngine()
    cache = _cache_with_entry(tmp_path, engine, lock=lock)
    (done,) = export(cache, engine, tmp_path / "export", criu_binary=criu)
    return tmp_path / "export", done.key


def _import(tmp_path: Path, source: Path, criu: str) -> str | None:
    other = FakeEngine(version="28.5.2")
    there = CacheStore(other, tmp_path / "there", max_bytes=10**9, lock_timeout=5)
    (result,) = import_snapshots(source, there, other, criu_binary=criu)
    assert (result.refused is None) == bool(there.entries()), "a refusal imports nothing"
    return result.refused


def test_a_tampered_file_is_refused(tmp_path: Path, criu: str) -> None:
    source, key = _exported(tmp_path, criu)
    (source / key / "checkpoint" / "pages-1.img").write_bytes(b"memorx" * 50)
    refused = _import(tmp_path, source, criu)
    assert refused is not None
    assert refused.startswith(
        "the snapshot is damaged or was altered since its export: checkpoint/pages-1.img has "
        "SHA-256"
    )


def test_another_criu_in_the_manifest_is_refused_for_that_reason(tmp_path: Path, criu: str) -> None:
    source, key = _exported(tmp_path, criu)
    manifest = source / key / ENTRY_MANIFEST
    data = json.loads(manifest.read_text())
    data["host"]["criu"] = "3.17.1"
    manifest.write_text(json.dumps(data))
    refused = _import(tmp_path, source, criu)
    assert refused is not None
    assert "made with CRIU 3.17.1 and this host has CRIU 4.2.1" in refused


def test_cpu_features_criu_finds_missing_are_refused(tmp_path: Path, criu: str) -> None:
    source, key = _exported(tmp_path, criu)
    (source / key / "cpuinfo.img").write_text("unknown\n")
    manifest = source / key / ENTRY_MANIFEST
    data = json.loads(manifest.read_text())
    data["checksums"] = checksums(source / key)  # so that only CRIU can object
    manifest.write_text(json.dumps(data))
    refused = _import(tmp_path, source, criu)
    assert refused is not None
    assert refused.startswith("this CPU lacks features of the one it was made on (criu cpuinfo")
    assert "CPU xfeatures has unsupported bits" in refused


def test_a_missing_base_image_is_refused(tmp_path: Path, criu: str) -> None:
    source, _ = _exported(tmp_path, criu)
    other = FakeEngine()
    other.images.clear()
    there = CacheStore(other, tmp_path / "there", max_bytes=10**9, lock_timeout=5)
    (result,) = import_snapshots(source, there, other, criu_binary=criu)
    assert result.refused is not None
    assert "its base image tiny:latest (sha256:base) is not on this Docker" in result.refused


def test_an_archive_with_a_link_is_not_unpacked(tmp_path: Path, criu: str) -> None:
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w:") as packed:
        link = tarfile.TarInfo("entry/checkpoint/pages-1.img")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/shadow"
        packed.addfile(link)
    there = CacheStore(FakeEngine(), tmp_path / "there", max_bytes=10**9, lock_timeout=5)
    with pytest.raises(TransferError, match=r"holds 'entry/checkpoint/pages-1\.img', which no"):
        import_snapshots(archive, there, FakeEngine(), criu_binary=criu)


def test_not_an_export_and_an_empty_cache_say_so(tmp_path: Path, criu: str) -> None:
    (tmp_path / "dir").mkdir()
    there = CacheStore(FakeEngine(), tmp_path / "there", max_bytes=10**9, lock_timeout=5)
    with pytest.raises(TransferError, match=f"is not a pytest-criu export \\(no readable {INDEX}"):
        import_snapshots(tmp_path / "dir", there, FakeEngine(), criu_binary=criu)
    with pytest.raises(TransferError, match="is empty; run the suite with --criu-cache first"):
        export(there, FakeEngine(), tmp_path / "out", criu_binary=criu)


def test_export_names_a_missing_entry_and_an_existing_target(tmp_path: Path, criu: str) -> None:
    engine = FakeEngine()
    cache = _cache_with_entry(tmp_path, engine)
    (key,) = [entry.name for entry in cache.entries()]
    with pytest.raises(TransferError, match=rf"no cache entry 'abc' in .* \(entries: {key}\)"):
        export(cache, engine, tmp_path / "out", keys=["abc"], criu_binary=criu)
    (tmp_path / "out.tar").write_text("")
    with pytest.raises(TransferError, match=r"out\.tar exists; remove it or choose another path"):
        export(cache, engine, tmp_path / "out.tar", criu_binary=criu)


def test_an_entry_without_provenance_asks_for_a_new_prepare(tmp_path: Path, criu: str) -> None:
    engine = FakeEngine()
    cache = _cache_with_entry(tmp_path, engine)
    (entry,) = cache.entries()
    manifest = json.loads((entry / "snapshot.json").read_text())
    del manifest["provenance"]
    (entry / "snapshot.json").write_text(json.dumps(manifest))
    with pytest.raises(TransferError, match=r"made by an older pytest-criu .* --criu-cache-clear"):
        export(cache, engine, tmp_path / "out", criu_binary=criu)


def test_a_manifest_naming_another_image_than_the_archive_holds_is_refused(
    tmp_path: Path, criu: str
) -> None:
    source, key = _exported(tmp_path, criu)
    manifest = source / key / ENTRY_MANIFEST
    data = json.loads(manifest.read_text())
    data["snapshot"]["image"] = BASE  # clearing the cache would remove the base image
    manifest.write_text(json.dumps(data))
    refused = _import(tmp_path, source, criu)
    assert refused == (
        f"its manifest names image {BASE} but image.tar holds {SNAPSHOT_IMAGE[:19]}; "
        "export it again"
    )


def test_a_damaged_cache_entry_is_not_exported(tmp_path: Path, criu: str) -> None:
    engine = FakeEngine()
    cache = _cache_with_entry(tmp_path, engine)
    (entry,) = cache.entries()
    (entry / "checkpoint" / "pages-1.img").write_bytes(b"short")
    with pytest.raises(
        TransferError, match=r"is damaged \(checkpoint file pages-1\.img has 5 bytes"
    ):
        export(cache, engine, tmp_path / "out", criu_binary=criu)
    assert not (tmp_path / "out").exists(), "no half export is left behind"


def test_an_nftables_lock_this_criu_cannot_use_is_refused(
    tmp_path: Path, criu: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, _ = _exported(tmp_path, criu)
    monkeypatch.setenv("FAKE_CRIU_NFTABLES", "no")
    refused = _import(tmp_path, source, criu)
    assert refused is not None
    assert refused.startswith(
        "it was checkpointed with CRIU's nftables network lock, which this host's CRIU or kernel "
        "cannot use (exit 1: Error (criu/cr-check.c:1720): nftables based locking requires"
    )
    assert refused.endswith(
        "install a CRIU built with libnftables (sudo pytest-criu setup does) or prepare here"
    )


@pytest.mark.parametrize("lock", [0, None], ids=["iptables", "not recorded"])
def test_an_iptables_lock_needs_no_nftables(
    tmp_path: Path, criu: str, monkeypatch: pytest.MonkeyPatch, lock: int | None
) -> None:
    source, _ = _exported(tmp_path, criu, lock=lock)
    monkeypatch.setenv("FAKE_CRIU_NFTABLES", "no")
    assert _import(tmp_path, source, criu) is None
