"""Staged restores: the next restore's container created, with its network holder and its
checkpoint in place, while the current test runs (engines that restore in two steps)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from .ahead import MadeAhead
from .base import Lap, RestoreRequest
from .creation import ContainerFactory
from .errors import EngineError

STAGE_TIMEOUT = 60.0


@dataclass(frozen=True)
class Staged:
    """A created container a checkpoint can be restored into."""

    container: str
    holder: str | None
    request: RestoreRequest


class RestoreStaging:
    """Stages one restore ahead: :meth:`take` hands it over (or stages one now).

    The next one is staged only when :meth:`refill` says so (after a restore finished), so
    that staging never competes with the restore a test waits for.
    """

    def __init__(
        self,
        factory: ContainerFactory,
        checkpoint: Path,
        image: str,
        *,
        checkpoint_name: str,
    ) -> None:
        self._factory = factory
        self._checkpoint = checkpoint
        self._image = image
        self._checkpoint_name = checkpoint_name
        self._ahead: MadeAhead[Staged] = MadeAhead(
            lambda: self.stage(lambda phase: None),
            thread=f"criu-stage-{factory.name}",
            timeout=STAGE_TIMEOUT,
            discard=self.discard,
            usable=self._usable,
        )

    def take(self, lap: Lap) -> Staged:
        """The container staged ahead (``lap("staged")`` books the wait), or one staged now
        (booking its phases)."""
        staged = self._ahead.take()
        if staged is None:
            return self.stage(lap)
        lap("staged")
        return staged

    def stage(self, lap: Lap) -> Staged:
        """Create a container (joined to a holder of its own) with the checkpoint in place;
        on failure nothing made for it is left (raises :class:`EngineError` naming the warm
        container)."""
        factory = self._factory
        # The next holder is made after this container: what the next reset waits for first.
        attempt = factory.restore_attempt(
            self._image, self._checkpoint, self._checkpoint_name, lap=lap, holder_ahead=False
        )
        try:
            container = factory.engine.stage_restore(attempt.request)
        except BaseException as error:
            factory.abandon(attempt)
            if isinstance(error, EngineError):
                raise type(error)(f"{factory.name}: {error}") from None
            raise
        finally:
            factory.holders.refill()
        return Staged(container, attempt.holder, attempt.request)

    def refill(self) -> None:
        """Start staging the next restore unless one is staged or on its way."""
        self._ahead.start()

    def discard(self, staged: Staged) -> None:
        """Remove a staged container (and its holder) in the background."""
        self._factory.tracker.discard(staged.container)

    def idle(self, timeout: float) -> bool:
        """Wait until the restore being staged (if any) is staged; ``False`` on timeout."""
        return self._ahead.idle(timeout)

    def close(self) -> None:
        """Stop staging; the staged container is removed."""
        self._ahead.close()

    def _usable(self, staged: Staged) -> bool:
        # A daemon restart meanwhile stops holders (a staged container stays created).
        return staged.holder is None or self._factory.running(staged.holder)


def with_lap(request: RestoreRequest, lap: Lap) -> RestoreRequest:
    """``request`` booking its remaining phases with ``lap`` (a staged request's own lap
    belongs to the thread that staged it)."""
    return replace(request, lap=lap)
