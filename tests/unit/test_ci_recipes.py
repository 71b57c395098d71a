"""The CI recipes in examples/ci parse, hold the jobs they promise, and run steps in order."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CI = ROOT / "examples" / "ci"
GITHUB = CI / "github-actions.yml"
GITLAB = CI / "gitlab-ci.yml"

#: The snapshot job's commands, in the order they must run.
SNAPSHOT_STEPS = [
    ("install with test extras", r"^\.venv/bin/pip install -e '\.\[test\]'$"),
    ("set up the host", r"^sudo\b.*\s\.venv/bin/pytest-criu setup$"),
    ("build the images", r"^sudo \.venv/bin/python -m tests\.tooling\.images all$"),
    ("doctor", r"^sudo \.venv/bin/pytest-criu doctor$"),
    ("test suite", r"^sudo \.venv/bin/pytest -p no:cacheprovider\b"),
    ("examples", r"^sudo \.venv/bin/pytest examples -p no:cacheprovider$"),
]
#: Commands that need root: Docker, CRIU and the daemon's data root.
NEEDS_ROOT = re.compile(r"pytest-criu (setup|doctor)|tests\.tooling\.images|bin/pytest\b")


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path} does not hold a mapping"
    return data


def lines(commands: list[str]) -> list[str]:
    """Every non-empty shell line of a list of (possibly multi-line) commands."""
    return [line.strip() for command in commands for line in command.splitlines() if line.strip()]


def assert_in_order(commands: list[str], where: str) -> None:
    positions = []
    for name, pattern in SNAPSHOT_STEPS:
        found = [i for i, line in enumerate(commands) if re.search(pattern, line)]
        assert found, f"{where}: no {name!r} step matching {pattern!r} in {commands}"
        positions.append(found[0])
    assert positions == sorted(positions), f"{where}: steps out of order: {commands}"


def assert_root_where_needed(commands: list[str], where: str) -> None:
    for line in commands:
        if NEEDS_ROOT.search(line):
            assert line.startswith("sudo "), f"{where}: {line!r} needs root; run it with sudo"


def assert_valid_shell(commands: list[str], where: str) -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    result = subprocess.run(
        [bash, "-n"], input="\n".join(commands), text=True, capture_output=True, check=False
    )
    assert result.returncode == 0, f"{where}: not valid shell: {result.stderr}"


def assert_scripts_exist(commands: list[str]) -> None:
    for script in re.findall(r"scripts/[\w-]+", "\n".join(commands)):
        assert (ROOT / script).is_file(), f"the recipe runs {script}, which does not exist"


def test_the_package_provides_what_the_recipes_use() -> None:
    metadata = importlib.metadata.metadata("pytest-criu")
    assert "test" in (metadata.get_all("Provides-Extra") or [])
    scripts = importlib.metadata.entry_points(group="console_scripts", name="pytest-criu")
    assert [script.value for script in scripts] == ["pytest_criu.cli:main"]


# -- GitHub Actions ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def github() -> dict[Any, Any]:
    return load(GITHUB)


def github_commands(job: dict[str, Any]) -> list[str]:
    return lines([step["run"] for step in job["steps"] if "run" in step])


def test_github_triggers_and_jobs(github: dict[Any, Any]) -> None:
    # YAML 1.1 reads the key `on` as the boolean true.
    triggers = github.get("on", github.get(True))
    assert isinstance(triggers, dict)
    assert {"push", "pull_request"} <= set(triggers)
    assert set(github["jobs"]) == {"fast", "hosted", "snapshots"}


def test_github_fast_job_needs_no_privileges(github: dict[Any, Any]) -> None:
    job = github["jobs"]["fast"]
    assert job["runs-on"] == "ubuntu-latest"
    commands = github_commands(job)
    assert any(re.search(r"pytest -m \"not integration\"", line) for line in commands)
    assert not any("sudo" in line or "docker" in line for line in commands)
    assert job["timeout-minutes"] <= 30


def test_github_snapshot_job_runs_on_a_privileged_self_hosted_runner(
    github: dict[Any, Any],
) -> None:
    job = github["jobs"]["snapshots"]
    assert job["needs"] == "fast"
    assert "self-hosted" in job["runs-on"]
    assert "criu" in job["runs-on"]
    assert 0 < job["timeout-minutes"] <= 90
    assert job["steps"][0]["uses"].startswith("actions/checkout@")
    commands = github_commands(job)
    assert_in_order(commands, "snapshots")
    assert_root_where_needed(commands, "snapshots")
    assert_scripts_exist(commands)
    assert_valid_shell(commands, "snapshots")


def test_github_snapshot_job_cleans_up_even_on_failure(github: dict[Any, Any]) -> None:
    steps = github["jobs"]["snapshots"]["steps"]
    always = [step for step in steps if step.get("if") == "always()"]
    assert any("chown -R" in step.get("run", "") for step in always)
    report = [step for step in always if step.get("uses", "").startswith("actions/upload-artifact")]
    assert report
    assert report[0]["with"]["path"] == "pytest-report.xml"
    assert any("--junitxml=pytest-report.xml" in line for line in github_commands({"steps": steps}))


#: The hosted job's commands, in order: Docker only, images from Debian's archive.
HOSTED_STEPS = [
    ("install with test extras", r"^\.venv/bin/pip install -e '\.\[test\]'$"),
    ("set up Docker", r"^sudo --preserve-env=PYTEST_CRIU_DEBIAN_URI \.venv/bin/pytest-criu "
     r"setup --engine docker$"),
    ("doctor", r"^sudo \.venv/bin/pytest-criu doctor$"),
    ("build the images", r"^sudo --preserve-env=PYTEST_CRIU_DEBIAN_URI \.venv/bin/python -m "
     r"tests\.tooling\.images all$"),
    ("examples", r"^sudo \.venv/bin/pytest examples -p no:cacheprovider\b"),
    ("integration tests", r"^sudo \.venv/bin/pytest -p no:cacheprovider .*tests/integration/"),
]  # fmt: skip


def test_github_hosted_job_runs_the_snapshot_suite_on_ubuntu_latest(
    github: dict[Any, Any],
) -> None:
    job = github["jobs"]["hosted"]
    assert job["runs-on"] == "ubuntu-latest"
    assert job["needs"] == "fast"
    assert 0 < job["timeout-minutes"] <= 90
    assert job["env"]["PYTEST_CRIU_DEBIAN_URI"].startswith("http")
    steps = job["steps"]
    assert [s.get("uses", "").split("@")[0] for s in steps[:2]] == [
        "actions/checkout",
        "actions/setup-python",
    ]
    commands = github_commands(job)
    positions = []
    for name, pattern in HOSTED_STEPS:
        found = [i for i, line in enumerate(commands) if re.search(pattern, line)]
        assert found, f"hosted: no {name!r} step matching {pattern!r} in {commands}"
        positions.append(found[0])
    assert positions == sorted(positions), f"hosted: steps out of order: {commands}"
    assert_root_where_needed(commands, "hosted")
    assert_valid_shell(commands, "hosted")
    # No Podman service and no engine matrix there: those tests would only be skips.
    tests = next(line for line in commands if "tests/integration/" in line)
    assert '-k "not podman"' in tests
    assert "test_engine_matrix" not in tests
    assert "test_podman_rootless" not in tests
    always = [step for step in steps if step.get("if") == "always()"]
    assert any("chown -R" in step.get("run", "") for step in always)


def test_github_passes_the_debian_uri_through_sudo(github: dict[Any, Any]) -> None:
    job = github["jobs"]["snapshots"]
    assert job["env"]["PYTEST_CRIU_DEBIAN_URI"].startswith("http")
    setup = next(line for line in github_commands(job) if "pytest-criu setup" in line)
    assert "--preserve-env=PYTEST_CRIU_DEBIAN_URI" in setup


# -- GitLab CI --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gitlab() -> dict[Any, Any]:
    return load(GITLAB)


def gitlab_commands(job: dict[str, Any]) -> list[str]:
    return lines(job.get("before_script", []) + job["script"])


def test_gitlab_stages_and_jobs(gitlab: dict[Any, Any]) -> None:
    assert gitlab["stages"] == ["fast", "snapshots"]
    jobs = {name for name, value in gitlab.items() if isinstance(value, dict) and "script" in value}
    assert jobs == {"fast", "snapshots"}
    assert gitlab["fast"]["stage"] == "fast"
    assert gitlab["snapshots"]["stage"] == "snapshots"


def test_gitlab_fast_job_needs_no_privileges(gitlab: dict[Any, Any]) -> None:
    job = gitlab["fast"]
    assert "tags" not in job
    assert job["image"].startswith("python:")
    commands = gitlab_commands(job)
    assert any('pytest -m "not integration"' in line for line in commands)
    assert not any("sudo" in line or "docker" in line for line in commands)


def test_gitlab_snapshot_job_runs_on_a_privileged_runner(gitlab: dict[Any, Any]) -> None:
    job = gitlab["snapshots"]
    assert job["tags"] == ["criu"]
    assert "image" not in job, "the snapshot job runs on a shell-executor host, not in a container"
    assert "services" not in job, "docker:dind cannot work: the tests write the daemon's data root"
    commands = gitlab_commands(job)
    assert_in_order(commands, "snapshots")
    assert_root_where_needed(commands, "snapshots")
    assert_scripts_exist(commands)
    assert_valid_shell(commands, "snapshots")
    # The doctor runs before the tests, so a host that cannot snapshot fails fast and clearly.
    assert any("pytest-criu doctor" in line for line in job["before_script"])


def test_gitlab_snapshot_job_cleans_up_and_keeps_the_report(gitlab: dict[Any, Any]) -> None:
    job = gitlab["snapshots"]
    assert any("chown -R" in line for line in job["after_script"])
    assert job["artifacts"]["when"] == "always"
    assert job["artifacts"]["reports"]["junit"] == "pytest-report.xml"
    assert any("--junitxml=pytest-report.xml" in line for line in job["script"])
    assert job["variables"]["PYTEST_CRIU_DEBIAN_URI"].startswith("http")
