"""Progress lines, failed-test sections and the end-of-session summary."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from .engine.errors import CriuError
from .engine.snapshot import WarmContainer

if TYPE_CHECKING:
    from .runtime import Runtime

LOG_TAIL = 40


class Summary:
    """Writes pytest-criu's progress and summary through pytest's terminal reporter."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.runtime: Runtime | None = None
        self.kept: list[str] = []

    def say(self, message: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None or self.config.get_verbosity() < -1:
            return
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if capture is None:
            reporter.write_line(f"[pytest-criu] {message}")
            return
        # Progress happens inside fixture set-up, whose output pytest captures.
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"[pytest-criu] {message}")

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        runtime = self.runtime
        if runtime is None:
            return
        controllers = runtime.closed + list(runtime.controllers.values())
        if not controllers and not runtime.skipped:
            return
        terminalreporter.write_sep("-", "pytest-criu")
        for line in summary_lines(runtime, controllers):
            terminalreporter.write_line(line)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"


def summary_lines(runtime: Runtime, controllers: list[WarmContainer]) -> list[str]:
    lines: list[str] = []
    seen: set[str] = set()
    for controller in controllers:
        if controller.name in seen:
            continue
        seen.add(controller.name)
        stats = controller.stats
        if stats.failure:
            lines.append(f"{controller.name}: set-up failed: {stats.failure}")
            continue
        mode = stats.mode or "shared (no resets)"
        line = f"{controller.name}: {mode}; {stats.origin} in {_seconds(stats.prepare_seconds)}"
        if stats.checkpoint_seconds is not None:
            line += f" + checkpoint {_seconds(stats.checkpoint_seconds)}"
        count = len(stats.resets)
        line += f"; {controller.restores} restores"
        if count:
            line += (
                f"; reset before a test: median {_seconds(stats.median())}, "
                f"p95 {_seconds(stats.p95())} over {count}"
            )
            if stats.prepare_seconds is not None and controller.mode == "snapshot":
                saved = count * stats.prepare_seconds - sum(stats.resets)
                line += f"; saved {saved:.1f}s vs re-preparing per test"
        lines.append(line)
        for mount in controller.not_reset:
            lines.append(f"{controller.name}: NOT reset by restores: bind mount {mount}")
        for kept in sorted(controller.kept):
            lines.append(
                f"{controller.name}: kept container {kept[:12]} (docker rm -f {kept[:12]})"
            )
    if runtime.skipped:
        lines.append(
            f"{runtime.skipped} marked tests skipped: snapshots unavailable: "
            f"{runtime.snapshot_blocker}; run `pytest-criu doctor` for details"
        )
    if runtime.settings.timings:
        for nodeid, name, wait in runtime.timings:
            lines.append(f"reset {name} {wait:.3f}s {nodeid}")
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
        parts.append(logs.rstrip() or "(no output)")
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
