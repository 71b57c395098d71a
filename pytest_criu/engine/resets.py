"""How a warm container is reset before a marked test: one strategy per mode.

- :class:`FreshReset`: the checkpoint restored into a new container created from the image
  committed at checkpoint time (memory, tmpfs and files as prepared), optionally restored
  ahead while the previous test runs;
- :class:`InPlaceReset`: the checkpoint restored into the same container again (its writable
  layer is NOT reset);
- :class:`RecreateReset` (the fallback without CRIU): a new container from the base image,
  readiness and ``prepare`` again.
"""

from __future__ import annotations

from collections.abc import Callable

from . import procfs
from .ahead import MadeAhead
from .depth import ahead_depth
from .errors import DamagedCheckpointError, EngineError
from .handle import CurrentContainer
from .holders import NetworkPath
from .restorer import Restorer

RestoredAhead = MadeAhead[CurrentContainer]
"""The next fresh container, restored while the current test runs."""


class ResetStrategy:
    """Gives the next test its container."""

    mode: str
    """How the summary names it."""
    replaces = True
    """Whether the previous container is replaced (and then removed)."""
    holds_checkpoint = False
    """Whether the current container holds the checkpoint (so it cannot be kept)."""

    def next(self, previous: CurrentContainer | None) -> CurrentContainer:
        """The next test's container; ``previous`` is ``None`` when :attr:`replaces`."""
        raise NotImplementedError

    def after_reset(self) -> None:
        """Called once the test has its container."""

    @property
    def ahead_state(self) -> tuple[bool, bool]:
        """(a restore made ahead exists, it has finished)."""
        return False, False

    @property
    def ahead_depth(self) -> int | None:
        """Restores made ahead at once, or ``None`` without restore-ahead."""
        return None

    def settle(self, timeout: float) -> None:
        """Wait for background work of the strategy's own."""

    def close(self) -> None:
        """Stop background work."""


class FreshReset(ResetStrategy):
    mode = "snapshot/fresh"

    def __init__(self, restorer: Restorer, ahead: RestoredAhead | None = None) -> None:
        self.restorer = restorer
        self.ahead = ahead

    @property
    def ahead_depth(self) -> int | None:
        return self.ahead.depth if self.ahead is not None else None

    def next(self, previous: CurrentContainer | None) -> CurrentContainer:
        taken = self.ahead.take() if self.ahead is not None else None
        return taken or self.restorer.restore_new()

    def after_reset(self) -> None:
        if self.ahead is not None:
            self.ahead.start()

    @property
    def ahead_state(self) -> tuple[bool, bool]:
        if self.ahead is None:
            return False, False
        return self.ahead.pending, self.ahead.ready

    def settle(self, timeout: float) -> None:
        if self.ahead is not None and not self.ahead.idle(timeout):
            raise EngineError(
                f"{self.restorer.name}: the restore ahead did not finish within {timeout:g}s"
            )

    def close(self) -> None:
        if self.ahead is not None:
            self.ahead.close()


class InPlaceReset(ResetStrategy):
    mode = "snapshot/inplace"
    replaces = False
    holds_checkpoint = True

    def __init__(self, restorer: Restorer) -> None:
        self.restorer = restorer

    def next(self, previous: CurrentContainer | None) -> CurrentContainer:
        if previous is None:  # the last reset failed: start over in a new container
            return self.restorer.restore_new(keep=True)
        return self.restorer.restore_in_place(previous.id)


class RecreateReset(ResetStrategy):
    mode = "recreate (no CRIU)"

    def __init__(self, start: Callable[[], CurrentContainer]) -> None:
        self.start = start

    def next(self, previous: CurrentContainer | None) -> CurrentContainer:
        return self.start()


def snapshot_strategy(
    restorer: Restorer,
    *,
    inplace: bool,
    ahead: bool,
    depth: int | None,
    network: NetworkPath,
    timeout: float,
    say: Callable[[str], None],
) -> ResetStrategy:
    """The strategy restoring ``restorer``'s snapshot; with ``ahead``, ``depth`` restores
    ahead at once (``None``: as many as the machine affords), unless every container on the
    ``network`` path listens in the same namespace."""
    if inplace:
        return InPlaceReset(restorer)
    one_namespace = {"host": "host networking", "stable": "a stable address"}.get(network)
    if ahead and one_namespace:
        # The next container would bind the same ports and take new connections.
        say(
            f"{restorer.name}: restore-ahead is off: with {one_namespace} the container "
            "restored ahead would take over the current one's ports"
        )
    elif ahead:
        name = restorer.name
        chosen = ahead_depth(
            depth,
            cores=procfs.cpu_cores(),
            available=procfs.available_memory(),
            checkpoint_bytes=sum(restorer.snapshot.files.values()) or None,
        )

        def failed(error: BaseException) -> None:
            say(f"{name}: restore-ahead failed ({error}); restoring now")

        restore_ahead: RestoredAhead = MadeAhead(
            lambda: restorer.restore_new(ahead=True),
            thread=f"criu-ahead-{name}",
            timeout=timeout,
            discard=lambda container: restorer.factory.tracker.discard(container.id),
            # A daemon restart meanwhile stops what was restored ahead.
            usable=lambda container: restorer.factory.running(container.id),
            failed=failed,
            depth=chosen.depth,
        )
        # The first test gets the first restore; the next ones are made meanwhile.
        restore_ahead.start()
        return FreshReset(restorer, restore_ahead)
    return FreshReset(restorer)


def next_with_retries(
    strategy: ResetStrategy,
    previous: CurrentContainer | None,
    retries: int,
    say: Callable[[str], None],
    name: str,
) -> CurrentContainer:
    """``strategy.next(previous)``, tried again ``retries`` times after an engine error (a
    damaged checkpoint is not retried)."""
    for attempt in range(retries):
        try:
            return strategy.next(previous)
        except DamagedCheckpointError:
            raise
        except EngineError as error:
            first_line = str(error).splitlines()[0]
            say(f"{name}: reset failed ({first_line}); retry {attempt + 1}/{retries}")
    return strategy.next(previous)


def next_container(
    strategy: ResetStrategy,
    previous: CurrentContainer | None,
    *,
    kill_first: Callable[[str], None] | None,
    discard: Callable[[str], None],
    retries: int,
    say: Callable[[str], None],
    name: str,
) -> CurrentContainer:
    """The next test's container from ``strategy`` (see :func:`next_with_retries`).

    A ``previous`` container the strategy replaces is killed first with ``kill_first`` (when
    every container listens in one namespace: CRIU would let both listen, and the test could
    reach the old one) and handed to ``discard`` once the next one runs: removing it
    meanwhile slows the restore (Podman's by about half, measured by the benchmarks).
    """
    replaced: str | None = None
    if previous is not None and strategy.replaces:
        if kill_first is not None:
            kill_first(previous.id)
        replaced, previous = previous.id, None
    try:
        return next_with_retries(strategy, previous, retries, say, name)
    finally:
        if replaced is not None:
            discard(replaced)
