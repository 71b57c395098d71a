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

import contextlib
import datetime
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from . import report
from .criu_floor import CriuFloor, become_subreaper
from .engine_floor import EngineFloor, make_floor
from .engines import host_facts, open_engines, remove_labelled
from .load import load_results, process_sample
from .plan import Plan, parse_arguments
from .plugin_runs import HOLDER_FLAG, Batch, BatchResult, plugin_flags, run_batch
from .records import (
    AheadResult,
    FlatResult,
    Leftovers,
    Meta,
    ProcessSample,
    Results,
    Series,
    WorkloadResult,
)
from .short import measure_short
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


def _samples(batch: BatchResult) -> list[ProcessSample]:
    """The pytest process's samples the instrumentation took in ``batch``."""
    samples = batch.instrument.get("samples") or []
    return [process_sample(item, f"samples of {batch.batch}") for item in samples]


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
    result.samples = _samples(batch)
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
    result.control_samples = _samples(control)
    log(
        f"flat [{engine_name}]: {len(batch.resets)} resets in {batch.wall:.0f}s; "
        f"{len(result.samples)} samples; leftover containers {result.leftover_containers}"
    )
    return result


# -- the command --------------------------------------------------------------------------


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def write_results(results: Results, out: Path, *, chart: bool) -> str:
    """``results.json``, ``results.md`` and (with ``chart``) ``results.png`` in ``out``.

    The report reads what was written, as ``python -m benchmarks.report`` reads it later;
    returns the Markdown.
    """
    out.mkdir(parents=True, exist_ok=True)
    written = out / "results.json"
    written.write_text(json.dumps(asdict(results), indent=1))
    saved = load_results(written)
    markdown = report.markdown(saved)
    (out / "results.md").write_text(markdown)
    if chart:
        try:
            from .report.charts import draw
        except ImportError:
            log(report.MISSING_MATPLOTLIB)
        else:
            draw(saved, out / "results.png")
    return markdown


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
    engines, skipped = open_engines(plan.engines, log=log)
    if not engines:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in skipped.items())
        print(f"benchmarks: no engine to run on ({reasons})", file=sys.stderr)
        return 2
    began = time.monotonic()
    started = datetime.datetime.now(datetime.timezone.utc)
    meta = Meta(
        run_id=run_id,
        mode=plan.mode,
        plan=asdict(plan),
        command=" ".join(["python -m benchmarks", *(argv or sys.argv[1:])]),
        started=started.isoformat(timespec="seconds"),
        host=host_facts(engines),
        engines=list(engines),
        engines_skipped=skipped,
        plugin=frozen,
    )
    results = Results(meta=meta)
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
        meta.leftovers_removed = Leftovers(
            containers=sum(r["containers"] for r in removed.values()),
            images=sum(r["images"] for r in removed.values()),
            engines=removed,
        )
        meta.seconds = round(time.monotonic() - began, 1)
        meta.host.load_after = os.getloadavg()
        for engine in engines.values():
            engine.close()
    print(write_results(results, out, chart=not arguments.no_chart))
    log(f"results in {out} ({meta.seconds:.0f}s)")
    return 0
