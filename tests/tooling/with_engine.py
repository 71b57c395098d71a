"""Run a command against another engine version: the integration suites on Docker 26.1 or 28.x,
or on Podman 5.8 or 5.4.

Usage: sudo .venv/bin/python -m tests.tooling.with_engine ENGINE -- COMMAND [ARG...]

ENGINE is docker-26 or docker-28 (unpacked by ``python -m tests.tooling.engines``), or
podman-5.8 or podman-5.4 (unpacked by ``python -m tests.tooling.podman5``). A Docker starts as
a second daemon beside the main one (:func:`tests.engines.running_daemon`) and COMMAND gets
``DOCKER_HOST`` (what ``DockerEngine.default_url()`` reads); a Podman starts as a rootful
``podman system service`` beside the host's Podman 4.3 (:func:`tests.podman5.running_podman`:
its own storage, configuration, bridge and subnet) and COMMAND gets ``CONTAINER_HOST`` (what
``PodmanEngine.default_url()`` reads). The local images pytest-criu/tiny, pytest-criu/services,
pytest-criu/postgres, pytest-criu/redis and pytest-criu/mariadb (or those PYTEST_CRIU_*_IMAGE
name: ``python -m tests.tooling.images --help``) are copied in from the main Docker first. It
exits with COMMAND's status; the engine, its containers, bridge and directories are removed
afterwards, also after a failure, Ctrl-C or SIGTERM (a CI time limit). Example:

    python -m tests.tooling.with_engine docker-28 -- .venv/bin/pytest tests/integration/test_lifecycle.py
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import FrameType

from tests.tooling import engines, podman5

ENGINES = tuple(e.name for e in (*engines.ENGINES, *podman5.ENGINES))
USAGE = f"usage: python -m tests.tooling.with_engine {{{','.join(ENGINES)}}} -- COMMAND [ARG...]"


class EngineUnavailable(RuntimeError):
    """The engine is not installed here, or cannot start (the message says why)."""


@dataclass(frozen=True)
class StartedEngine:
    """An engine started for a command: where it listens, and how to point a client at it."""

    url: str
    environment: dict[str, str]
    """What a command needs in its environment to talk to it."""
    description: str


def log(message: str) -> None:
    print(f"[with-engine] {message}", file=sys.stderr, flush=True)


def split_arguments(argv: Sequence[str]) -> tuple[str, list[str]]:
    """``ENGINE -- COMMAND...`` into the engine's name and the command; ValueError if malformed."""
    if len(argv) < 3 or argv[0] not in ENGINES or argv[1] != "--":
        raise ValueError(USAGE)
    return argv[0], list(argv[2:])


@contextlib.contextmanager
def started_engine(name: str, images: Sequence[str]) -> Iterator[StartedEngine]:
    """Start engine ``name`` with ``images`` of the main Docker; always stop it afterwards."""
    if name.startswith("podman-"):
        from tests.podman5 import find_podman, running_podman

        podman, why = find_podman(name)
        if podman is None:
            raise EngineUnavailable(why)
        with running_podman(podman, load_images=images) as service:
            # Not PYTEST_CRIU_PODMAN_SOCKET: `pytest-criu setup` would then manage (restart)
            # this service with the host's podman.
            yield StartedEngine(
                service.url,
                {"CONTAINER_HOST": service.url},
                f"Podman {podman.podman_version} (bridge {service.bridge}, {service.subnet})",
            )
        return
    from tests.engines import find_engine, running_daemon

    install, why = find_engine(name)
    if install is None:
        raise EngineUnavailable(why)
    criu = shutil.which("criu")
    if criu is None:
        raise EngineUnavailable("no criu on PATH; run: sudo .venv/bin/pytest-criu setup")
    with running_daemon(install, criu_dir=os.path.dirname(criu), load_images=images) as daemon:
        yield StartedEngine(
            daemon.url,
            {"DOCKER_HOST": daemon.url},
            f"Docker {install.docker_version} (containerd {install.containerd_version})",
        )


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def run(command: Sequence[str], environment: dict[str, str]) -> int:
    """Run ``command``; when interrupted, give it SIGINT and a minute to finish first."""
    with subprocess.Popen(list(command), env=environment) as child:
        try:
            return child.wait()
        except BaseException:
            child.send_signal(signal.SIGINT)
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
            raise


def main(argv: Sequence[str] | None = None) -> int:
    try:
        name, command = split_arguments(sys.argv[1:] if argv is None else argv)
    except ValueError as error:
        log(str(error))
        return 2
    if os.geteuid() != 0:
        log("must run as root: sudo .venv/bin/python -m tests.tooling.with_engine ...")
        return 1
    from tests.helpers import SERVICES_IMAGE, TINY_IMAGE
    from tests.tooling.images import OFFICIAL_IMAGES

    # A CI time limit sends SIGTERM: unwind, so that the engine is torn down.
    signal.signal(signal.SIGTERM, _terminate)
    began = time.monotonic()
    try:
        images = (TINY_IMAGE, SERVICES_IMAGE, *OFFICIAL_IMAGES.values())
        with started_engine(name, images) as engine:
            log(f"{name}: {engine.description} at {engine.url}, "
                f"started in {time.monotonic() - began:.1f} s")  # fmt: skip
            status = run(command, {**os.environ, **engine.environment})
    except EngineUnavailable as error:
        log(f"ERROR: {error}")
        return 1
    log(f"{' '.join(command)}: exit {status}; torn down after {time.monotonic() - began:.0f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
