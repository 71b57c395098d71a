"""The round trip's image, ``pytest-criu/tiny``: a static busybox and its applets, no registry.

Tagged ``pytest-criu/tiny:<digest of its inputs>`` and ``:latest``; an image already under
the wanted name is used as it is and never replaced.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .plan import Plan
from .system import Runner, SetupError

RECIPE_VERSION = "1"
REPOSITORY = "pytest-criu/tiny"
PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CHANGES = (
    f"ENV PATH={PATH_ENV}",
    'CMD ["sh"]',
    "LABEL org.opencontainers.image.title=pytest-criu-tiny",
)
DIRECTORIES = (
    "bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "proc", "sys", "dev", "var",
    "var/www", "run",
)  # fmt: skip
PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = b"root:x:0:\nnogroup:x:65534:\n"


def digest(parts: Sequence[str | bytes]) -> str:
    """12 hex digits covering ``parts`` (each length-prefixed, so no two lists collide)."""
    sha = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        sha.update(len(data).to_bytes(8, "big"))
        sha.update(data)
    return sha.hexdigest()[:12]


def is_static_elf(path: Path) -> bool:
    """True for a 64-bit little-endian ELF without a PT_INTERP program header."""
    with open(path, "rb") as file:
        head = file.read(64)
        if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            return False
        phoff = int.from_bytes(head[32:40], "little")
        phentsize = int.from_bytes(head[54:56], "little")
        phnum = int.from_bytes(head[56:58], "little")
        file.seek(phoff)
        table = file.read(phentsize * phnum)
    return all(
        int.from_bytes(table[i * phentsize : i * phentsize + 4], "little") != 3  # PT_INTERP
        for i in range(phnum)
    )


def find_static_busybox(run: Runner) -> Path:
    done = run(["dpkg", "-L", "busybox-static"], timeout=30)
    candidates = [Path(p) for p in done.stdout.split() if p.endswith("bin/busybox")]
    candidates += [Path("/bin/busybox"), Path("/usr/bin/busybox")]
    for path in candidates:
        if path.is_file() and is_static_elf(path):
            return path
    raise SetupError(
        "no statically linked busybox found; install it: sudo apt-get install busybox-static"
    )


def applets(run: Runner, busybox: Path) -> list[str]:
    done = run([str(busybox), "--list-full"], timeout=30)
    if not done.ok:
        raise SetupError(f"cannot list busybox's applets: {done.why()}")
    return sorted(set(done.stdout.split()))


def tiny_tar(busybox: bytes, names: Sequence[str]) -> bytes:
    """A reproducible root file system: busybox, its applet links, passwd and group."""
    buffer = io.BytesIO()

    def add(info: tarfile.TarInfo, data: bytes | None = None) -> None:
        info.mtime = 0
        if data is not None:
            info.size = len(data)
        tar.addfile(info, io.BytesIO(data) if data is not None else None)

    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, mode in [*((d, 0o700 if d == "root" else 0o755) for d in DIRECTORIES),
                           ("tmp", 0o1777), ("var/tmp", 0o1777)]:  # fmt: skip
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            add(info)
        for name, data, mode in (
            ("bin/busybox", busybox, 0o755),
            ("etc/passwd", PASSWD, 0o644),
            ("etc/group", GROUP, 0o644),
        ):
            info = tarfile.TarInfo(name)
            info.mode = mode
            add(info, data)
        for name in names:
            if name != "bin/busybox":
                info = tarfile.TarInfo(name)
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, "/bin/busybox", 0o777
                add(info)
    return buffer.getvalue()


def recipe(run: Runner) -> tuple[str, bytes]:
    """The digest tag of the tiny image this host would build, and its root file system."""
    busybox = find_static_busybox(run)
    data = busybox.read_bytes()
    names = applets(run, busybox)
    tag = digest([RECIPE_VERSION, "tiny", data, "\n".join(names), *CHANGES])
    return tag, tiny_tar(data, names)


def has_image(run: Runner, cli: str, reference: str) -> bool:
    return run([cli, "image", "inspect", reference], timeout=60).ok


def ensure_tiny(run: Runner, plan: Plan, cli: str, reference: str) -> bool:
    """Make ``reference`` exist in ``cli``'s engine (docker or podman); False when only checked."""
    if has_image(run, cli, reference):
        return True
    if reference != f"{REPOSITORY}:latest":
        raise SetupError(
            f"the round trip's image {reference} (PYTEST_CRIU_TINY_IMAGE) is not in {cli}'s "
            f"storage; build or pull it, or unset PYTEST_CRIU_TINY_IMAGE"
        )
    tag, data = recipe(run)
    if not plan.change(f"build {REPOSITORY}:{tag} in {cli} (a busybox image for the round trip)"):
        return False
    with tempfile.TemporaryDirectory(prefix="pytest-criu-tiny-") as tmp:
        archive = os.path.join(tmp, "rootfs.tar")
        Path(archive).write_bytes(data)
        changes = [arg for change in CHANGES for arg in ("--change", change)]
        done = run([cli, "import", *changes, archive, f"{REPOSITORY}:{tag}"], timeout=300)
        if not done.ok:
            raise SetupError(f"cannot import the tiny image: {done.why()}")
    done = run([cli, "tag", f"{REPOSITORY}:{tag}", reference], timeout=60)
    if not done.ok:
        raise SetupError(f"cannot tag the tiny image: {done.why()}")
    return True
