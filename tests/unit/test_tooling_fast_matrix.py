"""The fast-layer matrix finds interpreters that run, newest first, and skips pyenv's shims."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tooling.fast_matrix import find_python


def interpreter(root: Path, release: str, works: bool) -> Path:
    version = ".".join(release.split(".")[:2])
    path = root / "versions" / release / "bin" / f"python{version}"
    path.parent.mkdir(parents=True)
    path.write_text(f"#!/bin/sh\nexit {0 if works else 1}\n")
    path.chmod(0o755)
    return path


def test_the_newest_pyenv_install_that_runs_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    interpreter(tmp_path, "3.10.9", works=True)
    best = interpreter(tmp_path, "3.10.13", works=True)
    interpreter(tmp_path, "3.10.14", works=False)  # like a shim for an unselected version
    assert find_python("3.10", tmp_path) == str(best)
    assert find_python("3.13", tmp_path) is None
