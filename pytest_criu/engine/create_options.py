"""``create_options=``: other container settings, passed to the engine's create call.

Only settings that both engines honour on every container pytest-criu creates (the source,
restored and recreated ones) are accepted; settings pytest-criu owns, or that would make a
container impossible to checkpoint, are refused with the ``warm_container`` argument to use
instead. Names and values are those of docker-py's ``create_container`` and
``create_host_config``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import SpecError

Validator = Callable[[str, object], object]

_SIZE_RE = re.compile(r"^\d+[bkmg]?$", re.IGNORECASE)
_HEALTHCHECK_KEYS = ("test", "interval", "timeout", "retries", "start_period")


def _text(key: str, value: object) -> object:
    if not isinstance(value, str) or not value:
        raise SpecError(f"create_options: {key} must be a non-empty string, got {value!r}")
    return value


def _integer(key: str, value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"create_options: {key} must be an integer, got {value!r}")
    return value


def _size(key: str, value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and _SIZE_RE.match(value):
        return value
    raise SpecError(
        f"create_options: {key} must be a number of bytes or a string like '256m', got {value!r}"
    )


def _strings(key: str, value: object) -> object:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise SpecError(f"create_options: {key} must be a list of strings, got {value!r}")
    if not all(isinstance(item, str) and item for item in value):
        raise SpecError(f"create_options: {key} must be a list of strings, got {value!r}")
    return list(value)


def _ulimits(key: str, value: object) -> object:
    example = "[{'name': 'nofile', 'soft': 4096, 'hard': 8192}]"
    if not isinstance(value, (list, tuple)):
        raise SpecError(f"create_options: {key} must be a list like {example}, got {value!r}")
    result = []
    for item in value:
        if (
            not isinstance(item, Mapping)
            or set(item) - {"name", "soft", "hard"}
            or not isinstance(item.get("name"), str)
            or not all(
                isinstance(item.get(bound), int) and not isinstance(item.get(bound), bool)
                for bound in ("soft", "hard")
                if bound in item
            )
        ):
            raise SpecError(
                f"create_options: {key}: {item!r} is not a limit; use a list like {example}"
            )
        result.append(dict(item))
    return result


def _extra_hosts(key: str, value: object) -> object:
    if isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) and k and v for k, v in value.items()
    ):
        return {k: value[k] for k in sorted(value)}
    if isinstance(value, (list, tuple)) and all(
        isinstance(item, str) and ":" in item for item in value
    ):
        return list(value)
    raise SpecError(
        f"create_options: {key} must map names to addresses, e.g. "
        f"{{'db.test': '10.0.0.5'}}, or be a list like ['db.test:10.0.0.5'], got {value!r}"
    )


def _healthcheck(key: str, value: object) -> object:
    example = "{'test': ['CMD', 'pg_isready'], 'interval': 1_000_000_000}"
    if not isinstance(value, Mapping) or "test" not in value:
        raise SpecError(
            f"create_options: {key} must be a mapping with a 'test', e.g. {example}, got {value!r}"
        )
    unknown = sorted(set(value) - set(_HEALTHCHECK_KEYS))
    if unknown:
        raise SpecError(
            f"create_options: {key}: unknown keys {unknown}; accepted: "
            f"{', '.join(_HEALTHCHECK_KEYS)} (durations in nanoseconds)"
        )
    test = value["test"]
    if not (isinstance(test, str) and test) and not (
        isinstance(test, (list, tuple)) and test and all(isinstance(a, str) for a in test)
    ):
        raise SpecError(
            f"create_options: {key}: 'test' must be a shell command string or a list such "
            f"as ['CMD', 'pg_isready'], got {test!r}"
        )
    for field in _HEALTHCHECK_KEYS[1:]:
        if field in value:
            item = value[field]
            if isinstance(item, bool) or not isinstance(item, int) or item < 0:
                raise SpecError(
                    f"create_options: {key}: {field} must be a non-negative integer"
                    + (" (nanoseconds: 1_000_000_000 is 1 s)" if field != "retries" else "")
                    + f", got {item!r}"
                )
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(value.items())}


#: Settings of the container itself (``create_container``'s keyword arguments).
CONTAINER_OPTIONS: dict[str, Validator] = {
    "hostname": _text,
    "stop_signal": _text,
    "healthcheck": _healthcheck,
}

#: Settings of its host configuration (``create_host_config``'s keyword arguments).
HOST_OPTIONS: dict[str, Validator] = {
    "shm_size": _size,
    "ulimits": _ulimits,
    "extra_hosts": _extra_hosts,
    "cap_add": _strings,
    "cap_drop": _strings,
    "mem_limit": _size,
    "pids_limit": _integer,
    "cpu_shares": _integer,
    "dns": _strings,
    "dns_search": _strings,
}

ACCEPTED = tuple(sorted({**CONTAINER_OPTIONS, **HOST_OPTIONS}))

_NAMESPACES = (
    "sharing a namespace with the host or another container cannot be checkpointed "
    "(CRIU dumps the container's own namespaces); leave it out"
)

#: Refused settings, each with what to do instead.
REFUSED: dict[str, str] = {
    "image": "pass it as warm_container(image)",
    "command": "use warm_container(command=[...])",
    "entrypoint": "use warm_container(entrypoint=[...])",
    "environment": "use warm_container(environment={...})",
    "working_dir": "use warm_container(working_dir=...)",
    "user": "use warm_container(user=...)",
    "labels": "use warm_container(labels={...})",
    "ports": "use warm_container(ports=[...]); each restored container gets new host ports "
    "(ask handle.port())",
    "port_bindings": "use warm_container(ports=[...]); pytest-criu publishes ports on "
    "127.0.0.1 at new host ports for every restored container (ask handle.port())",
    "publish_all_ports": "list the ports in warm_container(ports=[...])",
    "tmpfs": "use warm_container(tmpfs={...})",
    "volumes": "use warm_container(volumes={...}); see also volume_policy",
    "binds": "use warm_container(volumes={...})",
    "mounts": "use warm_container(volumes={...}) or tmpfs={...}",
    "volumes_from": "use warm_container(volumes={...})",
    "volume_driver": "use warm_container(volumes={...}) with a named volume",
    "network_mode": "use warm_container(network_mode=...)",
    "network": "use warm_container(network_mode=...)",
    "networking_config": "use warm_container(network_mode=...); pytest-criu sets up the "
    "network of every restored container",
    "network_disabled": "use warm_container(network_mode='none')",
    "links": "links are legacy and pinned to a container id that changes with every restore; "
    "use warm_container(network_mode=...) and extra_hosts",
    "mac_address": "pytest-criu manages the network of every restored container; a fixed "
    "MAC would clash between a container and the one restored ahead of it",
    "name": "pytest-criu names and labels every container it creates (for clean-up)",
    "tty": "a container with a TTY cannot be checkpointed by CRIU; leave tty off",
    "stdin_open": "a container attached to an open stdin cannot be checkpointed; leave it off",
    "detach": "pytest-criu always starts containers detached",
    "auto_remove": "the engine would remove the checkpointed source container, and its "
    "checkpoint with it; pytest-criu removes what it creates",
    "restart_policy": "the engine would restart the stopped, checkpointed source container "
    "and the containers pytest-criu replaces; pytest-criu manages their life",
    "init": "pytest-criu owns it (containers run without the engine's init process)",
    "privileged": "a privileged container sees the host's devices, which CRIU cannot "
    "checkpoint; grant capabilities with create_options={'cap_add': [...]}",
    "devices": "host devices cannot be checkpointed by CRIU",
    "security_opt": "pytest-criu keeps the engine's default security profile",
    "runtime": "checkpoints are made and restored with runc (Docker) or Podman's default "
    "runtime; another runtime cannot restore them",
    "sysctls": "a restored container does not get them back: Docker restores the "
    "checkpoint into a new network namespace with the kernel's defaults (measured with "
    "Docker 20.10); set them from the service's own configuration where it can",
    "domainname": "Podman 4.3 ignores it, so containers would differ between the engines; "
    "configure the domain where the service reads it",
    "pid_mode": _NAMESPACES,
    "ipc_mode": _NAMESPACES,
    "uts_mode": _NAMESPACES,
    "userns_mode": _NAMESPACES,
    "cgroupns": _NAMESPACES,
}


def validate(value: object) -> dict[str, Any]:
    """Check ``create_options=``; return a normalised copy or raise :class:`SpecError`."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(
            f"create_options: expected a mapping such as {{'shm_size': '256m'}}, "
            f"got {type(value).__name__}"
        )
    result: dict[str, Any] = {}
    for key in sorted(value, key=str):
        if key in REFUSED:
            raise SpecError(f"create_options: {key!r} is not accepted: {REFUSED[key]}")
        validator = CONTAINER_OPTIONS.get(key) or HOST_OPTIONS.get(key)
        if validator is None:
            raise SpecError(
                f"create_options: unknown option {key!r}; accepted: {', '.join(ACCEPTED)}"
            )
        result[key] = validator(key, value[key])
    return result


def container_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options that go to ``create_container``."""
    return {key: value for key, value in options.items() if key in CONTAINER_OPTIONS}


def host_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options that go to ``create_host_config``."""
    return {key: value for key, value in options.items() if key in HOST_OPTIONS}
