"""Podman's REST API: the Docker-compatible endpoints plus ``/libpod`` checkpoint and restore.

A checkpoint is exported as one archive (CRIU images, the container's file changes, its
config) into a private directory inside the source container's own data directory, so it
goes when that container goes. Restoring imports the archive into a new container under a
new name with freshly published ports; in place, a container keeps its checkpoint and is
restored again after being killed. What Podman versions answer differently in the calls
shared with Docker is repaired in :mod:`.podman_workarounds`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import docker.errors
import requests

from . import criu_log, podman_archive, procfs, userns
from . import labels as labelling
from .base import Lap, RestoreRequest, error_text
from .errors import CheckpointError, EngineError, RestoreError
from .podman_workarounds import LIBPOD_VERSION, PodmanWorkarounds

__all__ = ["ARCHIVE", "CRIU_OPTIONS", "DEFAULT_URL", "LIBPOD_VERSION", "PodmanEngine"]

DEFAULT_URL = "unix:///run/podman/podman.sock"
ARCHIVE = "checkpoint.tar"
#: Podman must restore established TCP connections and file locks as the Docker path does
#: through /etc/criu/runc.conf; the API takes them per call.
CRIU_OPTIONS = {"tcpEstablished": "true", "fileLocks": "true"}


class PodmanEngine(PodmanWorkarounds):
    """A connection to a rootful ``podman system service``."""

    name = "podman"
    title = "Podman"
    start_hint = "start `podman system service` (sudo pytest-criu setup --engine podman does)"

    def __init__(self, base_url: str | None = None, timeout: float = 120.0) -> None:
        super().__init__(base_url or self.default_url(), timeout)
        self._imported_at: dict[str, float] = {}

    @classmethod
    def default_url(cls) -> str:
        configured = os.environ.get("CONTAINER_HOST", "")
        return configured if configured.startswith("unix://") else DEFAULT_URL

    def logs(
        self, container_id: str, *, tail: int | Literal["all"] = "all", since: float | None = None
    ) -> str:
        """As Docker's: an imported container's log starts at its restore.

        Podman's archive carries the checkpointed container's log, which an import restores;
        a restored process never printed those lines.
        """
        imported = self._imported_at.get(container_id)
        if since is None and imported is not None:
            since = imported
        return super().logs(container_id, tail=tail, since=since)

    def remove(self, container_id: str) -> None:
        """As :class:`PodmanWorkarounds`'s; an imported container's restore time goes too."""
        super().remove(container_id)
        self._imported_at.pop(container_id, None)

    # -- ownership ------------------------------------------------------------------------

    def containers(self, label: str) -> list[dict[str, Any]]:
        """Containers carrying ``label``, with the owner their name records when they have one.

        An imported container keeps the labels of the container that was checkpointed
        (Podman cannot relabel it), so restored containers carry their owner in their name.
        """
        key, has_value, value = label.partition("=")
        found = super().containers(key)
        result = []
        for container in found:
            labels = dict(container.get("Labels") or {})
            for name in container.get("Names") or []:
                labels.update(labelling.owner_from_name(str(name).lstrip("/")))
            if not has_value or labels.get(key) == value:
                result.append({**container, "Labels": labels})
        return result

    # -- checkpoint and restore -----------------------------------------------------------

    def checkpoint(self, container_id: str, name: str) -> None:
        target = self.checkpoint_dir(container_id, name)
        target.parent.mkdir(mode=0o700, exist_ok=True)
        target.mkdir(mode=0o700, exist_ok=True)
        params = {"export": "true", "ignoreVolumes": "true", **CRIU_OPTIONS}
        info = self._libpod_inspect(container_id)
        root = userns.namespace_root((info.get("HostConfig") or {}).get("IDMappings"))
        directories = self._changed_directories(container_id, info)
        try:
            response = self.api.post(
                self._libpod(f"/containers/{container_id}/checkpoint"),
                params=params,
                stream=True,
                timeout=self.timeout,
            )
        except requests.exceptions.RequestException as error:
            raise CheckpointError(
                f"Podman did not answer the checkpoint within {self.timeout:g}s: {error}"
            ) from None
        with contextlib.closing(response):
            if response.status_code >= 300:
                log = self._userdata_file(container_id, "dump.log")
                raise criu_log.checkpoint_error(error_text(response), log, engine=self.name)
            fd = os.open(target / ARCHIVE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            response.raw.decode_content = True
            with os.fdopen(fd, "wb") as archive:
                if root is None and not directories:
                    podman_archive.copy_plain(response.raw, archive)
                else:
                    podman_archive.rewrite(
                        response.raw, archive, root=root, directories=directories, scratch=target
                    )

    def _libpod_inspect(self, container_id: str) -> dict[str, Any]:
        response = self.api.get(self._libpod(f"/containers/{container_id}/json"))
        if response.status_code >= 300:
            raise EngineError(f"Podman could not inspect {container_id}: {error_text(response)}")
        return dict(response.json())

    def _changed_directories(
        self, container_id: str, info: Mapping[str, Any]
    ) -> list[podman_archive.Directory]:
        """The image's directories the running container changed (see :mod:`.podman_archive`)."""
        pid = int((info.get("State") or {}).get("Pid") or 0)
        response = self.api.get(self._libpod(f"/containers/{container_id}/changes"))
        if pid <= 0 or response.status_code >= 300:
            return []
        return podman_archive.changed_directories(response.json() or [], Path(f"/proc/{pid}/root"))

    def userns_mode(self, mode: str | None) -> str | None:
        return mode

    def checkpoint_dir(self, container_id: str, name: str) -> Path:
        return self._static_dir(container_id) / "pytest-criu" / name

    def snapshot_image(self, container_id: str, labels: Mapping[str, str]) -> str:
        return ""  # the exported archive carries the container's file changes

    def restore_new(self, request: RestoreRequest) -> str:
        config, created = request.config, request.created
        container_name = config.name or labelling.owner_name(config.labels)
        params: dict[str, Any] = {"import": "true", "name": container_name, **CRIU_OPTIONS}
        if request.keep:
            params["keep"] = "true"
        if config.spec.network_mode not in ("host", "none") and config.spec.ports:
            params["publishPorts"] = [
                f"{config.host_ip}::{port.number}/{port.protocol}" for port in config.spec.ports
            ]
        began = time.time()
        try:
            with open(request.checkpoint / ARCHIVE, "rb") as archive:
                response = self.api.post(
                    self._libpod("/containers/import/restore"),
                    params=params,
                    data=archive,
                    headers={"Content-Type": "application/x-tar"},
                    timeout=self.timeout,
                )
        except OSError as error:
            raise RestoreError(f"cannot read the checkpoint archive: {error}") from None
        except requests.exceptions.Timeout:
            leftover = self._id_of(container_name)
            stopped = procfs.kill_trees(procfs.restore_of(leftover)) if leftover else 0
            log = self._adopt_leftover(leftover, created)
            raise RestoreError(
                criu_log.describe_stuck_restore(self.timeout, stopped, log, engine=self.name)
            ) from None
        if response.status_code >= 300:
            log = self._adopt_leftover(self._id_of(container_name), created)
            raise RestoreError(
                criu_log.describe_failure(
                    "restore the checkpoint", error_text(response), log, engine=self.name
                )
            )
        container_id = str(response.json()["Id"])
        self._imported_at[container_id] = began
        created(container_id)
        request.lap("engine restore")
        self._settle_network(container_id)
        request.lap("network")
        return container_id

    def restore_in_place(self, container_id: str, name: str, *, owner: str, lap: Lap) -> None:
        self.kill(container_id)
        lap("stop")
        try:
            response = self.api.post(
                self._libpod(f"/containers/{container_id}/restore"),
                params={"keep": "true", **CRIU_OPTIONS},
                timeout=self.timeout,
            )
        except requests.exceptions.Timeout:
            stopped = procfs.kill_trees(procfs.restore_of(container_id))
            log = self._userdata_file(container_id, "restore.log")
            raise RestoreError(
                criu_log.describe_stuck_restore(self.timeout, stopped, log, engine=self.name)
            ) from None
        if response.status_code >= 300:
            log = self._userdata_file(container_id, "restore.log")
            raise RestoreError(
                criu_log.describe_failure(
                    "restore the checkpoint", error_text(response), log, engine=self.name
                )
            )
        lap("engine restore")
        self._settle_network(container_id)
        lap("network")

    # -- plumbing -------------------------------------------------------------------------

    def _static_dir(self, container_id: str) -> Path:
        return Path(self._libpod_inspect(container_id)["StaticDir"])

    def _userdata_file(self, container: str, file: str) -> str | None:
        """A log Podman leaves in the container's data directory (CRIU's, on failure)."""
        try:
            return (self._static_dir(container) / file).read_text(errors="replace")
        except (OSError, EngineError, KeyError, ValueError):
            return None

    def _id_of(self, container_name: str) -> str | None:
        """The id of the container an import was making under ``container_name``, if any."""
        try:
            return str(self.api.inspect_container(container_name)["Id"])
        except docker.errors.APIError:
            return None

    def _adopt_leftover(
        self, container_id: str | None, created: Callable[[str], None]
    ) -> str | None:
        """After a failed import: hand a half-made container to the caller; its restore log."""
        if container_id is None:
            return None
        log = self._userdata_file(container_id, "restore.log")
        created(container_id)
        return log
