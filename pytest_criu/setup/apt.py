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
