"""What the plugin never does: privileged containers, loosened permissions, leaked secrets."""

from __future__ import annotations

import pytest

from tests.helpers import TINY_IMAGE

pytestmark = pytest.mark.usefixtures("engine")

CONFTEST = f"""
from pytest_criu import ready, warm_container

def seed(handle):
    code, out = handle.exec(["sh", "-c", "echo $API_TOKEN > /token && echo seeded"])
    assert code == 0, out

box = warm_container(
    "{TINY_IMAGE}",
    command=["sh", "-c", "echo booted; exec sleep 100000"],
    environment={{"API_TOKEN": "tok-7f3a9c1e-secret"}},
    ready=ready.log("booted"),
    prepare=seed,
)
"""

TESTS = """
import os
import stat
import pytest

@pytest.mark.parametrize("i", range(2))
@pytest.mark.criu_snapshot
def test_container_is_unprivileged_and_checkpoint_private(box, i):
    engine = box._controller.engine
    info = engine.inspect(box.id)
    host = info["HostConfig"]
    assert host["Privileged"] is False
    assert not host.get("CapAdd")
    assert not host.get("SecurityOpt")
    assert not host.get("Devices")
    # The snapshot's checkpoint, and (Docker) the copy placed into the restored container.
    checkpoints = [str(box._controller.checkpoint)]
    if engine.name == "docker":
        checkpoints.append(str(engine.checkpoint_dir(box.id, "pytest-criu")))
    for checkpoint in checkpoints:
        assert stat.S_IMODE(os.stat(checkpoint).st_mode) == 0o700, checkpoint
        assert stat.S_IMODE(os.stat(os.path.dirname(checkpoint)).st_mode) == 0o700, checkpoint
    if engine.name == "podman":  # the exported archive (Docker's files sit in 0700 dirs)
        for entry in os.scandir(checkpoints[0]):
            assert stat.S_IMODE(entry.stat().st_mode) & 0o077 == 0, entry.path
    assert box.exec(["cat", "/token"])[1].strip() == "tok-7f3a9c1e-secret"

@pytest.mark.criu_snapshot
def test_failure_report_hides_the_secret(box):
    box.exec(["sh", "-c", "echo leaked: $API_TOKEN > /proc/1/fd/1"])
    assert False, "fail on purpose"
"""


def test_no_privilege_private_checkpoints_and_no_secret_in_output(
    pytester: pytest.Pytester, no_leaks: None
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v", timeout=300)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*- pytest-criu: box container -*"])
    assert "leaked: ***" in result.stdout.str(), "the log line is shown, the value redacted"
    assert "tok-7f3a9c1e-secret" not in result.stdout.str()
    assert "tok-7f3a9c1e-secret" not in result.stderr.str()
