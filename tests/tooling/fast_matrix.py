"""Run the fast layer on other Pythons and pytest versions, from the built wheel.

Usage: python3 -m tests.tooling.fast_matrix WHEEL [NAME...]

Each cell gets a new virtualenv under /var/tmp/pytest-criu-matrix/NAME holding the wheel (not
an editable install), its test dependencies and the pinned pytest, then runs
``pytest -m "not integration"`` from the checkout. Cells (all by default):

  py3.10-pytest8.0   the oldest Python and the oldest pytest the package supports
  py3.13-pytest-new  the newest Python with the newest pytest

Interpreters are found in pyenv's versions (~/.pyenv/versions/3.X.*, PYENV_ROOT), then on
PATH (python3.10, python3.13). A missing one fails the cell and says where to get it.
Standard library only: it runs before and beside any virtualenv.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[2]
WORK = Path("/var/tmp/pytest-criu-matrix")
#: What the fast layer imports besides the package (a subset of the test extras).
TEST_DEPENDENCIES = ("pytest-xdist>=3.5", "PyYAML>=6.0")


class Cell(NamedTuple):
    name: str
    python: str
    pytest: str


CELLS = (
    Cell("py3.10-pytest8.0", "3.10", "pytest==8.0.*"),
    Cell("py3.13-pytest-new", "3.13", "pytest"),
)


def log(message: str) -> None:
    print(f"[fast-matrix] {message}", file=sys.stderr, flush=True)


def find_python(version: str, pyenv_root: Path | None = None) -> str | None:
    """The newest pyenv install of ``version``, else ``pythonX.Y`` on PATH; one that runs
    (pyenv's shims on PATH exist for every version but run only the selected ones)."""
    root = pyenv_root or Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    installs = glob.glob(str(root / "versions" / f"{version}.*" / "bin" / f"python{version}"))
    on_path = shutil.which(f"python{version}")
    for candidate in [*sorted(installs, key=_version_key, reverse=True), on_path]:
        if candidate and _runs(candidate):
            return candidate
    return None


def _runs(python: str) -> bool:
    done = subprocess.run([python, "-c", ""], capture_output=True, check=False, timeout=60)
    return done.returncode == 0


def _version_key(path: str) -> tuple[int, ...]:
    release = Path(path).parents[1].name
    return tuple(int(p) for p in release.split(".") if p.isdigit())


def run_cell(cell: Cell, wheel: Path) -> bool:
    python = find_python(cell.python)
    if python is None:
        log(
            f"{cell.name}: no Python {cell.python} on PATH or in pyenv; install it (pyenv "
            f"install {cell.python}, or a distribution package python{cell.python}) and rerun"
        )
        return False
    venv = WORK / cell.name
    shutil.rmtree(venv, ignore_errors=True)
    began = time.monotonic()
    steps = [
        [python, "-m", "venv", str(venv)],
        [
            str(venv / "bin/pip"),
            "install",
            "-q",
            "--disable-pip-version-check",
            str(wheel),
            cell.pytest,
            *TEST_DEPENDENCIES,
        ],
    ]
    for step in steps:
        if subprocess.run(step, check=False, stdin=subprocess.DEVNULL).returncode != 0:
            log(f"{cell.name}: {' '.join(step[:3])} ... failed")
            return False
    installed = time.monotonic()
    version = subprocess.run(
        [str(venv / "bin/python"), "-c", "import sys, pytest; print(sys.version.split()[0], pytest.__version__)"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    log(f"{cell.name}: Python and pytest {version}; running the fast layer")
    result = subprocess.run(
        [str(venv / "bin/pytest"), "-m", "not integration", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    took = time.monotonic()
    log(f"{cell.name}: exit {result.returncode} (install {installed - began:.0f} s, tests "
        f"{took - installed:.0f} s)")  # fmt: skip
    shutil.rmtree(venv, ignore_errors=True)
    return result.returncode == 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or not args[0].endswith(".whl"):
        log("usage: python3 -m tests.tooling.fast_matrix WHEEL [NAME...]")
        return 2
    wheel, wanted = Path(args[0]).resolve(), set(args[1:])
    unknown = wanted - {c.name for c in CELLS}
    if unknown:
        log(
            f"unknown cell(s) {', '.join(sorted(unknown))}; known: {', '.join(c.name for c in CELLS)}"
        )
        return 2
    failed = [c.name for c in CELLS if (not wanted or c.name in wanted) and not run_cell(c, wheel)]
    if failed:
        log(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
