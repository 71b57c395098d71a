"""The benchmark's one command: ``sudo .venv/bin/python -m benchmarks [--quick]``.

For every workload it builds the snapshot once for the floors, then runs R rounds; in each
round every strategy runs one batch, in an order rotated from round to round (ABCDE, BCDEA,
...), so slow drifts of a noisy machine hit every strategy alike. Then the restore-ahead
comparison (interleaved the same way) and the endurance run (500 restores in full mode).
``--proposals`` adds prototypes of proposed plugin changes to both comparisons. Results go to
``benchmarks/results/<run id>-<mode>/`` (run id: UTC time + random suffix) as
``results.json``, ``results.md`` and ``results.png``; the Markdown is printed as well.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from pytest_criu.engine.docker import DockerEngine

from . import report
from .criu_floor import CriuFloor, become_subreaper
from .engine_floor import EngineFloor
from .plugin_runs import Batch, BatchResult, run_batch
from .source import FrozenPlugin
from .workloads import BENCH_LABEL, WORKLOADS

RESULTS = Path(__file__).resolve().parent / "results"
STRATEGIES = ("fresh", "inplace", "recreate", "engine", "engine-rm", "criu")
PLUGIN_STRATEGIES = ("fresh", "inplace", "recreate", "fresh-deferred")
PROPOSED = ("fresh-deferred",)
"""Prototypes of proposed plugin changes, run with ``--proposals``."""


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
    proposals: bool = False


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
)


@dataclass
class Series:
    """Every sample of one strategy on one workload."""

    samples: list[float] = field(default_factory=list)
    """Seconds a test waited for its reset (a, b, c) or the timed restore (d, e)."""
    rounds: list[list[float]] = field(default_factory=list)
    criu: list[float] = field(default_factory=list)
    """CRIU's own run time per restore, from its log."""
    phases: dict[str, list[float]] = field(default_factory=dict)
    """Per-reset seconds of each restore phase."""
    gaps: list[float] = field(default_factory=list)
    """Test end to next test start (a, b, c): what the user waits, pytest included."""
    prepare: list[float] = field(default_factory=list)
    checkpoint: list[float] = field(default_factory=list)
    checkpoint_bytes: list[int] = field(default_factory=list)
    batch_seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: str | None = None

    def add_phase(self, phase: str, value: float) -> None:
        self.phases.setdefault(phase, []).append(value)


@dataclass
class WorkloadResult:
    name: str
    description: str
    checkpoint_bytes: int | None = None
    physical_bytes: int | None = None
    prepare_seconds: float | None = None
    checkpoint_seconds: float | None = None
    series: dict[str, Series] = field(default_factory=dict)
    error: str | None = None


@dataclass
class AheadResult:
    """Visible resets with and without ``--criu-restore-ahead`` for one workload."""

    workload: str
    sleep: float
    series: dict[str, Series] = field(default_factory=dict)
    steady: dict[str, list[float]] = field(default_factory=dict)
    """Resets from the third test on (the second never has a restore ahead to take)."""
    tests: int = 0
    unique_containers: bool = True
    changed_under_test: int = 0
    probes_failed: int = 0
    restored_ahead: int = 0
    ahead_ready: int = 0
    ahead_pending: int = 0
    background_restores: list[float] = field(default_factory=list)
    """Seconds each restore made ahead took, in the background thread."""
    test_seconds: list[float] = field(default_factory=list)
    """Seconds each test's body ran (its probe and sleep)."""
    errors: list[str] = field(default_factory=list)


@dataclass
class FlatResult:
    tests: int
    resets: list[float] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    control_samples: list[dict[str, Any]] = field(default_factory=list)
    """The same sampling in a run of as many tests without a warm container."""
    leftover_containers: int | None = None
    error: str | None = None


@dataclass
class Results:
    meta: dict[str, Any]
    workloads: list[WorkloadResult] = field(default_factory=list)
    ahead: list[AheadResult] = field(default_factory=list)
    flat: FlatResult | None = None


def log(message: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)


def rotated(items: Sequence[str], by: int) -> list[str]:
    shift = by % len(items)
    return [*items[shift:], *items[:shift]]


# -- the measurements ---------------------------------------------------------------------


def absorb(series: Series, result: BatchResult) -> None:
    """Fold one pytest run into a strategy's series."""
    series.batch_seconds.append(result.wall)
    if result.error:
        series.errors.append(result.error)
    series.samples.extend(result.resets)
    series.rounds.append(list(result.resets))
    series.gaps.extend(result.gaps)
    data = result.instrument
    for controller in data.get("controllers", []):
        if controller.get("prepare_seconds") is not None:
            series.prepare.append(controller["prepare_seconds"])
        if controller.get("checkpoint_seconds") is not None:
            series.checkpoint.append(controller["checkpoint_seconds"])
        if controller.get("checkpoint_bytes"):
            series.checkpoint_bytes.append(controller["checkpoint_bytes"])
    series.criu.extend(
        entry["criu"] for entry in data.get("criu", []) if entry["restores"] > 1 and entry["criu"]
    )
    restores = [r for r in data.get("restores", []) if r.get("ok")]
    for reset in data.get("resets", []):
        if reset["seconds"] == 0.0:
            continue  # the first test: nothing restored
        inside = [
            r
            for r in restores
            if r["thread"] == "MainThread"
            and r["began"] >= reset["began"]
            and r["ended"] <= reset["ended"]
        ]
        if len(inside) != 1:
            series.add_phase("wait for restore-ahead", reset["seconds"])
            continue
        phases = inside[0]["phases"]
        for phase, value in phases.items():
            series.add_phase(phase, value)
        series.add_phase("other (plugin)", reset["seconds"] - sum(phases.values()))


def floor_batch(
    series: Series, floor: EngineFloor | CriuFloor, samples: int, *, concurrent: bool = False
) -> list[float]:
    """``samples`` timed restores of an engine or physical floor, added to ``series``.

    With ``concurrent`` (d'), every sample removes the previous one's container in the
    background; a first, unrecorded sample provides the container the first recorded one
    removes.
    """
    values: list[float] = []
    if isinstance(floor, EngineFloor) and concurrent:
        floor.sample(remove_previous_concurrently=True)
    for _ in range(samples):
        if isinstance(floor, EngineFloor):
            sample = floor.sample(remove_previous_concurrently=concurrent)
            values.append(sample.restore)
            series.add_phase("create", sample.create)
            series.add_phase("place checkpoint", sample.place)
            series.add_phase("engine restore", sample.restore)
            series.add_phase("inspect", sample.inspect)
            criu = sample.criu
        else:
            plain = floor.sample()
            values.append(plain.restore)
            criu = plain.criu
        if criu is not None:
            series.criu.append(criu)
    if isinstance(floor, EngineFloor):
        floor.flush()
    series.samples.extend(values)
    return values


def plugin_batch(series: Series, batch: Batch, run_id: str, where: str) -> None:
    """Run one pytest batch into ``series``; a failed batch is recorded, dropped and retried.

    The shared machine stalls now and then (a seed query that never gets its answer within
    60 s); the samples of a batch that failed anywhere are left out rather than kept as
    outliers, which would flatter the snapshot strategies when the baseline is the one hit.
    """
    for attempt in (1, 2):
        result = run_batch(batch, run_id)
        shown = ", ".join(f"{v:.2f}" for v in result.resets)
        if not result.error:
            absorb(series, result)
            log(f"{where}: [{shown}] ({result.wall:.0f}s, ok)")
            return
        series.errors.append(result.error)
        log(
            f"{where}: [{shown}] FAILED, samples dropped (attempt {attempt}): "
            f"{result.error.splitlines()[0]}"
        )
    series.rounds.append([])


def measure_workload(name: str, plan: Plan, run_id: str, engine: DockerEngine) -> WorkloadResult:
    """Every strategy on one workload, ``plan.rounds`` interleaved rounds."""
    workload = WORKLOADS[name]
    result = WorkloadResult(name=name, description=workload.description)
    everything = (*STRATEGIES, *PROPOSED) if plan.proposals else STRATEGIES
    strategies = [s for s in everything if s != "inplace" or workload.inplace_ok]
    result.series = {strategy: Series() for strategy in everything}
    if not workload.inplace_ok:
        result.series["inplace"].skipped = (
            "not applicable: state the tests change lives in the writable layer, "
            "which inplace does not reset"
        )
    tests_per_batch = min(plan.tests, plan.fewer_tests.get(name, plan.tests))
    floor = EngineFloor(engine, workload, run_id)
    physical: CriuFloor | None = None
    try:
        log(f"{name}: building the snapshot for the floors")
        try:
            built = floor.build()
        except Exception as error:
            log(f"{name}: building the snapshot failed ({error!s:.200}); retrying")
            floor.close()
            floor = EngineFloor(engine, workload, run_id)
            built = floor.build()
        result.checkpoint_bytes = built.bytes
        result.prepare_seconds = built.prepare_seconds
        result.checkpoint_seconds = built.checkpoint_seconds
        physical = CriuFloor(built.bytes)
        result.physical_bytes = physical.dump()
        log(
            f"{name}: checkpoint {built.bytes / 1e6:.1f} MB (prepared in "
            f"{built.prepare_seconds:.2f}s); plain process dumped: "
            f"{result.physical_bytes / 1e6:.1f} MB"
        )
        floors: dict[str, EngineFloor | CriuFloor] = {
            "engine": floor,
            "engine-rm": floor,
            "criu": physical,
        }
        for round_number in range(plan.rounds):
            for strategy in rotated(strategies, round_number):
                series = result.series[strategy]
                began = time.monotonic()
                where = f"{name} r{round_number + 1} {strategy}"
                if strategy in PLUGIN_STRATEGIES:
                    tests = plan.baseline_tests if strategy == "recreate" else tests_per_batch
                    plugin_batch(series, Batch(name, strategy, tests), run_id, where)
                    continue
                values = floor_batch(
                    series,
                    floors[strategy],
                    tests_per_batch - 1,
                    concurrent=strategy == "engine-rm",
                )
                series.rounds.append(values)
                series.batch_seconds.append(time.monotonic() - began)
                shown = ", ".join(f"{v:.2f}" for v in values)
                log(f"{where}: [{shown}]")
    except Exception as error:  # one workload failing must not lose the others
        result.error = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        log(f"{name}: FAILED: {result.error}")
    finally:
        if physical is not None:
            physical.close()
        floor.close()
    return result


def measure_ahead(name: str, plan: Plan, run_id: str) -> AheadResult:
    """Long tests (each longer than a restore) with and without restore-ahead, interleaved."""
    sleep = plan.ahead_sleep.get(name, 2.0)
    result = AheadResult(workload=name, sleep=sleep)
    modes = ("fresh", "ahead", "ahead-early") if plan.proposals else ("fresh", "ahead")
    result.series = {mode: Series() for mode in modes}
    result.steady = {mode: [] for mode in modes}
    for round_number in range(plan.ahead_rounds):
        for mode in rotated(modes, round_number):
            batch = run_batch(Batch(name, mode, plan.ahead_tests, kind="long", sleep=sleep), run_id)
            absorb(result.series[mode], batch)
            result.steady[mode].extend(batch.resets[1:])
            result.tests += len(batch.test_log)
            result.test_seconds.extend(e["ended"] - e["began"] for e in batch.test_log)
            containers = [entry["container"] for entry in batch.test_log]
            if len(set(containers)) != len(containers):
                result.unique_containers = False
            result.changed_under_test += sum(not entry["same"] for entry in batch.test_log)
            result.probes_failed += batch.outcomes.get("failed", 0)
            if batch.error:
                result.errors.append(batch.error)
            if mode.startswith("ahead"):
                made_ahead = [
                    r
                    for r in batch.instrument.get("restores", [])
                    if str(r["thread"]).startswith("criu-ahead") and r.get("ok")
                ]
                ahead_threads = {r["container"] for r in made_ahead}
                result.background_restores.extend(r["ended"] - r["began"] for r in made_ahead)
                result.restored_ahead += sum(c in ahead_threads for c in containers)
                for reset in batch.instrument.get("resets", []):
                    result.ahead_ready += bool(reset["ahead_done"])
                    result.ahead_pending += bool(reset["ahead_pending"] and not reset["ahead_done"])
            shown = ", ".join(f"{v:.3f}" for v in batch.resets)
            log(f"ahead {name} r{round_number + 1} {mode}: [{shown}]")
    return result


def measure_flat(plan: Plan, run_id: str, engine: DockerEngine) -> FlatResult:
    """One long run on the tiny image, sampling the pytest process from inside its tests.

    Only the samples are recorded in that process; a control run of as many tests without a
    warm container shows what pytest itself accumulates.
    """
    result = FlatResult(tests=plan.flat_tests)
    batch = run_batch(
        Batch("tiny", "fresh", plan.flat_tests, sample_every=plan.flat_every, light=True),
        run_id,
    )
    result.resets = batch.resets
    result.samples = batch.instrument.get("samples", [])
    result.error = batch.error
    result.leftover_containers = len(engine.containers(f"{BENCH_LABEL}={run_id}"))
    control = run_batch(
        Batch("tiny", "fresh", plan.flat_tests, kind="control", sample_every=plan.flat_every),
        run_id,
    )
    result.control_samples = control.instrument.get("samples", [])
    log(
        f"flat: {len(batch.resets)} resets in {batch.wall:.0f}s; "
        f"{len(result.samples)} samples; leftover containers {result.leftover_containers}"
    )
    return result


# -- the command --------------------------------------------------------------------------


def host_facts(engine: DockerEngine) -> dict[str, Any]:
    criu = subprocess.run(["criu", "--version"], capture_output=True, text=True, check=False)
    version = engine.version()
    return {
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "docker": version.get("Version"),
        "containerd": next(
            (c.get("Version") for c in version.get("Components", []) if c["Name"] == "containerd"),
            None,
        ),
        "criu": criu.stdout.split("\n", 1)[0].replace("Version: ", "").strip(),
        "load_before": os.getloadavg(),
    }


def remove_labelled(engine: DockerEngine, run_id: str) -> tuple[int, int]:
    """Remove every container and image carrying this run's benchmark label."""
    label = f"{BENCH_LABEL}={run_id}"
    containers = engine.containers(label)
    for container in containers:
        with contextlib.suppress(Exception):
            engine.remove(container["Id"])
    images = engine.images(label)
    for image in images:
        with contextlib.suppress(Exception):
            engine.remove_image(image["Id"])
    return len(containers), len(images)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def parse_arguments(argv: Sequence[str] | None) -> tuple[Plan, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Compare pytest-criu's reset strategies on the same workloads, "
        "interleaved, on this machine (run as root on the Docker host).",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few minutes")
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
        help="comma-separated parts to leave out: workloads, ahead, flat",
    )
    parser.add_argument(
        "--out", type=Path, help="results directory (default: a new one under benchmarks/results/)"
    )
    parser.add_argument("--no-chart", action="store_true", help="do not draw results.png")
    parser.add_argument(
        "--proposals",
        action="store_true",
        help="also run prototypes of proposed plugin changes (a*: remove the old container "
        "after the restore; restore-ahead started at set-up)",
    )
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
    if arguments.proposals:
        changes["proposals"] = True
    for option in ("rounds", "tests", "baseline_tests", "flat_tests"):
        value = getattr(arguments, option)
        if value is not None:
            if value < (1 if option == "rounds" else 2):
                parser.error(f"--{option.replace('_', '-')} is too small: {value}")
            changes[option] = value
    return Plan(**{**asdict(plan), **changes}), arguments


def main(argv: Sequence[str] | None = None, *, frozen: FrozenPlugin | None = None) -> int:
    """Run the benchmark; ``python -m benchmarks`` freezes the plugin's source first."""
    plan, arguments = parse_arguments(argv)
    if os.geteuid() != 0:
        print(
            "benchmarks: run as root on the Docker host (the plugin places checkpoint files "
            "into the daemon's data root): sudo .venv/bin/python -m benchmarks",
            file=sys.stderr,
        )
        return 2
    skip = {part.strip() for part in arguments.skip.split(",") if part.strip()}
    run_id = f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"
    out = arguments.out or RESULTS / f"{run_id}-{plan.mode}"
    become_subreaper()
    engine = DockerEngine()
    began = time.monotonic()
    started = datetime.datetime.now(datetime.timezone.utc)
    results = Results(
        meta={
            "run_id": run_id,
            "mode": plan.mode,
            "plan": asdict(plan),
            "command": " ".join(["python -m benchmarks", *(argv or sys.argv[1:])]),
            "started": started.isoformat(timespec="seconds"),
            "host": host_facts(engine),
            "plugin": asdict(frozen) if frozen else {"origin": "not frozen"},
        }
    )
    log(f"run {run_id}: {plan.mode} mode, workloads {', '.join(plan.workloads)}")
    try:
        with sigterm_as_interrupt():
            if "workloads" not in skip:
                for name in plan.workloads:
                    results.workloads.append(measure_workload(name, plan, run_id, engine))
            if "ahead" not in skip:
                for name in plan.ahead_workloads:
                    results.ahead.append(measure_ahead(name, plan, run_id))
            if "flat" not in skip:
                results.flat = measure_flat(plan, run_id, engine)
    except KeyboardInterrupt:
        log("interrupted: cleaning up and writing what was measured")
    finally:
        removed = remove_labelled(engine, run_id)
        results.meta["leftovers_removed"] = {"containers": removed[0], "images": removed[1]}
        results.meta["seconds"] = round(time.monotonic() - began, 1)
        results.meta["host"]["load_after"] = os.getloadavg()
        engine.close()
    out.mkdir(parents=True, exist_ok=True)
    data = json.loads(json.dumps(asdict(results)))
    (out / "results.json").write_text(json.dumps(data, indent=1))
    markdown = report.markdown(data)
    (out / "results.md").write_text(markdown)
    if not arguments.no_chart:
        try:
            report.chart(data, out / "results.png")
        except ImportError:
            log("matplotlib is missing: pip install -e '.[bench]' to get results.png")
    print(markdown)
    log(f"results in {out} ({results.meta['seconds']:.0f}s)")
    return 0
