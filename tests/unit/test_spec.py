"""Validation of warm-container declarations: bad input fails when it is declared."""

from __future__ import annotations

import pytest

from pytest_criu import SpecError, ready, warm_container
from pytest_criu.engine.spec import Port, build_spec


@pytest.mark.parametrize(
    ("value", "expected"),
    [(6379, Port(6379)), ("6379", Port(6379)), ("53/udp", Port(53, "udp")), (" 80/tcp ", Port(80))],
)
def test_port_parse_accepts_ints_and_protocols(value: object, expected: Port) -> None:
    assert Port.parse(value) == expected


@pytest.mark.parametrize("value", ["http", "80/icmp", 0, 70000, "-1", 6379.0, None, True, "80:80"])
def test_port_parse_rejects_malformed(value: object) -> None:
    with pytest.raises(SpecError, match="ports"):
        Port.parse(value)


def test_duplicate_ports_are_rejected() -> None:
    with pytest.raises(SpecError, match="duplicate"):
        build_spec(image="x", ports=[6379, "6379/tcp"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image": ""}, "image: expected a non-empty"),
        ({"image": 3}, "image: expected a non-empty"),
        ({"image": "x", "command": "redis-server --save ''"}, "command: give a list"),
        ({"image": "x", "command": []}, "command: the list is empty"),
        ({"image": "x", "tmpfs": {"data": ""}}, "tmpfs: 'data' is not an absolute path"),
        ({"image": "x", "tmpfs": {"/data": 64}}, "tmpfs: options of /data must be a string"),
        ({"image": "x", "tmpfs": "/data"}, "tmpfs: expected a mapping"),
        ({"image": "x", "environment": ["A=1"]}, "environment: expected a mapping"),
        ({"image": "x", "environment": {"1A": "x"}}, "not a valid variable name"),
        ({"image": "x", "volumes": {"/srv": "data"}}, "not an absolute path"),
        ({"image": "x", "volumes": {"/srv": "/data:rx"}}, "mode 'rx'"),
        ({"image": "x", "labels": {"a": 1}}, "labels: expected a mapping of strings"),
    ],
)
def test_build_spec_names_the_bad_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        build_spec(**kwargs)


def test_environment_values_never_shown() -> None:
    spec = build_spec(image="x", environment={"PASSWORD": "hunter2-secret"})
    assert "hunter2-secret" not in repr(spec)
    assert spec.redact("login failed for hunter2-secret") == "login failed for ***"
    with pytest.raises(SpecError) as info:
        build_spec(image="x", environment={"TOKEN": ["hunter2-secret"]})
    assert "hunter2-secret" not in str(info.value)


def test_fingerprint_changes_with_the_spec() -> None:
    base = build_spec(image="x", ports=[1])
    assert base.fingerprint() == build_spec(image="x", ports=["1/tcp"]).fingerprint()
    assert base.fingerprint() != build_spec(image="x", ports=[2]).fingerprint()
    assert (
        base.fingerprint() != build_spec(image="x", ports=[1], environment={"A": "1"}).fingerprint()
    )


def test_tmpfs_list_form_means_default_options() -> None:
    assert dict(build_spec(image="x", tmpfs=["/a", "/b"]).tmpfs) == {"/a": "", "/b": ""}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prepare": "seed"}, "prepare: expected a callable"),
        ({"prepare": lambda: None}, "must accept one argument"),
        ({"prepare": lambda a, b: None}, "must accept one argument"),
        ({"ready": 6379}, "ready: 6379 is not a readiness check"),
        ({"ready": [ready.tcp(1), "log"]}, "ready: 'log' is not a readiness check"),
        ({"strategy": "quick"}, "strategy: 'quick' is not one of fresh, inplace"),
        ({"ready_timeout": 0}, "ready_timeout"),
        ({"volume_policy": "keep"}, "volume_policy"),
    ],
)
def test_warm_container_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        warm_container("x", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ready.tcp("http"), "ready.tcp"),
        (lambda: ready.http(80, "health"), "path must start with '/'"),
        (lambda: ready.log("("), "not a valid regex"),
        (lambda: ready.cmd("pg_isready"), "expected a list of strings"),
        (lambda: ready.tcp(80, timeout=-1), "timeout must be a positive"),
        (lambda: ready.call(42), "is not callable"),  # type: ignore[arg-type]
    ],
)
def test_readiness_checks_validate_their_arguments(build: object, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        build()  # type: ignore[operator]


def test_warm_container_accepts_a_full_declaration() -> None:
    fixture = warm_container(
        "redis:7",
        command=["redis-server", "--save", ""],
        environment={"A": "1"},
        ports=[6379],
        tmpfs={"/data": ""},
        ready=[ready.tcp(6379), ready.log("Ready"), lambda handle: True],
        prepare=lambda handle: None,
        strategy="inplace",
    )
    from pytest_criu.fixtures import declaration_of

    # pytest >= 8.4 wraps fixture functions in an object; older ones return the function.
    unwrap = getattr(fixture, "_get_wrapped_function", lambda: fixture)
    declaration = declaration_of(unwrap())
    assert declaration is not None
    assert declaration.spec.ports == (Port(6379),)
    assert [check.description for check in declaration.ready][:2] == [
        "ready.tcp(6379/tcp)",
        "ready.log('Ready')",
    ]
