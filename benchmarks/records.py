"""What a benchmark run records: the dataclasses ``run.py`` fills and ``results.json`` holds.

``results.json`` is ``dataclasses.asdict(Results)``; :mod:`benchmarks.load` turns it (and the
files earlier versions of the harness wrote) back into these classes, which the report reads.
This module imports nothing of the plugin or of the harness's runners.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .source import FrozenPlugin


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

    def phase(self, name: str) -> list[float]:
        """The samples of one restore phase (none when it never ran)."""
        return self.phases.get(name) or []


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

    def of(self, strategy: str) -> Series:
        """The strategy's series; an empty one when this run did not have the strategy."""
        return self.series.get(strategy) or Series()


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
class ProcessSample:
    """The pytest process, sampled inside one test of the endurance run."""

    test: int
    rss_kib: int
    threads: int
    fds: int
    python_threads: int | None = None
    containers: int | None = None
    """The benchmark run's containers at that moment (not counted in the control run)."""
    after_session: bool = False
    """Taken after the session ended rather than inside a test."""


@dataclass
class FlatResult:
    """The endurance run: many restores in one pytest process."""

    tests: int
    engine: str = "docker"
    resets: list[float] = field(default_factory=list)
    samples: list[ProcessSample] = field(default_factory=list)
    control_samples: list[ProcessSample] = field(default_factory=list)
    """The same sampling in a run of as many tests without a warm container."""
    leftover_containers: int | None = None
    error: str | None = None


@dataclass
class ShortRun:
    """What one mode of the short-tests part measured on one engine, over every round."""

    walls: list[float] = field(default_factory=list)
    """Whole pytest runs, seconds."""
    test_phases: list[float] = field(default_factory=list)
    """First test call's start to the last one's end, seconds."""
    resets: list[float] = field(default_factory=list)
    """Visible reset per test (pristine only), first test excluded."""
    errors: list[str] = field(default_factory=list)


@dataclass
class ShortResult:
    """The short-tests part on one engine: ``pristine`` and ``shared`` runs."""

    workload: str
    engine: str
    tests: int
    runs: dict[str, ShortRun] = field(default_factory=dict)


@dataclass
class Host:
    """The machine and the engines' versions."""

    cores: int | None
    kernel: str
    python: str
    docker: str | None
    containerd: str | None
    podman: str | None
    criu: str
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] | None = None

    def version(self, engine: str) -> str | None:
        """The version of ``engine`` (``docker`` or ``podman``), when it ran."""
        return {"docker": self.docker, "podman": self.podman}.get(engine)


@dataclass
class Leftovers:
    """What the clean-up at the end of the run removed."""

    containers: int
    images: int
    engines: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per engine: ``containers`` and ``images``."""


@dataclass
class Meta:
    """How, when and where the run ran."""

    run_id: str
    mode: str
    plan: dict[str, Any]
    """``asdict`` of the run's ``Plan``, as written (fields differ between versions)."""
    command: str
    started: str
    """UTC start time, ISO 8601."""
    host: Host
    engines: list[str] = field(default_factory=list)
    """The engines run, in the order given (empty in results from before ``--engines``)."""
    engines_skipped: dict[str, str] = field(default_factory=dict)
    """Engines asked for but left out, with the reason."""
    plugin: FrozenPlugin | None = None
    """The frozen copy of the plugin that was measured; ``None``: as imported."""
    leftovers_removed: Leftovers | None = None
    seconds: float = 0.0


@dataclass
class Results:
    meta: Meta
    workloads: list[WorkloadResult] = field(default_factory=list)
    ahead: list[AheadResult] = field(default_factory=list)
    flat: list[FlatResult] = field(default_factory=list)
    """One endurance run per engine (a single object, or null, in results before engines)."""
    short: list[ShortResult] = field(default_factory=list)
    """The short-tests part, one per engine."""

    def engines(self) -> list[str]:
        """The engines of the run, in the order they were given."""
        found = [
            *(item.engine for item in self.workloads),
            *(item.engine for item in self.ahead),
            *(item.engine for item in self.flat),
        ]
        return list(dict.fromkeys([*self.meta.engines, *found])) or ["docker"]
