"""Host capability detection: can this process checkpoint and restore containers?

Used by ``pytest-criu doctor`` and by the plugin's skip reasons, so both always agree.
Detection never raises and never hangs: every subprocess and API call has a timeout, and
an unhealthy host is reported, not signalled.
"""

from __future__ import annotations

import contextlib
import gzip
import ipaddress
import os
import platform
import re
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import docker
import docker.errors
import docker.utils

from . import procfs
from .connect import engine_url, identify, mismatch, uses_docker_environment
from .daemon import option_value, socket_peer_pid
from .docker import DEFAULT_URL as DEFAULT_DOCKER_URL
from .holders import describe, network_path
from .podman import LIBPOD_VERSION
from .spec import EngineChoice

Status = Literal["ok", "warn", "fail", "skip"]

SETUP_HINT = "sudo pytest-criu setup does this on Debian and Ubuntu"
SETUP_PODMAN_HINT = "sudo pytest-criu setup --engine podman does this on Debian and Ubuntu"
PODMAN_CONF_FILES = ("/usr/share/containers/containers.conf", "/etc/containers/containers.conf")
PODMAN_CONF_D = "/etc/containers/containers.conf.d"
PODMAN_EXIT_DELAY_DEFAULT = 300
#: Seconds an exec session's conmon may linger before it counts as piling up.
PODMAN_EXIT_DELAY_LIMIT = 30
DOCKER_PIDFILES = ("/var/run/docker.pid", "/run/docker.pid")
RUNC_CONF = "/etc/criu/runc.conf"
#: CRIU releases before this one cannot dump TCP sockets on Linux >= 6.x kernels.
CRIU_TCP_MINIMUM = (4, 2)
#: Capability numbers from linux/capability.h.
CAPABILITIES: Mapping[str, int] = {
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_RESOURCE": 24,
    "CAP_CHECKPOINT_RESTORE": 40,
}
#: What each ``/etc/criu/runc.conf`` option is needed for.
RUNC_CONF_OPTIONS: Mapping[str, str] = {
    "tcp-established": "dumping containers with an open TCP connection",
    "file-locks": "dumping services that hold file locks (MariaDB, SQLite)",
}


@dataclass(frozen=True)
class Check:
    """One requirement, its status, what was seen and (when not ok) how to fix it."""

    name: str
    status: Status
    detail: str
    fix: str = ""
    blocks_snapshots: bool = False


@dataclass
class HostReport:
    """Everything detection found out about the host."""

    checks: list[Check] = field(default_factory=list)
    engine: str = "docker"
    """The engine found at the URL: ``docker`` or ``podman``."""
    engine_version: str | None = None
    criu_version: str | None = None
    docker_version: str | None = None
    docker_api_version: str | None = None
    docker_root_dir: str | None = None
    kernel: str | None = None

    @property
    def can_snapshot(self) -> bool:
        """Whether no check rules out checkpoint and restore."""
        return self.snapshot_blocker() is None

    @property
    def ok(self) -> bool:
        """Whether no check failed at all (warnings allowed)."""
        return all(check.status != "fail" for check in self.checks)

    def check(self, name: str) -> Check | None:
        """The check called ``name``, if detection ran it."""
        return next((check for check in self.checks if check.name == name), None)

    def snapshot_blocker(self) -> str | None:
        """Every reason snapshots cannot work, each with its fix, or ``None``."""
        reasons = []
        for check in self.checks:
            if check.status == "fail" and check.blocks_snapshots:
                reason = f"{check.name}: {check.detail}"
                reasons.append(f"{reason} (fix: {check.fix})" if check.fix else reason)
        return "; ".join(reasons) or None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view with a stable shape (used by ``pytest-criu doctor --json``)."""
        return {
            "ok": self.ok,
            "can_snapshot": self.can_snapshot,
            "criu_version": self.criu_version,
            "docker_version": self.docker_version,
            "docker_api_version": self.docker_api_version,
            "docker_root_dir": self.docker_root_dir,
            "kernel": self.kernel,
            "engine": self.engine,
            "engine_version": self.engine_version,
            "checks": [asdict(check) for check in self.checks],
        }


# -- pure helpers (unit-tested without a host) ---------------------------------------------


def parse_version(text: str) -> tuple[int, ...] | None:
    """The first dotted version number in ``text``: ``"Version: 4.2.1"`` -> ``(4, 2, 1)``."""
    match = re.search(r"(?<![\d.])(\d+(?:\.\d+)*)", text)
    if match is None:
        return None
    return tuple(int(part) for part in match.group(1).split("."))


def parse_criu_version(text: str) -> str | None:
    """The version from ``criu --version`` output (``"Version: 4.2.1"``), else ``None``."""
    match = re.search(r"^Version:\s*(\d+(?:\.\d+)*)", text, re.MULTILINE)
    return match.group(1) if match else None


def version_at_least(version: Sequence[int], minimum: Sequence[int]) -> bool:
    """Compare versions of any length; missing parts count as zero (``4.2 >= 4.2.0``)."""
    width = max(len(version), len(minimum))
    padded = tuple(version) + (0,) * (width - len(version))
    wanted = tuple(minimum) + (0,) * (width - len(minimum))
    return padded >= wanted


def parse_cap_eff(status_text: str) -> int | None:
    """The effective capability mask from the text of ``/proc/<pid>/status``."""
    match = re.search(r"^CapEff:\s*([0-9a-fA-F]+)\s*$", status_text, re.MULTILINE)
    return int(match.group(1), 16) if match else None


def capability_names(mask: int) -> frozenset[str]:
    """The names from :data:`CAPABILITIES` that ``mask`` holds."""
    return frozenset(name for name, bit in CAPABILITIES.items() if mask >> bit & 1)


def check_capabilities(mask: int, who: str) -> Check:
    """Judge an effective capability mask of ``who`` (the process CRIU will inherit from)."""
    held = capability_names(mask)
    if "CAP_SYS_ADMIN" not in held and "CAP_CHECKPOINT_RESTORE" not in held:
        return Check(
            "capabilities",
            "fail",
            f"{who} lacks CAP_SYS_ADMIN and CAP_CHECKPOINT_RESTORE (CapEff {mask:016x}): "
            "CRIU can neither dump nor restore",
            "run dockerd and the tests as root with full capabilities "
            "(e.g. docker run --privileged for CI inside a container)",
            blocks_snapshots=True,
        )
    missing = []
    if "CAP_SYS_ADMIN" not in held:
        missing.append("CAP_SYS_ADMIN (restoring namespaces and mounts may fail)")
    if "CAP_SYS_RESOURCE" not in held:
        missing.append(
            "CAP_SYS_RESOURCE (services running as a non-root user inside the container "
            'cannot be dumped: "Can\'t get rlimit: Operation not permitted"; uid 0 services work)'
        )
    if missing:
        return Check(
            "capabilities",
            "warn",
            f"{who} lacks " + "; ".join(missing),
            "grant the missing capabilities (a privileged CI runner has them) or run the "
            "container's services as uid 0",
        )
    return Check("capabilities", "ok", f"{who} has " + ", ".join(sorted(held)))


def known_docker_problem(version: str) -> str | None:
    """Why Docker Engine ``version`` cannot restore some containers, or ``None``."""
    parsed = parse_version(version)
    if parsed and parsed[0] in (28, 29):
        return (
            f"Docker {version} cannot restore containers that have their own network "
            'namespace (bridge or none network: "bind-mount /proc/0/ns/net"; '
            "moby issue 50750)"
        )
    return None


def check_docker_version(version: str, api_version: str) -> Check:
    """Flag Docker Engine releases known to break checkpoint/restore."""
    if known_docker_problem(version):
        return Check(
            "docker version",
            "ok",
            f"{version} (API {api_version}): restores containers that join a network holder "
            "(pytest-criu's default on Docker) or use host networking, not ones with a network "
            "namespace of their own (moby issue 50750)",
        )
    return Check(
        "docker version", "ok", f"{version} (API {api_version}): no known checkpoint regressions"
    )


def check_engine_stack(engine: str, version: str, parts: Mapping[str, str]) -> Check:
    """Name every part of the stack a checkpoint goes through (``parts``: name -> version)."""
    named = ", ".join(f"{name} {part or '?'}" for name, part in parts.items())
    return Check("engine stack", "ok", f"{engine} {version}, {named}")


def parse_containerd_version(text: str) -> str:
    """``2.1.9`` from ``containerd github.com/containerd/containerd/v2 2.1.9 <commit>``."""
    fields = text.split()
    return fields[2] if len(fields) > 2 and fields[0] == "containerd" else ""


def check_network_path(engine: str, version: str) -> Check:
    """Which network path warm containers take by default on this engine."""
    path = network_path(engine, None, "auto")
    detail = f"bridge and none networks: {describe(path)}; host networking: {describe('host')}"
    if engine == "docker" and known_docker_problem(version):
        detail += (
            f" (Docker {version} restores only these two; --criu-network-holder=off cannot work)"
        )
    return Check("network path", "ok", detail)


def check_criu_version(criu_version: str, kernel: str) -> Check:
    """CRIU < 4.2 cannot dump TCP sockets on 6.x kernels (they refuse SO_PASSCRED there)."""
    parsed = parse_version(criu_version)
    kernel_version = parse_version(kernel)
    if parsed is None:
        return Check("criu version", "warn", f"cannot parse CRIU's version {criu_version!r}")
    if kernel_version and kernel_version[0] >= 6 and not version_at_least(parsed, CRIU_TCP_MINIMUM):
        return Check(
            "criu version",
            "warn",
            f"CRIU {criu_version} on Linux {kernel}: dumping any TCP socket is known to fail "
            '("sockets: Can\'t get 1:16 opt: Operation not supported")',
            f"install CRIU >= 4.2 (Debian unstable's criu package; {SETUP_HINT})",
        )
    return Check("criu version", "ok", f"CRIU {criu_version}")


def parse_runc_conf(text: str) -> frozenset[str]:
    """The option names set in a CRIU configuration file (``tcp-established``, ...)."""
    options = set()
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            options.add(words[0].removeprefix("--"))
    return frozenset(options)


def check_runc_conf(text: str | None, path: str = RUNC_CONF) -> Check:
    """Judge the CRIU options runc passes on every checkpoint and restore."""
    present = parse_runc_conf(text or "")
    missing = [option for option in RUNC_CONF_OPTIONS if option not in present]
    if not missing:
        return Check("runc.conf", "ok", f"{path} sets " + ", ".join(RUNC_CONF_OPTIONS))
    why = "; ".join(f"{option} is needed for {RUNC_CONF_OPTIONS[option]}" for option in missing)
    seen = "does not exist" if text is None else "lacks " + ", ".join(missing)
    return Check(
        "runc.conf",
        "warn",
        f"{path} {seen}: {why}",
        f"add the lines {' and '.join(missing)} to {path} ({SETUP_HINT})",
    )


def parse_exit_command_delay(texts: Sequence[str]) -> int | None:
    """``exit_command_delay`` of ``[engine]`` in containers.conf files (later ones win)."""
    found: int | None = None
    for text in texts:
        section = ""
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            if line.startswith("[") and line.endswith("]"):
                section = line.strip("[] ")
                continue
            key, _, value = line.partition("=")
            if section == "engine" and key.strip() == "exit_command_delay":
                with contextlib.suppress(ValueError):
                    found = int(value.strip())
    return found


def parse_kernel_config(text: str, option: str) -> str | None:
    """``"y"``, ``"m"``, ``"n"`` (for "is not set") or ``None`` when ``option`` is absent."""
    for line in text.splitlines():
        if line.startswith(f"{option}="):
            return line.split("=", 1)[1].strip()
        if line.strip() == f"# {option} is not set":
            return "n"
    return None


def docker_url_locality(url: str) -> Literal["local", "remote", "ssh"]:
    """Whether a Docker URL reaches a daemon on this machine (its data root is then ours)."""
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    if parts.scheme in ("unix", "http+unix", "npipe", ""):
        return "local"
    if parts.scheme == "ssh":
        return "ssh"
    host = parts.hostname or ""
    if host in ("", "localhost"):
        return "local"
    try:
        return "local" if ipaddress.ip_address(host).is_loopback else "remote"
    except ValueError:
        return "remote"


def criu_check_lines(output: str, limit: int = 3) -> str:
    """The lines of ``criu check`` output worth quoting, joined into one line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    relevant = [line for line in lines if re.search(r"error|fail|warn|not supported", line, re.I)]
    chosen = (relevant or lines)[:limit]
    return " | ".join(chosen) if chosen else "no output"


def short_error(text: str) -> str:
    """A transport error in a few words: the innermost ``[Errno N] ...`` when there is one."""
    text = " ".join(text.split()).removeprefix("Error while fetching server API version: ")
    errno = re.search(r"\[Errno -?\d+\] [^'\"()]+", text)
    return errno.group(0).strip() if errno else text


dockerd_option = option_value
"""The value of ``--option VALUE`` or ``--option=VALUE`` in a dockerd command line."""


# -- host probing --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Daemon:
    """What /proc tells about the local engine process (dockerd or Podman's service)."""

    pid: int
    cmdline: tuple[str, ...]
    environ: Mapping[str, str] | None
    cap_eff: int | None


@dataclass
class _Probe:
    criu_binary: str
    docker_url: str | None
    timeout: float
    engine_choice: EngineChoice = "auto"
    report: HostReport = field(default_factory=HostReport)
    criu_path: str | None = None
    info: dict[str, Any] | None = None
    daemon: _Daemon | None = None
    libpod_info: dict[str, Any] | None = None

    def add(self, check: Check) -> None:
        self.report.checks.append(check)

    def run(self, name: str, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as error:  # detection reports, it never raises
            self.add(Check(name, "warn", f"could not check: {type(error).__name__}: {error}"))

    # -- docker ----------------------------------------------------------------------------

    def url(self) -> str:
        return engine_url(self.engine_choice, self.docker_url)

    @property
    def daemon_name(self) -> str:
        return "Podman's service" if self.report.engine == "podman" else "dockerd"

    def docker(self) -> None:
        if self.engine_choice == "podman":
            self.report.engine = "podman"
        url = self.url()
        locality = docker_url_locality(url)
        if locality == "ssh":
            self.add(
                Check(
                    "docker",
                    "fail",
                    f"{url} reaches the daemon over ssh: pytest-criu needs the daemon on this "
                    "machine (it writes into the daemon's data root)",
                    "run the tests on the Docker host and point them at its unix socket",
                    blocks_snapshots=True,
                )
            )
            self._skip_dependents("the daemon was not contacted over ssh")
            return
        problem = _unix_socket_problem(url, self.timeout, self.daemon_name)
        if problem:
            self._unreachable(url, problem)
            return
        implicit = uses_docker_environment(self.docker_url, url)
        kwargs: dict[str, Any] = dict(docker.utils.kwargs_from_env()) if implicit else {}
        kwargs["base_url"] = url
        kwargs["timeout"] = self.timeout
        try:
            client = docker.APIClient(version="auto", **kwargs)
        except docker.errors.DockerException as error:
            self._unreachable(url, str(error))
            return
        try:
            version = client.version(api_version=False)
            self.info = client.info()
            found = identify(version)
            if found == "podman":
                self.libpod_info = client.get(
                    f"{client.base_url}/{LIBPOD_VERSION}/libpod/info", timeout=self.timeout
                ).json()
        except Exception as error:  # any transport error: unreachable
            self._unreachable(url, str(error))
            return
        finally:
            client.close()
        problem = mismatch(self.engine_choice, found, url, str(version.get("Version", "")))
        if problem:
            self.add(Check("engine", "fail", problem, blocks_snapshots=True))
            self._skip_dependents(f"not the {self.engine_choice} engine asked for")
            return
        if found == "podman":
            self._podman(url, version)
            return
        info = self.info
        engine = str(version.get("Version", "unknown"))
        api = str(version.get("ApiVersion", client.api_version))
        self.report.docker_version = engine
        self.report.engine_version = engine
        self.report.docker_api_version = api
        self.report.docker_root_dir = info.get("DockerRootDir")
        self.add(Check("docker", "ok", f"Docker Engine {engine} (API {api}) at {url}"))
        self.daemon = _find_daemon(url, self.timeout)
        self._docker_host(url, locality, info)
        self.add(check_docker_version(engine, api))
        containerd = str((info.get("ContainerdCommit") or {}).get("ID", ""))
        self.add(
            check_engine_stack(
                "Docker",
                engine,
                {
                    # Docker 28 with containerd 2 leaves the commit empty: ask the binary.
                    "containerd": containerd or self._managed_containerd_version(),
                    "runc": str((info.get("RuncCommit") or {}).get("ID", "")),
                },
            )
        )
        self.add(check_network_path("docker", engine))
        self._experimental(info, version)

    def _managed_containerd_version(self) -> str:
        """The version of the containerd the local dockerd started, or ``""``."""
        if self.daemon is None:
            return ""
        child = procfs.child_named(self.daemon.pid, "containerd")
        if child is None:
            return ""
        try:
            result = subprocess.run(
                [f"/proc/{child}/exe", "--version"],
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return parse_containerd_version(result.stdout)

    def _podman(self, url: str, version: Mapping[str, Any]) -> None:
        info = self.libpod_info or {}
        release = str(version.get("Version", "unknown"))
        self.report.engine = "podman"
        self.report.engine_version = release
        self.add(
            Check(
                "podman",
                "ok",
                f"Podman {release} (compatible API {version.get('ApiVersion', '?')}) at {url}",
            )
        )
        host = info.get("host") or {}
        runtime = host.get("ociRuntime") or {}
        runtime_version = (str(runtime.get("version", "")).splitlines() or ["?"])[0]
        if (host.get("security") or {}).get("rootless"):
            self.add(
                Check(
                    "podman rootful",
                    "fail",
                    f"{url} is a rootless Podman service: rootless Podman cannot checkpoint "
                    "containers (CRIU needs root privileges a user namespace does not give)",
                    "run `podman system service unix:///run/podman/podman.sock` as root "
                    f"({SETUP_PODMAN_HINT}) and the tests as root",
                    blocks_snapshots=True,
                )
            )
        else:
            self.add(
                Check(
                    "podman rootful",
                    "ok",
                    f"rootful service, OCI runtime {runtime.get('name', '?')} ({runtime_version})",
                )
            )
        conmon = str((host.get("conmon") or {}).get("version", "")).splitlines() or [""]
        self.daemon = _find_daemon(url, self.timeout)
        self.add(
            check_engine_stack(
                "Podman",
                release,
                {
                    "conmon": conmon[0].removeprefix("conmon version ").split(",")[0],
                    str(runtime.get("name", "OCI runtime")): runtime_version.split()[-1],
                    "CRIU": self._daemon_criu_version(),
                },
            )
        )
        self.add(check_network_path("podman", release))
        self.add(self._podman_exit_delay())

    def _daemon_criu_version(self) -> str:
        """The version of the criu the local engine's PATH finds (its runtime runs that one),
        or ``""`` when the engine process or its environment cannot be seen."""
        search = (self.daemon.environ or {}).get("PATH", "") if self.daemon else ""
        found = shutil.which("criu", path=search) if search else None
        if found is None:
            return ""
        output = _run([found, "--version"], self.timeout)
        return parse_criu_version(output.text) or ""

    def _podman_exit_delay(self) -> Check:
        environ = self.daemon.environ if self.daemon and self.daemon.environ else {}
        if environ.get("CONTAINERS_CONF"):
            paths = [environ["CONTAINERS_CONF"]]
        else:
            drop_ins = sorted(str(p) for p in Path(PODMAN_CONF_D).glob("*.conf"))
            paths = [*PODMAN_CONF_FILES, *drop_ins]
        texts = [text for text in (_read_text(path) for path in paths) if text is not None]
        delay = parse_exit_command_delay(texts)
        seconds = PODMAN_EXIT_DELAY_DEFAULT if delay is None else delay
        if seconds <= PODMAN_EXIT_DELAY_LIMIT:
            return Check("podman exec clean-up", "ok", f"exit_command_delay = {seconds} s")
        return Check(
            "podman exec clean-up",
            "warn",
            f"exit_command_delay is {seconds} s: Podman keeps two conmon processes per "
            "handle.exec() (and readiness check by command) for that long after it ends; a "
            "suite with many of them piles up thousands of processes",
            f"set exit_command_delay = 5 under [engine] in {paths[-1]} and restart the service "
            f"({SETUP_PODMAN_HINT})",
        )

    def _unreachable(self, url: str, error: str) -> None:
        error = short_error(error)
        if "timed out" in error.lower():
            error = f"no answer within {self.timeout:g} s"
            fix = "the daemon accepts connections but hangs: restart dockerd"
        elif "Permission denied" in error:
            fix = "run the tests as root (pytest-criu needs root anyway) or fix the socket's owner"
        elif self.engine_choice == "podman":
            fix = f"start Podman's service on {url} ({SETUP_PODMAN_HINT})"
        elif self.docker_url is None and not os.environ.get("DOCKER_HOST"):
            fix = (
                f"start dockerd ({SETUP_HINT}) or point DOCKER_HOST at a running daemon "
                "(or use Podman: --criu-engine=podman)"
            )
        else:
            fix = f"start a Docker daemon listening at {url} or use another daemon's URL"
        podman = self.engine_choice == "podman"
        self.add(
            Check(
                "podman" if podman else "docker",
                "fail",
                f"cannot reach {'Podman' if podman else 'the Docker daemon'} at {url}: {error}",
                fix,
                blocks_snapshots=True,
            )
        )
        self._skip_dependents("Docker daemon not reachable")

    def _skip_dependents(self, why: str) -> None:
        for name in ("docker host", "docker version", "docker experimental"):
            self.add(Check(name, "skip", why))

    def _docker_host(self, url: str, locality: str, info: Mapping[str, Any]) -> None:
        system = str(info.get("OperatingSystem", ""))
        security = [str(option) for option in info.get("SecurityOptions") or []]
        if "docker desktop" in system.lower():
            self.add(
                Check(
                    "docker host",
                    "fail",
                    f"the daemon is {system}: it runs in a VM without CRIU, and its data root "
                    "is not reachable from here",
                    "use Docker Engine on a Linux host (e.g. Debian's docker.io) with CRIU",
                    blocks_snapshots=True,
                )
            )
        elif locality == "remote":
            self.add(
                Check(
                    "docker host",
                    "fail",
                    f"{url} is a remote daemon: pytest-criu places checkpoint files into the "
                    "daemon's data root, which must be on this machine",
                    "run the tests on the Docker host and use its unix socket",
                    blocks_snapshots=True,
                )
            )
        elif any("rootless" in option for option in security):
            self.add(
                Check(
                    "docker host",
                    "warn",
                    "the daemon runs rootless: checkpoint and restore are untested there",
                    "use a rootful dockerd",
                )
            )
        else:
            where = f"dockerd pid {self.daemon.pid}" if self.daemon else "pid unknown"
            self.add(Check("docker host", "ok", f"local daemon ({system or 'Linux'}, {where})"))

    def _experimental(self, info: Mapping[str, Any], version: Mapping[str, Any]) -> None:
        experimental = info.get("ExperimentalBuild", version.get("Experimental"))
        if experimental is True or str(experimental).lower() == "true":
            self.add(Check("docker experimental", "ok", "experimental features are enabled"))
            return
        config = "/etc/docker/daemon.json"
        if self.daemon:
            config = dockerd_option(self.daemon.cmdline, "--config-file") or config
        self.add(
            Check(
                "docker experimental",
                "fail",
                "experimental features are disabled: the checkpoint API "
                "(POST /containers/{id}/checkpoints) is only served in experimental mode",
                f'add "experimental": true to {config} and restart dockerd '
                f"(or start dockerd with --experimental; {SETUP_HINT})",
                blocks_snapshots=True,
            )
        )

    def data_root(self) -> None:
        if self.report.engine == "podman":
            self._podman_storage()
            return
        root = self.report.docker_root_dir
        if self.info is None or not root:
            self.add(Check("docker data root", "skip", "Docker daemon not contacted"))
            return
        containers = Path(root, "containers")
        why = (
            "the plugin writes checkpoint files into <root>/containers/<id>/checkpoints/ "
            "to restore into new containers"
        )
        if not containers.is_dir():
            problem = "does not exist" if not Path(root).exists() else "has no containers/"
            self.add(
                Check(
                    "docker data root",
                    "fail",
                    f"{root} {problem} on this machine; {why}",
                    "run the tests on the Docker host itself",
                    blocks_snapshots=True,
                )
            )
        elif not os.access(containers, os.R_OK | os.W_OK | os.X_OK):
            self.add(
                Check(
                    "docker data root",
                    "fail",
                    f"{containers} is not readable and writable by uid {os.geteuid()}; {why}",
                    "run the tests as root on the Docker host",
                    blocks_snapshots=True,
                )
            )
        else:
            self.add(Check("docker data root", "ok", f"{root} is readable and writable"))

    def _podman_storage(self) -> None:
        store = (self.libpod_info or {}).get("store") or {}
        root = str(store.get("graphRoot") or "")
        why = (
            "the plugin keeps exported checkpoints in the source container's data directory "
            "under <graphRoot>/overlay-containers/"
        )
        if not root:
            self.add(Check("podman storage", "skip", "Podman did not report its graphRoot"))
        elif not os.access(root, os.R_OK | os.W_OK | os.X_OK):
            self.add(
                Check(
                    "podman storage",
                    "fail",
                    f"{root} is not readable and writable by uid {os.geteuid()} on this machine; "
                    + why,
                    "run the tests as root on the Podman host",
                    blocks_snapshots=True,
                )
            )
        else:
            self.add(Check("podman storage", "ok", f"{root} is readable and writable"))

    def user(self) -> None:
        uid = os.geteuid()
        if uid == 0:
            self.add(Check("user", "ok", "running as root"))
            return
        self.add(
            Check(
                "user",
                "fail",
                f"running as uid {uid}: placing checkpoint files into the daemon's data root "
                "and running criu check need root",
                "run the tests as root (e.g. sudo -E .venv/bin/pytest)",
                blocks_snapshots=True,
            )
        )

    def capabilities(self) -> None:
        if self.daemon and self.daemon.cap_eff is not None:
            who = f"{self.daemon_name} (pid {self.daemon.pid})"
            self.add(check_capabilities(self.daemon.cap_eff, who))
            return
        mask = parse_cap_eff(_read_text("/proc/self/status") or "")
        if mask is None:
            self.add(Check("capabilities", "skip", "CapEff not readable from /proc/self/status"))
            return
        self.add(check_capabilities(mask, "this process"))

    # -- criu ------------------------------------------------------------------------------

    def criu(self) -> None:
        path, problem = resolve_executable(self.criu_binary)
        if path is None:
            self.add(
                Check(
                    "criu",
                    "fail",
                    problem,
                    f"install CRIU >= 4.2 ({SETUP_HINT}) or pass the path of a criu binary",
                    blocks_snapshots=True,
                )
            )
            self.add(Check("criu version", "skip", "no usable criu binary"))
            self.add(Check("criu check", "skip", "no usable criu binary"))
            return
        self.criu_path = path
        output = _run([path, "--version"], self.timeout)
        version = parse_criu_version(output.text) if output.returncode == 0 else None
        if version is None:
            if output.returncode == 0:
                seen = f"{path} does not look like CRIU: --version printed "
            else:
                seen = f"{path} --version failed ({output.summary()}): "
            self.add(
                Check(
                    "criu",
                    "fail",
                    seen + criu_check_lines(output.text, limit=1),
                    f"install CRIU >= 4.2 ({SETUP_HINT}) or pass the path of a criu binary",
                    blocks_snapshots=True,
                )
            )
            self.add(Check("criu version", "skip", "no usable criu binary"))
            self.add(Check("criu check", "skip", "no usable criu binary"))
            return
        self.report.criu_version = version
        self.add(Check("criu", "ok", f"{path} (CRIU {self.report.criu_version})"))
        self.add(check_criu_version(self.report.criu_version, self.report.kernel or ""))
        self._criu_check(path)

    def _criu_check(self, path: str) -> None:
        output = _run([path, "check"], self.timeout)
        if output.returncode == 0:
            self.add(Check("criu check", "ok", f"criu check: {criu_check_lines(output.text)}"))
            return
        self.add(
            Check(
                "criu check",
                "fail",
                f"{path} check failed ({output.summary()}): {criu_check_lines(output.text)}",
                "run the tests as root on a kernel with CONFIG_CHECKPOINT_RESTORE=y and CRIU "
                f">= 4.2 ({SETUP_HINT})",
                blocks_snapshots=True,
            )
        )

    def daemon_criu(self) -> None:
        if self.daemon is None:
            self.add(Check("daemon's criu", "skip", f"no local {self.daemon_name} process found"))
            return
        who = f"{self.daemon_name} (pid {self.daemon.pid})"
        if self.daemon.environ is None:
            self.add(Check("daemon's criu", "skip", f"{who}: environment is not readable"))
            return
        search = self.daemon.environ.get("PATH", "")
        found = shutil.which("criu", path=search) if search else None
        if found is None:
            self.add(
                Check(
                    "daemon's criu",
                    "fail",
                    f"{who} finds no criu on its PATH {search or '(unset)'}: runc cannot "
                    "checkpoint",
                    f"restart {self.daemon_name} with a PATH that contains criu >= 4.2 "
                    f"({SETUP_HINT})",
                    blocks_snapshots=True,
                )
            )
            return
        if self.criu_path and os.path.realpath(found) == os.path.realpath(self.criu_path):
            self.add(Check("daemon's criu", "ok", f"{who} uses {found}, the one checked above"))
            return
        output = _run([found, "--version"], self.timeout)
        theirs = parse_criu_version(output.text) or "unknown version"
        self.add(
            Check(
                "daemon's criu",
                "warn",
                f"{who} uses {found} (CRIU {theirs}), not the checked "
                f"{self.criu_path or self.criu_binary}",
                f"put the same criu (>= 4.2) first on {self.daemon_name}'s PATH and restart it, "
                "or check that one with --criu-binary",
            )
        )

    def runc_conf(self) -> None:
        self.add(check_runc_conf(_read_text(RUNC_CONF)))

    # -- kernel ----------------------------------------------------------------------------

    def kernel(self) -> None:
        release = platform.release()
        self.report.kernel = release
        if platform.system() != "Linux":
            self.add(
                Check(
                    "kernel",
                    "fail",
                    f"{platform.system()} {release}: CRIU needs Linux",
                    "run the tests on a Linux host",
                    blocks_snapshots=True,
                )
            )
            return
        self.add(Check("kernel", "ok", f"Linux {release}"))

    def kernel_config(self) -> None:
        option = "CONFIG_CHECKPOINT_RESTORE"
        for path in ("/proc/config.gz", f"/boot/config-{platform.release()}"):
            text = _read_text(path)
            value = parse_kernel_config(text, option) if text else None
            if value is None:
                continue
            if value == "y":
                self.add(Check("kernel config", "ok", f"{option}=y ({path})"))
            else:
                self.add(
                    Check(
                        "kernel config",
                        "fail",
                        f"{option}={value} in {path}: the kernel cannot checkpoint processes",
                        f"boot a kernel built with {option}=y",
                        blocks_snapshots=True,
                    )
                )
            return
        self.add(Check("kernel config", "skip", "no /proc/config.gz or /boot/config-*"))


def detect_host(
    criu_binary: str = "criu",
    docker_url: str | None = None,
    timeout: float = 10.0,
    engine: EngineChoice = "auto",
) -> HostReport:
    """Check everything checkpoint/restore through Docker or Podman needs, without raising.

    ``criu_binary`` is a path or a name looked up on PATH; ``docker_url`` (the engine's
    socket) defaults as :func:`~pytest_criu.engine.connect.engine_url` says; ``timeout``
    bounds every subprocess and API call.
    """
    probe = _Probe(criu_binary, docker_url, timeout, engine)
    # Order matters: the first blocking failure becomes the plugin's skip reason.
    steps: list[tuple[str, Callable[[], None]]] = [
        ("kernel", probe.kernel),
        ("docker", probe.docker),
        ("user", probe.user),
        ("docker data root", probe.data_root),
        ("criu", probe.criu),
        ("daemon's criu", probe.daemon_criu),
        ("capabilities", probe.capabilities),
        ("runc.conf", probe.runc_conf),
        ("kernel config", probe.kernel_config),
    ]
    for name, step in steps:
        probe.run(name, step)
    return probe.report


def resolve_executable(binary: str) -> tuple[str | None, str]:
    """``(path, "")`` for an executable path or PATH name, else ``(None, why not)``."""
    if os.sep in binary:
        if not os.path.exists(binary):
            return None, f"{binary} does not exist"
        if os.path.isdir(binary):
            return None, f"{binary} is a directory, not the criu binary"
        if not os.access(binary, os.X_OK):
            return None, f"{binary} is not executable"
        return binary, ""
    found = shutil.which(binary)
    if found is None:
        return None, f"{binary} is not on this process's PATH"
    return found, ""


@dataclass(frozen=True)
class _Output:
    returncode: int | None
    text: str
    timeout: float

    def summary(self) -> str:
        if self.returncode is None:
            return f"no answer within {self.timeout:g} s"
        return f"exit status {self.returncode}"


def _run(command: Sequence[str], timeout: float) -> _Output:
    try:
        completed = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        partial = expired.output or b""
        return _Output(None, partial.decode(errors="replace"), timeout)
    except OSError as error:
        return _Output(-1, str(error), timeout)
    return _Output(completed.returncode, completed.stdout.decode(errors="replace"), timeout)


def _read_text(path: str) -> str | None:
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rt", errors="replace") as stream:
                return stream.read()
        return Path(path).read_text(errors="replace")
    except (OSError, EOFError):
        return None


def _find_daemon(url: str, timeout: float) -> _Daemon | None:
    """The local dockerd behind ``url``: the socket's peer, else the default pid file."""
    pid = None
    parts = urlsplit(url)
    if parts.scheme in ("unix", "http+unix"):
        pid = socket_peer_pid(parts.path, timeout)
    if pid is not None and not _is_engine(pid):
        pid = None  # e.g. systemd socket activation: the peer is pid 1
    if pid is None and url in (DEFAULT_DOCKER_URL, "unix:///run/docker.sock"):
        pid = _pid_from_files(DOCKER_PIDFILES)
    if pid is None or not _is_engine(pid):
        return None
    cmdline = _read_bytes(f"/proc/{pid}/cmdline")
    environ = _read_bytes(f"/proc/{pid}/environ")
    return _Daemon(
        pid=pid,
        cmdline=tuple(_split_nul(cmdline or b"")),
        environ=_parse_environ(_split_nul(environ)) if environ is not None else None,
        cap_eff=parse_cap_eff(_read_text(f"/proc/{pid}/status") or ""),
    )


def _unix_socket_problem(url: str, timeout: float, daemon: str = "dockerd") -> str | None:
    """Why nothing answers on a ``unix://`` URL, in plain words (``None``: try the API)."""
    parts = urlsplit(url)
    if parts.scheme not in ("unix", "http+unix"):
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(parts.path)
    except FileNotFoundError:
        return f"no socket at {parts.path} ({daemon} is not running)"
    except ConnectionRefusedError:
        return f"connection refused on {parts.path} (stale socket: {daemon} is not running)"
    except PermissionError:
        return f"Permission denied on {parts.path}"
    except OSError as error:
        return f"{parts.path}: {error.strerror or error}"
    return None


def _pid_from_files(paths: Iterable[str]) -> int | None:
    for path in paths:
        text = _read_text(path)
        if text and text.strip().isdigit():
            return int(text.strip())
    return None


def _is_engine(pid: int) -> bool:
    """Whether ``pid`` runs ``dockerd`` or ``podman`` (Podman's service)."""
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe")) in ("dockerd", "podman")
    except OSError:
        return False


def _read_bytes(path: str) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


def _split_nul(data: bytes) -> list[str]:
    return [part.decode(errors="replace") for part in data.split(b"\0") if part]


def _parse_environ(entries: Iterable[str]) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)
