"""Strategies (a), (b), (c) and restore-ahead: the real plugin, in a real pytest run.

For each batch a small test suite is generated in a temporary directory (a ``conftest.py``
declaring the workload with ``warm_container(...)`` and N tests marked
``@pytest.mark.criu_snapshot``) and pytest runs it in a subprocess with the strategy's
options and ``--criu-report``. Each test runs the workload's probe, which fails unless the
container is pristine. Per-test reset times come from the report's JSON (its ``tests``, in
run order); a ``--plugin-ref`` from before ``--criu-report`` existed is read from the
``reset NAME SECONDS NODEID`` lines its ``--criu-timings`` printed instead.
:mod:`benchmarks.instrument` adds the phases of every restore, CRIU's own time and the gaps
between tests.

The first marked test of a run never waits (it gets the container restored right after the
checkpoint, or in recreate mode the prepared one), so it is left out of every statistic.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .instrument import ENGINE_ENV, LIGHT_ENV, OUTPUT_ENV, RUN_ENV, SAMPLE_ENV
from .source import FROZEN_ENV
from .workloads import REPOSITORY

FIXTURE = "svc"
TIMING_LINE = re.compile(r"^reset (\S+) (\d+(?:\.\d+)?)s (\S+)$", re.MULTILINE)
OUTCOMES = re.compile(r"(\d+) (passed|failed|errors?|skipped)")

#: pytest options of each plugin strategy.
STRATEGY_OPTIONS: dict[str, tuple[str, ...]] = {
    "fresh": ("--criu-strategy=fresh",),
    # Docker without network holders: a namespace, veth and port proxy per restore.
    "fresh-own": ("--criu-strategy=fresh", "--criu-network-holder=off"),
    # Docker with one holder for the session: the previous container stops first.
    "fresh-stable": ("--criu-strategy=fresh", "--criu-network-holder=stable"),
    "inplace": ("--criu-strategy=inplace",),
    "recreate": ("--criu-fallback=recreate", "--criu-binary=/nonexistent"),
    "ahead": ("--criu-strategy=fresh", "--criu-restore-ahead"),
}
#: Strategies measured without restore-ahead: the option is passed where the plugin knows it
#: (since restore-ahead became the default), so that (a) stays the restore a test waits for.
WITHOUT_AHEAD = ("fresh", "fresh-own", "fresh-stable")
HOLDER_FLAG = "--criu-network-holder"
NO_AHEAD_FLAG = "--criu-no-restore-ahead"
ENGINE_FLAG = "--criu-engine"
REPORT_FLAG = "--criu-report"

RESET_TESTS = """
import pytest

from benchmarks.workloads import WORKLOADS

PROBE = WORKLOADS[{workload!r}].probe


@pytest.mark.criu_snapshot
@pytest.mark.parametrize("i", range({tests}))
def test_reset({fixture}, i):
    PROBE({fixture})
"""

CONTROL_TESTS = """
import pytest


@pytest.mark.parametrize("i", range({tests}))
def test_control(i):
    pass
"""

SHORT_TESTS = """
import pytest

from benchmarks.workloads import SHORT_BODIES

BODY = SHORT_BODIES[{workload!r}]
PRISTINE = {pristine!r}
MARK = pytest.mark.criu_snapshot if PRISTINE else pytest.mark.short


@MARK
@pytest.mark.parametrize("i", range({tests}))
def test_short({fixture}, i):
    BODY({fixture}, i, pristine=PRISTINE)
"""

LONG_TESTS = """
import json
import os
import time

import pytest

from benchmarks.workloads import WORKLOADS

PROBE = WORKLOADS[{workload!r}].probe
LOG = os.environ["PYTEST_CRIU_BENCH_TEST_LOG"]


@pytest.mark.criu_snapshot
@pytest.mark.parametrize("i", range({tests}))
def test_long({fixture}, i):
    began = time.monotonic()
    container = {fixture}.id
    PROBE({fixture})  # fails unless no test has touched this container
    time.sleep({sleep!r})  # the test's own work: longer than one restore
    still = {fixture}.id
    with open(LOG, "a") as log:
        log.write(json.dumps({{"i": i, "container": container, "began": began,
                               "ended": time.monotonic(), "same": still == container}}) + "\\n")
    assert still == container, "the container changed under a running test"
"""


@dataclass
class Batch:
    """One pytest run: a workload, a strategy, N tests."""

    workload: str
    strategy: str
    tests: int
    kind: str = "reset"  # "reset" | "long" | "short" | "control" (no warm container)
    engine: str = "docker"
    """``docker`` or ``podman``: passed as ``--criu-engine`` when the plugin knows it."""
    sleep: float = 0.0
    sample_every: int = 0
    light: bool = False
    """Record only the process samples (the endurance run)."""
    pristine: bool = True
    """Short tests: marked (a pristine container each) or not (one shared container)."""


@dataclass
class BatchResult:
    """What one pytest run measured."""

    batch: Batch
    returncode: int
    wall: float
    resets: list[float] = field(default_factory=list)
    """The reset each test waited, from ``--criu-report``, first test excluded."""
    gaps: list[float] = field(default_factory=list)
    """From the end of one test's call to the start of the next one's (pytest included)."""
    outcomes: dict[str, int] = field(default_factory=dict)
    instrument: dict[str, Any] = field(default_factory=dict)
    containers: list[dict[str, Any]] = field(default_factory=list)
    """The warm containers of ``--criu-report`` (prepare, checkpoint, size, resets)."""
    test_log: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@functools.cache
def plugin_flags() -> frozenset[str]:
    """The ``--criu-*`` options of the ``pytest_criu`` this process imports (the frozen copy).

    Read from the source of its ``options`` module, so that a ``--plugin-ref`` from before
    an option existed is never given it.
    """
    spec = importlib.util.find_spec("pytest_criu.options")
    if spec is None or spec.origin is None:
        return frozenset()
    return frozenset(re.findall(r'"(--criu-[a-z-]+)"', Path(spec.origin).read_text()))


def engine_options(engine: str) -> tuple[str, ...]:
    """``--criu-engine=ENGINE`` for a plugin that has the option; nothing for one without.

    A plugin without it knows only Docker (:func:`benchmarks.engines.open_engines` refuses
    other engines for it).
    """
    return (f"{ENGINE_FLAG}={engine}",) if ENGINE_FLAG in plugin_flags() else ()


def pytest_options(batch: Batch) -> tuple[str, ...]:
    """The pytest-criu options of one batch: its engine, its strategy's."""
    options = [*engine_options(batch.engine), *STRATEGY_OPTIONS[batch.strategy]]
    if batch.strategy in WITHOUT_AHEAD and NO_AHEAD_FLAG in plugin_flags():
        options.append(NO_AHEAD_FLAG)
    return tuple(options)


def run_batch(batch: Batch, run_id: str, *, timeout: float = 1800.0) -> BatchResult:
    """Generate the suite, run pytest on it, parse what it printed and recorded."""
    with tempfile.TemporaryDirectory(prefix="pytest-criu-bench-") as scratch:
        directory = Path(scratch)
        (directory / "pytest.ini").write_text(
            "[pytest]\naddopts = -p no:cacheprovider\nmarkers = short: a short test\n"
        )
        (directory / "conftest.py").write_text(
            "from benchmarks.workloads import declare\n\n"
            f"{FIXTURE} = declare({batch.workload!r}, {run_id!r})\n"
        )
        templates = {"long": LONG_TESTS, "short": SHORT_TESTS, "control": CONTROL_TESTS}
        template = templates.get(batch.kind, RESET_TESTS)
        (directory / "test_bench.py").write_text(
            textwrap.dedent(template).format(
                workload=batch.workload,
                tests=batch.tests,
                fixture=FIXTURE,
                sleep=batch.sleep,
                pristine=batch.pristine,
            )
        )
        output = directory / "instrument.json"
        test_log = directory / "tests.jsonl"
        report = directory / "criu-report.json"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                filter(
                    None,
                    [os.environ.get(FROZEN_ENV), str(REPOSITORY), os.environ.get("PYTHONPATH")],
                )
            ),
            OUTPUT_ENV: str(output),
            RUN_ENV: run_id,
            SAMPLE_ENV: str(batch.sample_every),
            "PYTEST_CRIU_BENCH_TEST_LOG": str(test_log),
            LIGHT_ENV: "1" if batch.light else "",
            ENGINE_ENV: batch.engine,
        }
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "benchmarks.instrument",
            *timing_options(report),
            "-q",
            "-p",
            "no:randomly",
            *pytest_options(batch),
        ]
        began = time.monotonic()
        try:
            completed = subprocess.run(
                command,
                cwd=directory,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            return BatchResult(
                batch=batch,
                returncode=-1,
                wall=time.monotonic() - began,
                error=f"pytest did not finish within {timeout:g}s: {_tail(error.stdout)}",
            )
        result = BatchResult(
            batch=batch, returncode=completed.returncode, wall=time.monotonic() - began
        )
        stdout = completed.stdout
        result.outcomes = {kind: int(count) for count, kind in OUTCOMES.findall(_last(stdout))}
        timings = read_resets(report, stdout)
        result.resets = timings[1:]
        result.containers = read_containers(report)
        if output.exists():
            result.instrument = json.loads(output.read_text())
        if test_log.exists():
            result.test_log = [json.loads(line) for line in test_log.read_text().splitlines()]
        frozen = os.environ.get(FROZEN_ENV)
        imported = str(result.instrument.get("plugin_file", ""))
        if frozen and imported and not imported.startswith(frozen):
            result.error = f"the run imported pytest_criu from {imported}, not the frozen copy"
            return result
        calls = result.instrument.get("calls", [])
        result.gaps = [
            later["began"] - earlier["ended"] for earlier, later in itertools.pairwise(calls)
        ]
        unmarked = batch.kind == "control" or (batch.kind == "short" and not batch.pristine)
        expected = 0 if unmarked else batch.tests
        if completed.returncode != 0 or len(timings) != expected:
            result.error = (
                f"pytest exited with {completed.returncode}, {len(timings)} of {batch.tests} "
                f"reset lines: {_tail(stdout + completed.stderr)}"
            )
        return result


def timing_options(report: Path) -> tuple[str, ...]:
    """Ask the plugin for its JSON report, or (a plugin without one) for timing lines."""
    if REPORT_FLAG in plugin_flags():
        return (f"{REPORT_FLAG}={report}",)
    return ("--criu-timings",)


def read_resets(report: Path, stdout: str) -> list[float]:
    """Each marked test's visible reset seconds, in run order (see :func:`timing_options`)."""
    if REPORT_FLAG not in plugin_flags():
        return [float(seconds) for _, seconds, _ in TIMING_LINE.findall(stdout)]
    if not report.exists():
        return []
    document = json.loads(report.read_text())
    return [
        float(test["resets"][FIXTURE]) for test in document["tests"] if FIXTURE in test["resets"]
    ]


def read_containers(report: Path) -> list[dict[str, Any]]:
    """The warm containers' figures in ``--criu-report`` (none without the report)."""
    if REPORT_FLAG not in plugin_flags() or not report.exists():
        return []
    containers: list[dict[str, Any]] = json.loads(report.read_text())["containers"]
    return containers


def _last(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _tail(text: str | bytes | None, lines: int = 25) -> str:
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])
