"""``copy_into``'s decisions and its tar, against a hand-written archive-API fake."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from pytest_criu.engine.archive import copy_into

DIR_MODE = (1 << 31) | 0o755


class FakeArchiveEngine:
    """A container with the directories given; remembers every archive put."""

    def __init__(self, directories: set[str], files: frozenset[str] = frozenset()) -> None:
        self.directories = directories
        self.files = set(files)
        self.put: list[tuple[str, dict[str, bytes | None]]] = []

    def path_stat(self, container_id: str, path: str) -> dict[str, object] | None:
        if path in self.directories:
            return {"name": path.rsplit("/", 1)[-1], "mode": DIR_MODE}
        if path in self.files:
            return {"name": path.rsplit("/", 1)[-1], "mode": 0o644}
        return None

    def put_archive(self, container_id: str, directory: str, archive: bytes) -> None:
        members: dict[str, bytes | None] = {}
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            for info in tar.getmembers():
                assert (info.uid, info.gid, info.uname) == (0, 0, "root")
                handle = tar.extractfile(info)
                members[info.name] = handle.read() if handle else None
        self.put.append((directory, members))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "app.ini").write_text("[app]\n")
    (tmp_path / "conf" / "sub").mkdir()
    (tmp_path / "conf" / "sub" / "x.sql").write_text("select 1;\n")
    return tmp_path


def test_a_file_to_a_new_name(tree: Path) -> None:
    engine = FakeArchiveEngine({"/", "/etc"})
    made = copy_into(engine, "c1", tree / "conf" / "app.ini", "/etc/my.ini")
    assert made == "/etc/my.ini"
    assert engine.put == [("/etc", {"my.ini": b"[app]\n"})]


def test_a_directory_into_an_existing_directory(tree: Path) -> None:
    engine = FakeArchiveEngine({"/", "/srv"})
    made = copy_into(engine, "c1", str(tree / "conf"), "/srv/")
    assert made == "/srv/conf"
    directory, members = engine.put[0]
    assert directory == "/srv"
    assert members == {
        "conf": None,
        "conf/app.ini": b"[app]\n",
        "conf/sub": None,
        "conf/sub/x.sql": b"select 1;\n",
    }


def test_a_missing_source_is_named(tree: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        copy_into(FakeArchiveEngine({"/"}), "c1", tree / "nope.sql", "/tmp", what="db: copy_into")
    assert (
        str(info.value) == f"db: copy_into: {str(tree / 'nope.sql')!r} does not exist on the host"
    )


def test_a_missing_destination_directory_is_named(tree: Path) -> None:
    engine = FakeArchiveEngine({"/", "/etc"}, frozenset({"/etc/hostname"}))
    with pytest.raises(FileNotFoundError) as info:
        copy_into(engine, "c1", tree / "conf", "/opt/app/conf", what="db: copy_into")
    assert str(info.value) == (
        "db: copy_into: the destination directory /opt/app does not exist in the container; "
        "create it first (handle.exec(['mkdir', '-p', '/opt/app'])) or copy to an existing "
        "directory"
    )
    with pytest.raises(FileNotFoundError, match="directory /etc/hostname does not exist"):
        copy_into(engine, "c1", tree / "conf", "/etc/hostname/conf")
    assert engine.put == []


@pytest.mark.parametrize("destination", ["etc/app.ini", "", "./x"])
def test_a_relative_destination_is_refused(tree: Path, destination: str) -> None:
    with pytest.raises(ValueError, match="must be an absolute path in the container"):
        copy_into(FakeArchiveEngine({"/"}), "c1", tree / "conf", destination)


@pytest.mark.parametrize("destination", ["/data", "/data/", "/data/seed/x.sql"])
def test_tmpfs_destinations_are_refused(tree: Path, destination: str) -> None:
    engine = FakeArchiveEngine({"/", "/data"})
    with pytest.raises(ValueError, match="is on the tmpfs mount /data; Docker's archive API"):
        copy_into(engine, "c1", tree / "conf", destination, tmpfs=["/data"])
    assert engine.put == []
    # a sibling that merely shares the prefix is not on the mount
    engine.directories.add("/database")
    assert copy_into(engine, "c1", tree / "conf", "/database", tmpfs=["/data"]) == "/database/conf"
