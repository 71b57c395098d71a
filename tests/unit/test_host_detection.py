"""Pure logic of host detection: parsing and judging what the host reports."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest

from pytest_criu.cli import print_report
from pytest_criu.engine.doctor import Check, HostReport
from pytest_criu.engine.doctor.docker_rules import (
    check_docker_version,
    check_network_path,
    component_version,
    docker_url_locality,
    dockerd_option,
    known_docker_problem,
    parse_containerd_version,
)
from pytest_criu.engine.doctor.engines import podman_checks
from pytest_criu.engine.doctor.podman_rules import parse_exit_command_delay
from pytest_criu.engine.doctor.probe import Probe
from pytest_criu.engine.doctor.rules import (
    capability_names,
    check_capabilities,
    check_criu_version,
    check_engine_stack,
    check_network_lock,
    check_runc_conf,
    criu_check_lines,
    parse_cap_eff,
    parse_criu_version,
    parse_kernel_config,
    parse_runc_conf,
    parse_version,
    short_error,
    version_at_least,
)
from pytest_criu.engine.doctor.system import resolve_executable

FULL_CAPS = "000001ffffffffff"
THIS_MACHINE_CAPS = "000001fffeffffff"  # root here lacks CAP_SYS_RESOURCE (bit 24)

STATUS_TEXT = f"""Name:\tpython
Uid:\t0\t0\t0\t0
CapInh:\t0000000000000000
CapPrm:\t{THIS_MACHINE_CAPS}
CapEff:\t{THIS_MACHINE_CAPS}
CapBnd:\t{THIS_MACHINE_CAPS}
"""


class TestCapabilities:
    def test_cap_eff_is_read_from_proc_status_text(self) -> None:
        assert parse_cap_eff(STATUS_TEXT) == 0x1FFFEFFFFFF

    def test_cap_eff_missing_gives_none(self) -> None:
        assert parse_cap_eff("Name:\tpython\nCapPrm:\t0000\n") is None

    def test_names_of_a_full_mask(self) -> None:
        assert capability_names(int(FULL_CAPS, 16)) == {
            "CAP_SYS_ADMIN",
            "CAP_SYS_RESOURCE",
            "CAP_CHECKPOINT_RESTORE",
        }

    def test_this_machine_lacks_only_sys_resource(self) -> None:
        assert capability_names(int(THIS_MACHINE_CAPS, 16)) == {
            "CAP_SYS_ADMIN",
            "CAP_CHECKPOINT_RESTORE",
        }

    def test_older_kernel_mask_without_checkpoint_restore_bit(self) -> None:
        # Kernels before 5.9 know 38 capabilities: bits 0-37.
        assert capability_names(0x3FFFFFFFFF) == {"CAP_SYS_ADMIN", "CAP_SYS_RESOURCE"}

    def test_full_capabilities_are_ok(self) -> None:
        check = check_capabilities(int(FULL_CAPS, 16), "this process")
        assert check.status == "ok"
        assert "CAP_SYS_RESOURCE" in check.detail

    def test_missing_sys_resource_warns_and_explains_rlimit(self) -> None:
        check = check_capabilities(int(THIS_MACHINE_CAPS, 16), "dockerd (pid 7)")
        assert check.status == "warn"
        assert not check.blocks_snapshots
        assert check.detail.startswith("dockerd (pid 7) lacks CAP_SYS_RESOURCE")
        assert "Can't get rlimit: Operation not permitted" in check.detail
        assert "see non-root services" in check.detail
        assert check.fix

    def test_checkpoint_restore_alone_is_enough_for_criu(self) -> None:
        mask = (1 << 40) | (1 << 24)
        check = check_capabilities(mask, "this process")
        assert check.status == "warn"
        assert "CAP_SYS_ADMIN" in check.detail
        assert not check.blocks_snapshots

    def test_neither_sys_admin_nor_checkpoint_restore_blocks(self) -> None:
        check = check_capabilities(1 << 24, "this process")
        assert check.status == "fail"
        assert check.blocks_snapshots
        assert "CAP_SYS_ADMIN and CAP_CHECKPOINT_RESTORE" in check.detail
        assert "0000000001000000" in check.detail


class TestVersions:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("Version: 4.2.1\nGitID: v4.2.1\n", (4, 2, 1)),
            ("Version: 3.17.1", (3, 17, 1)),
            ("20.10.24+dfsg1", (20, 10, 24)),
            ("28.5.2", (28, 5, 2)),
            ("1.41", (1, 41)),
            ("6.18.44-fc-v669", (6, 18, 44)),
            ("Version: 4", (4,)),
            ("no digits here", None),
        ],
    )
    def test_parse_version(self, text: str, expected: tuple[int, ...] | None) -> None:
        assert parse_version(text) == expected

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("Version: 4.2.1\nGitID: v4.2.1\n", "4.2.1"),
            ("Version: 4.2\n", "4.2"),
            ("true (GNU coreutils) 9.1\n", None),
            ("", None),
        ],
    )
    def test_parse_criu_version(self, text: str, expected: str | None) -> None:
        assert parse_criu_version(text) == expected

    @pytest.mark.parametrize(
        ("version", "minimum", "expected"),
        [
            ((4, 2, 1), (4, 2), True),
            ((4, 2), (4, 2, 0), True),
            ((4, 2), (4, 2, 1), False),
            ((4, 1, 1), (4, 2), False),
            ((4, 10), (4, 2), True),  # numeric, not lexicographic
            ((5,), (4, 2), True),
            ((3, 17, 1), (4, 2), False),
        ],
    )
    def test_version_at_least(
        self, version: tuple[int, ...], minimum: tuple[int, ...], expected: bool
    ) -> None:
        assert version_at_least(version, minimum) is expected

    @pytest.mark.parametrize("version", ["28.0.0", "28.5.2", "29.1.3", "29.0.0-rc.1"])
    def test_docker_28_and_29_are_flagged(self, version: str) -> None:
        problem = known_docker_problem(version)
        assert problem is not None
        assert "50750" in problem
        assert version in problem
        check = check_docker_version(version, "1.51")
        # Network holders (the default) and host networking restore there.
        assert check.status == "ok"
        assert "join a network holder" in check.detail
        assert "host networking" in check.detail
        path = check_network_path("docker", version)
        assert "joins a network holder" in path.detail
        assert f"Docker {version} restores only these two" in path.detail

    def test_the_stack_and_the_network_path_are_named(self) -> None:
        stack = check_engine_stack("Podman", "5.8.6", {"conmon": "2.1.13", "runc": "1.3.6"})
        assert stack.detail == "Podman 5.8.6, conmon 2.1.13, runc 1.3.6"
        podman = check_network_path("podman", "5.8.6")
        assert podman.detail.startswith("bridge and none networks: a network namespace of its own")
        assert "restores only" not in check_network_path("docker", "26.1.5").detail

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("containerd github.com/containerd/containerd/v2 2.1.9 abc\n", "2.1.9"),
            ("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1\n", "1.6.20~ds1"),
            ("", ""),
            ("something else 1.0", ""),
        ],
    )
    def test_containerd_version(self, text: str, expected: str) -> None:
        assert parse_containerd_version(text) == expected

    @pytest.mark.parametrize("version", ["20.10.24+dfsg1", "26.1.5", "27.5.1", "30.0.0", "2.8"])
    def test_other_docker_versions_pass(self, version: str) -> None:
        assert known_docker_problem(version) is None
        check = check_docker_version(version, "1.41")
        assert check.status == "ok"
        assert check.detail == f"{version} (API 1.41): no known checkpoint regressions"

    def test_old_criu_on_a_6x_kernel_warns_about_tcp(self) -> None:
        check = check_criu_version("4.1.1", "6.18.44-fc-v669")
        assert check.status == "warn"
        assert "TCP" in check.detail
        assert ">= 4.2" in check.fix
        assert "sudo pytest-criu setup does this" in check.fix

    def test_old_criu_on_a_5x_kernel_is_fine(self) -> None:
        assert check_criu_version("4.1.1", "5.10.0-35-amd64").status == "ok"

    def test_criu_42_on_a_6x_kernel_is_fine(self) -> None:
        check = check_criu_version("4.2.1", "6.18.44")
        assert check.status == "ok"
        assert check.detail == "CRIU 4.2.1"


class TestConfigFiles:
    def test_runc_conf_options_ignore_comments_and_dashes(self) -> None:
        text = "# CRIU options for runc\ntcp-established\n--file-locks  # for MariaDB\n\n"
        assert parse_runc_conf(text) == {"tcp-established", "file-locks"}

    def test_complete_runc_conf_is_ok(self) -> None:
        assert check_runc_conf("tcp-established\nfile-locks\n").status == "ok"

    def test_runc_conf_missing_one_option_says_what_it_is_for(self) -> None:
        check = check_runc_conf("tcp-established\n", "/etc/criu/runc.conf")
        assert check.status == "warn"
        assert "lacks file-locks" in check.detail
        assert "file locks" in check.detail
        assert "tcp-established is needed" not in check.detail
        assert "file-locks" in check.fix

    def test_a_chosen_network_lock_is_named(self) -> None:
        check = check_network_lock("file-locks\nnetwork-lock nftables  # fast\n", True)
        assert (check.status, check.detail) == ("ok", "nftables (/etc/criu/runc.conf)")

    def test_the_iptables_lock_is_a_warning_only_where_nftables_would_work(self) -> None:
        slow = check_network_lock("tcp-established\n", True)
        assert slow.status == "warn"
        assert "iptables-restore" in slow.detail
        assert "network-lock nftables" in slow.fix
        assert check_network_lock(None, False).status == "ok"

    def test_absent_runc_conf_names_the_path(self) -> None:
        check = check_runc_conf(None, "/etc/criu/runc.conf")
        assert check.status == "warn"
        assert check.detail.startswith("/etc/criu/runc.conf does not exist")
        assert "TCP connection" in check.detail

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("CONFIG_A=y\nCONFIG_CHECKPOINT_RESTORE=y\n", "y"),
            ("# CONFIG_CHECKPOINT_RESTORE is not set\n", "n"),
            ("CONFIG_CHECKPOINT_RESTORE_X=y\n", None),
            ("", None),
        ],
    )
    def test_kernel_config(self, text: str, expected: str | None) -> None:
        assert parse_kernel_config(text, "CONFIG_CHECKPOINT_RESTORE") == expected

    def test_dockerd_option_in_both_spellings(self) -> None:
        cmdline = ["/usr/sbin/dockerd", "--config-file", "/tmp/d.json", "--data-root=/tmp/r"]
        assert dockerd_option(cmdline, "--config-file") == "/tmp/d.json"
        assert dockerd_option(cmdline, "--data-root") == "/tmp/r"
        assert dockerd_option(cmdline, "--exec-root") is None


class TestDockerUrl:
    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("unix:///var/run/docker.sock", "local"),
            ("http+unix:///var/run/docker.sock", "local"),
            ("tcp://127.0.0.1:2375", "local"),
            ("tcp://localhost:2375", "local"),
            ("tcp://[::1]:2375", "local"),
            ("tcp://10.0.0.5:2376", "remote"),
            ("tcp://docker.example.com:2376", "remote"),
            ("ssh://me@build-host", "ssh"),
            ("127.0.0.1:2375", "local"),
        ],
    )
    def test_locality(self, url: str, expected: str) -> None:
        assert docker_url_locality(url) == expected


class TestShortError:
    def test_innermost_errno_of_a_requests_error(self) -> None:
        text = (
            "Error while fetching server API version: HTTPConnectionPool(host='127.0.0.1', "
            "port=1): Max retries exceeded with url: /version (Caused by NewConnectionError("
            "\"HTTPConnection(host='127.0.0.1', port=1): Failed to establish a new connection: "
            '[Errno 111] Connection refused"))'
        )
        assert short_error(text) == "[Errno 111] Connection refused"

    def test_other_errors_lose_only_the_prefix(self) -> None:
        text = "Error while fetching server API version: 404 Client Error:\n Not Found"
        assert short_error(text) == "404 Client Error: Not Found"


class TestCriuCheckOutput:
    def test_error_lines_are_quoted(self) -> None:
        output = (
            "Warn  (criu/kerndat.c:1): something optional\n"
            "Error (criu/vdso.c:307): vdso: Unexpected rt vDSO area bounds\n"
            "Looks good but some kernel features are missing\n"
        )
        line = criu_check_lines(output)
        assert "Unexpected rt vDSO area bounds" in line
        assert "\n" not in line

    def test_plain_output_is_quoted_when_no_error_line(self) -> None:
        assert criu_check_lines("Looks good.\n") == "Looks good."

    def test_empty_output(self) -> None:
        assert criu_check_lines("") == "no output"

    def test_at_most_limit_lines(self) -> None:
        output = "\n".join(f"Error {n}" for n in range(10))
        assert criu_check_lines(output, limit=2) == "Error 0 | Error 1"


class TestResolveExecutable:
    def test_missing_path_is_named(self) -> None:
        path, why = resolve_executable("/nonexistent/criu")
        assert path is None
        assert why == "/nonexistent/criu does not exist"

    def test_non_executable_file_is_named(self, tmp_path: Path) -> None:
        binary = tmp_path / "criu"
        binary.write_text("#!/bin/sh\n")
        binary.chmod(0o644)
        path, why = resolve_executable(str(binary))
        assert path is None
        assert why == f"{binary} is not executable"

    def test_directory_is_refused(self, tmp_path: Path) -> None:
        path, why = resolve_executable(str(tmp_path))
        assert path is None
        assert "is a directory" in why

    def test_executable_path_is_returned(self, tmp_path: Path) -> None:
        binary = tmp_path / "criu"
        binary.write_text("#!/bin/sh\n")
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
        assert resolve_executable(str(binary)) == (str(binary), "")

    def test_name_not_on_path(self) -> None:
        path, why = resolve_executable("criu-that-does-not-exist-anywhere")
        assert path is None
        assert "not on this process's PATH" in why


def _report(*checks: Check) -> HostReport:
    return HostReport(checks=list(checks), kernel="6.18.44")


class TestReport:
    def test_every_blocking_failure_is_in_the_blocker(self) -> None:
        report = _report(
            Check("kernel", "ok", "Linux 6.18"),
            Check("runc.conf", "warn", "missing", "add lines"),
            Check("daemon's criu", "fail", "not blocking", "ignore me"),
            Check("docker", "fail", "cannot reach it", "start dockerd", blocks_snapshots=True),
            Check("criu", "fail", "not on PATH", "install it", blocks_snapshots=True),
        )
        assert report.snapshot_blocker() == (
            "docker: cannot reach it (fix: start dockerd); criu: not on PATH (fix: install it)"
        )
        assert not report.can_snapshot
        assert not report.ok

    def test_blocker_without_fix(self) -> None:
        report = _report(Check("kernel", "fail", "Darwin", blocks_snapshots=True))
        assert report.snapshot_blocker() == "kernel: Darwin"

    def test_warnings_and_skips_do_not_block(self) -> None:
        report = _report(
            Check("capabilities", "warn", "lacks CAP_SYS_RESOURCE", "grant it"),
            Check("kernel config", "skip", "unknown"),
        )
        assert report.snapshot_blocker() is None
        assert report.can_snapshot
        assert report.ok

    def test_non_blocking_failure_is_not_ok_but_can_snapshot(self) -> None:
        report = _report(Check("x", "fail", "broken"))
        assert report.can_snapshot
        assert not report.ok

    def test_check_lookup(self) -> None:
        report = _report(Check("kernel", "ok", "Linux"))
        assert report.check("kernel") == Check("kernel", "ok", "Linux")
        assert report.check("docker") is None

    def test_json_shape_is_stable(self) -> None:
        report = _report(Check("docker", "fail", "down", "start it", blocks_snapshots=True))
        data = json.loads(json.dumps(report.to_dict()))
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
        assert data["checks"] == [
            {
                "name": "docker",
                "status": "fail",
                "detail": "down",
                "fix": "start it",
                "blocks_snapshots": True,
            }
        ]
        assert data["kernel"] == "6.18.44"
        assert data["criu_version"] is None


class TestHumanOutput:
    def test_lines_tags_fixes_and_verdict(self) -> None:
        report = _report(
            Check("kernel", "ok", "Linux 6.18"),
            Check("runc.conf", "warn", "lacks file-locks", "add file-locks"),
            Check("criu", "fail", "/x/criu does not exist", "install CRIU", True),
            Check("criu check", "skip", "no usable criu binary"),
        )
        out = io.StringIO()
        print_report(report, out)
        lines = out.getvalue().splitlines()
        assert lines[0] == "[ ok ] kernel      Linux 6.18"
        assert lines[1] == "[warn] runc.conf   lacks file-locks"
        assert lines[2].strip() == "fix: add file-locks"
        assert lines[3] == "[FAIL] criu        /x/criu does not exist"
        assert lines[4].strip() == "fix: install CRIU"
        assert lines[5] == "[skip] criu check  no usable criu binary"
        assert lines[-1] == (
            "verdict: snapshots cannot work here: criu: /x/criu does not exist (fix: install CRIU)"
        )

    def test_verdict_counts_warnings(self) -> None:
        out = io.StringIO()
        print_report(_report(Check("runc.conf", "warn", "lacks", "add")), out)
        assert out.getvalue().splitlines()[-1] == (
            "verdict: snapshots can work here (1 warning(s) above)"
        )


class TestPodmanExitDelay:
    def test_later_files_win_and_only_the_engine_table_counts(self) -> None:
        shipped = "[engine]\n#exit_command_delay = 1\nexit_command_delay = 300\n"
        local = "[containers]\nexit_command_delay = 7\n\n[engine]\nexit_command_delay = 5 # short\n"
        assert parse_exit_command_delay([shipped, local]) == 5
        assert parse_exit_command_delay([local, shipped]) == 300

    def test_unset_is_none(self) -> None:
        assert parse_exit_command_delay(["[containers]\nexit_command_delay = 7\n"]) is None
        assert parse_exit_command_delay([]) is None


class TestPodmanProbe:
    """What a Podman service reports, judged without a service (``libpod/info`` as data)."""

    def probe(self, rootless: bool) -> Probe:
        probe = Probe("criu", "unix:///nonexistent/podman.sock", 1.0, "podman")
        libpod_info = {
            "host": {
                "security": {"rootless": rootless},
                "ociRuntime": {"name": "runc", "version": "runc version 1.1.5\ncommit: x"},
            }
        }
        url = "unix:///run/user/1000/podman/podman.sock"
        podman_checks(probe, url, {"Version": "4.3.1"}, libpod_info)
        return probe

    def test_rootless_podman_cannot_snapshot_and_says_so(self) -> None:
        report = self.probe(rootless=True).report
        check = report.check("podman rootful")
        assert check is not None
        assert check.status == "fail"
        assert check.blocks_snapshots
        assert "rootless Podman cannot checkpoint containers" in check.detail
        assert "run `podman system service unix:///run/podman/podman.sock` as root" in check.fix
        blocker = report.snapshot_blocker()
        assert blocker is not None
        assert blocker.startswith("podman rootful: unix:///run/user/")

    def test_rootful_podman_names_its_runtime(self) -> None:
        report = self.probe(rootless=False).report
        assert report.engine == "podman"
        assert report.engine_version == "4.3.1"
        check = report.check("podman rootful")
        assert check == Check(
            "podman rootful", "ok", "rootful service, OCI runtime runc (runc version 1.1.5)"
        )


def test_the_containerd_version_comes_from_the_daemons_components() -> None:
    version = {
        "Components": [
            {"Name": "Engine", "Version": "28.5.2+dfsg4"},
            {"Name": "containerd", "Version": "2.1.9~ds1"},
        ]
    }
    assert component_version(version, "containerd") == "2.1.9~ds1"
    assert component_version(version, "runc") == ""
    assert component_version({}, "containerd") == ""
