"""Moving cached snapshots between hosts: export to a directory or one tar file, import.

An export holds, per cache entry, a directory named by its key with the checkpoint files,
on Docker the committed image (``docker save`` without the base image's layers, which the
other side must have), CRIU's ``cpuinfo.img`` of the exporting host, and ``export.json``:
what the key covers, the host it was made on, and a SHA-256 of every other file. An import
refuses, with the reason, what cannot restore on its host (another engine, CRIU or kernel;
CPU features CRIU finds missing; no base image) and what changed since the export (a
checksum differs), then files the entry under the key the suite computes on this host.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from . import criu_images
from .cachekey import cache_key, rekeyed
from .errors import TransferError
from .paths import make_private, private_directory
from .store import IMPORTED, MANIFEST, PROVENANCE, CacheStore, Snapshot, write_json

FORMAT = 1
INDEX = "pytest-criu-export.json"
ENTRY_MANIFEST = "export.json"
IMAGE_ARCHIVE = "image.tar"
CPUINFO = "cpuinfo.img"
CHECKPOINT = "checkpoint"
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
CRIU_TIMEOUT = 60.0
TITLES = {"docker": "Docker", "podman": "Podman"}


class Engine(Protocol):
    """What export and import need of an engine (:class:`~.base.ContainerEngine` has it)."""

    @property
    def name(self) -> str: ...

    @property
    def title(self) -> str: ...

    def version(self) -> dict[str, Any]: ...

    def image_exists(self, image_id: str) -> bool: ...

    def image_layers(self, image_id: str) -> list[str]: ...

    def save_image(self, image_id: str, out: BinaryIO) -> None: ...

    def load_image(self, archive: BinaryIO) -> None: ...


@dataclass(frozen=True)
class HostFacts:
    """What decides whether a checkpoint made on one host restores on another."""

    engine: str
    engine_version: str
    criu: str
    kernel: str

    def describe(self) -> str:
        engine = TITLES.get(self.engine, self.engine)
        return f"{engine} {self.engine_version}, CRIU {self.criu}, Linux {self.kernel}"

    def key_parts(self) -> dict[str, object]:
        """The host's parts of a cache key (see :data:`~.cachekey.HOST_PARTS`)."""
        return {
            "criu": self.criu,
            "kernel": self.kernel,
            "engine": self.engine,
            "docker": self.engine_version,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HostFacts:
        return cls(**{name: str(data.get(name) or "") for name in cls.__dataclass_fields__})


def host_facts(engine: Engine, criu_binary: str = "criu") -> HostFacts:
    """This host's facts: the engine's name and version, ``criu --version``, the kernel."""
    return HostFacts(
        engine=engine.name,
        engine_version=str(engine.version().get("Version") or ""),
        criu=criu_version(criu_binary),
        kernel=platform.release(),
    )


def criu_version(criu_binary: str) -> str:
    output = _criu(criu_binary, ["--version"])
    match = re.search(r"^Version:\s*(\S+)", output, re.MULTILINE)
    if match is None:
        raise TransferError(f"cannot read CRIU's version from `{criu_binary} --version`: {output}")
    return match.group(1)


def _leading(version: str, count: int) -> tuple[str, ...]:
    return tuple(re.split(r"[.+-]", version)[:count])


def incompatibility(made: HostFacts, here: HostFacts) -> str | None:
    """Why a checkpoint made on ``made`` cannot restore on ``here``, or ``None``.

    Refused: another engine; another CRIU major.minor (a conservative line: CRIU promises no
    restore across versions); another kernel major. Another engine version is fine: a
    snapshot moves between Docker 20.10 and 28 (CPU features are CRIU's to judge, see
    :func:`cpu_problem`).
    """
    if made.engine != here.engine:
        return (
            f"it was made with {TITLES.get(made.engine, made.engine)} and this host restores "
            f"with {TITLES.get(here.engine, here.engine)}; a checkpoint restores only on the "
            "engine that made it: export it from a host with the same engine"
        )
    if _leading(made.criu, 2) != _leading(here.criu, 2):
        return (
            f"it was made with CRIU {made.criu} and this host has CRIU {here.criu}; install "
            f"CRIU {'.'.join(_leading(made.criu, 2))}.x here or prepare here (run the suite "
            "without importing)"
        )
    if _leading(made.kernel, 1) != _leading(here.kernel, 1):
        return (
            f"it was made on Linux {made.kernel} and this host runs Linux {here.kernel}; "
            "prepare on this kernel (run the suite without importing)"
        )
    return None


# -- checksums ------------------------------------------------------------------------------


def checksums(root: Path) -> dict[str, str]:
    """SHA-256 of every file below ``root`` but its manifest, by path relative to it."""
    result: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.relative_to(root).as_posix() != ENTRY_MANIFEST:
            result[path.relative_to(root).as_posix()] = _sha256(path)
    return result


def checksum_problem(root: Path, recorded: Mapping[str, str]) -> str | None:
    """The first difference between the files below ``root`` and ``recorded``, or ``None``."""
    actual = checksums(root)
    for name, digest in sorted(recorded.items()):
        if name not in actual:
            return f"{name} is missing"
        if actual[name] != digest:
            return f"{name} has SHA-256 {actual[name][:16]}..., {digest[:16]}... at export"
    extra = sorted(set(actual) - set(recorded))
    if extra:
        return f"{extra[0]} was not in the export"
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- export ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exported:
    """One exported entry: its key, its size in bytes, the base layers left out."""

    key: str
    bytes: int
    layers_left_out: int


def export(
    cache: CacheStore,
    engine: Engine,
    target: Path,
    *,
    keys: list[str] | None = None,
    criu_binary: str = "criu",
) -> list[Exported]:
    """Export the cache's entries (or those of ``keys``) to directory or tar file ``target``."""
    entries = {entry.name: entry for entry in cache.entries()}
    wanted = keys if keys else sorted(entries)
    missing = [key for key in wanted if key not in entries]
    if missing:
        raise TransferError(
            f"no cache entry {missing[0]!r} in {cache.directory} (entries: "
            f"{', '.join(sorted(entries)) or 'none'}); run the suite with --criu-cache first"
        )
    if not wanted:
        raise TransferError(
            f"the cache in {cache.directory} is empty; run the suite with --criu-cache first"
        )
    here = host_facts(engine, criu_binary)
    archive = target.name.endswith(ARCHIVE_SUFFIXES)
    if target.exists() and (archive or not target.is_dir() or any(target.iterdir())):
        raise TransferError(f"{target} exists; remove it or choose another path")
    created = not target.exists()
    with _scratch(target.parent if archive else None) as scratch:
        root = scratch if archive else private_directory(target)
        try:
            exported = [
                _export_entry(entries[key], root / key, engine, here, criu_binary) for key in wanted
            ]
            write_json(root / INDEX, {"format": FORMAT, "entries": wanted, "host": asdict(here)})
        except BaseException:
            # No half export is left behind (an archive's scratch goes anyway).
            if not archive and created:
                shutil.rmtree(target, ignore_errors=True)
            elif not archive:
                _empty(target)
            raise
        if archive:
            _pack(root, target)
    return exported


def _empty(directory: Path) -> None:
    for child in directory.iterdir():
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink()


def _export_entry(
    entry: Path, out: Path, engine: Engine, here: HostFacts, criu_binary: str
) -> Exported:
    data = json.loads((entry / MANIFEST).read_text())
    provenance = data.get(PROVENANCE)
    if not provenance:
        raise TransferError(
            f"cache entry {entry.name} was made by an older pytest-criu and does not record "
            "what its key covers; run the suite with --criu-cache-clear --criu-cache once"
        )
    snapshot = Snapshot.from_json(data)
    damage = snapshot.damage()
    if damage is not None:
        raise TransferError(
            f"cache entry {entry.name} is damaged ({damage}); it would restore nowhere: run the "
            "suite with --criu-cache-clear --criu-cache to prepare it again"
        )
    private_directory(out)
    _copy_private(Path(snapshot.checkpoint), out / CHECKPOINT)
    left_out = 0
    if snapshot.image:
        base = str(provenance["parts"]["image"])
        left_out = _save_without_base(engine, snapshot.image, base, out / IMAGE_ARCHIVE)
    _criu(criu_binary, ["cpuinfo", "dump", "-D", str(out)])
    make_private(out)
    fields = {k: v for k, v in snapshot.to_json().items() if k not in ("checkpoint", "source")}
    manifest = {
        "format": FORMAT,
        "key": entry.name,
        "snapshot": fields,
        PROVENANCE: provenance,
        "host": asdict(here),
        "layers_left_out": left_out,
        "checksums": checksums(out),
        "exported_at": time.time(),
    }
    write_json(out / ENTRY_MANIFEST, manifest)
    size = sum(path.stat().st_size for path in out.rglob("*") if path.is_file())
    return Exported(entry.name, size, left_out)


def _save_without_base(engine: Engine, image: str, base: str, target: Path) -> int:
    """``docker save`` ``image`` into ``target``, minus the layers it shares with ``base``.

    ``docker load`` looks a layer up by its chain before reading its file, so a daemon that
    has the base image needs only the layers ``prepare`` added. Returns how many were left out.
    """
    base_layers = engine.image_layers(base) if engine.image_exists(base) else []
    with tempfile.TemporaryFile(dir=target.parent) as saved:
        engine.save_image(image, saved)
        saved.seek(0)
        with tarfile.open(fileobj=saved, mode="r:") as source:
            manifest = json.loads(_member_bytes(source, "manifest.json"))[0]
            config = json.loads(_member_bytes(source, str(manifest["Config"])))
            diff_ids = list(config["rootfs"]["diff_ids"])
            layers = list(manifest["Layers"])
            shared = 0
            while shared < min(len(base_layers), len(diff_ids)) and (
                base_layers[shared] == diff_ids[shared]
            ):
                shared += 1
            dropped = set(layers[:shared]) - set(layers[shared:])
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w:") as packed:
                for member in source.getmembers():
                    if member.name in dropped:
                        continue
                    stream = source.extractfile(member) if member.isfile() else None
                    packed.addfile(member, stream)
    return len(dropped)


def _member_bytes(archive: tarfile.TarFile, name: str) -> bytes:
    stream = archive.extractfile(name)
    if stream is None:
        raise TransferError(f"the engine's image archive has no file {name}")
    return stream.read()


def _copy_private(source: Path, target: Path) -> None:
    target.mkdir(mode=0o700)
    for path in sorted(source.rglob("*")):
        destination = target / path.relative_to(source)
        if path.is_dir():
            destination.mkdir(mode=0o700)
        elif path.is_file():
            fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out, path.open("rb") as stream:
                shutil.copyfileobj(stream, out, 1 << 20)


def _pack(root: Path, target: Path) -> None:
    """Write ``root``'s files as a tar (gzip for .gz/.tgz) that only its owner can read."""
    # Level 1: 39.5 MB of Redis checkpoint became 5.3 MB in 2.7 s here; level 9, 4.6 MB in 16 s.
    options: dict[str, Any] = (
        {"mode": "w:gz", "compresslevel": 1}
        if target.name.endswith((".gz", ".tgz"))
        else {"mode": "w:"}
    )
    scratch = target.with_name(f".{target.name}.{os.getpid()}")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, **options) as packed:
            for path in sorted(root.rglob("*")):
                info = packed.gettarinfo(str(path), path.relative_to(root).as_posix())
                info.mode = 0o700 if info.isdir() else 0o600
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if info.isfile():
                    with path.open("rb") as stream:
                        packed.addfile(info, stream)
                else:
                    packed.addfile(info)
        scratch.replace(target)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise


# -- import ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Imported:
    """One entry of an import: its key where it was made, here, and why it was refused."""

    key: str
    local_key: str | None
    made_on: str
    refused: str | None = None


def import_snapshots(
    source: Path, cache: CacheStore, engine: Engine, *, criu_binary: str = "criu"
) -> list[Imported]:
    """Import an export (directory or tar file) into ``cache``; refusals are listed."""
    here = host_facts(engine, criu_binary)
    with _scratch(cache.directory if source.is_file() else None) as scratch:
        root = source
        if source.is_file():
            _unpack(source, scratch)
            root = scratch
        try:
            index = json.loads((root / INDEX).read_text())
        except (OSError, ValueError) as error:
            raise TransferError(
                f"{source} is not a pytest-criu export (no readable {INDEX}: {error}); make "
                "one with `pytest-criu export`"
            ) from None
        if index.get("format") != FORMAT:
            raise TransferError(
                f"{source} has export format {index.get('format')!r}, this pytest-criu reads "
                f"{FORMAT}; use the same pytest-criu version on both sides"
            )
        owned = source.is_file()  # unpacked here: its files may be moved into the cache
        return [
            _import_entry(root / str(key), cache, engine, here, criu_binary, owned=owned)
            for key in index.get("entries") or []
        ]


def _import_entry(
    entry: Path,
    cache: CacheStore,
    engine: Engine,
    here: HostFacts,
    criu_binary: str,
    *,
    owned: bool,
) -> Imported:
    try:
        manifest = json.loads((entry / ENTRY_MANIFEST).read_text())
    except (OSError, ValueError) as error:
        return Imported(entry.name, None, "?", f"its {ENTRY_MANIFEST} is unreadable: {error}")
    made = HostFacts.from_json(manifest.get("host") or {})
    key = str(manifest.get("key") or entry.name)

    def refused(why: str) -> Imported:
        return Imported(key, None, made.describe(), why)

    if manifest.get("format") != FORMAT:
        return refused(f"export format {manifest.get('format')!r}, this pytest-criu reads {FORMAT}")
    problem = incompatibility(made, here)
    if problem is not None:
        return refused(problem)
    damage = checksum_problem(entry, manifest.get("checksums") or {})
    if damage is not None:
        return refused(
            f"the snapshot is damaged or was altered since its export: {damage}; export it again"
        )
    cpu = cpu_problem(criu_binary, entry)
    if cpu is not None:
        return refused(cpu)
    lock = network_lock_problem(criu_binary, entry / CHECKPOINT)
    if lock is not None:
        return refused(lock)
    try:
        provenance = dict(manifest[PROVENANCE])
        parts = dict(provenance["parts"])
        base = str(parts["image"])
        snapshot = dict(manifest["snapshot"])
    except (KeyError, TypeError, ValueError) as error:
        return refused(f"its {ENTRY_MANIFEST} lacks {error}; export it again")
    if not engine.image_exists(base):
        return refused(
            f"its base image {provenance.get('base_reference') or ''} ({base[:19]}) is not on "
            f"this {engine.title}; load the same image first (`docker save` | `docker load` "
            "keeps its id; a rebuilt image has another id and needs its own snapshot)"
        )
    if (entry / IMAGE_ARCHIVE).exists():
        held = _archived_image_id(entry / IMAGE_ARCHIVE)
        if held != snapshot.get("image"):
            # The cache removes an entry's image with the entry: it must be the one shipped.
            return refused(
                f"its manifest names image {str(snapshot.get('image'))[:19]} but {IMAGE_ARCHIVE} "
                f"holds {held[:19]}; export it again"
            )
        with (entry / IMAGE_ARCHIVE).open("rb") as archive:
            engine.load_image(archive)
        if not engine.image_exists(str(snapshot["image"])):
            return refused(f"loading {IMAGE_ARCHIVE} did not make image {snapshot['image'][:19]}")
    local_parts = rekeyed(parts, here.key_parts())
    local_key = cache_key(local_parts)

    def fill(scratch: Path) -> Mapping[str, Any]:
        if owned:
            (entry / CHECKPOINT).rename(scratch / CHECKPOINT)
            make_private(scratch / CHECKPOINT)
        else:
            _copy_private(entry / CHECKPOINT, scratch / CHECKPOINT)
        return {
            **snapshot,
            PROVENANCE: {**provenance, "parts": local_parts},
            IMPORTED: {"from": made.describe(), "key": key, "at": time.time()},
        }

    cache.add(local_key, fill)
    return Imported(key, local_key, made.describe())


def _archived_image_id(path: Path) -> str:
    """The id of the image a ``docker save`` archive holds: the digest of its config."""
    try:
        with tarfile.open(path, mode="r:") as archive:
            manifest = json.loads(_member_bytes(archive, "manifest.json"))[0]
            config = _member_bytes(archive, str(manifest["Config"]))
    except (tarfile.TarError, OSError, KeyError, IndexError, ValueError, TransferError):
        return "(no readable image)"
    return f"sha256:{hashlib.sha256(config).hexdigest()}"


def cpu_problem(criu_binary: str, directory: Path) -> str | None:
    """What ``criu cpuinfo check`` finds missing here against ``directory``'s cpuinfo.img."""
    if not (directory / CPUINFO).is_file():
        return f"it has no {CPUINFO} to check this CPU against; export it again"
    try:
        _criu(criu_binary, ["cpuinfo", "check", "-D", str(directory)])
    except TransferError as error:
        return f"this CPU lacks features of the one it was made on (criu cpuinfo check: {error})"
    return None


def network_lock_problem(criu_binary: str, checkpoint: Path) -> str | None:
    """Why this host's CRIU cannot lock the network the way ``checkpoint`` was made to be
    restored (CRIU restores with the dump's method), or ``None``."""
    try:
        method = criu_images.network_lock(_inventory(checkpoint))
    except (OSError, tarfile.TarError, criu_images.ImageError) as error:
        return f"its checkpoint is unreadable ({error}); export it again"
    if method != "nftables":
        return None
    try:
        _criu(criu_binary, list(criu_images.NFTABLES_LOCK_CHECK))
    except TransferError as error:
        return (
            "it was checkpointed with CRIU's nftables network lock, which this host's CRIU or "
            f"kernel cannot use ({error}); install a CRIU built with libnftables (sudo "
            "pytest-criu setup does) or prepare here"
        )
    return None


def _inventory(checkpoint: Path) -> bytes:
    """The ``inventory.img`` of a Docker checkpoint directory or of Podman's archive in one."""
    plain = checkpoint / criu_images.INVENTORY
    if plain.is_file():
        return plain.read_bytes()
    for archive in sorted(checkpoint.glob("*.tar*")):
        with tarfile.open(archive, mode="r:*") as tar:
            for member in tar:
                if member.isfile() and member.name.endswith("/" + criu_images.INVENTORY):
                    stream = tar.extractfile(member)
                    if stream is not None:
                        return stream.read()
    raise FileNotFoundError(f"no {criu_images.INVENTORY} in {checkpoint}")


def _criu(criu_binary: str, args: list[str]) -> str:
    try:
        completed = subprocess.run(
            [criu_binary, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CRIU_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise TransferError(f"cannot run {criu_binary} {' '.join(args)}: {error}") from None
    output = (completed.stdout + completed.stderr).strip()
    if completed.returncode != 0:
        lines = [line for line in output.splitlines() if line.strip()]
        raise TransferError(f"exit {completed.returncode}: {' / '.join(lines[-3:]) or 'no output'}")
    return output


def _unpack(archive: Path, target: Path) -> None:
    """Extract regular files and directories only, below ``target``, readable by us only."""
    try:
        with tarfile.open(archive, mode="r:*") as packed:
            for member in packed:
                name = Path(member.name)
                if (
                    name.is_absolute()
                    or ".." in name.parts
                    or not (member.isfile() or member.isdir())
                ):
                    raise TransferError(
                        f"{archive} holds {member.name!r}, which no pytest-criu export holds "
                        "(links, devices, absolute paths or '..'); refusing to unpack it"
                    )
                destination = target / name
                if member.isdir():
                    destination.mkdir(mode=0o700, parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                stream = packed.extractfile(member)
                fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(stream or io.BytesIO(), out, 1 << 20)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise TransferError(f"cannot read {archive} as a tar archive: {error}") from None


@contextlib.contextmanager
def _scratch(parent: Path | None) -> Iterator[Path]:
    """A private temporary directory under ``parent`` (``None``: nothing is needed)."""
    if parent is None:
        yield Path()
        return
    parent.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix=".pytest-criu-transfer-", dir=parent))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


__all__ = [
    "Exported",
    "HostFacts",
    "Imported",
    "checksum_problem",
    "checksums",
    "cpu_problem",
    "export",
    "host_facts",
    "import_snapshots",
    "incompatibility",
]
