"""The README's pictures are committed, shown, and (the timeline) what the script draws."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from docs import timeline

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_timeline_is_what_the_script_draws() -> None:
    assert timeline.TARGET.read_text() == timeline.render(), (
        "docs/timeline.svg is stale: run python3 docs/timeline.py and commit it"
    )


SVG = "{http://www.w3.org/2000/svg}"


def bars(svg: str) -> dict[str, tuple[float, float, float]]:
    """Each bar's (x, y, width) by the name its title gives."""
    found: dict[str, tuple[float, float, float]] = {}
    for rect in ET.fromstring(svg).iter(f"{SVG}rect"):
        title = rect.find(f"{SVG}title")
        if title is not None and title.text:
            name = title.text.split(":")[0]
            found.setdefault(
                name,
                (float(rect.attrib["x"]), float(rect.attrib["y"]), float(rect.attrib["width"])),
            )
    return found


def test_the_timeline_is_valid_svg_with_every_phase() -> None:
    root = ET.fromstring(timeline.render())
    assert root.tag == f"{SVG}svg"
    names = set(bars(timeline.render()))
    for name in ("start, ready, prepare", "CRIU dump", "restore 1", "restore 2", "test 1"):
        assert name in names, name


def test_the_timeline_puts_restore_ahead_beside_the_running_test() -> None:
    figures = timeline.Figures(
        prepare=3.0, checkpoint=0.5, recreate=3.0, restore=0.75, test=1.5, tests=3, source="test"
    )
    drawn = bars(timeline.render(figures))
    test_1, restore_2, test_2 = drawn["test 1"], drawn["restore 2"], drawn["test 2"]
    assert restore_2[0] == test_1[0], "restore 2 starts with test 1"
    assert restore_2[1] > test_1[1], "on its own lane"
    assert restore_2[2] == test_1[2] / 2, "as long as a restore, half a test here"
    assert test_2[0] == test_1[0] + test_1[2], "test 2 follows at once: nothing to wait for"
    assert drawn["restore 3"][0] == test_2[0]
    assert drawn["restore 4 (unused"][0] == drawn["test 3"][0], "made though no test follows"


def test_the_readme_shows_both_pictures() -> None:
    readme = (ROOT / "README.md").read_text()
    for picture in ("docs/timeline.svg", "docs/benchmark.png"):
        assert f"]({picture})" in readme, picture
        assert (ROOT / picture).is_file(), picture
