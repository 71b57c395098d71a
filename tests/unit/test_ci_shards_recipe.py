"""The shards recipe (examples/ci/github-actions-shards.yml): prepare once, import everywhere.

Its steps run for real in tests/integration/test_transfer.py; this checks what that run cannot:
the jobs' wiring through the key, and that the snapshot never leaves the Actions cache.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

RECIPE = Path(__file__).resolve().parents[2] / "examples" / "ci" / "github-actions-shards.yml"
NEEDS_ROOT = re.compile(r"bin/pytest-criu|bin/pytest\b|tests\.tooling\.images")
CACHE_KEY = "pytest-criu-${{ steps.key.outputs.key }}"


@pytest.fixture(scope="module")
def recipe() -> dict[Any, Any]:
    data = yaml.safe_load(RECIPE.read_text())
    assert isinstance(data, dict)
    return data


def _commands(job: dict[str, Any]) -> list[str]:
    runs = [str(step["run"]) for step in job["steps"] if "run" in step]
    return [line.strip() for run in runs for line in run.splitlines() if line.strip()]


def _step(job: dict[str, Any], name: str) -> dict[str, Any]:
    (step,) = [s for s in job["steps"] if str(s.get("name", "")).startswith(name)]
    return dict(step)


def test_the_jobs_and_their_order(recipe: dict[Any, Any]) -> None:
    assert set(recipe["jobs"]) == {"prepare", "shards"}
    assert recipe["jobs"]["shards"]["needs"] == "prepare"
    assert recipe["jobs"]["prepare"]["outputs"]["key"] == "${{ steps.key.outputs.key }}"
    matrix = recipe["jobs"]["shards"]["strategy"]["matrix"]["include"]
    assert len(matrix) >= 2
    for entry in matrix:
        for path in entry["tests"].split():
            assert (RECIPE.parents[2] / path).is_dir(), f"the matrix names {path}, which is gone"


def test_prepare_happens_only_on_a_cache_miss_and_saves_under_the_key(
    recipe: dict[Any, Any],
) -> None:
    job = recipe["jobs"]["prepare"]
    lookup = _step(job, "Look for")
    assert lookup["uses"].startswith("actions/cache/restore@")
    assert lookup["with"] == {"path": "${{ env.SNAPSHOT }}", "key": CACHE_KEY, "lookup-only": True}
    miss = "steps.cached.outputs.cache-hit != 'true'"
    for name in ("Prepare and", "Export", "Save"):
        assert _step(job, name)["if"] == miss
    assert "--setup-only" in _step(job, "Prepare and")["run"]
    save = _step(job, "Save")
    assert save["uses"].startswith("actions/cache/save@")
    assert save["with"] == {"path": "${{ env.SNAPSHOT }}", "key": CACHE_KEY}


def test_shards_import_before_running_and_never_prepare_silently(recipe: dict[Any, Any]) -> None:
    job = recipe["jobs"]["shards"]
    restore = _step(job, "Restore")
    assert restore["with"]["key"] == "pytest-criu-${{ needs.prepare.outputs.key }}"
    assert restore["with"]["fail-on-cache-miss"] is True
    names = [str(step.get("name", "")) for step in job["steps"]]
    assert names.index(restore["name"]) < names.index(_step(job, "Import")["name"])
    assert names.index(_step(job, "Import")["name"]) < names.index(_step(job, "Run this")["name"])
    run = _step(job, "Run this")["run"]
    assert '--criu-cache --criu-cache-dir="$CRIU_CACHE"' in run
    assert "${{ matrix.tests }}" in run


def test_the_snapshot_stays_in_the_repository_cache(recipe: dict[Any, Any]) -> None:
    for job in recipe["jobs"].values():
        for step in job["steps"]:
            if str(step.get("uses", "")).startswith("actions/upload-artifact"):
                assert "SNAPSHOT" not in str(step["with"]["path"]), "a snapshot holds memory"
    text = RECIPE.read_text()
    assert "never upload it as an artifact" in text


def test_commands_need_root_where_they_touch_the_engine_and_are_valid_shell(
    recipe: dict[Any, Any],
) -> None:
    bash = shutil.which("bash")
    for name, job in recipe["jobs"].items():
        commands = _commands(job)
        for line in commands:
            if NEEDS_ROOT.search(line):
                assert "sudo " in line, f"{name}: {line!r} needs root; run it with sudo"
        if bash is not None:
            done = subprocess.run(
                [bash, "-n"], input="\n".join(commands), text=True, capture_output=True, check=False
            )
            assert done.returncode == 0, f"{name}: not valid shell: {done.stderr}"


def test_every_job_removes_its_snapshots_and_their_images(recipe: dict[Any, Any]) -> None:
    for name, job in recipe["jobs"].items():
        step = _step(job, "Remove this runner")
        assert step["if"] == "always()", name
        assert "--criu-cache-clear" in step["run"], "clearing removes the committed images too"
        names = [str(s.get("name", "")) for s in job["steps"]]
        assert names.index(step["name"]) < names.index(
            "Hand the checkout back to the runner's user"
        )
