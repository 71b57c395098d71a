"""The report's detail sections: restore-ahead, endurance, short tests and the failed runs."""

from __future__ import annotations

from ..records import Results, ShortResult
from ..stats import median, p95, ratio, seconds
from .common import short_name, table, title

#: Issue 17's goal for the short tests: the whole run at most this many times the shared one.
SHORT_TARGET_RATIO = 4.0


def ahead_section(results: Results) -> list[str]:
    """What restore-ahead did per workload and engine, and what the tests checked."""
    lines = [
        f"- {result.workload} on {title(result.engine)} (tests sleep "
        f"{result.sleep} s; test body median "
        f"{seconds(median(result.test_seconds))} s, a restore made ahead median "
        f"{seconds(median(result.background_restores))} s): "
        f"{result.restored_ahead} containers handed to tests were restored ahead; "
        f"at reset the restore-ahead was already finished {result.ahead_ready} times, "
        f"still running {result.ahead_pending} times; {result.tests} tests checked: "
        f"containers unique {'yes' if result.unique_containers else 'NO'}, "
        f"changed under a running test {result.changed_under_test}, "
        f"probes that found a touched container {result.probes_failed}."
        for result in results.ahead
    ]
    if not lines:
        return []
    return ["## Restore-ahead details", "", *lines, ""]


def flat_section(results: Results) -> list[str]:
    """The endurance runs' samples of the pytest process, and the resets' trend."""
    lines: list[str] = []
    for flat in results.flat:
        if not flat.samples:
            continue
        rows = [
            [
                "after the session" if sample.after_session else str(sample.test),
                f"{sample.rss_kib / 1024:.1f}",
                str(sample.threads),
                str(sample.fds),
                "-" if sample.containers is None else str(sample.containers),
            ]
            for sample in flat.samples
        ]
        if len(rows) > 14:
            rows = [*rows[:4], ["...", "", "", "", ""], *rows[-6:]]
        resets = flat.resets
        halves = len(resets) // 2
        trend = ""
        if halves >= 2:
            trend = (
                f" Reset median, first half {seconds(median(resets[:halves]))} s, "
                f"second half {seconds(median(resets[halves:]))} s."
            )
        lines += [
            f"## Endurance on {title(flat.engine)}: {flat.tests} restores in one pytest process",
            "",
            *table(["test", "RSS MiB", "threads", "open fds", "containers of the run"], rows),
            "",
            f"Containers of the run left after it: {flat.leftover_containers}.{trend}",
            "",
        ]
    return lines


def _short_row(item: ShortResult) -> list[str]:
    pristine, shared = item.runs["pristine"], item.runs["shared"]
    whole = ratio(median(pristine.walls), median(shared.walls))
    phase = ratio(median(pristine.test_phases), median(shared.test_phases))
    verdict = "-" if whole is None else ("met" if whole <= SHORT_TARGET_RATIO else "**missed**")
    return [
        item.engine,
        f"{item.workload}, {item.tests} tests",
        str(len(pristine.walls)),
        seconds(median(shared.walls)),
        seconds(median(pristine.walls)),
        "-" if whole is None else f"{whole:.1f}x",
        "-" if phase is None else f"{phase:.1f}x",
        seconds(median(pristine.resets)),
        seconds(p95(pristine.resets)),
        verdict,
    ]


def short_section(results: Results) -> list[str]:
    """The short-tests part: pristine per test vs one shared container, per engine."""
    rows = [_short_row(item) for item in results.short]
    if not rows:
        return []
    header = [
        "engine", "suite", "runs", "shared: whole run s", "pristine: whole run s",
        "whole-run ratio", "test-phase ratio", "visible reset median s", "p95 s",
        f"target <= {SHORT_TARGET_RATIO:g}x",
    ]  # fmt: skip
    lines = [
        "## Short tests: a pristine container per test vs one shared container",
        "",
        "The same suite of millisecond tests (each connects, writes two keys, reads one back) "
        "against a small Redis, every test marked `criu_snapshot` (plugin defaults, "
        "restore-ahead on) vs unmarked against one shared container; medians over the runs. "
        "Whole run = pytest start to exit (set-up, prepare and checkpoint included); test "
        "phase = the first test's call to the last one's end.",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]
    errors = [
        f"- {item.engine} {mode}: {error.splitlines()[0]}"
        for item in results.short
        for mode, run in item.runs.items()
        for error in run.errors
    ]
    return lines + (["Failed runs (left out):", "", *errors, ""] if errors else [])


def errors_section(results: Results) -> list[str]:
    """Every failed pytest run or floor batch (their samples were dropped)."""
    lines = []
    for workload in results.workloads:
        where = f"{workload.name} [{workload.engine}]"
        if workload.error:
            lines.append(f"- {where}: {workload.error}")
        for strategy, series in workload.series.items():
            for error in series.errors:
                lines.append(f"- {where} {short_name(strategy)}: {error.splitlines()[0]}")
    for result in results.ahead:
        for error in result.errors:
            lines.append(f"- ahead {result.workload} [{result.engine}]: {error.splitlines()[0]}")
    for flat in results.flat:
        if flat.error:
            lines.append(f"- flat [{flat.engine}]: {flat.error.splitlines()[0]}")
    if not lines:
        return []
    return [
        "## Failed runs (samples of a failed run are dropped; each was retried once)",
        "",
        *lines,
        "",
    ]
