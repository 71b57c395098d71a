"""``pytest-criu doctor`` against the real Docker daemon and CRIU of this host."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from pytest_criu.engine.doctor import detect_host
from tests.helpers import doctor, line_of, podman_url_or_skip

pytestmark = pytest.mark.integration

CONSOLE_SCRIPT = Path(sys.executable).parent / "pytest-criu"
#: The second daemon's PATH: the system directories, without /usr/local/sbin where
#: `pytest-criu setup` puts its criu wrapper.
PLAIN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def fix_after(output: str, name: str) -> str:
    """The ``fix:`` line printed under the check called ``name``."""
    lines = output.splitlines()
    following = lines[lines.index(line_of(output, name)) + 1].strip()
    assert following.startswith("fix: "), output
    return following.removeprefix("fix: ")


def assert_can_snapshot(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[FAIL]" not in result.stdout
    assert result.stdout.splitlines()[-1].startswith("verdict: snapshots can work here")
    assert line_of(result.stdout, "criu check").startswith("[ ok ]")
    assert line_of(result.stdout, "docker experimental").startswith("[ ok ]")


def test_doctor_passes_on_this_host() -> None:
    assert_can_snapshot(doctor())


def test_console_script_passes_on_this_host() -> None:
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), "doctor"], capture_output=True, text=True, timeout=120, check=False
    )
    assert_can_snapshot(result)


def test_this_machine_lacks_cap_sys_resource_and_says_so() -> None:
    """Root here has no CAP_SYS_RESOURCE (HOST-NOTES); that is a warning, not a blocker."""
    status = Path("/proc/self/status").read_text()
    cap_eff = int(next(line for line in status.splitlines() if line.startswith("CapEff:"))[7:], 16)
    output = doctor().stdout
    capabilities = line_of(output, "capabilities")
    if cap_eff >> 24 & 1:
        assert capabilities.startswith("[ ok ]")
    else:
        assert capabilities.startswith("[warn]")
        assert "CAP_SYS_RESOURCE" in capabilities
        assert "Can't get rlimit" in capabilities


def test_detect_host_fills_the_report_quickly() -> None:
    started = time.monotonic()
    report = detect_host()
    elapsed = time.monotonic() - started
    assert report.can_snapshot, report.snapshot_blocker()
    client = docker.from_env(timeout=30)
    try:
        version = client.version()
        info = client.info()
    finally:
        client.close()
    assert report.docker_version == version["Version"]
    assert report.docker_api_version == version["ApiVersion"]
    assert report.docker_root_dir == info["DockerRootDir"]
    assert report.kernel == os.uname().release
    assert report.criu_version is not None
    assert tuple(int(part) for part in report.criu_version.split(".")[:2]) >= (4, 2)
    assert elapsed < 10, f"detect_host() took {elapsed:.2f} s"


def test_missing_criu_binary_is_named() -> None:
    result = doctor("--criu-binary", "/nonexistent/criu")
    assert result.returncode == 1
    line = line_of(result.stdout, "criu")
    assert line.startswith("[FAIL]")
    assert "/nonexistent/criu does not exist" in line
    assert "CRIU >= 4.2" in fix_after(result.stdout, "criu")
    assert "/nonexistent/criu" in result.stdout.splitlines()[-1]


def test_non_executable_criu_binary_fails(tmp_path: Path) -> None:
    criu = tmp_path / "criu"
    criu.write_text("#!/bin/sh\necho Version: 4.2.1\n")
    criu.chmod(0o644)
    result = doctor("--criu-binary", str(criu))
    assert result.returncode == 1
    line = line_of(result.stdout, "criu")
    assert line.startswith("[FAIL]")
    assert f"{criu} is not executable" in line


def test_a_binary_that_is_not_criu_fails() -> None:
    result = doctor("--criu-binary", "/bin/false")
    assert result.returncode == 1
    line = line_of(result.stdout, "criu")
    assert line.startswith("[FAIL]")
    assert "/bin/false --version failed (exit status 1)" in line


def test_a_binary_that_only_prints_a_version_is_not_criu() -> None:
    result = doctor("--criu-binary", "/bin/true")
    assert result.returncode == 1
    line = line_of(result.stdout, "criu")
    assert line.startswith("[FAIL]")
    assert "/bin/true does not look like CRIU: --version printed " in line
    assert line_of(result.stdout, "criu check").startswith("[skip]")


def test_a_silent_daemon_times_out_instead_of_hanging(tmp_path: Path) -> None:
    """A socket that accepts connections but never answers, like a wedged dockerd."""
    path = tmp_path / "silent.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.bind(str(path))
        silent.listen(16)
        started = time.monotonic()
        result = doctor("--docker-url", f"unix://{path}", "--timeout", "1", timeout=60)
        elapsed = time.monotonic() - started
    assert result.returncode == 1
    line = line_of(result.stdout, "docker")
    assert line.startswith("[FAIL]")
    assert f"unix://{path}: no answer within 1 s" in line
    assert "restart dockerd" in fix_after(result.stdout, "docker")
    assert elapsed < 15, f"doctor took {elapsed:.1f} s with --timeout 1"


def test_json_report_shape_and_types() -> None:
    result = doctor("--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    assert list(data) == [
        "ok",
        "can_snapshot",
        "criu_version",
        "docker_version",
        "docker_api_version",
        "docker_root_dir",
        "docker_userns_remap",
        "kernel",
        "engine",
        "engine_version",
        "checks",
    ]
    assert data["can_snapshot"] is True
    assert data["docker_userns_remap"] is False
    assert data["engine"] == "docker"
    assert data["engine_version"] == data["docker_version"]
    assert isinstance(data["ok"], bool)
    for key in ("criu_version", "docker_version", "docker_api_version", "docker_root_dir"):
        assert isinstance(data[key], str), key
    assert data["kernel"] == os.uname().release
    assert data["checks"], "no checks reported"
    for check in data["checks"]:
        assert list(check) == ["name", "status", "detail", "fix", "blocks_snapshots"]
        assert check["status"] in ("ok", "warn", "fail", "skip")
        assert isinstance(check["name"], str)
        assert isinstance(check["detail"], str)
        assert check["detail"]
        assert isinstance(check["fix"], str)
        assert isinstance(check["blocks_snapshots"], bool)
        if check["status"] in ("fail", "warn"):
            assert check["fix"], check
    names = [check["name"] for check in data["checks"]]
    assert len(names) == len(set(names))
    for expected in ("docker", "docker experimental", "criu", "criu check", "capabilities"):
        assert expected in names


def test_json_report_when_snapshots_are_impossible() -> None:
    result = doctor("--json", "--criu-binary", "/nonexistent/criu")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["can_snapshot"] is False
    assert data["ok"] is False
    assert data["criu_version"] is None
    criu = next(check for check in data["checks"] if check["name"] == "criu")
    assert criu["status"] == "fail"
    assert criu["blocks_snapshots"] is True


def test_unreachable_socket_fails_fast() -> None:
    started = time.monotonic()
    result = doctor("--docker-url", "unix:///nonexistent.sock", timeout=30)
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    line = line_of(result.stdout, "docker")
    assert line.startswith("[FAIL]")
    assert "unix:///nonexistent.sock" in line
    assert "no socket at /nonexistent.sock" in line
    assert "unix:///nonexistent.sock" in fix_after(result.stdout, "docker")
    for dependent in ("docker experimental", "docker data root"):
        assert line_of(result.stdout, dependent).startswith("[skip]")
    assert elapsed < 15


def test_usage_errors_exit_2() -> None:
    assert doctor("--no-such-option").returncode == 2
    bare = subprocess.run(
        [sys.executable, "-m", "pytest_criu"], capture_output=True, text=True, check=False
    )
    assert bare.returncode == 2
    assert "doctor" in bare.stderr


# -- a second daemon without experimental mode -------------------------------------------------


def _dockerd() -> str:
    for candidate in (shutil.which("dockerd"), "/usr/sbin/dockerd", "/usr/bin/dockerd"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("dockerd is not installed")


SECOND_BRIDGE = "pcriu-doctor0"


@pytest.fixture(scope="module")
def plain_daemon_url() -> Iterator[str]:
    """A second dockerd: own socket, data root, a config without experimental, a plain PATH."""
    base = Path(tempfile.mkdtemp(prefix="pcriu-doctor-"))
    socket_path = base / "docker.sock"
    config = base / "daemon.json"
    config.write_text("{}\n")
    log = (base / "dockerd.log").open("wb")
    url = f"unix://{socket_path}"
    subprocess.run(["ip", "link", "del", SECOND_BRIDGE], capture_output=True, check=False)
    subprocess.run(["ip", "link", "add", SECOND_BRIDGE, "type", "bridge"], check=True)
    subprocess.run(["ip", "addr", "add", "172.31.254.1/24", "dev", SECOND_BRIDGE], check=True)
    process = subprocess.Popen(
        [
            _dockerd(),
            f"--host={url}",
            f"--data-root={base / 'data'}",
            f"--exec-root={base / 'exec'}",
            f"--pidfile={base / 'docker.pid'}",
            f"--config-file={config}",
            "--containerd-namespace=pytest-criu-doctor",
            "--containerd-plugins-namespace=pytest-criu-doctor-plugins",
            # Not --bridge=none: a daemon started with it deletes the host's docker0,
            # which the main daemon's containers need.
            f"--bridge={SECOND_BRIDGE}",
            "--iptables=false",
            "--ip-masq=false",
        ],
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PATH": PLAIN_PATH},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for_daemon(url, process, base / "dockerd.log", timeout=60)
        yield url
    finally:
        _stop(process)
        log.close()
        shutil.rmtree(base, ignore_errors=True)
        subprocess.run(["ip", "link", "del", SECOND_BRIDGE], capture_output=True, check=False)


def _wait_for_daemon(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"second dockerd exited ({process.returncode}): {log.read_text()}")
        # Probe with a socket we close ourselves: docker-py leaks one on a failed connect.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(url.removeprefix("unix://"))
            except OSError:
                time.sleep(0.2)
                continue
        client = docker.APIClient(base_url=url, version="auto", timeout=5)
        client.close()
        return
    raise RuntimeError(f"second dockerd did not answer within {timeout} s: {log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            # Its managed containerd shares the session started for it.
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_daemon_without_experimental_fails_with_a_precise_fix(plain_daemon_url: str) -> None:
    result = doctor("--docker-url", plain_daemon_url)
    assert result.returncode == 1, result.stdout
    assert line_of(result.stdout, "docker").startswith("[ ok ]")
    line = line_of(result.stdout, "docker experimental")
    assert line.startswith("[FAIL]")
    assert "experimental features are disabled" in line
    config = str(Path(plain_daemon_url.removeprefix("unix://")).parent / "daemon.json")
    fix = fix_after(result.stdout, "docker experimental")
    assert f'add "experimental": true to {config} and restart dockerd' in fix
    assert result.stdout.splitlines()[-1].startswith(
        "verdict: snapshots cannot work here: docker experimental: "
    )


def test_second_daemon_is_described_by_its_own_facts(plain_daemon_url: str) -> None:
    result = doctor("--docker-url", plain_daemon_url, "--json")
    data = json.loads(result.stdout)
    base = Path(plain_daemon_url.removeprefix("unix://")).parent
    assert data["docker_root_dir"] == str(base / "data")
    assert data["can_snapshot"] is False
    checks = {check["name"]: check for check in data["checks"]}
    assert checks["docker data root"]["status"] == "ok"
    assert checks["docker experimental"]["blocks_snapshots"] is True
    assert "dockerd pid" in checks["docker host"]["detail"]


def test_second_daemon_criu_is_resolved_on_its_own_path(plain_daemon_url: str) -> None:
    output = doctor("--docker-url", plain_daemon_url).stdout
    line = line_of(output, "daemon's criu")
    found = shutil.which("criu", path=PLAIN_PATH)
    if found is None:
        assert line.startswith("[FAIL]")
        assert f"finds no criu on its PATH {PLAIN_PATH}" in line
        assert "PATH that contains criu" in fix_after(output, "daemon's criu")
    elif os.path.realpath(found) != os.path.realpath(shutil.which("criu") or ""):
        assert line.startswith("[warn]")
        assert f"uses {found}" in line
    else:
        assert line.startswith("[ ok ]")


@pytest.fixture
def podman_url() -> str:
    return podman_url_or_skip()


def test_podman_is_recognised_and_checked(podman_url: str) -> None:
    result = doctor("--engine-url", podman_url, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    assert data["engine"] == "podman"
    assert data["engine_version"].startswith("4.")
    assert data["docker_version"] is None
    checks = {check["name"]: check for check in data["checks"]}
    assert checks["podman"]["status"] == "ok"
    assert podman_url in checks["podman"]["detail"]
    assert checks["podman rootful"]["status"] == "ok"
    assert checks["podman storage"]["status"] == "ok"
    assert checks["podman exec clean-up"] == {
        "name": "podman exec clean-up",
        "status": "ok",
        "detail": "exit_command_delay = 5 s",
        "fix": "",
        "blocks_snapshots": False,
    }
    assert checks["daemon's criu"]["status"] == "ok"
    assert "Podman's service (pid " in checks["daemon's criu"]["detail"]
    assert not {"docker host", "docker experimental", "docker data root"} & set(checks)


def test_asking_for_the_other_engine_names_both(podman_url: str) -> None:
    result = doctor("--engine", "docker", "--engine-url", podman_url)
    assert result.returncode == 1
    line = line_of(result.stdout, "engine")
    assert line.startswith("[FAIL]")
    assert f"--criu-engine=docker but {podman_url} is Podman 4." in line
    assert "use --criu-engine=podman (or auto)" in line
    docker = doctor("--engine", "podman", "--engine-url", "unix:///var/run/docker.sock")
    assert docker.returncode == 1
    assert "--criu-engine=podman but unix:///var/run/docker.sock is Docker 20." in docker.stdout
