"""Command-line options and their ini twins, resolved in one place (CLI > ini > default)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, cast

import pytest

from .engine.depth import AUTO_AHEAD_DEPTH, MAX_AHEAD_DEPTH
from .engine.holders import HOLDER_SETTINGS, HolderSetting
from .engine.spec import (
    ENGINE_CHOICES,
    STRATEGIES,
    USERNS_MODES,
    EngineChoice,
    Strategy,
    UsernsMode,
)

Fallback = Literal["skip", "recreate", "fail"]
FALLBACKS: tuple[Fallback, ...] = ("skip", "recreate", "fail")

T = TypeVar("T")


@dataclass(frozen=True)
class Option(Generic[T]):
    """One setting: its flag, ini key, default, parser and help text."""

    flag: str
    ini: str
    field: str
    default: T
    parse: Callable[[str], T]
    help: str
    metavar: str = ""
    is_flag: bool = False
    aliases: tuple[str, ...] = ()
    """Older spellings of the flag and ini key, still accepted."""
    ini_aliases: tuple[str, ...] = ()
    negation: str = ""
    """For a flag that is on by default: the flag that turns it off."""

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return parse


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number of seconds") from None
    if not seconds > 0:
        raise ValueError(f"{value!r} must be a positive number of seconds")
    if math.isinf(seconds):
        raise ValueError(
            f"{value!r} is not a finite number of seconds; for no practical limit give a "
            "large one such as 86400"
        )
    return seconds


def _boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{value!r} is not a boolean (true/false)")


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("an empty value is not allowed")
    return value.strip()


def _count(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a whole number") from None
    if count < 0:
        raise ValueError(f"{value!r} must be 0 or more")
    return count


def _depth(value: str) -> int | None:
    if value.strip().lower() == "auto":
        return None
    try:
        depth = int(value)
    except ValueError:
        raise ValueError(f"{value!r} is neither auto nor a whole number") from None
    if not 1 <= depth <= MAX_AHEAD_DEPTH:
        raise ValueError(f"{value!r} must be auto or a number from 1 to {MAX_AHEAD_DEPTH}")
    return depth


def _size(value: str) -> int:
    text = value.strip().upper().removesuffix("B")
    factor = 1
    for suffix, multiple in (("K", 1024), ("M", 1024**2), ("G", 1024**3), ("T", 1024**4)):
        if text.endswith(suffix):
            text, factor = text[:-1], multiple
            break
    try:
        size = int(float(text) * factor)
    except ValueError:
        raise ValueError(f"{value!r} is not a size such as 5G, 500M or 1048576") from None
    if size <= 0:
        raise ValueError(f"{value!r} must be a positive size")
    return size


def _optional_text(value: str) -> str | None:
    return value.strip() or None


FALLBACK = Option[str](
    "--criu-fallback",
    "criu_fallback",
    "fallback",
    "skip",
    _choice(FALLBACKS),
    "what marked tests do where snapshots cannot work: skip (default), recreate (fresh "
    "container + readiness + prepare per test), or fail",
    "{skip,recreate,fail}",
)
STRATEGY = Option[str](
    "--criu-strategy",
    "criu_strategy",
    "strategy",
    "fresh",
    _choice(STRATEGIES),
    "default reset strategy: fresh (restore into a new container; resets memory, tmpfs and "
    "files) or inplace (restore the same container; files are NOT reset)",
    "{fresh,inplace}",
)
BINARY = Option[str](
    "--criu-binary",
    "criu_binary",
    "criu_binary",
    "criu",
    _text,
    "the CRIU binary to check (default: criu on PATH); the engine must use the same one",
    "PATH",
)
ENGINE = Option[str](
    "--criu-engine",
    "criu_engine",
    "engine",
    "auto",
    _choice(ENGINE_CHOICES),
    "container engine: auto (default: whichever answers at the engine URL), docker or podman",
    "{auto,docker,podman}",
)
ENGINE_URL: Option[str | None] = Option(
    "--criu-engine-url",
    "criu_engine_url",
    "engine_url",
    None,
    _optional_text,
    "the engine's API socket (default: DOCKER_HOST or Docker's local socket; Podman's "
    "rootful socket unix:///run/podman/podman.sock when only that exists or with "
    "--criu-engine=podman)",
    "URL",
    aliases=("--criu-docker-url",),
    ini_aliases=("criu_docker_url",),
)
READY_TIMEOUT = Option[float](
    "--criu-ready-timeout",
    "criu_ready_timeout",
    "ready_timeout",
    60.0,
    _seconds,
    "seconds a readiness check may take unless it sets its own timeout (default 60)",
    "SECONDS",
)
RESTORE_TIMEOUT = Option[float](
    "--criu-restore-timeout",
    "criu_restore_timeout",
    "restore_timeout",
    120.0,
    _seconds,
    "seconds an engine call (checkpoint, restore) may take (default 120)",
    "SECONDS",
)
KEEP_ON_FAILURE = Option[bool](
    "--criu-keep-on-failure",
    "criu_keep_on_failure",
    "keep_on_failure",
    False,
    _boolean,
    "keep the container of a failed marked test for debugging (its id is printed)",
    is_flag=True,
)
RESTORE_AHEAD = Option[bool](
    "--criu-restore-ahead",
    "criu_restore_ahead",
    "restore_ahead",
    True,
    _boolean,
    "restore the next pristine container in the background while a test runs (default: on "
    "with the fresh strategy and a container network; --criu-no-restore-ahead turns it off)",
    is_flag=True,
    negation="--criu-no-restore-ahead",
)
RESTORE_AHEAD_DEPTH: Option[int | None] = Option(
    "--criu-restore-ahead-depth",
    "criu_restore_ahead_depth",
    "restore_ahead_depth",
    None,
    _depth,
    "how many containers restore-ahead restores at once: auto (default: one per CPU core, "
    f"at most {AUTO_AHEAD_DEPTH}, fewer when a quarter of the available memory cannot hold "
    "that many checkpoints) or a number",
    "auto|N",
)
TIMINGS = Option[bool](
    "--criu-timings",
    "criu_timings",
    "timings",
    False,
    _boolean,
    "list every marked test's reset time in the summary",
    is_flag=True,
)
REPORT: Option[str | None] = Option(
    "--criu-report",
    "criu_report",
    "report",
    None,
    _optional_text,
    "write the run's timings as JSON to PATH: per warm container (origin, mode, prepare, "
    "checkpoint, restores, resets, checkpoint size) and per marked test (reset seconds)",
    "PATH",
)
RESTORE_RETRIES = Option[int](
    "--criu-restore-retries",
    "criu_restore_retries",
    "restore_retries",
    0,
    _count,
    "retry a failed restore this many times before the test errors (default 0)",
    "N",
)
LOCK_TIMEOUT = Option[float](
    "--criu-lock-timeout",
    "criu_lock_timeout",
    "lock_timeout",
    900.0,
    _seconds,
    "seconds to wait for another worker or run preparing the same snapshot (default 900)",
    "SECONDS",
)
CACHE = Option[bool](
    "--criu-cache",
    "criu_cache",
    "cache",
    False,
    _boolean,
    "keep prepared snapshots across runs; reuse them while nothing that shaped them changed",
    is_flag=True,
)
CACHE_DIR: Option[str | None] = Option(
    "--criu-cache-dir",
    "criu_cache_dir",
    "cache_dir",
    None,
    _optional_text,
    "where the snapshot cache lives (default: $XDG_CACHE_HOME/pytest-criu or "
    "~/.cache/pytest-criu); must be private to you",
    "DIR",
)
CACHE_SIZE = Option[int](
    "--criu-cache-size",
    "criu_cache_size",
    "cache_size",
    5 * 1024**3,
    _size,
    "evict least recently used cache entries beyond this size, e.g. 5G or 500M (default 5G)",
    "SIZE",
)
NETWORK_HOLDER = Option[str](
    "--criu-network-holder",
    "criu_network_holder",
    "network_holder",
    "auto",
    _choice(HOLDER_SETTINGS),
    "on Docker, each warm container joins the network namespace of a holder container that "
    "owns its published ports (needed on Docker 28/29, faster everywhere): auto (default: on "
    "for Docker, a holder per live container), on, stable (one holder for the session: the "
    "address and ports never change; restore-ahead off), or off (a namespace per container; "
    "Docker <= 27 only)",
    "{auto,on,off,stable}",
)
HOLDER_IMAGE: Option[str | None] = Option(
    "--criu-holder-image",
    "criu_holder_image",
    "holder_image",
    None,
    _optional_text,
    "image the network holders run `sleep` in (default: the warm container's own image); "
    "for images without a sleep program, e.g. busybox:stable",
    "IMAGE",
)
USERNS: Option[str | None] = Option(
    "--criu-userns",
    "criu_userns",
    "userns",
    None,
    _choice(USERNS_MODES),
    "user namespace of warm containers that do not set userns=: auto (one of their own: "
    "Podman makes one per container, which lets CRIU dump services running as their own "
    "user where root lacks CAP_SYS_RESOURCE) or host (default: the engine's own)",
    "{auto,host}",
)
CACHE_CLEAR = Option[bool](
    "--criu-cache-clear",
    "",
    "cache_clear",
    False,
    _boolean,
    "empty the snapshot cache (entries and their images) before the run",
    is_flag=True,
)

KEYS_TO: Option[str | None] = Option(
    "--criu-keys-to",
    "",
    "keys_to",
    None,
    _optional_text,
    "write the cache keys of the collected tests' warm containers as JSON to PATH and run no "
    "test (no prepare, no container started); `pytest-criu key` uses it",
    "PATH",
)

ALL: tuple[Option[object], ...] = cast(
    "tuple[Option[object], ...]",
    (
        FALLBACK,
        STRATEGY,
        BINARY,
        ENGINE,
        ENGINE_URL,
        READY_TIMEOUT,
        RESTORE_TIMEOUT,
        KEEP_ON_FAILURE,
        RESTORE_AHEAD,
        RESTORE_AHEAD_DEPTH,
        TIMINGS,
        REPORT,
        RESTORE_RETRIES,
        LOCK_TIMEOUT,
        CACHE,
        CACHE_DIR,
        CACHE_SIZE,
        CACHE_CLEAR,
        NETWORK_HOLDER,
        HOLDER_IMAGE,
        USERNS,
        KEYS_TO,
    ),
)


def register(parser: pytest.Parser) -> None:
    group = parser.getgroup("criu", "pytest-criu: warm containers restored by CRIU")
    for option in ALL:
        if option.is_flag:
            group.addoption(
                option.flag, action="store_true", default=None, dest=option.dest, help=option.help
            )
            if option.negation:
                group.addoption(
                    option.negation,
                    action="store_false",
                    default=None,
                    dest=option.dest,
                    help=f"the opposite of {option.flag}",
                )
        else:
            group.addoption(
                option.flag,
                *option.aliases,
                action="store",
                default=None,
                dest=option.dest,
                metavar=option.metavar,
                help=option.help,
            )
        for ini in (option.ini, *option.ini_aliases) if option.ini else ():
            parser.addini(ini, f"{option.help} ({option.flag})", type="string", default=None)


@dataclass(frozen=True)
class Settings:
    """The resolved options of a session."""

    fallback: Fallback
    strategy: Strategy
    criu_binary: str
    engine: EngineChoice
    engine_url: str | None
    ready_timeout: float
    restore_timeout: float
    keep_on_failure: bool
    restore_ahead: bool
    restore_ahead_depth: int | None
    timings: bool
    report: str | None
    restore_retries: int
    lock_timeout: float
    cache: bool
    cache_dir: str | None
    cache_size: int
    cache_clear: bool
    network_holder: HolderSetting
    holder_image: str | None
    userns: UsernsMode | None = None
    keys_to: str | None = None


def resolve(config: pytest.Config) -> Settings:
    """Resolve every option, CLI over ini over default; bad values are usage errors."""
    values = {option.field: _resolve_one(config, option) for option in ALL}
    if values["strategy"] == "inplace" and not _given(config, RESTORE_AHEAD):
        values["restore_ahead"] = False  # the default yields to the strategy
    settings = Settings(**values)  # type: ignore[arg-type]
    if settings.restore_ahead and settings.strategy == "inplace":
        raise pytest.UsageError(
            "--criu-restore-ahead needs the fresh strategy (it restores the next container "
            "while a test runs); drop it or use --criu-strategy=fresh"
        )
    return settings


def _given(config: pytest.Config, option: Option[Any]) -> bool:
    """Whether the user set ``option`` (on the command line or in the ini file)."""
    return _raw(config, option)[0] is not None


def _raw(config: pytest.Config, option: Option[Any]) -> tuple[object, str]:
    """The value as given, CLI over ini (and its older keys), and where it came from."""
    raw = config.getoption(option.dest, default=None)
    source = option.flag
    for ini in (option.ini, *option.ini_aliases) if option.ini else ():
        if raw is not None:
            break
        raw = config.getini(ini)
        source = f"ini option {ini}"
    return raw, source


def _resolve_one(config: pytest.Config, option: Option[object]) -> object:
    raw, source = _raw(config, option)
    if raw is None:
        return option.default
    if isinstance(raw, bool):
        return raw
    try:
        return option.parse(str(raw))
    except ValueError as error:
        raise pytest.UsageError(f"{source}: {error}") from None


__all__ = ["FALLBACKS", "Settings", "register", "resolve"]
