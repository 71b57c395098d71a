"""The test images' sources: the host's apt entries for its release, grouped as written, so
that the services image's digest tag stays what it was when its sources were parsed by hand."""

from __future__ import annotations

from pytest_criu.setup.apt import Archive
from tests.tooling.images import Source, host_sources, sources_text

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
