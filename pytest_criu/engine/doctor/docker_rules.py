"""Pure judgements about a Docker daemon: its version, host, experimental mode, network path."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from ..daemon import option_value
from ..holders import describe, network_path
from .report import Check
from .rules import SETUP_HINT, parse_version

dockerd_option = option_value


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


def component_version(version: Mapping[str, Any], name: str) -> str:
    """The version ``GET /version`` reports for component ``name`` (``""`` when absent)."""
    for component in version.get("Components") or []:
        if isinstance(component, Mapping) and component.get("Name") == name:
            return str(component.get("Version") or "")
    return ""


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


def check_docker_host(
    url: str, locality: str, info: Mapping[str, Any], daemon_pid: int | None
) -> Check:
    """Whether the daemon runs on this machine, rootful, outside Docker Desktop."""
    system = str(info.get("OperatingSystem", ""))
    security = [str(option) for option in info.get("SecurityOptions") or []]
    if "docker desktop" in system.lower():
        return Check(
            "docker host",
            "fail",
            f"the daemon is {system}: it runs in a VM without CRIU, and its data root "
            "is not reachable from here",
            "use Docker Engine on a Linux host (e.g. Debian's docker.io) with CRIU",
            blocks_snapshots=True,
        )
    if locality == "remote":
        return Check(
            "docker host",
            "fail",
            f"{url} is a remote daemon: pytest-criu places checkpoint files into the "
            "daemon's data root, which must be on this machine",
            "run the tests on the Docker host and use its unix socket",
            blocks_snapshots=True,
        )
    if any("rootless" in option for option in security):
        return Check(
            "docker host",
            "warn",
            "the daemon runs rootless: checkpoint and restore are untested there",
            "use a rootful dockerd",
        )
    where = f"dockerd pid {daemon_pid}" if daemon_pid else "pid unknown"
    return Check("docker host", "ok", f"local daemon ({system or 'Linux'}, {where})")


def check_experimental(info: Mapping[str, Any], version: Mapping[str, Any], config: str) -> Check:
    """The checkpoint API needs experimental mode; ``config`` is the daemon's config file."""
    experimental = info.get("ExperimentalBuild", version.get("Experimental"))
    if experimental is True or str(experimental).lower() == "true":
        return Check("docker experimental", "ok", "experimental features are enabled")
    return Check(
        "docker experimental",
        "fail",
        "experimental features are disabled: the checkpoint API "
        "(POST /containers/{id}/checkpoints) is only served in experimental mode",
        f'add "experimental": true to {config} and restart dockerd '
        f"(or start dockerd with --experimental; {SETUP_HINT})",
        blocks_snapshots=True,
    )
