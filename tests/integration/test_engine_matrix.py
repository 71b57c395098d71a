"""The plugin against several engines: Docker 20.10 (the main daemon), 26.1, 28.x; Podman 4.3.

Docker 26.1 (Debian trixie) and 28.x (Debian sid) come from ``tests/tooling/engines.py`` and run
here as second daemons beside the main one (``tests/engines.py``), with bookworm's runc 1.1.5
and the host's CRIU. The same small suite (a warm container with a listening socket, tmpfs and
seeded files; four marked tests that each check pristine state) runs against each engine and
network mode, and the outcome is asserted exactly, failures included:

- 20.10 and 26.1 restore bridge-network and host-network containers;
- 28.x restores bridge- and none-network containers through network holders (the default
  on Docker: the namespace has a path, so the daemon skips the bind-mount of
  /proc/<pid 0>/ns/net that moby issue 50750 is about) and host-network ones; with
  --criu-network-holder=off the plugin knows before preparing that it cannot restore there;
- 20.10 restores through holders and, with --criu-network-holder=off, with a namespace per
  container;
- on every engine, --criu-restore-ahead with host networking restores the next container onto
  the port of the current one, which then receives no new connections;
- Podman 4.3 (bookworm's, rootful service from ``pytest-criu setup --engine podman``) restores all three
  network modes, recognised from the socket alone (``--criu-engine=auto``);
- Podman 5.8 (sid) and 5.4 (trixie), unpacked by ``tests/tooling/podman5.py`` with their own
  runc, conmon and netavark and started as services beside 4.3 (``tests/podman5.py``), restore
  all three network modes the same way.

Without the engines installed these tests skip (and fail under CI, where
``python -m tests.tooling.engines`` and ``python -m tests.tooling.podman5`` must have run).
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from pytest_criu.engine.doctor.rules import parse_criu_version
from pytest_criu.setup.criu import SYSTEM_PATH
from tests.engines import EngineDaemon, find_engine, running_daemon
from tests.helpers import TINY_IMAGE, doctor, line_of, podman_url_or_skip
from tests.podman5 import PodmanService, find_podman, running_podman

MAIN_URL = "unix:///var/run/docker.sock"
ISSUE_50750 = (
    "this Docker version cannot restore containers with their own network namespace "
    "(Docker 28/29, moby issue 50750)"
)


@dataclass(frozen=True)
class Target:
    """A daemon to run the suite against."""

    engine: str
    url: str
    version: str
    daemon: EngineDaemon | None = None
    podman: PodmanService | None = None

    @property
    def private(self) -> bool:
        """Started by the test run (a second daemon or a Podman 5 service): checked by
        ``left_behind``; the host's engines are checked by ``no_leaks``."""
        return self.daemon is not None or self.podman is not None


# -- daemons --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def criu_dir() -> str:
    """The directory of the criu the second daemons put on their PATH (the host's wrapper)."""
    criu = shutil.which("criu")
    if criu is None:
        pytest.skip("no criu on PATH; run: sudo .venv/bin/pytest-criu setup")
    return os.path.dirname(criu)


def _second_daemon(name: str, criu_dir: str) -> Iterator[Target]:
    install, why = find_engine(name)
    if install is None:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    with running_daemon(install, criu_dir=criu_dir) as daemon:
        yield Target(name, daemon.url, _server_version(daemon.url), daemon)


def _server_version(url: str) -> str:
    client = docker.APIClient(base_url=url, version="auto", timeout=30)
    try:
        return str(client.version()["Version"])
    finally:
        client.close()


@pytest.fixture(scope="module")
def docker20() -> Target:
    """The main daemon, when it is Docker 20.10 (bookworm's docker.io, as pytest-criu setup
    installs it on Debian 12)."""
    version = _server_version(MAIN_URL)
    if not version.startswith("20.10."):
        pytest.skip(f"the main daemon is Docker {version}, not 20.10")
    return Target("docker-20", MAIN_URL, version)


@pytest.fixture(scope="module")
def podman4() -> Target:
    """Debian 12's rootful Podman 4.3 service, as ``pytest-criu setup`` starts it."""
    url = podman_url_or_skip()
    return Target("podman-4", url, _server_version(url))


def _podman5(name: str) -> Iterator[Target]:
    install, why = find_podman(name)
    if install is None:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    with running_podman(install, load_images=(TINY_IMAGE,)) as service:
        yield Target(name, service.url, _server_version(service.url), podman=service)


@pytest.fixture(scope="module")
def podman58() -> Iterator[Target]:
    """Debian sid's Podman 5.8 with its runc, conmon and netavark, as a second service."""
    yield from _podman5("podman-5.8")


@pytest.fixture(scope="module")
def podman54() -> Iterator[Target]:
    """Debian trixie's Podman 5.4 with its runc, conmon and netavark, as a second service."""
    yield from _podman5("podman-5.4")


@pytest.fixture(scope="module")
def docker26(criu_dir: str) -> Iterator[Target]:
    """Debian trixie's docker.io 26.1 with containerd 1.7, as a second daemon."""
    yield from _second_daemon("docker-26", criu_dir)


@pytest.fixture(scope="module")
def docker28(criu_dir: str) -> Iterator[Target]:
    """Debian sid's docker.io 28.x with containerd 2.x, as a second daemon."""
    yield from _second_daemon("docker-28", criu_dir)


def watched(request: pytest.FixtureRequest, left_behind: list[Target], engine: str) -> Target:
    """The daemon of ``engine``, checked for leftovers after the test."""
    target = request.getfixturevalue(engine.replace("-", "").replace(".", ""))
    assert isinstance(target, Target)
    if not target.private:
        request.getfixturevalue("no_leaks")
    else:
        left_behind.append(target)
    return target


def test_each_engine_is_the_version_it_claims(docker26: Target, docker28: Target) -> None:
    assert docker26.version.startswith("26.1."), docker26
    assert docker28.version.startswith("28."), docker28
    for target in (docker26, docker28):
        assert target.daemon is not None
        facts = target.daemon.install.facts
        assert target.version.startswith(facts["DOCKER_VERSION"])
        assert facts["RUNC_PACKAGE"].startswith(facts["RUNC_VERSION"]), facts
        info = _info(target.url)
        assert info["DockerRootDir"] == str(target.daemon.data_root)
        assert info["RuncCommit"]["ID"].startswith(facts["RUNC_VERSION"]), info["RuncCommit"]
    assert _info(docker26.url)["ContainerdCommit"]["ID"].startswith("1.7.")


def _info(url: str) -> dict[str, Any]:
    client = docker.APIClient(base_url=url, version="auto", timeout=30)
    try:
        return dict(client.info())
    finally:
        client.close()


# -- doctor ---------------------------------------------------------------------------------


def test_doctor_passes_on_docker_26(docker26: Target) -> None:
    result = doctor("--docker-url", docker26.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[FAIL]" not in result.stdout
    assert line_of(result.stdout, "docker version") == (
        f"[ ok ] docker version       {docker26.version} (API 1.45): "
        "no known checkpoint regressions"
    )
    assert line_of(result.stdout, "docker experimental").startswith("[ ok ]")
    assert line_of(result.stdout, "daemon's criu").startswith("[ ok ]")
    assert docker26.daemon is not None
    assert f"{docker26.daemon.data_root} is readable and writable" in result.stdout


def test_doctor_names_docker_28_stack_and_network_path(docker28: Target) -> None:
    result = doctor("--docker-url", docker28.url)
    assert result.returncode == 0, result.stdout + result.stderr
    line = line_of(result.stdout, "docker version")
    assert line.startswith("[ ok ]")
    assert "restores containers that join a network holder" in line
    assert "moby issue 50750" in line
    assert docker28.daemon is not None
    facts = docker28.daemon.install.facts
    stack = line_of(result.stdout, "engine stack")
    assert f"Docker {docker28.version}, containerd {facts['CONTAINERD_VERSION']}" in stack
    assert f"runc {facts['RUNC_VERSION']}" in stack
    path = line_of(result.stdout, "network path")
    assert "bridge and none networks: joins a network holder" in path
    assert f"Docker {docker28.version} restores only these two" in path
    assert result.stdout.splitlines()[-1].startswith("verdict: snapshots can work here")


def test_doctor_names_podman_5_stack(podman58: Target) -> None:
    """The stack a checkpoint goes through: Podman 5.8's own conmon and runc, the host's CRIU."""
    assert podman58.podman is not None
    result = doctor("--engine-url", podman58.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[FAIL]" not in result.stdout
    facts = podman58.podman.install.facts
    criu = shutil.which("criu", path=SYSTEM_PATH)
    assert criu is not None
    version = parse_criu_version(
        subprocess.run([criu, "--version"], check=True, capture_output=True, text=True).stdout
    )

    def words(name: str) -> str:
        return " ".join(line_of(result.stdout, name).split())

    # runc says "1.3.6+ds1": Debian's suffix, which engine.env leaves out.
    assert fnmatch.fnmatch(
        words("engine stack"),
        f"[[] ok []] engine stack Podman {podman58.version}, conmon {facts['CONMON_VERSION']}, "
        f"runc {facts['RUNC_VERSION']}*, CRIU {version}",
    ), words("engine stack")
    assert words("podman rootful").startswith(
        "[ ok ] podman rootful rootful service, OCI runtime runc"
    )
    assert words("daemon's criu").startswith("[ ok ]")
    assert words("podman exec clean-up") == "[ ok ] podman exec clean-up exit_command_delay = 5 s"
    assert result.stdout.splitlines()[-1].startswith("verdict: snapshots can work here")


# -- the suite ------------------------------------------------------------------------------

SUITE_CONFTEST = """
from pytest_criu import ready, warm_container

from suite_settings import IMAGE, NETWORK, PORT

LISTEN = f"127.0.0.1:{PORT}" if NETWORK == "host" else str(PORT)
SCRIPT = (
    "echo ok > /var/www/index.html; "
    f"httpd -f -p {LISTEN} -h /var/www & echo booted; exec sleep 100000"
)


def seed(handle):
    code, out = handle.exec(["sh", "-c", "echo seeded > /seed && echo t > /data/seed"])
    assert code == 0, out


box = warm_container(
    IMAGE,
    command=["sh", "-c", SCRIPT],
    ports=[PORT] if NETWORK == "bridge" else [],
    network_mode=None if NETWORK == "bridge" else NETWORK,
    tmpfs={"/data": ""},
    ready=ready.log("booted"),
    prepare=seed,
)
"""

SUITE_TESTS = """
import urllib.request

import pytest

from suite_settings import NETWORK, PORT

SEEN = []


def sh(handle, script):
    return handle.exec(["sh", "-c", script])[1].strip()


def from_the_host(box):
    if NETWORK == "bridge":
        host, port = box.address(PORT)
    elif NETWORK == "host":
        host, port = "127.0.0.1", PORT
    else:
        return "ok"  # network none: nothing reaches it from outside
    with urllib.request.urlopen(f"http://{host}:{port}/", timeout=5) as response:
        return response.read().decode().strip()


@pytest.mark.parametrize("i", range(4))
@pytest.mark.criu_snapshot
def test_pristine(box, i):
    assert box.restores == i + 1
    assert box.id not in SEEN
    SEEN.append(box.id)
    assert sh(box, "cat /seed") == "seeded"
    assert sh(box, "ls /data") == "seed"
    assert sh(box, "test -e /dirty && echo dirty || echo clean") == "clean"
    assert sh(box, "wget -qO- http://127.0.0.1:" + str(PORT) + "/") == "ok"
    assert from_the_host(box) == "ok"
    sh(box, "touch /dirty /data/dirty && echo dirty > /var/www/index.html")
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_suite(pytester: pytest.Pytester, network: str, **settings: object) -> int:
    """Write the suite's conftest and settings; return the service's port."""
    port = free_port() if network == "host" else 8080
    values = {"IMAGE": TINY_IMAGE, "NETWORK": network, "PORT": port, **settings}
    pytester.makepyfile(
        suite_settings="\n".join(f"{key} = {value!r}" for key, value in values.items())
    )
    pytester.makeconftest(SUITE_CONFTEST)
    return port


def run_suite(
    pytester: pytest.Pytester, target: Target, network: str, *extra: str, tests: int = 4
) -> pytest.RunResult:
    """Run the suite (``tests`` marked tests) against ``target`` in a pytest subprocess."""
    write_suite(pytester, network)
    pytester.makepyfile(test_suite=SUITE_TESTS.replace("range(4)", f"range({tests})"))
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--criu-docker-url={target.url}", *extra, timeout=300
    )


@pytest.fixture
def left_behind() -> Iterator[list[Target]]:
    """Tests append the second daemons they used; afterwards those must hold nothing new.

    Nothing new: no container, no image but the tiny one, and no checkpoint copy that
    containerd unpacked for a restore of a container created meanwhile.
    """
    used: list[Target] = []
    since = int(time.time()) - 1
    yield used
    for target in used:
        if target.podman is not None:
            _assert_podman_clean(target)
            continue
        assert target.daemon is not None
        client = target.daemon.client()
        try:
            containers = client.containers(all=True)
            images = {tag for image in client.images() for tag in image.get("RepoTags") or []}
            created = {
                str(event["id"])
                for event in client.events(
                    since=since,
                    until=int(time.time()) + 1,
                    filters={"type": "container", "event": "create"},
                    decode=True,
                )
            }
        finally:
            client.close()
        assert containers == [], f"{target.engine}: containers left: {containers}"
        assert images == {TINY_IMAGE}, f"{target.engine}: images left: {images}"
        assert created, f"{target.engine}: no container was created"
        copies = target.daemon.restore_copies_of(created)
        assert copies == [], f"{target.engine}: containerd's restore copies left: {copies}"


def _assert_podman_clean(target: Target) -> None:
    """A Podman 5 service holds no container and no image but the tiny one."""
    client = docker.APIClient(base_url=target.url, version="auto", timeout=30)
    try:
        containers = client.containers(all=True)
        images = {tag for image in client.images() for tag in image.get("RepoTags") or []}
    finally:
        client.close()
    assert containers == [], f"{target.engine}: containers left: {containers}"
    assert images == {f"localhost/{TINY_IMAGE}"}, f"{target.engine}: images left: {images}"


@pytest.mark.parametrize(
    ("engine", "network", "holder"),
    [
        ("docker-20", "bridge", "auto"),
        ("docker-20", "bridge", "off"),
        ("docker-20", "none", "auto"),
        ("docker-20", "host", "auto"),
        ("docker-26", "bridge", "auto"),
        ("docker-26", "bridge", "off"),
        ("docker-26", "host", "auto"),
        ("docker-26", "none", "auto"),
        ("docker-28", "bridge", "auto"),
        ("docker-28", "none", "auto"),
        ("docker-28", "host", "auto"),
        ("podman-4", "bridge", "auto"),
        ("podman-4", "host", "auto"),
        ("podman-4", "none", "auto"),
        ("podman-5.8", "bridge", "auto"),
        ("podman-5.8", "host", "auto"),
        ("podman-5.8", "none", "auto"),
        ("podman-5.4", "bridge", "auto"),
        ("podman-5.4", "host", "auto"),
        ("podman-5.4", "none", "auto"),
    ],
)
def test_suite_passes(
    *,
    request: pytest.FixtureRequest,
    pytester: pytest.Pytester,
    left_behind: list[Target],
    engine: str,
    network: str,
    holder: str,
) -> None:
    target = watched(request, left_behind, engine)
    result = run_suite(pytester, target, network, f"--criu-network-holder={holder}")
    result.assert_outcomes(passed=4)
    # The URL alone decides the engine: --criu-engine is left at auto.
    title = "Podman" if target.engine.startswith("podman") else "Docker"
    result.stdout.fnmatch_lines(
        [f"pytest-criu *{title} {target.version}*", "box: snapshot/fresh; *; 4 restores; *"]
    )


@pytest.mark.parametrize("network", ["bridge", "none"])
def test_docker_28_without_holders_skips_before_prepare(
    pytester: pytest.Pytester, docker28: Target, network: str
) -> None:
    """Own-namespace restores fail there (bind-mount /proc/0/ns/net, moby issue 50750).

    With holders turned off the plugin knows before preparing: marked tests skip with the
    version and the issue, and no container is created, so no time goes into a prepare whose
    checkpoint cannot restore.
    """
    assert docker28.daemon is not None
    result = run_suite(pytester, docker28, network, "-rs", "--criu-network-holder=off")
    result.assert_outcomes(skipped=4)
    result.stdout.fnmatch_lines(
        [
            f"SKIPPED [[]4[]] *snapshots unavailable: docker version: Docker {docker28.version} "
            "cannot restore containers that have their own network namespace*moby issue 50750*"
            "(fix: drop --criu-network-holder=off, use Docker 20.10-27.x or network_mode='host')",
        ]
    )
    client = docker28.daemon.client()
    try:
        assert client.containers(all=True) == []
    finally:
        client.close()


@pytest.mark.parametrize("network", ["host", "bridge"])
def test_docker_28_restores_many_times(
    pytester: pytest.Pytester, left_behind: list[Target], docker28: Target, network: str
) -> None:
    left_behind.append(docker28)
    result = run_suite(pytester, docker28, network, tests=12)
    result.assert_outcomes(passed=12)
    result.stdout.fnmatch_lines(["box: snapshot/fresh; *; 12 restores; *"])


# -- host networking ----------------------------------------------------------------------


def count_listeners(port: int) -> int:
    """TCP sockets listening on 127.0.0.1:``port`` in this network namespace."""
    wanted = f"0100007F:{port:04X}"
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for row in rows if row.split()[1] == wanted and row.split()[3] == "0A")


HOST_AHEAD_TESTS = """
import json
import time
import urllib.request

import pytest

from suite_settings import PORT, SEEN


def listeners():
    wanted = "0100007F:%04X" % PORT
    rows = open("/proc/net/tcp").read().splitlines()[1:]
    return sum(1 for r in rows if r.split()[1] == wanted and r.split()[3] == "0A")


def get():
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/", timeout=5) as response:
        return response.read().decode().strip()


@pytest.mark.criu_snapshot
def test_first(box):
    assert listeners() == 1


@pytest.mark.criu_snapshot
def test_second(box):
    # This test's container serves "mine"; the pristine one serves "ok".
    box.exec(["sh", "-c", "echo mine > /var/www/index.html"])
    # Were a next container restored ahead, onto the same port, it would appear by now.
    time.sleep(3)
    seen = {"listeners": listeners(), "answers": [get() for _ in range(10)]}
    with open(SEEN, "w") as out:
        json.dump(seen, out)
"""


@pytest.mark.parametrize(
    "engine", ["docker-20", "docker-26", "docker-28", "podman-4", "podman-5.8", "podman-5.4"]
)
def test_host_network_turns_restore_ahead_off(
    request: pytest.FixtureRequest,
    pytester: pytest.Pytester,
    left_behind: list[Target],
    engine: str,
) -> None:
    """With host networking, restore-ahead stays off and the test keeps its port.

    A container restored ahead would bind the same host port (CRIU restores its listening
    socket although the current container still listens) and take new connections: a test
    would talk to the next test's copy of the service. The plugin refuses that.
    """
    target = watched(request, left_behind, engine)
    seen = pytester.path / "listeners"
    port = write_suite(pytester, "host", SEEN=str(seen))
    pytester.makepyfile(test_ahead=HOST_AHEAD_TESTS)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        f"--criu-docker-url={target.url}",
        "--criu-restore-ahead",
        timeout=300,
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*box: restore-ahead is off: with host networking*"])
    observed = json.loads(seen.read_text())
    assert observed["listeners"] == 1, observed
    assert observed["answers"] == ["mine"] * 10, observed
    assert count_listeners(port) == 0


# -- a stable address ---------------------------------------------------------------------

STABLE_TESTS = """
import urllib.request

import pytest


@pytest.fixture(scope="session")
def address(box):
    # Taken once, before the first marked test: a session-wide client would keep it.
    return box.address(8080)


def get(address):
    host, port = address
    with urllib.request.urlopen(f"http://{host}:{port}/", timeout=5) as response:
        return response.read().decode().strip()


@pytest.mark.parametrize("i", range(4))
@pytest.mark.criu_snapshot
def test_same_address_pristine_service(box, address, i):
    assert box.restores == i + 1
    assert box.address(8080) == address
    # The previous test left "dirty" in its container; this one's answers "ok".
    assert get(address) == "ok"
    box.exec(["sh", "-c", "echo dirty > /var/www/index.html"])
    assert get(address) == "dirty"
"""


@pytest.mark.parametrize("engine", ["docker-20", "docker-28"])
def test_stable_address_serves_each_pristine_container(
    request: pytest.FixtureRequest,
    pytester: pytest.Pytester,
    left_behind: list[Target],
    engine: str,
) -> None:
    """--criu-network-holder=stable: one holder for the session, so its port never changes."""
    target = watched(request, left_behind, engine)
    write_suite(pytester, "bridge")
    pytester.makepyfile(test_stable=STABLE_TESTS)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        f"--criu-docker-url={target.url}",
        "--criu-network-holder=stable",
        "--criu-restore-ahead",
        timeout=300,
    )
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "*box: restore-ahead is off: with a stable address*",
            "box: snapshot/fresh; *; 4 restores; *",
        ]
    )


INPLACE_TESTS = """
import pytest

from suite_settings import PORT


def sh(handle, script):
    return handle.exec(["sh", "-c", script])[1].strip()


@pytest.mark.parametrize("i", range(3))
@pytest.mark.criu_snapshot
def test_in_place(box, i):
    assert box.restores == i + 1
    assert sh(box, "ls /data") == "seed"
    assert sh(box, "wget -qO- http://127.0.0.1:" + str(PORT) + "/") == "ok"
    sh(box, "touch /data/dirty")
"""


@pytest.mark.parametrize("engine", ["podman-4", "podman-5.8"])
def test_podman_without_network_restores_in_place_with_loopback_up(
    request: pytest.FixtureRequest,
    pytester: pytest.Pytester,
    left_behind: list[Target],
    engine: str,
) -> None:
    """Podman 4.3 restores a none-network container with ``lo`` down; the plugin sets it up."""
    target = watched(request, left_behind, engine)
    write_suite(pytester, "none")
    pytester.makepyfile(test_in_place=INPLACE_TESTS)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        f"--criu-engine-url={target.url}",
        "--criu-strategy=inplace",
        timeout=300,
    )
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["box: snapshot/inplace; *; 3 restores; *"])
