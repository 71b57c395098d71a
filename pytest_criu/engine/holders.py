"""Network holders: small containers that own a warm container's network namespace.

Docker 28.0-29.x cannot restore a container with a network namespace of its own: since moby
commit 933fcc9814 the daemon bind-mounts ``/proc/<task pid>/ns/net`` right after creating the
task, and a task being restored has pid 0 until it starts (moby issue 50750). The daemon
skips that step when the namespace already has a path, which it has when the container joins
another container's namespace. So on Docker every warm container joins a *holder*: a
container of the same image running ``sleep``, which owns the namespace and the published
ports. Holders also make restores faster on every Docker version (creating a namespace, veth
and port proxy is about 0.2 s of each restore), and they can be made ahead, off the critical
path: no two containers that exist at once share a holder, so a container restored ahead
never competes for ports with the one a test is using, and a holder serves again once the
container in it is removed (:class:`~pytest_criu.engine.holder_supply.HolderSupply`). With
``stable``, one holder serves the whole
session instead: the address and the published ports never change, at the price of stopping
the previous container before each restore (restore-ahead is off).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from .errors import SpecError
from .spec import ContainerSpec

NetworkPath = Literal["holder", "stable", "own", "host", "joined"]
"""How a warm container's network is set up.

``holder``: it joins a holder's namespace, another one per restore; ``stable``: one holder's
namespace for the whole session; ``own``: a namespace of its own per container
(bridge or none); ``host``: the host's namespace; ``joined``: a namespace the user named
(``network_mode="container:..."``).
"""
HolderSetting = Literal["auto", "on", "off", "stable"]
HOLDER_SETTINGS: tuple[HolderSetting, ...] = ("auto", "on", "off", "stable")
# Large enough to outlive any session; GNU coreutils' and busybox' sleep both take it.
SLEEP_SECONDS = "2147483647"
# create_options that belong to the network namespace's owner: Docker refuses them on a
# container that joins another's namespace, and its /etc/hosts, resolv.conf and hostname
# come from the holder.
NETWORK_OPTIONS = ("dns", "dns_search", "extra_hosts", "hostname")
HOLDER_START_TIMEOUT = 30.0


def network_path(engine: str, network_mode: str | None, setting: HolderSetting) -> NetworkPath:
    """The network path a warm container takes on ``engine`` with ``setting``.

    Raises :class:`SpecError` when ``setting`` asks for holders where they cannot apply.
    """
    if network_mode == "host":
        return "host"
    if network_mode is not None and network_mode.startswith("container:"):
        return "joined"
    if engine != "docker":
        if setting in ("on", "stable"):
            raise SpecError(
                f"--criu-network-holder={setting}: network holders are for Docker; {engine} "
                "restores containers with a network namespace of their own. Use auto or off"
            )
        return "own"
    if setting == "off":
        return "own"
    return "stable" if setting == "stable" else "holder"


def checkpoint_network(path: NetworkPath) -> NetworkPath:
    """What a checkpoint taken on ``path`` needs to restore: any holder's namespace will do."""
    return "holder" if path == "stable" else path


def describe(path: NetworkPath) -> str:
    """One line for the doctor and the summary: what ``path`` means."""
    return {
        "holder": "joins a network holder (a sleeping container of the same image that owns "
        "the namespace and the published ports; one per restore, made ahead)",
        "stable": "joins one network holder for the whole session: the address and the "
        "published ports never change (the previous container stops first; restore-ahead off)",
        "own": "a network namespace of its own for every container",
        "host": "the host's network namespace (restore-ahead off)",
        "joined": "the network namespace of the container named by network_mode",
    }[path]


def holder_spec(spec: ContainerSpec, image: str | None = None) -> ContainerSpec:
    """The spec of a holder for ``spec``: its ports and network, running ``sleep``.

    Nothing else of ``spec`` (its environment may hold secrets) goes to the holder.
    """
    return ContainerSpec(
        image=image or spec.image,
        entrypoint=("sleep",),
        command=(SLEEP_SECONDS,),
        ports=spec.ports,
        network_mode=spec.network_mode,
        user="0",
        create_options={
            key: value for key, value in spec.create_options.items() if key in NETWORK_OPTIONS
        },
    )


def joined_spec(spec: ContainerSpec, holder_id: str) -> ContainerSpec:
    """``spec`` joined to the namespace of ``holder_id`` (whose ports are published)."""
    options = {k: v for k, v in spec.create_options.items() if k not in NETWORK_OPTIONS}
    return dataclasses.replace(
        spec, ports=(), network_mode=f"container:{holder_id}", create_options=options
    )
