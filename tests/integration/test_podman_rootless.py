"""Rootless Podman cannot checkpoint: doctor and the skip reason say so, on a real service.

A throwaway user runs ``podman system service`` on a socket of its own; the user, its
processes and its storage are removed afterwards.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import doctor, line_of, podman_url_or_skip

ROOTLESS = "rootless Podman cannot checkpoint containers"


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        why = (
            f"{tool} is missing (`sudo pytest-criu setup --engine podman` installs it with uidmap)"
        )
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture(scope="module")
def rootless_url() -> Iterator[str]:
    podman_url_or_skip()
    for tool in ("newuidmap", "useradd", "runuser"):
        _need(tool)
    user = f"pcriu-rl-{os.getpid()}"
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", user], check=True, capture_output=True)
    service: subprocess.Popen[bytes] | None = None
    uid = pwd.getpwnam(user).pw_uid
    home = Path(pwd.getpwnam(user).pw_dir)
    runtime = Path(f"/run/user/{uid}")
    try:
        runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chown(runtime, uid, -1)
        socket = runtime / "podman.sock"
        url = f"unix://{socket}"
        service = subprocess.Popen(
            [
                "runuser",
                "-u",
                user,
                "--",
                "env",
                f"XDG_RUNTIME_DIR={runtime}",
                f"HOME={home}",
                "podman",
                "system",
                "service",
                "--time=0",
                url,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            # Not the clone's directory, which this user may not enter (a mktemp -d, a home).
            cwd=home,
        )
        deadline = time.monotonic() + 30
        while not socket.exists():
            if service.poll() is not None or time.monotonic() > deadline:
                error = service.stderr.read().decode() if service.stderr else ""
                pytest.fail(f"the rootless Podman service did not start within 30 s: {error}")
            time.sleep(0.1)
        yield url
    finally:
        if service is not None:
            service.kill()
            service.wait(timeout=30)
            if service.stderr is not None:
                service.stderr.close()
        # Rootless Podman leaves a pause process behind; everything the user runs goes.
        subprocess.run(["pkill", "-KILL", "-u", user], check=False)
        for _ in range(50):
            found = subprocess.run(["pgrep", "-u", user], check=False, capture_output=True)
            if found.returncode != 0:
                break
            time.sleep(0.1)
        subprocess.run(["userdel", "-r", user], check=False, capture_output=True)
        shutil.rmtree(runtime, ignore_errors=True)


def test_doctor_refuses_a_rootless_service(rootless_url: str) -> None:
    result = doctor("--engine-url", rootless_url)
    assert result.returncode == 1, result.stdout + result.stderr
    line = line_of(result.stdout, "podman rootful")
    assert line.startswith("[FAIL]")
    assert f"{rootless_url} is a rootless Podman service: {ROOTLESS}" in line
    assert "fix: run `podman system service unix:///run/podman/podman.sock` as root" in (
        result.stdout
    )
    assert result.stdout.splitlines()[-1].startswith(
        f"verdict: snapshots cannot work here: podman rootful: {rootless_url}"
    )


def test_marked_tests_skip_with_the_reason(pytester: pytest.Pytester, rootless_url: str) -> None:
    pytester.makeconftest(
        """
        from pytest_criu import ready, warm_container

        box = warm_container("pytest-criu/tiny:latest", ready=ready.log("booted"))
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.criu_snapshot
        def test_marked(box):
            pass
        """
    )
    path = urllib.parse.urlsplit(rootless_url).path
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-rs", f"--criu-engine-url={rootless_url}", timeout=120
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [f"SKIPPED*snapshots unavailable: podman rootful: unix://{path} is a rootless*{ROOTLESS}*"]
    )
