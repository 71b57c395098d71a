"""``results.png``: the report's tables as charts (matplotlib, from the ``bench`` extra).

Importing this module imports matplotlib: without it, :class:`ImportError`.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import matplotlib

from ..records import Results
from ..stats import median, p95
from .common import AHEAD_TARGET, FRESH_PHASES, LABELS, label
from .tables import sweep

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def draw(results: Results, path: Path) -> None:
    """Draw the charts of ``results`` into the PNG file ``path``."""
    meta = results.meta
    figure, axes = plt.subplots(3, 2, figsize=(15, 15))
    figure.suptitle(
        f"pytest-criu benchmark ({meta.mode}, {meta.started}, "
        f"{meta.host.cores} cores, noisy shared machine)"
    )
    if results.workloads:
        _strategies(axes[0][0], results)
        _sweep(axes[0][1], results)
        _phases(axes[1][0], results)
    else:
        for axis in (axes[0][0], axes[0][1], axes[1][0]):
            axis.set_visible(False)
    if results.ahead:
        _ahead(axes[1][1], results)
    else:
        axes[1][1].set_visible(False)
    _flat(axes[2][0], axes[2][1], results)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _name(results: Results, name: str, engine: str) -> str:
    """An x-axis label: the workload, and its engine when the run has several."""
    if len(results.engines()) < 2:
        return name
    return f"{name}\n{engine}"


def _strategies(axis: Any, results: Results) -> None:
    # One group of bars per workload and engine, a workload's engines side by side.
    workloads = results.workloads
    engines = results.engines()
    present = [s for s in LABELS if any(w.of(s).samples for w in workloads)]
    width = 0.8 / max(1, len(present))
    for index, strategy in enumerate(present):
        medians, highs, positions = [], [], []
        for position, workload in enumerate(workloads):
            samples = workload.of(strategy).samples
            if samples:
                middle = statistics.median(samples)
                medians.append(middle)
                highs.append((p95(samples) or middle) - middle)
                positions.append(position + (index - (len(present) - 1) / 2) * width)
        axis.bar(
            positions,
            medians,
            width,
            yerr=[[0.0] * len(highs), highs],
            label=label(strategy, engines[0])
            if strategy != "engine" or len(engines) < 2
            else "(d) engine floor: the engine's restore call only",
            capsize=2,
        )
    names = [_name(results, w.name, w.engine) for w in workloads]
    axis.set_xticks(range(len(workloads)), names, rotation=20)
    axis.set_yscale("log")
    axis.set_ylabel("seconds per reset (median; whisker: p95)")
    axis.set_title("Per-test reset by strategy")
    axis.legend(fontsize=7)


def _sweep(axis: Any, results: Results) -> None:
    points = sweep(results)
    engines = results.engines()
    styles = ("-", "--", ":")
    for number, engine in enumerate(engines):
        mine = [p for p in points if p.engine_name == engine]
        suffix = f" [{engine}]" if len(engines) > 1 else ""
        lines = (
            ([(p.mb, p.fresh) for p in mine], LABELS["fresh"], "o"),
            ([(p.mb, p.inplace) for p in mine], LABELS["inplace"], "s"),
            ([(p.mb, p.engine) for p in mine], label("engine", engine), "^"),
            ([(p.mb, p.criu_in_engine) for p in mine], "CRIU's own time inside (d)", "v"),
            ([(p.mb, p.criu) for p in mine], LABELS["criu"], "x"),
        )
        for values, name, marker in lines:
            xy = [(x, y) for x, y in values if y is not None]
            if xy:
                axis.plot(
                    [x for x, _ in xy],
                    [y for _, y in xy],
                    marker=marker,
                    linestyle=styles[number % len(styles)],
                    label=name + suffix,
                )
    for point in points:
        axis.annotate(point.workload, (point.mb, point.fresh or 0), fontsize=7)
    axis.set_xlabel("checkpoint size, MB")
    axis.set_ylabel("median restore, s")
    axis.set_title("Restore time vs checkpoint size")
    axis.legend(fontsize=7)


def _phases(axis: Any, results: Results) -> None:
    workloads = [w for w in results.workloads if w.of("fresh").samples]
    bottoms = [0.0] * len(workloads)
    for phase in FRESH_PHASES:
        heights = []
        for workload in workloads:
            values = workload.of("fresh").phase(phase)
            heights.append(statistics.median(values) if values else 0.0)
        axis.bar(range(len(workloads)), heights, bottom=bottoms, label=phase)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    criu = [(position, median(w.of("fresh").criu)) for position, w in enumerate(workloads)]
    known = [(x, y) for x, y in criu if y is not None]  # Podman keeps no log to read it from
    axis.scatter(
        [x for x, _ in known],
        [y for _, y in known],
        color="black",
        marker="_",
        s=400,
        zorder=3,
        label="CRIU's own time (within engine restore)",
    )
    names = [_name(results, w.name, w.engine) for w in workloads]
    axis.set_xticks(range(len(workloads)), names, rotation=20)
    axis.set_ylabel("seconds (median per phase)")
    axis.set_title("(a) fresh restore: where one reset's time goes")
    axis.legend(fontsize=7)


def _ahead(axis: Any, results: Results) -> None:
    names = {"fresh": "no", "ahead": "restore-ahead"}
    for result in results.ahead:
        for mode, marker in (("fresh", "o"), ("ahead", "x")):
            if mode not in result.series:
                continue
            points = [
                (index + 2, value * 1000)
                for batch in result.series[mode].rounds
                for index, value in enumerate(batch)
            ]
            if points:
                where = _name(results, result.workload, result.engine).replace("\n", " ")
                axis.scatter(
                    [x for x, _ in points],
                    [y for _, y in points],
                    marker=marker,
                    label=f"{where}, {names[mode]}",
                    alpha=0.7,
                )
    axis.axhline(AHEAD_TARGET * 1000, color="red", linestyle="--", label="target 50 ms")
    axis.set_yscale("symlog", linthresh=1)
    axis.set_ylim(bottom=0)
    axis.legend(fontsize=7)
    axis.set_xlabel("test number in its run")
    axis.set_ylabel("visible reset, ms")
    axis.set_title("Restore-ahead: what tests longer than a restore wait")


def _flat(left: Any, right: Any, results: Results) -> None:
    runs = [flat for flat in results.flat if flat.samples]
    if not runs:
        left.set_visible(False)
        right.set_visible(False)
        return
    several = len(runs) > 1
    styles = ("-", "--", ":")
    for number, flat in enumerate(runs):
        suffix = f" [{flat.engine}]" if several else ""
        style = styles[number % len(styles)]
        samples = [s for s in flat.samples if not s.after_session]
        tests = [s.test for s in samples]
        lines = (
            ([s.rss_kib / 1024 for s in samples], "RSS MiB"),
            ([s.fds for s in samples], "open fds"),
            ([s.threads for s in samples], "threads"),
            ([s.containers or 0 for s in samples], "containers of the run"),
        )
        for values, name in lines:
            left.plot(tests, values, linestyle=style, label=name + suffix)
        resets = flat.resets
        right.plot(
            range(2, len(resets) + 2),
            resets,
            linewidth=0.6,
            linestyle=style,
            label=flat.engine,
        )
    left.set_xlabel("test number")
    left.set_title(f"Endurance: the pytest process over {runs[0].tests} restores")
    left.legend(fontsize=7)
    right.set_xlabel("test number")
    right.set_ylabel("reset, s")
    right.set_title("Endurance: reset per test")
    if several:
        right.legend(fontsize=7)
