"""Which engine to talk to: resolve ``auto``/``docker``/``podman`` and a socket to a connection."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .base import ContainerEngine
from .docker import DockerEngine
from .errors import EngineError
from .podman import PodmanEngine
from .spec import EngineChoice

ENGINES: Mapping[str, type[ContainerEngine]] = {"docker": DockerEngine, "podman": PodmanEngine}


def identify(version: Mapping[str, Any]) -> str:
    """``podman`` or ``docker``, from what ``GET /version`` answered.

    Podman's compatible API names itself among the components ("Podman Engine").
    """
    for component in version.get("Components") or []:
        if "podman" in str(component.get("Name", "")).lower():
            return "podman"
    return "docker"


def engine_url(choice: EngineChoice, url: str | None) -> str:
    """The socket to use: ``url``, else the environment's, else the chosen engine's default.

    ``auto`` prefers ``DOCKER_HOST``, then Docker's local socket, then Podman's rootful one.
    """
    if url:
        return url
    if choice == "podman":
        return PodmanEngine.default_url()
    if choice == "docker" or os.environ.get("DOCKER_HOST"):
        return DockerEngine.default_url()
    docker_socket = DockerEngine.default_url().removeprefix("unix://")
    podman_socket = PodmanEngine.default_url().removeprefix("unix://")
    if not Path(docker_socket).exists() and Path(podman_socket).exists():
        return PodmanEngine.default_url()
    return DockerEngine.default_url()


def uses_docker_environment(url: str | None, where: str) -> bool:
    """Whether docker-py should read ``DOCKER_HOST`` and its TLS settings itself.

    So it does when no URL was given and the socket chosen is Docker's default.
    """
    return url is None and where == DockerEngine.default_url()


def mismatch(choice: EngineChoice, found: str, url: str, version: str) -> str | None:
    """Why the engine found at ``url`` is not the one asked for, or ``None``."""
    if choice in ("auto", found):
        return None
    return (
        f"--criu-engine={choice} but {url} is {ENGINES[found].title} {version}; "
        f"use --criu-engine={found} (or auto), or point --criu-engine-url at a "
        f"{ENGINES[choice].title} socket"
    )


def connect(choice: EngineChoice, url: str | None, *, timeout: float) -> ContainerEngine:
    """A connection to the engine ``choice`` names (``auto``: whichever answers at the URL)."""
    where = engine_url(choice, url)
    engine: ContainerEngine
    if choice == "podman":
        engine = PodmanEngine(where, timeout=timeout)
    else:
        implicit = uses_docker_environment(url, where)
        engine = DockerEngine(None if implicit else where, timeout=timeout)
    try:
        version = engine.version()
        found = identify(version)
        problem = mismatch(choice, found, where, str(version.get("Version", "")))
    except BaseException:
        engine.close()
        raise
    if problem:
        engine.close()
        raise EngineError(problem)
    if found == engine.name:
        return engine
    engine.close()
    return ENGINES[found](where, timeout=timeout)
