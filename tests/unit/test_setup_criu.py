"""``pytest-criu setup``'s CRIU: which binaries qualify, where Debian's comes from."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_criu.setup import criu as criu_module
from pytest_criu.setup.apt import Apt, PrivateApt
from pytest_criu.setup.criu import CriuSettings, archive_uri, rejection, wrapper_script
from pytest_criu.setup.system import SetupError
from tests.unit.setup_fakes import FakeRunner, compare_versions, fails, ok, plan

VERSION_421 = "Version: 4.2.1\nGitID: v4.2.1\n"


def runner(version: str, check: str | None = None) -> FakeRunner:
    return FakeRunner(
        {
            ("/x/criu", "--version"): ok(version),
            ("/x/criu", "check"): ok("Looks good.\n") if check is None else fails(check),
            ("dpkg", "--compare-versions"): compare_versions,
        }
    )


def test_a_new_enough_criu_that_passes_its_check_qualifies() -> None:
    run = runner(VERSION_421)
    assert rejection(run, Apt(run, plan()[0]), "/x/criu") is None


@pytest.mark.parametrize(
    ("version", "check", "reason"),
    [
        ("", None, "/x/criu --version did not report a version"),
        ("Version: 3.17.1\n", None, "/x/criu is CRIU 3.17.1; need >= 4.2 (older versions"),
        (
            VERSION_421,
            "Warn: x\nError (criu/cr-check.c): ptrace broken",
            "fails 'criu check': Error",
        ),
    ],
)
def test_why_a_criu_does_not_qualify(version: str, check: str | None, reason: str) -> None:
    run = runner(version, check)
    found = rejection(run, Apt(run, plan()[0]), "/x/criu")
    assert found is not None
    assert reason in found
    assert "Warn" not in found


def test_a_private_apt_state_leaves_the_hosts_alone(tmp_path: Path) -> None:
    text = "criu\n  Depends: libc6\n  Depends: <python3:any>\nlibc6\n<virtual>\nlibnl-3-200\n"
    run = FakeRunner({("apt-cache",): ok(text)})
    private = PrivateApt(run, tmp_path, "http://m/debian", "sid", Path("/k.gpg"))
    assert private.depends("criu") == ["criu", "libc6", "libnl-3-200"]
    assert f"-oDir::State::Lists={tmp_path / 'lists'}" in run.calls[0]
    assert "-oDir::State::status=/dev/null" in run.calls[0]
    assert (tmp_path / "private.sources").read_text() == (
        "Types: deb\nURIs: http://m/debian\nSuites: sid\nComponents: main\nSigned-By: /k.gpg\n"
    )


def test_the_wrapper_runs_criu_with_the_private_ld_so() -> None:
    script = wrapper_script(
        CriuSettings(prefix=Path("/opt/p")), "x86_64-linux-gnu", "ld-linux-x86-64.so.2"
    )
    assert script.startswith("#!/bin/sh\n")
    assert "P=/opt/p\n" in script
    assert '--library-path "$P/usr/lib/x86_64-linux-gnu"' in script
    assert script.endswith('--argv0 criu "$P/usr/sbin/criu" "$@"\n')


def test_the_debian_uri_from_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_CRIU_DEBIAN_URI", "http://mirror.example/debian")
    settings = CriuSettings.from_environment()
    assert archive_uri(Apt(FakeRunner(), plan()[0]), settings) == "http://mirror.example/debian"


def test_without_a_debian_archive_the_error_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(criu_module, "os_release", lambda: {"ID": "ubuntu", "ID_LIKE": "debian"})
    listing = "Identifier: Packages\nRelease: noble\nComponent: main\nTarget-Of: deb\n"
    run = FakeRunner({("apt-get", "indextargets"): ok(listing + "Repo-URI: http://u/ubuntu/\n")})
    with pytest.raises(SetupError) as caught:
        archive_uri(Apt(run, plan()[0]), CriuSettings())
    assert "set PYTEST_CRIU_DEBIAN_URI to a Debian mirror" in str(caught.value)
    assert "sudo PYTEST_CRIU_DEBIAN_URI=http://deb.debian.org/debian pytest-criu setup" in str(
        caught.value
    )


def test_without_debians_keyring_it_is_installed_or_the_error_says_universe(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(criu_module, "DEBIAN_KEYRING", tmp_path / "debian-archive-keyring.gpg")
    checking, said = plan(check=True)
    criu_module.keyring(Apt(FakeRunner(), checking))
    assert said == ["would install debian-archive-keyring (to verify Debian's criu)"]

    monkeypatch.setattr("pytest_criu.setup.apt.POLICY_RC_D", tmp_path / "policy-rc.d")
    run = FakeRunner({("apt-get", "update"): ok(), ("apt-get", "install"): fails("E: no such")})
    with pytest.raises(SetupError, match=r"on Ubuntu enable the universe component"):
        criu_module.keyring(Apt(run, plan()[0]))
