"""Where the next container's network namespace comes from: holders made ahead, and holders
of removed containers given back (Docker's ``holder`` and ``stable`` paths)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping

from .ahead import MadeAhead
from .base import ContainerConfig, ContainerEngine
from .errors import EngineError
from .holders import HOLDER_START_TIMEOUT, NetworkPath, holder_spec
from .spec import ContainerSpec
from .tracker import ContainerTracker


class HolderSupply:
    """The network holders of one warm container: where the next container's namespace is.

    On the ``holder`` path every container gets a holder of its own: the holder of a
    container a test was done with, once that container is removed (:meth:`give_back`), else
    one made ahead; on the ``stable`` path one holder serves the session (a new one only when
    it stopped); on the other paths there are none (:meth:`take` returns ``None``).
    """

    GIVEN_BACK_AT_MOST = 1
    """Holders kept for reuse; one is given back per reset, and one taken."""

    def __init__(
        self,
        *,
        name: str,
        path: NetworkPath,
        spec: ContainerSpec,
        engine: ContainerEngine,
        tracker: ContainerTracker,
        labels: Mapping[str, str],
        image: Callable[[], str],
        holder_image: str | None,
        pull: bool,
    ) -> None:
        self._name = name
        self._path = path
        self._spec = spec
        self._engine = engine
        self._tracker = tracker
        self._labels = dict(labels)
        self._image = image
        self._holder_image = holder_image
        self._pull = pull
        self._image_id = ""
        self._pool: MadeAhead[str] | None = None
        self._lasting: str | None = None
        self._given_back: deque[str] = deque()
        self._lock = threading.Lock()
        self._closed = False

    def take(self, *, ahead: bool = True) -> str | None:
        """A running holder for the next container, or ``None`` on paths without holders;
        with ``ahead``, the one after it is made ahead now (else at :meth:`refill`)."""
        if self._path == "stable":
            holder = self._lasting
            if holder is None or not is_running(self._engine, holder):
                self._lasting = None
                if holder is not None:
                    self._tracker.retire(holder)
                self._lasting = self._make()
            return self._lasting
        if self._path != "holder":
            return None
        if self._pool is None:
            self._pool = MadeAhead(
                self._make,
                thread=f"criu-hold-{self._name}",
                timeout=HOLDER_START_TIMEOUT,
                discard=self._tracker.discard,
                usable=lambda holder: is_running(self._engine, holder),
            )
        holder = self._reusable() or self._pool.take() or self._make()
        if ahead:
            self._pool.start()
        return holder

    def give_back(self, holder: str) -> bool:
        """Keep the holder of a removed container for a later one; ``False``: remove it.

        Only holders of containers that a test used come back: their restore finished, so
        CRIU's network lock is off, and the namespace is empty (as on the ``stable`` path,
        where every restore reuses one).
        """
        with self._lock:
            if (
                self._path != "holder"
                or self._closed
                or len(self._given_back) >= self.GIVEN_BACK_AT_MOST
            ):
                return False
            self._given_back.append(holder)
            return True

    def refill(self) -> None:
        """Start making the next holder ahead unless one is on its way."""
        if self._pool is not None:
            self._pool.start()

    def release(self, holder: str | None) -> None:
        """A holder taken for a container that was never made: remove it (not a lasting one)."""
        if holder is not None and holder != self._lasting:
            self._tracker.discard(holder)

    def settle(self, timeout: float) -> None:
        """Wait until the holder made ahead (if any) is ready; :class:`EngineError` on timeout."""
        if self._pool is not None and not self._pool.idle(timeout):
            raise EngineError(
                f"{self._name}: the network holder ahead did not start within {timeout:g}s"
            )

    def close(self) -> None:
        """Stop making holders; the one made ahead is removed (the tracker removes the rest)."""
        with self._lock:
            self._closed = True
            self._given_back.clear()
        if self._pool is not None:
            self._pool.close()

    def _reusable(self) -> str | None:
        while True:
            with self._lock:
                if not self._given_back:
                    return None
                holder = self._given_back.popleft()
            if is_running(self._engine, holder):
                return holder
            self._tracker.discard(holder)  # a daemon restart stopped it

    def _make(self) -> str:
        if not self._image_id:
            wanted = self._holder_image
            image = self._engine.ensure_image(wanted, pull=self._pull) if wanted else None
            self._image_id = str(image["Id"]) if image else self._image()
        spec = holder_spec(self._spec, self._holder_image)
        holder = self._engine.create(
            ContainerConfig(spec=spec, image=self._image_id, labels=self._labels)
        )
        self._tracker.add_holder(holder, lasting=self._path == "stable")
        try:
            self._engine.start(holder)
        except EngineError as error:
            self._tracker.drop(holder)
            self._tracker.remove_now(holder)
            raise EngineError(
                f"{self._name}: its network holder (image {spec.image}, running `sleep`) did "
                f"not start: {str(error).splitlines()[0]}. An image without a `sleep` program "
                "needs --criu-holder-image naming one that has it (any busybox or Debian "
                "image), or --criu-network-holder=off (Docker <= 27 only)"
            ) from None
        return holder


def is_running(engine: ContainerEngine, container_id: str) -> bool:
    """Whether ``container_id`` runs; ``False`` when it is gone or the engine does not answer
    (the caller makes a new one)."""
    try:
        return bool((engine.inspect(container_id).get("State") or {}).get("Running"))
    except Exception:
        return False
