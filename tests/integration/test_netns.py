"""Work in a container's network namespace: loopback up (none network), gratuitous ARP."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from pytest_criu.engine.base import ContainerConfig
from pytest_criu.engine.labels import Owner
from pytest_criu.engine.netns import announce, interface_up
from pytest_criu.engine.podman import PodmanEngine
from pytest_criu.engine.spec import build_spec
from tests.helpers import TINY_IMAGE, podman_url_or_skip


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


def _neighbour_mac(ip: str, device: str) -> str | None:
    shown = subprocess.run(
        ["ip", "neigh", "show", ip, "dev", device], capture_output=True, text=True, check=True
    ).stdout.split()
    return shown[shown.index("lladdr") + 1] if "lladdr" in shown else None


def test_gratuitous_arp_corrects_the_hosts_stale_neighbour_entry(no_leaks: None) -> None:
    """Podman reuses a freed IP with a new MAC; the host would keep the old one for ~30 s."""
    podman_url_or_skip()
    engine = PodmanEngine()
    container_id = engine.create(
        ContainerConfig(
            spec=build_spec(image=TINY_IMAGE, command=["sleep", "1000"]),
            image=TINY_IMAGE,
            labels=Owner.current().labels("arp", "source"),
        )
    )
    try:
        engine.start(container_id)
        info = engine.inspect(container_id)
        ip, mac = info["NetworkSettings"]["IPAddress"], info["NetworkSettings"]["MacAddress"]
        device = "cni-podman0"
        # What a previous container with this address leaves in the host's table.
        subprocess.run(
            [
                "ip",
                "neigh",
                "replace",
                ip,
                "lladdr",
                "02:00:00:00:00:01",
                "dev",
                device,
                "nud",
                "reachable",
            ],
            check=True,
        )
        assert _neighbour_mac(ip, device) == "02:00:00:00:00:01"
        time.sleep(1.1)  # the kernel ignores ARP updates within locktime (1 s) of a change
        assert announce(int(info["State"]["Pid"])) == 1
        assert _neighbour_mac(ip, device) == mac
    finally:
        engine.remove(container_id)
        engine.close()
