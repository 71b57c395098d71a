"""``results.json`` back into :mod:`benchmarks.records`, also as earlier harnesses wrote it.

What older files lack or hold differently (each read as the run meant it):

- no ``engine`` on workload, restore-ahead and endurance results (before ``--engines``):
  they ran on Docker; no ``meta.engines`` or ``meta.engines_skipped``;
- ``flat`` one object or null instead of a list (before ``--engines``);
- no ``short`` (before the short-tests part), no ``control_samples`` in the endurance run,
  no ``podman`` version in ``meta.host``;
- ``meta.plugin`` ``{"origin": "not frozen"}`` where the run had no frozen copy;
- strategies and modes the harness no longer runs (``fresh-deferred``, ``ahead-early``
  of ``--proposals``): kept, the tables show only the strategies they know.

Values are kept as written (a number stays an ``int`` or a ``float``), so that the report of
a file is the same whichever harness wrote it. A file that is not a run's results raises
:class:`ResultsFileError` naming the file and the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeGuard, TypeVar

from .records import (
    AheadResult,
    FlatResult,
    Host,
    Leftovers,
    Meta,
    ProcessSample,
    Results,
    Series,
    ShortResult,
    ShortRun,
    WorkloadResult,
)
from .source import FrozenPlugin

T = TypeVar("T")
D = TypeVar("D")


class ResultsFileError(ValueError):
    """A results file does not hold what a benchmark run writes."""


def load_results(path: Path) -> Results:
    """The results a run wrote to ``path`` (its ``results.json``)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise ResultsFileError(f"{path}: cannot read it ({error})") from None
    except json.JSONDecodeError as error:
        raise ResultsFileError(f"{path}: not JSON ({error})") from None
    return results_from_json(data, str(path))


def results_from_json(data: object, source: str = "results.json") -> Results:
    """The results in ``data`` (``results.json`` as parsed); errors name ``source``."""
    try:
        top = _Object(data, "")
        flat = top.get("flat")
        if isinstance(flat, dict):
            flat = [flat]  # before --engines: one endurance run, or null
        return Results(
            meta=_meta(top.object("meta")),
            workloads=top.each("workloads", _workload),
            ahead=top.each("ahead", _ahead),
            flat=[_flat(item) for item in _Object.listed(flat or [], "flat")],
            short=top.each("short", _short),
        )
    except ResultsFileError as error:
        raise ResultsFileError(f"{source}: {error}") from None


class _Object:
    """One JSON object of the file, read field by field; errors say where in the file.

    ``where`` is the object's path in the file (``workloads[0].series.fresh``; empty: the
    whole file).
    """

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, dict):
            raise ResultsFileError(_at(where, f"expected an object, found {_kind(data)}"))
        self.data: dict[str, object] = data
        self.where = where

    @staticmethod
    def listed(data: object, where: str) -> list[_Object]:
        if not isinstance(data, list):
            raise ResultsFileError(_at(where, f"expected a list, found {_kind(data)}"))
        return [_Object(item, f"{where}[{index}]") for index, item in enumerate(data)]

    def get(self, key: str) -> object:
        return self.data.get(key)

    def _value(self, key: str, check: Callable[[object], TypeGuard[T]], kind: str) -> T:
        """The value at ``key``, which must be there and pass ``check``."""
        if key not in self.data:
            raise ResultsFileError(_at(self.where, f"no {key!r}; is this a benchmark run's file?"))
        value = self.data[key]
        if not check(value):
            raise ResultsFileError(f"{self.at(key)}: expected {kind}, found {_kind(value)}")
        return value

    def _or(
        self, key: str, default: D, check: Callable[[object], TypeGuard[T]], kind: str
    ) -> T | D:
        """The value at ``key``; ``default`` when it is missing or null."""
        if self.data.get(key) is None:
            return default
        return self._value(key, check, kind)

    def text(self, key: str) -> str:
        return self._value(key, _is_text, "a string")

    def optional_text(self, key: str) -> str | None:
        return self._or(key, None, _is_text, "a string or null")

    def number(self, key: str) -> float:
        return self._value(key, _is_number, "a number")

    def optional_number(self, key: str) -> float | None:
        return self._or(key, None, _is_number, "a number or null")

    def integer(self, key: str) -> int:
        return self._value(key, _is_integer, "an integer")

    def count(self, key: str) -> int:
        """An integer that older files may lack (0)."""
        return self._or(key, 0, _is_integer, "an integer")

    def optional_integer(self, key: str) -> int | None:
        return self._or(key, None, _is_integer, "an integer or null")

    def flag(self, key: str, default: bool) -> bool:
        return self._or(key, default, _is_flag, "true or false")

    def optional_flag(self, key: str) -> bool | None:
        return self._or(key, None, _is_flag, "true, false or null")

    def numbers(self, key: str) -> list[float]:
        return self._or(key, [], _are_numbers, "a list of numbers")

    def integers(self, key: str) -> list[int]:
        return self._or(key, [], _are_integers, "a list of integers")

    def texts(self, key: str) -> list[str]:
        return self._or(key, [], _are_texts, "a list of strings")

    def load(self, key: str) -> tuple[float, float, float]:
        values = self._value(key, _are_numbers, "three numbers")
        if len(values) != 3:
            raise ResultsFileError(f"{self.at(key)}: expected three numbers, found {values}")
        return (values[0], values[1], values[2])

    def engine(self) -> str:
        """The engine a result ran on: results from before ``--engines`` ran on Docker."""
        return self.optional_text("engine") or "docker"

    def object(self, key: str) -> _Object:
        return _Object(self._value(key, _is_object, "an object"), self.at(key))

    def each(self, key: str, read: Callable[[_Object], T]) -> list[T]:
        """Every item of the list at ``key`` (none when it is missing or null), read."""
        return [read(item) for item in self.listed(self.data.get(key) or [], self.at(key))]

    def by_name(self, key: str, read: Callable[[_Object], T]) -> dict[str, T]:
        """Every value of the object at ``key`` (none when it is missing or null), read."""
        found = self._or(key, {}, _is_object, "an object")
        return {name: read(_Object(item, f"{self.at(key)}.{name}")) for name, item in found.items()}

    def numbers_by_name(self, key: str) -> dict[str, list[float]]:
        """An object of lists of numbers (phases, modes), empty when missing or null."""
        found = self._or(key, {}, _is_object, "an object")
        for name, values in found.items():
            if not _are_numbers(values):
                raise ResultsFileError(
                    f"{self.at(key)}.{name}: expected a list of numbers, found {_kind(values)}"
                )
        return {name: list(values) for name, values in found.items() if _are_numbers(values)}

    def as_written(self, key: str) -> dict[str, Any]:
        """An object kept as it is (empty when missing or null)."""
        return self._or(key, {}, _is_object, "an object")

    def texts_by_name(self, key: str) -> dict[str, str]:
        """An object of strings, empty when missing or null."""
        found = self._or(key, {}, _is_object, "an object")
        for name, value in found.items():
            if not _is_text(value):
                raise ResultsFileError(
                    f"{self.at(key)}.{name}: expected a string, found {_kind(value)}"
                )
        return {name: str(value) for name, value in found.items()}

    def at(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key


def _at(where: str, problem: str) -> str:
    return f"{where}: {problem}" if where else problem


def _kind(value: object) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else ""
    return text if text and len(text) <= 40 else type(value).__name__


def _is_object(value: object) -> TypeGuard[dict[str, Any]]:
    return isinstance(value, dict)


def _is_text(value: object) -> TypeGuard[str]:
    return isinstance(value, str)


def _is_integer(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_flag(value: object) -> TypeGuard[bool]:
    return isinstance(value, bool)


def _are_numbers(value: object) -> TypeGuard[list[float]]:
    return isinstance(value, list) and all(_is_number(item) for item in value)


def _are_integers(value: object) -> TypeGuard[list[int]]:
    return isinstance(value, list) and all(_is_integer(item) for item in value)


def _are_texts(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(_is_text(item) for item in value)


def _rounds(item: _Object) -> list[list[float]]:
    rounds = item.get("rounds") or []
    if not isinstance(rounds, list) or not all(_are_numbers(batch) for batch in rounds):
        raise ResultsFileError(f"{item.at('rounds')}: expected lists of numbers")
    return [list(batch) for batch in rounds]


def _series(item: _Object) -> Series:
    return Series(
        samples=item.numbers("samples"),
        rounds=_rounds(item),
        criu=item.numbers("criu"),
        phases=item.numbers_by_name("phases"),
        gaps=item.numbers("gaps"),
        prepare=item.numbers("prepare"),
        checkpoint=item.numbers("checkpoint"),
        checkpoint_bytes=item.integers("checkpoint_bytes"),
        batch_seconds=item.numbers("batch_seconds"),
        errors=item.texts("errors"),
        skipped=item.optional_text("skipped"),
    )


def _workload(item: _Object) -> WorkloadResult:
    return WorkloadResult(
        name=item.text("name"),
        description=item.optional_text("description") or "",
        engine=item.engine(),
        checkpoint_bytes=item.optional_integer("checkpoint_bytes"),
        physical_bytes=item.optional_integer("physical_bytes"),
        prepare_seconds=item.optional_number("prepare_seconds"),
        checkpoint_seconds=item.optional_number("checkpoint_seconds"),
        series=item.by_name("series", _series),
        error=item.optional_text("error"),
    )


def _ahead(item: _Object) -> AheadResult:
    return AheadResult(
        workload=item.text("workload"),
        sleep=item.number("sleep"),
        engine=item.engine(),
        series=item.by_name("series", _series),
        steady=item.numbers_by_name("steady"),
        tests=item.count("tests"),
        unique_containers=item.flag("unique_containers", True),
        changed_under_test=item.count("changed_under_test"),
        probes_failed=item.count("probes_failed"),
        restored_ahead=item.count("restored_ahead"),
        ahead_ready=item.count("ahead_ready"),
        ahead_pending=item.count("ahead_pending"),
        background_restores=item.numbers("background_restores"),
        test_seconds=item.numbers("test_seconds"),
        errors=item.texts("errors"),
    )


def _sample(item: _Object) -> ProcessSample:
    return ProcessSample(
        test=item.integer("test"),
        rss_kib=item.integer("rss_kib"),
        threads=item.integer("threads"),
        fds=item.integer("fds"),
        python_threads=item.optional_integer("python_threads"),
        containers=item.optional_integer("containers"),
        after_session=item.flag("after_session", False),
    )


def process_sample(data: object, where: str = "sample") -> ProcessSample:
    """One sample as the instrumentation writes it (a JSON object)."""
    return _sample(_Object(data, where))


def _flat(item: _Object) -> FlatResult:
    return FlatResult(
        tests=item.integer("tests"),
        engine=item.engine(),
        resets=item.numbers("resets"),
        samples=item.each("samples", _sample),
        control_samples=item.each("control_samples", _sample),
        leftover_containers=item.optional_integer("leftover_containers"),
        error=item.optional_text("error"),
    )


def _short_run(item: _Object) -> ShortRun:
    return ShortRun(
        walls=item.numbers("walls"),
        test_phases=item.numbers("test_phases"),
        resets=item.numbers("resets"),
        errors=item.texts("errors"),
    )


def _short(item: _Object) -> ShortResult:
    return ShortResult(
        workload=item.text("workload"),
        engine=item.engine(),
        tests=item.integer("tests"),
        runs=item.by_name("runs", _short_run),
    )


def _host(item: _Object) -> Host:
    return Host(
        cores=item.optional_integer("cores"),
        kernel=item.text("kernel"),
        python=item.text("python"),
        docker=item.optional_text("docker"),
        containerd=item.optional_text("containerd"),
        podman=item.optional_text("podman"),
        criu=item.text("criu"),
        load_before=item.load("load_before"),
        load_after=item.load("load_after") if item.get("load_after") is not None else None,
    )


def _plugin(meta: _Object) -> FrozenPlugin | None:
    if meta.get("plugin") is None:
        return None
    plugin = meta.object("plugin")
    origin = plugin.optional_text("origin")
    if origin in (None, "not frozen"):
        return None
    return FrozenPlugin(
        path=plugin.optional_text("path") or "",
        origin=origin,
        commit=plugin.optional_text("commit"),
        dirty=plugin.optional_flag("dirty"),
        digest=plugin.text("digest"),
    )


def _leftovers(meta: _Object) -> Leftovers | None:
    if meta.get("leftovers_removed") is None:
        return None
    item = meta.object("leftovers_removed")
    return Leftovers(
        containers=item.integer("containers"),
        images=item.integer("images"),
        engines=item.by_name("engines", lambda counts: {k: counts.integer(k) for k in counts.data}),
    )


def _meta(item: _Object) -> Meta:
    return Meta(
        run_id=item.text("run_id"),
        mode=item.text("mode"),
        plan=item.as_written("plan"),
        command=item.text("command"),
        started=item.text("started"),
        host=_host(item.object("host")),
        engines=item.texts("engines"),
        engines_skipped=item.texts_by_name("engines_skipped"),
        plugin=_plugin(item),
        leftovers_removed=_leftovers(item),
        seconds=item.optional_number("seconds") or 0.0,
    )
