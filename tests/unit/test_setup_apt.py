"""``pytest-criu setup``'s apt layer: sources from ``apt-get indextargets``, installs, checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_criu.setup import apt as apt_module
from pytest_criu.setup.apt import Apt, Archive, debian_archive, parse_indextargets
from pytest_criu.setup.system import SetupError
from tests.unit.setup_fakes import FakeRunner, fails, ok, plan

INDEXTARGETS = """\
MetaKey: main/binary-amd64/Packages
Identifier: Packages
Release: bookworm
Component: main
Repo-URI: http://deb.debian.org/debian/
Sourcesentry: /e/debian.sources:1
Target-Of: deb

MetaKey: main/binary-all/Packages
Identifier: Packages
Release: bookworm
Component: main
Repo-URI: http://deb.debian.org/debian/
Sourcesentry: /e/debian.sources:1
Target-Of: deb

MetaKey: main/i18n/Translation-en
Identifier: Translations
Release: bookworm
Component: main
Repo-URI: http://deb.debian.org/debian/
Sourcesentry: /e/debian.sources:1
Target-Of: deb

MetaKey: main/binary-amd64/Packages
Identifier: Packages
Release: bookworm-security
Component: main
Repo-URI: http://deb.debian.org/debian-security/
Sourcesentry: /e/debian.sources:2
Target-Of: deb

MetaKey: main/source/Sources
Identifier: Sources
Release: bookworm
Component: main
Repo-URI: http://mirror.example/debian/
Target-Of: deb-src
"""
DEBIAN = {"ID": "debian", "VERSION_CODENAME": "bookworm"}
UBUNTU = {"ID": "ubuntu", "ID_LIKE": "debian", "VERSION_CODENAME": "noble"}


def test_indextargets_yield_each_binary_archive_once() -> None:
    assert parse_indextargets(INDEXTARGETS) == [
        Archive("http://deb.debian.org/debian", "bookworm", "main", "/e/debian.sources:1"),
        Archive(
            "http://deb.debian.org/debian-security",
            "bookworm-security",
            "main",
            "/e/debian.sources:2",
        ),
    ]


def test_the_main_debian_archive_is_not_the_security_one() -> None:
    archives = parse_indextargets(INDEXTARGETS)
    assert debian_archive(archives, DEBIAN) == "http://deb.debian.org/debian"
    assert debian_archive(reversed(archives), DEBIAN) == "http://deb.debian.org/debian"


def test_ubuntu_has_no_debian_archive_to_offer() -> None:
    ubuntu = [Archive("http://archive.ubuntu.com/ubuntu", "noble", "main")]
    assert debian_archive(ubuntu, UBUNTU) is None


def test_missing_packages_come_from_dpkg_query() -> None:
    run = FakeRunner(
        {
            ("dpkg-query", "-W", "-f=${db:Status-Status}", "docker.io"): ok("installed"),
            ("dpkg-query", "-W", "-f=${db:Status-Status}", "podman"): ok("config-files"),
        }
    )
    assert Apt(run, plan()[0]).missing(["docker.io", "podman", "uidmap"]) == ["podman", "uidmap"]


def test_check_mode_installs_nothing_and_says_what_it_would() -> None:
    run = FakeRunner()
    checking, said = plan(check=True)
    Apt(run, checking).install(["podman"])
    assert run.calls == []
    assert said == ["would install podman"]
    assert checking.changes == ["install podman"]


def test_install_updates_once_without_recommends(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(apt_module, "POLICY_RC_D", tmp_path / "policy-rc.d")
    run = FakeRunner({("apt-get",): ok()})
    installer = Apt(run, plan()[0])
    installer.install(["podman"])
    installer.install(["uidmap"])
    assert run.calls.count(("apt-get", "update", "-qq")) == 1
    assert ("apt-get", "install", "-y", "-qq", "--no-install-recommends", "uidmap") in run.calls
    assert not (tmp_path / "policy-rc.d").exists()


def test_a_failed_install_names_the_packages_and_apts_words(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(apt_module, "POLICY_RC_D", tmp_path / "policy-rc.d")
    run = FakeRunner(
        {
            ("apt-get", "update"): ok(),
            ("apt-get", "install"): fails("E: Unable to locate package x"),
        }
    )
    with pytest.raises(SetupError, match=r"apt-get install x failed: .*Unable to locate package x"):
        Apt(run, plan()[0]).install(["x"])


def test_candidate_version_from_apt_cache_policy() -> None:
    policy = "criu:\n  Installed: (none)\n  Candidate: 3.17.1-2\n  Version table:\n"
    run = FakeRunner({("apt-cache", "policy", "criu"): ok(policy)})
    assert Apt(run, plan()[0]).candidate("criu") == "3.17.1-2"
    none = FakeRunner({("apt-cache", "policy", "criu"): ok("criu:\n  Candidate: (none)\n")})
    assert Apt(none, plan()[0]).candidate("criu") is None
