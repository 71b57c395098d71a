"""User namespaces: what a container's mapping is, and checkpoints CRIU can read inside one.

Root on some hosts lacks CAP_SYS_RESOURCE, and CRIU then cannot dump a process that runs as
another uid (Postgres, the official Redis and MariaDB images). Inside a user namespace that
host root created, host root holds every capability, so the same dump works. Restoring it
needs checkpoint files the namespace's root can read: CRIU reads most images after it has
become that root (the host uid the namespace maps 0 to), but it reads ``timens-0.img`` in the
first restored task before the namespace's uid map is written, as host uid and gid 0.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CHECKPOINT_DIR = "checkpoint"
"""Where Podman's exported archive keeps CRIU's images."""
EARLY_IMAGES = frozenset({"timens-0.img"})
"""Images CRIU's first restored task reads before the namespace's uid map exists."""
PODMAN_CONFIG = "config.dump"


@dataclass(frozen=True)
class NamespaceRoot:
    """The host uid and gid that a container's user namespace maps its root to."""

    uid: int
    gid: int

    def __str__(self) -> str:
        return f"{self.uid}:{self.gid}"


def describe(uid_map: list[tuple[int, int, int]] | None) -> str | None:
    """A summary's words for a process's uid map; ``None`` for the host's own."""
    if not uid_map or uid_map == [(0, 0, 4294967295)]:
        return None
    root = next((outside for inside, outside, _ in uid_map if inside == 0), None)
    size = sum(count for _, _, count in uid_map)
    where = f"root is host uid {root}" if root is not None else "root is not mapped"
    return f"user namespace ({where}, {size} ids)"


def parse_mapping(entries: object) -> int | None:
    """The host id that container id 0 maps to, from ``["0:100000:65536", ...]``."""
    if not isinstance(entries, list):
        return None
    for entry in entries:
        parts = str(entry).split(":")
        if len(parts) == 3 and all(part.isdigit() for part in parts) and parts[0] == "0":
            return int(parts[1])
    return None


def namespace_root(id_mappings: Mapping[str, Any] | None) -> NamespaceRoot | None:
    """From an inspect answer's ``HostConfig.IDMappings``; ``None`` without a namespace."""
    if not id_mappings:
        return None
    uid = parse_mapping(id_mappings.get("UidMap"))
    gid = parse_mapping(id_mappings.get("GidMap"))
    if uid is None or gid is None:
        return None
    return NamespaceRoot(uid, gid)


def owned_for_restore(member: tarfile.TarInfo, root: NamespaceRoot) -> tarfile.TarInfo:
    """``member`` of a checkpoint archive, owned so that CRIU can restore it in ``root``'s
    namespace and nobody else can read it.

    The images directory and the early images belong to the namespace's root with group 0
    (host root's group, which CRIU's first task has before the uid map is written); every
    other image is the namespace root's alone.
    """
    path = member.name.lstrip("./")
    if path != CHECKPOINT_DIR and not path.startswith(CHECKPOINT_DIR + "/"):
        return member
    member.uname = member.gname = ""
    member.uid = root.uid
    if member.isdir():
        member.gid, member.mode = 0, 0o750
    elif path.removeprefix(CHECKPOINT_DIR + "/") in EARLY_IMAGES:
        member.gid, member.mode = 0, 0o640
    else:
        member.gid, member.mode = root.gid, 0o600
    return member


def pinned_config(data: bytes) -> bytes:
    """Podman's ``config.dump`` with an automatic mapping made fixed.

    An import re-allocates an ``auto`` namespace's range, which the archive's file owners
    could not follow; the checkpointed container's own range is kept instead.
    """
    config = json.loads(data)
    options = config.get("idMappingsOptions") or {}
    if not options.get("AutoUserNs"):
        return data
    options["AutoUserNs"] = False
    config["idMappingsOptions"] = options
    return json.dumps(config).encode()
