"""Freeze the plugin's source for the length of a benchmark run.

A run takes minutes to half an hour, and the working tree may change meanwhile (an editor
saving a half-finished change would break, or silently change, the runs that follow). So
before anything imports ``pytest_criu``, its package is copied to a temporary directory
(from the working tree, or with ``--plugin-ref REF`` from a git commit via ``git archive``,
which changes nothing in the repository) and put first on ``sys.path`` and, for the pytest
runs, on ``PYTHONPATH``. The copy's origin and digest are recorded in the results.

This module must not import ``pytest_criu``.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

FROZEN_ENV = "PYTEST_CRIU_BENCH_PLUGIN_PATH"
REPOSITORY = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class FrozenPlugin:
    """Where the frozen copy lives and what it was copied from."""

    path: str
    origin: str
    """``working tree`` or the git ref given with ``--plugin-ref``."""
    commit: str | None
    dirty: bool | None
    """Whether the working tree's ``pytest_criu`` differed from HEAD (working-tree copies)."""
    digest: str


def plugin_ref_from(argv: list[str]) -> str | None:
    """The value of ``--plugin-ref`` in ``argv`` (parsed early, before the real parser)."""
    for index, argument in enumerate(argv):
        if argument == "--plugin-ref" and index + 1 < len(argv):
            return argv[index + 1]
        if argument.startswith("--plugin-ref="):
            return argument.split("=", 1)[1]
    return None


def _git(*arguments: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", "-C", str(REPOSITORY), *arguments], capture_output=True, check=False
    )


def freeze_plugin(ref: str | None) -> FrozenPlugin:
    """Copy ``pytest_criu`` (working tree, or ``ref``) aside and make it the one imported."""
    if "pytest_criu" in sys.modules:
        raise RuntimeError("pytest_criu was imported before its source could be frozen")
    root = Path(tempfile.mkdtemp(prefix="pytest-criu-bench-src-"))
    atexit.register(shutil.rmtree, root, True)
    commit_result = _git("rev-parse", "--verify", f"{ref or 'HEAD'}^{{commit}}")
    commit = commit_result.stdout.decode().strip() or None
    if ref is None:
        spec = importlib.util.find_spec("pytest_criu")
        if spec is None or spec.origin is None:
            raise RuntimeError("pytest_criu is not installed: pip install -e '.[bench]'")
        shutil.copytree(
            Path(spec.origin).parent,
            root / "pytest_criu",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        changed = _git("diff", "--quiet", "HEAD", "--", "pytest_criu").returncode
        dirty = None if changed not in (0, 1) else changed == 1
        origin = "working tree"
    else:
        if commit is None:
            raise RuntimeError(f"--plugin-ref {ref}: not a commit of {REPOSITORY}")
        archive = _git("archive", "--format=tar", commit, "pytest_criu")
        if archive.returncode != 0:
            raise RuntimeError(f"git archive {commit} failed: {archive.stderr.decode()}")
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(root, filter="data")
        dirty = None
        origin = ref
    digest = hashlib.sha256()
    for path in sorted((root / "pytest_criu").rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    sys.path.insert(0, str(root))
    os.environ[FROZEN_ENV] = str(root)
    check = subprocess.run(
        [sys.executable, "-c", "import pytest_criu.plugin"],
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        last = (check.stderr.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(
            f"the plugin from the {origin} does not import ({last}); "
            "is someone editing it? Try --plugin-ref HEAD"
        )
    return FrozenPlugin(
        path=str(root), origin=origin, commit=commit, dirty=dirty, digest=digest.hexdigest()[:16]
    )
