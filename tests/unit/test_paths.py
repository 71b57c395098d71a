"""Private directories refuse what could expose checkpoints (process memory)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_criu.engine.errors import HostError
from pytest_criu.engine.paths import private_directory, tree_size


def test_creates_the_directory_owner_only(tmp_path: Path) -> None:
    path = private_directory(tmp_path / "a" / "cache")
    assert path.stat().st_mode & 0o777 == 0o700
    assert private_directory(path) == path, "an existing private directory is fine"


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o755, 0o777])
def test_refuses_a_directory_others_can_reach(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "shared"
    path.mkdir()
    path.chmod(mode)
    with pytest.raises(HostError, match=rf"its mode is {mode:04o}.*chmod 700"):
        private_directory(path)
    assert path.stat().st_mode & 0o777 == mode, "permissions are never changed"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create files owned by others")
def test_refuses_a_directory_owned_by_someone_else(tmp_path: Path) -> None:
    path = tmp_path / "planted"
    path.mkdir(mode=0o700)
    os.chown(path, 4242, 4242)
    with pytest.raises(HostError, match="owned by uid 4242, not by you"):
        private_directory(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create files owned by others")
def test_refuses_a_symlink_planted_by_someone_else(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir(mode=0o700)
    link = tmp_path / "cache"
    link.symlink_to(target)
    os.lchown(link, 4242, 4242)
    with pytest.raises(HostError, match="symlink owned by uid 4242"):
        private_directory(link)


def test_accepts_own_symlink_to_own_private_directory(tmp_path: Path) -> None:
    target = private_directory(tmp_path / "real")
    link = tmp_path / "link"
    link.symlink_to(target)
    assert private_directory(link) == link


def test_refuses_a_file(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(HostError, match="not a directory"):
        private_directory(path)


def test_tree_size_counts_hard_links_once(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 1000)
    os.link(tmp_path / "a", tmp_path / "b")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c").write_bytes(b"y" * 24)
    assert tree_size(tmp_path) == 1024
