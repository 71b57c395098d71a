"""Docker's daemon: running, experimental, with our CRIU first on its PATH, its bridge intact."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..engine.docker import DEFAULT_URL, DockerEngine
from ..engine.errors import EngineError
from . import procs
from .criu import SYSTEM_PATH
from .plan import Plan
from .system import Runner, SetupError

PIDFILE = Path("/var/run/docker.pid")
LOG = Path("/var/log/pytest-criu-dockerd.log")
MARKER = "pytest-criu setup starts dockerd"
#: containerd (1.6, started by dockerd) unpacks every checkpoint it restores into
#: $TMPDIR/ctrd-checkpoint* and never removes it; it gets a directory of its own.
CONTAINERD_TMP = Path("/var/lib/pytest-criu/containerd-tmp")
#: Pid files and sockets a killed daemon leaves; dockerd refuses to start, or waits on a
#: dead containerd, because of them.
STALE_PIDFILES = (
    (PIDFILE, "dockerd"),
    (Path("/var/run/docker/containerd/containerd.pid"), "containerd"),
    (Path("/run/containerd/containerd.pid"), "containerd"),
)
STALE_SOCKETS = (
    Path("/run/containerd/containerd.sock"),
    Path("/var/run/docker/containerd/containerd.sock"),
)
SYSTEMD_RUN = Path("/run/systemd/system")


@dataclass(frozen=True)
class DockerdSettings:
    timeout: float = 60.0
    """Seconds to wait for the daemon to answer after starting it."""

    @classmethod
    def from_environment(cls) -> DockerdSettings:
        return cls(timeout=float(os.environ.get("PYTEST_CRIU_DOCKER_TIMEOUT") or cls.timeout))


def daemon_path(criu: str) -> str:
    """A PATH with ``criu``'s directory first, then the system's directories."""
    parts: list[str] = []
    for part in [os.path.dirname(criu), *SYSTEM_PATH.split(":")]:
        if part not in parts:
            parts.append(part)
    return ":".join(parts)


def info() -> dict[str, Any] | None:
    """``GET /info`` of the local daemon, or None when it does not answer."""
    try:
        engine = DockerEngine(DEFAULT_URL, timeout=10)
    except EngineError:
        return None
    try:
        return engine.info()
    except EngineError:
        return None
    finally:
        engine.close()


def bridge_problem() -> str | None:
    """A daemon whose docker0 was deleted under it cannot start containers on its default
    network until it is restarted (a second dockerd started with --bridge=none does that)."""
    try:
        engine = DockerEngine(DEFAULT_URL, timeout=10)
    except EngineError:
        return None
    try:
        network = engine.api.inspect_network("bridge")
    except Exception:  # no default network: nothing to check
        return None
    finally:
        engine.close()
    name = (network.get("Options") or {}).get("com.docker.network.bridge.name")
    if name and not Path("/sys/class/net", name).exists():
        return (
            f"has lost its default bridge {name} (containers cannot start on the default network)"
        )
    return None


def _experimental_problem(answer: dict[str, Any]) -> str | None:
    if answer.get("ExperimentalBuild") is not True:
        return "runs without experimental features (checkpoint API off)"
    return None


def problem(pid: int, criu: str, answer: dict[str, Any]) -> str | None:
    """Why the running daemon is not good enough (None when it is)."""
    return _experimental_problem(answer) or bridge_problem() or procs.criu_problem(pid, criu)


def running_pid() -> int | None:
    pid = procs.read_pidfile(PIDFILE)
    if pid is not None and procs.comm(pid) == "dockerd":
        return pid
    return next(procs.pids("dockerd"), None)


def ensure_dockerd(run: Runner, plan: Plan, criu: str | None, settings: DockerdSettings) -> None:
    """Leave a good daemon alone; start a missing one; restart one that cannot checkpoint."""
    pid = running_pid()
    answer = info()
    if pid is not None and answer is None:
        # It may still be starting up (or shutting down): give it the usual time.
        seen = pid
        procs.wait_until(
            lambda: info() is not None or procs.comm(seen) != "dockerd", settings.timeout
        )
        answer = info()
        if procs.comm(pid) != "dockerd":
            pid = None
        elif answer is None:
            raise SetupError(
                f"dockerd (pid {pid}) runs but does not answer on {DEFAULT_URL} within "
                f"{settings.timeout:g} s; last lines of {LOG}:\n{procs.log_tail(LOG, MARKER)}"
            )
    if pid is not None and answer is not None:
        why = problem(pid, criu, answer) if criu else _experimental_problem(answer)
        if why is None:
            return
        if not plan.change(f"restart dockerd (pid {pid}): it {why} (running containers stop)"):
            return
        _stop(run, pid, plan)
    elif pid is None and answer is not None:
        plan.say(
            f"a Docker daemon answers on {DEFAULT_URL} but no dockerd runs here; not checking it"
        )
        return
    elif not plan.change("start dockerd"):
        return
    assert criu is not None
    _start(run, plan, criu, settings)
    pid = running_pid()
    answer = info()
    why = problem(pid, criu, answer) if pid is not None and answer is not None else "does not run"
    if why is not None:
        raise SetupError(f"dockerd was (re)started but still {why}")


def _stop(run: Runner, pid: int, plan: Plan) -> None:
    if SYSTEMD_RUN.is_dir():
        run(["systemctl", "stop", "docker", "docker.socket"], timeout=120)
    procs.stop(pid, "dockerd", say=plan.say)


def remove_stale_files(plan: Plan) -> None:
    for path, name in STALE_PIDFILES:
        stale = procs.stale_pidfile(path, name)
        if stale and plan.change(f"remove stale {path} (no running {name} has that pid)"):
            path.unlink(missing_ok=True)
    # dockerd uses the system containerd whenever its socket exists, even when nobody listens.
    for sock in STALE_SOCKETS:
        stale = sock.is_socket() and not procs.socket_alive(sock)
        if stale and plan.change(f"remove stale socket {sock} (nothing listens on it)"):
            for leftover in (sock, sock.with_name(sock.name + ".ttrpc")):
                leftover.unlink(missing_ok=True)
            if str(sock).startswith("/var/run/docker/"):
                sock.with_name("containerd-debug.sock").unlink(missing_ok=True)


def _start(run: Runner, plan: Plan, criu: str, settings: DockerdSettings) -> None:
    pid: int | None = None
    if SYSTEMD_RUN.is_dir() and run(["systemctl", "cat", "docker.service"], timeout=30).ok:
        # systemd's default PATH starts with /usr/local/sbin, where the CRIU wrapper lives.
        done = run(["systemctl", "start", "docker"], timeout=300)
        if not done.ok:
            raise SetupError(f"systemctl start docker failed: {done.why()}")
    else:
        dockerd = shutil.which("dockerd", path="/usr/sbin:/usr/bin:/sbin:/bin")
        if dockerd is None:
            raise SetupError("dockerd not found (package docker.io)")
        remove_stale_files(plan)
        CONTAINERD_TMP.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        LOG.parent.mkdir(parents=True, exist_ok=True)
        with open(LOG, "a") as log:
            log.write(f"\n==== {stamp} {MARKER} {dockerd} ====\n")
        env = {
            "PATH": daemon_path(criu),
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "TMPDIR": str(CONTAINERD_TMP),
        }
        pid = procs.spawn_detached(
            ["nohup", dockerd], env, LOG, Path("/run/pytest-criu/dockerd-launch.pid")
        )
    deadline = time.monotonic() + settings.timeout
    while time.monotonic() < deadline:
        if info() is not None:
            return
        if pid is not None and not procs.starting_or_running(pid, "dockerd"):
            raise SetupError(
                f"dockerd exited during start-up; last lines of {LOG}:\n"
                f"{procs.log_tail(LOG, MARKER)}"
            )
        time.sleep(0.25)
    raise SetupError(
        f"dockerd did not answer on {DEFAULT_URL} within {settings.timeout:g} s; last lines of "
        f"{LOG}:\n{procs.log_tail(LOG, MARKER)}"
    )


def prune_restore_copies(plan: Plan, min_age: float = 600.0) -> None:
    """Remove the checkpoint copies containerd left behind (ctrd-checkpoint*, > 10 min old)."""
    now = time.time()
    dirs = {CONTAINERD_TMP, Path(os.environ.get("TMPDIR") or "/tmp"), Path("/tmp")}
    old = [
        entry
        for directory in sorted(dirs)
        if directory.is_dir()
        for entry in directory.glob("ctrd-checkpoint*")
        if entry.is_dir() and now - entry.stat().st_mtime > min_age
    ]
    if old and plan.tidy(f"remove {len(old)} leftover containerd restore copies (> 10 min old)"):
        for entry in old:
            with contextlib.suppress(OSError):
                shutil.rmtree(entry)


def version_warning(answer: dict[str, Any] | None) -> str | None:
    """What a Docker 28 or newer restores (only through holders or with host networking)."""
    version = str((answer or {}).get("ServerVersion", ""))
    major = version.split(".", 1)[0]
    if major.isdigit() and int(major) >= 28:
        return (
            f"Docker Engine {version} restores only containers that join a network holder "
            "(pytest-criu's default on Docker) or use host networking; "
            "--criu-network-holder=off cannot work here (moby issue 50750)"
        )
    return None
