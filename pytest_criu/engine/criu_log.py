"""Turn CRIU's log lines into explanations a test author can act on."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import CheckpointError, HostLimitError


@dataclass(frozen=True)
class Diagnosis:
    """A known CRIU refusal: the pattern that recognises it and what to do."""

    pattern: re.Pattern[str]
    cause: str
    fix: str
    fixes: Mapping[str, str] = field(default_factory=dict)
    """Where the fix differs by engine (``docker``, ``podman``): that engine's."""
    host_limit: bool = False
    """A limit of the host, not of the container: snapshots cannot work here as declared."""

    def fix_on(self, engine: str | None) -> str:
        return self.fixes.get(engine or "", self.fix)


_HOST_WITH_CAPABILITY = "a host whose root has CAP_SYS_RESOURCE (GitHub's hosted runners do)"


DIAGNOSES: tuple[Diagnosis, ...] = (
    Diagnosis(
        re.compile(r"Connected TCP socket|tcp-established", re.IGNORECASE),
        "a TCP connection was open at checkpoint time",
        "close client connections at the end of prepare (e.g. client.close()), or add "
        "'tcp-established' to /etc/criu/runc.conf (sudo pytest-criu setup does)",
    ),
    Diagnosis(
        re.compile(r"file locks are hold|file-locks", re.IGNORECASE),
        "a process in the container holds file locks (databases do)",
        "add 'file-locks' to /etc/criu/runc.conf (sudo pytest-criu setup does)",
    ),
    Diagnosis(
        re.compile(r"io_uring", re.IGNORECASE),
        "a process uses io_uring, which CRIU cannot dump",
        "turn io_uring/native AIO off in the service (MariaDB: --innodb-use-native-aio=0; "
        "liburing users: disable it)",
    ),
    Diagnosis(
        re.compile(r"Can't get rlimit|prlimit.*Operation not permitted", re.IGNORECASE),
        "CRIU could not read the rlimits of a process running as another user (a service "
        "that drops root, like Postgres); root here lacks CAP_SYS_RESOURCE",
        f"give the container a user namespace on Podman (userns='auto'), or use "
        f"{_HOST_WITH_CAPABILITY}",
        {
            "podman": "give the container a user namespace: warm_container(..., "
            f"userns='auto') or --criu-userns=auto; or use {_HOST_WITH_CAPABILITY}",
            "docker": f"use {_HOST_WITH_CAPABILITY}, or Podman with a user namespace "
            "(--criu-engine=podman --criu-userns=auto); Docker makes user namespaces only "
            "daemon-wide and cannot restore a container in one",
        },
        host_limit=True,
    ),
    Diagnosis(
        re.compile(r"Unable to open [\w.-]+\.img: Permission denied", re.IGNORECASE),
        "CRIU, inside the container's user namespace, could not read the checkpoint's files",
        "restore it with Podman, or without a user namespace",
        {
            "docker": "Docker cannot restore a container in a user namespace (containerd "
            "copies every checkpoint into a directory only host root can read); run it "
            f"with userns='host' on {_HOST_WITH_CAPABILITY}, or use Podman "
            "(--criu-engine=podman --criu-userns=auto)",
            "podman": "the checkpoint was made by another tool or an older pytest-criu: "
            "make it again (--criu-cache-clear)",
        },
    ),
    Diagnosis(
        re.compile(r"Can't get 1:16 opt|SO_PASSCRED", re.IGNORECASE),
        "this CRIU is too old for the kernel's TCP sockets (needs CRIU >= 4.2)",
        "install CRIU >= 4.2 (sudo pytest-criu setup does) and restart dockerd",
    ),
    Diagnosis(
        re.compile(r"vdso.*Unexpected", re.IGNORECASE),
        "this CRIU does not understand the kernel's vDSO layout",
        "install CRIU >= 4.2 (sudo pytest-criu setup does) and restart dockerd",
    ),
    Diagnosis(
        re.compile(r"\btty\b(?!-info)|/dev/pts|/dev/console", re.IGNORECASE),
        "the container has a terminal (TTY), which Docker cannot checkpoint",
        "start the container without a TTY",
    ),
    Diagnosis(
        re.compile(r"already exists", re.IGNORECASE),
        "the daemon already holds identical checkpoint content (moby issue 42900)",
        "retry the restore; pytest-criu adds a unique file to each placed checkpoint",
    ),
    Diagnosis(
        re.compile(r"netns|/proc/0/ns/net", re.IGNORECASE),
        "this Docker version cannot restore containers with their own network namespace "
        "(Docker 28/29, moby issue 50750)",
        "use Docker 20.10-26.x, or network_mode='host'",
    ),
    Diagnosis(
        re.compile(r"unsupported|Unknown.*anon_inode", re.IGNORECASE),
        "a process uses a kernel object CRIU cannot dump",
        "see the quoted CRIU lines; avoid that feature in the container",
    ),
)

_QUOTED_COMMAND = re.compile(r"`[^`]*`")
_INTERESTING = re.compile(r"Error|error|fail|Can't|cannot|Unable|unsupported|Unknown|consider")


def diagnoses(text: str) -> list[Diagnosis]:
    """The known problems ``text`` shows, in :data:`DIAGNOSES` order."""
    return [diagnosis for diagnosis in DIAGNOSES if diagnosis.pattern.search(text)]


def explain(text: str, engine: str | None = None) -> list[str]:
    """One line per recognised problem in ``text``: ``cause; fix: ...`` (on ``engine``)."""
    seen: list[str] = []
    for diagnosis in diagnoses(text):
        line = f"{diagnosis.cause}; fix: {diagnosis.fix_on(engine)}"
        if line not in seen:
            seen.append(line)
    return seen


def checkpoint_error(message: str, log: str | None, *, engine: str) -> CheckpointError:
    """The error for a failed dump: a :class:`HostLimitError` when the host is the reason."""
    text = describe_failure("checkpoint the container", message, log, engine=engine)
    symptoms = "\n".join([_QUOTED_COMMAND.sub("", message), *relevant_lines(log or "", 200)])
    for diagnosis in diagnoses(symptoms):
        if diagnosis.host_limit:
            reason = f"{diagnosis.cause}; fix: {diagnosis.fix_on(engine)}"
            return HostLimitError(text, reason)
    return CheckpointError(text)


def relevant_lines(log: str, limit: int = 15) -> list[str]:
    """The error lines of a CRIU log, last ``limit`` of them."""
    lines = [line.strip() for line in log.splitlines() if _INTERESTING.search(line)]
    return lines[-limit:]


def describe_failure(
    action: str, message: str, log: str | None, *, engine: str | None = None
) -> str:
    """A full error message: what failed, why (when known, with ``engine``'s fix), and
    CRIU's own lines."""
    parts = [f"CRIU could not {action}: {message.strip()}"]
    # A quoted command line (Podman quotes runc's, options included) is not a symptom.
    symptoms = _QUOTED_COMMAND.sub("", message)
    reasons = explain("\n".join([symptoms, *relevant_lines(log or "", limit=200)]), engine)
    if reasons:
        parts.append("why: " + "\n     ".join(reasons))
    if log:
        lines = relevant_lines(log)
        if lines:
            parts.append("CRIU log:\n" + "\n".join(f"  | {line}" for line in lines))
    elif log is None:
        parts.append("(CRIU's log was not available)")
    return "\n".join(parts)


def describe_stuck_restore(
    timeout: float, stopped: int, log: str | None, *, engine: str | None = None
) -> str:
    """The error for a restore that outlived ``timeout`` and had ``stopped`` processes killed."""
    return describe_failure(
        "restore the checkpoint",
        f"no answer within {timeout:g}s; stopped {stopped} runc/CRIU processes (a damaged "
        "checkpoint can make CRIU spin)",
        log,
        engine=engine,
    )
