"""The fixture value of a warm container, and the container it points at."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from . import archive
from .ready import Health
from .spec import Port, PortLike

if TYPE_CHECKING:
    from .base import ContainerEngine


@dataclass(frozen=True)
class CurrentContainer:
    """A running container of a warm container: its id and where it can be reached."""

    id: str
    ports: Mapping[Port, int] = field(default_factory=dict)
    """Host port of each published container port (a joined container's holder's)."""
    address: str | None = None
    """Its own IP address on a bridge network, if it has one."""


RestoreListener = Callable[["ContainerHandle"], object]


class HandleSource(Protocol):
    """What a handle reads from the warm container behind it."""

    name: str
    host: str
    engine: ContainerEngine
    restores: int

    @property
    def current(self) -> CurrentContainer: ...

    @property
    def current_or_none(self) -> CurrentContainer | None: ...

    @property
    def tmpfs(self) -> Mapping[str, str]: ...

    def on_restore(self, callback: RestoreListener) -> None: ...


class ContainerHandle:
    """The fixture value of a warm container: always points at the current container."""

    def __init__(self, source: HandleSource) -> None:
        self._controller = source

    @property
    def name(self) -> str:
        """The fixture's name."""
        return self._controller.name

    @property
    def host(self) -> str:
        """The host to connect to for published ports."""
        return self._controller.host

    @property
    def id(self) -> str:
        """The id of the current container (changes with every fresh restore)."""
        return self._controller.current.id

    @property
    def restores(self) -> int:
        """How many times the container was reset so far; reconnect when it changes."""
        return self._controller.restores

    def port(self, container_port: PortLike) -> int:
        """The host port the current container's ``container_port`` is published on."""
        port = Port.parse(container_port, where="port()")
        ports = self._controller.current.ports
        try:
            return ports[port]
        except KeyError:
            published = sorted(str(p) for p in ports) or "none"
            raise KeyError(
                f"{self.name}: container port {port} is not published; published: {published}; "
                f"add it to warm_container(ports=[...])"
            ) from None

    def address(self, container_port: PortLike) -> tuple[str, int]:
        """``(host, port)`` for ``container_port``, ready for ``socket.create_connection``."""
        return self.host, self.port(container_port)

    def container_address(self) -> str | None:
        """The container's own IP address on its bridge network, if it has one."""
        return self._controller.current.address

    def host_path(self, path: str) -> str:
        """Where this host sees ``path`` of the current container (``/proc/PID/root/...``).

        For a unix socket a service listens on when the container has no network (on Podman,
        a container restored in a user namespace has none). Needs the engine on this host.
        An absolute symbolic link on the way (``/var/run`` -> ``/run``) resolves on the host:
        give the path it points to.
        """
        if not isinstance(path, str) or not path.startswith("/"):
            raise ValueError(f"host_path: {path!r} is not an absolute path in the container")
        if self.host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(
                f"host_path: the engine runs on {self.host}, not on this host; its containers' "
                "files are not reachable here"
            )
        info = self._controller.engine.inspect(self.id)
        pid = int((info.get("State") or {}).get("Pid") or 0)
        if pid <= 0:
            raise ValueError(f"host_path: container {self.id[:12]} is not running")
        return f"/proc/{pid}/root{posixpath.normpath(path)}"

    def exec(self, argv: Sequence[str], *, user: str | None = None) -> tuple[int, str]:
        """Run ``argv`` in the current container; return its exit code and combined output."""
        if isinstance(argv, str):
            raise TypeError(f"exec() takes a list of arguments, not the string {argv!r}")
        return self._controller.engine.exec(self.id, argv, user=user)

    def logs(self, tail: int | None = None) -> str:
        """The current container's output (stdout and stderr), or its last ``tail`` lines."""
        return self._controller.engine.logs(self.id, tail="all" if tail is None else tail)

    def copy_into(self, source: str | os.PathLike[str], destination: str) -> str:
        """Copy a host file or directory into the current container; return the path made.

        As ``cp -r``: into ``destination`` if it is an existing directory, else to that path
        (its directory must exist). Copies belong to root and keep their modes. Made in
        ``prepare``, they are part of the snapshot; tmpfs mounts are refused (Docker's
        archive API cannot reach them).
        """
        return archive.copy_into(
            self._controller.engine,
            self.id,
            source,
            destination,
            tmpfs=self._controller.tmpfs,
            what=f"{self.name}: copy_into",
        )

    def health(self) -> Health | None:
        """The engine's health-check state of the current container (``None``: it has none).

        Meaningful before the checkpoint; after a restore Docker reports ``starting`` until
        its next check and Podman the state saved in the checkpoint.
        """
        return self._controller.engine.health(self.id)

    def on_restore(self, callback: RestoreListener) -> None:
        """Call ``callback(handle)`` after every reset, e.g. to reconnect a client."""
        self._controller.on_restore(callback)

    def __repr__(self) -> str:
        current = self._controller.current_or_none
        where = f"id={current.id[:12]}" if current else "no container"
        return f"<ContainerHandle {self.name} {where} restores={self.restores}>"
