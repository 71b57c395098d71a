"""Checkpoint files placed for a restore: hard-linked trees and the nonce file.

Docker uploads a checkpoint directory into containerd's content store keyed by its digest,
and refuses content that is already there (moby issue 42900): every placed checkpoint gets a
small file of unique content, which CRIU ignores.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

NONCE_FILE = "pytest-criu-nonce"


def write_nonce(checkpoint: Path, container_id: str, owner: str = "") -> None:
    """Write the file that makes each restore's content unique: ``<id> <owner> <uuid>``.

    ``owner`` (``pid-starttime`` of the owning pytest process) lets anyone tell whether
    containerd's unpacked copy of a restore belongs to a finished run.
    """
    nonce = checkpoint / NONCE_FILE
    with contextlib.suppress(FileNotFoundError):
        nonce.unlink()
    fd = os.open(nonce, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as stream:
        stream.write(f"{container_id} {owner or '-'} {uuid.uuid4()}\n")


def link_tree(source: Path, target: Path) -> None:
    """Recreate ``source`` at ``target`` with hard links (copies across file systems)."""
    target.mkdir(mode=0o700)
    for entry in _walk(source):
        relative = entry.relative_to(source)
        if relative.name == NONCE_FILE:
            continue
        destination = target / relative
        if entry.is_dir():
            destination.mkdir(mode=0o700)
            continue
        try:
            os.link(entry, destination)
        except OSError:
            shutil.copy2(entry, destination)


def _walk(root: Path) -> Iterator[Path]:
    for entry in sorted(root.iterdir()):
        yield entry
        if entry.is_dir() and not entry.is_symlink():
            yield from _walk(entry)
