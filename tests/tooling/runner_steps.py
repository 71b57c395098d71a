"""One GitHub Actions job of a workflow file, as the steps ``tests.tooling.runner`` runs.

``uses:`` steps become what they do on a hosted runner: ``actions/checkout`` a fresh clone of
the repository at HEAD, ``actions/setup-python`` a ``python`` on PATH, ``actions/upload-artifact``
nothing (there is nowhere to upload to). Anything this reading cannot reproduce faithfully
(expressions, other actions, other shells, conditions other than ``always()``) is refused
with the step named, rather than run differently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

StepKind = Literal["run", "checkout", "setup-python", "skip"]
#: What ``runs-on`` may say: the runner this tool reproduces.
HOSTED_LABELS = ("ubuntu-latest", "ubuntu-24.04")
STEP_KEYS = {"name", "id", "uses", "with", "run", "env", "if", "timeout-minutes", "shell"}
#: ``with:`` inputs each replaced action may carry (others would change what it does).
ACTIONS: dict[str, tuple[StepKind, frozenset[str]]] = {
    "actions/checkout": ("checkout", frozenset()),
    "actions/setup-python": ("setup-python", frozenset({"python-version"})),
    "actions/upload-artifact": ("skip", frozenset({"name", "path", "if-no-files-found"})),
}
#: How GitHub runs a ``run:`` step whose shell is bash (the default on Linux runners).
BASH = ("bash", "--noprofile", "--norc", "-eo", "pipefail")


class RecipeError(Exception):
    """The workflow asks for something the reproduction cannot do as GitHub would."""


@dataclass(frozen=True)
class Step:
    number: int
    name: str
    kind: StepKind
    script: str = ""
    env: dict[str, str] = field(default_factory=dict)
    always: bool = False
    """Runs after an earlier step failed (``if: always()``)."""
    timeout_minutes: float | None = None
    note: str = ""
    """For a ``uses:`` step: what it stands for here."""


@dataclass(frozen=True)
class Job:
    name: str
    runs_on: str
    env: dict[str, str]
    timeout_minutes: float
    steps: list[Step]


def _strings(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RecipeError(f"{where}: env must be a mapping, not {value!r}")
    out = {}
    for key, item in value.items():
        text = str(item).lower() if isinstance(item, bool) else str(item)
        if "${{" in text:
            raise RecipeError(
                f"{where}: env {key} holds an expression ({text}); not evaluated here"
            )
        out[str(key)] = text
    return out


def load_job(text: str, job_name: str) -> Job:
    """Job ``job_name`` of the workflow ``text``; :class:`RecipeError` for what cannot run here."""
    workflow = yaml.safe_load(text)
    jobs = workflow.get("jobs") if isinstance(workflow, dict) else None
    if not isinstance(jobs, dict) or job_name not in jobs:
        names = ", ".join(sorted(jobs)) if isinstance(jobs, dict) else "none"
        raise RecipeError(f"no job {job_name!r} in the workflow (jobs: {names})")
    job = jobs[job_name]
    runs_on = job.get("runs-on")
    if runs_on not in HOSTED_LABELS:
        raise RecipeError(
            f"job {job_name!r} runs on {runs_on!r}; this tool reproduces GitHub's hosted "
            f"{' / '.join(HOSTED_LABELS)} runner only"
        )
    env = {**_strings(workflow.get("env"), "workflow"), **_strings(job.get("env"), job_name)}
    steps = [_step(i, raw, job_name) for i, raw in enumerate(job.get("steps") or [], 1)]
    if not steps:
        raise RecipeError(f"job {job_name!r} has no steps")
    return Job(job_name, str(runs_on), env, float(job.get("timeout-minutes", 360)), steps)


def _step(number: int, raw: Any, job: str) -> Step:
    where = f"{job} step {number}"
    if not isinstance(raw, dict):
        raise RecipeError(f"{where}: not a mapping: {raw!r}")
    unknown = sorted(set(raw) - STEP_KEYS)
    if unknown:
        raise RecipeError(f"{where}: {', '.join(unknown)} not supported here")
    condition = str(raw.get("if", "")).strip()
    if condition.startswith("${{") and condition.endswith("}}"):
        condition = condition[3:-2].strip()
    if condition not in ("", "always()"):
        raise RecipeError(f"{where}: condition {condition!r} not supported (only always())")
    timeout = raw.get("timeout-minutes")
    common: dict[str, Any] = {
        "always": condition == "always()",
        "timeout_minutes": float(timeout) if timeout is not None else None,
        "env": _strings(raw.get("env"), where),
    }
    if "uses" in raw:
        action, _, _version = str(raw["uses"]).partition("@")
        if action not in ACTIONS:
            raise RecipeError(f"{where}: action {raw['uses']} has no replacement here")
        kind, inputs = ACTIONS[action]
        given = raw.get("with") or {}
        extra = sorted(set(given) - inputs)
        if extra:
            raise RecipeError(f"{where}: {action} with {', '.join(extra)} is not reproduced")
        name = str(raw.get("name") or f"Run {raw['uses']}")
        return Step(number, name, kind, note=_note(kind, given), **common)
    if "run" not in raw:
        raise RecipeError(f"{where}: neither run nor uses")
    if raw.get("shell", "bash") != "bash":
        raise RecipeError(f"{where}: shell {raw['shell']!r} not supported (bash only)")
    script = str(raw["run"])
    if "${{" in script:
        raise RecipeError(f"{where}: the script holds an expression; not evaluated here")
    name = str(raw.get("name") or script.strip().splitlines()[0])
    return Step(number, name, "run", script=script, **common)


def _note(kind: StepKind, given: Mapping[str, Any]) -> str:
    if kind == "checkout":
        return "a fresh clone of the repository at HEAD, owned by the runner user"
    if kind == "setup-python":
        wanted = given.get("python-version", "any")
        return f"python and python3 on PATH: this machine's python3 (the job asks for {wanted})"
    return f"not reproduced: uploads {given.get('path', '?')} to GitHub"


def should_run(step: Step, failed: bool) -> bool:
    """GitHub's default ``success()``: after a failure only ``always()`` steps run."""
    return step.always or not failed


def step_environment(base: Mapping[str, str], job: Job, step: Step) -> dict[str, str]:
    """The environment of a step: the runner's, then the job's ``env``, then the step's."""
    return {**base, **job.env, **step.env}


def shell_command(script_path: str) -> list[str]:
    return [*BASH, script_path]


def timeout_seconds(job: Job, step: Step, job_left: float) -> float:
    """The step's own limit, never beyond what is left of the job's."""
    own = step.timeout_minutes * 60 if step.timeout_minutes is not None else job_left
    return max(0.0, min(own, job_left))
