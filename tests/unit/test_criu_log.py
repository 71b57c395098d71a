"""CRIU failures are explained with a cause and a fix."""

from __future__ import annotations

import pytest

from pytest_criu.engine.criu_log import describe_failure, explain, relevant_lines


@pytest.mark.parametrize(
    ("log", "cause"),
    [
        (
            "Error (criu/sk-inet.c:199): inet: Connected TCP socket, consider using --tcp-established option.",
            "TCP connection was open",
        ),
        (
            "Error (criu/file-lock.c:85): Some file locks are hold by dumping tasks!",
            "holds file locks",
        ),
        (
            "Error (criu/files-ext.c:96): Can't dump file 12 of that type [600] (unknown anon_inode:[io_uring])",
            "io_uring",
        ),
        (
            "Error (criu/cr-dump.c:1300): Can't get rlimit 0: Operation not permitted",
            "CAP_SYS_RESOURCE",
        ),
        (
            "Error (criu/sockets.c:430): sockets: Can't get 1:16 opt: Operation not supported",
            "CRIU >= 4.2",
        ),
        (
            "failed to upload checkpoint to containerd: commit failed: content sha256:ab: already exists",
            "moby issue 42900",
        ),
        (
            "bind-mount /proc/0/ns/net -> /run/docker/netns/x: no such file or directory",
            "moby issue 50750",
        ),
    ],
)
def test_known_failures_are_explained(log: str, cause: str) -> None:
    reasons = explain(log)
    assert any(cause in reason for reason in reasons), reasons
    assert all("fix:" in reason for reason in reasons)


def test_unknown_failure_gets_no_invented_reason() -> None:
    assert explain("Error: something nobody has seen") == []


def test_relevant_lines_keep_errors_only() -> None:
    log = "(00.1) dumping\nError (x.c:1): boom\n(00.2) more\nWarn: Can't do thing\n"
    assert relevant_lines(log) == ["Error (x.c:1): boom", "Warn: Can't do thing"]


def test_describe_failure_quotes_log_and_reason() -> None:
    text = describe_failure(
        "checkpoint the container",
        "criu failed: type NOTIFY errno 0",
        "Error (criu/file-lock.c:85): Some file locks are hold by dumping tasks!\n",
    )
    assert text.startswith("CRIU could not checkpoint the container: criu failed")
    assert "why: a process in the container holds file locks" in text
    assert "  | Error (criu/file-lock.c:85)" in text
    assert "(CRIU's log was not available)" in describe_failure("restore", "boom", None)


def test_ordinary_log_lines_do_not_invent_causes() -> None:
    log = (
        "(00.001) mnt: Inspecting sharing on 1020 shared_id 0 master_id 0 (@./dev/pts)\n"
        "(00.002) netns: Dumping netns links\n"
        "(00.100) Error (criu/cr-dump.c:1300): Can't get rlimit 0: Operation not permitted\n"
    )
    text = describe_failure("checkpoint the container", "criu failed", log)
    assert "CAP_SYS_RESOURCE" in text
    assert "TTY" not in text
    assert "50750" not in text


def test_options_in_a_quoted_command_line_are_not_symptoms() -> None:
    message = (
        "`/usr/bin/runc checkpoint --image-path /x --tcp-established --file-locks abc` "
        "failed: exit status 1"
    )
    log = "(00.05) Error (criu/cr-dump.c:389): Can't get rlimit 0: Operation not permitted\n"
    text = describe_failure("checkpoint the container", message, log)
    assert "why: CRIU could not read the rlimits" in text
    assert "TCP connection" not in text
    assert "file locks" not in text
