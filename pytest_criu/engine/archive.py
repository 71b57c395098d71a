"""Copying host files into a container through the engines' archive API."""

from __future__ import annotations

import io
import os
import posixpath
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

_GO_MODE_DIR = 1 << 31
"""Go's ``os.ModeDir`` bit, as the archive API reports a path's mode."""


class ArchiveEngine(Protocol):
    """The two archive calls :func:`copy_into` makes."""

    def path_stat(self, container_id: str, path: str) -> dict[str, object] | None: ...

    def put_archive(self, container_id: str, directory: str, archive: bytes) -> None: ...


def copy_into(
    engine: ArchiveEngine,
    container_id: str,
    source: str | os.PathLike[str],
    destination: str,
    *,
    tmpfs: Iterable[str] = (),
    what: str = "copy_into",
) -> str:
    """Copy ``source`` (a host file or directory) to ``destination``; return the path made.

    As ``cp -r``: into ``destination`` when that is an existing directory, else to that
    path, whose directory must exist. Copies belong to root and keep their modes.
    """
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{what}: {str(source)!r} does not exist on the host")
    if not isinstance(destination, str) or not destination.startswith("/"):
        raise ValueError(
            f"{what}: destination {destination!r} must be an absolute path in the container"
        )
    destination = posixpath.normpath(destination)
    for mount in tmpfs:
        if destination == mount or destination.startswith(mount.rstrip("/") + "/"):
            raise ValueError(
                f"{what}: {destination} is on the tmpfs mount {mount}; Docker's archive API "
                "writes beneath tmpfs mounts, where the container cannot see the files. Copy "
                "to a directory outside tmpfs, or write there with handle.exec([...])"
            )
    stat = engine.path_stat(container_id, destination)
    if stat is not None and _is_dir(stat):
        directory, name = destination, path.resolve().name
    else:
        directory, name = posixpath.split(destination)
        parent = engine.path_stat(container_id, directory)
        if parent is None or not _is_dir(parent):
            raise FileNotFoundError(
                f"{what}: the destination directory {directory} does not exist in the "
                f"container; create it first (handle.exec(['mkdir', '-p', {directory!r}])) "
                "or copy to an existing directory"
            )
    engine.put_archive(container_id, directory, tar_of(path, name))
    return posixpath.join(directory, name)


def tar_of(path: Path, name: str) -> bytes:
    """A tar of ``path`` (recursively) under the name ``name``, owned by root."""

    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(path, arcname=name, recursive=True, filter=as_root)
    return buffer.getvalue()


def _is_dir(stat: dict[str, object]) -> bool:
    if "isDir" in stat:
        return bool(stat["isDir"])
    mode = stat.get("mode")
    return isinstance(mode, int) and bool(mode & _GO_MODE_DIR)
