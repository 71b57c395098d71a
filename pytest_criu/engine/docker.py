"""Docker Engine API calls, including the checkpoint endpoints docker-py lacks."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import docker
import docker.errors
import requests

from . import criu_log
from .daemon import DaemonPaths
from .errors import CheckpointError, EngineError, ImageNotFoundError, RestoreError
from .spec import ContainerSpec, Port

NONCE_FILE = "pytest-criu-nonce"


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
class RestoreCopy:
    """One checkpoint copy containerd unpacked for a restore, and whose it is."""

    path: str
    container: str
    owner: str
    """``pid-starttime`` of the pytest process that placed it, or ``-``."""
    modified: float


class DockerEngine:
    """A connection to one Docker daemon."""

    name = "docker"

    def __init__(self, base_url: str | None = None, timeout: float = 120.0) -> None:
        where = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        if where.startswith("unix://") and not Path(where.removeprefix("unix://")).exists():
            # Checked here: docker-py leaks a socket when it fails to connect to a unix path.
            raise EngineError(
                f"cannot connect to Docker at {where}: no such socket (dockerd is not "
                "running?); start dockerd (scripts/setup-host does) or set --criu-docker-url"
            )
        try:
            if base_url:
                self.api = docker.APIClient(base_url=base_url, version="auto", timeout=int(timeout))
            else:
                self.api = docker.from_env(version="auto", timeout=int(timeout)).api
        except docker.errors.DockerException as error:
            raise EngineError(
                f"cannot connect to Docker at {where}: {error}; "
                "start dockerd (scripts/setup-host does) or set --criu-docker-url"
            ) from None
        self.base_url = base_url
        self.timeout = timeout
        self._daemon_paths: DaemonPaths | None = None
        self._info: dict[str, Any] | None = None

    def close(self) -> None:
        self.api.close()

    @property
    def daemon_paths(self) -> DaemonPaths:
        """Where the daemon behind this connection keeps runc and containerd state."""
        if self._daemon_paths is None:
            where = self.base_url or os.environ.get("DOCKER_HOST") or ""
            socket_path = where.removeprefix("unix://") if where.startswith("unix://") else None
            self._daemon_paths = DaemonPaths.of_socket(socket_path if where else None)
        return self._daemon_paths

    # -- daemon ---------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        if self._info is None:
            self._info = self._call("read the daemon's info", self.api.info)
        return self._info

    @property
    def root_dir(self) -> Path:
        return Path(self.info()["DockerRootDir"])

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
                    f"(e.g. scripts/build-images) or `docker pull {reference}`"
                ) from None
        except docker.errors.APIError as error:
            raise EngineError(f"cannot inspect image {reference!r}: {error.explanation}") from None
        try:
            self.api.pull(reference)
            return self._inspect_image(reference)
        except docker.errors.DockerException as error:
            raise ImageNotFoundError(
                f"image {reference!r} is not available locally and pulling it failed ({error}); "
                f"build it or `docker pull {reference}` where a registry is reachable"
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

    def images(self, *labels: str) -> list[dict[str, Any]]:
        """Images carrying every one of ``labels`` (``key`` or ``key=value``)."""
        return self._call("list images", self.api.images, filters={"label": list(labels)}) or []

    # -- containers -----------------------------------------------------------------------

    def create(self, config: ContainerConfig) -> str:
        spec = config.spec
        ports: list[tuple[int, str]] = [(port.number, port.protocol) for port in spec.ports]
        host_config = self.api.create_host_config(
            port_bindings={f"{port}": (config.host_ip, None) for port in spec.ports} or None,
            tmpfs=dict(config.tmpfs) or None,
            binds=dict(_binds(spec.volumes)) or None,
            network_mode=spec.network_mode,
            init=False,
        )
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
        """Remove a container, its checkpoints and containerd's copy of its restore."""
        with contextlib.suppress(docker.errors.NotFound):
            self.api.remove_container(container_id, force=True, v=True)
        self.forget_restore_copy(container_id)

    def restore_copies(self) -> list[RestoreCopy]:
        """containerd's unpacked copies of restores pytest-criu placed (they carry a nonce).

        containerd 1.6 unpacks every restored checkpoint into ``$TMPDIR/ctrd-checkpoint*``
        and never deletes it (about 1.3 GB per test run here).
        """
        copies: list[RestoreCopy] = []
        try:
            with os.scandir(self.daemon_paths.containerd_tmp) as scan:
                entries = [e for e in scan if e.name.startswith("ctrd-checkpoint")]
        except OSError:
            return copies
        for entry in entries:
            try:
                fields = Path(entry.path, NONCE_FILE).read_text().split()
                modified = entry.stat().st_mtime
            except OSError:
                continue
            if fields:
                owner = fields[1] if len(fields) > 2 else "-"
                copies.append(RestoreCopy(entry.path, fields[0], owner, modified))
        return copies

    def reap_restore_copies(self, min_age: float = 60.0) -> int:
        """Delete restore copies of containers that are gone (their run crashed); count them."""
        now = time.time()
        # Younger copies may belong to a restore still in flight.
        candidates = [c for c in self.restore_copies() if now - c.modified >= min_age]
        if not candidates:
            return 0
        existing = {str(c["Id"]) for c in self.api.containers(all=True)}
        reaped = [c for c in candidates if c.container not in existing]
        for copy in reaped:
            shutil.rmtree(copy.path, ignore_errors=True)
        return len(reaped)

    def forget_restore_copy(self, container_id: str) -> None:
        """Delete the copies containerd unpacked for this container's restores."""
        for copy in self.restore_copies():
            if copy.container == container_id:
                shutil.rmtree(copy.path, ignore_errors=True)

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
            output = self.api.exec_start(exec_id)
            code = self.api.exec_inspect(exec_id)["ExitCode"]
        except docker.errors.APIError as error:
            raise EngineError(
                f"cannot run {list(argv)!r} in the container: {error.explanation}"
            ) from None
        text = output.decode("utf-8", "replace") if isinstance(output, bytes) else str(output)
        return int(code if code is not None else -1), text

    def logs(self, container_id: str, *, tail: int | Literal["all"] = "all") -> str:
        try:
            raw = self.api.logs(container_id, stdout=True, stderr=True, tail=tail)
        except docker.errors.NotFound:
            return ""
        except docker.errors.APIError as error:
            raise EngineError(f"cannot read the container's logs: {error.explanation}") from None
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)

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

    # -- checkpoints ----------------------------------------------------------------------

    def checkpoint(self, container_id: str, name: str) -> None:
        """Dump the container with CRIU and stop it; on failure explain why."""
        response = self.api.post(
            self._url(f"/containers/{container_id}/checkpoints"),
            json={"CheckpointID": name, "Exit": True},
        )
        if response.status_code < 300:
            return
        message = _error_text(response)
        log = self._reproduce_dump(container_id)
        raise CheckpointError(criu_log.describe_failure("checkpoint the container", message, log))

    def checkpoint_dir(self, container_id: str, name: str) -> Path:
        return self.root_dir / "containers" / container_id / "checkpoints" / name

    def place_checkpoint(
        self, source: Path, container_id: str, name: str, *, owner: str = ""
    ) -> Path:
        """Make ``source`` a checkpoint of ``container_id`` (hard links; copies across devices).

        A file unique to the container is added so that concurrent restores never upload
        identical content to containerd (moby issue 42900).
        """
        target = self.checkpoint_dir(container_id, name)
        target.parent.mkdir(mode=0o700, exist_ok=True)
        try:
            link_tree(source, target)
        except OSError as error:
            raise RestoreError(
                f"cannot place the checkpoint into {target}: {error}; the test process must "
                "run on the daemon's host with access to its data root (run as root)"
            ) from None
        write_nonce(target, container_id, owner)
        return target

    def restore(self, container_id: str, name: str) -> None:
        """Start a stopped container from one of its checkpoints.

        A restore that does not finish within the engine's timeout (CRIU can spin forever
        on damaged page files) is stopped: its runc and CRIU processes are killed.
        """
        try:
            response = self.api.post(
                self._url(f"/containers/{container_id}/start"),
                params={"checkpoint": name},
                timeout=self.timeout,
            )
        except requests.exceptions.Timeout:
            log = _restore_log(container_id, self.daemon_paths.task_roots)
            stopped = _kill_restore(container_id)
            raise RestoreError(
                criu_log.describe_failure(
                    "restore the checkpoint",
                    f"no answer within {self.timeout:g}s; stopped {stopped} runc/CRIU "
                    "processes (a damaged checkpoint can make CRIU spin)",
                    log,
                )
            ) from None
        if response.status_code < 300:
            return
        message = _error_text(response)
        raise RestoreError(
            criu_log.describe_failure(
                "restore the checkpoint",
                message,
                _restore_log(container_id, self.daemon_paths.task_roots),
            )
        )

    def _reproduce_dump(self, container_id: str) -> str | None:
        """Run the failed dump again through runc to keep CRIU's log (Docker deletes it)."""
        runc = shutil.which("runc")
        roots = self.daemon_paths.runc_roots
        root = next((path for path in roots if Path(path, container_id).exists()), None)
        if runc is None or root is None:
            return None
        with tempfile.TemporaryDirectory(prefix="pytest-criu-dump-") as scratch:
            work, images = Path(scratch, "work"), Path(scratch, "images")
            work.mkdir(mode=0o700)
            images.mkdir(mode=0o700)
            try:
                subprocess.run(
                    [
                        runc,
                        "--root",
                        root,
                        "checkpoint",
                        "--leave-running",
                        "--work-path",
                        str(work),
                        "--image-path",
                        str(images),
                        container_id,
                    ],
                    capture_output=True,
                    timeout=120,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired):
                return None
            log = work / "dump.log"
            return log.read_text(errors="replace") if log.exists() else None

    # -- plumbing -------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.api.base_url}/v{self.api.api_version}{path}"

    def _call(self, action: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except docker.errors.NotFound:
            raise
        except docker.errors.APIError as error:
            raise EngineError(f"Docker could not {action}: {error.explanation}") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
            raise EngineError(f"Docker did not answer when asked to {action}: {error}") from None


def _restore_log(container_id: str, task_roots: tuple[str, ...]) -> str | None:
    """CRIU's restore log, while containerd still has the task's work directory."""
    for root in task_roots:
        log = Path(root, container_id, "work", "restore.log")
        with contextlib.suppress(OSError):
            return log.read_text(errors="replace")
    return None


def _kill_restore(container_id: str) -> int:
    """Kill the runc restore of ``container_id`` and the CRIU processes below it."""
    children: dict[int, list[int]] = {}
    roots: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
        if b"restore" in cmdline and container_id.encode() in cmdline:
            roots.append(int(entry.name))
    victims: list[int] = []
    while roots:
        pid = roots.pop()
        victims.append(pid)
        roots.extend(children.get(pid, []))
    for pid in victims:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return len(victims)


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


def _binds(volumes: Mapping[str, str]) -> Iterator[tuple[str, dict[str, str]]]:
    for source, target in volumes.items():
        path, _, mode = target.partition(":")
        yield source, {"bind": path, "mode": mode or "rw"}


def _error_text(response: requests.Response) -> str:
    try:
        return str(response.json().get("message", response.text))
    except ValueError:
        return response.text
