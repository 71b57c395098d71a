"""Per-test outcomes of a run, the comparison of two runs and the summary table (pure)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

ORDER = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")


@dataclass(frozen=True)
class Phase:
    """What one phase (setup, call, teardown) of a test reported."""

    when: str
    outcome: str  # passed, failed or skipped, as pytest's TestReport says
    xfail: bool = False


def fold(phases: Iterable[Phase]) -> str:
    """One outcome per test from its phases, as pytest's summary counts it.

    A failed setup is an error, a skipped setup a skip; otherwise the call decides, and a
    failed teardown turns a test that did not fail into an error.
    """
    outcome = ""
    for phase in phases:
        if phase.when == "setup" and phase.outcome != "passed":
            outcome = "error" if phase.outcome == "failed" else _skip(phase)
        elif phase.when == "call":
            if phase.outcome == "skipped":
                outcome = _skip(phase)
            elif phase.xfail and phase.outcome == "passed":
                outcome = "xpassed"
            else:
                outcome = phase.outcome
        elif phase.when == "teardown" and phase.outcome == "failed" and outcome != "failed":
            outcome = "error"
    return outcome or "error"  # a test that reported nothing of use did not run as it should


def _skip(phase: Phase) -> str:
    return "xfailed" if phase.xfail else "skipped"


def counts(outcomes: Mapping[str, str]) -> dict[str, int]:
    """Tests per outcome, in pytest's order (the outcomes that occur)."""
    counter = Counter(outcomes.values())
    known = [name for name in ORDER if counter[name]]
    return {name: counter[name] for name in [*known, *sorted(set(counter) - set(ORDER))]}


@dataclass(frozen=True)
class Difference:
    nodeid: str
    shared: str  # the outcome in the shared run, or "missing"
    pristine: str


def differences(shared: Mapping[str, str], pristine: Mapping[str, str]) -> list[Difference]:
    """Every test whose outcome differs between the runs, or that only one run has."""
    return [
        Difference(nodeid, shared.get(nodeid, "missing"), pristine.get(nodeid, "missing"))
        for nodeid in sorted(set(shared) | set(pristine))
        if shared.get(nodeid) != pristine.get(nodeid)
    ]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(
    shared: Mapping[str, str],
    pristine: Mapping[str, str],
    walls: Mapping[str, tuple[float | None, float | None]],
    median_reset: float | None,
    *,
    listed: int = 20,
) -> str:
    """The summary: per run its tests, outcome counts and times, then the verdict.

    ``walls`` maps ``shared`` and ``pristine`` to (server set-up outside pytest, pytest run);
    the first ``listed`` tests that differ are named.
    """
    rows = [("run", "tests", "outcomes", "server set-up s", "pytest s", "total s")]
    totals: dict[str, float | None] = {}
    for name, outcomes in (("shared", shared), ("pristine", pristine)):
        setup, run = walls.get(name, (None, None))
        totals[name] = None if run is None else run + (setup or 0.0)
        summary = ", ".join(f"{count} {what}" for what, count in counts(outcomes).items())
        rows.append(
            (name, str(len(outcomes)), summary or "-", _seconds(setup), _seconds(run),
             _seconds(totals[name]))
        )  # fmt: skip
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    found = differences(shared, pristine)
    identical = "yes" if shared and not found else f"no ({len(found)} tests differ)"
    if not shared:
        identical = "no (the shared run has no outcomes)"
    lines.append(f"identical outcomes per test: {identical}")
    shared_total, pristine_total = totals["shared"], totals["pristine"]
    if shared_total and pristine_total is not None:
        lines.append(f"wall time pristine / shared: {pristine_total / shared_total:.2f}x")
    if median_reset is not None:
        lines.append(f"median visible reset per test: {median_reset:.3f}s")
    lines.extend(f"  {d.nodeid}: shared {d.shared}, pristine {d.pristine}" for d in found[:listed])
    if len(found) > listed:
        lines.append(f"  ... and {len(found) - listed} more")
    return "\n".join(lines)
