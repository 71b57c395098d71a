"""Unpack Podman 5 from newer Debian suites into private prefixes, and run commands against it.

Usage: sudo .venv/bin/python -m tests.tooling.podman5 [--refresh] [ENGINE...]

Engines (all by default):
  podman-5.8  Debian unstable (sid) podman 5.8.x with its runc, conmon, netavark, aardvark-dns
  podman-5.4  Debian 13 "trixie" podman 5.4.x with the same parts from trixie

Install: downloads those packages, the libraries they link (glibc among them: the newer
suites' binaries need a newer glibc than the host's) and patchelf, with a private apt state
under /var/cache/pytest-criu/podman5-apt/SUITE (the host's Debian archive, as `pytest-criu
setup` finds it), unpacks them with dpkg-deb -x into PREFIX/ENGINE/root and points the
executables' ELF interpreter and RPATH at that root's glibc (patchelf, run by that root's own
ld.so). Nothing is installed on the host; the host's CRIU (/usr/local/sbin/criu) and its
iptables are used. A wrapper running ld.so would not do: podman and runc re-execute
/proc/self/exe. PREFIX/ENGINE/engine.env names the versions (read by tests/podman5.py).

Idempotent: an engine whose prefix is complete and whose podman and runc run is left alone (no
network). --refresh downloads again when the suite now has another version. When a suite no
longer ships the wanted major version, PREFIX/ENGINE.unavailable says why (the tests quote it).

To run a command against one of them: python -m tests.tooling.with_engine ENGINE -- CMD ARGS...
(`python -m tests.tooling.podman5 run ENGINE -- CMD ARGS...`, the older spelling, does the same).

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

APT_WORK = Path("/var/cache/pytest-criu/podman5-apt")
#: The packages whose programs a rootful Podman service runs, and patchelf (to patch them).
PACKAGES = ("podman", "runc", "conmon", "netavark", "aardvark-dns", "patchelf")
#: Data the programs read: the default containers.conf, seccomp profile, policy.
DATA_PACKAGES = ("golang-github-containers-common",)
#: The executables patched to the prefix's glibc (paths inside root/).
EXECUTABLES = (
    "usr/bin/podman",
    "usr/sbin/runc",
    "usr/bin/conmon",
    "usr/lib/podman/netavark",
    "usr/lib/podman/aardvark-dns",
)
LIB_DIRS = ("usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu")
LOADER = "usr/lib64/ld-linux-x86-64.so.2"


class Engine(NamedTuple):
    name: str
    suite: str
    major_minor: str


ENGINES = (Engine("podman-5.8", "sid", "5.8"), Engine("podman-5.4", "trixie", "5.4"))


def log(message: str) -> None:
    print(f"[podman5] {message}", file=sys.stderr, flush=True)


def first_line(argv: Sequence[str]) -> str | None:
    done = system.run(list(argv), timeout=30)
    lines = done.stdout.strip().splitlines()
    return lines[0] if done.ok and lines else None


def parse_version(line: str) -> str:
    """``5.8.6`` from ``podman version 5.8.6``, ``runc version 1.3.6+ds1`` or ``netavark 1.17.2``."""
    number = next((word for word in line.split() if word[:1].isdigit()), "")
    return number.split("+")[0].split("~")[0].rstrip(",")


def engine_ok(directory: Path, major_minor: str) -> bool:
    """The prefix is complete, and its podman and runc run on the prefix's glibc."""
    root = directory / "root"
    if not (directory / "engine.env").is_file():
        return False
    if not all(os.access(root / e, os.X_OK) for e in EXECUTABLES):
        return False
    podman = first_line([str(root / "usr/bin/podman"), "--version"]) or ""
    runc = first_line([str(root / "usr/sbin/runc"), "--version"]) or ""
    return podman.startswith(f"podman version {major_minor}.") and runc.startswith("runc ")


def parse_direct_depends(text: str) -> list[str]:
    """The first choice of each Depends/Pre-Depends in ``apt-cache depends`` output."""
    found: list[str] = []
    alternative = False
    for line in text.splitlines()[1:]:
        kind, _, name = line.strip().partition(":")
        name = name.strip()
        if kind.lstrip("|") not in ("Depends", "PreDepends"):
            continue
        if not alternative and name and not name.startswith("<"):
            found.append(name)
        alternative = kind.startswith("|")
    return found


def library_closure(private: apt.PrivateApt, packages: Sequence[str]) -> list[str]:
    """``packages`` and the library packages (lib*) they need, recursively.

    Only libraries: the programs are run from the prefix, not installed, so their other
    dependencies (iptables, nftables, systemd...) are the host's business.
    """
    skip = ["--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks"]
    skip += ["--no-replaces", "--no-enhances"]
    seen, todo = set(packages), list(packages)
    while todo:
        done = system.run(["apt-cache", *private.options, "depends", *skip, todo.pop()], timeout=60)
        if not done.ok:
            raise SetupError(f"apt-cache depends failed: {done.why()}")
        for name in parse_direct_depends(done.stdout):
            if name.startswith("lib") and not name.startswith("libpam") and name not in seen:
                seen.add(name)
                todo.append(name)
    return sorted(seen)


def patch(root: Path) -> None:
    """Point EXECUTABLES at ``root``'s glibc: DT_RPATH (which, unlike RUNPATH, also applies
    to the libraries they load), then the ELF interpreter.

    Two calls in this order: patchelf 0.18 changing both at once, or the interpreter first,
    leaves a podman binary that segfaults at start.
    """
    loader = root / LOADER
    rpath = ":".join(str(root / d) for d in LIB_DIRS)
    patchelf = [str(loader), "--library-path", rpath, str(root / "usr/bin/patchelf")]
    for executable in EXECUTABLES:
        target = str(root / executable)
        for change in (["--force-rpath", "--set-rpath", rpath], ["--set-interpreter", str(loader)]):
            done = system.run([*patchelf, *change, target], timeout=120)
            if not done.ok:
                raise SetupError(f"patchelf {' '.join(change)} {target} failed: {done.why()}")


def install(engine: Engine, refresh: bool) -> None:
    directory = PREFIX / engine.name
    began = time.monotonic()
    if not refresh and engine_ok(directory, engine.major_minor):
        known = read_engine_env(directory)
        log(f"{engine.name}: present (Podman {known.get('PODMAN_VERSION')})")
        return
    private = private_apt(APT_WORK / engine.suite, engine.suite, log)
    log(f"{engine.name}: apt-get update for Debian {engine.suite} (private state {private.work})")
    private.update()
    podman_v = private.candidate("podman")
    if podman_v is None or not podman_v.startswith(f"{engine.major_minor}."):
        why = f"Debian {engine.suite} now has podman {podman_v}, not {engine.major_minor}.x"
        if engine_ok(directory, engine.major_minor):
            log(f"WARNING: {engine.name}: {why}; keeping the installed one")
        else:
            unavailable_note(engine.name).write_text(why + "\n")
            log(f"WARNING: {engine.name}: {why}; not installed (its tests say so); update "
                "ENGINES in tests/tooling/podman5.py to the version you want to test")  # fmt: skip
        return
    installed = engine_ok(directory, engine.major_minor)
    if installed and read_engine_env(directory).get("PODMAN_PACKAGE") == podman_v:
        log(f"{engine.name}: present and current (podman {podman_v})")
        return
    wanted = [*library_closure(private, PACKAGES), *DATA_PACKAGES]
    versions = {name: private.candidate(name) for name in wanted}
    missing = sorted(name for name, version in versions.items() if version is None)
    if missing:
        raise SetupError(f"Debian {engine.suite} lacks {', '.join(missing)}")
    debs_dir = private.work / "debs"
    shutil.rmtree(debs_dir, ignore_errors=True)
    log(f"{engine.name}: downloading podman {podman_v} and {len(wanted) - 1} more packages")
    debs = private.download([f"{name}={versions[name]}" for name in wanted], debs_dir)
    stage = directory.with_name(directory.name + ".new")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(stage / "root")], check=True)
    for executable in EXECUTABLES:
        if not os.access(stage / "root" / executable, os.X_OK):
            raise SetupError(f"{engine.name}: the packages lack {executable}")
    # The prefix is baked into the ELF headers: patch under the final name. Without its
    # engine.env (written last) a half-made directory does not count as installed.
    shutil.rmtree(directory, ignore_errors=True)
    stage.rename(directory)
    root = directory / "root"
    patch(root)
    lines = {
        "PODMAN": first_line([str(root / "usr/bin/podman"), "--version"]),
        "RUNC": first_line([str(root / "usr/sbin/runc"), "--version"]),
        "CONMON": first_line([str(root / "usr/bin/conmon"), "--version"]),
        "NETAVARK": first_line([str(root / "usr/lib/podman/netavark"), "--version"]),
    }
    broken = [name.lower() for name, line in lines.items() if not line]
    if broken:
        raise SetupError(f"{engine.name}: {', '.join(broken)} do(es) not run after patching")
    (directory / "engine.env").write_text(
        "# written by pytest-criu's tests/tooling/podman5.py\n"
        f"ENGINE={engine.name}\nSUITE={engine.suite}\nPODMAN_PACKAGE={podman_v}\n"
        + "".join(f"{name}_VERSION={parse_version(line or '')}\n" for name, line in lines.items())
    )
    if not engine_ok(directory, engine.major_minor):
        raise SetupError(f"{engine.name}: podman or runc does not run from {directory}")
    unavailable_note(engine.name).unlink(missing_ok=True)
    shutil.rmtree(debs_dir, ignore_errors=True)
    log(f"{engine.name}: installed into {directory} in {time.monotonic() - began:.1f} s")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["run"]:
        from tests.tooling import with_engine  # it knows this module's ENGINES

        return with_engine.main(args[1:])
    return install_main(
        args,
        prog="python -m tests.tooling.podman5",
        description=__doc__,
        installers={e.name: functools.partial(install, e) for e in ENGINES},
        log=log,
    )


if __name__ == "__main__":
    sys.exit(main())
