"""The doctor's engine checks: reach the engine through the engine layer, then judge it.

One function per engine after the common connection: :func:`docker_checks` and
:func:`podman_checks` turn what the daemon reported into checks with the pure rules of
:mod:`.docker_rules` and :mod:`.podman_rules`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import procfs
from ..connect import engine_url, identify, mismatch, uses_docker_environment
from ..docker import DockerEngine
from ..podman_workarounds import LIBPOD_VERSION
from . import system
from .docker_rules import (
    check_docker_host,
    check_docker_version,
    check_experimental,
    check_network_path,
    component_version,
    docker_url_locality,
    dockerd_option,
    parse_containerd_version,
)
from .podman_rules import (
    PODMAN_CONF_D,
    PODMAN_CONF_FILES,
    check_exit_delay,
    check_rootful,
    parse_exit_command_delay,
    stack_parts,
)
from .report import Check
from .rules import (
    SETUP_HINT,
    SETUP_PODMAN_HINT,
    check_engine_stack,
    parse_criu_version,
    short_error,
)

if TYPE_CHECKING:
    from .probe import Probe

DEPENDENT_CHECKS = ("docker host", "docker version", "docker experimental")


def probe_engine(probe: Probe) -> None:
    """Reach the engine at the probe's URL; add what Docker or Podman reports."""
    if probe.engine_choice == "podman":
        probe.report.engine = "podman"
    url = engine_url(probe.engine_choice, probe.docker_url)
    locality = docker_url_locality(url)
    if locality == "ssh":
        probe.add(
            Check(
                "docker",
                "fail",
                f"{url} reaches the daemon over ssh: pytest-criu needs the daemon on this "
                "machine (it writes into the daemon's data root)",
                "run the tests on the Docker host and point them at its unix socket",
                blocks_snapshots=True,
            )
        )
        _skip_dependents(probe, "the daemon was not contacted over ssh")
        return
    problem = system.unix_socket_problem(url, probe.timeout, probe.daemon_name)
    if problem:
        _unreachable(probe, url, problem)
        return
    implicit = uses_docker_environment(probe.docker_url, url)
    try:
        engine = DockerEngine(None if implicit else url, timeout=probe.timeout)
    except Exception as error:  # any connection problem: unreachable
        _unreachable(probe, url, str(error))
        return
    try:
        version = engine.version()
        probe.info = engine.info()
        found = identify(version)
        if found == "podman":
            answer = engine.api.get(
                f"{engine.api.base_url}/{LIBPOD_VERSION}/libpod/info", timeout=probe.timeout
            )
            probe.libpod_info = answer.json()
        api_version = str(version.get("ApiVersion", engine.api.api_version))
    except Exception as error:  # any transport error: unreachable
        _unreachable(probe, url, str(error))
        return
    finally:
        engine.close()
    problem = mismatch(probe.engine_choice, found, url, str(version.get("Version", "")))
    if problem:
        probe.add(Check("engine", "fail", problem, blocks_snapshots=True))
        _skip_dependents(probe, f"not the {probe.engine_choice} engine asked for")
    elif found == "podman":
        podman_checks(probe, url, version, probe.libpod_info or {})
    else:
        docker_checks(probe, url, locality, version, info=probe.info, api_version=api_version)


def docker_checks(
    probe: Probe,
    url: str,
    locality: str,
    version: Mapping[str, Any],
    *,
    info: Mapping[str, Any],
    api_version: str,
) -> None:
    """Judge a Docker daemon: version, host, stack, network path, experimental mode."""
    engine = str(version.get("Version", "unknown"))
    report = probe.report
    report.docker_version = report.engine_version = engine
    report.docker_api_version = api_version
    report.docker_root_dir = info.get("DockerRootDir")
    report.docker_userns_remap = any(
        "name=userns" in str(option) for option in info.get("SecurityOptions") or []
    )
    probe.add(Check("docker", "ok", f"Docker Engine {engine} (API {api_version}) at {url}"))
    probe.daemon = system.find_engine_process(url, probe.timeout)
    probe.add(check_docker_host(url, locality, info, probe.daemon.pid if probe.daemon else None))
    probe.add(check_docker_version(engine, api_version))
    containerd = str((info.get("ContainerdCommit") or {}).get("ID", ""))
    probe.add(
        check_engine_stack(
            "Docker",
            engine,
            {
                # Docker 28 with containerd 2 leaves the commit empty: the version's
                # components name it (also a containerd of its own service, as docker-ce
                # runs it), else ask the binary dockerd started.
                "containerd": containerd
                or component_version(version, "containerd")
                or _managed_containerd_version(probe),
                "runc": str((info.get("RuncCommit") or {}).get("ID", "")),
            },
        )
    )
    probe.add(check_network_path("docker", engine))
    config = "/etc/docker/daemon.json"
    if probe.daemon:
        config = dockerd_option(probe.daemon.cmdline, "--config-file") or config
    probe.add(check_experimental(info, version, config))


def podman_checks(
    probe: Probe, url: str, version: Mapping[str, Any], libpod_info: Mapping[str, Any]
) -> None:
    """Judge a Podman service: rootful, its stack, network path, exec clean-up."""
    release = str(version.get("Version", "unknown"))
    probe.report.engine = "podman"
    probe.report.engine_version = release
    probe.add(
        Check(
            "podman",
            "ok",
            f"Podman {release} (compatible API {version.get('ApiVersion', '?')}) at {url}",
        )
    )
    probe.add(check_rootful(url, libpod_info))
    probe.daemon = system.find_engine_process(url, probe.timeout)
    parts = {**stack_parts(libpod_info), "CRIU": _daemon_criu_version(probe)}
    probe.add(check_engine_stack("Podman", release, parts))
    probe.add(check_network_path("podman", release))
    environ = probe.daemon.environ if probe.daemon and probe.daemon.environ else {}
    if environ.get("CONTAINERS_CONF"):
        paths = [environ["CONTAINERS_CONF"]]
    else:
        drop_ins = sorted(str(p) for p in Path(PODMAN_CONF_D).glob("*.conf"))
        paths = [*PODMAN_CONF_FILES, *drop_ins]
    texts = [text for text in (system.read_text(path) for path in paths) if text is not None]
    probe.add(check_exit_delay(parse_exit_command_delay(texts), paths[-1]))


def data_root(probe: Probe) -> None:
    """Whether this process can write where the plugin places checkpoint files."""
    if probe.report.engine == "podman":
        _podman_storage(probe)
        return
    root = probe.report.docker_root_dir
    if probe.info is None or not root:
        probe.add(Check("docker data root", "skip", "Docker daemon not contacted"))
        return
    containers = Path(root, "containers")
    why = (
        "the plugin writes checkpoint files into <root>/containers/<id>/checkpoints/ "
        "to restore into new containers"
    )
    if not containers.is_dir():
        problem = "does not exist" if not Path(root).exists() else "has no containers/"
        probe.add(
            Check(
                "docker data root",
                "fail",
                f"{root} {problem} on this machine; {why}",
                "run the tests on the Docker host itself",
                blocks_snapshots=True,
            )
        )
    elif not system.writable(containers):
        probe.add(
            Check(
                "docker data root",
                "fail",
                f"{containers} is not readable and writable by uid {os.geteuid()}; {why}",
                "run the tests as root on the Docker host",
                blocks_snapshots=True,
            )
        )
    else:
        probe.add(Check("docker data root", "ok", f"{root} is readable and writable"))


def _podman_storage(probe: Probe) -> None:
    store = (probe.libpod_info or {}).get("store") or {}
    root = str(store.get("graphRoot") or "")
    why = (
        "the plugin keeps exported checkpoints in the source container's data directory "
        "under <graphRoot>/overlay-containers/"
    )
    if not root:
        probe.add(Check("podman storage", "skip", "Podman did not report its graphRoot"))
    elif not system.writable(root):
        probe.add(
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
        probe.add(Check("podman storage", "ok", f"{root} is readable and writable"))


def _managed_containerd_version(probe: Probe) -> str:
    """The version of the containerd the local dockerd started, or ``""``."""
    if probe.daemon is None:
        return ""
    child = procfs.child_named(probe.daemon.pid, "containerd")
    if child is None:
        return ""
    try:
        result = subprocess.run(
            [f"/proc/{child}/exe", "--version"],
            capture_output=True,
            text=True,
            timeout=probe.timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return parse_containerd_version(result.stdout)


def _daemon_criu_version(probe: Probe) -> str:
    """The version of the criu the engine's PATH finds (its runtime runs that one), or ``""``
    when the engine process or its environment cannot be seen."""
    search = (probe.daemon.environ or {}).get("PATH", "") if probe.daemon else ""
    found = system.which("criu", search) if search else None
    if found is None:
        return ""
    return parse_criu_version(system.run([found, "--version"], probe.timeout).text) or ""


def _unreachable(probe: Probe, url: str, error: str) -> None:
    error = short_error(error)
    if "timed out" in error.lower():
        error = f"no answer within {probe.timeout:g} s"
        fix = "the daemon accepts connections but hangs: restart dockerd"
    elif "Permission denied" in error:
        fix = "run the tests as root (pytest-criu needs root anyway) or fix the socket's owner"
    elif probe.engine_choice == "podman":
        fix = f"start Podman's service on {url} ({SETUP_PODMAN_HINT})"
    elif probe.docker_url is None and not os.environ.get("DOCKER_HOST"):
        fix = (
            f"start dockerd ({SETUP_HINT}) or point DOCKER_HOST at a running daemon "
            "(or use Podman: --criu-engine=podman)"
        )
    else:
        fix = f"start a Docker daemon listening at {url} or use another daemon's URL"
    podman = probe.engine_choice == "podman"
    probe.add(
        Check(
            "podman" if podman else "docker",
            "fail",
            f"cannot reach {'Podman' if podman else 'the Docker daemon'} at {url}: {error}",
            fix,
            blocks_snapshots=True,
        )
    )
    _skip_dependents(probe, "Docker daemon not reachable")


def _skip_dependents(probe: Probe, why: str) -> None:
    for name in DEPENDENT_CHECKS:
        probe.add(Check(name, "skip", why))
