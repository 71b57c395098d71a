"""Rootful Podman's REST service on a root-only socket, with our CRIU on its PATH."""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..engine.doctor import rules
from ..engine.errors import EngineError
from ..engine.podman import PodmanEngine
from . import conf, procs
from .criu import SYSTEM_PATH
from .plan import Plan
from .system import Runner, SetupError

DEFAULT_URL = "unix:///run/podman/podman.sock"
STATE_DIR = Path("/run/pytest-criu")
LOG = Path("/var/log/pytest-criu-podman.log")
MARKER = "pytest-criu setup starts podman system service"
#: Wanted open-file and process limits inside containers (lowered to the host's hard limits).
ULIMIT_WANT = 1024
USERADD = (
    "useradd",
    "--system",
    "--no-create-home",
    "--home-dir",
    "/nonexistent",
    "--shell",
    "/usr/sbin/nologin",
)
PASSED_ON = ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "CONTAINERS_REGISTRIES_CONF")


@dataclass(frozen=True)
class PodmanSettings:
    url: str = DEFAULT_URL
    timeout: float = 30.0
    containers_conf: Path = conf.CONTAINERS_CONF
    own_conf: bool = False
    """True when CONTAINERS_CONF names the file (an isolated Podman): no drop-in is written."""

    @classmethod
    def from_environment(cls) -> PodmanSettings:
        url = os.environ.get("PYTEST_CRIU_PODMAN_SOCKET") or DEFAULT_URL
        if not url.startswith("unix:///"):
            raise SetupError(
                f"PYTEST_CRIU_PODMAN_SOCKET must be a unix:// URL of an absolute path, not {url!r}"
            )
        own = os.environ.get("CONTAINERS_CONF")
        return cls(
            url=url,
            timeout=float(os.environ.get("PYTEST_CRIU_PODMAN_TIMEOUT") or cls.timeout),
            containers_conf=Path(own) if own else conf.CONTAINERS_CONF,
            own_conf=bool(own),
        )

    @property
    def socket(self) -> Path:
        return Path("/" + self.url.removeprefix("unix:").lstrip("/"))

    @property
    def pidfile(self) -> Path:
        if self.url == DEFAULT_URL:
            return STATE_DIR / "podman-service.pid"
        digest = hashlib.sha256(str(self.socket).encode()).hexdigest()[:12]
        return STATE_DIR / f"podman-service-{digest}.pid"


def hard_limits() -> dict[str, int | None]:
    """This process's hard limits (None: unlimited); the service inherits them."""
    limits: dict[str, int | None] = {}
    for name, which in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
        hard = resource.getrlimit(which)[1]
        limits[name] = None if hard == resource.RLIM_INFINITY else hard
    return limits


def ensure_configuration(plan: Plan, settings: PodmanSettings) -> bool:
    """containers.conf's ulimits and the exit_command_delay drop-in; True when either changed."""
    hard = hard_limits()
    nofile, nproc = (min(ULIMIT_WANT, hard[k] or ULIMIT_WANT) for k in ("nofile", "nproc"))
    path = settings.containers_conf
    new = conf.merge_containers_conf(conf.read(path) or "", nofile, nproc, hard, path)
    changed = conf.apply(plan, path, new, f"default_ulimits nofile={nofile}, nproc={nproc}")
    if settings.own_conf:
        plan.say(
            f"CONTAINERS_CONF is set: not writing {conf.EXIT_DELAY_DROPIN} (set "
            f"exit_command_delay = 5 under [engine] in {path} yourself)"
        )
        return changed
    dropin = conf.merge_exit_delay(conf.read(conf.EXIT_DELAY_DROPIN))
    return conf.apply(plan, conf.EXIT_DELAY_DROPIN, dropin, "exit_command_delay = 5") or changed


def ensure_subordinate_ids(plan: Plan, run: Runner, etc: Path = Path("/etc")) -> bool:
    """A range of subordinate ids for ``--userns=auto`` (userns='auto'); True when added.

    Rootful Podman allocates each such container's uids and gids from the ranges of the user
    ``containers`` in /etc/subuid and /etc/subgid; an existing range is left as it is.
    Podman 5 reads them through shadow's libsubid, which finds only an existing user's
    ranges ("not enough unused IDs in user namespace" without one): a system user that
    cannot log in is made.
    """
    user = rules.PODMAN_AUTO_USER
    start, count = rules.PODMAN_AUTO_RANGE
    changed = False
    if not rules.user_exists(
        (etc / "passwd").read_text() if (etc / "passwd").exists() else "", user
    ):
        changed = True
        if plan.change(f"create the system user {user} (no login; owner of those ids)"):
            made = run((*USERADD, user))
            if not made.ok:
                raise SetupError(f"cannot create the user {user}: {made.why()}")
    for name in ("subuid", "subgid"):
        path = etc / name
        text = conf.read(path) or ""
        if rules.subordinate_range(text, user) is not None:
            continue
        new = text + ("" if not text or text.endswith("\n") else "\n") + f"{user}:{start}:{count}\n"
        what = f"ids {start}+{count} for the user {user} (userns='auto')"
        changed = conf.apply(plan, path, new, what) or changed
    return changed


def serves(pid: int, settings: PodmanSettings, proc: Path = procs.PROC) -> bool:
    """Whether ``pid`` runs ``podman system service`` on our socket (no URL: the default one)."""
    if procs.comm(pid, proc) != "podman":
        return False
    args = procs.cmdline(pid, proc)[1:]
    if "system" not in args or "service" not in args[args.index("system") :]:
        return False
    urls = [arg for arg in args if arg.startswith("unix:")]
    if not urls:
        return settings.url == DEFAULT_URL
    return PodmanSettings(url=urls[-1]).socket == settings.socket


def service_pid(settings: PodmanSettings) -> int | None:
    pid = procs.read_pidfile(settings.pidfile)
    if pid is not None and serves(pid, settings):
        return pid
    return next((p for p in procs.pids("podman") if serves(p, settings)), None)


def answers(settings: PodmanSettings) -> bool:
    try:
        engine = PodmanEngine(settings.url, timeout=5)
    except EngineError:
        return False
    try:
        engine.version()
    except EngineError:
        return False
    finally:
        engine.close()
    return True


def ensure_service(
    plan: Plan, criu: str | None, settings: PodmanSettings, conf_changed: bool
) -> None:
    """Leave a good service alone; start a missing one; restart one that cannot do the job.

    A restart leaves running containers alone (conmon supervises them).
    """
    if criu is not None and shutil.which("criu", path=SYSTEM_PATH) != criu:
        raise SetupError(
            f"the first criu on {SYSTEM_PATH} is {shutil.which('criu', path=SYSTEM_PATH)}, not "
            f"{criu}: Podman's service would run that one; remove it or put CRIU >= 4.2 first"
        )
    pid = service_pid(settings)
    if answers(settings):
        if pid is None:
            plan.say(
                f"a service answers on {settings.socket} but no podman process here serves it; "
                "not checking its PATH (the round trip still tests CRIU)"
            )
            if conf_changed:
                plan.say(
                    "WARNING: restart that service yourself: it has not read the new "
                    f"{settings.containers_conf} or {conf.EXIT_DELAY_DROPIN}"
                )
            check_socket(settings.socket)
            return
        why = "was started before its configuration changed" if conf_changed else None
        why = why or (procs.criu_problem(pid, criu) if criu else None)
        if why is None:
            check_socket(settings.socket)
            return
        if not plan.change(f"restart the Podman service (pid {pid}): it {why}"):
            return
        procs.stop(pid, "podman", say=plan.say)
        settings.pidfile.unlink(missing_ok=True)
    elif pid is not None:
        plan.say(
            f"the Podman service (pid {pid}) does not answer yet; waiting {settings.timeout:g} s"
        )
        seen = pid
        procs.wait_until(
            lambda: answers(settings) or procs.comm(seen) != "podman", settings.timeout
        )
        if answers(settings):
            ensure_service(plan, criu, settings, conf_changed)
            return
        if procs.comm(pid) == "podman":
            if not plan.change(f"restart the Podman service (pid {pid}): it does not answer"):
                return
            procs.stop(pid, "podman", say=plan.say)
        elif not plan.change("start the Podman service"):
            return
    elif not plan.change(f"start the Podman service on {settings.url}"):
        return
    start(plan, settings)
    pid = service_pid(settings)
    if pid is None:
        raise SetupError("the Podman service answers, but its process was not found")
    why = procs.criu_problem(pid, criu) if criu else None
    if why is not None:
        raise SetupError(f"the Podman service was (re)started but still {why}")
    check_socket(settings.socket)


def start(plan: Plan, settings: PodmanSettings) -> None:
    podman = shutil.which("podman", path=SYSTEM_PATH)
    if podman is None:
        raise SetupError(f"podman not found on {SYSTEM_PATH} (package podman)")
    sock = settings.socket
    if sock.exists() or sock.is_symlink():
        plan.say(f"removing stale {sock} (no service answers on it)")
        sock.unlink()
    # /run is a tmpfs: after a boot neither the socket's directory nor ours exists.
    for directory in (STATE_DIR, sock.parent):
        directory.mkdir(parents=True, exist_ok=True, mode=0o755)
    env = {"PATH": SYSTEM_PATH, "HOME": "/root", "LANG": "C.UTF-8"}
    env.update({k: os.environ[k] for k in PASSED_ON if os.environ.get(k)})
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with open(LOG, "a") as log:
        log.write(f"\n==== {stamp} {MARKER} on {settings.url} ====\n")
    argv = ["nohup", podman, "system", "service", "--time=0", settings.url]
    pid = procs.spawn_detached(argv, env, LOG, settings.pidfile)
    deadline = time.monotonic() + settings.timeout
    while time.monotonic() < deadline:
        if answers(settings):
            return
        if not procs.starting_or_running(pid, "podman"):
            raise SetupError(
                f"the Podman service exited during start-up; last lines of {LOG}:\n"
                f"{procs.log_tail(LOG, MARKER)}"
            )
        time.sleep(0.2)
    raise SetupError(
        f"the Podman service did not answer on {sock} within {settings.timeout:g} s; last lines "
        f"of {LOG}:\n{procs.log_tail(LOG, MARKER)}"
    )


def check_socket(sock: Path) -> None:
    """The API is root's: the socket must be root's, mode 0660 or stricter (never widened)."""
    st = sock.stat()
    if st.st_uid != 0:
        raise SetupError(
            f"{sock} belongs to uid {st.st_uid}, not root: anyone with it controls containers; "
            "fix it"
        )
    if st.st_mode & 0o117:
        raise SetupError(
            f"{sock} has mode {st.st_mode & 0o777:o}: more open than 0660 (it gives root); fix "
            "the service or the socket"
        )
