"""Run a command against a second Docker daemon: the integration suites on Docker 26.1 or 28.x.

Usage: python -m tests.tooling.with_engine ENGINE -- COMMAND [ARG...]

Starts ENGINE (docker-26 or docker-28, unpacked by ``python -m tests.tooling.engines``) beside
the main daemon with :func:`tests.engines.running_daemon`, copies the local test images into
it, runs COMMAND with ``DOCKER_HOST`` set to its socket (the plugin and the tests' helpers then
talk to it: ``DockerEngine.default_url()``), and exits with COMMAND's status. The daemon, its
containers, bridge and directories are removed afterwards, also after a failure, Ctrl-C or
SIGTERM. Example:

    python -m tests.tooling.with_engine docker-28 -- .venv/bin/pytest tests/integration/test_lifecycle.py
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

from tests.engines import find_engine, load_image, running_daemon
from tests.helpers import SERVICES_IMAGE

USAGE = "usage: python -m tests.tooling.with_engine ENGINE -- COMMAND [ARG...]"


def log(message: str) -> None:
    print(f"[with-engine] {message}", file=sys.stderr, flush=True)


def split_arguments(argv: Sequence[str]) -> tuple[str, list[str]]:
    """``ENGINE -- COMMAND...`` into the engine's name and the command; ValueError if malformed."""
    if len(argv) < 3 or argv[1] != "--":
        raise ValueError(USAGE)
    return argv[0], list(argv[2:])


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        name, command = split_arguments(sys.argv[1:] if argv is None else argv)
    except ValueError as error:
        log(str(error))
        return 2
    install, why = find_engine(name)
    if install is None:
        log(why)
        return 1
    criu = shutil.which("criu")
    if criu is None:
        log("no criu on PATH; run: sudo .venv/bin/pytest-criu setup")
        return 1
    signal.signal(signal.SIGTERM, _terminate)
    began = time.monotonic()
    with running_daemon(install, criu_dir=os.path.dirname(criu)) as daemon:
        log(f"Docker {install.docker_version} (containerd {install.containerd_version}) "
            f"at {daemon.url}, started in {time.monotonic() - began:.1f} s")  # fmt: skip
        load_image(SERVICES_IMAGE, daemon.url)
        environment = {**os.environ, "DOCKER_HOST": daemon.url}
        with subprocess.Popen(command, env=environment) as child:
            try:
                status = child.wait()
            except BaseException:
                child.send_signal(signal.SIGINT)
                try:
                    child.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    child.kill()
                raise
    log(f"{' '.join(command)}: exit {status} after {time.monotonic() - began:.0f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
