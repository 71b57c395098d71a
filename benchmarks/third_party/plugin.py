"""``-p benchmarks.third_party.plugin``, in both runs: connection settings and outcomes.

pg8000's suite reads its connection settings from ``PGHOST``, ``PGPORT`` and ``PGPASSWORD``
in its ``db_kwargs`` fixtures and connects over TCP (some tests open the TCP socket
themselves). The server has no network, so this plugin listens on a loopback port and
relays every connection to the server's unix socket: to ``THIRD_PARTY_SOCKET`` in the shared
run, to the current warm container's socket in the pristine run (``pristine.py`` sets the
target), looked up again after every restore. It sets the three variables in
``pytest_configure``, before any fixture reads them; nothing of the suite is changed.

It also writes every test's outcome (``outcomes.fold``) to ``THIRD_PARTY_OUTCOMES`` as JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from .outcomes import Phase, fold
from .server import PASSWORD

RELAY_KEY = pytest.StashKey["Relay"]()


class Relay:
    """A loopback TCP port whose connections are relayed to ``target()``, a unix socket."""

    def __init__(self) -> None:
        self.target: Callable[[], str] | None = None
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, name="relay", daemon=True).start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._pump, args=(client,), daemon=True).start()

    def _pump(self, client: socket.socket) -> None:
        with client, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            try:
                if self.target is None:
                    return  # no server (yet): the client sees the connection closed
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                server.settimeout(30)
                server.connect(self.target())
                server.settimeout(None)
            except (OSError, ValueError):
                return  # no such container or socket: the client sees the connection closed
            # One thread per direction: a direction blocked on a full buffer never stops the
            # other (a client sending a large query while the server answers would deadlock
            # a single-threaded relay).
            back = threading.Thread(target=_copy, args=(server, client), daemon=True)
            back.start()
            _copy(client, server)
            back.join(timeout=30)


def _copy(source: socket.socket, destination: socket.socket) -> None:
    """Copy until ``source`` ends; then shut both sockets down, which ends the other copy."""
    try:
        while data := source.recv(1 << 16):
            destination.sendall(data)
    except OSError:
        pass  # a gone container, a closed client
    finally:
        for end in (source, destination):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


class Recorder:
    """Every test's phases as they are reported; their outcomes written at the end."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.phases: dict[str, list[Phase]] = {}
        self.messages: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        phase = Phase(report.when, report.outcome, hasattr(report, "wasxfail"))
        self.phases.setdefault(report.nodeid, []).append(phase)
        if report.outcome != "passed" and report.nodeid not in self.messages:
            crash = getattr(report.longrepr, "reprcrash", None)
            text = getattr(crash, "message", None) or str(report.longrepr or "")
            self.messages[report.nodeid] = f"{report.when}: {text}"[:300]

    def pytest_sessionfinish(self) -> None:
        document = {
            nodeid: {"outcome": fold(phases), "message": self.messages.get(nodeid, "")}
            for nodeid, phases in self.phases.items()
        }
        Path(self.path).write_text(json.dumps(document, indent=1) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    relay = Relay()
    socket_path = os.environ.get("THIRD_PARTY_SOCKET")
    if socket_path:
        relay.target = lambda: socket_path
    config.stash[RELAY_KEY] = relay
    os.environ.update(PGHOST="127.0.0.1", PGPORT=str(relay.port), PGPASSWORD=PASSWORD)
    outcomes = os.environ.get("THIRD_PARTY_OUTCOMES")
    if outcomes:
        config.pluginmanager.register(Recorder(outcomes), "third-party-outcomes")


def pytest_unconfigure(config: pytest.Config) -> None:
    relay = config.stash.get(RELAY_KEY, None)
    if relay is not None:
        relay.close()
