"""The test images' sources: the host's apt entries for its release, grouped as written, so
that the services image's digest tag stays what it was when its sources were parsed by hand."""

from __future__ import annotations

import pytest

from pytest_criu.setup.apt import Archive
from tests.tooling.images import (
    BuildError,
    Release,
    Source,
    host_sources,
    services_release,
    sources_text,
)

MAIN = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"
ARCHIVES = [
    Archive(MAIN, "bookworm", "main", "/etc/apt/sources.list.d/debian.sources:1"),
    Archive(MAIN, "bookworm-updates", "main", "/etc/apt/sources.list.d/debian.sources:1"),
    Archive(SECURITY, "bookworm-security", "main", "/etc/apt/sources.list.d/debian.sources:2"),
    Archive("http://deb.debian.org/debian", "sid", "main", "/etc/apt/sources.list:3"),
]


def test_entries_group_their_suites_and_other_releases_are_left_out() -> None:
    assert host_sources("bookworm", ARCHIVES) == [
        Source([MAIN], ["bookworm", "bookworm-updates"], ["main"], ""),
        Source([SECURITY], ["bookworm-security"], ["main"], ""),
    ]


def test_the_sources_file_mmdebstrap_gets() -> None:
    assert sources_text(host_sources("bookworm", ARCHIVES)[:1]) == (
        f"Types: deb\nURIs: {MAIN}\nSuites: bookworm bookworm-updates\nComponents: main\n"
    )


DEBIAN = {"ID": "debian", "VERSION_CODENAME": "bookworm"}
UBUNTU = {"ID": "ubuntu", "VERSION_CODENAME": "noble", "PRETTY_NAME": "Ubuntu 24.04.3 LTS"}
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def test_a_debian_host_bootstraps_its_own_release_from_its_own_sources() -> None:
    release = services_release(DEBIAN, "http://elsewhere.example/debian", None, ARCHIVES)
    assert release == Release("debian", "bookworm", host_sources("bookworm", ARCHIVES))


def test_an_ubuntu_host_bootstraps_debian_from_the_debian_mirror() -> None:
    # Ubuntu's own entries (noble) carry no Debian suite: they are not looked at.
    release = services_release(UBUNTU, "http://deb.debian.org/debian/", None, [])
    assert release == Release(
        "debian",
        "bookworm",
        [Source([MAIN], ["bookworm", "bookworm-updates"], ["main"], KEYRING)],
    )
    assert services_release(UBUNTU, MAIN, "trixie", []).sources[0].suites == [
        "trixie",
        "trixie-updates",
    ]
    assert f"Signed-By: {KEYRING}" in sources_text(release.sources)


def test_an_ubuntu_host_without_a_debian_mirror_is_told_which_variable_to_set() -> None:
    with pytest.raises(BuildError) as caught:
        services_release(UBUNTU, None, None, [])
    assert str(caught.value) == (
        "this host is Ubuntu 24.04.3 LTS: the services image is Debian bookworm, bootstrapped "
        "from Debian's archive; set PYTEST_CRIU_DEBIAN_URI to a Debian mirror (e.g. sudo "
        "PYTEST_CRIU_DEBIAN_URI=http://deb.debian.org/debian .venv/bin/python -m "
        "tests.tooling.images all)"
    )


def test_a_debian_host_without_sources_for_its_release_is_an_error() -> None:
    with pytest.raises(BuildError, match="no apt source for 'trixie'"):
        services_release({"ID": "debian", "VERSION_CODENAME": "trixie"}, None, None, ARCHIVES)
