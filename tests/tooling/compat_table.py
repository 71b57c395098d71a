"""Measure the README's compatibility table: the engine matrix's suite, per engine and network.

Usage: python -m tests.tooling.compat_table [--tests N] [ENGINE...]

For each engine (docker-20 = the main daemon, docker-26 and docker-28 = second daemons from
``python -m tests.tooling.engines``, podman-4 = the rootful Podman service, podman-5.4 and
podman-5.8 = services from ``python -m tests.tooling.podman5``) and each network
mode it runs the suite of tests/integration/test_engine_matrix.py (a busybox httpd with a
published port, a tmpfs and seeded files; each marked test checks that it is pristine) with N
marked tests (8), restore-ahead off and ``--criu-report``, and prints one Markdown row per run:
what passed and the median reset before a test (the first test's restore excluded: it is made
at set-up). A run that fails prints its outcome and the run goes on; the exit status is 1 then.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_criu.engine.podman import PodmanEngine
from tests.helpers import TINY_IMAGE
from tests.integration.test_engine_matrix import SUITE_CONFTEST, SUITE_TESTS, free_port
from tests.tooling.with_engine import started_engine

MAIN_DOCKER = "unix:///var/run/docker.sock"
OUTCOME = re.compile(r"(\d+) (passed|failed|errors?|skipped)")


@dataclass(frozen=True)
class Row:
    """One run of the suite: the engine, its network mode and the holder setting."""

    network: str
    holder: str = "auto"

    @property
    def label(self) -> str:
        mode = {"bridge": "bridge, published port", "host": "`host`", "none": "`none`"}
        extra = "" if self.holder == "auto" else f", `--criu-network-holder={self.holder}`"
        return mode[self.network] + extra


ROWS: dict[str, tuple[Row, ...]] = {
    "docker-20": (
        Row("bridge"),
        Row("bridge", "stable"),
        Row("bridge", "off"),
        Row("host"),
        Row("none"),
    ),
    "docker-26": (Row("bridge"), Row("bridge", "off"), Row("host"), Row("none")),
    "docker-28": (Row("bridge"), Row("bridge", "stable"), Row("none"), Row("host")),
    "podman-4": (Row("bridge"), Row("host"), Row("none")),
    "podman-5.4": (Row("bridge"), Row("host"), Row("none")),
    "podman-5.8": (Row("bridge"), Row("host"), Row("none")),
}


def log(message: str) -> None:
    print(f"[compat] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def engine_url(name: str) -> Iterator[str]:
    """The socket of ``name``'s engine, started for the block when it is a second daemon."""
    if name == "docker-20":
        yield MAIN_DOCKER
    elif name == "podman-4":
        yield PodmanEngine.default_url()
    else:
        with started_engine(name, (TINY_IMAGE,)) as engine:
            yield engine.url


def median_reset(report: Mapping[str, Any]) -> float | None:
    """The median reset of the report's only warm container, its first restore excluded."""
    containers = report.get("containers")
    if not isinstance(containers, list) or len(containers) != 1:
        raise ValueError(f"expected one warm container in the report, got {containers!r}")
    resets = [float(s) for s in containers[0]["reset_seconds"][1:]]
    return statistics.median(resets) if resets else None


def run_suite(url: str, row: Row, tests: int) -> tuple[str, float | None, bool]:
    """Run the suite once; (outcome text, median reset, whether every test passed)."""
    with tempfile.TemporaryDirectory(prefix="pcriu-compat-") as work:
        base = Path(work)
        port = free_port() if row.network == "host" else 8080
        settings = {"IMAGE": TINY_IMAGE, "NETWORK": row.network, "PORT": port}
        (base / "suite_settings.py").write_text(
            "\n".join(f"{key} = {value!r}" for key, value in settings.items()) + "\n"
        )
        (base / "conftest.py").write_text(SUITE_CONFTEST)
        (base / "test_suite.py").write_text(SUITE_TESTS.replace("range(4)", f"range({tests})"))
        report = base / "report.json"
        done = subprocess.run(
            [
                sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                f"--criu-engine-url={url}", f"--criu-network-holder={row.holder}",
                "--criu-no-restore-ahead", f"--criu-report={report}",
            ],
            cwd=base, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        outcomes = {kind: int(count) for count, kind in OUTCOME.findall(done.stdout)}
        outcome = ", ".join(f"{count} {kind}" for kind, count in outcomes.items()) or "no outcome"
        passed = done.returncode == 0 and outcomes.get("passed") == tests
        if not passed:
            log(f"{row.label}: exit {done.returncode}\n{done.stdout[-3000:]}")
        median = median_reset(json.loads(report.read_text())) if report.is_file() else None
        return outcome, median, passed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.tooling.compat_table")
    parser.add_argument("--tests", type=int, default=8, help="marked tests per run (8)")
    parser.add_argument("engines", nargs="*", metavar="ENGINE", help=", ".join(ROWS))
    args = parser.parse_args(argv)
    unknown = set(args.engines) - set(ROWS)
    if unknown:
        parser.error(f"unknown engine(s) {', '.join(sorted(unknown))}; known: {', '.join(ROWS)}")
    print("| engine | network mode | result | reset median |")
    print("| --- | --- | --- | --- |")
    failed = False
    for name in args.engines or ROWS:
        with engine_url(name) as url:
            for row in ROWS[name]:
                outcome, median, passed = run_suite(url, row, args.tests)
                failed |= not passed
                shown = "-" if median is None else f"{median:.2f} s"
                print(f"| {name} | {row.label} | {outcome} | {shown} |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
