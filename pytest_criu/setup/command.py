"""``pytest-criu setup``: every step in order, for the engines asked for."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

from ..engine.base import ContainerEngine
from ..engine.docker import DEFAULT_URL as DOCKER_URL
from ..engine.docker import DockerEngine
from ..engine.holders import network_path
from ..engine.podman import PodmanEngine
from . import conf, dockerd, image, podman
from .apt import Apt
from .criu import SYSTEM_PATH, CriuSettings, ensure_criu, locks_with_nftables, version_of
from .plan import Plan
from .roundtrip import round_trip
from .system import Runner, SetupError, run

ENGINES = ("docker", "podman", "all")
#: What each engine needs from the distribution (busybox-static: the round trip's image).
PACKAGES = {
    "docker": ("docker.io", "busybox-static", "ca-certificates", "iptables"),
    # uidmap: newuidmap, so that rootless Podman can start and be refused with a clear reason.
    "podman": ("podman", "uidmap", "busybox-static", "ca-certificates"),
}
#: The package that brings Docker's engine; left out where another engine build is installed.
DOCKER_PACKAGE = "docker.io"
#: Variables that would point the engine CLIs and clients away from the local daemons.
REMOTE_VARIABLES = ("DOCKER_HOST", "DOCKER_CONTEXT", "CONTAINER_HOST", "CONTAINER_CONNECTION")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="docker",
        help="which engine to set up: docker (default), podman (rootful service), or all",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="change nothing: say what would change, exit 1 when anything would",
    )
    parser.add_argument(
        "--no-round-trip",
        dest="round_trip",
        action="store_false",
        help="skip the closing checkpoint/restore round trip",
    )


def main(args: argparse.Namespace, out: TextIO = sys.stdout, runner: Runner = run) -> int:
    """Run the set-up; 0 when the host is ready (or, with --check, when nothing is missing)."""

    def say(message: str) -> None:
        out.write(f"[setup] {message}\n")
        out.flush()

    if os.geteuid() != 0:
        sys.stderr.write(
            "pytest-criu setup: must run as root (it installs packages and starts daemons): "
            f"sudo pytest-criu setup{' --check' if args.check else ''}\n"
        )
        return 1
    if platform.system() != "Linux" or shutil.which("apt-get") is None:
        sys.stderr.write("pytest-criu setup: needs a Debian or Ubuntu host (apt-get not found)\n")
        return 1
    for variable in REMOTE_VARIABLES:
        os.environ.pop(variable, None)
    started = time.monotonic()
    plan = Plan(check=args.check, say=say)
    try:
        lines = setup(runner, plan, args.engine, round_trips=args.round_trip and not args.check)
    except SetupError as error:
        say(f"ERROR: {error}")
        say(plan.summary())
        return 1
    for line in lines:
        say(line)
    say(plan.summary())
    say(f"done in {time.monotonic() - started:.1f} s")
    return 1 if plan.check and plan.changes else 0


def setup(run: Runner, plan: Plan, engine: str, *, round_trips: bool) -> list[str]:
    """Every step for ``engine``; returns the closing report lines."""
    engines = ["docker", "podman"] if engine == "all" else [engine]
    apt = Apt(run, plan)
    wanted = list(dict.fromkeys(p for e in engines for p in PACKAGES[e]))
    missing = apt.missing(wanted)
    dockerd_found = shutil.which("dockerd", path=SYSTEM_PATH)
    if DOCKER_PACKAGE in missing and dockerd_found:
        # docker-ce (GitHub's runners, Docker's own packages): installing docker.io beside it
        # would make apt remove docker-ce and containerd.io.
        plan.say(f"using the installed Docker Engine ({dockerd_found}); not installing docker.io")
    missing = packages_to_install(missing, dockerd_found)
    apt.install(missing)
    installed = not (plan.check and missing)

    criu = ensure_criu(run, apt, plan, CriuSettings.from_environment()) if installed else None
    nftables = criu is not None and locks_with_nftables(run, criu)
    merged = conf.merge_runc_conf(conf.read(conf.RUNC_CONF) or "", nftables_lock=nftables)
    options = "tcp-established, file-locks" + (", network-lock nftables" if nftables else "")
    conf.apply(plan, conf.RUNC_CONF, merged, options)
    report: list[str] = []
    if criu:
        report.append(f"criu {version_of(run, criu)} at {criu} (criu check passed)")
    reference = os.environ.get("PYTEST_CRIU_TINY_IMAGE") or f"{image.REPOSITORY}:latest"
    if "docker" in engines:
        path = conf.DAEMON_JSON
        conf.apply(plan, path, conf.merge_daemon_json(conf.read(path) or "", path),
                   '"experimental": true (the checkpoint API)')  # fmt: skip
        if installed:
            dockerd.ensure_dockerd(run, plan, criu, dockerd.DockerdSettings.from_environment())
            dockerd.prune_restore_copies(plan)
            answer = dockerd.info()
            warning = dockerd.version_warning(answer)
            if warning:
                plan.say(f"note: {warning}")
            if answer:
                report.append(f"docker engine {answer.get('ServerVersion')}, experimental on")
        if round_trips and image.ensure_tiny(run, plan, "docker", reference):
            report.append(
                "docker: checkpoint/restore round trip "
                + _trip(DockerEngine, DOCKER_URL, reference, plan.say)
            )
    if "podman" in engines:
        settings = podman.PodmanSettings.from_environment()
        conf_changed = podman.ensure_configuration(plan, settings)
        podman.ensure_subordinate_ids(plan, run)
        if installed:
            podman.ensure_service(plan, criu, settings, conf_changed)
            report.append(f"podman service on {settings.url}")
        if round_trips and image.ensure_tiny(run, plan, "podman", reference):
            report.append(
                "podman: checkpoint/restore round trip "
                + _trip(PodmanEngine, settings.url, reference, plan.say)
            )
    if not round_trips:
        report.append("round trip: not run (--check or --no-round-trip)")
    return report


def packages_to_install(missing: list[str], dockerd: str | None) -> list[str]:
    """``missing`` without docker.io when a ``dockerd`` from another package is installed."""
    return [p for p in missing if not (p == DOCKER_PACKAGE and dockerd)]


def _trip(
    kind: type[DockerEngine] | type[PodmanEngine],
    url: str,
    reference: str,
    say: Callable[[str], None],
) -> str:
    engine: ContainerEngine = kind(url, timeout=120)
    # Docker: through network holders, the path the plugin takes there by default.
    holders = network_path(engine.name, None, "auto") == "holder"
    try:
        return str(round_trip(engine, reference, say, holders=holders))
    finally:
        engine.close()
