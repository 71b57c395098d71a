"""The third-party benchmark's pure parts: outcomes, their comparison and table, the server's
command line, the reset median; and the relay that carries the suite's TCP to a unix socket."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from benchmarks.third_party import server
from benchmarks.third_party.outcomes import Difference, Phase, counts, differences, fold, table
from benchmarks.third_party.plugin import Relay
from benchmarks.third_party.run import Run, median_reset


@pytest.mark.parametrize(
    ("phases", "expected"),
    [
        ([("setup", "passed"), ("call", "passed"), ("teardown", "passed")], "passed"),
        ([("setup", "passed"), ("call", "failed"), ("teardown", "passed")], "failed"),
        ([("setup", "failed"), ("teardown", "passed")], "error"),
        ([("setup", "skipped"), ("teardown", "passed")], "skipped"),
        ([("setup", "passed"), ("call", "skipped"), ("teardown", "passed")], "skipped"),
        ([("setup", "passed"), ("call", "passed"), ("teardown", "failed")], "error"),
        ([("setup", "passed"), ("call", "failed"), ("teardown", "failed")], "failed"),
        ([], "error"),
    ],
)
def test_phases_fold_into_the_outcome_pytest_counts(
    phases: list[tuple[str, str]], expected: str
) -> None:
    assert fold(Phase(when, outcome) for when, outcome in phases) == expected


def test_expected_failures_are_told_apart() -> None:
    assert fold([Phase("setup", "passed"), Phase("call", "skipped", xfail=True)]) == "xfailed"
    assert fold([Phase("setup", "passed"), Phase("call", "passed", xfail=True)]) == "xpassed"


def test_counts_follow_pytests_order() -> None:
    outcomes = {"a": "skipped", "b": "passed", "c": "failed", "d": "passed", "e": "odd"}
    assert list(counts(outcomes).items()) == [
        ("passed", 2),
        ("failed", 1),
        ("skipped", 1),
        ("odd", 1),
    ]


def test_differences_name_changed_and_missing_tests() -> None:
    shared = {"t::same": "passed", "t::leaky": "failed", "t::only_shared": "passed"}
    pristine = {"t::same": "passed", "t::leaky": "passed", "t::only_pristine": "error"}
    assert differences(shared, pristine) == [
        Difference("t::leaky", "failed", "passed"),
        Difference("t::only_pristine", "missing", "error"),
        Difference("t::only_shared", "passed", "missing"),
    ]
    assert differences(shared, dict(shared)) == []


def test_table_of_identical_runs() -> None:
    outcomes = {"t::a": "passed", "t::b": "passed", "t::c": "skipped"}
    text = table(outcomes, dict(outcomes), {"shared": (2.0, 8.0), "pristine": (None, 30.0)}, 0.5)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["run", "tests", "outcomes"]
    assert lines[1].split() == ["shared", "3", "2", "passed,", "1", "skipped", "2.0", "8.0", "10.0"]
    assert lines[2].split() == [
        "pristine",
        "3",
        "2",
        "passed,",
        "1",
        "skipped",
        "-",
        "30.0",
        "30.0",
    ]
    assert "identical outcomes per test: yes" in lines
    assert "wall time pristine / shared: 3.00x" in lines
    assert "median visible reset per test: 0.500s" in lines


def test_table_lists_the_tests_that_differ() -> None:
    text = table({"t::a": "failed"}, {"t::a": "passed"}, {"shared": (1.0, 1.0)}, None)
    assert "identical outcomes per test: no (1 tests differ)" in text
    assert "  t::a: shared failed, pristine passed" in text
    assert "wall time" not in text, "no ratio without the pristine run's time"
    assert "identical outcomes per test: no (the shared run has no outcomes)" in table(
        {}, {}, {}, None
    )


def test_the_shared_server_is_started_as_the_warm_container() -> None:
    argv = server.cli_arguments("podman", "name", "run-1")
    assert argv[:5] == ["podman", "run", "--detach", "--name", "name"]
    assert argv[7:9] == ["--network", "none"]
    assert argv[9:11] == ["--userns", "auto"]
    assert f"{server.LABEL}=run-1" in argv
    assert argv[-len(server.COMMAND) - 1 :] == [server.IMAGE, *server.COMMAND]
    assert "--userns" not in server.cli_arguments("docker", "name", "run-1")


def test_ready_only_once_the_real_server_is() -> None:
    init = "LOG:  database system is ready to accept connections\n"  # a temporary server's
    assert not server.logs_say_ready(init)
    assert not server.logs_say_ready(init + "PostgreSQL init process complete; ready\n")
    assert server.logs_say_ready(
        "PostgreSQL init process complete; ready for start up.\n"
        "LOG:  database system is ready to accept connections\n"
    )


def test_median_reset_from_the_report(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    assert median_reset(report) is None
    report.write_text(json.dumps({"containers": [{"reset_seconds": [0.5, 0.9, 0.6]}]}))
    assert median_reset(report) == 0.6


def test_a_run_is_broken_without_outcomes_or_with_a_bad_exit() -> None:
    assert Run("shared").broken
    assert not Run("shared", exit_code=1, outcomes={"t::a": "failed"}).broken
    assert Run("shared", exit_code=2, outcomes={"t::a": "failed"}).broken
    assert Run("shared", exit_code=0, outcomes={"t::a": "passed"}, error="timeout").broken


def test_the_relay_carries_tcp_to_the_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "server.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()

    def echo_once() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.sendall(connection.recv(100).upper())

    threading.Thread(target=echo_once, daemon=True).start()
    relay = Relay()
    try:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as client:
            assert client.recv(1) == b"", "without a target the relay closes the connection"
        relay.target = lambda: path
        with socket.create_connection(("127.0.0.1", relay.port), timeout=5) as client:
            client.sendall(b"ping")
            assert client.recv(100) == b"PING"
            assert client.recv(100) == b"", "the server's close reaches the client"
    finally:
        relay.close()
        listener.close()


def test_what_the_suite_left_on_the_shared_server() -> None:
    before = "database:postgres\nextension:hstore\nrole:postgres\n"
    after = "database:postgres\ndatabase:scram\nrole:postgres\nrole:Æthelred\n"
    assert server.left_behind(before, after) == [
        "+database:scram",
        "+role:Æthelred",
        "-extension:hstore",
    ]
    assert server.left_behind(before, before) == []


def test_the_relay_carries_both_directions_at_once(tmp_path: Path) -> None:
    """A server that answers before it has read the whole request (as Postgres may while a
    client sends a large query) must not stall the relay: each direction flows on its own."""
    size = 8 << 20
    path = str(tmp_path / "server.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    received: list[int] = []

    def answer_first() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.settimeout(10)
            connection.sendall(b"a" * size)
            total = 0
            while total < size and (data := connection.recv(1 << 16)):
                total += len(data)
            received.append(total)

    server_thread = threading.Thread(target=answer_first, daemon=True)
    server_thread.start()
    relay = Relay()
    relay.target = lambda: path
    try:
        with socket.create_connection(("127.0.0.1", relay.port), timeout=10) as client:
            sender = threading.Thread(target=client.sendall, args=(b"q" * size,), daemon=True)
            sender.start()
            total = 0
            while total < size and (data := client.recv(1 << 16)):
                total += len(data)
            sender.join(timeout=10)
            server_thread.join(timeout=10)
        assert total == size
        assert received == [size]
    finally:
        relay.close()
        listener.close()


def test_table_names_only_the_first_tests_that_differ() -> None:
    shared = {f"t::{number}": "passed" for number in range(5)}
    pristine = dict.fromkeys(shared, "error")
    lines = table(shared, pristine, {}, None, listed=2).splitlines()
    assert lines[-3:] == [
        "  t::0: shared passed, pristine error",
        "  t::1: shared passed, pristine error",
        "  ... and 3 more",
    ]
