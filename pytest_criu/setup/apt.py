"""Debian packages: what is installed, installing what is missing, where the archive is."""

from __future__ import annotations

import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .plan import Plan
from .system import Runner, SetupError

POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
SYSTEMD_RUN = Path("/run/systemd/system")
NONINTERACTIVE = {"DEBIAN_FRONTEND": "noninteractive"}


@dataclass(frozen=True)
class Archive:
    """One ``deb`` source of this host, as ``apt-get indextargets`` reports it."""

    uri: str
    suite: str
    component: str
    entry: str = ""
    """The sources entry it comes from (``file:paragraph``): entries group suites."""


def parse_indextargets(text: str) -> list[Archive]:
    """The distinct (URI, suite, component) of the ``Packages`` targets in apt's deb822 output."""
    found: list[Archive] = []
    for paragraph in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in paragraph.splitlines():
            key, sep, value = line.partition(":")
            if sep and not line[:1].isspace():
                fields[key.strip().lower()] = value.strip()
        if fields.get("target-of") != "deb" or fields.get("identifier") != "Packages":
            continue
        archive = Archive(
            fields.get("repo-uri", "").rstrip("/"),
            fields.get("release", ""),
            fields.get("component", ""),
            fields.get("sourcesentry", ""),
        )
        if archive.uri and archive not in found:
            found.append(archive)
    return found


def debian_archive(archives: Iterable[Archive], os_release: Mapping[str, str]) -> str | None:
    """The URI of the host's main Debian archive (not security, not backports), if it is Debian."""
    if os_release.get("ID") != "debian":
        return None  # Ubuntu and other derivatives: their archives carry no Debian suites
    codename = os_release.get("VERSION_CODENAME", "")
    for archive in archives:
        if "security" in archive.uri or archive.component != "main":
            continue
        if not codename or archive.suite == codename:
            return archive.uri
    return None


def os_release() -> dict[str, str]:
    """``/etc/os-release`` (empty when the file is missing)."""
    try:
        return platform.freedesktop_os_release()
    except OSError:
        return {}


class Apt:
    """apt-get and dpkg on this host; installs go through the :class:`Plan`."""

    def __init__(self, run: Runner, plan: Plan) -> None:
        self._run = run
        self._plan = plan
        self._updated = False

    def installed(self, package: str) -> bool:
        done = self._run(["dpkg-query", "-W", "-f=${db:Status-Status}", package], timeout=30)
        return done.ok and done.stdout.strip() == "installed"

    def missing(self, packages: Sequence[str]) -> list[str]:
        return [package for package in packages if not self.installed(package)]

    def version_at_least(self, version: str, minimum: str) -> bool:
        return self._run(["dpkg", "--compare-versions", version, "ge", minimum], timeout=30).ok

    def architecture(self) -> str:
        done = self._run(["dpkg", "--print-architecture"], timeout=30)
        if not done.ok:
            raise SetupError(f"cannot tell this host's architecture: {done.why()}")
        return done.stdout.strip()

    def update(self) -> None:
        """``apt-get update``, once per run (only ever called before an install)."""
        if self._updated:
            return
        done = self._run(["apt-get", "update", "-qq"], timeout=600, env=NONINTERACTIVE)
        if not done.ok:
            raise SetupError(f"apt-get update failed: {done.why()}")
        self._updated = True

    def candidate(self, package: str) -> str | None:
        """The version ``apt-get install`` would pick, or None."""
        done = self._run(["apt-cache", "policy", package], timeout=60)
        for line in done.stdout.splitlines():
            key, _, value = line.strip().partition(":")
            if key == "Candidate":
                value = value.strip()
                return None if value in ("", "(none)") else value
        return None

    def install(self, packages: Sequence[str], why: str = "") -> None:
        """Install ``packages`` (no recommends) unless the plan is a check."""
        if not packages:
            return
        what = f"install {' '.join(packages)}" + (f" ({why})" if why else "")
        if not self._plan.change(what):
            return
        self.update()
        # Without systemd, keep maintainer scripts from starting daemons: we start them
        # ourselves, with the PATH CRIU needs.
        guard = not SYSTEMD_RUN.is_dir() and not POLICY_RC_D.exists()
        if guard:
            POLICY_RC_D.write_text("#!/bin/sh\nexit 101\n")
            POLICY_RC_D.chmod(0o755)
        try:
            done = self._run(
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
                timeout=1800,
                env=NONINTERACTIVE,
            )
        finally:
            if guard:
                POLICY_RC_D.unlink(missing_ok=True)
        if not done.ok:
            raise SetupError(f"apt-get install {' '.join(packages)} failed: {done.why()}")

    def archives(self) -> list[Archive]:
        done = self._run(["apt-get", "indextargets", "--no-release-info"], timeout=60)
        if not done.ok:
            raise SetupError(f"cannot list this host's apt sources: {done.why()}")
        return parse_indextargets(done.stdout)


class PrivateApt:
    """apt with a state of its own for one Debian suite: the host's lists, sources and
    status stay untouched (for packages unpacked into a private prefix, never installed)."""

    def __init__(self, run: Runner, work: Path, uri: str, suite: str, keyring: Path) -> None:
        self._run = run
        self.work = work
        self.suite = suite
        for sub in ("lists/partial", "cache/archives/partial"):
            (work / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        sources = work / "private.sources"
        sources.write_text(
            f"Types: deb\nURIs: {uri}\nSuites: {suite}\nComponents: main\nSigned-By: {keyring}\n"
        )
        self.options = [
            f"-oDir::Etc::SourceList={sources}",
            "-oDir::Etc::SourceParts=-",
            f"-oDir::State::Lists={work / 'lists'}",
            "-oDir::State::status=/dev/null",
            f"-oDir::Cache={work / 'cache'}",
            "-oDir::Cache::pkgcache=",
            "-oDir::Cache::srcpkgcache=",
            "-oAcquire::Languages=none",
            "-oAPT::Sandbox::User=root",
        ]

    def _must(self, argv: list[str], what: str, timeout: float, cwd: Path | None = None) -> str:
        done = self._run(argv, timeout=timeout, cwd=cwd)
        if not done.ok:
            raise SetupError(f"{what} from Debian {self.suite} failed: {done.why()}")
        return done.stdout

    def update(self) -> None:
        self._must(["apt-get", *self.options, "update", "-qq"], "apt-get update", 600)

    def candidate(self, package: str) -> str | None:
        text = self._must(["apt-cache", *self.options, "policy", package], "apt-cache policy", 60)
        for line in text.splitlines():
            key, _, value = line.strip().partition(":")
            if key == "Candidate":
                return None if value.strip() in ("", "(none)") else value.strip()
        return None

    def depends(self, *packages: str) -> list[str]:
        """``packages`` and the closure of their Depends and Pre-Depends."""
        skip = ["--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks"]
        skip += ["--no-replaces", "--no-enhances"]
        argv = ["apt-cache", *self.options, "depends", "--recurse", *skip, *packages]
        text = self._must(argv, "apt-cache depends", 120)
        return sorted({ln.strip() for ln in text.splitlines() if ln and ln[0] not in " <"})

    def download(self, packages: Sequence[str], into: Path) -> list[Path]:
        into.mkdir(parents=True, exist_ok=True)
        argv = ["apt-get", *self.options, "download", "-qq", *packages]
        self._must(argv, "apt-get download", 1200, cwd=into)
        return sorted(into.glob("*.deb"))
