"""pytest hooks: options, the ``criu_snapshot`` marker, resets before marked tests, reports.

Nothing here touches CRIU or the engine until a collected test uses a warm container: a
suite without one pays for the option table and nothing else.
"""

from __future__ import annotations

import signal
from collections.abc import Generator, Iterator
from types import FrameType
from typing import Any

import pytest

from . import options, reporting, xdist
from .advisories import NotResetWarning
from .engine.errors import CriuError
from .engine.paths import private_directory
from .fixtures import Declaration, declaration_of
from .runtime import RUNTIME_KEY, Runtime, runtime_of
from .version import __version__

MARKER = "criu_snapshot"
TARGETS_KEY = pytest.StashKey[tuple[str, ...]]()
"""The warm containers a marked test resets before it runs."""
DECLARATIONS_KEY = pytest.StashKey[dict[str, Declaration]]()
"""Every warm container a test uses, by fixture name."""
BLOCKED_KEY = pytest.StashKey[str]()
"""Why a marked test was skipped at collection (snapshots unavailable)."""
USED_KEY = pytest.StashKey[bool]()
"""Whether any collected test uses a warm container (only then is the host examined)."""
RESET_PROPERTY = "criu_reset_seconds"


def pytest_addoption(parser: pytest.Parser) -> None:
    options.register(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hooks

    pluginmanager.add_hookspecs(hooks)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*names): restore the named warm containers (default: every warm container "
        "the test uses) to their checkpoint before the test (pytest-criu)",
    )
    settings = options.resolve(config)
    summary = reporting.Summary(config)
    identity = xdist.worker_identity(config)
    runtime = Runtime(
        settings,
        summary.say,
        on_phase=summary.phase,
        rootdir=config.rootpath,
        session=identity[0] if identity else None,
        owner_pid=identity[1] if identity else None,
        worker=identity is not None,
    )
    config.stash[RUNTIME_KEY] = runtime
    summary.runtime = runtime
    config.pluginmanager.register(summary, "criu-summary")
    xdist.register(config, runtime, summary)
    _install_sigterm_handler(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    runtime = config.stash.get(RUNTIME_KEY, None)
    if runtime is not None:
        runtime.close_all()
    previous = config.stash.get(_SIGTERM_KEY, None)
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    runtime = session.config.stash.get(RUNTIME_KEY, None)
    if runtime is not None:
        # Restores made ahead that no test took, and those of containers closed meanwhile.
        runtime.records.deliver(session.config, None)


def pytest_sessionstart(session: pytest.Session) -> None:
    runtime = runtime_of(session.config)
    if runtime.settings.cache or runtime.settings.cache_clear:
        try:
            private_directory(runtime.stores.cache_directory())
        except CriuError as error:
            raise pytest.UsageError(f"pytest-criu cache: {error}") from None
    if runtime.settings.cache_clear and not runtime.worker:
        try:
            removed = runtime.stores.cache().clear()
        except CriuError as error:
            raise pytest.UsageError(f"--criu-cache-clear: {error}") from None
        runtime.say(f"cache cleared: {removed} entries removed")


@pytest.fixture(scope="session")
def _criu_runtime(pytestconfig: pytest.Config) -> Runtime:
    """The session's pytest-criu runtime; warm-container fixtures start through it."""
    return runtime_of(pytestconfig)


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    """The host line, shown (and the host examined) only when warm containers were collected."""
    if not config.stash.get(USED_KEY, False):
        return []
    from .engine.connect import ENGINES

    runtime = runtime_of(config)
    settings = runtime.settings
    report = runtime.host.report
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


def pytest_collection_finish(session: pytest.Session) -> None:
    """With ``--criu-keys-to``: write the warm containers' cache keys (nothing is started)."""
    runtime = session.config.stash.get(RUNTIME_KEY, None)
    if runtime is None or not runtime.settings.keys_to:
        return
    from .keys import write_keys

    declarations: dict[str, Declaration] = {}
    for item in session.items:
        used: dict[str, Declaration] = item.stash.get(DECLARATIONS_KEY, {})
        declarations.update(used)
    try:
        write_keys(runtime, declarations, runtime.settings.keys_to)
    except CriuError as error:
        raise pytest.UsageError(f"--criu-keys-to: {error}") from None


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    """With ``--criu-keys-to`` no test runs: the keys are all that was asked for."""
    runtime = session.config.stash.get(RUNTIME_KEY, None)
    if runtime is not None and runtime.settings.keys_to:
        return True
    return None


def _validate_marker(*names: str) -> tuple[str, ...]:
    """The signature of ``criu_snapshot``: warm-container fixture names, or none."""
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"expected warm-container fixture names (strings), got {name!r}")
    return names


def _marker_problem(marker: pytest.Mark) -> tuple[tuple[str, ...], str | None]:
    if marker.kwargs:
        given = ", ".join(f"{key}=" for key in marker.kwargs)
        return (), (
            f"takes no keyword arguments (got {given}); it accepts warm-container fixture "
            f"names as positional arguments: @pytest.mark.{MARKER}('redis', 'db'), or none "
            "for every warm container the test uses"
        )
    try:
        return _validate_marker(*marker.args), None
    except TypeError as error:
        return (), str(error)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # No tryfirst/trylast: after conftests' hooks (which may add markers), before -k and -m
    # deselect, so a module marker's names are checked against every test under it.
    problems: list[str] = []
    # A module- or class-level marker applies to the tests under it that use warm containers.
    broad_markers: dict[int, tuple[str, tuple[str, ...], set[str]]] = {}
    for item in items:
        declarations = _warm_fixtures(item)
        item.stash[DECLARATIONS_KEY] = declarations
        if declarations:
            config.stash[USED_KEY] = True
        marker = item.get_closest_marker(MARKER)
        if marker is None:
            continue
        names, problem = _marker_problem(marker)
        if problem is not None:
            problems.append(f"{item.nodeid}: @pytest.mark.{MARKER}: {problem}")
            continue
        warm = tuple(declarations)
        if not any(own is marker for own in item.own_markers):
            owner = next(
                (
                    node.nodeid
                    for node in item.listchain()
                    if any(own is marker for own in node.own_markers)
                ),
                item.nodeid,
            )
            _, _, used = broad_markers.setdefault(id(marker), (owner, names, set()))
            targets = tuple(name for name in names if name in warm) if names else warm
            used.update(targets)
            if targets:
                item.stash[TARGETS_KEY] = targets
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
    for owner, names, used in broad_markers.values():
        unused = [name for name in names if name not in used]
        if unused:
            problems.append(
                f"{owner}: @pytest.mark.{MARKER} names {', '.join(map(repr, unused))}, which "
                "no test under it uses as a warm container; fix the name or remove it"
            )
    if problems:
        raise pytest.UsageError("pytest-criu: invalid markers:\n  " + "\n  ".join(problems))
    _skip_blocked(config, items)


def _skip_blocked(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests that need snapshots this host cannot make (``--criu-fallback=skip``)."""
    marked = [item for item in items if TARGETS_KEY in item.stash]
    if not marked:
        return
    runtime = runtime_of(config)
    if runtime.settings.fallback != "skip":
        return
    for item in marked:
        blocker = _blocker(runtime, item)
        if blocker is not None:
            item.stash[BLOCKED_KEY] = blocker
            item.add_marker(
                pytest.mark.skip(reason=f"pytest-criu: snapshots unavailable: {blocker}")
            )


def _blocker(runtime: Runtime, item: pytest.Item) -> str | None:
    declarations = item.stash.get(DECLARATIONS_KEY, {})
    return next(
        (
            reason
            for name in item.stash[TARGETS_KEY]
            if (reason := runtime.host.blocker_for(runtime.effective(declarations[name])))
            is not None
        ),
        None,
    )


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
    if runtime.settings.fallback != "fail":
        return
    blocker = _blocker(runtime, item)
    if blocker is not None:
        pytest.fail(f"pytest-criu: snapshots unavailable: {blocker}", pytrace=False)


@pytest.fixture(autouse=True)
def _criu_reset(request: pytest.FixtureRequest) -> Iterator[None]:
    """Reset the warm containers a marked test targets; note use of the others."""
    item = request.node
    warm = item.stash.get(DECLARATIONS_KEY, {})
    if not warm:
        yield
        return
    targets = item.stash.get(TARGETS_KEY, ())
    runtime = runtime_of(request.config)
    for name in warm:
        request.getfixturevalue(name)
        controller = runtime.controllers[name]
        if controller.not_reset and runtime.advise(name):
            # Reported at the first test that uses the container (-W error makes it fail).
            item.warn(
                NotResetWarning(
                    f"pytest-criu: {name}: NOT reset by restores: bind mount "
                    f"{', '.join(controller.not_reset)}; tests see each other's writes there"
                )
            )
        if name in targets and not getattr(request.config.option, "setuponly", False):
            # (--setup-only prepares the warm containers; nothing runs that a reset would undo)
            if controller.unavailable is not None and runtime.settings.fallback == "skip":
                item.stash[BLOCKED_KEY] = controller.unavailable
                pytest.skip(f"pytest-criu: snapshots unavailable: {controller.unavailable}")
            try:
                wait = controller.reset()
            except CriuError as error:
                pytest.fail(f"pytest-criu: {name}: reset failed: {error}", pytrace=False)
            runtime.timings.append((item.nodeid, name, wait))
            item.user_properties.append((f"{RESET_PROPERTY}[{name}]", f"{wait:.6f}"))
            runtime.records.deliver(item.config, item)
        else:
            controller.touch()
    yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, Any]:
    report: pytest.TestReport = yield
    runtime = item.config.stash.get(RUNTIME_KEY, None)
    if runtime is None:
        return report
    if call.when == "setup" and report.skipped and BLOCKED_KEY in item.stash:
        runtime.skipped += 1
    targets = item.stash.get(TARGETS_KEY, ())
    if not targets or call.when != "call" or report.skipped:
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
