"""Labels on everything pytest-criu creates, and reaping what crashed runs left behind."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from . import procfs

PREFIX = "io.pytest-criu"
SESSION = f"{PREFIX}.session"
OWNER_PID = f"{PREFIX}.owner-pid"
OWNER_START = f"{PREFIX}.owner-start"
OWNER_HOST = f"{PREFIX}.owner-host"
OWNER_PIDNS = f"{PREFIX}.owner-pidns"
FIXTURE = f"{PREFIX}.fixture"
ROLE = f"{PREFIX}.role"
CACHE = f"{PREFIX}.cache"
# Committed images inherit their container's labels, session included; only those whose
# role says "snapshot" belong to a session (a cache entry's image says "cache").
SNAPSHOT_IMAGE = f"{ROLE}=snapshot"


@dataclass(frozen=True)
class Owner:
    """The process that owns a session's resources; they live as long as it does."""

    session: str
    pid: int
    start: str
    host: str
    pidns: str = ""

    @classmethod
    def current(cls, session: str | None = None, pid: int | None = None) -> Owner:
        pid = os.getpid() if pid is None else pid
        return cls(
            session=session or uuid.uuid4().hex[:16],
            pid=pid,
            start=procfs.start_time(pid) or "",
            host=socket.gethostname(),
            pidns=procfs.pid_namespace(),
        )

    @property
    def nonce(self) -> str:
        """The owner as written into checkpoint nonce files: ``pid-starttime``."""
        return f"{self.pid}-{self.start}"

    def labels(self, fixture: str, role: str) -> dict[str, str]:
        return {
            SESSION: self.session,
            OWNER_PID: str(self.pid),
            OWNER_START: self.start,
            OWNER_HOST: self.host,
            OWNER_PIDNS: self.pidns,
            FIXTURE: fixture,
            ROLE: role,
        }


NAME_PREFIX = "pytest-criu"
_NAMED_OWNER = re.compile(
    rf"^{NAME_PREFIX}\.(?P<session>[\w-]+)\.(?P<pid>\d+)\.(?P<start>\d*)\.(?P<pidns>\d*)"
    r"\.(?P<role>[a-z]+)\.[0-9a-f]+$"
)


def owner_name(labels: Mapping[str, str]) -> str:
    """A unique container name that records the owner in ``labels``.

    For engines that cannot relabel a restored container (Podman's import keeps the
    labels of the container that was checkpointed, perhaps by an earlier run).
    """
    session = re.sub(r"[^\w-]", "-", labels.get(SESSION, "")) or "-"
    pidns = re.sub(r"\D", "", labels.get(OWNER_PIDNS, ""))
    role = re.sub(r"[^a-z]", "", labels.get(ROLE, "")) or "restored"
    return (
        f"{NAME_PREFIX}.{session}.{labels.get(OWNER_PID, '0')}.{labels.get(OWNER_START, '')}"
        f".{pidns}.{role}.{uuid.uuid4().hex[:12]}"
    )


def owner_from_name(name: str) -> dict[str, str]:
    """The owner labels a name made by :func:`owner_name` records (``{}`` for other names)."""
    match = _NAMED_OWNER.match(name)
    if match is None:
        return {}
    return {
        SESSION: match["session"],
        OWNER_PID: match["pid"],
        OWNER_START: match["start"],
        OWNER_PIDNS: f"pid:[{match['pidns']}]" if match["pidns"] else "",
        ROLE: match["role"],
    }


def owner_alive(labels: dict[str, str]) -> bool:
    """Whether the process that created a labelled object still runs (or may, elsewhere)."""
    if labels.get(OWNER_HOST) != socket.gethostname():
        return True  # another host's run; not ours to judge
    if labels.get(OWNER_PIDNS, "") != procfs.pid_namespace():
        return True  # a run in another container or sandbox: its pids are not ours to see
    try:
        pid = int(labels.get(OWNER_PID, ""))
    except ValueError:
        return False
    return procfs.start_time(pid) == labels.get(OWNER_START)


class Reapable(Protocol):
    def containers(self, label: str) -> list[dict[str, Any]]: ...

    def images(self, *labels: str) -> list[dict[str, Any]]: ...

    def remove(self, container_id: str) -> None: ...

    def remove_image(self, image_id: str) -> None: ...


def reap_orphans(engine: Reapable, keep_sessions: Iterable[str] = ()) -> tuple[int, int]:
    """Remove containers and images of runs whose owner process is gone.

    Returns how many containers and images were removed.
    """
    keep = set(keep_sessions)
    containers = images = 0
    for container in engine.containers(SESSION):
        labels = container.get("Labels") or {}
        if labels.get(SESSION) not in keep and not owner_alive(labels):
            engine.remove(container["Id"])
            containers += 1
    for image in engine.images(SESSION, SNAPSHOT_IMAGE):
        labels = image.get("Labels") or {}
        if labels.get(SESSION) not in keep and not owner_alive(labels):
            with contextlib.suppress(Exception):
                engine.remove_image(image["Id"])
                images += 1
    return containers, images


def remove_session(engine: Reapable, session: str, keep: Iterable[str] = ()) -> tuple[int, int]:
    """Remove every container (but those in ``keep``) and image labelled with ``session``."""
    label = f"{SESSION}={session}"
    kept = set(keep)
    containers = [c for c in engine.containers(label) if c["Id"] not in kept]
    for container in containers:
        engine.remove(container["Id"])
    images = engine.images(label, SNAPSHOT_IMAGE)
    for image in images:
        with contextlib.suppress(Exception):
            engine.remove_image(image["Id"])
    return len(containers), len(images)
