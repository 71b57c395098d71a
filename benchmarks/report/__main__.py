"""``python -m benchmarks.report RESULTS.json [--no-chart]``: redraw a saved run's report.

Writes ``results.md`` (and ``results.png``) beside ``RESULTS.json`` and prints the Markdown.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..load import ResultsFileError, load_results
from . import MISSING_MATPLOTLIB, markdown


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report",
        description="Write results.md and results.png beside a benchmark run's results.json.",
    )
    parser.add_argument("results", type=Path, metavar="RESULTS.json")
    parser.add_argument("--no-chart", action="store_true", help="do not draw results.png")
    arguments = parser.parse_args(argv)
    source: Path = arguments.results
    try:
        results = load_results(source)
    except ResultsFileError as error:
        print(f"benchmarks.report: {error}", file=sys.stderr)
        return 2
    text = markdown(results)
    (source.parent / "results.md").write_text(text)
    print(text)
    if not arguments.no_chart:
        try:
            from .charts import draw
        except ImportError:
            print(f"benchmarks.report: {MISSING_MATPLOTLIB}", file=sys.stderr)
        else:
            draw(results, source.parent / "results.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
