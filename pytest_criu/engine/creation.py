"""Creating a warm container's containers: their config, labels, tmpfs and network holder,
and what a restore into a new container made."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import labels as labelling
from .base import ContainerConfig, ContainerEngine, Lap, RestoreRequest
from .handle import CurrentContainer
from .holder_supply import HolderSupply, is_running
from .holders import NetworkPath, joined_spec
from .spec import ContainerSpec
from .tracker import ContainerTracker


@dataclass
class RestoreAttempt:
    """One restore into a new container: its request, its holder, what the engine created."""

    holder: str | None
    created: list[str] = field(default_factory=list)
    """Container ids, in the order the engine created them."""
    request: RestoreRequest = field(init=False)


class ContainerFactory:
    """Makes the containers of one warm container and tracks each one it makes."""

    def __init__(
        self,
        *,
        name: str,
        spec: ContainerSpec,
        engine: ContainerEngine,
        owner: labelling.Owner,
        network: NetworkPath,
        tracker: ContainerTracker,
        image: Callable[[], str],
        holder_image: str | None,
        pull: bool,
    ) -> None:
        self.name = name
        self.spec = spec
        self.engine = engine
        self.owner = owner
        self.tracker = tracker
        self.tmpfs: dict[str, str] = dict(spec.tmpfs)
        """The tmpfs mounts of every container: the spec's, covered VOLUMEs, the snapshot's."""
        self.holders = HolderSupply(
            name=name,
            path=network,
            spec=spec,
            engine=engine,
            tracker=tracker,
            labels=self.labels("holder"),
            image=image,
            holder_image=holder_image,
            pull=pull,
        )

    def labels(self, role: str) -> dict[str, str]:
        return {**self.spec.labels, **self.owner.labels(self.name, role)}

    def config(self, image: str, role: str, holder: str | None = None) -> ContainerConfig:
        """The config of a container from ``image`` that joins ``holder``, if any."""
        return ContainerConfig(
            spec=joined_spec(self.spec, holder) if holder else self.spec,
            image=image,
            labels=self.labels(role),
            tmpfs=self.tmpfs,
        )

    def create(self, image: str, role: str) -> str:
        """Create (not start) a container with its holder; both are tracked."""
        holder = self.holders.take()
        try:
            container_id = self.engine.create(self.config(image, role, holder))
        except BaseException:
            self.holders.release(holder)
            raise
        self.tracker.add(container_id, holder)
        return container_id

    def restore_attempt(
        self,
        image: str,
        checkpoint: Path,
        checkpoint_name: str,
        *,
        lap: Lap,
        keep: bool = False,
        holder_ahead: bool = True,
    ) -> RestoreAttempt:
        """A restore into a new container from ``image``: its holder taken (``lap("holder")``),
        every container the engine creates for it tracked; :meth:`abandon` when it fails."""
        holder = self.holders.take(ahead=holder_ahead)
        lap("holder")
        attempt = RestoreAttempt(holder=holder)

        def track(container_id: str) -> None:
            attempt.created.append(container_id)
            self.tracker.add(container_id, holder)

        attempt.request = RestoreRequest(
            config=self.config(image, "restored", holder),
            checkpoint=checkpoint,
            name=checkpoint_name,
            owner=self.owner.nonce,
            created=track,
            lap=lap,
            keep=keep,
        )
        return attempt

    def abandon(self, attempt: RestoreAttempt) -> None:
        """Remove what a failed restore made: its containers (with the holder), else the holder."""
        for leftover in attempt.created:
            self.tracker.discard(leftover)
        if not attempt.created:
            self.holders.release(attempt.holder)

    def retire(self, container_id: str) -> None:
        """Remove a container a test is done with, in the background; once it is gone, its
        network holder serves a later container."""
        self.tracker.discard(container_id, reuse_holder=self.holders.give_back)

    def current(self, container_id: str) -> CurrentContainer:
        """Where a running container is reached (a joined container's ports are its holder's)."""
        holder = self.tracker.holder_of(container_id)
        info = self.engine.inspect(holder or container_id)
        return CurrentContainer(
            id=container_id,
            ports=self.engine.published_ports(info),
            address=self.engine.address(info),
        )

    def running(self, container_id: str) -> bool:
        """Whether ``container_id`` still runs (a daemon restart stops what was made ahead)."""
        return is_running(self.engine, container_id)

    def close(self) -> None:
        self.holders.close()
