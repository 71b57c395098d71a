"""The interface both engines share: containers, their ports, checkpoint and restore.

Creating, inspecting and removing containers is common code; checkpoint and restore are not
(Docker keeps checkpoint directories it restores with ``start?checkpoint=``, Podman exports
archives it imports), so each engine implements :class:`ContainerEngine`'s abstract part.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors

from . import create_options as creating
from .api import EngineApi, error_text
from .errors import EngineError
from .images import ImageCalls
from .inside import InsideCalls, read_frames
from .spec import ContainerSpec, Port

__all__ = [
    "ContainerConfig",
    "ContainerEngine",
    "EngineApi",
    "Lap",
    "RestoreRequest",
    "error_text",
    "read_frames",
]

Lap = Callable[[str], None]
"""Called with a phase name when that phase of a restore ends (for the timing summary)."""


@dataclass(frozen=True)
class ContainerConfig:
    """A container to create: the user's spec plus what the plugin adds."""

    spec: ContainerSpec
    image: str
    labels: Mapping[str, str]
    tmpfs: Mapping[str, str] = field(default_factory=dict)
    host_ip: str = "127.0.0.1"
    name: str | None = None


@dataclass(frozen=True)
class RestoreRequest:
    """One restore of a checkpoint into a new container."""

    config: ContainerConfig
    checkpoint: Path
    """The checkpoint directory (Docker) or exported archive (Podman)."""
    name: str
    """The checkpoint's name."""
    owner: str
    """The owning pytest process (``pid-starttime``), written into what the restore leaves."""
    created: Callable[[str], None]
    lap: Lap
    keep: bool = False


class ContainerEngine(ImageCalls, InsideCalls):
    """A container engine: the calls both answer alike, and checkpoint/restore each its own."""

    def create(self, config: ContainerConfig) -> str:
        spec = config.spec
        ports: list[tuple[int, str]] = [(port.number, port.protocol) for port in spec.ports]
        try:
            host_config = self.api.create_host_config(
                port_bindings={f"{port}": (config.host_ip, None) for port in spec.ports} or None,
                tmpfs=dict(config.tmpfs) or None,
                binds=dict(_binds(spec.volumes)) or None,
                network_mode=spec.network_mode,
                init=False,
                **creating.host_options(spec.create_options),
            )
        except docker.errors.DockerException as error:
            # e.g. an option this engine's API version does not know yet
            raise EngineError(f"create_options: {self.title} refused them: {error}") from None
        userns_mode = self.userns_mode(spec.userns)
        if userns_mode is not None:
            host_config["UsernsMode"] = userns_mode
        try:
            created = self.api.create_container(
                image=config.image,
                command=list(spec.command) if spec.command else None,
                entrypoint=list(spec.entrypoint) if spec.entrypoint else None,
                environment=spec.environment_list() or None,
                ports=ports or None,
                working_dir=spec.working_dir,
                user=spec.user,
                labels=dict(config.labels),
                host_config=host_config,
                name=config.name,
                tty=False,
                stdin_open=False,
                **creating.container_options(spec.create_options),
            )
        except docker.errors.APIError as error:
            raise EngineError(
                spec.redact(f"cannot create a container from {config.image}: {error.explanation}")
            ) from None
        return str(created["Id"])

    def userns_mode(self, mode: str | None) -> str | None:
        """The ``UsernsMode`` that gives a container the user namespace ``userns=`` asks for.

        Docker makes user namespaces only daemon-wide (``userns-remap``): ``auto`` leaves the
        choice to the daemon, ``host`` opts a container out of a remapped daemon's.
        """
        return "host" if mode == "host" else None

    def start(self, container_id: str) -> None:
        self._call("start the container", self.api.start, container_id)

    def inspect(self, container_id: str) -> dict[str, Any]:
        return self._call("inspect the container", self.api.inspect_container, container_id)  # type: ignore[no-any-return]

    def remove(self, container_id: str) -> None:
        """Remove a container with its anonymous volumes (and checkpoints)."""
        with contextlib.suppress(docker.errors.NotFound):
            self.api.remove_container(container_id, force=True, v=True)

    def kill(self, container_id: str) -> None:
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            self.api.kill(container_id)
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            self.api.wait(container_id, timeout=30)

    def containers(self, label: str) -> list[dict[str, Any]]:
        return (
            self._call("list containers", self.api.containers, all=True, filters={"label": label})
            or []
        )

    def published_ports(self, info: Mapping[str, Any]) -> dict[Port, int]:
        """Host ports of a container's published ports, from an inspect result."""
        result: dict[Port, int] = {}
        for key, bindings in (info.get("NetworkSettings", {}).get("Ports") or {}).items():
            if not bindings:
                continue
            number, _, protocol = key.partition("/")
            for binding in bindings:
                if binding.get("HostPort"):
                    result[Port(int(number), protocol or "tcp")] = int(binding["HostPort"])
                    break
        return result

    def address(self, info: Mapping[str, Any]) -> str | None:
        """The container's own IP address, when it has one on a local bridge network."""
        settings = info.get("NetworkSettings", {})
        if settings.get("IPAddress"):
            return str(settings["IPAddress"])
        for network in (settings.get("Networks") or {}).values():
            if network.get("IPAddress"):
                return str(network["IPAddress"])
        return None

    @abc.abstractmethod
    def checkpoint(self, container_id: str, name: str) -> None:
        """Dump the running container with CRIU and stop it; on failure explain why."""

    @abc.abstractmethod
    def checkpoint_dir(self, container_id: str, name: str) -> Path:
        """The private directory holding checkpoint ``name`` of ``container_id``."""

    @abc.abstractmethod
    def snapshot_image(self, container_id: str, labels: Mapping[str, str]) -> str:
        """The id of an image of the checkpointed container's files, or ``""``.

        ``""`` means the checkpoint itself carries the container's file changes.
        """

    # -- checkpoint and restore: each engine's own ------------------------------------------

    @abc.abstractmethod
    def restore_new(self, request: RestoreRequest) -> str:
        """Restore ``request.checkpoint`` into a new container made from ``request.config``;
        return its id.

        ``request.created`` is told the new container's id as soon as there is one, so that
        the caller can remove it should the restore fail. ``request.keep`` leaves the
        checkpoint with the container for :meth:`restore_in_place`.
        """

    stages_restores = False
    """Whether a restore into a new container splits into :meth:`stage_restore` (create the
    container, place the checkpoint: work that can be done ahead) and :meth:`restore_staged`."""

    def stage_restore(self, request: RestoreRequest) -> str:
        """Create the container :meth:`restore_staged` restores ``request`` into; its id."""
        raise NotImplementedError(f"{self.name} restores into a new container in one call")

    def restore_staged(self, container_id: str, request: RestoreRequest) -> None:
        """Restore ``request.checkpoint`` into the container :meth:`stage_restore` made."""
        raise NotImplementedError(f"{self.name} restores into a new container in one call")

    @abc.abstractmethod
    def restore_in_place(self, container_id: str, name: str, *, owner: str, lap: Lap) -> None:
        """Kill ``container_id`` and restore it again from its own checkpoint ``name``."""

    def tidy_after_restore(self, container_id: str) -> None:
        """Clean up after a restore in place; called in the background (nothing here)."""

    def reap_leftovers(self) -> int:
        """Delete what crashed runs left outside containers and images; count it."""
        return 0


def _binds(volumes: Mapping[str, str]) -> Iterator[tuple[str, dict[str, str]]]:
    for source, target in volumes.items():
        path, _, mode = target.partition(":")
        yield source, {"bind": path, "mode": mode or "rw"}
