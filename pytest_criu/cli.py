"""The ``pytest-criu`` command: ``doctor`` checks whether this host can snapshot; ``setup``
makes a Debian or Ubuntu host ready (see :mod:`pytest_criu.setup`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from . import snapshot_commands
from .engine.doctor import HostReport, detect_host
from .engine.spec import ENGINE_CHOICES

TAGS = {"ok": "[ ok ]", "warn": "[warn]", "fail": "[FAIL]", "skip": "[skip]"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0: snapshots can work here)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "setup":
        from .setup import command

        return command.main(args)
    if args.command in snapshot_commands.COMMANDS:
        return snapshot_commands.run(args)
    if args.command != "doctor":
        parser.error("a command is required (doctor, setup, key, export or import)")
    report = detect_host(
        criu_binary=args.criu_binary,
        docker_url=args.engine_url,
        timeout=args.timeout,
        engine=args.engine,
    )
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_report(report, sys.stdout)
    return 0 if report.can_snapshot else 1


def print_report(report: HostReport, out: TextIO) -> None:
    """Write one line per check, a ``fix:`` line under each problem, then the verdict."""
    width = max((len(check.name) for check in report.checks), default=0)
    for check in report.checks:
        out.write(f"{TAGS[check.status]} {check.name:<{width}}  {check.detail}\n")
        if check.fix and check.status in ("fail", "warn"):
            out.write(f"{'':6} {'':<{width}}  fix: {check.fix}\n")
    blocker = report.snapshot_blocker()
    warnings = sum(check.status == "warn" for check in report.checks)
    if blocker:
        out.write(f"\nverdict: snapshots cannot work here: {blocker}\n")
    elif warnings:
        out.write(f"\nverdict: snapshots can work here ({warnings} warning(s) above)\n")
    else:
        out.write("\nverdict: snapshots can work here\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pytest-criu", description="Tools for the pytest-criu plugin."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    doctor = commands.add_parser(
        "doctor",
        help="check whether this host can checkpoint and restore containers",
        description="Check the engine (Docker or Podman), CRIU, the kernel and privileges; "
        "exit 0 when snapshots can work, 1 when they cannot.",
    )
    doctor.add_argument(
        "--criu-binary",
        default="criu",
        metavar="PATH",
        help="the criu binary to check: a path or a name on PATH (default: criu)",
    )
    doctor.add_argument(
        "--engine",
        choices=ENGINE_CHOICES,
        default="auto",
        help="the container engine to check (default: auto, whichever answers at the URL)",
    )
    doctor.add_argument(
        "--engine-url",
        "--docker-url",
        dest="engine_url",
        default=None,
        metavar="URL",
        help="the engine's socket (default: DOCKER_HOST or Docker's local socket; Podman's "
        "rootful socket when only that exists or with --engine=podman)",
    )
    doctor.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="limit for each subprocess and API call (default: 10)",
    )
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    setup = commands.add_parser(
        "setup",
        help="install and configure CRIU and the engine on this Debian/Ubuntu host (as root)",
        description="Install what is missing (packages, CRIU >= 4.2 in a private prefix), "
        "configure runc.conf and the engine, start or restart its daemon when needed, then "
        "prove it with a checkpoint/restore round trip. Idempotent: on a ready host it only "
        "verifies. Run as root: sudo pytest-criu setup",
    )
    from .setup.command import add_arguments

    add_arguments(setup)
    snapshot_commands.add_commands(commands)
    return parser
