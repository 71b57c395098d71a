"""Podman's exported checkpoint archive, repaired so that an import restores what was dumped.

- Podman's ``rootfs-diff.tar`` carries the files a container added or changed, but not the
  directories that were there already and only changed their mode or owner: Postgres's
  entrypoint turns the image's ``/var/lib/postgresql/data`` (1777, as Docker Hub's image
  makes it) into 0700, an import brings back 1777, and CRIU refuses the server's working
  directory ("has bad mode 041777 (expect 040700)"). Such directories are added, with the
  mode, owner and time they had at checkpoint time.
- In a user namespace, CRIU's images must be readable inside it, and the namespace's range
  must stay the one the images' owners name (see :mod:`.userns`).
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from . import userns

ROOTFS_DIFF = "rootfs-diff.tar"
_MODIFIED = 0
"""``Kind`` of a changed path in Podman's ``/changes`` answer (1: added, 2: deleted)."""


@dataclass(frozen=True)
class Directory:
    """A directory of the image whose mode or owner the container changed."""

    path: str
    """Relative to the container's root, as in ``rootfs-diff.tar`` (``var/lib/x``)."""
    mode: int
    uid: int
    gid: int
    mtime: float

    def tar_info(self) -> tarfile.TarInfo:
        info = tarfile.TarInfo(self.path)
        info.type = tarfile.DIRTYPE
        info.mode, info.uid, info.gid, info.mtime = self.mode, self.uid, self.gid, self.mtime
        return info


def changed_directories(changes: Iterable[Mapping[str, Any]], root: Path) -> list[Directory]:
    """The modified directories among Podman's ``changes``, seen through ``root`` (the
    container's ``/proc/PID/root``); mount points are left out (not part of the layer)."""
    try:
        device = root.stat().st_dev
    except OSError:
        return []
    found = []
    for change in changes:
        path = str(change.get("Path") or "").strip("/")
        if change.get("Kind") != _MODIFIED or not path:
            continue
        try:
            seen = os.lstat(root / path)
        except OSError:
            continue
        if stat.S_ISDIR(seen.st_mode) and seen.st_dev == device:
            found.append(
                Directory(path, stat.S_IMODE(seen.st_mode), seen.st_uid, seen.st_gid, seen.st_mtime)
            )
    return found


def rewrite(
    source: IO[bytes],
    target: IO[bytes],
    *,
    root: userns.NamespaceRoot | None,
    directories: Sequence[Directory],
    scratch: Path,
) -> None:
    """Copy the archive from ``source`` to ``target`` (both streams) with ``directories`` in
    its ``rootfs-diff.tar`` and, in ``root``'s namespace, images CRIU can read there.
    ``scratch`` is a private directory for the rebuilt inner archive."""
    with (
        tarfile.open(fileobj=source, mode="r|") as reading,
        tarfile.open(fileobj=target, mode="w|", format=tarfile.PAX_FORMAT) as writing,
    ):
        for member in reading:
            content: IO[bytes] | None = reading.extractfile(member) if member.isfile() else None
            name = member.name.lstrip("./")
            if content is not None and name == userns.PODMAN_CONFIG and root is not None:
                data = userns.pinned_config(content.read())
                member.size, content = len(data), io.BytesIO(data)
            if content is not None and name == ROOTFS_DIFF and directories:
                with tempfile.TemporaryFile(dir=scratch) as rebuilt:
                    _with_directories(content, rebuilt, directories)
                    member.size = rebuilt.tell()
                    rebuilt.seek(0)
                    writing.addfile(member, rebuilt)
                continue
            writing.addfile(userns.owned_for_restore(member, root) if root else member, content)


def _with_directories(
    source: IO[bytes], target: IO[bytes], directories: Sequence[Directory]
) -> None:
    """``source`` (a tar) copied to ``target`` with an entry for each of ``directories`` that
    it lacks, written last so that extraction leaves their mode as it was."""
    with (
        tarfile.open(fileobj=source, mode="r|") as reading,
        tarfile.open(fileobj=target, mode="w|", format=tarfile.PAX_FORMAT) as writing,
    ):
        present = set()
        for member in reading:
            present.add(member.name.strip("/").removeprefix("./"))
            writing.addfile(member, reading.extractfile(member) if member.isfile() else None)
        for directory in directories:
            if directory.path not in present:
                writing.addfile(directory.tar_info())


def copy_plain(source: IO[bytes], target: IO[bytes]) -> None:
    """Copy an archive that needs no repair."""
    shutil.copyfileobj(source, target, 1 << 20)
