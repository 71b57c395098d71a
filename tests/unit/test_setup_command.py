"""``pytest-criu setup`` as a command: root only, a plan that says what it changed."""

from __future__ import annotations

import pytest

from pytest_criu import cli
from pytest_criu.setup import command, dockerd, image
from pytest_criu.setup.plan import Plan


def test_a_non_root_user_gets_one_line_naming_sudo(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert cli.main(["setup", "--engine", "podman"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "pytest-criu setup: must run as root (it installs packages and starts daemons): "
        "sudo pytest-criu setup\n"
    )
    assert cli.main(["setup", "--check"]) == 1
    assert capsys.readouterr().err.endswith("sudo pytest-criu setup --check\n")


def test_an_unknown_engine_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["setup", "--engine", "lxc"])
    assert caught.value.code == 2
    assert (
        "invalid choice: 'lxc' (choose from 'docker', 'podman', 'all')" in capsys.readouterr().err
    )


def test_the_summary_says_what_changed_or_would() -> None:
    said: list[str] = []
    done = Plan(check=False, say=said.append)
    assert done.summary() == "nothing to change"
    assert done.change("start dockerd")
    done.tidy("remove 2 leftover containerd restore copies")
    assert done.summary() == (
        "changed: start dockerd (also: remove 2 leftover containerd restore copies)"
    )
    checking = Plan(check=True, say=said.append)
    assert not checking.change("install podman")
    assert checking.summary() == "would change: install podman"
    assert said == ["start dockerd", "remove 2 leftover containerd restore copies",
                    "would install podman"]  # fmt: skip


def test_dockerd_gets_criu_first_on_its_path() -> None:
    path = dockerd.daemon_path("/opt/x/criu")
    assert path == "/opt/x:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert dockerd.daemon_path("/usr/local/sbin/criu").count("/usr/local/sbin") == 1


def test_docker_28_and_newer_get_a_note_on_network_holders() -> None:
    assert dockerd.version_warning({"ServerVersion": "20.10.24+dfsg1"}) is None
    note = dockerd.version_warning({"ServerVersion": "28.5.1"}) or ""
    assert note.startswith("Docker Engine 28.5.1 restores only containers that join a network")
    assert "--criu-network-holder=off cannot work here (moby issue 50750)" in note
    assert dockerd.version_warning(None) is None


def test_the_tiny_image_is_reproducible() -> None:
    first = image.tiny_tar(b"\x7fELF", ["bin/sh", "bin/busybox", "usr/bin/nc"])
    assert first == image.tiny_tar(b"\x7fELF", ["bin/sh", "bin/busybox", "usr/bin/nc"])
    assert image.digest(["1", "tiny"]) == image.digest(["1", "tiny"]) != image.digest(["1tiny"])


def test_an_installed_docker_ce_is_used_not_replaced_by_docker_io() -> None:
    missing = ["docker.io", "busybox-static"]
    assert command.packages_to_install(missing, "/usr/bin/dockerd") == ["busybox-static"]
    assert command.packages_to_install(missing, None) == missing
