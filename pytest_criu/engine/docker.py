"""Docker Engine API calls, including the checkpoint endpoints docker-py lacks."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

from . import criu_log, procfs
from .base import ContainerEngine, Lap, RestoreRequest, error_text
from .daemon import DaemonPaths
from .errors import RestoreError
from .placing import NONCE_FILE, link_tree, write_nonce

DEFAULT_URL = "unix:///var/run/docker.sock"

__all__ = ["DockerEngine", "RestoreCopy"]


@dataclass(frozen=True)
class RestoreCopy:
    """One checkpoint copy containerd unpacked for a restore, and whose it is."""

    path: str
    container: str
    owner: str
    """``pid-starttime`` of the pytest process that placed it, or ``-``."""
    modified: float


class DockerEngine(ContainerEngine):
    """A connection to one Docker daemon (experimental mode, on this machine)."""

    name = "docker"
    title = "Docker"
    start_hint = "start dockerd (sudo pytest-criu setup does)"

    def __init__(self, base_url: str | None = None, timeout: float = 120.0) -> None:
        super().__init__(base_url, timeout)
        self._daemon_paths: DaemonPaths | None = None

    @classmethod
    def default_url(cls) -> str:
        return os.environ.get("DOCKER_HOST") or DEFAULT_URL

    @property
    def daemon_paths(self) -> DaemonPaths:
        """Where the daemon behind this connection keeps runc and containerd state."""
        if self._daemon_paths is None:
            where = self.base_url or os.environ.get("DOCKER_HOST") or ""
            socket_path = where.removeprefix("unix://") if where.startswith("unix://") else None
            self._daemon_paths = DaemonPaths.of_socket(socket_path if where else None)
        return self._daemon_paths

    # -- containers -----------------------------------------------------------------------

    @property
    def root_dir(self) -> Path:
        return Path(self.info()["DockerRootDir"])

    def remove(self, container_id: str) -> None:
        """Remove a container, its checkpoints and containerd's copy of its restore."""
        super().remove(container_id)
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

    # -- checkpoints ----------------------------------------------------------------------

    def checkpoint(self, container_id: str, name: str) -> None:
        """Dump the container with CRIU and stop it; on failure explain why."""
        response = self.api.post(
            self._url(f"/containers/{container_id}/checkpoints"),
            json={"CheckpointID": name, "Exit": True},
        )
        if response.status_code < 300:
            return
        message = error_text(response)
        log = self._reproduce_dump(container_id)
        raise criu_log.checkpoint_error(message, log, engine=self.name)

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

    def snapshot_image(self, container_id: str, labels: Mapping[str, str]) -> str:
        return self.commit(container_id, labels)

    stages_restores = True

    def restore_new(self, request: RestoreRequest) -> str:
        container_id = self.stage_restore(request)
        self.restore_staged(container_id, request)
        return container_id

    def stage_restore(self, request: RestoreRequest) -> str:
        container_id = self.create(request.config)
        request.created(container_id)
        request.lap("create")
        self.place_checkpoint(request.checkpoint, container_id, request.name, owner=request.owner)
        request.lap("place checkpoint")
        return container_id

    def restore_staged(self, container_id: str, request: RestoreRequest) -> None:
        self.restore(container_id, request.name)
        request.lap("engine restore")

    def restore_in_place(self, container_id: str, name: str, *, owner: str, lap: Lap) -> None:
        self.kill(container_id)
        write_nonce(self.checkpoint_dir(container_id, name), container_id, owner)
        lap("stop")
        self.restore(container_id, name)
        lap("engine restore")

    def tidy_after_restore(self, container_id: str) -> None:
        # The container lives on, so containerd's copies of its restores would pile up.
        self.forget_restore_copy(container_id)

    def reap_leftovers(self) -> int:
        return self.reap_restore_copies()

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
            stopped = procfs.kill_trees(procfs.restore_of(container_id))
            raise RestoreError(
                criu_log.describe_stuck_restore(self.timeout, stopped, log, engine=self.name)
            ) from None
        if response.status_code < 300:
            return
        message = error_text(response)
        raise RestoreError(
            criu_log.describe_failure(
                "restore the checkpoint",
                message,
                _restore_log(container_id, self.daemon_paths.task_roots),
                engine=self.name,
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


def _restore_log(container_id: str, task_roots: tuple[str, ...]) -> str | None:
    """CRIU's restore log, while containerd still has the task's work directory."""
    for root in task_roots:
        log = Path(root, container_id, "work", "restore.log")
        with contextlib.suppress(OSError):
            return log.read_text(errors="replace")
    return None
