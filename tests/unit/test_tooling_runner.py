"""tests.tooling.runner's pure parts: a workflow's job read as steps, and their rewriting."""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import pytest

from tests.tooling.runner import iptables, nat_rules, stale_rules, subnet_for
from tests.tooling.runner_steps import (
    Job,
    RecipeError,
    Step,
    load_job,
    shell_command,
    should_run,
    step_environment,
    timeout_seconds,
)

ROOT = Path(__file__).resolve().parents[2]

WORKFLOW = """
env:
  SHARED: "1"
jobs:
  other:
    runs-on: [self-hosted, criu]
    steps:
      - run: "true"
  hosted:
    runs-on: ubuntu-latest
    timeout-minutes: 30
    env:
      PYTEST_CRIU_DEBIAN_URI: http://deb.debian.org/debian
      SHARED: "2"
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.12"
      - name: Install
        run: |
          python -m venv .venv
          .venv/bin/pip install -e '.[test]'
      - run: sudo .venv/bin/pytest-criu doctor
        timeout-minutes: 5
        env:
          VERBOSE: true
      - name: Hand back
        if: always()
        run: sudo chown -R "$(id -u):$(id -g)" .
      - if: ${{ always() }}
        uses: actions/upload-artifact@v4
        with:
          name: report
          path: pytest-report.xml
"""


def job_with(step: str) -> str:
    return "jobs:\n  j:\n    runs-on: ubuntu-latest\n    steps:\n" + textwrap.indent(
        textwrap.dedent(step), "      "
    )


def test_a_job_becomes_its_steps_in_order() -> None:
    job = load_job(WORKFLOW, "hosted")
    assert (job.name, job.runs_on, job.timeout_minutes) == ("hosted", "ubuntu-latest", 30.0)
    assert job.env == {"SHARED": "2", "PYTEST_CRIU_DEBIAN_URI": "http://deb.debian.org/debian"}
    assert [(s.number, s.kind, s.always) for s in job.steps] == [
        (1, "checkout", False),
        (2, "setup-python", False),
        (3, "run", False),
        (4, "run", False),
        (5, "run", True),
        (6, "skip", True),
    ]
    install, doctor = job.steps[2], job.steps[3]
    assert install.name == "Install"
    assert install.script == "python -m venv .venv\n.venv/bin/pip install -e '.[test]'\n"
    assert doctor.name == "sudo .venv/bin/pytest-criu doctor"  # a nameless step: its first line
    assert (doctor.timeout_minutes, doctor.env) == (5.0, {"VERBOSE": "true"})
    assert "3.12" in job.steps[1].note
    assert job.steps[5].note == "not reproduced: uploads pytest-report.xml to GitHub"


def test_the_projects_own_recipe_reads() -> None:
    job = load_job((ROOT / "examples/ci/github-actions.yml").read_text(), "hosted")
    assert [s.kind for s in job.steps][:2] == ["checkout", "setup-python"]
    assert job.env["PYTEST_CRIU_DEBIAN_URI"].startswith("http")


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("- uses: actions/cache@v4\n", "action actions/cache@v4 has no replacement here"),
        (
            "- uses: actions/checkout@v4\n  with:\n    ref: main\n",
            "actions/checkout with ref is not reproduced",
        ),
        ("- run: echo ${{ github.sha }}\n", "the script holds an expression; not evaluated here"),
        ("- run: x\n  shell: pwsh\n", "shell 'pwsh' not supported (bash only)"),
        ("- run: x\n  if: failure()\n", "condition 'failure()' not supported (only always())"),
        ("- run: x\n  working-directory: sub\n", "working-directory not supported here"),
        ("- name: nothing\n", "neither run nor uses"),
        ("- run: x\n  env:\n    A: ${{ secrets.A }}\n", "env A holds an expression"),
    ],
)
def test_what_cannot_run_as_on_github_is_refused_naming_the_step(step: str, message: str) -> None:
    with pytest.raises(RecipeError, match=r"^j step 1: ") as caught:
        load_job(job_with(step), "j")
    assert message in str(caught.value)


def test_an_unknown_job_lists_the_jobs() -> None:
    with pytest.raises(
        RecipeError, match=r"^no job 'nope' in the workflow \(jobs: hosted, other\)$"
    ):
        load_job(WORKFLOW, "nope")


def test_only_the_hosted_runner_is_reproduced() -> None:
    with pytest.raises(RecipeError, match=r"runs on \['self-hosted', 'criu'\]; this tool"):
        load_job(WORKFLOW, "other")


def test_after_a_failure_only_always_steps_run() -> None:
    plain, always = Step(1, "a", "run"), Step(2, "b", "run", always=True)
    assert should_run(plain, failed=False)
    assert should_run(always, failed=False)
    assert not should_run(plain, failed=True)
    assert should_run(always, failed=True)


def test_a_step_sees_the_runner_then_the_job_then_its_own_environment() -> None:
    job = Job("j", "ubuntu-latest", {"A": "job", "B": "job"}, 10, [])
    step = Step(1, "s", "run", env={"B": "step"})
    assert step_environment({"A": "base", "HOME": "/home/runner"}, job, step) == {
        "A": "job",
        "B": "step",
        "HOME": "/home/runner",
    }


def test_a_script_runs_as_github_runs_bash() -> None:
    assert shell_command("/t/s.sh") == [
        "bash",
        "--noprofile",
        "--norc",
        "-eo",
        "pipefail",
        "/t/s.sh",
    ]


def test_a_step_never_outlives_its_job() -> None:
    job = Job("j", "ubuntu-latest", {}, 60, [])
    assert timeout_seconds(job, Step(1, "s", "run", timeout_minutes=5), 3600) == 300
    assert timeout_seconds(job, Step(1, "s", "run", timeout_minutes=5), 100) == 100
    assert timeout_seconds(job, Step(1, "s", "run"), 1234) == 1234
    assert timeout_seconds(job, Step(1, "s", "run"), -5) == 0


def test_each_run_gets_a_slash_30_of_the_shared_address_space() -> None:
    shared = ipaddress.IPv4Network("100.64.0.0/10")
    for pid in (1, 4321, 4194304):
        subnet = subnet_for(pid)
        assert subnet.prefixlen == 30
        assert subnet.subnet_of(shared)
    assert subnet_for(1) != subnet_for(2)


def test_the_nat_rules_name_only_the_runs_veth_and_carry_its_tag() -> None:
    rules = nat_rules("pcrun1f", "100.64.0.4/30", "pytest-criu-runner-31")
    commands = [iptables("-I", rule) for rule in rules]
    assert commands[0] == [
        "iptables", "-w", "10", "-t", "nat", "-I", "POSTROUTING", "-s", "100.64.0.4/30", "!",
        "-o", "pcrun1f", "-j", "MASQUERADE", "-m", "comment", "--comment", "pytest-criu-runner-31",
    ]  # fmt: skip
    assert all("pcrun1f" in rule and rule[-1] == "pytest-criu-runner-31" for rule in rules)
    assert [iptables("-D", rule)[6] for rule in rules] == ["POSTROUTING", "FORWARD", "FORWARD"]


def test_rules_of_runs_that_are_gone_are_deleted_and_no_others() -> None:
    listing = (
        "-P FORWARD DROP\n"
        "-A FORWARD -j DOCKER-USER\n"
        '-A FORWARD -i pcrun1f -m comment --comment "pytest-criu-runner-31" -j ACCEPT\n'
        "-A FORWARD -i pcrun20 -m comment --comment pytest-criu-runner-32 -j ACCEPT\n"
    )
    assert stale_rules("filter", listing, alive=lambda pid: pid == 32) == [
        ["iptables", "-w", "10", "-t", "filter", "-D", "FORWARD", "-i", "pcrun1f", "-m",
         "comment", "--comment", "pytest-criu-runner-31", "-j", "ACCEPT"],
    ]  # fmt: skip
