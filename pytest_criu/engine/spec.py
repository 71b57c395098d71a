"""What a warm container is: the spec a user declares, validated when it is declared."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from . import create_options as creating
from .errors import SpecError

Strategy = Literal["fresh", "inplace"]
STRATEGIES: tuple[Strategy, ...] = ("fresh", "inplace")
UsernsMode = Literal["auto", "host"]
"""``userns=``: a private user namespace per container (``auto``) or the host's (``host``)."""
USERNS_MODES: tuple[UsernsMode, ...] = ("auto", "host")
EngineChoice = Literal["auto", "docker", "podman"]
"""``--criu-engine``: which engine to use (here, so options need not import the engines)."""
ENGINE_CHOICES: tuple[EngineChoice, ...] = ("auto", "docker", "podman")

PortLike = Union[int, str, "Port"]

_PORT_RE = re.compile(r"^(?P<port>\d{1,5})(?:/(?P<proto>tcp|udp|sctp))?$")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, order=True)
class Port:
    """A container port with its protocol, e.g. ``6379/tcp``."""

    number: int
    protocol: str = "tcp"

    def __str__(self) -> str:
        return f"{self.number}/{self.protocol}"

    @classmethod
    def parse(cls, value: object, *, where: str = "ports") -> Port:
        """Parse ``6379``, ``"6379"`` or ``"53/udp"``; anything else is a :class:`SpecError`."""
        if isinstance(value, Port):
            return value
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise SpecError(
                f"{where}: {value!r} is not a port; use an int like 6379 or a string like '53/udp'"
            )
        match = _PORT_RE.match(str(value).strip())
        if match is None:
            raise SpecError(
                f"{where}: {value!r} is not a port; use an int like 6379 or a string like '53/udp'"
            )
        number = int(match["port"])
        if not 1 <= number <= 65535:
            raise SpecError(f"{where}: port {number} is out of range 1-65535")
        return cls(number, match["proto"] or "tcp")


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to create the container a warm container starts from.

    Environment values may hold secrets: they are never shown by ``repr`` or in errors.
    """

    image: str
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    environment: Mapping[str, str] = field(default_factory=dict, repr=False)
    ports: tuple[Port, ...] = ()
    tmpfs: Mapping[str, str] = field(default_factory=dict)
    volumes: Mapping[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    user: str | None = None
    network_mode: str | None = None
    userns: UsernsMode | None = None
    """``None``: the engine's own default (``--criu-userns`` may set one for the session)."""
    labels: Mapping[str, str] = field(default_factory=dict)
    create_options: Mapping[str, Any] = field(default_factory=dict)
    """Other create settings (``create_options=``), validated by :mod:`.create_options`."""

    def environment_list(self) -> list[str]:
        return [f"{key}={value}" for key, value in self.environment.items()]

    def redact(self, text: str) -> str:
        """Replace every environment value in ``text`` by ``***``."""
        for value in sorted(self.environment.values(), key=len, reverse=True):
            if len(value) >= 3:
                text = text.replace(value, "***")
        return text

    def fingerprint(self) -> str:
        """A stable digest of the spec (environment values included, never revealed)."""
        payload = {
            "image": self.image,
            "command": self.command,
            "entrypoint": self.entrypoint,
            "environment": sorted(self.environment.items()),
            "ports": [str(port) for port in self.ports],
            "tmpfs": sorted(self.tmpfs.items()),
            "volumes": sorted(self.volumes.items()),
            "working_dir": self.working_dir,
            "user": self.user,
            "network_mode": self.network_mode,
            **({"userns": self.userns} if self.userns else {}),
            "labels": sorted(self.labels.items()),
            "create_options": dict(self.create_options),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def build_spec(
    *,
    image: object,
    command: object = None,
    entrypoint: object = None,
    environment: object = None,
    ports: object = None,
    tmpfs: object = None,
    volumes: object = None,
    working_dir: object = None,
    user: object = None,
    network_mode: object = None,
    userns: object = None,
    labels: object = None,
    create_options: object = None,
) -> ContainerSpec:
    """Validate user input and build a :class:`ContainerSpec`; raise :class:`SpecError`."""
    if not isinstance(image, str) or not image.strip():
        raise SpecError(
            f"image: expected a non-empty image reference like 'redis:7', got {image!r}"
        )
    return ContainerSpec(
        image=image.strip(),
        command=_argv(command, "command"),
        entrypoint=_argv(entrypoint, "entrypoint"),
        environment=_environment(environment),
        ports=_ports(ports),
        tmpfs=_paths_mapping(tmpfs, "tmpfs", "mount options such as 'size=64m' or ''"),
        volumes=_volumes(volumes),
        working_dir=_optional_str(working_dir, "working_dir"),
        user=_optional_str(user, "user"),
        network_mode=_optional_str(network_mode, "network_mode"),
        userns=_userns(userns),
        labels=_str_mapping(labels, "labels"),
        create_options=creating.validate(create_options),
    )


def _argv(value: object, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise SpecError(
            f"{where}: give a list of arguments such as ['redis-server', '--save', ''], "
            f"not the string {value!r} (nothing splits it for you)"
        )
    if not isinstance(value, Sequence) or not all(isinstance(arg, str) for arg in value):
        raise SpecError(f"{where}: expected a list of strings, got {value!r}")
    if not value:
        raise SpecError(f"{where}: the list is empty; leave it out to use the image's default")
    return tuple(value)


def _environment(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(
            f"environment: expected a mapping of names to values, got {type(value).__name__}"
        )
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not _NAME_RE.match(key):
            raise SpecError(f"environment: {key!r} is not a valid variable name")
        if not isinstance(item, (str, int, float)) or isinstance(item, bool):
            # The value may be a secret: name only its type.
            raise SpecError(
                f"environment: value of {key} must be a string or number, got {type(item).__name__}"
            )
        result[key] = str(item)
    return result


def _ports(value: object) -> tuple[Port, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, int)):
        value = [value]
    if not isinstance(value, Iterable):
        raise SpecError(f"ports: expected a list of container ports, got {value!r}")
    parsed = [Port.parse(item) for item in value]
    if len(set(parsed)) != len(parsed):
        raise SpecError(f"ports: duplicate ports in {[str(port) for port in parsed]}")
    return tuple(parsed)


def _absolute_path(path: object, where: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise SpecError(f"{where}: {path!r} is not an absolute path inside the container")
    if ":" in path or "," in path:
        raise SpecError(f"{where}: {path!r} contains ':' or ','; Docker cannot mount it")
    return path


def _paths_mapping(value: object, where: str, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, (list, tuple, set)):
        value = dict.fromkeys(value, "")
    if not isinstance(value, Mapping):
        raise SpecError(f"{where}: expected a mapping of container paths to {what}")
    result: dict[str, str] = {}
    for path, options in value.items():
        _absolute_path(path, where)
        if not isinstance(options, str):
            raise SpecError(f"{where}: options of {path} must be a string ({what})")
        result[path] = options
    return result


def _volumes(value: object) -> dict[str, str]:
    """Bind mounts and named volumes: ``{source: "/container/path[:ro]"}``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(
            "volumes: expected a mapping of host paths or volume names to container paths, "
            "e.g. {'/srv/data': '/data:ro'}"
        )
    result: dict[str, str] = {}
    for source, target in value.items():
        if not isinstance(source, str) or not source:
            raise SpecError(f"volumes: {source!r} is not a host path or volume name")
        if not isinstance(target, str):
            raise SpecError(f"volumes: target of {source} must be a string like '/data:ro'")
        path, _, mode = target.partition(":")
        _absolute_path(path, "volumes")
        if mode not in ("", "ro", "rw"):
            raise SpecError(f"volumes: mode {mode!r} of {source} must be 'ro' or 'rw'")
        result[source] = target
    return result


def _userns(value: object) -> UsernsMode | None:
    if value is None:
        return None
    for mode in USERNS_MODES:
        if value == mode:
            return mode
    raise SpecError(
        f"userns: {value!r} is not one of {', '.join(map(repr, USERNS_MODES))}: 'auto' gives "
        "the container a user namespace of its own (its root is not host root), 'host' "
        "runs it in the host's; leave it out for the engine's default"
    )


def _optional_str(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise SpecError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _str_mapping(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(key, str) and isinstance(item, str) for key, item in value.items()
    ):
        raise SpecError(f"{where}: expected a mapping of strings to strings")
    return dict(value)
