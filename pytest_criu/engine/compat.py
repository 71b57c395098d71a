"""The Docker-compatible REST API that both engines serve, and the interface they share.

Docker and Podman answer the same ``/containers``, ``/images`` and ``/exec`` endpoints, so
creating, inspecting and removing containers is common code; checkpoint and restore are
not (Docker keeps checkpoint directories it restores with ``start?checkpoint=``, Podman
exports archives it imports), so each engine implements :class:`ContainerEngine`'s
abstract part.
"""

from __future__ import annotations

import abc
import base64
import contextlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Literal

import docker
import docker.errors
import requests

from . import create_options as creating
from .errors import EngineError, ImageNotFoundError
from .ready import Health
from .spec import ContainerSpec, Port

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


class ContainerEngine(abc.ABC):
    """A connection to one container engine's API socket."""

    name: ClassVar[str]
    """``docker`` or ``podman``."""
    title: ClassVar[str]
    start_hint: ClassVar[str]

    @classmethod
    @abc.abstractmethod
    def default_url(cls) -> str:
        """The socket used when neither the caller nor the environment names one."""

    def __init__(self, base_url: str | None = None, timeout: float = 120.0) -> None:
        where = base_url or self.default_url()
        if where.startswith("unix://") and not Path(where.removeprefix("unix://")).exists():
            # Checked here: docker-py leaks a socket when it fails to connect to a unix path.
            raise EngineError(
                f"cannot connect to {self.title} at {where}: no such socket (is the "
                f"daemon running?); {self.start_hint} or set --criu-engine-url"
            )
        # docker-py hands the timeout to requests, which takes fractions of a second; its
        # stubs say int, and int() would turn 0.5 into 0 ("connect timeout to 0").
        seconds: Any = float(timeout)
        try:
            if base_url:
                self.api = docker.APIClient(base_url=base_url, version="auto", timeout=seconds)
            else:
                self.api = docker.from_env(version="auto", timeout=seconds).api
        except docker.errors.DockerException as error:
            raise EngineError(
                f"cannot connect to {self.title} at {where}: {error}; "
                f"{self.start_hint} or set --criu-engine-url"
            ) from None
        self.base_url = base_url
        self.timeout = timeout
        self._info: dict[str, Any] | None = None

    def close(self) -> None:
        self.api.close()

    # -- daemon ---------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        if self._info is None:
            self._info = self._call("read the daemon's info", self.api.info)
        return self._info

    def version(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("read the daemon's version", self.api.version)
        return result

    # -- images ---------------------------------------------------------------------------

    def ensure_image(self, reference: str, *, pull: bool) -> dict[str, Any]:
        """Inspect ``reference``, pulling it first when it is missing and ``pull`` allows."""
        try:
            return self._inspect_image(reference)
        except docker.errors.ImageNotFound:
            if not pull:
                raise ImageNotFoundError(
                    f"image {reference!r} is not available locally; build it "
                    f"(`docker build` or `podman build`) or pull it"
                ) from None
        except docker.errors.APIError as error:
            raise EngineError(f"cannot inspect image {reference!r}: {error.explanation}") from None
        try:
            self.api.pull(reference)
            return self._inspect_image(reference)
        except docker.errors.DockerException as error:
            raise ImageNotFoundError(
                f"image {reference!r} is not available locally and pulling it failed ({error}); "
                f"build it or pull it where a registry is reachable"
            ) from None

    def _inspect_image(self, reference: str) -> dict[str, Any]:
        result: dict[str, Any] = self.api.inspect_image(reference)  # type: ignore[no-untyped-call]
        return result

    def commit(self, container_id: str, labels: Mapping[str, str]) -> str:
        changes = [f'LABEL {key}="{value}"' for key, value in labels.items()]
        result = self._call(
            "commit the checkpointed container",
            self.api.commit,
            container_id,
            repository="pytest-criu-snapshot",
            tag=container_id[:12],
            changes=changes,
        )
        return str(result["Id"])

    def image_exists(self, image_id: str) -> bool:
        try:
            self._inspect_image(image_id)
        except docker.errors.ImageNotFound:
            return False
        return True

    def remove_image(self, image_id: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self._call(f"remove image {image_id[:19]}", self.api.remove_image, image_id, force=True)

    def image_layers(self, image_id: str) -> list[str]:
        """The diff ids of an image's layers, lowest first."""
        info = self._call(f"inspect image {image_id[:19]}", self._inspect_image, image_id)
        return [str(layer) for layer in (info.get("RootFS") or {}).get("Layers") or []]

    def save_image(self, image_id: str, out: BinaryIO) -> None:
        """Write ``docker save``'s archive of ``image_id`` to ``out``."""
        try:
            for chunk in self.api.get_image(image_id, chunk_size=1 << 20):
                out.write(chunk)
        except docker.errors.DockerException as error:
            raise EngineError(
                f"{self.title} could not save image {image_id[:19]}: {error}"
            ) from None

    def load_image(self, archive: BinaryIO) -> None:
        """``docker load`` an archive; layers the daemon already has need not be in it."""
        try:
            response = self.api.post(
                self._url("/images/load"),
                params={"quiet": "1"},
                data=archive,
                headers={"Content-Type": "application/x-tar"},
                timeout=self.timeout,
            )
        except requests.exceptions.RequestException as error:
            raise EngineError(f"{self.title} did not answer the image load: {error}") from None
        with contextlib.closing(response):
            if response.status_code >= 300:
                raise EngineError(f"{self.title} could not load the image: {error_text(response)}")
            for line in response.text.splitlines():
                with contextlib.suppress(ValueError):
                    message = json.loads(line)
                    if isinstance(message, dict) and message.get("error"):
                        raise EngineError(
                            f"{self.title} could not load the image: {message['error']}"
                        )

    def images(self, *labels: str) -> list[dict[str, Any]]:
        """Images carrying every one of ``labels`` (``key`` or ``key=value``)."""
        return self._call("list images", self.api.images, filters={"label": list(labels)}) or []

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

    def exec(
        self, container_id: str, argv: Sequence[str], *, user: str | None = None
    ) -> tuple[int, str]:
        try:
            exec_id = str(self.api.exec_create(container_id, list(argv), user=user or "")["Id"])
            output = self._exec_output(exec_id)
            code = self.api.exec_inspect(exec_id)["ExitCode"]
        except docker.errors.APIError as error:
            raise EngineError(
                f"cannot run {list(argv)!r} in the container: {error.explanation}"
            ) from None
        except (requests.exceptions.ConnectionError, OSError) as error:
            raise EngineError(f"cannot run {list(argv)!r} in the container: {error}") from None
        return int(code if code is not None else -1), output.decode("utf-8", "replace")

    def _exec_output(self, exec_id: str) -> bytes:
        """Start exec ``exec_id`` attached and read its multiplexed output to the end.

        docker-py's ``exec_start`` reads the upgraded connection from the raw socket, past
        the buffer that parsed the response headers: whatever output arrived together with
        them is lost (docker-py issue 2042; measured here under load: 16 of 600 ``echo``
        outputs on Docker, 59 of 400 on Podman). The buffered reader holds those bytes.
        """
        response = self.api.post(
            self._url(f"/exec/{exec_id}/start"),
            json={"Detach": False, "Tty": False},
            headers={"Connection": "Upgrade", "Upgrade": "tcp"},
            stream=True,
        )
        try:
            if response.status_code >= 300:
                raise docker.errors.APIError(
                    error_text(response), response=response, explanation=error_text(response)
                )
            # urllib3's response wraps http.client's, whose buffered reader is ``fp``.
            buffered = getattr(getattr(response.raw, "_fp", None), "fp", None)
            if buffered is None:
                raise EngineError(f"{self.title} answered an exec without a readable stream")
            return read_frames(buffered)
        finally:
            response.close()

    def path_stat(self, container_id: str, path: str) -> dict[str, Any] | None:
        """What the archive API says about ``path`` in the container; ``None`` if it is absent."""
        try:
            response = self.api.head(
                self._url(f"/containers/{container_id}/archive"),
                params={"path": path},
                timeout=self.timeout,
            )
        except requests.exceptions.RequestException as error:
            raise EngineError(
                f"{self.title} did not answer when asked about {path}: {error}"
            ) from None
        with contextlib.closing(response):
            if response.status_code == 404:
                return None
            if response.status_code >= 300:
                raise EngineError(
                    f"{self.title} could not look up {path} in the container: "
                    f"{error_text(response)}"
                )
            header = response.headers.get("X-Docker-Container-Path-Stat", "")
        try:
            stat: dict[str, Any] = json.loads(base64.b64decode(header))
        except ValueError:
            stat = {}
        return stat

    def put_archive(self, container_id: str, directory: str, archive: bytes) -> None:
        """Unpack a tar ``archive`` into ``directory`` of the container."""
        try:
            self._call(
                f"copy files to {directory} in the container",
                self.api.put_archive,
                container_id,
                directory,
                archive,
            )
        except docker.errors.NotFound:
            raise EngineError(
                f"{self.title} could not copy files to {directory}: no such directory"
            ) from None

    def logs(
        self, container_id: str, *, tail: int | Literal["all"] = "all", since: float | None = None
    ) -> str:
        """The container's output, its last ``tail`` lines, or what it printed ``since``."""
        try:
            raw = self.api.logs(container_id, stdout=True, stderr=True, tail=tail, since=since)
        except docker.errors.NotFound:
            return ""
        except docker.errors.APIError as error:
            raise EngineError(f"cannot read the container's logs: {error.explanation}") from None
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)

    def health(self, container_id: str) -> Health | None:
        """The container's health-check state, or ``None`` when it has no health check."""
        info = self.inspect(container_id)
        test = ((info.get("Config") or {}).get("Healthcheck") or {}).get("Test") or []
        state = (info.get("State") or {}).get("Health")
        if not test or list(test) == ["NONE"] or not state:
            return None
        runs = state.get("Log") or []
        last = runs[-1] if runs else {}
        code = last.get("ExitCode")
        return Health(
            status=str(state.get("Status") or "starting"),
            output=str(last.get("Output") or ""),
            exit_code=int(code) if code is not None else None,
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

    # -- checkpoint and restore: each engine's own ------------------------------------------

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

    @abc.abstractmethod
    def restore_new(
        self,
        config: ContainerConfig,
        checkpoint: Path,
        name: str,
        *,
        owner: str,
        created: Callable[[str], None],
        lap: Lap,
        keep: bool = False,
    ) -> str:
        """Restore ``checkpoint`` into a new container made from ``config``; return its id.

        ``created`` is told the new container's id as soon as there is one, so that the
        caller can remove it should the restore fail. ``keep`` leaves the checkpoint with the
        container for :meth:`restore_in_place`.
        """

    @abc.abstractmethod
    def restore_in_place(self, container_id: str, name: str, *, owner: str, lap: Lap) -> None:
        """Kill ``container_id`` and restore it again from its own checkpoint ``name``."""

    def tidy_after_restore(self, container_id: str) -> None:  # noqa: B027 - optional hook
        """Clean up after a restore in place; called in the background (nothing here)."""

    def reap_leftovers(self) -> int:
        """Delete what crashed runs left outside containers and images; count it."""
        return 0

    # -- plumbing -------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.api.base_url}/v{self.api.api_version}{path}"

    def _call(self, action: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except docker.errors.NotFound:
            raise
        except docker.errors.APIError as error:
            raise EngineError(f"{self.title} could not {action}: {error.explanation}") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
            raise EngineError(
                f"{self.title} did not answer when asked to {action}: {error}"
            ) from None


def _binds(volumes: Mapping[str, str]) -> Iterator[tuple[str, dict[str, str]]]:
    for source, target in volumes.items():
        path, _, mode = target.partition(":")
        yield source, {"bind": path, "mode": mode or "rw"}


def read_frames(stream: BinaryIO) -> bytes:
    """The payload of a multiplexed attach stream (8-byte headers: stream, 0, 0, 0, size)."""
    chunks: list[bytes] = []
    while True:
        header = stream.read(8)
        if len(header) < 8:
            return b"".join(chunks)
        size = int.from_bytes(header[4:8], "big")
        chunks.append(stream.read(size))


def error_text(response: requests.Response) -> str:
    try:
        return str(response.json().get("message", response.text))
    except ValueError:
        return response.text
