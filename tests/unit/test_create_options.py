"""``create_options=``: validated when declared, split between container and host config."""

from __future__ import annotations

import pytest

from pytest_criu import SpecError, warm_container
from pytest_criu.engine import create_options as creating
from pytest_criu.engine.spec import build_spec

GOOD = {
    "shm_size": "256m",
    "ulimits": [{"name": "nofile", "soft": 4096, "hard": 8192}],
    "hostname": "db",
    "extra_hosts": {"api.test": "10.0.0.5"},
    "healthcheck": {"test": ["CMD", "true"], "interval": 1_000_000_000},
}


def test_accepted_options_are_kept_and_split() -> None:
    spec = build_spec(image="x", create_options=GOOD)
    assert dict(spec.create_options) == GOOD
    assert creating.container_options(spec.create_options) == {
        "hostname": "db",
        "healthcheck": {"interval": 1_000_000_000, "test": ["CMD", "true"]},
    }
    assert set(creating.host_options(spec.create_options)) == {
        "shm_size",
        "ulimits",
        "extra_hosts",
    }


def test_every_accepted_option_goes_to_exactly_one_call() -> None:
    assert not set(creating.CONTAINER_OPTIONS) & set(creating.HOST_OPTIONS)
    assert not set(creating.ACCEPTED) & set(creating.REFUSED)


def test_docker_py_builds_a_host_config_from_them() -> None:
    docker = pytest.importorskip("docker")
    client = docker.APIClient(version="1.41")
    try:
        config = client.create_host_config(**creating.host_options(creating.validate(GOOD)))
    finally:
        client.close()
    assert config["ShmSize"] == 256 * 1024 * 1024
    assert config["Ulimits"] == [{"Name": "nofile", "Soft": 4096, "Hard": 8192}]
    assert config["ExtraHosts"] == ["api.test:10.0.0.5"]


def test_unknown_option_lists_the_accepted_ones() -> None:
    with pytest.raises(SpecError) as info:
        warm_container("x", create_options={"shm": "64m"})
    message = str(info.value)
    assert message.startswith("create_options: unknown option 'shm'; accepted: ")
    for key in ("shm_size", "ulimits", "hostname", "extra_hosts", "healthcheck"):
        assert key in message


@pytest.mark.parametrize(
    ("key", "value", "hint"),
    [
        ("ports", {"6379/tcp": 6379}, "use warm_container(ports=[...])"),
        ("port_bindings", {6379: 6379}, "use warm_container(ports=[...])"),
        ("tmpfs", {"/data": ""}, "use warm_container(tmpfs={...})"),
        ("volumes", ["/data"], "use warm_container(volumes={...})"),
        ("mounts", [], "use warm_container(volumes={...}) or tmpfs={...}"),
        ("network_mode", "host", "use warm_container(network_mode=...)"),
        ("networking_config", {}, "use warm_container(network_mode=...)"),
        ("tty", True, "a container with a TTY cannot be checkpointed by CRIU"),
        ("stdin_open", True, "an open stdin cannot be checkpointed"),
        ("environment", {"A": "1"}, "use warm_container(environment={...})"),
        ("restart_policy", {"Name": "always"}, "would restart the stopped, checkpointed"),
        ("auto_remove", True, "and its checkpoint with it"),
        ("privileged", True, "cap_add"),
        ("pid_mode", "host", "cannot be checkpointed"),
        ("name", "db", "names and labels every container"),
        ("sysctls", {"net.core.somaxconn": "1024"}, "a restored container does not get them"),
    ],
)
def test_refused_options_say_what_to_use_instead(key: str, value: object, hint: str) -> None:
    with pytest.raises(SpecError) as info:
        warm_container("x", create_options={key: value})
    assert str(info.value).startswith(f"create_options: {key!r} is not accepted: ")
    assert hint in str(info.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ([("shm_size", "64m")], "create_options: expected a mapping such as"),
        ({"shm_size": "lots"}, "shm_size must be a number of bytes or a string like '256m'"),
        ({"shm_size": True}, "shm_size must be a number of bytes"),
        ({"hostname": ""}, "hostname must be a non-empty string"),
        ({"pids_limit": "100"}, "pids_limit must be an integer"),
        ({"cap_add": "NET_ADMIN"}, "cap_add must be a list of strings"),
        ({"ulimits": {"nofile": 1024}}, "ulimits must be a list like"),
        ({"ulimits": [{"name": "nofile", "soft": "1k"}]}, "is not a limit"),
        ({"extra_hosts": "db:10.0.0.5"}, "extra_hosts must map names to addresses"),
        ({"healthcheck": ["CMD", "true"]}, "healthcheck must be a mapping with a 'test'"),
        ({"healthcheck": {"test": "true", "every": 1}}, "unknown keys ['every']"),
        ({"healthcheck": {"test": []}}, "'test' must be a shell command string or a list"),
        ({"healthcheck": {"test": "true", "interval": 1.5}}, "interval must be a non-negative"),
    ],
)
def test_bad_values_are_named(options: object, message: str) -> None:
    with pytest.raises(SpecError) as info:
        warm_container("x", create_options=options)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_create_options_are_part_of_the_fingerprint() -> None:
    plain = build_spec(image="x")
    small = build_spec(image="x", create_options={"shm_size": "64m"})
    large = build_spec(image="x", create_options={"shm_size": "256m"})
    assert len({plain.fingerprint(), small.fingerprint(), large.fingerprint()}) == 3
    reordered = build_spec(image="x", create_options={"hostname": "a", "shm_size": "64m"})
    same = build_spec(image="x", create_options={"shm_size": "64m", "hostname": "a"})
    assert reordered.fingerprint() == same.fingerprint()


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        (
            'warm_container("redis:7", create_options={"tty": True})',
            "create_options: 'tty' is not accepted: a container with a TTY cannot be "
            "checkpointed by CRIU; leave tty off",
        ),
        (
            'warm_container("redis:7", create_options={"shm": "64m"})',
            "create_options: unknown option 'shm'; accepted: cap_add, cap_drop, cpu_shares, dns, "
            "dns_search, extra_hosts, healthcheck, hostname, mem_limit, pids_limit, shm_size, "
            "stop_signal, ulimits",
        ),
        (
            'warm_container("redis:7", ready=ready.log("Ready", times=0))',
            "ready.log: times must be a whole number >= 1 (how many matches to wait for), got 0",
        ),
    ],
)
def test_a_bad_declaration_stops_the_run_at_collection(
    pytester: pytest.Pytester, declaration: str, message: str
) -> None:
    pytester.makeconftest(f"from pytest_criu import ready, warm_container\nbox = {declaration}\n")
    pytester.makepyfile("def test_x(box):\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"E   pytest_criu.engine.errors.SpecError: {message}"])
    result.stdout.no_fnmatch_line("*starting container*")
