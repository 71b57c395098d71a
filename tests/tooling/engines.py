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
first on its PATH needs: dockerd, docker-proxy, containerd, containerd-shim-runc-v2, ctr and
runc, as the suite ships them. The suite's runc needs a newer glibc than the host's (its dockerd
and containerd do not): its `runc` package is unpacked with the closure of its dependencies,
glibc included, and the binary's ELF interpreter and run path are set to that glibc with the
suite's own patchelf (itself run through the unpacked ld.so). A wrapper script that calls ld.so
would not do: runc starts containers by executing /proc/self/exe. PREFIX/ENGINE/engine.env
names the versions (read by tests/engines.py).

Idempotent: an engine whose prefix is complete and whose dockerd and containerd run is left
alone (no network). --refresh downloads again when the suite now has another version. When a
suite no longer ships the wanted major version, the engine is not installed unless it is
already in place: a warning, and PREFIX/ENGINE.unavailable says why (the tests quote it).

Environment: PYTEST_CRIU_ENGINES_PREFIX (/opt/pytest-criu/engines), PYTEST_CRIU_DEBIAN_URI.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from pytest_criu.setup import apt, system
from pytest_criu.setup.system import SetupError
from tests.tooling.installs import (
    PREFIX,
    install_main,
    private_apt,
    read_engine_env,
    unavailable_note,
)

APT_WORK = Path("/var/cache/pytest-criu/engines-apt")
LIB_DIR = "usr/lib/x86_64-linux-gnu"
LOADER = f"{LIB_DIR}/ld-linux-x86-64.so.2"
RUNC = "usr/sbin/runc"
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
    if not (directory / "engine.env").is_file() or "RUNC_PACKAGE" not in read_engine_env(directory):
        return False  # missing, or from before engines had their suite's own runc
    if not all(os.access(directory / "bin" / Path(b).name, os.X_OK) for b in BINARIES):
        return False
    if not os.access(directory / "bin/runc", os.X_OK) or not version_line(directory / "bin/runc"):
        return False
    dockerd = version_line(directory / "bin/dockerd") or ""
    return dockerd.startswith(f"Docker version {major}.") and bool(
        version_line(directory / "bin/containerd")
    )


class Packages(NamedTuple):
    """The versions of a suite's packages that make an engine."""

    docker: str
    containerd: str
    runc: str


def install(engine: Engine, refresh: bool) -> None:
    directory = PREFIX / engine.name
    began = time.monotonic()
    if not refresh and engine_ok(directory, engine.major):
        known = read_engine_env(directory)
        log(f"{engine.name}: present (Docker {known.get('DOCKER_VERSION')}, containerd "
            f"{known.get('CONTAINERD_VERSION')}, runc {known.get('RUNC_VERSION')})")  # fmt: skip
        return
    private = private_apt(APT_WORK / engine.suite, engine.suite, log)
    log(f"{engine.name}: apt-get update for Debian {engine.suite} (private state {private.work})")
    private.update()
    wanted = candidates(private, engine)
    if wanted is None:
        return
    if engine_ok(directory, engine.major):
        known = read_engine_env(directory)
        if (known.get("DOCKER_PACKAGE"), known.get("CONTAINERD_PACKAGE"),
                known.get("RUNC_PACKAGE")) == wanted:  # fmt: skip
            log(f"{engine.name}: present and current (docker.io {wanted.docker})")
            return
    unpack(engine, private, wanted, directory)
    unavailable_note(engine.name).unlink(missing_ok=True)
    log(f"{engine.name}: installed into {directory} in {time.monotonic() - began:.1f} s")


def candidates(private: apt.PrivateApt, engine: Engine) -> Packages | None:
    """The suite's versions, or None (and a note saying why) when it no longer has the major."""
    docker_v, containerd_v = private.candidate("docker.io"), private.candidate("containerd")
    runc_v = private.candidate("runc")
    if docker_v is None or containerd_v is None or runc_v is None:
        raise SetupError(f"Debian {engine.suite} lacks docker.io, containerd or runc")
    if docker_v.startswith(f"{engine.major}."):
        return Packages(docker_v, containerd_v, runc_v)
    why = f"Debian {engine.suite} now has docker.io {docker_v}, not {engine.major}.x"
    if engine_ok(PREFIX / engine.name, engine.major):
        log(f"WARNING: {engine.name}: {why}; keeping the installed one")
    else:
        unavailable_note(engine.name).write_text(why + "\n")
        log(f"WARNING: {engine.name}: {why}; not installed (its tests say so); update "
            "ENGINES in tests/tooling/engines.py to the version you want to test")  # fmt: skip
    return None


def unpack(engine: Engine, private: apt.PrivateApt, wanted: Packages, directory: Path) -> None:
    """Download ``wanted`` and unpack it into ``directory`` (replaced only once it works)."""
    debs_dir = private.work / "debs"
    shutil.rmtree(debs_dir, ignore_errors=True)
    log(f"{engine.name}: downloading docker.io {wanted.docker}, containerd {wanted.containerd}, "
        f"runc {wanted.runc} (with its libraries) and patchelf")  # fmt: skip
    pinned = [f"docker.io={wanted.docker}", f"containerd={wanted.containerd}"]
    debs = private.download([*pinned, *private.depends("runc", "patchelf")], debs_dir)
    stage = directory.with_name(directory.name + ".new")
    shutil.rmtree(stage, ignore_errors=True)
    (stage / "bin").mkdir(parents=True)
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(stage / "root")], check=True)
    shutil.rmtree(debs_dir, ignore_errors=True)
    for binary in (*BINARIES, RUNC):
        if not os.access(stage / "root" / binary, os.X_OK):
            raise SetupError(f"{engine.name}: the packages lack {binary}")
        (stage / "bin" / Path(binary).name).symlink_to(Path("../root") / binary)
    bind_to_own_glibc(stage / "root", RUNC, final_root=directory / "root")
    dockerd = version_line(stage / "bin/dockerd")
    containerd = version_line(stage / "bin/containerd")
    if not dockerd or not containerd or not dockerd.startswith(f"Docker version {engine.major}."):
        raise SetupError(f"{engine.name}: its daemons do not run here: {dockerd!r} {containerd!r}")
    shutil.rmtree(directory, ignore_errors=True)
    stage.rename(directory)
    runc = version_line(directory / "bin/runc")
    if not runc:
        shutil.rmtree(directory, ignore_errors=True)
        raise SetupError(f"{engine.name}: runc {wanted.runc} does not run with its own glibc")
    lines = engine_env(engine, dockerd=dockerd, containerd=containerd, runc=runc, wanted=wanted)
    (directory / "engine.env").write_text(lines)


def bind_to_own_glibc(root: Path, binary: str, *, final_root: Path) -> None:
    """Make ``root/binary`` load the glibc unpacked beside it, once ``root`` is at ``final_root``."""
    loader = root / LOADER
    patch = [str(loader), "--library-path", str(root / LIB_DIR), str(root / "usr/bin/patchelf")]
    done = system.run(
        [*patch, "--set-interpreter", str(final_root / LOADER), "--set-rpath",
         str(final_root / LIB_DIR), str(root / binary)],
        timeout=60,
    )  # fmt: skip
    if not done.ok:
        raise SetupError(f"patchelf {binary} failed: {done.why()}")


def engine_env(
    engine: Engine, *, dockerd: str, containerd: str, runc: str, wanted: Packages
) -> str:
    """engine.env's text. "Docker version 26.1.5+dfsg1, build 411e817" gives 26.1.5;
    "containerd github.com/containerd/containerd v1.7.24~ds1 ..." gives 1.7.24;
    "runc version 1.3.6+ds1" gives 1.3.6+ds1 (what the daemon reports as runc's commit)."""
    dv = dockerd.removeprefix("Docker version ").split("+")[0].split(",")[0]
    cv = containerd.split()[2].removeprefix("v").split("+")[0].split("~")[0]
    rv = runc.splitlines()[0].split()[2]
    return (
        "# written by pytest-criu's tests/tooling/engines.py\n"
        f"ENGINE={engine.name}\nSUITE={engine.suite}\nDOCKER_VERSION={dv}\n"
        f"CONTAINERD_VERSION={cv}\nRUNC_VERSION={rv}\nDOCKER_PACKAGE={wanted.docker}\n"
        f"CONTAINERD_PACKAGE={wanted.containerd}\nRUNC_PACKAGE={wanted.runc}\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    return install_main(
        argv,
        prog="python -m tests.tooling.engines",
        description=__doc__,
        installers={e.name: functools.partial(install, e) for e in ENGINES},
        log=log,
    )


if __name__ == "__main__":
    sys.exit(main())
