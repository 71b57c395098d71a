"""The benchmark's one command: ``sudo .venv/bin/python -m benchmarks [--quick]``.

For every workload it builds the snapshot once for the floors (once per engine), then runs R
rounds; in each round every strategy runs one batch per engine, in an order rotated from
round to round (ABCDE, BCDEA, ...; with ``--engines docker,podman`` each strategy's two
batches run back to back, the engine that goes first alternating by round), so slow drifts
of a noisy machine hit every strategy and every engine alike. Then the restore-ahead
comparison (interleaved the same way), the endurance run (500 restores in full mode) and the
short-tests part (benchmarks/short.py: a suite of millisecond tests, pristine per test vs one
shared container), on every engine.
Results go to
``benchmarks/results/<run id>-<mode>/`` (run id: UTC time + random suffix) as
``results.json``, ``results.md`` and ``results.png``; the Markdown is printed as well.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
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
from typing import TYPE_CHECKING, Any

from pytest_criu.engine.docker import DockerEngine

from . import report
from .criu_floor import CriuFloor, become_subreaper
from .engine_floor import EngineFloor, make_floor
from .plugin_runs import ENGINE_FLAG, HOLDER_FLAG, Batch, BatchResult, plugin_flags, run_batch
from .short import ShortResult, measure_short
from .source import FrozenPlugin
from .workloads import BENCH_LABEL, WORKLOADS

if TYPE_CHECKING:  # not at run time: commits before the Podman backend lack the module
    from pytest_criu.engine.base import ContainerEngine

RESULTS = Path(__file__).resolve().parent / "results"
STRATEGIES = (
    "fresh",
    "fresh-own",
    "fresh-stable",
    "inplace",
    "recreate",
    "engine",
    "engine-rm",
    "criu",
)
PLUGIN_STRATEGIES = ("fresh", "fresh-own", "fresh-stable", "inplace", "recreate")
ENGINES = ("docker", "podman")
DEFAULT_SOCKETS = {
    "docker": "unix:///var/run/docker.sock",
    "podman": "unix:///run/podman/podman.sock",
}


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
    engine: str = "docker"
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
    engine: str = "docker"
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
    engine: str = "docker"
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
    flat: list[FlatResult] = field(default_factory=list)
    """One endurance run per engine (a single object, or null, in results before engines)."""
    short: list[ShortResult] = field(default_factory=list)
    """The short-tests part, one per engine."""


def log(message: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", file=sys.stderr, flush=True)


def rotated(items: Sequence[str], by: int) -> list[str]:
    if not items:
        return []
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
    for container in result.containers:
        if container.get("prepare_seconds") is not None:
            series.prepare.append(container["prepare_seconds"])
        if container.get("checkpoint_seconds") is not None:
            series.checkpoint.append(container["checkpoint_seconds"])
        if container.get("checkpoint_bytes"):
            series.checkpoint_bytes.append(container["checkpoint_bytes"])
    data = result.instrument
    series.criu.extend(entry["criu"] for entry in data.get("criu", []) if entry["criu"])
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
            if sample.create is not None:
                series.add_phase("create", sample.create)
            if sample.place is not None:
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


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def build_floor(name: str, engine_name: str, engine: ContainerEngine, run_id: str) -> EngineFloor:
    """The workload's snapshot on ``engine``, built for its floor (retried once)."""
    workload = WORKLOADS[name]
    log(f"{name} [{engine_name}]: building the snapshot for the floors")
    floor = make_floor(engine, workload, run_id)
    try:
        floor.build()
    except Exception as error:
        log(f"{name} [{engine_name}]: building the snapshot failed ({error!s:.200}); retrying")
        floor.close()
        floor = make_floor(engine, workload, run_id)
        try:
            floor.build()
        except BaseException:
            floor.close()
            raise
    return floor


def _workload_results(
    name: str, plan: Plan, engines: Sequence[str]
) -> tuple[list[str], dict[str, WorkloadResult]]:
    """The strategies that apply to workload ``name``, and an empty result per engine."""
    workload = WORKLOADS[name]
    everything = STRATEGIES
    strategies = [s for s in everything if s != "inplace" or workload.inplace_ok]
    results: dict[str, WorkloadResult] = {}
    for engine_name in engines:
        result = WorkloadResult(name=name, description=workload.description, engine=engine_name)
        result.series = {strategy: Series() for strategy in everything}
        if not workload.inplace_ok:
            result.series["inplace"].skipped = (
                "not applicable: state the tests change lives in the writable layer, "
                "which inplace does not reset"
            )
        for variant in ("fresh-own", "fresh-stable"):
            if engine_name != "docker":
                result.series[variant].skipped = "not applicable: network holders are Docker's"
            elif HOLDER_FLAG not in plugin_flags():
                result.series[variant].skipped = "the benchmarked plugin has no network holders"
        results[engine_name] = result
    return strategies, results


def build_floors(
    name: str,
    run_id: str,
    engines: dict[str, ContainerEngine],
    results: dict[str, WorkloadResult],
    floors: dict[str, EngineFloor],
) -> None:
    """Build the workload's snapshot on every engine into ``floors``; record its facts."""
    for engine_name, engine in engines.items():
        result = results[engine_name]
        try:
            floor = build_floor(name, engine_name, engine, run_id)
        except Exception as error:  # one engine failing must not lose the other
            result.error = _describe(error)
            log(f"{name} [{engine_name}]: FAILED: {result.error}")
            continue
        floors[engine_name] = floor
        built = floor.built
        assert built is not None
        result.checkpoint_bytes = built.bytes
        result.prepare_seconds = built.prepare_seconds
        result.checkpoint_seconds = built.checkpoint_seconds
        log(
            f"{name} [{engine_name}]: checkpoint {built.bytes / 1e6:.1f} MB (prepared in "
            f"{built.prepare_seconds:.2f}s)"
        )


def measure_workload(
    name: str, plan: Plan, run_id: str, engines: dict[str, ContainerEngine]
) -> list[WorkloadResult]:
    """Every strategy on one workload, on every engine, ``plan.rounds`` interleaved rounds.

    In each round the strategies run in a rotated order and each strategy's batches on the
    engines run back to back, the engine order rotated as well, so that a slow minute hits
    both engines' batches of a strategy alike. The physical floor (e) involves no engine: it
    is measured once per workload, with the first engine's results.
    """
    strategies, results = _workload_results(name, plan, list(engines))
    tests_per_batch = min(plan.tests, plan.fewer_tests.get(name, plan.tests))
    floors: dict[str, EngineFloor] = {}
    physical: CriuFloor | None = None
    try:
        build_floors(name, run_id, engines, results, floors)
        physical_engine = next(iter(floors), None)
        for engine_name, result in results.items():
            if engine_name != physical_engine:
                result.series[
                    "criu"
                ].skipped = f"no engine involved: measured once per workload, see {physical_engine}"
        if physical_engine is not None:
            first = results[physical_engine]
            physical = CriuFloor(first.checkpoint_bytes or 0)
            first.physical_bytes = physical.dump()
            log(f"{name}: plain process dumped: {first.physical_bytes / 1e6:.1f} MB")
        active = list(floors)
        for round_number in range(plan.rounds):
            for strategy in rotated(strategies, round_number):
                for engine_name in rotated(list(engines), round_number):
                    if engine_name not in active or (
                        strategy == "criu" and engine_name != physical_engine
                    ):
                        continue
                    result = results[engine_name]
                    if result.series[strategy].skipped:
                        continue
                    where = f"{name} [{engine_name}] r{round_number + 1} {strategy}"
                    if strategy in PLUGIN_STRATEGIES:
                        tests = plan.baseline_tests if strategy == "recreate" else tests_per_batch
                        batch = Batch(name, strategy, tests, engine=engine_name)
                        plugin_batch(result.series[strategy], batch, run_id, where)
                        continue
                    floor = physical if strategy == "criu" else floors[engine_name]
                    if floor is not None and not timed_floor_batch(
                        result, strategy, floor, tests_per_batch - 1, where
                    ):
                        active.remove(engine_name)  # this engine stops; the other goes on
    except Exception as error:  # one workload failing must not lose the others
        for result in results.values():
            result.error = result.error or _describe(error)
        log(f"{name}: FAILED: {_describe(error)}")
    finally:
        if physical is not None:
            physical.close()
        for floor_to_close in floors.values():
            floor_to_close.close()
    return list(results.values())


def timed_floor_batch(
    result: WorkloadResult,
    strategy: str,
    floor: EngineFloor | CriuFloor,
    samples: int,
    where: str,
) -> bool:
    """One batch of a floor into ``result``; ``False`` (error recorded) when it failed."""
    series = result.series[strategy]
    began = time.monotonic()
    try:
        values = floor_batch(series, floor, samples, concurrent=strategy == "engine-rm")
    except Exception as error:
        result.error = _describe(error)
        log(f"{where}: FAILED: {result.error}")
        return False
    series.rounds.append(values)
    series.batch_seconds.append(time.monotonic() - began)
    shown = ", ".join(f"{v:.2f}" for v in values)
    log(f"{where}: [{shown}]")
    return True


def _absorb_ahead(result: AheadResult, mode: str, batch: BatchResult) -> None:
    """Fold one restore-ahead comparison run into its result."""
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


def measure_ahead(name: str, plan: Plan, run_id: str, engines: Sequence[str]) -> list[AheadResult]:
    """Long tests (each longer than a restore) with and without restore-ahead, interleaved."""
    sleep = plan.ahead_sleep.get(name, 2.0)
    modes = ("fresh", "ahead")
    results: dict[str, AheadResult] = {}
    for engine_name in engines:
        result = AheadResult(workload=name, sleep=sleep, engine=engine_name)
        result.series = {mode: Series() for mode in modes}
        result.steady = {mode: [] for mode in modes}
        results[engine_name] = result
    for round_number in range(plan.ahead_rounds):
        for mode in rotated(modes, round_number):
            for engine_name in rotated(engines, round_number):
                batch = run_batch(
                    Batch(
                        name, mode, plan.ahead_tests, kind="long", sleep=sleep, engine=engine_name
                    ),
                    run_id,
                )
                _absorb_ahead(results[engine_name], mode, batch)
                shown = ", ".join(f"{v:.3f}" for v in batch.resets)
                log(f"ahead {name} [{engine_name}] r{round_number + 1} {mode}: [{shown}]")
    return list(results.values())


def measure_flat(plan: Plan, run_id: str, engine_name: str, engine: ContainerEngine) -> FlatResult:
    """One long run on the tiny image, sampling the pytest process from inside its tests.

    Only the samples are recorded in that process; a control run of as many tests without a
    warm container shows what pytest itself accumulates.
    """
    result = FlatResult(tests=plan.flat_tests, engine=engine_name)
    batch = run_batch(
        Batch(
            "tiny",
            "fresh",
            plan.flat_tests,
            sample_every=plan.flat_every,
            light=True,
            engine=engine_name,
        ),
        run_id,
    )
    result.resets = batch.resets
    result.samples = batch.instrument.get("samples", [])
    result.error = batch.error
    result.leftover_containers = len(engine.containers(f"{BENCH_LABEL}={run_id}"))
    control = run_batch(
        Batch(
            "tiny",
            "fresh",
            plan.flat_tests,
            kind="control",
            sample_every=plan.flat_every,
            engine=engine_name,
        ),
        run_id,
    )
    result.control_samples = control.instrument.get("samples", [])
    log(
        f"flat [{engine_name}]: {len(batch.resets)} resets in {batch.wall:.0f}s; "
        f"{len(result.samples)} samples; leftover containers {result.leftover_containers}"
    )
    return result


# -- the command --------------------------------------------------------------------------


class EngineUnavailableError(Exception):
    """Why an engine named in ``--engines`` is left out of this run."""


def open_engine(name: str) -> ContainerEngine:
    """A connection to ``name``, at the socket the plugin's pytest runs will use.

    The plugin (as frozen) must have ``--criu-engine`` for anything but Docker: before the
    Podman backend it knows only Docker, and its runs are given no engine option at all.
    """
    modern = (
        ENGINE_FLAG in plugin_flags()
        and importlib.util.find_spec("pytest_criu.engine.connect") is not None
    )
    if not modern:
        if name != "docker":
            raise EngineUnavailableError(
                f"the plugin benchmarked has no {ENGINE_FLAG} option (no Podman backend); "
                "benchmark the working tree or a --plugin-ref that has it"
            )
        url = os.environ.get("DOCKER_HOST") or DEFAULT_SOCKETS["docker"]
    else:
        from pytest_criu.engine.connect import engine_url

        url = engine_url("podman" if name == "podman" else "docker", None)
    if url.startswith("unix://") and not Path(url.removeprefix("unix://")).exists():
        raise EngineUnavailableError(f"no socket at {url} (is the {name} service running?)")
    try:
        if not modern:
            return DockerEngine()
        from pytest_criu.engine.connect import connect

        return connect("podman" if name == "podman" else "docker", None, timeout=120.0)
    except Exception as error:
        raise EngineUnavailableError(f"cannot connect at {url}: {error}") from None


def open_engines(names: Sequence[str]) -> tuple[dict[str, ContainerEngine], dict[str, str]]:
    """Connections to the engines asked for, and why the others were skipped."""
    engines: dict[str, ContainerEngine] = {}
    skipped: dict[str, str] = {}
    for name in names:
        try:
            engines[name] = open_engine(name)
        except EngineUnavailableError as error:
            skipped[name] = str(error)
            log(f"engine {name} skipped: {error}")
    return engines, skipped


def host_facts(engines: dict[str, ContainerEngine]) -> dict[str, Any]:
    criu = subprocess.run(["criu", "--version"], capture_output=True, text=True, check=False)
    facts: dict[str, Any] = {
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "docker": None,
        "containerd": None,
        "podman": None,
        "criu": criu.stdout.split("\n", 1)[0].replace("Version: ", "").strip(),
        "load_before": os.getloadavg(),
    }
    for name, engine in engines.items():
        version = engine.version()
        facts[name] = version.get("Version")
        if name == "docker":
            facts["containerd"] = next(
                (
                    c.get("Version")
                    for c in version.get("Components", [])
                    if c["Name"] == "containerd"
                ),
                None,
            )
    return facts


def remove_labelled(engine: ContainerEngine, run_id: str) -> tuple[int, int]:
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


def main(argv: Sequence[str] | None = None, *, frozen: FrozenPlugin | None = None) -> int:
    """Run the benchmark; ``python -m benchmarks`` freezes the plugin's source first."""
    plan, arguments = parse_arguments(argv)
    if os.geteuid() != 0:
        print(
            "benchmarks: run as root on the engines' host (the plugin places checkpoint files "
            "into the daemon's data root): sudo .venv/bin/python -m benchmarks",
            file=sys.stderr,
        )
        return 2
    skip = {part.strip() for part in arguments.skip.split(",") if part.strip()}
    run_id = f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"
    out = arguments.out or RESULTS / f"{run_id}-{plan.mode}"
    become_subreaper()
    engines, skipped = open_engines(plan.engines)
    if not engines:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in skipped.items())
        print(f"benchmarks: no engine to run on ({reasons})", file=sys.stderr)
        return 2
    began = time.monotonic()
    started = datetime.datetime.now(datetime.timezone.utc)
    results = Results(
        meta={
            "run_id": run_id,
            "mode": plan.mode,
            "plan": asdict(plan),
            "command": " ".join(["python -m benchmarks", *(argv or sys.argv[1:])]),
            "started": started.isoformat(timespec="seconds"),
            "host": host_facts(engines),
            "engines": list(engines),
            "engines_skipped": skipped,
            "plugin": asdict(frozen) if frozen else {"origin": "not frozen"},
        }
    )
    log(
        f"run {run_id}: {plan.mode} mode, engines {', '.join(engines)}, "
        f"workloads {', '.join(plan.workloads)}"
    )
    try:
        with sigterm_as_interrupt():
            if "workloads" not in skip:
                for name in plan.workloads:
                    results.workloads.extend(measure_workload(name, plan, run_id, engines))
            if "ahead" not in skip:
                for name in plan.ahead_workloads:
                    results.ahead.extend(measure_ahead(name, plan, run_id, list(engines)))
            if "flat" not in skip:
                for engine_name, engine in engines.items():
                    results.flat.append(measure_flat(plan, run_id, engine_name, engine))
            if "short" not in skip:
                results.short = measure_short(
                    plan.short_workload,
                    plan.short_tests,
                    plan.short_rounds,
                    run_id,
                    list(engines),
                    log=log,
                    rotated=rotated,
                )
    except KeyboardInterrupt:
        log("interrupted: cleaning up and writing what was measured")
    finally:
        removed: dict[str, dict[str, int]] = {}
        for engine_name, engine in engines.items():
            with contextlib.suppress(Exception):
                containers, images = remove_labelled(engine, run_id)
                removed[engine_name] = {"containers": containers, "images": images}
        results.meta["leftovers_removed"] = {
            "containers": sum(r["containers"] for r in removed.values()),
            "images": sum(r["images"] for r in removed.values()),
            "engines": removed,
        }
        results.meta["seconds"] = round(time.monotonic() - began, 1)
        results.meta["host"]["load_after"] = os.getloadavg()
        for engine in engines.values():
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
