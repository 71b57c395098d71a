"""What every part of the report shares: the strategies' names, constants, cell formats."""

from __future__ import annotations

from collections.abc import Sequence

from ..records import Series
from ..stats import median, ratio

LABELS = {
    "fresh": "(a) plugin, fresh restore",
    "fresh-own": "(a-own) (a) with --criu-network-holder=off: a namespace per restore",
    "fresh-stable": "(a-stable) (a) with --criu-network-holder=stable: one holder, same address",
    "inplace": "(b) plugin, in-place restore",
    "recreate": "(c) baseline: new container + ready + prepare",
    "engine": "(d) engine floor: start?checkpoint= only",
    "engine-rm": "(d') (d) while the previous container is removed",
    "criu": "(e) physical floor: criu restore, plain process",
}
SHORT = {
    "fresh": "a",
    "fresh-own": "a-own",
    "fresh-stable": "a-stable",
    "inplace": "b",
    "recreate": "c",
    "engine": "d",
    "engine-rm": "d'",
    "criu": "e",
}
FRESH_PHASES = (
    "staged",
    "holder",
    "create",
    "place checkpoint",
    "engine restore",
    "inspect",
    "other (plugin)",
)
INPLACE_PHASES = ("stop", "engine restore", "inspect", "other (plugin)")
OVERHEAD_TARGET = 0.10
SPEEDUP_TARGET = 5.0
AHEAD_TARGET = 0.050
TARGET_WORKLOADS = ("pyservice", "mariadb")
ENGINE_TITLES = {"docker": "Docker", "podman": "Podman"}
#: What the engine floor (d) times, per engine.
FLOOR_CALLS = {"docker": "start?checkpoint=", "podman": "libpod import/restore"}
#: The strategies whose medians the "Podman vs Docker" table compares ((e) uses no engine).
ENGINE_COMPARED = ("fresh", "inplace", "recreate", "engine", "engine-rm")


def label(strategy: str, engine: str = "docker") -> str:
    """A strategy's name in the tables; the engine floor names its engine's call."""
    if strategy == "engine":
        return f"(d) engine floor: {FLOOR_CALLS.get(engine, 'restore call')} only"
    return LABELS[strategy]


def short_name(strategy: str) -> str:
    """A strategy's letter: ``a``, ``b``, ... (a strategy of an older harness: its name)."""
    return SHORT.get(strategy, strategy)


def title(engine: str) -> str:
    return ENGINE_TITLES.get(engine, engine)


def mb(value: int | None) -> str:
    return "-" if not value else f"{value / 1e6:.1f}"


def times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.0f}%"


def verdict(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "**missed**")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def round_ratios(top: Series, bottom: Series) -> list[float]:
    """Per-round ratio of medians: each round's two batches ran minutes apart at most."""
    ratios = []
    for upper, lower in zip(top.rounds, bottom.rounds, strict=False):
        value = ratio(median(upper), median(lower))
        if value is not None:
            ratios.append(value)
    return ratios
