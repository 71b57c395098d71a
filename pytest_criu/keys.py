"""``--criu-keys-to``: the cache keys a suite's warm containers would use, as JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .engine.cachekey import cache_key, suite_key
from .fixtures import Declaration

if TYPE_CHECKING:
    from .runtime import Runtime

KEYS_VERSION = 1


def write_keys(runtime: Runtime, declarations: dict[str, Declaration], path: str) -> None:
    """Write ``{"key": suite key, "containers": {name: {"key", "parts"}}}`` to ``path``.

    Resolves each base image (so the engine must answer) and reads prepare's source; runs
    no ``prepare`` and starts no container.
    """
    parts = runtime.keys(dict(sorted(declarations.items())))
    document = {
        "version": KEYS_VERSION,
        "key": suite_key(parts) if parts else "",
        "containers": {
            name: {"key": cache_key(container), "parts": container}
            for name, container in parts.items()
        },
    }
    target = Path(path)
    scratch = target.with_name(f".{target.name}.{os.getpid()}")
    scratch.write_text(json.dumps(document, indent=1, sort_keys=True, default=str) + "\n")
    scratch.replace(target)
