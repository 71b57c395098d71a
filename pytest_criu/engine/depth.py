"""How many containers restore-ahead restores at once on this machine.

Each restore keeps CPU cores busy (runc, CRIU, the engine) and each container restored ahead
holds the checkpoint's memory until a test takes it: the depth follows the cores, bounded by
memory.
"""

from __future__ import annotations

from dataclasses import dataclass

AUTO_AHEAD_DEPTH = 4
"""The most ``auto`` chooses: more restores at once than that compete for the engine."""
MAX_AHEAD_DEPTH = 8
"""The most a user may set."""
MEMORY_SHARE = 0.25
"""The share of the available memory containers restored ahead may hold."""


@dataclass(frozen=True)
class AheadDepth:
    """The depth chosen and why."""

    depth: int
    reason: str


def ahead_depth(
    setting: int | None, *, cores: int, available: int | None, checkpoint_bytes: int | None
) -> AheadDepth:
    """The depth for ``setting`` (``None``: auto) on a machine with ``cores`` cores and
    ``available`` bytes of available memory, for a checkpoint of ``checkpoint_bytes``."""
    if setting is not None:
        return AheadDepth(setting, "--criu-restore-ahead-depth")
    depth = max(1, min(cores, AUTO_AHEAD_DEPTH))
    reason = f"{cores} CPU core{'s' if cores != 1 else ''}"
    if available and checkpoint_bytes:
        fits = int(available * MEMORY_SHARE // checkpoint_bytes)
        if fits < depth:
            depth = max(1, fits)
            reason += f"; a quarter of the available memory holds {fits} checkpoint(s)"
    return AheadDepth(depth, reason)
