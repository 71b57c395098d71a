"""``pytest-criu key``, ``export`` and ``import``: snapshots for CI shards (see README, CI)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from .engine.paths import default_cache_directory, private_directory
from .engine.spec import ENGINE_CHOICES

COMMANDS = ("key", "export", "import")
KEY_TIMEOUT = 600.0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the three commands to ``pytest-criu``'s parser."""
    key = commands.add_parser(
        "key",
        help="print the cache key of a suite's warm containers (collects, runs nothing)",
        description="Run pytest's collection with the given arguments and print one key "
        "covering every collected warm container (image, declaration, prepare's source, "
        "CRIU, kernel, engine): key a CI cache on it. No prepare runs and no container starts; "
        "the engine is asked for the base images' ids.",
    )
    key.add_argument("--json", action="store_true", help="print every container's key and parts")
    key.add_argument("pytest_args", nargs=argparse.REMAINDER, help="arguments for pytest")
    export = commands.add_parser(
        "export",
        help="export cached snapshots to a directory or a .tar/.tar.gz file",
        description="Write the snapshot cache's entries (all, or those of --key) with their "
        "images (without the base image's layers), CRIU's cpuinfo and checksums of every "
        "file. Snapshots hold process memory: keep exports private (files 0600).",
    )
    export.add_argument("target", type=Path, help="a new directory, or a file ending .tar/.tgz")
    export.add_argument("--key", action="append", default=[], help="an entry's key (repeatable)")
    import_ = commands.add_parser(
        "import",
        help="import exported snapshots into this host's cache",
        description="Check each exported snapshot (engine, CRIU and kernel, CPU features with "
        "`criu cpuinfo check`, the checksum of every file, the base image), load its image and "
        "file it under the key the suite computes here; exit 1 if any was refused.",
    )
    import_.add_argument("source", type=Path, help="an export's directory or archive")
    for command in (export, import_):
        command.add_argument(
            "--cache-dir",
            type=Path,
            default=None,
            help="the snapshot cache (default: $XDG_CACHE_HOME/pytest-criu or "
            "~/.cache/pytest-criu), as --criu-cache-dir",
        )
    for command in (export, import_):
        command.add_argument(
            "--engine",
            choices=ENGINE_CHOICES,
            default="auto",
            help="the engine whose snapshots these are (default: auto, as --criu-engine)",
        )
        command.add_argument(
            "--engine-url",
            default=None,
            metavar="URL",
            help="the engine's socket (default: as --criu-engine-url)",
        )
        command.add_argument(
            "--criu-binary",
            default="criu",
            metavar="PATH",
            help="the criu that reports the version and checks the CPU (default: criu on PATH)",
        )
        command.add_argument(
            "--timeout",
            type=float,
            default=600.0,
            metavar="SECONDS",
            help="limit for each engine call, e.g. loading an image (default: 600)",
        )


def run(args: argparse.Namespace) -> int:
    """Run one of :data:`COMMANDS`; returns the exit status."""
    from .engine.errors import CriuError

    try:
        if args.command == "key":
            return _key(args)
        return _transfer(args)
    except CriuError as error:
        sys.stderr.write(f"pytest-criu {args.command}: {error}\n")
        return 2


def _key(args: argparse.Namespace) -> int:
    pytest_args = [a for a in args.pytest_args if a != "--"]
    with tempfile.TemporaryDirectory(prefix="pytest-criu-key-") as scratch:
        keys = Path(scratch, "keys.json")
        command = [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--criu-keys-to={keys}",
            *pytest_args,
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=KEY_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            sys.stderr.write(f"pytest-criu key: the collection took over {KEY_TIMEOUT:g}s\n")
            return 2
        if done.returncode != 0 or not keys.exists():
            sys.stderr.write(done.stdout + done.stderr)
            sys.stderr.write(f"pytest-criu key: the collection failed (exit {done.returncode})\n")
            return 2
        document = json.loads(keys.read_text())
    if not document["containers"]:
        sys.stderr.write("pytest-criu key: the collected tests use no warm container\n")
        return 1
    if args.json:
        json.dump(document, sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(f"{document['key']}\n")
    return 0


def _transfer(args: argparse.Namespace) -> int:
    from .engine.connect import connect
    from .engine.store import CacheStore
    from .engine.transfer import export, import_snapshots

    directory = args.cache_dir or default_cache_directory()
    if args.command == "export" and not directory.is_dir():
        sys.stderr.write(
            f"pytest-criu export: no snapshot cache at {directory}; run the suite with "
            "--criu-cache (and the same --criu-cache-dir) first\n"
        )
        return 2
    engine = connect(args.engine, args.engine_url, timeout=args.timeout)
    try:
        cache = CacheStore(
            engine, private_directory(directory), max_bytes=1 << 62, lock_timeout=args.timeout
        )
        if args.command == "export":
            exported = export(
                cache, engine, args.target, keys=args.key, criu_binary=args.criu_binary
            )
            for done in exported:
                left = done.layers_left_out
                note = f", {left} base-image layers left out" if left else ""
                sys.stdout.write(f"exported {done.key}: {done.bytes / 1e6:.1f} MB{note}\n")
            sys.stdout.write(f"wrote {args.target} (private: it holds process memory)\n")
            return 0
        results = import_snapshots(args.source, cache, engine, criu_binary=args.criu_binary)
    finally:
        engine.close()
    for result in results:
        if result.refused:
            sys.stdout.write(
                f"refused {result.key} (made with {result.made_on}): {result.refused}\n"
            )
        else:
            sys.stdout.write(
                f"imported {result.key} as {result.local_key} (made with {result.made_on})\n"
            )
    if not results:
        sys.stdout.write(f"{args.source} holds no snapshot\n")
    return 1 if any(result.refused for result in results) or not results else 0


__all__ = ["COMMANDS", "add_commands", "run"]
