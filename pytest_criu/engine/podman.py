"""Podman's REST API: the Docker-compatible endpoints plus ``/libpod`` checkpoint and restore.

A checkpoint is exported as one archive (CRIU images, the container's file changes, its
config) into a private directory inside the source container's own data directory, so it
goes when that container goes. Restoring imports the archive into a new container under a
new name with freshly published ports; in place, a container keeps its checkpoint and is
restored again after being killed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import resource
import socket
import struct
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import docker.errors
import requests

from . import criu_log, procfs
from . import labels as labelling
from .base import ContainerConfig, ContainerEngine, Lap, RestoreRequest, error_text
from .errors import CheckpointError, EngineError, RestoreError
from .netns import announce, interface_up
from .ready import Health

DEFAULT_URL = "unix:///run/podman/podman.sock"
LIBPOD_VERSION = "v4.0.0"
ARCHIVE = "checkpoint.tar"
#: Podman must restore established TCP connections and file locks as the Docker path does
#: through /etc/criu/runc.conf; the API takes them per call.
CRIU_OPTIONS = {"tcpEstablished": "true", "fileLocks": "true"}
#: Seconds Podman 5 may take to clean a killed container up (as Docker's wait after a kill).
KILL_WAIT = 30.0


class PodmanEngine(ContainerEngine):
    """A connection to a rootful ``podman system service``."""

    name = "podman"
    title = "Podman"
    start_hint = "start `podman system service` (sudo pytest-criu setup --engine podman does)"

    def __init__(self, base_url: str | None = None, timeout: float = 120.0) -> None:
        super().__init__(base_url or self.default_url(), timeout)
        self._imported_at: dict[str, float] = {}
        self._major: int | None = None

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
        """As Docker's; on Podman 5 a running container is killed first.

        Podman 5 stops a running container before removing it even when forced: SIGTERM, then
        its stop timeout (10 s) when the process ignores SIGTERM, as a PID 1 without a handler
        does. Podman 4.3 kills it at once.
        """
        if self.major_version() >= 5:
            with contextlib.suppress(docker.errors.APIError):
                self.api.kill(container_id)
        super().remove(container_id)
        self._imported_at.pop(container_id, None)

    def kill(self, container_id: str) -> None:
        """As Docker's; on Podman 5 until the service has cleaned the container up.

        Podman 5 reports a killed container "stopped" until conmon's exit command has run
        ``podman container cleanup``, and refuses to restore it meanwhile ("is running or
        paused, cannot restore: container state improper"); its waits return at "stopped".
        """
        super().kill(container_id)
        if self.major_version() < 5:
            return
        deadline = time.monotonic() + KILL_WAIT
        while time.monotonic() < deadline:
            try:
                response = self.api.get(
                    self._libpod(f"/containers/{container_id}/json"), timeout=self.timeout
                )
                with contextlib.closing(response):
                    if response.status_code >= 300:
                        return  # gone: nothing to wait for
                    state = (response.json().get("State") or {}).get("Status")
            except (requests.exceptions.RequestException, ValueError):
                return
            if state != "stopped":
                return
            time.sleep(0.05)

    def major_version(self) -> int:
        """The service's major version (0 when it does not say), asked once."""
        if self._major is None:
            release = str(self.version().get("Version", ""))
            head = release.split(".", maxsplit=1)[0]
            self._major = int(head) if head.isdigit() else 0
        return self._major

    def create(self, config: ContainerConfig) -> str:
        """As Docker's, with the limits Podman would otherwise raise beyond the host's.

        Given any ``ulimits``, Podman drops its configured ``default_ulimits`` and sets the
        missing nofile and nproc to 1048576, which a host whose root lacks CAP_SYS_RESOURCE
        refuses; the missing ones get the Podman service's own limits instead.
        """
        limits = config.spec.create_options.get("ulimits")
        if limits:
            named = {str(limit["name"]) for limit in limits}
            missing = [
                {"name": name, "soft": soft, "hard": hard}
                for name, which in (
                    ("nofile", resource.RLIMIT_NOFILE),
                    ("nproc", resource.RLIMIT_NPROC),
                )
                if name not in named
                for soft, hard in [self._service_limit(which)]
            ]
            if missing:
                options = {**config.spec.create_options, "ulimits": [*limits, *missing]}
                spec = dataclasses.replace(config.spec, create_options=options)
                config = dataclasses.replace(config, spec=spec)
        return super().create(config)

    def _service_limit(self, which: int) -> tuple[int, int]:
        """A resource limit of the process serving the socket (else of this process)."""
        path = (self.base_url or "").removeprefix("unix://")
        with contextlib.suppress(OSError):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
                connection.connect(path)
                credentials = connection.getsockopt(
                    socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
                )
            pid = struct.unpack("3i", credentials)[0]
            return resource.prlimit(pid, which)
        return resource.getrlimit(which)

    def _inspect_image(self, reference: str) -> dict[str, Any]:
        """As Docker's, with the image's HEALTHCHECK, which Podman 4.3's answer leaves out."""
        image = super()._inspect_image(reference)
        config = image.setdefault("Config", {}) or {}
        if not config.get("Healthcheck"):
            with contextlib.suppress(requests.exceptions.RequestException, ValueError):
                response = self.api.get(
                    self._libpod(f"/images/{image['Id']}/json"), timeout=self.timeout
                )
                with contextlib.closing(response):
                    if response.status_code < 300 and response.json().get("Healthcheck"):
                        config["Healthcheck"] = response.json()["Healthcheck"]
                        image["Config"] = config
        return image

    def health(self, container_id: str) -> Health | None:
        """As Docker's, after running the health check once.

        Podman schedules health checks with systemd timers; without systemd (containers,
        many CI runners) they never run by themselves, so each look runs one.
        """
        with contextlib.suppress(requests.exceptions.RequestException):
            self.api.get(
                self._libpod(f"/containers/{container_id}/healthcheck"), timeout=self.timeout
            ).close()
        return super().health(container_id)

    @classmethod
    def default_url(cls) -> str:
        configured = os.environ.get("CONTAINER_HOST", "")
        return configured if configured.startswith("unix://") else DEFAULT_URL

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
                raise CheckpointError(
                    criu_log.describe_failure("checkpoint the container", error_text(response), log)
                )
            fd = os.open(target / ARCHIVE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as archive:
                for chunk in response.iter_content(1 << 20):
                    archive.write(chunk)

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
                criu_log.describe_stuck_restore(self.timeout, stopped, log)
            ) from None
        if response.status_code >= 300:
            log = self._adopt_leftover(self._id_of(container_name), created)
            raise RestoreError(
                criu_log.describe_failure("restore the checkpoint", error_text(response), log)
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
                criu_log.describe_stuck_restore(self.timeout, stopped, log)
            ) from None
        if response.status_code >= 300:
            log = self._userdata_file(container_id, "restore.log")
            raise RestoreError(
                criu_log.describe_failure("restore the checkpoint", error_text(response), log)
            )
        lap("engine restore")
        self._settle_network(container_id)
        lap("network")

    # -- plumbing -------------------------------------------------------------------------

    def _libpod(self, path: str) -> str:
        return f"{self.api.base_url}/{LIBPOD_VERSION}/libpod{path}"

    def _static_dir(self, container_id: str) -> Path:
        response = self.api.get(self._libpod(f"/containers/{container_id}/json"))
        if response.status_code >= 300:
            raise EngineError(f"Podman could not inspect {container_id}: {error_text(response)}")
        return Path(response.json()["StaticDir"])

    def _userdata_file(self, container: str, file: str) -> str | None:
        """A log Podman leaves in the container's data directory (CRIU's, on failure)."""
        try:
            return (self._static_dir(container) / file).read_text(errors="replace")
        except (OSError, EngineError, KeyError, ValueError):
            return None

    def start(self, container_id: str) -> None:
        super().start(container_id)
        self._settle_network(container_id)

    def _settle_network(self, container_id: str) -> None:
        """Repair what Podman leaves wrong in a started or restored container's network.

        - Without a network (``network_mode="none"``) Podman 4.3 restores the namespace with
          ``lo`` down, so 127.0.0.1 is unreachable inside it; it was up at checkpoint time.
        - On its bridge, Podman hands a freed IP address to the next container with a new
          random MAC, and the host keeps sending to the old MAC until its neighbour entry
          expires (about 30 s of timeouts). A gratuitous ARP from the container fixes that.
        """
        info = self.inspect(container_id)
        mode = (info.get("HostConfig") or {}).get("NetworkMode") or ""
        if mode == "host":
            return
        pid = int((info.get("State") or {}).get("Pid") or 0)
        if pid <= 0:
            return  # exited already; readiness checks will say so
        if mode == "none":
            try:
                interface_up(pid, "lo")
            except OSError as error:
                raise RestoreError(
                    f"cannot set the loopback interface of the container up: {error}"
                ) from None
            return
        with contextlib.suppress(OSError):  # best effort: the entry expires on its own
            announce(pid)

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
