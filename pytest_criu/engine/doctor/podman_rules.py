"""Pure judgements about a Podman service: rootful or not, its stack, its exec clean-up."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from .report import Check
from .rules import SETUP_PODMAN_HINT

PODMAN_CONF_FILES = ("/usr/share/containers/containers.conf", "/etc/containers/containers.conf")

PODMAN_CONF_D = "/etc/containers/containers.conf.d"

PODMAN_EXIT_DELAY_DEFAULT = 300

#: Seconds an exec session's conmon may linger before it counts as piling up.
PODMAN_EXIT_DELAY_LIMIT = 30


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


def check_rootful(url: str, libpod_info: Mapping[str, Any]) -> Check:
    """Rootless Podman cannot checkpoint; a rootful one names its OCI runtime."""
    host = libpod_info.get("host") or {}
    runtime = host.get("ociRuntime") or {}
    if (host.get("security") or {}).get("rootless"):
        return Check(
            "podman rootful",
            "fail",
            f"{url} is a rootless Podman service: rootless Podman cannot checkpoint "
            "containers (CRIU needs root privileges a user namespace does not give)",
            "run `podman system service unix:///run/podman/podman.sock` as root "
            f"({SETUP_PODMAN_HINT}) and the tests as root",
            blocks_snapshots=True,
        )
    return Check(
        "podman rootful",
        "ok",
        f"rootful service, OCI runtime {runtime.get('name', '?')} ({runtime_version(libpod_info)})",
    )


def runtime_version(libpod_info: Mapping[str, Any]) -> str:
    """The first line of the OCI runtime's version (``runc version 1.1.5``), or ``?``."""
    runtime = (libpod_info.get("host") or {}).get("ociRuntime") or {}
    return (str(runtime.get("version", "")).splitlines() or ["?"])[0]


def stack_parts(libpod_info: Mapping[str, Any]) -> dict[str, str]:
    """conmon's and the OCI runtime's versions, by name, for the stack check."""
    host = libpod_info.get("host") or {}
    runtime = host.get("ociRuntime") or {}
    conmon = str((host.get("conmon") or {}).get("version", "")).splitlines() or [""]
    return {
        "conmon": conmon[0].removeprefix("conmon version ").split(",")[0],
        str(runtime.get("name", "OCI runtime")): runtime_version(libpod_info).split()[-1],
    }


def check_exit_delay(delay: int | None, path: str) -> Check:
    """conmon processes pile up when exec sessions linger (``path``: the file to change)."""
    seconds = PODMAN_EXIT_DELAY_DEFAULT if delay is None else delay
    if seconds <= PODMAN_EXIT_DELAY_LIMIT:
        return Check("podman exec clean-up", "ok", f"exit_command_delay = {seconds} s")
    return Check(
        "podman exec clean-up",
        "warn",
        f"exit_command_delay is {seconds} s: Podman keeps two conmon processes per "
        "handle.exec() (and readiness check by command) for that long after it ends; a "
        "suite with many of them piles up thousands of processes",
        f"set exit_command_delay = 5 under [engine] in {path} and restart the service "
        f"({SETUP_PODMAN_HINT})",
    )
