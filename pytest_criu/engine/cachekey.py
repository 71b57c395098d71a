"""Cache keys: a digest of everything that could change what a snapshot holds."""

from __future__ import annotations

import hashlib
import inspect
import json
import types
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path


def source_digest(function: Callable[..., object] | None, root: Path) -> str:
    """Digest of the files under ``root`` that hold ``function`` and the code it reaches.

    Whole files are hashed, so module-level constants and data count too. Followed: the
    functions, classes and modules ``function`` names, and what those name in turn, as long
    as they are defined under ``root`` (the test tree); code elsewhere (installed packages,
    the standard library) is left out.
    """
    digest = hashlib.sha256()
    if function is None:
        digest.update(b"no prepare")
        return digest.hexdigest()
    root = root.resolve()
    files: set[Path] = set()
    seen: set[int] = set()
    pending: list[object] = [function]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        path = _file_under(item, root)
        if path is None:
            if item is function:
                # prepare defined outside the test tree: its own source is all we can see
                try:
                    digest.update(inspect.getsource(item).encode())
                except (OSError, TypeError):
                    digest.update(repr(item).encode())
            continue
        files.add(path)
        if not isinstance(item, types.ModuleType):
            pending.extend(_referenced(item))
    for path in sorted(files):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _referenced(item: object) -> Iterable[object]:
    target = inspect.unwrap(item) if callable(item) else item
    if inspect.isclass(target):
        for member in vars(target).values():
            if inspect.isfunction(member):
                yield from _referenced(member)
        return
    code = getattr(target, "__code__", None)
    namespace = getattr(target, "__globals__", {})
    if code is None:
        return
    for name in _names(code):
        if name in namespace:
            value = namespace[name]
            if inspect.isfunction(value) or inspect.isclass(value) or inspect.ismodule(value):
                yield value
    for cell in getattr(target, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if inspect.isfunction(value) or inspect.isclass(value):
            yield value


def _names(code: types.CodeType) -> Iterable[str]:
    yield from code.co_names
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _names(constant)


def _file_under(item: object, root: Path) -> Path | None:
    try:
        filename = inspect.getsourcefile(item)  # type: ignore[arg-type]
    except TypeError:
        return None
    if not filename:
        return None
    path = Path(filename).resolve()
    return path if root in path.parents else None


def inputs_digest(paths: Iterable[Path]) -> str:
    """Digest of the files (recursively) at ``paths``: names and contents."""
    digest = hashlib.sha256()
    for path in paths:
        if not path.exists():
            digest.update(f"missing:{path}".encode())
            continue
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(path.parent)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def cache_key(parts: Mapping[str, object]) -> str:
    """A short, filesystem-safe key for ``parts`` (JSON-serialisable values)."""
    payload = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


HOST_PARTS = ("criu", "kernel", "engine", "docker")
"""Key parts that describe the host, not the suite: an import puts in the target's own."""


def suite_key(parts_by_name: Mapping[str, Mapping[str, object]]) -> str:
    """One key for a suite's warm containers, for a CI cache step to key on.

    It covers every part of every container's cache key but the engine's version: a snapshot
    moves between versions of one engine (an import re-keys it for the version it lands on),
    while another CRIU, kernel or engine gives another key.
    """
    return cache_key(
        {
            name: {part: value for part, value in parts.items() if part != "docker"}
            for name, parts in parts_by_name.items()
        }
    )


def rekeyed(parts: Mapping[str, object], host: Mapping[str, object]) -> dict[str, object]:
    """``parts`` with the host parts replaced by ``host``'s (the key an import files under)."""
    return {**{k: v for k, v in parts.items() if k not in HOST_PARTS}, **host}
