"""The engines' prefix, shared by the installers and the tests that start what they installed.

``tests/tooling/engines.py`` (Docker 26.1, 28.x) and ``tests/tooling/podman5.py`` (Podman 5.8,
5.4) unpack engines into ``PREFIX/<name>`` and record their versions in ``engine.env``;
``tests/engines.py`` and ``tests/podman5.py`` read it back. Here: that file's format, the
``<name>.unavailable`` notes, the private apt state each suite is downloaded with, and the
installers' command line (``[--refresh] [ENGINE...]``, as root).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pytest_criu.setup import apt, criu, plan, system
from pytest_criu.setup.system import SetupError

PREFIX = Path(os.environ.get("PYTEST_CRIU_ENGINES_PREFIX") or "/opt/pytest-criu/engines")
ENGINE_ENV = "engine.env"

Log = Callable[[str], None]


def read_engine_env(directory: Path) -> dict[str, str]:
    """``directory/engine.env``'s ``KEY=VALUE`` lines (``#`` comments skipped)."""
    facts = {}
    for line in (directory / ENGINE_ENV).read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            facts[key.strip()] = value.strip()
    return facts


def installed_facts(name: str, setup_hint: str) -> tuple[dict[str, str] | None, str]:
    """``(engine.env's facts, "")`` when engine ``name`` is installed, else ``(None, why not)``.

    ``why`` quotes the engine's ``.unavailable`` note when its installer left one.
    """
    facts_file = PREFIX / name / ENGINE_ENV
    if not facts_file.is_file():
        note = unavailable_note(name)
        why = note.read_text().strip() if note.is_file() else f"{facts_file} does not exist"
        return None, f"engine {name} is not installed ({why}); {setup_hint} {name}"
    return read_engine_env(PREFIX / name), ""


def unavailable_note(name: str) -> Path:
    """Why engine ``name`` could not be installed, for its tests to quote."""
    return PREFIX / f"{name}.unavailable"


def private_apt(work: Path, suite: str, log: Log) -> apt.PrivateApt:
    """apt for Debian ``suite`` with its state under ``work``, from the host's archive."""
    run = system.run
    installer = apt.Apt(run, plan.Plan(check=False, say=log))
    settings = criu.CriuSettings.from_environment()
    uri = criu.archive_uri(installer, settings)
    return apt.PrivateApt(run, work, uri, suite, criu.keyring(installer))


def install_main(
    argv: Sequence[str] | None,
    *,
    prog: str,
    description: str | None,
    installers: Mapping[str, Callable[[bool], None]],
    log: Log,
) -> int:
    """An installer's command line: ``[--refresh] [ENGINE...]`` (all by default), as root.

    ``installers`` maps each engine's name to what installs it (given ``--refresh``).
    """
    known = ", ".join(installers)
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--refresh", action="store_true", help="download again when newer")
    parser.add_argument("engines", nargs="*", metavar="ENGINE", help=known)
    args = parser.parse_args(argv)
    unknown = set(args.engines) - set(installers)
    if unknown:
        parser.error(f"unknown engine(s) {', '.join(sorted(unknown))}; known: {known}")
    if os.geteuid() != 0:
        log(f"must run as root: sudo .venv/bin/{prog}")
        return 1
    PREFIX.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    try:
        for name, install in installers.items():
            if not args.engines or name in args.engines:
                install(args.refresh)
    except (SetupError, subprocess.CalledProcessError) as error:
        log(f"ERROR: {error}")
        return 1
    log(f"done in {time.monotonic() - began:.1f} s")
    return 0
