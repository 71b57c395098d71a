"""The configuration files pytest-criu needs, merged into what is there (pure text in, text out).

Each ``merge_*`` function returns the new content, or None when the file is already right;
:func:`apply` writes it through the :class:`Plan`.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .plan import Plan
from .system import SetupError, write_atomically

DAEMON_JSON = Path("/etc/docker/daemon.json")
RUNC_CONF = Path("/etc/criu/runc.conf")
CONTAINERS_CONF = Path("/etc/containers/containers.conf")
EXIT_DELAY_DROPIN = Path("/etc/containers/containers.conf.d/pytest-criu.conf")

RUNC_OPTIONS: Mapping[str, str] = {
    "tcp-established": (
        "# pytest-criu: checkpoint/restore TCP connections that are open at checkpoint time\n"
        "# (a test client connected to the service while it was prepared); without it CRIU\n"
        '# refuses with "Connected TCP socket, consider using --tcp-established option". runc\n'
        "# reads this file for every checkpoint and restore, and the Docker API has no\n"
        "# per-checkpoint CRIU options.\n"
    ),
    "file-locks": (
        "# pytest-criu: dump and restore file locks (flock/fcntl); MariaDB holds some, and\n"
        '# without it CRIU refuses with "Some file locks are hold by dumping tasks".\n'
    ),
}

NETWORK_LOCK = "network-lock"
NFTABLES_LOCK = (
    "# pytest-criu: lock a container's network during checkpoint and restore with nftables,\n"
    "# inside CRIU, instead of four iptables-restore/ip6tables-restore runs (the same lock,\n"
    "# about 50 ms less per restore). Written only where `criu check --feature\n"
    "# network_lock_nftables` passes; a checkpoint is restored with the method it was made with.\n"
    "network-lock nftables\n"
)

BLOCK_BEGIN = "# >>> pytest-criu: managed by pytest-criu setup; edits inside are overwritten >>>"
#: The marker scripts/setup-podman wrote; a block under it is ours too and is kept as it is.
LEGACY_BEGIN = (
    "# >>> pytest-criu: managed by scripts/setup-podman; edits inside are overwritten >>>"
)
BLOCK_END = "# <<< pytest-criu <<<"
EXIT_DELAY_TEXT = (
    "# Managed by pytest-criu setup: exec sessions' conmon processes end\n"
    "# 5 s after the command instead of 300 s.\n[engine]\nexit_command_delay = 5\n"
)
_TABLE = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")


def merge_daemon_json(text: str, path: Path = DAEMON_JSON) -> str | None:
    """``"experimental": true`` added to Docker's daemon.json (other keys kept)."""
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError as error:
        raise SetupError(f"{path} is not valid JSON ({error}); fix it, then rerun") from None
    if not isinstance(data, dict):
        raise SetupError(f"{path} must hold a JSON object, not {type(data).__name__}")
    if data.get("experimental") is True:
        return None
    data["experimental"] = True
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def merge_runc_conf(text: str, *, nftables_lock: bool = False) -> str | None:
    """runc.conf with ``tcp-established`` and ``file-locks`` appended when missing, and with
    ``nftables_lock`` ``network-lock nftables`` unless a network lock is chosen already."""
    added = ""
    for option, comment in RUNC_OPTIONS.items():
        if not re.search(rf"^\s*(--)?{re.escape(option)}\s*$", text, re.MULTILINE):
            added += comment + option + "\n"
    if nftables_lock and not re.search(rf"^\s*(--)?{NETWORK_LOCK}\b", text, re.MULTILINE):
        added += NFTABLES_LOCK
    if not added:
        return None
    return text + ("\n" if text and not text.endswith("\n") else "") + added


def ulimit_block(nofile: int, nproc: int, begin: str = BLOCK_BEGIN) -> str:
    return (
        f"{begin}\n"
        "# Podman's defaults (nofile=1048576, nproc=4194304) exceed this host's hard limits, and\n"
        "# containers then fail to start.\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        f"{BLOCK_END}\n"
    )


def merge_containers_conf(
    text: str, nofile: int, nproc: int, hard: Mapping[str, int | None], path: Path
) -> str | None:
    """containers.conf with our ``default_ulimits`` block in its ``[containers]`` table.

    ``hard`` holds the host's hard limits (None: unlimited). A ``default_ulimits`` set by hand
    is kept when nofile and nproc fit them; else this raises, naming the line to change.
    """
    lines = text.splitlines(keepends=True)
    rest: list[str] = []
    at: int | None = None
    begin = BLOCK_BEGIN
    inside = False
    for line in lines:
        stripped = line.rstrip("\r\n")
        if stripped in (BLOCK_BEGIN, LEGACY_BEGIN):
            if at is not None:
                raise SetupError(f"{path}: two pytest-criu blocks; remove one, then rerun")
            at, inside, begin = len(rest), True, stripped
        elif inside:
            inside = stripped != BLOCK_END
        else:
            rest.append(line)
    if inside:
        raise SetupError(f"{path}: '{begin}' has no '{BLOCK_END}' line; fix the file, then rerun")
    if rest and not rest[-1].endswith("\n"):
        rest[-1] += "\n"
    start, end = _containers_table(rest)
    by_hand = _by_hand_ulimits("".join(rest), path)
    if by_hand is not None:
        _check_fits(by_hand, hard, path)
        new = "".join(rest)
    else:
        block = ulimit_block(nofile, nproc, begin)
        if start is not None:
            pos = at if at is not None and start < at <= end else start + 1
            new = "".join(rest[:pos]) + block + "".join(rest[pos:])
        else:
            sep = "\n" if rest and rest[-1].strip() else ""
            new = "".join(rest) + sep + "[containers]\n" + block
        _parse(new, path)
    return None if new == text else new


def _containers_table(lines: list[str]) -> tuple[int | None, int]:
    start: int | None = None
    end = len(lines)
    for index, line in enumerate(lines):
        match = _TABLE.match(line)
        if not match:
            continue
        if start is not None and end == len(lines) and index > start:
            end = index
        if match.group(1) in ("containers", '"containers"'):
            start, end = index, len(lines)
    return start, end


def _parse(text: str, path: Path) -> dict[str, Any]:
    try:
        tomllib = importlib.import_module("tomllib")
    except ImportError:  # Python 3.10: the same parser, as tomli
        tomllib = importlib.import_module("tomli")
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SetupError(f"{path} is not valid TOML ({error}); fix the file, then rerun") from None
    return data


def _by_hand_ulimits(text: str, path: Path) -> list[str] | None:
    """The ``default_ulimits`` of ``[containers]`` outside our block (None: not set)."""
    table = _parse(text, path).get("containers")
    value = table.get("default_ulimits") if isinstance(table, dict) else None
    if value is None:
        return None
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _check_fits(entries: list[str], hard: Mapping[str, int | None], path: Path) -> None:
    seen: set[str] = set()
    fits = True
    for entry in entries:
        match = re.fullmatch(r"\s*(\w+)\s*=\s*(-?\d+)(?::(-?\d+))?\s*", entry)
        if not match:
            fits = False
            continue
        name, soft, high = (
            match.group(1),
            int(match.group(2)),
            int(match.group(3) or match.group(2)),
        )
        seen.add(name)
        limit = hard.get(name)
        if limit is not None and not 0 <= soft <= high <= limit:
            fits = False
    if not fits or not {"nofile", "nproc"} <= seen:
        limits = ", ".join(f"{k} {'unlimited' if v is None else v}" for k, v in hard.items())
        raise SetupError(
            f"{path} sets default_ulimits = {entries} in [containers] (not pytest-criu's block): "
            f"it must set nofile and nproc at most this host's hard limits ({limits}); change "
            "or remove it, then rerun"
        )


def merge_exit_delay(text: str | None) -> str | None:
    """The drop-in setting ``[engine] exit_command_delay = 5``; comments are not compared."""

    def meaning(content: str) -> list[str]:
        return [ln.strip() for ln in content.splitlines() if ln.strip() and ln.strip()[0] != "#"]

    if text is not None and meaning(text) == meaning(EXIT_DELAY_TEXT):
        return None
    return EXIT_DELAY_TEXT


def read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def apply(plan: Plan, path: Path, new: str | None, what: str) -> bool:
    """Write ``new`` into ``path`` (when not None and the plan allows); True when it differs."""
    if new is None:
        return False
    if plan.change(f"{'write' if path.exists() else 'create'} {path}: {what}"):
        write_atomically(path, new)
    return True
