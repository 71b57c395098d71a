"""A CRIU >= 4.2 that passes ``criu check``: found, or unpacked from Debian into a private prefix.

The private prefix holds CRIU with its own glibc and libraries (every one checked to resolve
inside the prefix), started through a wrapper in ``/usr/local/sbin``; the system's libc and
apt state are never touched.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..engine.criu_images import NFTABLES_LOCK_CHECK
from .apt import Apt, PrivateApt, debian_archive, os_release
from .plan import Plan
from .system import Completed, Runner, SetupError, write_atomically

MINIMUM = "4.2"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
WRAPPER = Path("/usr/local/sbin/criu")
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
MULTIARCH = {
    "amd64": ("x86_64-linux-gnu", "ld-linux-x86-64.so.2"),
    "arm64": ("aarch64-linux-gnu", "ld-linux-aarch64.so.1"),
}


@dataclass(frozen=True)
class CriuSettings:
    """Where a private CRIU goes and where it comes from (``PYTEST_CRIU_*`` variables)."""

    prefix: Path = Path("/opt/pytest-criu/criu")
    suite: str = "sid"
    debian_uri: str | None = None
    work: Path = Path("/var/cache/pytest-criu/criu-apt")

    @classmethod
    def from_environment(cls) -> CriuSettings:
        return cls(
            prefix=Path(os.environ.get("PYTEST_CRIU_CRIU_PREFIX") or cls.prefix),
            suite=os.environ.get("PYTEST_CRIU_CRIU_SUITE") or cls.suite,
            debian_uri=os.environ.get("PYTEST_CRIU_DEBIAN_URI") or None,
        )


def version_of(run: Runner, binary: str) -> str | None:
    done = run([binary, "--version"], timeout=30)
    for line in done.stdout.splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip() or None
    return None


def rejection(run: Runner, apt: Apt, binary: str) -> str | None:
    """Why ``binary`` is not a usable CRIU, or None when it is."""
    version = version_of(run, binary)
    if version is None:
        return f"{binary} --version did not report a version"
    if not apt.version_at_least(version, MINIMUM):
        return (
            f"{binary} is CRIU {version}; need >= {MINIMUM} (older versions cannot dump TCP "
            "sockets or fail 'criu check' on new kernels)"
        )
    done = run([binary, "check"], timeout=60)
    if not done.ok:
        lines = [ln for ln in (done.stdout + done.stderr).splitlines() if not ln.startswith("Warn")]
        return f"{binary} (CRIU {version}) fails 'criu check': {' '.join(lines[-3:])}"
    return None


def locks_with_nftables(run: Runner, binary: str) -> bool:
    """Whether ``binary`` and the kernel lock the network with nftables (CRIU built with
    libnftables, nf_tables in the kernel)."""
    return run([binary, *NFTABLES_LOCK_CHECK], timeout=60).ok


def on_path(name: str, path: str = SYSTEM_PATH) -> str | None:
    return shutil.which(name, path=path)


def ensure_criu(run: Runner, apt: Apt, plan: Plan, settings: CriuSettings) -> str | None:
    """The CRIU binary to use, installing one when none qualifies (None: a check found none)."""
    candidates: list[str] = []
    if os.access(WRAPPER, os.X_OK):
        candidates.append(str(WRAPPER))
    found = on_path("criu")
    if found and found not in candidates:
        candidates.append(found)
    for candidate in candidates:
        reason = rejection(run, apt, candidate)
        if reason is None:
            return candidate
        plan.say(f"not using: {reason}")

    if not plan.check:
        apt.update()
    packaged = apt.candidate("criu")
    if packaged and apt.version_at_least(packaged, MINIMUM):
        apt.install(["criu"], why=f"the distribution's criu {packaged}")
        if plan.check:
            return None
        reason = rejection(run, apt, "/usr/sbin/criu")
        if reason is None:
            if WRAPPER.is_file() and "pytest-criu" in WRAPPER.read_text(errors="replace"):
                WRAPPER.unlink()  # ours would shadow the distribution's on a daemon's PATH
            return "/usr/sbin/criu"
        plan.say(f"not using: {reason}")
    else:
        plan.say(f"the distribution's criu ({packaged or 'none'}) is older than {MINIMUM}")

    if not plan.change(f"install CRIU from Debian {settings.suite} into {settings.prefix}"):
        return None
    install_from_debian(run, apt, settings)
    reason = rejection(run, apt, str(WRAPPER))
    if reason is not None:
        raise SetupError(f"the CRIU just installed does not work: {reason}")
    return str(WRAPPER)


def archive_uri(apt: Apt, settings: CriuSettings) -> str:
    """Where to download Debian's criu from: PYTEST_CRIU_DEBIAN_URI or the host's own archive."""
    if settings.debian_uri:
        return settings.debian_uri
    uri = debian_archive(apt.archives(), os_release())
    if uri is None:
        raise SetupError(
            "no Debian archive in this host's apt sources (apt-get indextargets), and this "
            "distribution's criu is older than 4.2; set PYTEST_CRIU_DEBIAN_URI to a Debian "
            "mirror (e.g. sudo PYTEST_CRIU_DEBIAN_URI=http://deb.debian.org/debian "
            "pytest-criu setup), or install CRIU >= 4.2 yourself"
        )
    return uri


def keyring(apt: Apt) -> Path:
    """Debian's archive keyring; on Ubuntu it comes from the universe component."""
    if not DEBIAN_KEYRING.exists():
        try:
            apt.install(["debian-archive-keyring"], why="to verify Debian's criu")
        except SetupError as error:
            raise SetupError(
                f"{error}; CRIU is taken from Debian, whose packages are signed with keys in "
                f"{DEBIAN_KEYRING} (package debian-archive-keyring; on Ubuntu enable the "
                "universe component: sudo add-apt-repository universe)"
            ) from None
    return DEBIAN_KEYRING


def install_from_debian(run: Runner, apt: Apt, settings: CriuSettings) -> None:
    arch = apt.architecture()
    if arch not in MULTIARCH:
        raise SetupError(
            f"no private-prefix CRIU recipe for architecture {arch}; install CRIU >= "
            f"{MINIMUM} yourself"
        )
    triplet, ldso_name = MULTIARCH[arch]
    uri = archive_uri(apt, settings)
    signed_by = keyring(apt)
    work = settings.work
    shutil.rmtree(work, ignore_errors=True)
    private = PrivateApt(run, work, uri, settings.suite, signed_by)
    private.update()
    # criu, libcompel1 and their libraries, down to libc6 with its ld.so.
    packages = private.depends("criu", "libcompel1")
    if "criu" not in packages or "libc6" not in packages:
        raise SetupError(f"unexpected dependency set for criu: {' '.join(packages)}")
    debs = private.download(packages, work / "debs")
    stage = settings.prefix.with_name(settings.prefix.name + ".new")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    for deb in debs:
        _must(run(["dpkg-deb", "-x", str(deb), str(stage)], timeout=120), deb.name)
    libdir = stage / "usr/lib" / triplet
    ldso = libdir / ldso_name
    if not (stage / "usr/sbin/criu").is_file() or not ldso.exists():
        raise SetupError(f"the extracted packages lack usr/sbin/criu or {ldso_name}")
    listing = run(
        [str(ldso), "--library-path", str(libdir), "--list", str(stage / "usr/sbin/criu")]
    )
    _must(listing, "the private ld.so loading criu")
    outside = [
        ln.strip() for ln in listing.stdout.splitlines() if "=>" in ln and str(stage) not in ln
    ]
    if outside:
        raise SetupError(f"criu resolves libraries outside {stage}: {'; '.join(outside)}")
    shutil.rmtree(settings.prefix, ignore_errors=True)
    stage.rename(settings.prefix)
    (settings.prefix / ".pytest-criu-packages").write_text("".join(f"{d.name}\n" for d in debs))
    shutil.rmtree(work, ignore_errors=True)
    write_atomically(WRAPPER, wrapper_script(settings, triplet, ldso_name), mode=0o755)


def wrapper_script(settings: CriuSettings, triplet: str, ldso_name: str) -> str:
    prefix = settings.prefix
    return (
        "#!/bin/sh\n"
        f"# Installed by pytest-criu setup: CRIU from Debian {settings.suite}, unpacked into a\n"
        f"# private prefix with its own glibc (see {prefix}/.pytest-criu-packages). The system\n"
        "# libc is untouched. runc finds this wrapper through the engine daemon's PATH.\n"
        f"P={prefix}\n"
        f'exec "$P/usr/lib/{triplet}/{ldso_name}" --library-path "$P/usr/lib/{triplet}" \\\n'
        '    --argv0 criu "$P/usr/sbin/criu" "$@"\n'
    )


def _must(done: Completed, what: str) -> None:
    if not done.ok:
        raise SetupError(f"installing CRIU from Debian failed at {what}: {done.why()}")
