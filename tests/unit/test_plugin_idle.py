"""A suite that uses no warm container pays nothing: no CRIU call, no engine call, no docker-py."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

FAKE_CRIU = """#!/bin/sh
echo "$@" >> {log}
echo "Version: 4.2.1"
"""

SPY_PLUGIN = """
import sys
from pathlib import Path

def pytest_sessionfinish(session):
    Path({modules!r}).write_text("docker" if "docker" in sys.modules else "no docker")
"""

WARM_CONFTEST = """
from pytest_criu import warm_container

box = warm_container("pytest-criu/tiny:latest", command=["sleep", "1000"])
"""


class EngineSpy:
    """A unix socket that counts the connections made to it (and answers none)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.connections = 0
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(8)
        self._server.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="engine-spy")
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._server.close()


@dataclass
class Spies:
    criu_calls: Path
    modules: Path
    engine: EngineSpy

    def criu_argv(self) -> list[str]:
        return self.criu_calls.read_text().splitlines() if self.criu_calls.exists() else []


@pytest.fixture
def spies(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Iterator[Spies]:
    """A recording ``criu`` first on PATH and an engine socket that counts connections."""
    bin_dir = pytester.path / "bin"
    bin_dir.mkdir()
    calls = pytester.path / "criu-calls.log"
    criu = bin_dir / "criu"
    criu.write_text(FAKE_CRIU.format(log=calls))
    criu.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin")
    engine = EngineSpy(pytester.path / "engine.sock")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{engine.path}")
    modules = pytester.path / "modules.txt"
    pytester.makepyfile(spy_plugin=SPY_PLUGIN.format(modules=str(modules)))
    try:
        yield Spies(calls, modules, engine)
    finally:
        engine.close()


def test_a_suite_without_warm_containers_costs_nothing(
    pytester: pytest.Pytester, spies: Spies
) -> None:
    pytester.makepyfile(test_plain="def test_x():\n    pass\n")
    # -v: the report header (which used to probe CRIU and the engine) is shown.
    result = pytester.runpytest_subprocess("-v", "-p", "spy_plugin", "test_plain.py")
    result.assert_outcomes(passed=1)
    assert spies.criu_argv() == []
    assert spies.engine.connections == 0
    assert spies.modules.read_text() == "no docker"
    # (The interpreter's path in the platform line may itself hold "pytest-criu".)
    result.stdout.no_fnmatch_line("pytest-criu *")
    result.stdout.no_fnmatch_line("*[[]pytest-criu[]]*")


def test_a_suite_with_a_warm_container_examines_the_host(
    pytester: pytest.Pytester, spies: Spies
) -> None:
    """The control: the same spies see the calls once a warm container is collected."""
    pytester.makeconftest(WARM_CONFTEST)
    pytester.makepyfile(test_warm="def test_x(box):\n    pass\n")
    result = pytester.runpytest_subprocess("--collect-only", "-p", "spy_plugin", "test_warm.py")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["pytest-criu *: CRIU 4.2.1, Docker unreachable*"])
    assert any(argv.startswith("--version") for argv in spies.criu_argv())
    assert spies.engine.connections > 0
    assert spies.modules.read_text() == "docker"
