"""``warm_container``: declare a session fixture whose container is reset before marked tests.

This module holds the declaration as plain data; the session's :class:`~.runtime.Runtime`
that starts it comes in through the plugin's ``_criu_runtime`` fixture, so the two modules
do not import each other.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal, Protocol

import pytest

from .engine import ready as ready_checks
from .engine.errors import CriuError, SpecError
from .engine.ready import ReadyCheck
from .engine.spec import STRATEGIES, ContainerSpec, PortLike, Strategy, UsernsMode, build_spec

if TYPE_CHECKING:
    from .engine.handle import ContainerHandle
    from .engine.snapshot import WarmContainer

__all__ = ["RUNTIME_FIXTURE", "Declaration", "declaration_of", "warm_container"]

DECLARATION_ATTRIBUTE = "__pytest_criu_declaration__"
RUNTIME_FIXTURE = "_criu_runtime"
"""The plugin's session fixture that hands warm-container fixtures the session's runtime."""


@dataclass(frozen=True)
class Declaration:
    """A warm container as declared in a conftest: validated, not yet started."""

    spec: ContainerSpec
    ready: tuple[ReadyCheck, ...]
    prepare: Callable[[ContainerHandle], object] | None
    strategy: Strategy | None
    ready_timeout: float | None
    pull: bool
    volume_policy: Literal["tmpfs", "refuse"]
    cache_inputs: tuple[Path, ...] = ()


class Starter(Protocol):
    """What a warm-container fixture needs from the session (the plugin's runtime)."""

    def start(self, name: str, declaration: Declaration) -> WarmContainer: ...

    def close(self, controller: WarmContainer) -> None: ...


def warm_container(
    image: str,
    *,
    command: Sequence[str] | None = None,
    entrypoint: Sequence[str] | None = None,
    environment: Mapping[str, str] | None = None,
    ports: Sequence[PortLike] | None = None,
    tmpfs: Mapping[str, str] | Sequence[str] | None = None,
    volumes: Mapping[str, str] | None = None,
    working_dir: str | None = None,
    user: str | None = None,
    network_mode: str | None = None,
    userns: UsernsMode | None = None,
    labels: Mapping[str, str] | None = None,
    create_options: Mapping[str, Any] | None = None,
    ready: Any = None,
    prepare: Callable[[ContainerHandle], object] | None = None,
    strategy: Strategy | None = None,
    ready_timeout: float | None = None,
    pull: bool = True,
    volume_policy: Literal["tmpfs", "refuse"] = "tmpfs",
    cache_inputs: Sequence[str | Path] = (),
    doc: str | None = None,
) -> Any:
    """Declare a warm container; assign the result to a name to get a session fixture.

    ``redis = warm_container(image="redis:7", ports=[6379], ready=ready.tcp(6379))`` makes a
    session fixture ``redis`` whose value is a :class:`ContainerHandle`. The container is
    started once, made ready, ``prepare(handle)`` runs, and the result is checkpointed; every
    test marked ``criu_snapshot`` then starts from that checkpoint. Invalid arguments raise
    :class:`SpecError` when the conftest is imported.

    With ``--criu-cache``, snapshots are kept across runs; the cache key covers the image,
    this declaration, the source of ``prepare`` and what it calls, and the files or
    directories in ``cache_inputs`` (e.g. a migrations directory ``prepare`` reads).

    ``doc`` is the fixture's description in ``pytest --fixtures``; without it the
    description names the image, the ports and the first line of ``prepare``'s docstring.

    ``userns="auto"`` gives the container a user namespace of its own (Podman makes one per
    container; on Docker only a daemon with ``userns-remap`` does, and Docker cannot restore
    such a container). Services that switch to their own user (Postgres, official Redis and
    MariaDB images) need it where root lacks CAP_SYS_RESOURCE; ``"host"`` keeps the host's.
    Left out, ``--criu-userns`` decides, else the engine's default.

    ``create_options`` passes other container settings to the engine, e.g.
    ``{"shm_size": "256m", "hostname": "db"}``; unknown keys, and keys pytest-criu owns or
    that would break checkpoints, are refused with what to use instead.
    """
    spec = build_spec(
        image=image,
        command=command,
        entrypoint=entrypoint,
        environment=environment,
        ports=ports,
        tmpfs=tmpfs,
        volumes=volumes,
        working_dir=working_dir,
        user=user,
        network_mode=network_mode,
        userns=userns,
        labels=labels,
        create_options=create_options,
    )
    if prepare is not None and not callable(prepare):
        raise SpecError(
            f"prepare: expected a callable taking the container handle, got {prepare!r}"
        )
    if prepare is not None:
        _check_arity(prepare)
    if strategy is not None and strategy not in STRATEGIES:
        raise SpecError(f"strategy: {strategy!r} is not one of {', '.join(STRATEGIES)}")
    if ready_timeout is not None and (isinstance(ready_timeout, bool) or not ready_timeout > 0):
        raise SpecError(
            f"ready_timeout: expected a positive number of seconds, got {ready_timeout!r}"
        )
    if volume_policy not in ("tmpfs", "refuse"):
        raise SpecError(f"volume_policy: {volume_policy!r} is not 'tmpfs' or 'refuse'")
    if doc is not None and not isinstance(doc, str):
        raise SpecError(f"doc: expected the fixture's description as a string, got {doc!r}")
    caller = _caller()
    caller_file = caller.f_globals.get("__file__") if caller else None
    base = Path(caller_file).parent if isinstance(caller_file, str) else Path.cwd()
    declaration = Declaration(
        spec=spec,
        ready=ready_checks.normalize(ready),
        prepare=prepare,
        strategy=strategy,
        ready_timeout=ready_timeout,
        pull=pull,
        volume_policy=volume_policy,
        cache_inputs=_paths(cache_inputs, base),
    )

    def warm_container_fixture(request: pytest.FixtureRequest) -> Iterator[ContainerHandle]:
        yield from _serve(request, declaration)

    setattr(warm_container_fixture, DECLARATION_ATTRIBUTE, declaration)
    warm_container_fixture.__doc__ = doc or _describe(declaration)
    if caller is not None and isinstance(caller_file, str):
        # pytest --fixtures shows where a fixture's code lives: point it at the declaration.
        warm_container_fixture.__code__ = warm_container_fixture.__code__.replace(
            co_filename=caller_file, co_firstlineno=caller.f_lineno
        )
        warm_container_fixture.__module__ = str(caller.f_globals.get("__name__", ""))
    return pytest.fixture(scope="session")(warm_container_fixture)


def _serve(request: pytest.FixtureRequest, declaration: Declaration) -> Iterator[ContainerHandle]:
    name = request.fixturename or "warm_container"
    starter: Starter | None = None
    with contextlib.suppress(pytest.FixtureLookupError):
        starter = request.getfixturevalue(RUNTIME_FIXTURE)
    if starter is None:
        pytest.fail(
            f"pytest-criu: {name}: the pytest-criu plugin is not active (disabled with "
            "-p no:criu?); warm_container fixtures need it: drop -p no:criu",
            pytrace=False,
        )
    failure = None
    try:
        controller = starter.start(name, declaration)
    except CriuError as error:
        text = str(error)
        failure = text if text.startswith(f"{name}: ") else f"{name}: {text}"
    if failure is not None:
        pytest.fail(f"pytest-criu: {failure}", pytrace=False)
    try:
        yield controller.handle
    finally:
        starter.close(controller)


def declaration_of(function: object) -> Declaration | None:
    """The declaration behind a fixture function, or ``None`` for other fixtures."""
    declaration = getattr(function, DECLARATION_ATTRIBUTE, None)
    return declaration if isinstance(declaration, Declaration) else None


def _describe(declaration: Declaration) -> str:
    spec = declaration.spec
    parts = [f"Warm container from {spec.image}"]
    if spec.ports:
        parts.append(f"ports {', '.join(str(port) for port in spec.ports)}")
    prepared = inspect.getdoc(declaration.prepare) if declaration.prepare else None
    if prepared:
        parts.append(f"prepared: {prepared.splitlines()[0].rstrip('.')}")
    elif declaration.prepare is not None:
        parts.append(f"prepared by {getattr(declaration.prepare, '__qualname__', 'prepare')}()")
    return (
        "; ".join(parts)
        + ". Value: a ContainerHandle; reset before tests marked criu_snapshot (pytest-criu)."
    )


def _caller() -> FrameType | None:
    """The frame of the conftest that called :func:`warm_container`."""
    frame = inspect.currentframe()
    return frame.f_back.f_back if frame and frame.f_back else None


def _paths(values: object, base: Path) -> tuple[Path, ...]:
    if isinstance(values, (str, Path)):
        values = [values]
    if not isinstance(values, (list, tuple)) or not all(
        isinstance(value, (str, Path)) for value in values
    ):
        raise SpecError(f"cache_inputs: expected a list of file or directory paths, got {values!r}")
    return tuple((base / value).absolute() for value in values)


def _check_arity(prepare: Callable[..., object]) -> None:
    try:
        signature = inspect.signature(prepare)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(object())
    except TypeError:
        raise SpecError(
            f"prepare: {getattr(prepare, '__qualname__', prepare)!r} must accept one argument, "
            f"the container handle; its signature is {signature}"
        ) from None
