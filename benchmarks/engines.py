"""The engines a run measures: connections at the plugin's sockets, versions, clean-up."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_criu.engine.docker import DockerEngine

from .plugin_runs import ENGINE_FLAG, plugin_flags
from .records import Host
from .workloads import BENCH_LABEL

if TYPE_CHECKING:  # not at run time: commits before the Podman backend lack the module
    from pytest_criu.engine.base import ContainerEngine

DEFAULT_SOCKETS = {
    "docker": "unix:///var/run/docker.sock",
    "podman": "unix:///run/podman/podman.sock",
}


class EngineUnavailableError(Exception):
    """Why an engine named in ``--engines`` is left out of this run."""


def open_engine(name: str) -> ContainerEngine:
    """A connection to ``name``, at the socket the plugin's pytest runs will use.

    The plugin (as frozen) must have ``--criu-engine`` for anything but Docker: before the
    Podman backend it knows only Docker, and its runs are given no engine option at all.
    """
    modern = (
        ENGINE_FLAG in plugin_flags()
        and importlib.util.find_spec("pytest_criu.engine.connect") is not None
    )
    if not modern:
        if name != "docker":
            raise EngineUnavailableError(
                f"the plugin benchmarked has no {ENGINE_FLAG} option (no Podman backend); "
                "benchmark the working tree or a --plugin-ref that has it"
            )
        url = os.environ.get("DOCKER_HOST") or DEFAULT_SOCKETS["docker"]
    else:
        from pytest_criu.engine.connect import engine_url

        url = engine_url("podman" if name == "podman" else "docker", None)
    if url.startswith("unix://") and not Path(url.removeprefix("unix://")).exists():
        raise EngineUnavailableError(f"no socket at {url} (is the {name} service running?)")
    try:
        if not modern:
            return DockerEngine()
        from pytest_criu.engine.connect import connect

        return connect("podman" if name == "podman" else "docker", None, timeout=120.0)
    except Exception as error:
        raise EngineUnavailableError(f"cannot connect at {url}: {error}") from None


def open_engines(
    names: Sequence[str], *, log: Callable[[str], None]
) -> tuple[dict[str, ContainerEngine], dict[str, str]]:
    """Connections to the engines asked for, and why the others were skipped (logged)."""
    engines: dict[str, ContainerEngine] = {}
    skipped: dict[str, str] = {}
    for name in names:
        try:
            engines[name] = open_engine(name)
        except EngineUnavailableError as error:
            skipped[name] = str(error)
            log(f"engine {name} skipped: {error}")
    return engines, skipped


def host_facts(engines: dict[str, ContainerEngine]) -> Host:
    """The machine, CRIU's version and each engine's (with Docker's containerd)."""
    criu = subprocess.run(["criu", "--version"], capture_output=True, text=True, check=False)
    versions = {name: engine.version() for name, engine in engines.items()}
    docker = versions.get("docker") or {}
    return Host(
        cores=os.cpu_count(),
        kernel=platform.release(),
        python=platform.python_version(),
        docker=docker.get("Version"),
        containerd=next(
            (c.get("Version") for c in docker.get("Components", []) if c["Name"] == "containerd"),
            None,
        ),
        podman=(versions.get("podman") or {}).get("Version"),
        criu=criu.stdout.split("\n", 1)[0].replace("Version: ", "").strip(),
        load_before=os.getloadavg(),
    )


def remove_labelled(engine: ContainerEngine, run_id: str) -> tuple[int, int]:
    """Remove every container and image carrying this run's benchmark label."""
    label = f"{BENCH_LABEL}={run_id}"
    containers = engine.containers(label)
    for container in containers:
        with contextlib.suppress(Exception):
            engine.remove(container["Id"])
    images = engine.images(label)
    for image in images:
        with contextlib.suppress(Exception):
            engine.remove_image(image["Id"])
    return len(containers), len(images)
