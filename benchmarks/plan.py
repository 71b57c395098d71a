"""How much a benchmark run measures: the quick and full plans, and the command's options."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .workloads import WORKLOADS

ENGINES = ("docker", "podman")


@dataclass(frozen=True)
class Plan:
    """How much to run."""

    mode: str
    workloads: tuple[str, ...]
    rounds: int
    tests: int
    """Tests per plugin batch; the first never waits, so each batch yields tests - 1 resets."""
    baseline_tests: int
    fewer_tests: dict[str, int]
    """Tests per batch for workloads whose resets take seconds (overrides ``tests``)."""
    ahead_workloads: tuple[str, ...]
    ahead_rounds: int
    ahead_tests: int
    ahead_sleep: dict[str, float]
    flat_tests: int
    flat_every: int
    short_tests: int = 50
    """Tests in each run of the short-tests part (pristine per test vs one shared container)."""
    short_rounds: int = 2
    short_workload: str = "redis-10k"
    engines: tuple[str, ...] = ("docker",)
    """The container engines every part runs on, side by side (``--engines``)."""


QUICK = Plan(
    mode="quick",
    workloads=("tiny", "pyservice", "mariadb"),
    rounds=2,
    tests=4,
    baseline_tests=3,
    fewer_tests={},
    ahead_workloads=("tiny",),
    ahead_rounds=2,
    ahead_tests=6,
    ahead_sleep={"tiny": 1.5},
    flat_tests=40,
    flat_every=5,
)
QUICK_SEVERAL_ENGINES: dict[str, Any] = {"ahead_rounds": 1, "flat_tests": 20}
"""What ``--quick`` trims when it runs several engines, to stay under 10 minutes on 2 cores."""
FULL = Plan(
    mode="full",
    workloads=("tiny", "redis-10k", "redis-100k", "redis-1m", "mariadb", "pyservice"),
    rounds=3,
    tests=8,
    baseline_tests=4,
    fewer_tests={"redis-1m": 5, "mariadb": 6},
    ahead_workloads=("tiny", "pyservice"),
    ahead_rounds=3,
    ahead_tests=10,
    ahead_sleep={"tiny": 1.5, "pyservice": 2.5},
    flat_tests=500,
    flat_every=25,
    short_tests=100,
    short_rounds=3,
)


def parse_arguments(argv: Sequence[str] | None) -> tuple[Plan, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Compare pytest-criu's reset strategies on the same workloads, "
        "interleaved, on this machine (run as root on the engines' host).",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few minutes")
    parser.add_argument(
        "--engines",
        default="docker",
        help=f"comma-separated container engines to run everything on, side by side: "
        f"{', '.join(ENGINES)} (default: docker); an engine whose socket is missing is skipped "
        "with the reason",
    )
    parser.add_argument(
        "--workloads",
        help=f"comma-separated subset of: {', '.join(WORKLOADS)} (default: the mode's)",
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds per workload")
    parser.add_argument("--tests", type=int, help="tests per plugin batch (>= 2)")
    parser.add_argument("--baseline-tests", type=int, help="tests per recreate batch (>= 2)")
    parser.add_argument("--flat-tests", type=int, help="tests in the endurance run")
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated parts to leave out: workloads, ahead, flat, short",
    )
    parser.add_argument(
        "--out", type=Path, help="results directory (default: a new one under benchmarks/results/)"
    )
    parser.add_argument("--no-chart", action="store_true", help="do not draw results.png")
    parser.add_argument(
        "--plugin-ref",
        metavar="REF",
        help="benchmark pytest_criu as committed at REF (git archive; the repository is not "
        "changed) instead of the working tree",
    )
    arguments = parser.parse_args(argv)
    plan = QUICK if arguments.quick else FULL
    changes: dict[str, Any] = {}
    if arguments.workloads:
        names = tuple(n.strip() for n in arguments.workloads.split(",") if n.strip())
        unknown = [n for n in names if n not in WORKLOADS]
        if unknown:
            parser.error(f"unknown workloads: {', '.join(unknown)}; known: {', '.join(WORKLOADS)}")
        changes["workloads"] = names
    engines = tuple(dict.fromkeys(n.strip() for n in arguments.engines.split(",") if n.strip()))
    unknown = [n for n in engines if n not in ENGINES]
    if unknown or not engines:
        parser.error(
            f"--engines: unknown {', '.join(unknown) or '(none given)'}; known: docker, podman"
        )
    changes["engines"] = engines
    if len(engines) > 1 and plan.mode == "quick":
        changes.update(QUICK_SEVERAL_ENGINES)
    for option in ("rounds", "tests", "baseline_tests", "flat_tests"):
        value = getattr(arguments, option)
        if value is not None:
            if value < (1 if option == "rounds" else 2):
                parser.error(f"--{option.replace('_', '-')} is too small: {value}")
            changes[option] = value
    return Plan(**{**asdict(plan), **changes}), arguments
