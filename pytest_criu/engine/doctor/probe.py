"""The doctor's run: every check in order, on this host, never raising and never hanging."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import procfs
from ..criu_images import NFTABLES_LOCK_CHECK
from ..spec import EngineChoice
from . import system
from .engines import data_root, probe_engine
from .report import Check, HostReport
from .rules import (
    RUNC_CONF,
    SETUP_HINT,
    check_capabilities,
    check_criu_version,
    check_network_lock,
    check_runc_conf,
    check_user_namespaces,
    criu_check_lines,
    parse_cap_eff,
    parse_criu_version,
    parse_kernel_config,
    parse_runc_conf,
)


@dataclass
class Probe:
    """What one doctor run learnt so far; each step adds its checks to :attr:`report`."""

    criu_binary: str
    docker_url: str | None
    timeout: float
    engine_choice: EngineChoice = "auto"
    report: HostReport = field(default_factory=HostReport)
    criu_path: str | None = None
    info: dict[str, Any] | None = None
    """The engine's ``GET /info``, once it answered."""
    daemon: system.EngineProcess | None = None
    libpod_info: dict[str, Any] | None = None

    def add(self, check: Check) -> None:
        self.report.checks.append(check)

    def run(self, name: str, step: Callable[[Probe], None]) -> None:
        try:
            step(self)
        except Exception as error:  # detection reports, it never raises
            self.add(Check(name, "warn", f"could not check: {type(error).__name__}: {error}"))

    @property
    def daemon_name(self) -> str:
        return "Podman's service" if self.report.engine == "podman" else "dockerd"


def user(probe: Probe) -> None:
    uid = os.geteuid()
    if uid == 0:
        probe.add(Check("user", "ok", "running as root"))
        return
    probe.add(
        Check(
            "user",
            "fail",
            f"running as uid {uid}: placing checkpoint files into the daemon's data root "
            "and running criu check need root",
            "run the tests as root (e.g. sudo -E .venv/bin/pytest)",
            blocks_snapshots=True,
        )
    )


def capabilities(probe: Probe) -> None:
    daemon = probe.daemon
    if daemon and daemon.cap_eff is not None:
        probe.add(check_capabilities(daemon.cap_eff, f"{probe.daemon_name} (pid {daemon.pid})"))
        return
    mask = parse_cap_eff(procfs.status())
    if mask is None:
        probe.add(Check("capabilities", "skip", "CapEff not readable from /proc/self/status"))
        return
    probe.add(check_capabilities(mask, "this process"))


def user_namespaces(probe: Probe) -> None:
    daemon = probe.daemon
    cap_eff = daemon.cap_eff if daemon and daemon.cap_eff is not None else None
    if cap_eff is None:
        cap_eff = parse_cap_eff(procfs.status())
    report = probe.report
    probe.add(
        check_user_namespaces(
            report.engine,
            cap_eff,
            docker_remapped=report.docker_userns_remap,
            subuid=system.read_text("/etc/subuid"),
            subgid=system.read_text("/etc/subgid"),
            passwd=system.read_text("/etc/passwd"),
            engine_version=report.engine_version or "",
        )
    )


def criu(probe: Probe) -> None:
    path, problem = system.resolve_executable(probe.criu_binary)
    fix = f"install CRIU >= 4.2 ({SETUP_HINT}) or pass the path of a criu binary"
    if path is None:
        _no_criu(probe, Check("criu", "fail", problem, fix, blocks_snapshots=True))
        return
    probe.criu_path = path
    output = system.run([path, "--version"], probe.timeout)
    version = parse_criu_version(output.text) if output.returncode == 0 else None
    if version is None:
        if output.returncode == 0:
            seen = f"{path} does not look like CRIU: --version printed "
        else:
            seen = f"{path} --version failed ({output.summary()}): "
        detail = seen + criu_check_lines(output.text, limit=1)
        _no_criu(probe, Check("criu", "fail", detail, fix, blocks_snapshots=True))
        return
    probe.report.criu_version = version
    probe.add(Check("criu", "ok", f"{path} (CRIU {version})"))
    probe.add(check_criu_version(version, probe.report.kernel or ""))
    checked = system.run([path, "check"], probe.timeout)
    if checked.returncode == 0:
        probe.add(Check("criu check", "ok", f"criu check: {criu_check_lines(checked.text)}"))
        return
    probe.add(
        Check(
            "criu check",
            "fail",
            f"{path} check failed ({checked.summary()}): {criu_check_lines(checked.text)}",
            "run the tests as root on a kernel with CONFIG_CHECKPOINT_RESTORE=y and CRIU "
            f">= 4.2 ({SETUP_HINT})",
            blocks_snapshots=True,
        )
    )


def _no_criu(probe: Probe, failed: Check) -> None:
    probe.add(failed)
    probe.add(Check("criu version", "skip", "no usable criu binary"))
    probe.add(Check("criu check", "skip", "no usable criu binary"))


def daemon_criu(probe: Probe) -> None:
    daemon, name = probe.daemon, probe.daemon_name
    if daemon is None:
        probe.add(Check("daemon's criu", "skip", f"no local {name} process found"))
        return
    who = f"{name} (pid {daemon.pid})"
    if daemon.environ is None:
        probe.add(Check("daemon's criu", "skip", f"{who}: environment is not readable"))
        return
    search = daemon.environ.get("PATH", "")
    found = system.which("criu", search) if search else None
    if found is None:
        probe.add(
            Check(
                "daemon's criu",
                "fail",
                f"{who} finds no criu on its PATH {search or '(unset)'}: runc cannot checkpoint",
                f"restart {name} with a PATH that contains criu >= 4.2 ({SETUP_HINT})",
                blocks_snapshots=True,
            )
        )
        return
    if probe.criu_path and os.path.realpath(found) == os.path.realpath(probe.criu_path):
        probe.add(Check("daemon's criu", "ok", f"{who} uses {found}, the one checked above"))
        return
    output = system.run([found, "--version"], probe.timeout)
    theirs = parse_criu_version(output.text) or "unknown version"
    probe.add(
        Check(
            "daemon's criu",
            "warn",
            f"{who} uses {found} (CRIU {theirs}), not the checked "
            f"{probe.criu_path or probe.criu_binary}",
            f"put the same criu (>= 4.2) first on {name}'s PATH and restart it, "
            "or check that one with --criu-binary",
        )
    )


def runc_conf(probe: Probe) -> None:
    text = system.read_text(RUNC_CONF)
    probe.add(check_runc_conf(text))
    if probe.criu_path is None:
        return
    nftables = False
    if "network-lock" not in parse_runc_conf(text or ""):  # else the probe would not matter
        feature = [probe.criu_path, *NFTABLES_LOCK_CHECK]
        nftables = system.run(feature, probe.timeout).returncode == 0
    probe.add(check_network_lock(text, nftables))


def kernel(probe: Probe) -> None:
    release = platform.release()
    probe.report.kernel = release
    if platform.system() != "Linux":
        probe.add(
            Check(
                "kernel",
                "fail",
                f"{platform.system()} {release}: CRIU needs Linux",
                "run the tests on a Linux host",
                blocks_snapshots=True,
            )
        )
        return
    probe.add(Check("kernel", "ok", f"Linux {release}"))


def kernel_config(probe: Probe) -> None:
    option = "CONFIG_CHECKPOINT_RESTORE"
    for path in ("/proc/config.gz", f"/boot/config-{platform.release()}"):
        text = system.read_text(path)
        value = parse_kernel_config(text, option) if text else None
        if value is None:
            continue
        if value == "y":
            probe.add(Check("kernel config", "ok", f"{option}=y ({path})"))
        else:
            probe.add(
                Check(
                    "kernel config",
                    "fail",
                    f"{option}={value} in {path}: the kernel cannot checkpoint processes",
                    f"boot a kernel built with {option}=y",
                    blocks_snapshots=True,
                )
            )
        return
    probe.add(Check("kernel config", "skip", "no /proc/config.gz or /boot/config-*"))


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
    probe = Probe(criu_binary, docker_url, timeout, engine)
    # Order matters: the first blocking failure becomes the plugin's skip reason.
    steps: list[tuple[str, Callable[[Probe], None]]] = [
        ("kernel", kernel),
        ("docker", probe_engine),
        ("user", user),
        ("docker data root", data_root),
        ("criu", criu),
        ("daemon's criu", daemon_criu),
        ("capabilities", capabilities),
        ("non-root services", user_namespaces),
        ("runc.conf", runc_conf),
        ("kernel config", kernel_config),
    ]
    for name, step in steps:
        probe.run(name, step)
    return probe.report
