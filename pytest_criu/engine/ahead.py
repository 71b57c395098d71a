"""Made ahead: one thing (a holder, a staged container, a restored container) made in a
background thread while the current test runs, handed over when the next one needs it."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Generic, TypeVar

T = TypeVar("T")


class MadeAhead(Generic[T]):
    """Up to ``depth`` ``make()`` calls ahead in background threads; :meth:`take` hands their
    results over in the order they were started.

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
        depth: int = 1,
    ) -> None:
        self._make = make
        self._timeout = timeout
        self._discard = discard
        self._usable = usable
        self._failed = failed
        self._depth = depth
        self._executor = ThreadPoolExecutor(max_workers=depth, thread_name_prefix=thread)
        self._made: deque[Future[T]] = deque()
        self._closed = False
        self._lock = threading.Lock()

    @property
    def depth(self) -> int:
        """How many are made ahead at once."""
        return self._depth

    @property
    def pending(self) -> bool:
        """Something is being made, or was made and not taken yet."""
        return bool(self._made)

    @property
    def ready(self) -> bool:
        """... and the next one to take is finished."""
        with self._lock:
            return bool(self._made) and self._made[0].done()

    def start(self) -> None:
        """Start making until ``depth`` are on their way (none after :meth:`close`)."""
        with self._lock:
            while len(self._made) < self._depth and not self._closed:
                self._made.append(self._executor.submit(self._make))

    def take(self) -> T | None:
        """What was made ahead (waiting for it), or ``None``: nothing was started, or it
        failed, took longer than the timeout or is no longer usable."""
        with self._lock:
            pending = self._made.popleft() if self._made else None
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
        with self._lock:
            pending = list(self._made)
        return not wait(pending, timeout=max(0.0, timeout)).not_done

    def close(self) -> None:
        """Stop making; wait for what is being made and discard it."""
        with self._lock:
            self._closed = True
            pending = list(self._made)
            self._made.clear()
        for future in pending:
            future.add_done_callback(self._discard_made)
        self._executor.shutdown(wait=True)

    def _tell(self, error: BaseException) -> None:
        if self._failed is not None:
            self._failed(error)

    def _discard_made(self, future: Future[T]) -> None:
        if self._discard is not None and not future.cancelled() and future.exception() is None:
            self._discard(future.result())
