"""The proof at the end of a set-up: checkpoint and restore a container through the plugin's
own engine layer, and check that its memory and its TCP sockets came back.

The container keeps a start stamp and a counter in the shell's memory, runs busybox httpd (a
listening TCP socket) and holds an established connection to it (nc): a restored process
prints the same stamp and counts on, and httpd still answers; a restarted one would print a
new stamp and start again at 1. The established connection needs ``tcp-established``.

On Docker both containers join network holders, as the plugin's warm containers do (Docker
28 and 29 cannot restore a container that has a network namespace of its own).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from ..engine.base import ContainerConfig, RestoreRequest
from ..engine.errors import EngineError
from ..engine.holders import holder_spec, joined_spec
from ..engine.spec import ContainerSpec
from .procs import wait_until
from .system import SetupError

SCRIPT = (
    's=$(cut -d" " -f1 /proc/uptime)\n'
    "httpd -f -p 8080 -h /etc & sleep 0.2\n"
    "sleep 1000 | nc 127.0.0.1 8080 &\n"
    'i=0; while :; do i=$((i+1)); echo "$s $i"; sleep 0.05; done'
)
LABELS = {"pytest-criu.setup": "roundtrip"}
CHECKPOINT = "setup-roundtrip"


class Engine(Protocol):
    """The part of :class:`~pytest_criu.engine.base.ContainerEngine` a round trip uses."""

    @property
    def title(self) -> str: ...

    def containers(self, label: str) -> list[dict[str, Any]]: ...
    def create(self, config: ContainerConfig) -> str: ...
    def start(self, container_id: str) -> None: ...
    def inspect(self, container_id: str) -> dict[str, Any]: ...
    def remove(self, container_id: str) -> None: ...
    def logs(self, container_id: str, *, tail: int | Literal["all"] = "all") -> str: ...
    def exec(self, container_id: str, argv: Sequence[str]) -> tuple[int, str]: ...
    def checkpoint(self, container_id: str, name: str) -> None: ...
    def checkpoint_dir(self, container_id: str, name: str) -> Path: ...
    def restore_new(self, request: RestoreRequest) -> str: ...


@dataclass(frozen=True)
class Result:
    checkpoint_seconds: float
    restore_seconds: float
    at_checkpoint: int
    after_restore: int

    def __str__(self) -> str:
        return (
            f"OK (checkpoint {self.checkpoint_seconds:.2f} s, restore "
            f"{self.restore_seconds:.2f} s; counter {self.at_checkpoint} at checkpoint, "
            f"{self.after_restore} after restore; listening and established TCP sockets kept)"
        )


def counters(logs: str) -> list[tuple[str, int]]:
    """The ``stamp counter`` lines a round-trip container printed."""
    found = []
    for line in logs.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            found.append((parts[0], int(parts[1])))
    return found


def restored_in_memory(before: tuple[str, int], after: list[tuple[str, int]]) -> bool:
    """Every line after the restore carries the checkpointed stamp and the counter grows on."""
    stamp, count = before
    last = count - 1  # the restored process may print its last number again
    for line_stamp, value in after:
        if line_stamp != stamp or value <= last:
            return False
        last = value
    return bool(after) and after[-1][1] > count


def round_trip(
    engine: Engine, image: str, say: Callable[[str], None], *, holders: bool = False
) -> Result:
    """Run the round trip on ``engine``; every container it makes is removed again.

    With ``holders`` the checkpointed container and the restored one each join a network
    holder of their own (a sleeping container that owns the namespace).
    """
    name = f"pytest-criu-setup-roundtrip-{os.getpid()}"
    spec = ContainerSpec(image=image, command=("sh", "-c", SCRIPT))
    made: list[str] = []

    def network_for(container_name: str) -> ContainerSpec:
        if not holders:
            return spec
        holder = engine.create(
            ContainerConfig(holder_spec(spec), image, LABELS, name=f"{container_name}-holder")
        )
        made.append(holder)
        engine.start(holder)
        return joined_spec(spec, holder)

    try:
        for leftover in engine.containers("pytest-criu.setup=roundtrip"):
            if str(leftover.get("Names", [""])[0]).lstrip("/").startswith(name):
                engine.remove(str(leftover["Id"]))
        first_spec = network_for(name)
        first = engine.create(ContainerConfig(first_spec, image, LABELS, name=name))
        made.append(first)
        engine.start(first)
        if not wait_until(lambda: _last(engine, first)[1] > 5, 10):
            raise SetupError(
                f"round trip: the counter container prints no counter; its output: "
                f"{engine.logs(first, tail=5)!r}"
            )
        _check_http(engine, first, "before the checkpoint")
        began = time.monotonic()
        engine.checkpoint(first, CHECKPOINT)
        checkpointed = time.monotonic()
        if engine.inspect(first)["State"]["Running"]:
            raise SetupError("round trip: the container still runs after its checkpoint")
        before = _last(engine, first)
        say(f"round trip: checkpointed at counter {before[1]}; restoring")
        restored_name = f"{name}-restored"
        restored = engine.restore_new(
            RestoreRequest(
                config=ContainerConfig(
                    network_for(restored_name), image, LABELS, name=restored_name
                ),
                checkpoint=engine.checkpoint_dir(first, CHECKPOINT),
                name=CHECKPOINT,
                owner="",
                created=made.append,
                lap=lambda _phase: None,
            )
        )
        done = time.monotonic()
        if not wait_until(lambda: _last(engine, restored)[1] > before[1], 10):
            raise SetupError(
                f"round trip: the restored container did not count on from {before[1]} within "
                f"10 s (its output: {engine.logs(restored, tail=3)!r})"
            )
        after = [line for line in counters(engine.logs(restored)) if line[1] >= before[1]]
        if not restored_in_memory(before, after):
            raise SetupError(
                "round trip: the restored container restarted its loop (memory not restored): "
                f"{after[:3]}"
            )
        _check_http(engine, restored, "after the restore (listening socket lost)")
        return Result(checkpointed - began, done - checkpointed, before[1], after[-1][1])
    except EngineError as error:
        raise SetupError(f"round trip on {engine.title}: {error}") from None
    finally:
        for container in reversed(made):
            try:
                engine.remove(container)
            except EngineError as error:
                say(f"round trip: could not remove container {container[:12]}: {error}")


def _last(engine: Engine, container: str) -> tuple[str, int]:
    lines = counters(engine.logs(container, tail=20))
    return lines[-1] if lines else ("", 0)


def _check_http(engine: Engine, container: str, when: str) -> None:
    # A file of the image: a restored container's own file changes are not in a checkpoint.
    code, output = engine.exec(container, ["wget", "-q", "-O", "-", "http://127.0.0.1:8080/passwd"])
    if code != 0 or not output.startswith("root:"):
        raise SetupError(
            f"round trip: busybox httpd does not answer inside the container {when}: "
            f"exit {code}, {output.strip()[:200]!r}"
        )
