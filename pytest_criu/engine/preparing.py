"""Starting a warm container's container from an image: readiness, then ``prepare``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

from .creation import ContainerFactory
from .errors import EngineError, PrepareError, ReadinessTimeoutError, SpecError
from .handle import ContainerHandle, CurrentContainer
from .ready import ReadyCheck, wait_until_ready

Say = Callable[[str], None]
PhaseReport = Callable[[str, str, "float | None"], None]
"""Called with the warm container's name and a phase: ``None`` when it begins, then its seconds."""
VolumePolicy = Literal["tmpfs", "refuse"]


class Preparer:
    """Starts containers that are ready and prepared, and tells how they ended."""

    def __init__(
        self,
        *,
        factory: ContainerFactory,
        ready: Sequence[ReadyCheck],
        prepare: Callable[[ContainerHandle], object] | None,
        ready_timeout: float,
        volume_policy: VolumePolicy,
        say: Say,
        on_phase: PhaseReport | None,
    ) -> None:
        self.factory = factory
        self.ready = tuple(ready)
        self.prepare = prepare
        self.ready_timeout = ready_timeout
        self.volume_policy = volume_policy
        self.say = say
        self.on_phase = on_phase

    @property
    def name(self) -> str:
        return self.factory.name

    def check_image(self, image: Mapping[str, Any]) -> None:
        """Refuse ready checks the image cannot serve; cover its declared volumes with tmpfs."""
        spec = self.factory.spec
        for check in self.ready:
            problem = check.unusable_with(image.get("Config") or {}, spec)
            if problem is not None:
                raise SpecError(f"{self.name}: {problem}")
        declared = sorted(((image.get("Config") or {}).get("Volumes") or {}).keys())
        mounted = set(self.factory.tmpfs) | {t.partition(":")[0] for t in spec.volumes.values()}
        uncovered = [path for path in declared if path not in mounted]
        if not uncovered:
            return
        if self.volume_policy == "refuse":
            raise SpecError(
                f"{self.name}: image {spec.image} declares VOLUME {', '.join(uncovered)}; "
                "data there would survive restores in an anonymous volume. Mount tmpfs over "
                "them (tmpfs={...}) or use volume_policy='tmpfs'"
            )
        for path in uncovered:
            self.factory.tmpfs[path] = ""
        self.say(
            f"{self.name}: VOLUME {', '.join(uncovered)} mounted as tmpfs so restores reset it"
        )

    def start(
        self,
        image: str,
        role: str,
        handle: ContainerHandle,
        became: Callable[[CurrentContainer], None],
    ) -> CurrentContainer:
        """Create and start a container, ``became`` it current, wait until ready, prepare it."""
        with self.phase("starting container"):
            container_id = self.factory.create(image, role)
            self.factory.engine.start(container_id)
            container = self.factory.current(container_id)
        became(container)
        if self.ready:
            with self.phase("waiting for readiness"):
                self._wait_ready(container_id, handle)
        if self.prepare is not None:
            with self.phase("prepare"):
                try:
                    self.prepare(handle)
                except Exception as error:
                    raise PrepareError(
                        self.factory.spec.redact(
                            f"{self.name}: prepare raised {type(error).__name__}: {error}"
                            + self.log_tail(container_id)
                        )
                    ) from error
        return container

    def exited(self, container_id: str) -> Callable[[], str | None]:
        """A check: ``None`` while the container runs, else how it ended."""

        def check() -> str | None:
            state = self.factory.engine.inspect(container_id).get("State") or {}
            if state.get("Running"):
                return None
            return f"the container exited with code {state.get('ExitCode')}"

        return check

    def log_tail(self, container_id: str) -> str:
        """The container's last log lines, as an indented block to append to a message."""
        try:
            lines = self.factory.engine.logs(container_id, tail=30).splitlines()
        except EngineError:
            return ""
        if not lines:
            return ""
        return "\nlast lines of the container log:\n" + "\n".join(f"  | {line}" for line in lines)

    @contextlib.contextmanager
    def phase(self, what: str) -> Iterator[None]:
        """Report a set-up phase (its start, then its seconds) to ``on_phase``."""
        if self.on_phase is None:
            yield
            return
        began = time.monotonic()
        self.on_phase(self.name, what, None)
        yield
        self.on_phase(self.name, what, time.monotonic() - began)

    def _wait_ready(self, container_id: str, handle: ContainerHandle) -> None:
        try:
            wait_until_ready(
                self.ready,
                handle,
                default_timeout=self.ready_timeout,
                exited=self.exited(container_id),
                what=self.name,
            )
        except ReadinessTimeoutError as error:
            raise ReadinessTimeoutError(self.factory.spec.redact(str(error))) from None
