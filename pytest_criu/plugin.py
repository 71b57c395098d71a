"""pytest hooks: options, the ``criu_snapshot`` marker, resets before marked tests, reports."""

from __future__ import annotations

import signal
from collections.abc import Generator, Iterator
from types import FrameType
from typing import Any

import pytest

from . import __version__, options, reporting
from .engine.connect import ENGINES
from .engine.errors import CriuError
from .engine.paths import private_directory
from .fixtures import Declaration, declaration_of
from .runtime import RUNTIME_KEY, Runtime, runtime_of
from .xdist import XdistHooks, worker_identity

MARKER = "criu_snapshot"
TARGETS_KEY = pytest.StashKey[tuple[str, ...]]()
WARM_KEY = pytest.StashKey[tuple[str, ...]]()
DECLARATIONS_KEY = pytest.StashKey[dict[str, Declaration]]()
RESET_KEY = pytest.StashKey[dict[str, float]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    options.register(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*names): restore the named warm containers (default: every warm container "
        "the test uses) to their checkpoint before the test (pytest-criu)",
    )
    settings = options.resolve(config)
    summary = reporting.Summary(config)
    identity = worker_identity(config)
    runtime = Runtime(
        settings,
        summary.say,
        rootdir=config.rootpath,
        session=identity[0] if identity else None,
        owner_pid=identity[1] if identity else None,
        worker=identity is not None,
    )
    config.stash[RUNTIME_KEY] = runtime
    summary.runtime = runtime
    config.pluginmanager.register(summary, "criu-summary")
    if identity is None and config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(config), "criu-xdist")
    _install_sigterm_handler(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    runtime = config.stash.get(RUNTIME_KEY, None)
    if runtime is not None:
        runtime.close_all()
    previous = config.stash.get(_SIGTERM_KEY, None)
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def pytest_sessionstart(session: pytest.Session) -> None:
    runtime = runtime_of(session.config)
    if runtime.settings.cache or runtime.settings.cache_clear:
        try:
            private_directory(runtime.cache_directory())
        except CriuError as error:
            raise pytest.UsageError(f"pytest-criu cache: {error}") from None
    if runtime.settings.cache_clear and not runtime.worker:
        try:
            removed = runtime.cache().clear()
        except CriuError as error:
            raise pytest.UsageError(f"--criu-cache-clear: {error}") from None
        runtime.say(f"cache cleared: {removed} entries removed")


def pytest_report_header(config: pytest.Config) -> list[str]:
    runtime = runtime_of(config)
    settings = runtime.settings
    report = runtime.host_report
    versions = (
        f"CRIU {report.criu_version or 'not found'}, "
        f"{ENGINES[report.engine].title} {report.engine_version or 'unreachable'}"
        + (f" (API {report.docker_api_version})" if report.docker_api_version else "")
    )
    lines = [
        f"pytest-criu {__version__}: {versions}; strategy {settings.strategy}, "
        f"fallback {settings.fallback}" + (", restore-ahead" if settings.restore_ahead else "")
    ]
    blocker = report.snapshot_blocker()
    if blocker:
        lines.append(f"pytest-criu: snapshots unavailable: {blocker}")
    return lines


def _validate_marker(*names: str) -> tuple[str, ...]:
    """The signature of ``criu_snapshot``: warm-container fixture names, or none."""
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"expected warm-container fixture names (strings), got {name!r}")
    return names


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    problems: list[str] = []
    for item in items:
        declarations = _warm_fixtures(item)
        warm = tuple(declarations)
        item.stash[WARM_KEY] = warm
        item.stash[DECLARATIONS_KEY] = declarations
        marker = item.get_closest_marker(MARKER)
        if marker is None:
            continue
        try:
            names = _validate_marker(*marker.args, **marker.kwargs)
        except TypeError as error:
            problems.append(f"{item.nodeid}: @pytest.mark.{MARKER}: {error}")
            continue
        unknown = [name for name in names if name not in warm]
        if unknown:
            known = ", ".join(warm) or "none"
            problems.append(
                f"{item.nodeid}: @pytest.mark.{MARKER} names {', '.join(map(repr, unknown))}, "
                f"which the test does not use as a warm container (warm containers it uses: "
                f"{known}); add the fixture as an argument or fix the name"
            )
            continue
        if not warm:
            problems.append(
                f"{item.nodeid}: @pytest.mark.{MARKER} on a test that uses no warm container; "
                "request a fixture declared with warm_container(...) or remove the marker"
            )
            continue
        item.stash[TARGETS_KEY] = names or warm
    if problems:
        raise pytest.UsageError("pytest-criu: invalid markers:\n  " + "\n  ".join(problems))


def _warm_fixtures(item: pytest.Item) -> dict[str, Declaration]:
    # pytest has no public API for "which fixture function provides this name for this item".
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return {}
    warm: dict[str, Declaration] = {}
    for name in item.fixturenames:  # type: ignore[attr-defined]
        definitions = info.name2fixturedefs.get(name)
        declaration = declaration_of(definitions[-1].func) if definitions else None
        if declaration is not None:
            warm[name] = declaration
    return warm


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if TARGETS_KEY not in item.stash:
        return
    runtime = runtime_of(item.config)
    declarations = item.stash.get(DECLARATIONS_KEY, {})
    blocker = next(
        (
            reason
            for name in item.stash[TARGETS_KEY]
            if (reason := runtime.blocker_for(declarations[name])) is not None
        ),
        None,
    )
    if blocker is None or runtime.settings.fallback == "recreate":
        return
    if runtime.settings.fallback == "fail":
        pytest.fail(f"pytest-criu: snapshots unavailable: {blocker}", pytrace=False)
    runtime.skipped += 1
    # Report the skip at the test, not in this file, as pytest does for skip markers.
    raise pytest.skip.Exception(
        f"pytest-criu: snapshots unavailable: {blocker}", _use_item_location=True
    )


@pytest.fixture(autouse=True)
def _criu_reset(request: pytest.FixtureRequest) -> Iterator[None]:
    """Reset the warm containers a marked test targets; note use of the others."""
    item = request.node
    warm = item.stash.get(WARM_KEY, ())
    if not warm:
        yield
        return
    targets = item.stash.get(TARGETS_KEY, ())
    runtime = runtime_of(request.config)
    waits: dict[str, float] = {}
    for name in warm:
        request.getfixturevalue(name)
        controller = runtime.controllers[name]
        if name in targets:
            try:
                waits[name] = controller.reset()
            except CriuError as error:
                pytest.fail(f"pytest-criu: {name}: reset failed: {error}", pytrace=False)
        else:
            controller.touch()
    item.stash[RESET_KEY] = waits
    for name, wait in waits.items():
        runtime.timings.append((item.nodeid, name, wait))
    yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, Any]:
    report: pytest.TestReport = yield
    targets = item.stash.get(TARGETS_KEY, ())
    runtime = item.config.stash.get(RUNTIME_KEY, None)
    if not targets or runtime is None or call.when != "call" or report.skipped:
        return report
    for name in targets:
        controller = runtime.controllers.get(name)
        if controller is None or not controller.running:
            continue
        try:
            ended = controller.container_state()
        except CriuError as error:
            ended = f"its state is unknown ({error})"
        if ended is not None and report.passed:
            report.outcome = "failed"
            report.longrepr = (
                f"pytest-criu: {name}: the container stopped during the test: {ended}; "
                "the next marked test gets a fresh restore"
            )
        if report.failed:
            section = reporting.failure_section(controller, keep=runtime.settings.keep_on_failure)
            report.sections.append((f"pytest-criu: {name} container", section))
    return report


_SIGTERM_KEY = pytest.StashKey[Any]()


def _install_sigterm_handler(config: pytest.Config) -> None:
    """Turn SIGTERM into KeyboardInterrupt so fixtures' clean-up runs."""
    try:
        current = signal.getsignal(signal.SIGTERM)
    except ValueError:
        return
    if current is not signal.SIG_DFL:
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        return
    config.stash[_SIGTERM_KEY] = current
