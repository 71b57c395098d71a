"""Progress lines, failed-test sections and the end-of-session summary."""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .engine.errors import CriuError
from .version import __version__

if TYPE_CHECKING:
    from .engine.snapshot import WarmContainer
    from .runtime import Runtime

LOG_TAIL = 40
SLOW_PHASE_SECONDS = 5.0
"""Below ``-v``, a phase that took longer than this still gets one line."""
REPORT_VERSION = 1


@dataclass
class ContainerReport:
    """What one process did with one warm container; plain data, so workers can send it."""

    name: str
    mode: str
    origin: str
    prepare_seconds: float | None
    checkpoint_seconds: float | None
    restores: int
    resets: list[float] = field(default_factory=list)
    not_reset: list[str] = field(default_factory=list)
    kept: list[tuple[str, ...]] = field(default_factory=list)
    """Each kept container's id, then its network holder's."""
    failure: str | None = None
    processes: int = 1
    engine: str = "docker"
    checkpoint_bytes: int | None = None
    network: str | None = None
    """The network path its containers took: holder, stable, own, host or joined."""
    cleanup_failures: list[str] = field(default_factory=list)
    """Containers it could not remove (the next run's reaper removes them)."""
    restore_ahead: int | None = None
    """Restores made ahead at once, or ``None`` without restore-ahead."""
    checkpoint_memory: dict[str, int] = field(default_factory=dict)
    """Each process's anonymous memory at checkpoint time, biggest first."""
    footprint: str | None = None
    """Where the checkpoint's bytes are, one line."""
    userns: str | None = None
    """The user namespace its service ran in, when not the host's."""
    unavailable: str | None = None
    """Why snapshots could not be taken of it here (found at checkpoint time)."""

    def __post_init__(self) -> None:
        # From xdist workers the groups arrive as lists.
        self.kept = [tuple(group) for group in self.kept]

    @classmethod
    def of(cls, controller: WarmContainer) -> ContainerReport:
        stats = controller.stats
        return cls(
            name=controller.name,
            mode=stats.mode
            or ("snapshots unavailable" if controller.unavailable else "shared (no resets)"),
            origin=stats.origin,
            prepare_seconds=stats.prepare_seconds,
            checkpoint_seconds=stats.checkpoint_seconds,
            restores=controller.restores,
            resets=list(stats.resets),
            not_reset=list(controller.not_reset),
            kept=controller.tracker.kept_groups(),
            failure=stats.failure,
            engine=controller.engine.name,
            checkpoint_bytes=stats.checkpoint_bytes,
            network=controller.network,
            cleanup_failures=list(controller.tracker.failures),
            restore_ahead=stats.ahead_depth,
            checkpoint_memory=dict(stats.checkpoint_memory),
            userns=stats.userns,
            unavailable=controller.unavailable,
            footprint=stats.footprint,
        )

    def merge(self, other: ContainerReport) -> None:
        """Fold another worker's report of the same warm container into this one."""
        if other.origin == "prepared" or self.prepare_seconds is None:
            self.origin, self.prepare_seconds = other.origin, other.prepare_seconds
            self.checkpoint_seconds = other.checkpoint_seconds
        self.checkpoint_bytes = self.checkpoint_bytes or other.checkpoint_bytes
        self.checkpoint_memory = self.checkpoint_memory or other.checkpoint_memory
        self.footprint = self.footprint or other.footprint
        self.restores += other.restores
        self.resets += other.resets
        self.kept += other.kept
        self.failure = self.failure or other.failure
        self.processes += other.processes
        self.cleanup_failures += other.cleanup_failures


class Summary:
    """Writes pytest-criu's progress and summary through pytest's terminal reporter.

    Per-phase lines need ``-v``; below that only notable events and slow phases are
    written, and ``-qq`` silences everything but the end-of-session summary.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.runtime: Runtime | None = None
        self.worker_reports: list[dict[str, Any]] = []
        self.worker_timings: list[tuple[str, str, float]] = []
        self.worker_skips = 0

    def say(self, message: str) -> None:
        """A notable event: shown unless ``-qq``."""
        if self.config.get_verbosity() >= -1:
            self._write(message)

    def phase(self, name: str, what: str, seconds: float | None) -> None:
        """A set-up or reset phase began (``seconds`` is ``None``) or ended."""
        if self.config.get_verbosity() >= 1:
            self._write(f"{name}: {what} ..." if seconds is None else _done(name, what, seconds))
        elif seconds is not None and seconds > SLOW_PHASE_SECONDS:
            self.say(_done(name, what, seconds))

    def _write(self, message: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if capture is None:
            reporter.write_line(f"[pytest-criu] {message}")
            return
        # Progress happens inside fixture set-up, whose output pytest captures.
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"[pytest-criu] {message}")

    def reports(self) -> list[ContainerReport]:
        runtime = self.runtime
        local = runtime.closed + list(runtime.controllers.values()) if runtime else []
        merged: dict[str, ContainerReport] = {}
        incoming = [ContainerReport.of(c) for c in local] + [
            ContainerReport(**data) for data in self.worker_reports
        ]
        for report in incoming:
            if report.name in merged:
                merged[report.name].merge(report)
            else:
                merged[report.name] = report
        return list(merged.values())

    def timings(self) -> list[tuple[str, str, float]]:
        """``(nodeid, warm container, seconds the test waited for its reset)``, all processes."""
        local = self.runtime.timings if self.runtime else []
        return [*local, *self.worker_timings]

    def worker_output(self) -> dict[str, Any]:
        """This worker's part of the summary, as plain data for pytest-xdist to send."""
        return {
            "containers": [asdict(report) for report in self.reports()],
            "timings": [list(timing) for timing in self.timings()],
            "skipped": self.runtime.skipped if self.runtime else 0,
        }

    def add_worker_output(self, data: dict[str, Any]) -> None:
        self.worker_reports.extend(data.get("containers", []))
        self.worker_timings.extend(
            (str(nodeid), str(name), float(wait)) for nodeid, name, wait in data.get("timings", [])
        )
        self.worker_skips += int(data.get("skipped", 0))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        runtime = self.runtime
        if runtime is None or runtime.worker or not runtime.settings.report:
            return
        write_report(Path(runtime.settings.report), self.reports(), self.timings())

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        runtime = self.runtime
        if runtime is None:
            return
        reports = self.reports()
        skipped = runtime.skipped + self.worker_skips
        if not reports and not skipped:
            return
        terminalreporter.write_sep("-", "pytest-criu")
        for line in summary_lines(reports):
            terminalreporter.write_line(line)
        if skipped:
            reasons = [runtime.host.snapshot_blocker] if runtime.host.checked else []
            reasons += sorted({report.unavailable for report in reports if report.unavailable})
            terminalreporter.write_line(
                f"{_count(skipped, 'marked test')} skipped: snapshots unavailable: "
                f"{'; '.join(r for r in reasons if r) or 'see the skip reasons'}; run "
                "`pytest-criu doctor` for details"
            )
        if runtime.settings.timings:
            for nodeid, name, wait in self.timings():
                terminalreporter.write_line(f"reset {name} {wait:.3f}s {nodeid}")
        if runtime.settings.report:
            terminalreporter.write_line(f"timings written to {runtime.settings.report}")


def _done(name: str, what: str, seconds: float) -> str:
    return f"{name}: {what} done in {seconds:.2f}s"


def _count(number: int, noun: str, plural: str | None = None) -> str:
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def report_data(
    reports: list[ContainerReport], timings: list[tuple[str, str, float]]
) -> dict[str, Any]:
    """The ``--criu-report`` document (its schema is in the README)."""
    tests: dict[str, dict[str, Any]] = {}
    for nodeid, name, wait in timings:
        test = tests.setdefault(nodeid, {"nodeid": nodeid, "resets": {}, "reset_seconds": 0.0})
        test["resets"][name] = _rounded(wait)
        test["reset_seconds"] = _rounded(test["reset_seconds"] + wait)
    return {
        "version": REPORT_VERSION,
        "plugin": __version__,
        "containers": [
            {
                "name": report.name,
                "engine": report.engine,
                "network": report.network,
                "origin": report.origin,
                "mode": report.mode,
                "prepare_seconds": _rounded(report.prepare_seconds),
                "checkpoint_seconds": _rounded(report.checkpoint_seconds),
                "checkpoint_bytes": report.checkpoint_bytes,
                "checkpoint_memory": report.checkpoint_memory,
                "restore_ahead": report.restore_ahead,
                "restores": report.restores,
                "reset_seconds": [_rounded(seconds) for seconds in report.resets],
                "processes": report.processes,
                "failure": report.failure,
            }
            for report in reports
        ],
        "tests": list(tests.values()),
    }


def _rounded(seconds: float | None) -> float | None:
    """Microseconds are plenty (and keep the file readable)."""
    return None if seconds is None else round(seconds, 6)


def write_report(
    path: Path, reports: list[ContainerReport], timings: list[tuple[str, str, float]]
) -> None:
    """Write the report atomically: a reader never sees half a file."""
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as stream:
            json.dump(report_data(reports, timings), stream, indent=2)
            stream.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def summary_lines(reports: list[ContainerReport]) -> list[str]:
    """One line per warm container, plus lines for what restores do not reset."""
    lines: list[str] = []
    for report in reports:
        if report.failure:
            lines.append(f"{report.name}: set-up failed: {report.failure}")
            continue
        if report.origin == "cache":
            line = f"{report.name}: {report.mode}; from the cache (prepare skipped)"
        elif report.origin.startswith("imported"):
            line = f"{report.name}: {report.mode}; {report.origin} (prepare skipped)"
        else:
            prepared = _seconds(report.prepare_seconds)
            line = f"{report.name}: {report.mode}; {report.origin} in {prepared}"
            if report.checkpoint_seconds is not None:
                line += f" + checkpoint {_seconds(report.checkpoint_seconds)}"
        if report.userns:
            line += f"; {report.userns}"
        if report.processes > 1:
            line += f"; shared by {report.processes} workers"
        noun = "recreation" if report.mode.startswith("recreate") else "restore"
        line += f"; {_count(report.restores, noun)}"
        resets = report.resets
        if resets:
            median = statistics.median(resets)
            line += (
                f"; reset before a test: median {_seconds(median)}, "
                f"p95 {_seconds(_p95(resets))} over {len(resets)}"
            )
            if report.prepare_seconds and report.mode.startswith("snapshot"):
                saved = len(resets) * report.prepare_seconds - sum(resets)
                if saved >= 0.05:
                    line += f"; saved {saved:.1f}s vs re-preparing per test"
        lines.append(line)
        if report.footprint:
            lines.append(f"{report.name}: {report.footprint}")
        failures = report.cleanup_failures
        if failures:
            lines.append(
                f"{report.name}: could not remove {_count(len(failures), 'container')} "
                f"(the next run reaps them): {'; '.join(failures[:3])}"
            )
        for group in report.kept:
            ids = " ".join(cid[:12] for cid in group)
            holder = " and its network holder" if len(group) > 1 else ""
            lines.append(
                f"{report.name}: kept container {group[0][:12]}{holder} "
                f"({report.engine} rm -f {ids})"
            )
    return lines


def failure_section(controller: WarmContainer, *, keep: bool) -> str:
    """What to show under a failed marked test: how the container ended and its log tail."""
    parts: list[str] = []
    try:
        state = controller.container_state()
        if state is not None:
            parts.append(f"the container stopped during the test: {state}")
        logs = controller.handle.logs(tail=LOG_TAIL)
        parts.append(f"container {controller.handle.id[:12]}, last {LOG_TAIL} log lines:")
        parts.append(logs.rstrip() or "(no output since the restore)")
    except CriuError as error:
        parts.append(f"(container details unavailable: {error})")
    if keep:
        kept = controller.keep_current()
        parts.append(
            f"kept container {kept[:12]} for debugging"
            if kept
            else "not kept: the in-place strategy reuses the container"
        )
    return controller.spec.redact("\n".join(parts))
