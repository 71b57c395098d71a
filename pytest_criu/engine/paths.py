"""Private directories: checkpoints hold process memory, so only their owner may read them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import HostError


def default_cache_directory() -> Path:
    """Where the snapshot cache lives unless --criu-cache-dir says otherwise."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base, "pytest-criu")


def private_directory(path: Path) -> Path:
    """Create ``path`` (mode 0700) or check an existing one; never loosen anything.

    Refused, with the reason: a directory owned by another user, one that group or others
    can access, or a symlink (on the path's last component) owned by another user.
    """
    uid = os.geteuid()
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as error:
        raise HostError(f"cannot create private directory {path}: {error}") from None
    link = path.lstat()
    if stat.S_ISLNK(link.st_mode) and link.st_uid != uid:
        raise HostError(
            f"refusing {path}: it is a symlink owned by uid {link.st_uid}, not by you "
            f"(uid {uid}); someone may be redirecting pytest-criu's files. Remove it or "
            "choose another directory"
        )
    info = path.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise HostError(f"refusing {path}: it is not a directory")
    if info.st_uid != uid:
        raise HostError(
            f"refusing {path}: it is owned by uid {info.st_uid}, not by you (uid {uid}); "
            "checkpoints hold process memory and must stay private. Remove it or choose "
            "another directory"
        )
    if info.st_mode & 0o077:
        raise HostError(
            f"refusing {path}: its mode is {stat.S_IMODE(info.st_mode):04o}, so other users "
            f"can reach it; checkpoints hold process memory. Run `chmod 700 {path}` or "
            "choose another directory"
        )
    return path


def make_private(root: Path) -> None:
    """Narrow every file below ``root`` to 0600 and every directory to 0700 (never widen)."""
    for directory, _dirs, files in os.walk(root):
        os.chmod(directory, stat.S_IMODE(os.stat(directory).st_mode) & 0o700)
        for name in files:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode):
                os.chmod(path, stat.S_IMODE(info.st_mode) & 0o600)


def tree_size(path: Path) -> int:
    """Bytes used by the files below ``path`` (hard links counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                info = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total
