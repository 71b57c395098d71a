"""Readiness checks: how to tell that a freshly started container can serve.

A check makes one attempt per call and says whether it passed; :func:`wait_until_ready`
polls a list of them with a deadline and raises an error naming the check that did not pass.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import ReadinessTimeoutError, SpecError
from .spec import ContainerSpec, Port, PortLike

LOG_TAIL_LINES = 30


@dataclass(frozen=True)
class Health:
    """The engine's view of a container's ``HEALTHCHECK``."""

    status: str
    """``starting``, ``healthy`` or ``unhealthy``."""
    output: str = ""
    """What the last health check printed."""
    exit_code: int | None = None
    """The last health check's exit status (``None`` before the first one)."""


class Target(Protocol):
    """What a readiness check may look at: the container being started."""

    @property
    def host(self) -> str: ...

    def port(self, container_port: PortLike) -> int: ...

    def exec(self, argv: Sequence[str]) -> tuple[int, str]: ...

    def logs(self) -> str: ...

    def container_address(self) -> str | None: ...

    def health(self) -> Health | None: ...


class ReadyCheck:
    """Base class of readiness checks; subclasses implement :meth:`probe`."""

    description = "readiness check"

    def __init__(self, timeout: float | None = None) -> None:
        if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
            raise SpecError(f"{self.description}: timeout must be a positive number of seconds")
        self.timeout = timeout
        self.last_error: str | None = None

    def probe(self, target: Target) -> bool:
        """Make one attempt; ``True`` when the container is ready by this check."""
        raise NotImplementedError

    def unusable_with(self, image_config: Mapping[str, Any], spec: ContainerSpec) -> str | None:
        """Why this check cannot pass for containers of this image and spec, if it cannot."""
        return None

    def __repr__(self) -> str:
        return f"<ready {self.description}>"


class _Tcp(ReadyCheck):
    def __init__(self, port: PortLike, timeout: float | None) -> None:
        self.container_port = Port.parse(port, where="ready.tcp")
        self.description = f"ready.tcp({self.container_port})"
        super().__init__(timeout)

    def probe(self, target: Target) -> bool:
        address = target.container_address()
        if address:
            # On the daemon's host the container's own address answers truthfully; the
            # published port is served by docker-proxy, which accepts before the service does.
            with socket.create_connection((address, self.container_port.number), timeout=1.0):
                return True
        with socket.create_connection(
            (target.host, target.port(self.container_port)), timeout=1.0
        ) as connection:
            connection.settimeout(0.05)
            try:
                return connection.recv(1, socket.MSG_PEEK) != b""
            except TimeoutError:
                return True  # open and silent: a server waiting for its client to speak


class _Log(ReadyCheck):
    def __init__(self, pattern: str | re.Pattern[str], times: int, timeout: float | None) -> None:
        if isinstance(pattern, str):
            try:
                pattern = re.compile(pattern, re.MULTILINE)
            except re.error as error:
                raise SpecError(f"ready.log: {pattern!r} is not a valid regex: {error}") from None
        if not isinstance(pattern, re.Pattern):
            raise SpecError(f"ready.log: expected a regex string, got {pattern!r}")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise SpecError(
                f"ready.log: times must be a whole number >= 1 (how many matches to wait "
                f"for), got {times!r}"
            )
        self.pattern = pattern
        self.times = times
        counted = f", times={times}" if times != 1 else ""
        self.description = f"ready.log({pattern.pattern!r}{counted})"
        super().__init__(timeout)

    def probe(self, target: Target) -> bool:
        if self.times == 1:
            return self.pattern.search(target.logs()) is not None
        matches = sum(1 for _ in self.pattern.finditer(target.logs()))
        if matches < self.times:
            self.last_error = f"matched {matches} of {self.times} times"
        return matches >= self.times


class _Healthy(ReadyCheck):
    description = "ready.healthy()"

    def probe(self, target: Target) -> bool:
        health = target.health()
        if health is None:
            self.last_error = "the engine reports no health check for the container"
            return False
        if health.status != "healthy":
            ran = (
                "no health check has run yet"
                if health.exit_code is None
                else f"the last one exited {health.exit_code}"
                + (f": {health.output.strip()[-200:]}" if health.output.strip() else "")
            )
            self.last_error = f"health {health.status}; {ran}"
        return health.status == "healthy"

    def unusable_with(self, image_config: Mapping[str, Any], spec: ContainerSpec) -> str | None:
        declared = spec.create_options.get("healthcheck") or image_config.get("Healthcheck")
        test = (declared or {}).get("test") or (declared or {}).get("Test")
        if test and list(test) != ["NONE"]:
            return None
        return (
            f"ready.healthy() needs a health check, and image {spec.image} "
            + ("disables it (HEALTHCHECK NONE)" if test else "has no HEALTHCHECK")
            + ": add one to the image (Podman: build it with --format docker, OCI images drop "
            "HEALTHCHECK), declare one with create_options={'healthcheck': {'test': [...]}}, "
            "or use another check such as ready.cmd([...])"
        )


class _Cmd(ReadyCheck):
    def __init__(self, argv: Sequence[str], timeout: float | None) -> None:
        if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
            raise SpecError(
                f"ready.cmd: expected a list of strings such as ['pg_isready'], got {argv!r}"
            )
        self.argv = tuple(argv)
        self.description = f"ready.cmd({list(self.argv)!r})"
        super().__init__(timeout)

    def probe(self, target: Target) -> bool:
        code, output = target.exec(self.argv)
        if code != 0:
            self.last_error = f"exit code {code}: {output.strip()[-200:]}"
        return code == 0


class _Http(ReadyCheck):
    def __init__(
        self, port: PortLike, path: str, status: int | Sequence[int] | range, timeout: float | None
    ) -> None:
        self.container_port = Port.parse(port, where="ready.http")
        if not isinstance(path, str) or not path.startswith("/"):
            raise SpecError(f"ready.http: path must start with '/', got {path!r}")
        self.path = path
        self.statuses = range(status, status + 1) if isinstance(status, int) else status
        self.description = f"ready.http({self.container_port.number}, {path!r})"
        super().__init__(timeout)

    def probe(self, target: Target) -> bool:
        url = f"http://{target.host}:{target.port(self.container_port)}{self.path}"
        try:
            with urllib.request.urlopen(url, timeout=2.0) as response:
                status = int(response.status)
        except urllib.error.HTTPError as error:
            status = error.code
        if status not in self.statuses:
            self.last_error = f"HTTP {status}"
        return status in self.statuses


class _Call(ReadyCheck):
    def __init__(self, function: Callable[..., object], timeout: float | None) -> None:
        if not callable(function):
            raise SpecError(f"ready: {function!r} is not callable")
        self.function = function
        name = getattr(function, "__qualname__", repr(function))
        self.description = f"ready.call({name})"
        super().__init__(timeout)

    def probe(self, target: Target) -> bool:
        return bool(self.function(target))


def tcp(port: PortLike, *, timeout: float | None = None) -> ReadyCheck:
    """Ready when the container accepts TCP connections on ``port``."""
    return _Tcp(port, timeout)


def log(
    pattern: str | re.Pattern[str], *, times: int = 1, timeout: float | None = None
) -> ReadyCheck:
    """Ready when the container's log matches ``pattern`` (a regex, multiline) ``times`` times.

    ``times=2`` suits services that log their ready line twice, like Postgres's image
    (once for its initialisation server, once for the real one).
    """
    return _Log(pattern, times, timeout)


def healthy(*, timeout: float | None = None) -> ReadyCheck:
    """Ready when the engine reports the container's ``HEALTHCHECK`` as healthy.

    The check comes from the image or from ``create_options={"healthcheck": ...}``; a
    container without one is an error at set-up.
    """
    return _Healthy(timeout)


def cmd(argv: Sequence[str], *, timeout: float | None = None) -> ReadyCheck:
    """Ready when ``argv`` run inside the container exits with status 0."""
    return _Cmd(argv, timeout)


def http(
    port: PortLike,
    path: str = "/",
    *,
    status: int | Sequence[int] | range = range(200, 400),
    timeout: float | None = None,
) -> ReadyCheck:
    """Ready when ``GET path`` on the container's ``port`` answers with ``status``."""
    return _Http(port, path, status, timeout)


def call(function: Callable[..., object], *, timeout: float | None = None) -> ReadyCheck:
    """Ready when ``function(handle)`` returns a true value."""
    return _Call(function, timeout)


ReadyLike = ReadyCheck | Callable[..., object] | Sequence[ReadyCheck | Callable[..., object]]


def normalize(ready: object) -> tuple[ReadyCheck, ...]:
    """Turn the ``ready=`` argument into checks; raise :class:`SpecError` for anything else."""
    if ready is None:
        return ()
    items = list(ready) if isinstance(ready, (list, tuple)) else [ready]
    checks: list[ReadyCheck] = []
    for item in items:
        if isinstance(item, ReadyCheck):
            checks.append(item)
        elif callable(item):
            checks.append(_Call(item, None))
        else:
            raise SpecError(
                f"ready: {item!r} is not a readiness check; use ready.tcp(port), "
                "ready.log(regex), ready.cmd(argv), ready.http(port, path), ready.healthy(), "
                "a callable(handle) -> bool, or a list of these"
            )
    return tuple(checks)


def wait_until_ready(
    checks: Sequence[ReadyCheck],
    target: Target,
    *,
    default_timeout: float,
    exited: Callable[[], str | None],
    interval: float = 0.05,
    what: str = "container",
) -> None:
    """Poll every check in turn until it passes; each gets its own deadline.

    ``exited`` returns a description when the container stopped, which ends the wait at once.
    """
    for check in checks:
        timeout = check.timeout if check.timeout is not None else default_timeout
        deadline = time.monotonic() + timeout
        delay = interval
        while True:
            try:
                if check.probe(target):
                    break
            except Exception as error:
                check.last_error = f"{type(error).__name__}: {error}"
            stopped = exited()
            if stopped is not None:
                raise ReadinessTimeoutError(
                    f"{what}: {stopped} while waiting for {check.description}"
                    + _last_error(check)
                    + _log_tail(target)
                )
            if time.monotonic() >= deadline:
                raise ReadinessTimeoutError(
                    f"{what}: {check.description} did not pass within {timeout:g}s"
                    + _last_error(check)
                    + _log_tail(target)
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)


def _last_error(check: ReadyCheck) -> str:
    return f" (last attempt: {check.last_error})" if check.last_error else ""


def _log_tail(target: Target) -> str:
    try:
        lines = target.logs().splitlines()[-LOG_TAIL_LINES:]
    except Exception as error:
        return f"\n(container logs unavailable: {error})"
    if not lines:
        return "\n(the container logged nothing)"
    return f"\nlast {len(lines)} lines of the container log:\n" + "\n".join(
        f"  | {line}" for line in lines
    )
