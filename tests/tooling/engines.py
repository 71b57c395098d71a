"""Unpack newer Docker Engines into private prefixes, for the engine matrix tests
(tests/integration/test_engine_matrix.py). The system's docker.io is not touched.

Usage: sudo .venv/bin/python -m tests.tooling.engines [--refresh] [ENGINE...]

Engines (all by default):
  docker-26   Debian 13 "trixie" docker.io 26.1.x with its containerd 1.7.x
  docker-28   Debian unstable (sid) docker.io 28.x with its containerd 2.x

For each engine it downloads the `docker.io` and `containerd` packages (nothing else) with a
private apt state under /var/cache/pytest-criu/engines-apt/SUITE (the host's Debian archive,
as `pytest-criu setup` finds it for CRIU), unpacks them with dpkg-deb -x into
PREFIX/ENGINE/root, and makes PREFIX/ENGINE/bin hold what a daemon started with that directory
first on its PATH needs: dockerd, docker-proxy, containerd, containerd-shim-runc-v2, ctr from
the packages, and runc -> /usr/sbin/runc (bookworm's runc 1.1.x: the newer suites' runc needs
a newer glibc than the host's, their dockerd and containerd do not). PREFIX/ENGINE/engine.env
names the versions (read by tests/engines.py).

Idempotent: an engine whose prefix is complete and whose dockerd and containerd run is left
alone (no network). --refresh downloads again when the suite now has another version. When a
suite no longer ships the wanted major version, the engine is not installed unless it is
already in place: a warning, and PREFIX/ENGINE.unavailable says why (the tests quote it).

Environment: PYTEST_CRIU_ENGINES_PREFIX (/opt/pytest-criu/engines), PYTEST_CRIU_DEBIAN_URI.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from pytest_criu.setup import apt, criu, plan, system
from pytest_criu.setup.system import SetupError

PREFIX = Path(os.environ.get("PYTEST_CRIU_ENGINES_PREFIX") or "/opt/pytest-criu/engines")
APT_WORK = Path("/var/cache/pytest-criu/engines-apt")
SYSTEM_RUNC = Path("/usr/sbin/runc")
BINARIES = (
    "usr/sbin/dockerd",
    "usr/sbin/docker-proxy",
    "usr/bin/containerd",
    "usr/bin/containerd-shim-runc-v2",
    "usr/bin/ctr",
)


class Engine(NamedTuple):
    name: str
    suite: str
    major: str


ENGINES = (Engine("docker-26", "trixie", "26"), Engine("docker-28", "sid", "28"))


def log(message: str) -> None:
    print(f"[engines] {message}", file=sys.stderr, flush=True)


def version_line(binary: Path) -> str | None:
    done = system.run([str(binary), "--version"], timeout=30)
    return done.stdout.strip() if done.ok else None


def engine_ok(directory: Path, major: str) -> bool:
    """The prefix is complete and its daemons run on this host's libc."""
    if not (directory / "engine.env").is_file():
        return False
    if not all(os.access(directory / "bin" / Path(b).name, os.X_OK) for b in BINARIES):
        return False
    if os.readlink(directory / "bin/runc") != str(SYSTEM_RUNC):
        return False
    dockerd = version_line(directory / "bin/dockerd") or ""
    return dockerd.startswith(f"Docker version {major}.") and bool(
        version_line(directory / "bin/containerd")
    )


def facts(directory: Path) -> dict[str, str]:
    lines = (directory / "engine.env").read_text().splitlines()
    return dict(ln.split("=", 1) for ln in lines if "=" in ln and not ln.startswith("#"))


def private_apt(suite: str) -> apt.PrivateApt:
    run = system.run
    installer = apt.Apt(run, plan.Plan(check=False, say=log))
    settings = criu.CriuSettings.from_environment()
    uri = criu.archive_uri(installer, settings)
    return apt.PrivateApt(run, APT_WORK / suite, uri, suite, criu.keyring(installer))


def install(engine: Engine, refresh: bool) -> None:
    directory = PREFIX / engine.name
    began = time.monotonic()
    if not refresh and engine_ok(directory, engine.major):
        known = facts(directory)
        log(f"{engine.name}: present (Docker {known.get('DOCKER_VERSION')}, containerd "
            f"{known.get('CONTAINERD_VERSION')})")  # fmt: skip
        return
    private = private_apt(engine.suite)
    log(f"{engine.name}: apt-get update for Debian {engine.suite} (private state {private.work})")
    private.update()
    docker_v, containerd_v = private.candidate("docker.io"), private.candidate("containerd")
    if docker_v is None or containerd_v is None:
        raise SetupError(f"Debian {engine.suite} lacks docker.io or containerd")
    if not docker_v.startswith(f"{engine.major}."):
        why = f"Debian {engine.suite} now has docker.io {docker_v}, not {engine.major}.x"
        if engine_ok(directory, engine.major):
            log(f"WARNING: {engine.name}: {why}; keeping the installed one")
        else:
            (PREFIX / f"{engine.name}.unavailable").write_text(why + "\n")
            log(f"WARNING: {engine.name}: {why}; not installed (its tests say so); update "
                "ENGINES in tests/tooling/engines.py to the version you want to test")  # fmt: skip
        return
    if engine_ok(directory, engine.major):
        known = facts(directory)
        if (known.get("DOCKER_PACKAGE"), known.get("CONTAINERD_PACKAGE")) == (
            docker_v,
            containerd_v,
        ):
            log(f"{engine.name}: present and current (docker.io {docker_v})")
            return
    debs_dir = private.work / "debs"
    shutil.rmtree(debs_dir, ignore_errors=True)
    log(f"{engine.name}: downloading docker.io {docker_v} and containerd {containerd_v}")
    debs = private.download([f"docker.io={docker_v}", f"containerd={containerd_v}"], debs_dir)
    stage = directory.with_name(directory.name + ".new")
    shutil.rmtree(stage, ignore_errors=True)
    (stage / "bin").mkdir(parents=True)
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(stage / "root")], check=True)
    for binary in BINARIES:
        if not os.access(stage / "root" / binary, os.X_OK):
            raise SetupError(f"{engine.name}: the packages lack {binary}")
        (stage / "bin" / Path(binary).name).symlink_to(Path("../root") / binary)
    (stage / "bin/runc").symlink_to(SYSTEM_RUNC)
    dockerd = version_line(stage / "bin/dockerd")
    containerd = version_line(stage / "bin/containerd")
    if not dockerd or not containerd or not dockerd.startswith(f"Docker version {engine.major}."):
        raise SetupError(f"{engine.name}: its daemons do not run here: {dockerd!r} {containerd!r}")
    runc = (version_line(SYSTEM_RUNC) or "runc version ?").splitlines()[0].split()[2]
    (stage / "engine.env").write_text(
        engine_env(
            engine,
            dockerd=dockerd,
            containerd=containerd,
            docker_v=docker_v,
            containerd_v=containerd_v,
            runc=runc,
        )
    )
    shutil.rmtree(directory, ignore_errors=True)
    stage.rename(directory)
    (PREFIX / f"{engine.name}.unavailable").unlink(missing_ok=True)
    shutil.rmtree(debs_dir, ignore_errors=True)
    log(f"{engine.name}: installed into {directory} in {time.monotonic() - began:.1f} s")


def engine_env(
    engine: Engine, *, dockerd: str, containerd: str, docker_v: str, containerd_v: str, runc: str
) -> str:
    """engine.env's text. "Docker version 26.1.5+dfsg1, build 411e817" gives 26.1.5;
    "containerd github.com/containerd/containerd v1.7.24~ds1 ..." gives 1.7.24."""
    dv = dockerd.removeprefix("Docker version ").split("+")[0].split(",")[0]
    cv = containerd.split()[2].removeprefix("v").split("+")[0].split("~")[0]
    return (
        "# written by pytest-criu's tests/tooling/engines.py\n"
        f"ENGINE={engine.name}\nSUITE={engine.suite}\nDOCKER_VERSION={dv}\n"
        f"CONTAINERD_VERSION={cv}\nDOCKER_PACKAGE={docker_v}\n"
        f"CONTAINERD_PACKAGE={containerd_v}\nRUNC={SYSTEM_RUNC}\nRUNC_VERSION={runc}\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.tooling.engines",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--refresh", action="store_true", help="download again when newer")
    parser.add_argument("engines", nargs="*", metavar="ENGINE", help="docker-26, docker-28")
    args = parser.parse_args(argv)
    unknown = set(args.engines) - {e.name for e in ENGINES}
    if unknown:
        parser.error(f"unknown engine(s) {', '.join(sorted(unknown))}; known: docker-26, docker-28")
    if os.geteuid() != 0:
        log("must run as root: sudo .venv/bin/python -m tests.tooling.engines")
        return 1
    if not os.access(SYSTEM_RUNC, os.X_OK):
        log(f"{SYSTEM_RUNC} not found: run sudo .venv/bin/pytest-criu setup first (package runc)")
        return 1
    PREFIX.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    try:
        for engine in ENGINES:
            if not args.engines or engine.name in args.engines:
                install(engine, args.refresh)
    except (SetupError, subprocess.CalledProcessError) as error:
        log(f"ERROR: {error}")
        return 1
    log(f"done in {time.monotonic() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
