"""Made ahead: one thing (a holder, a staged container, a restored container) made in a
background thread while the current test runs, handed over when the next one needs it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Generic, TypeVar

T = TypeVar("T")


class MadeAhead(Generic[T]):
    """One ``make()`` at a time in a background thread; :meth:`take` hands its result over.

    ``discard`` removes a result nobody will take (made too late, no longer ``usable``, or
    made after :meth:`close`); ``failed`` hears why a result could not be taken, so that the
    caller makes one now. Safe across threads.
    """

    def __init__(
        self,
        make: Callable[[], T],
        *,
        thread: str,
        timeout: float,
        discard: Callable[[T], None] | None = None,
        usable: Callable[[T], bool] | None = None,
        failed: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._make = make
        self._timeout = timeout
        self._discard = discard
        self._usable = usable
        self._failed = failed
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread)
        self._next: Future[T] | None = None
        self._closed = False
        self._lock = threading.Lock()

    @property
    def pending(self) -> bool:
        """Something is being made, or was made and not taken yet."""
        return self._next is not None

    @property
    def ready(self) -> bool:
        """... and it is finished."""
        pending = self._next
        return pending is not None and pending.done()

    def start(self) -> None:
        """Start making the next one unless one is on its way (or after :meth:`close`)."""
        with self._lock:
            if self._next is None and not self._closed:
                self._next = self._executor.submit(self._make)

    def take(self) -> T | None:
        """What was made ahead (waiting for it), or ``None``: nothing was started, or it
        failed, took longer than the timeout or is no longer usable."""
        with self._lock:
            pending, self._next = self._next, None
        if pending is None:
            return None
        try:
            made = pending.result(timeout=self._timeout)
        except FutureTimeout:
            pending.add_done_callback(self._discard_made)
            self._tell(TimeoutError(f"not made within {self._timeout:g}s"))
            return None
        except Exception as error:
            self._tell(error)
            return None
        if self._usable is not None and not self._usable(made):
            if self._discard is not None:
                self._discard(made)
            return None
        return made

    def idle(self, timeout: float) -> bool:
        """Wait until what is being made (if anything) is finished; ``False`` on timeout."""
        pending = self._next
        if pending is None:
            return True
        try:
            pending.exception(timeout=max(0.0, timeout))
        except FutureTimeout:
            return False
        return True

    def close(self) -> None:
        """Stop making; wait for what is being made and discard it."""
        with self._lock:
            self._closed = True
            pending, self._next = self._next, None
        if pending is not None:
            pending.add_done_callback(self._discard_made)
        self._executor.shutdown(wait=True)

    def _tell(self, error: BaseException) -> None:
        if self._failed is not None:
            self._failed(error)

    def _discard_made(self, future: Future[T]) -> None:
        if self._discard is not None and not future.cancelled() and future.exception() is None:
            self._discard(future.result())
