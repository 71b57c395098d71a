"""The command: pg8000's own suite against a shared server, then with a pristine one per test."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any

from . import server
from .outcomes import differences, table

REPOSITORY = Path(__file__).resolve().parents[2]
VERSION = "1.31.6"
#: What the suite imports (pg8000, its dependencies, pytest-mock, pytest-benchmark, pytz).
REQUIREMENTS = (f"pg8000=={VERSION}", "scramp==1.5.0", "asn1crypto", "python-dateutil", "six",
                "pytest-mock", "pytest-benchmark", "py-cpuinfo", "pytz")  # fmt: skip
#: The selection of pg8000's CI (its main job): the auth tests need other servers each.
SUITE = ["test", "--ignore=test/dbapi/auth", "--ignore=test/legacy/auth"]
SUITE += ["--ignore=test/native/auth", "--ignore=test/test_readme.py"]
READY_TIMEOUT = 120.0
COMMAND_TIMEOUT = 300.0


@dataclass
class Run:
    name: str
    exit_code: int | None = None
    setup_seconds: float | None = None  # the shared server's start, outside pytest
    pytest_seconds: float | None = None
    outcomes: dict[str, str] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    error: str = ""
    left_behind: list[str] = field(default_factory=list)  # on the shared server

    @property
    def broken(self) -> bool:
        return bool(self.error) or self.exit_code not in (0, 1) or not self.outcomes


def command(argv: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> str:
    """Run ``argv``; its output, or ``RuntimeError`` with it when it fails."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])}... failed ({done.returncode}): {done.stderr}")
    return done.stdout + done.stderr


def fetch_suite(directory: Path) -> Path:
    """pg8000's sdist, downloaded and unpacked into ``directory``; its root."""
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    command([*pip, "download", "--no-deps", "--no-binary", ":all:", f"pg8000=={VERSION}",
             "-d", str(directory)])  # fmt: skip
    archive = next(directory.glob("pg8000-*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(directory, filter="data")
    return directory / archive.name.removesuffix(".tar.gz")


def missing_requirements() -> list[str]:
    missing = []
    for requirement in REQUIREMENTS:
        name, _, wanted = requirement.partition("==")
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = ""
        if not version or (wanted and version != wanted):
            missing.append(requirement)
    return missing


def install(requirements: list[str], target: Path) -> None:
    """Into ``target``, put on the runs' PYTHONPATH: pytest-mock and pytest-benchmark are
    pytest plugins, which in the venv would load into every pytest run of this project."""
    if requirements:
        command([sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet",
                 "install", "--no-deps", "--target", str(target), *requirements])  # fmt: skip


def pytest_run(
    run: Run, suite: Path, env: dict[str, str], *, extra: list[str], logs: Path, timeout: float
) -> None:
    """One pytest run of the suite in a subprocess; fills ``run``."""
    outcomes = logs / f"{run.name}-outcomes.json"
    env = {**env, "THIRD_PARTY_OUTCOMES": str(outcomes)}
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rfE", "-p",
            "benchmarks.third_party.plugin", "--benchmark-disable", *extra, *SUITE]  # fmt: skip
    started = time.monotonic()
    with (
        (logs / f"{run.name}.log").open("w") as log,
        subprocess.Popen(argv, cwd=suite, env=env, stdout=log, stderr=subprocess.STDOUT) as process,
    ):
        try:
            run.exit_code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            run.error = f"pytest did not finish within {timeout:.0f}s"
            stop(process)
        except BaseException:
            stop(process)
            raise
    run.pytest_seconds = time.monotonic() - started
    if outcomes.exists():
        document = json.loads(outcomes.read_text())
        run.outcomes = {nodeid: value["outcome"] for nodeid, value in document.items()}
        run.messages = {nodeid: value["message"] for nodeid, value in document.items()}


def stop(process: subprocess.Popen[bytes]) -> None:
    """Let pytest tear down (its plugin removes its containers); kill it if it does not."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)  # a Ctrl-C on the terminal reached it too
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def shared_server(engine: str, run_id: str, run: Run) -> Iterator[str]:
    """The shared server, started as the warm container is made; yields its socket's path."""
    name = f"pytest-criu-third-party-{run_id}"
    started = time.monotonic()
    try:
        command(server.cli_arguments(engine, name, run_id))
        deadline = time.monotonic() + READY_TIMEOUT
        while not server.logs_say_ready(command([engine, "logs", name])):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server was not ready within {READY_TIMEOUT:.0f}s")
            time.sleep(0.2)
        while subprocess.run([engine, "exec", name, *server.READY_COMMAND], capture_output=True,
                             timeout=30, check=False).returncode != 0:  # fmt: skip
            if time.monotonic() > deadline:
                raise RuntimeError(f"pg_isready failed for {READY_TIMEOUT:.0f}s")
            time.sleep(0.2)
        command([engine, "exec", name, *server.SETUP_COMMAND])
        pid = command([engine, "inspect", "--format", "{{.State.Pid}}", name]).strip()
        run.setup_seconds = time.monotonic() - started
        before = command([engine, "exec", name, *server.STATE_COMMAND])
        yield f"/proc/{pid}/root{server.SOCKET_DIRECTORY}/{server.SOCKET_NAME}"
        after = command([engine, "exec", name, *server.STATE_COMMAND])
        run.left_behind = server.left_behind(before, after)
    finally:
        remove_labelled(engine, run_id)


def remove_labelled(engine: str, run_id: str) -> None:
    """Remove the containers and images of this run (and only those), by their label."""
    label = f"label={server.LABEL}={run_id}"
    for listing, removal in (("ps", "rm"), ("images", "rmi")):
        ids = command([engine, listing, "-aq", "--filter", label]).split()
        if ids:
            # Podman may say "resource busy" about a user namespace's shm, the container gone
            subprocess.run([engine, removal, "-f", *ids], capture_output=True, timeout=120,
                           check=False)  # fmt: skip


def median_reset(report: Path) -> float | None:
    """The median reset a test waited, from ``--criu-report`` (the summary's median)."""
    if not report.exists():
        return None
    containers = json.loads(report.read_text()).get("containers") or []
    resets = [seconds for entry in containers for seconds in entry.get("reset_seconds") or []]
    return statistics.median(resets) if resets else None


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.third_party", description=__doc__)
    parser.add_argument("--engine", choices=("podman", "docker"), default="podman")
    parser.add_argument("--keep-going", action="store_true",
                        help="run the pristine run even when the shared run broke")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per pytest run")
    parser.add_argument("--out", type=Path, help="directory of logs and result.json")
    options = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    # Started in the background SIGINT may be ignored, and pytest would inherit that: a
    # handler of our own gives the runs SIGINT's default back (they then tear down on it).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run_id = f"{stamp}-{secrets.token_hex(3)}"
    out: Path = options.out or REPOSITORY / "benchmarks" / "results" / f"third-party-{run_id}"
    out.mkdir(parents=True, exist_ok=True)
    shared, pristine = Run("shared"), Run("pristine")
    try:
        try:
            measure(options, run_id, out, shared, pristine)
        finally:
            remove_labelled(options.engine, run_id)
    except KeyboardInterrupt:
        print("interrupted; this run's containers are removed", file=sys.stderr)
        return 130
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        print(f"benchmarks.third_party: {error}", file=sys.stderr)
        return 2
    return conclude(shared, pristine, out, options.engine, run_id)


def measure(
    options: argparse.Namespace, run_id: str, out: Path, shared: Run, pristine: Run
) -> None:
    """Both runs, in a temporary directory that holds the suite and what it needs."""
    timeout: float = options.timeout
    with tempfile.TemporaryDirectory(prefix="pytest-criu-third-party-") as temporary:
        suite = fetch_suite(Path(temporary))
        site = Path(temporary) / "site"
        install(missing_requirements(), site)
        pythonpath = [str(site), str(REPOSITORY), os.environ.get("PYTHONPATH", "")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, pythonpath)),
               "THIRD_PARTY_ENGINE": options.engine, "THIRD_PARTY_RUN_ID": run_id}  # fmt: skip
        print(f"run {run_id}: pg8000 {VERSION}'s suite, shared server ...", flush=True)
        try:
            with shared_server(options.engine, run_id, shared) as socket_path:
                shared_env = {**env, "THIRD_PARTY_SOCKET": socket_path}
                pytest_run(shared, suite, shared_env, extra=[], logs=out, timeout=timeout)
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            shared.error = str(error)
        if shared.broken and not options.keep_going:
            return
        print("pristine server before every test ...", flush=True)
        report = out / "criu-report.json"
        extra = ["-p", "benchmarks.third_party.pristine", f"--criu-engine={options.engine}",
                 "--criu-fallback=fail", f"--criu-report={report}"]  # fmt: skip
        pytest_run(pristine, suite, env, extra=extra, logs=out, timeout=timeout)


def conclude(shared: Run, pristine: Run, out: Path, engine: str, run_id: str) -> int:
    """Print the table, write ``result.json``; the exit status."""
    reset = median_reset(out / "criu-report.json")
    walls = {run.name: (run.setup_seconds, run.pytest_seconds) for run in (shared, pristine)}
    print(table(shared.outcomes, pristine.outcomes, walls, reset))
    found = differences(shared.outcomes, pristine.outcomes)
    if found:
        first = found[0].nodeid
        print(f"{first}:\n  shared: {shared.messages.get(first) or found[0].shared}\n"
              f"  pristine: {pristine.messages.get(first) or found[0].pristine}")  # fmt: skip
    if shared.left_behind:
        print(f"the suite left on the shared server: {', '.join(shared.left_behind)}")
    for run in (shared, pristine):
        if run.broken:
            print(f"{run.name} run broke: {run.error or f'pytest exit code {run.exit_code}'}")
    summary = ""
    with contextlib.suppress(OSError):
        log = (out / "pristine.log").read_text()
        summary = next(iter(re.findall(r".*reset before a test: median.*", log)), "")
    shared_total = (shared.setup_seconds or 0.0) + (shared.pytest_seconds or 0.0)
    result: dict[str, Any] = {
        "run_id": run_id,
        "engine": engine,
        "suite": f"pg8000 {VERSION}: {' '.join(SUITE)}",
        "identical": bool(shared.outcomes) and not found,
        "ratio": (pristine.pytest_seconds or 0.0) / shared_total if shared_total else None,
        "median_reset_seconds": reset,
        "reset_summary": summary.strip(),
        "differences": [
            {
                **asdict(d),
                "shared_message": shared.messages.get(d.nodeid, ""),
                "pristine_message": pristine.messages.get(d.nodeid, ""),
            }
            for d in found
        ],
        "runs": {run.name: asdict(run) for run in (shared, pristine)},
    }
    (out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"written: {out / 'result.json'}")
    return 0 if result["identical"] and not shared.broken and not pristine.broken else 1
