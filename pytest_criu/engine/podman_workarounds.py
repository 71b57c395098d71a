"""The container calls both engines share, as each Podman version needs them.

Podman serves Docker's endpoints but answers some of them differently: Podman 5 stops a
container gracefully before a forced removal and reports a killed one "stopped" for a while,
Podman 4.3 leaves a restored namespace's loopback down and the image's HEALTHCHECK out of its
inspect answer, health checks need systemd to run, and given any ulimits it raises the missing
ones beyond what the host allows. :class:`PodmanWorkarounds` repairs each of those on top of
:class:`~.base.ContainerEngine`; checkpoint and restore are :class:`~.podman.PodmanEngine`'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import resource
import socket
import struct
import time
from typing import Any

import docker.errors
import requests

from .base import ContainerConfig, ContainerEngine
from .errors import RestoreError
from .netns import announce, interface_up
from .ready import Health

#: The version in the path of Podman's own (``/libpod``) endpoints.
LIBPOD_VERSION = "v4.0.0"
#: Seconds Podman 5 may take to clean a killed container up (as Docker's wait after a kill).
KILL_WAIT = 30.0
#: Seconds a removal may be retried while a user-namespaced container's shm mount is busy.
BUSY_WAIT = 10.0


class PodmanWorkarounds(ContainerEngine):
    """Docker's container calls, repaired where a Podman version answers otherwise."""

    def __init__(self, base_url: str | None = None, timeout: float = 120.0) -> None:
        super().__init__(base_url, timeout)
        self._major: int | None = None

    def major_version(self) -> int:
        """The service's major version (0 when it does not say), asked once."""
        if self._major is None:
            release = str(self.version().get("Version", ""))
            head = release.split(".", maxsplit=1)[0]
            self._major = int(head) if head.isdigit() else 0
        return self._major

    def remove(self, container_id: str) -> None:
        """As Docker's; on Podman 5 a running container is killed first.

        Podman 5 stops a running container before removing it even when forced: SIGTERM, then
        its stop timeout (10 s) when the process ignores SIGTERM, as a PID 1 without a handler
        does. Podman 4.3 kills it at once.
        """
        if self.major_version() >= 5:
            with contextlib.suppress(docker.errors.APIError):
                self.api.kill(container_id)
        deadline = time.monotonic() + BUSY_WAIT
        while True:
            try:
                super().remove(container_id)
                return
            except docker.errors.APIError as error:
                # In a user namespace, the shm mount of a container that ran exec sessions
                # can still be busy for a moment ("unlinkat .../userdata/shm: device or
                # resource busy"); the container is gone from Podman's list by then.
                if "resource busy" not in str(error) or time.monotonic() > deadline:
                    raise
            time.sleep(0.1)

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

    def _libpod(self, path: str) -> str:
        """The URL of Podman's own endpoint ``path`` (``/containers/ID/json``...)."""
        return f"{self.api.base_url}/{LIBPOD_VERSION}/libpod{path}"
