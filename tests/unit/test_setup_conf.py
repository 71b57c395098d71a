"""``pytest-criu setup``'s configuration merges: what they add, keep, refuse; and --check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_criu.setup import conf
from pytest_criu.setup.system import SetupError
from tests.unit.setup_fakes import plan

HARD = {"nofile": 20000, "nproc": 96365}
CONF = Path("/etc/containers/containers.conf")
#: What scripts/setup-podman wrote on the hosts set up before `pytest-criu setup` existed.
LEGACY_CONTAINERS_CONF = """[containers]
# >>> pytest-criu: managed by scripts/setup-podman; edits inside are overwritten >>>
# Podman's defaults (nofile=1048576, nproc=4194304) exceed this host's hard limits, and
# containers then fail to start.
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
# <<< pytest-criu <<<
"""
LEGACY_DROPIN = """# Managed by pytest-criu scripts/setup-podman: exec sessions' conmon processes end
# 5 s after the command instead of 300 s.
[engine]
exit_command_delay = 5
"""


def test_daemon_json_gains_experimental_and_keeps_the_rest() -> None:
    new = conf.merge_daemon_json('{"log-driver": "local"}')
    assert new is not None
    assert json.loads(new) == {"experimental": True, "log-driver": "local"}
    assert json.loads(conf.merge_daemon_json("") or "") == {"experimental": True}


def test_daemon_json_with_experimental_is_left_alone() -> None:
    assert conf.merge_daemon_json('{"experimental": true, "debug": true}') is None


@pytest.mark.parametrize(
    ("text", "message"),
    [("{not json", r"daemon.json is not valid JSON .*fix it, then rerun"),
     ("[1]", r"daemon.json must hold a JSON object, not list")],
)  # fmt: skip
def test_a_daemon_json_that_cannot_be_merged_is_refused(text: str, message: str) -> None:
    with pytest.raises(SetupError, match=message):
        conf.merge_daemon_json(text)


def test_runc_conf_gains_what_it_lacks_only() -> None:
    new = conf.merge_runc_conf("--tcp-established\n")
    assert new is not None
    assert new.startswith("--tcp-established\n")
    assert new.rstrip().endswith("\nfile-locks")
    assert "tcp-established\n" not in new.removeprefix("--tcp-established\n")
    assert conf.merge_runc_conf(new) is None
    both = conf.merge_runc_conf("")
    assert both is not None
    assert [ln for ln in both.splitlines() if not ln.startswith("#")] == [
        "tcp-established",
        "file-locks",
    ]


def test_runc_conf_gains_the_nftables_lock_only_where_criu_has_it() -> None:
    full = "tcp-established\nfile-locks\n"
    assert conf.merge_runc_conf(full) is None
    new = conf.merge_runc_conf(full, nftables_lock=True)
    assert new is not None
    assert new.startswith(full)
    assert [ln for ln in new.splitlines() if not ln.startswith("#")][-1] == "network-lock nftables"
    assert conf.merge_runc_conf(new, nftables_lock=True) is None


@pytest.mark.parametrize("chosen", ["network-lock iptables", "--network-lock skip"])
def test_a_network_lock_chosen_by_hand_is_kept(chosen: str) -> None:
    text = f"tcp-established\nfile-locks\n{chosen}\n"
    assert conf.merge_runc_conf(text, nftables_lock=True) is None


def test_containers_conf_is_created_with_our_block() -> None:
    new = conf.merge_containers_conf("", 1024, 1024, HARD, CONF)
    assert new is not None
    assert new.startswith("[containers]\n# >>> pytest-criu: managed by pytest-criu setup")
    assert 'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]' in new
    assert conf.merge_containers_conf(new, 1024, 1024, HARD, CONF) is None


def test_the_block_scripts_setup_podman_wrote_is_kept_as_it_is() -> None:
    # Rewriting it would restart Podman's service for nothing.
    assert conf.merge_containers_conf(LEGACY_CONTAINERS_CONF, 1024, 1024, HARD, CONF) is None


def test_the_block_follows_the_hard_limits_and_keeps_other_tables() -> None:
    text = '[engine]\ncgroup_manager = "cgroupfs"\n\n[containers]\nlog_size_max = 100\n'
    new = conf.merge_containers_conf(text, 512, 1024, {"nofile": 512, "nproc": None}, CONF)
    assert new is not None
    assert new.startswith('[engine]\ncgroup_manager = "cgroupfs"\n\n[containers]\n# >>>')
    assert '"nofile=512:512"' in new
    assert new.endswith("# <<< pytest-criu <<<\nlog_size_max = 100\n")


def test_ulimits_set_by_hand_that_fit_are_kept() -> None:
    text = '[containers]\ndefault_ulimits = ["nofile=2048:4096", "nproc=500:500"]\n'
    assert conf.merge_containers_conf(text, 1024, 1024, HARD, CONF) is None


def test_ulimits_set_by_hand_above_the_hard_limits_are_refused() -> None:
    text = '[containers]\ndefault_ulimits = ["nofile=1048576:1048576", "nproc=500:500"]\n'
    with pytest.raises(SetupError) as caught:
        conf.merge_containers_conf(text, 1024, 1024, HARD, CONF)
    assert str(caught.value) == (
        "/etc/containers/containers.conf sets default_ulimits = ['nofile=1048576:1048576', "
        "'nproc=500:500'] in [containers] (not pytest-criu's block): it must set nofile and "
        "nproc at most this host's hard limits (nofile 20000, nproc 96365); change or remove "
        "it, then rerun"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            LEGACY_CONTAINERS_CONF + LEGACY_CONTAINERS_CONF.split("\n", 1)[1],
            "two pytest-criu blocks",
        ),
        ("[containers]\n" + conf.BLOCK_BEGIN + "\n", "has no '# <<< pytest-criu <<<' line"),
        ("[containers\n", "is not valid TOML"),
    ],
)
def test_a_containers_conf_that_cannot_be_merged_is_refused(text: str, message: str) -> None:
    with pytest.raises(SetupError, match=message):
        conf.merge_containers_conf(text, 1024, 1024, HARD, CONF)


def test_exit_delay_dropin_compares_settings_not_comments() -> None:
    assert conf.merge_exit_delay(LEGACY_DROPIN) is None
    assert conf.merge_exit_delay(None) == conf.EXIT_DELAY_TEXT
    assert conf.merge_exit_delay("[engine]\nexit_command_delay = 300\n") == conf.EXIT_DELAY_TEXT


def test_check_mode_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "daemon.json"
    checking, said = plan(check=True)
    assert conf.apply(checking, target, "{}\n", "experimental")
    assert not target.exists()
    assert said == [f"would create {target}: experimental"]


def test_apply_keeps_the_files_mode(tmp_path: Path) -> None:
    target = tmp_path / "runc.conf"
    target.write_text("x\n")
    target.chmod(0o600)
    assert conf.apply(plan()[0], target, "y\n", "file-locks")
    assert target.read_text() == "y\n"
    assert target.stat().st_mode & 0o777 == 0o600
    assert not conf.apply(plan()[0], target, None, "nothing")
