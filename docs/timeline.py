"""Draw docs/timeline.svg: a warm container's life, against recreating per test.

Plain SVG text, no drawing library. The durations are measured figures (see ``FIGURES``);
``python docs/timeline.py`` rewrites the picture, and ``tests/unit/test_docs_pictures.py``
fails when the committed one differs from what this script draws.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from html import escape
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = HERE / "timeline.svg"


@dataclass(frozen=True)
class Figures:
    """Seconds, as measured; ``source`` says where from."""

    prepare: float
    checkpoint: float
    recreate: float
    """What a test waits without CRIU: a new container, readiness and prepare."""
    restore: float
    test: float
    tests: int
    source: str


#: The benchmark's Python service workload (3 s boot) on Docker 20.10, from the run whose
#: chart is docs/benchmark.png: its set-up's prepare and checkpoint, the (a) fresh and (c)
#: recreate medians; tests as long as the restore-ahead benchmark's (1.5 s).
FIGURES = Figures(
    prepare=3.84,
    checkpoint=0.94,
    recreate=3.51,
    restore=0.87,
    test=1.5,
    tests=4,
    source="Python service, Docker 20.10, python -m benchmarks --quick (2026-12-01, busy "
    "2-core VM): prepare 3.84 s, dump 0.94 s, restore 0.87 s, recreate 3.51 s",
)

WIDTH = 960
LEFT = 150
RIGHT = 20
LANE = 30
COLOURS = {
    "prepare": "#f4a261",
    "checkpoint": "#e76f51",
    "restore": "#2a9d8f",
    "ahead": "#8ecae6",
    "test": "#264653",
    "idle": "#dddddd",
}


def render(figures: Figures = FIGURES) -> str:
    """The SVG document for ``figures``."""
    first_test = figures.prepare + figures.checkpoint + figures.restore
    ours_end = first_test + figures.tests * figures.test
    theirs_end = figures.tests * (figures.recreate + figures.test)
    end = max(ours_end, theirs_end)
    scale = (WIDTH - LEFT - RIGHT) / end
    parts: list[str] = []

    def x(seconds: float) -> float:
        return LEFT + seconds * scale

    def bar(lane: float, start: float, length: float, kind: str, text: str) -> None:
        top = lane * LANE + 40
        parts.append(
            f'<rect x="{x(start):.1f}" y="{top:.1f}" width="{length * scale:.1f}" '
            f'height="{LANE - 8}" fill="{COLOURS[kind]}" rx="3">'
            f"<title>{escape(text)}: {length:.2f} s</title></rect>"
        )
        if len(text) * 6.0 + 4 <= length * scale:  # the label fits inside; else the legend says
            fill = "#ffffff" if kind in ("test", "checkpoint", "restore") else "#000000"
            parts.append(
                f'<text x="{x(start + length / 2):.1f}" y="{top + 15:.1f}" font-size="11" '
                f'text-anchor="middle" fill="{fill}">{escape(text)}</text>'
            )

    def lane_label(lane: float, text: str, bold: bool = False) -> None:
        weight = ' font-weight="bold"' if bold else ""
        parts.append(
            f'<text x="8" y="{lane * LANE + 55:.1f}" font-size="12"{weight}>{escape(text)}</text>'
        )

    # pytest-criu: the session's set-up, then the tests; restore-ahead beside them.
    lane_label(0, "pytest-criu", bold=True)
    lane_label(1, "tests")
    bar(1, 0, figures.prepare, "prepare", "start, ready, prepare")
    bar(1, figures.prepare, figures.checkpoint, "checkpoint", "CRIU dump")
    bar(1, figures.prepare + figures.checkpoint, figures.restore, "restore", "restore 1")
    lane_label(2, "restore-ahead")
    for number in range(figures.tests):
        start = first_test + number * figures.test
        bar(1, start, figures.test, "test", f"test {number + 1}")
        # made after the last test too: the plugin cannot know that no test follows
        last = " (unused: no test follows)" if number + 1 == figures.tests else ""
        bar(2, start, figures.restore, "ahead", f"restore {number + 2}{last}")
    # Without CRIU: every test waits for a new container, readiness and prepare.
    lane_label(3.5, "recreate per test", bold=True)
    lane_label(4.5, "tests")
    clock = 0.0
    for number in range(figures.tests):
        bar(4.5, clock, figures.recreate, "prepare", "start, ready, prepare")
        bar(4.5, clock + figures.recreate, figures.test, "test", f"test {number + 1}")
        clock += figures.recreate + figures.test
    # The time axis, with a mark where each way ends.
    axis = 6 * LANE + 40
    parts.append(
        f'<line x1="{LEFT}" y1="{axis}" x2="{WIDTH - RIGHT}" y2="{axis}" stroke="#555555"/>'
    )
    for second in range(int(end) + 1):
        parts.append(
            f'<line x1="{x(second):.1f}" y1="{axis}" x2="{x(second):.1f}" y2="{axis + 5}" '
            'stroke="#555555"/>'
        )
        parts.append(
            f'<text x="{x(second):.1f}" y="{axis + 18}" font-size="10" '
            f'text-anchor="middle">{second} s</text>'
        )
    for seconds, lane in ((ours_end, 1), (theirs_end, 4.5)):
        top = lane * LANE + 36
        parts.append(
            f'<line x1="{x(seconds):.1f}" y1="{top}" x2="{x(seconds):.1f}" y2="{axis}" '
            'stroke="#555555" stroke-dasharray="3,3"/>'
        )
    legend = (
        ("prepare", "start, ready, prepare"),
        ("checkpoint", "CRIU dump + commit"),
        ("restore", "restore"),
        ("ahead", "restore-ahead (while a test runs)"),
        ("test", "a test"),
    )
    position = float(LEFT)
    for kind, text in legend:
        parts.append(
            f'<rect x="{position:.1f}" y="{axis + 30}" width="12" height="12" '
            f'fill="{COLOURS[kind]}" rx="2"/>'
        )
        parts.append(
            f'<text x="{position + 16:.1f}" y="{axis + 40}" font-size="11">{escape(text)}</text>'
        )
        position += 16 + len(text) * 6.2 + 18
    saved = theirs_end - ours_end
    parts.append(
        f'<text x="8" y="24" font-size="13" font-weight="bold">{figures.tests} tests of '
        f"{figures.test:g} s: {ours_end:.1f} s with pytest-criu, {theirs_end:.1f} s recreating "
        f"per test ({saved:.1f} s saved); no test waits for a restore</text>"
    )
    parts.append(
        f'<text x="8" y="{axis + 62}" font-size="10" fill="#555555">{escape(figures.source)}</text>'
    )
    height = axis + 72
    body = "\n  ".join(parts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">\n'
        f'  <rect width="{WIDTH}" height="{height}" fill="#ffffff"/>\n  {body}\n</svg>\n'
    )


def main(argv: list[str]) -> int:
    """Write the picture (to ``argv[0]`` if given, else docs/timeline.svg)."""
    target = Path(argv[0]) if argv else TARGET
    target.write_text(render())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
