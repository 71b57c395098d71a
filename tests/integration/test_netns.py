"""Setting an interface up in another process's network namespace (Podman's none network)."""

from __future__ import annotations

import os
import subprocess

import pytest

from pytest_criu.engine.netns import interface_up


def test_loopback_of_a_new_namespace_comes_up_and_ours_is_untouched() -> None:
    ours = os.readlink("/proc/self/ns/net")
    with subprocess.Popen(["unshare", "--net", "sleep", "60"]) as isolated:
        try:
            for _ in range(100):
                if os.readlink(f"/proc/{isolated.pid}/ns/net") != ours:
                    break
                subprocess.run(["sleep", "0.02"], check=True)
            assert os.readlink(f"/proc/{isolated.pid}/ns/net") != ours
            assert interface_up(isolated.pid) is True, "a new namespace's lo starts down"
            assert interface_up(isolated.pid) is False, "and now it is up"
        finally:
            isolated.kill()
    assert os.readlink("/proc/self/ns/net") == ours


def test_missing_process_or_interface_is_an_os_error() -> None:
    with pytest.raises(OSError, match="No such file"):
        interface_up(999_999_999)
    with pytest.raises(OSError, match="No such device"):
        interface_up(os.getpid(), "nosuchif0")
