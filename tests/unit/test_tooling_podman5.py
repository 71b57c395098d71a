"""The Podman 5 installer's and service's pure parts: dependencies, versions, configuration."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from pytest_criu.setup.conf import _parse
from tests.engines import SUBNETS as DOCKER_SUBNETS
from tests.podman5 import (
    SUBNETS,
    PodmanInstall,
    _names,
    containers_conf,
    network_json,
    storage_conf,
)
from tests.tooling.podman5 import main, parse_direct_depends, parse_version

DEPENDS = """podman
  Depends: conmon
 |Depends: crun
  Depends: runc
  Depends: libc6
  Depends: <golang-github-containers-network>
  PreDepends: libgpgme45
  Recommends: buildah
"""


def test_direct_depends_take_the_first_choice_of_each_alternative() -> None:
    assert parse_direct_depends(DEPENDS) == ["conmon", "crun", "libc6", "libgpgme45"]


def test_versions_are_read_from_each_programs_first_line() -> None:
    assert parse_version("podman version 5.8.6") == "5.8.6"
    assert parse_version("runc version 1.3.6+ds1") == "1.3.6"
    assert parse_version("conmon version 2.1.13, commit: unknown") == "2.1.13"
    assert parse_version("netavark 1.17.2") == "1.17.2"
    assert parse_version("nothing here") == ""


INSTALL = PodmanInstall("podman-5.8", Path("/opt/e/podman-5.8"), {"PODMAN_VERSION": "5.8.6"})


def test_containers_conf_keeps_the_service_off_the_hosts_podman_state() -> None:
    base = Path("/var/tmp/pcriu-podman5-x")
    parsed = _parse(containers_conf(INSTALL, base, "pcriu-net"), base)
    engine, network = parsed["engine"], parsed["network"]
    assert engine["runtime"] == "runc"
    assert engine["runtimes"]["runc"] == ["/opt/e/podman-5.8/root/usr/sbin/runc"]
    assert engine["conmon_path"] == ["/opt/e/podman-5.8/root/usr/bin/conmon"]
    assert engine["tmp_dir"] == str(base / "tmp")
    assert engine["lock_type"] == "file"
    assert engine["exit_command_delay"] == 5
    assert network["firewall_driver"] == "iptables"
    assert network["network_config_dir"] == str(base / "networks")
    assert network["default_network"] == "pcriu-net"
    limits = parsed["containers"]["default_ulimits"]
    assert [entry.split("=")[0] for entry in limits] == ["nofile", "nproc"]
    storage = _parse(storage_conf(base), base)["storage"]
    assert (storage["graphroot"], storage["runroot"]) == (str(base / "storage"), str(base / "run"))


def test_default_network_has_its_own_bridge_and_subnet() -> None:
    subnet = SUBNETS[3]
    network = json.loads(network_json("pcriu-net", "pcriu58-1a", subnet))
    assert network["network_interface"] == "pcriu58-1a"
    assert network["subnets"] == [{"subnet": "172.29.203.0/24", "gateway": "172.29.203.1"}]
    podman4 = ipaddress.IPv4Network("10.88.0.0/16")
    for ours in SUBNETS:
        assert not ours.overlaps(podman4)
        assert not any(ours.overlaps(docker) for docker in DOCKER_SUBNETS)


def test_firewall_rules_are_ours_when_they_name_our_subnet_bridge_or_network() -> None:
    words = ["172.29.201.0/24", "pcriu54-3f4", "pcriu-podman-5.4-3f4"]
    subnets = [ipaddress.IPv4Network(words[0])]
    assert _names("172.29.201.0/24", words, subnets)
    assert _names("172.29.201.2:80", words, subnets)  # --to-destination
    assert _names("172.29.201.7/32", words, subnets)
    assert _names("pcriu54-3f4", words, subnets)
    assert _names("dnat name: pcriu-podman-5.4-3f4 id: ef1f", words, subnets)  # a comment
    assert not _names("172.29.200.2:80", words, subnets)
    assert not _names("pcriu54-3f", words, subnets)
    assert not _names("dnat name: pcriu-podman-5.4-3f40 id: ef1f", words, subnets)


def test_run_is_the_older_spelling_of_with_engine(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "podman-5.8", "true"]) == 2
    assert "usage: python -m tests.tooling.with_engine {docker-26,docker-28,podman-5.8," in (
        capsys.readouterr().err
    )
