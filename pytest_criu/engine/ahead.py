"""Restore-ahead: the next test's container is restored while the current test runs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from .errors import EngineError
from .handle import CurrentContainer

Say = Callable[[str], None]


class RestoreAhead:
    """One restore at a time in a background thread; :meth:`take` hands its container over."""

    def __init__(
        self, restore: Callable[[], CurrentContainer], *, name: str, timeout: float, say: Say
    ) -> None:
        self._restore = restore
        self._name = name
        self._timeout = timeout
        self._say = say
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"criu-ahead-{name}")
        self._next: Future[CurrentContainer] | None = None

    @property
    def pending(self) -> bool:
        """A restore was started and not taken yet."""
        return self._next is not None

    @property
    def ready(self) -> bool:
        """... and it has finished."""
        return self._next is not None and self._next.done()

    def start(self) -> None:
        """Start restoring the next container unless one is on its way."""
        if self._next is None:
            self._next = self._executor.submit(self._restore)

    def take(self) -> CurrentContainer | None:
        """The container restored ahead (waiting for it), or ``None`` if there is none or it
        failed (said, so that the caller restores now)."""
        future, self._next = self._next, None
        if future is None:
            return None
        try:
            return future.result(timeout=self._timeout)
        except Exception as error:
            self._say(f"{self._name}: restore-ahead failed ({error}); restoring now")
            return None

    def settle(self, timeout: float) -> None:
        """Wait until the restore ahead (if any) finished; :class:`EngineError` on timeout."""
        pending = self._next
        if pending is not None and not wait([pending], timeout=timeout).done:
            raise EngineError(f"{self._name}: the restore ahead did not finish within {timeout:g}s")

    def close(self) -> None:
        """Wait for the restore ahead (what it restored is tracked, so removed with the rest)."""
        if self._next is not None:
            with contextlib.suppress(Exception):
                self._next.result(timeout=self._timeout)
        self._executor.shutdown(wait=True)
