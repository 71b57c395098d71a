"""The session's pytest-criu state: settings, the engine connection, host facts, controllers."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest

from .engine import labels
from .engine.docker import DockerEngine
from .engine.errors import CriuError, EngineError
from .engine.host import HostReport, detect_host
from .engine.snapshot import Options, WarmContainer
from .fixtures import Declaration
from .options import Settings

RUNTIME_KEY = pytest.StashKey["Runtime"]()


class Runtime:
    """One per pytest process; created in ``pytest_configure``."""

    def __init__(
        self, settings: Settings, say: Callable[[str], None], session: str | None = None
    ) -> None:
        self.settings = settings
        self.say = say
        self.owner = labels.Owner.current(session)
        self.controllers: dict[str, WarmContainer] = {}
        self.closed: list[WarmContainer] = []
        self._engine: DockerEngine | None = None
        self._report: HostReport | None = None
        self._reaped = False
        self.skipped = 0
        self.timings: list[tuple[str, str, float]] = []

    # -- lazily computed facts ----------------------------------------------------------

    @property
    def host_report(self) -> HostReport:
        if self._report is None:
            self._report = detect_host(
                criu_binary=self.settings.criu_binary, docker_url=self.settings.docker_url
            )
        return self._report

    @property
    def snapshot_blocker(self) -> str | None:
        return self.host_report.snapshot_blocker()

    @property
    def engine(self) -> DockerEngine:
        if self._engine is None:
            self._engine = DockerEngine(
                self.settings.docker_url, timeout=self.settings.restore_timeout
            )
            if not self._reaped:
                self._reaped = True
                containers, images = labels.reap_orphans(self._engine, [self.owner.session])
                if containers or images:
                    self.say(
                        f"removed {containers} containers and {images} images left by "
                        "crashed pytest-criu runs"
                    )
        return self._engine

    # -- warm containers ----------------------------------------------------------------

    def start(self, name: str, declaration: Declaration) -> WarmContainer:
        """Start, prepare and (when the host allows) checkpoint a warm container."""
        options = Options(
            strategy=declaration.strategy or self.settings.strategy,
            ready_timeout=declaration.ready_timeout or self.settings.ready_timeout,
            restore_timeout=self.settings.restore_timeout,
            pull=declaration.pull,
            volume_policy=declaration.volume_policy,
            restore_ahead=self.settings.restore_ahead,
        )
        controller = WarmContainer(
            name=name,
            spec=declaration.spec,
            ready=declaration.ready,
            prepare=declaration.prepare,
            engine=self.engine,
            owner=self.owner,
            options=options,
            say=self.say,
        )
        self.controllers[name] = controller
        try:
            controller.start()
            if self.snapshot_blocker is None:
                controller.take_snapshot()
            elif self.settings.fallback == "recreate":
                controller.use_recreate()
        except BaseException as error:
            controller.stats.failure = (
                f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            )
            self.close(controller)
            raise
        return controller

    def close(self, controller: WarmContainer) -> None:
        if self.controllers.get(controller.name) is controller:
            del self.controllers[controller.name]
        controller.close()
        self.closed.append(controller)

    def close_all(self) -> None:
        """Remove whatever this session still holds, also after Ctrl-C."""
        for controller in list(self.controllers.values()):
            with contextlib.suppress(Exception):
                self.close(controller)
        if self._engine is not None:
            with contextlib.suppress(CriuError, EngineError, Exception):
                kept = {cid for c in self.closed for cid in c.kept}
                labels.remove_session(self._engine, self.owner.session, keep=kept)
            self._engine.close()
            self._engine = None


def runtime_of(config: pytest.Config) -> Runtime:
    try:
        return config.stash[RUNTIME_KEY]
    except KeyError:
        raise pytest.UsageError(
            "pytest-criu is not active: warm_container fixtures need the plugin "
            "(it was disabled with -p no:criu?)"
        ) from None
