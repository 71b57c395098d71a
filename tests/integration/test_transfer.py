"""A prepared snapshot travels: the shards recipe's steps, run here, and what an import refuses.

Two machines are stood in for by two daemons: the prepare job runs on the main Docker 20.10,
the shards on a Docker 28 daemon with its own data root and containerd (``tests/engines.py``),
each shard importing into a cache of its own as a fresh runner would. The steps are those of
``examples/ci/github-actions-shards.yml``, read from it and run through bash (``sudo`` left
out: this process is root already and sudo would drop the environment that points the shard
steps at the second daemon). The host set-up and image build steps are left out: this host is
set up, and the second daemon gets the tiny image from the main one.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.engines import find_engine, running_daemon
from tests.helpers import BOX_CONFTEST, box_tests, prepares

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "examples" / "ci" / "github-actions-shards.yml"
VENV = ROOT / ".venv" / "bin"
SHARDS = {1: "test_one.py", 2: "test_two.py"}


# -- the recipe -----------------------------------------------------------------------------


def _step(job: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        step for step in job["steps"] if step.get("name", "").startswith(name)
    ]
    assert len(found) == 1, f"the recipe has no single step named {name!r}"
    return found[0]


def _run_step(
    job: dict[str, Any], name: str, cwd: Path, env: dict[str, str], matrix: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    script = str(_step(job, name)["run"])
    for field, value in matrix.items():
        script = script.replace(f"${{{{ matrix.{field} }}}}", value)
    assert "${{" not in script, f"unexpanded expression in {script!r}"
    script = re.sub(r"\bsudo (--preserve-env=\S+ )?", "", script)
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _ok(done: subprocess.CompletedProcess[str], what: str) -> str:
    assert done.returncode == 0, f"{what}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture
def suite(pytester: pytest.Pytester, prepare_log: Path) -> Path:
    pytester.makeconftest(BOX_CONFTEST)
    for file in SHARDS.values():
        pytester.makepyfile(**{file.removesuffix(".py"): box_tests(2)})
    (pytester.path / ".venv").symlink_to(ROOT / ".venv")
    return pytester.path


@pytest.fixture
def second_docker() -> Iterator[str]:
    install, why = find_engine("docker-28")
    if install is None:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    criu = shutil.which("criu")
    assert criu is not None, "no criu on PATH; run: sudo .venv/bin/pytest-criu setup"
    with running_daemon(install, criu_dir=os.path.dirname(criu)) as daemon:
        yield daemon.url


def _clear(cache: Path, cwd: Path) -> None:
    subprocess.run(
        [
            VENV / "pytest",
            "-p",
            "no:cacheprovider",
            "--co",
            "-q",
            "--criu-cache-clear",
            f"--criu-cache-dir={cache}",
        ],
        cwd=cwd,
        capture_output=True,
        timeout=300,
        check=False,
    )


def test_the_shards_recipe_runs_here_end_to_end(
    suite: Path, prepare_log: Path, second_docker: str, no_leaks: None
) -> None:
    recipe = yaml.safe_load(RECIPE.read_text())
    prepare, shards = recipe["jobs"]["prepare"], recipe["jobs"]["shards"]
    matrix = {entry["shard"]: entry for entry in shards["strategy"]["matrix"]["include"]}
    assert sorted(matrix) == sorted(SHARDS)
    output = suite / "github-output"
    env = {"SUITE": ".", "SNAPSHOT": "snapshot.tar", "GITHUB_OUTPUT": str(output)}
    main_cache = suite / "runner-main" / "cache"
    try:
        # The prepare job, on the main daemon.
        here = {**env, "CRIU_CACHE": str(main_cache)}
        _ok(_run_step(prepare, "Key of", suite, here, {}), "key")
        key = output.read_text().strip().removeprefix("key=")
        assert re.fullmatch(r"[0-9a-f]{32}", key), output.read_text()
        prepared = _ok(_run_step(prepare, "Prepare and", suite, here, {}), "prepare")
        assert re.search(
            r"box: snapshot/fresh; prepared in \S+ \+ checkpoint \S+; 1 restore\n", prepared
        )
        assert len(prepares(prepare_log)) == 1
        exported = _ok(_run_step(prepare, "Export", suite, here, {}), "export")
        _ok(_run_step(prepare, "Remove this runner", suite, here, {}), "clean-up")
        assert not main_cache.exists()
        assert re.search(
            r"exported [0-9a-f]{32}: [\d.]+ MB, \d+ base-image layers left out", exported
        )
        assert (suite / "snapshot.tar").stat().st_mode & 0o777 == 0o600

        # The shards, each a fresh runner: another daemon (Docker 28), an empty cache.
        for shard, tests in SHARDS.items():
            there = {
                **env,
                "DOCKER_HOST": second_docker,
                "CRIU_CACHE": str(suite / f"runner-{shard}"),
            }
            output.write_text("")
            _ok(_run_step(prepare, "Key of", suite, there, {}), "key on the shard's machine")
            assert output.read_text().strip() == f"key={key}", "the same key on either daemon"
            imported = _ok(_run_step(shards, "Import", suite, there, {}), f"import {shard}")
            assert re.fullmatch(
                r"imported [0-9a-f]{32} as [0-9a-f]{32} \(made with Docker 20\.10\.[^,]*, CRIU "
                r"[\d.]+, Linux \S+\)\n",
                imported,
            ), imported
            run = _run_step(
                shards, "Run this shard", suite, there, {"shard": str(shard), "tests": tests}
            )
            out = _ok(run, f"shard {shard}")
            assert "Docker 28." in out
            assert re.search(r"=+ 2 passed in", out), out
            assert re.search(
                r"box: snapshot/fresh; imported from Docker 20\.10\.\S+ CRIU [\d.]+, Linux \S+ "
                r"\(prepare skipped\)",
                out,
            ), out
            assert (suite / f"pytest-report-{shard}.xml").exists()
            entries = [p for p in Path(there["CRIU_CACHE"]).iterdir() if p.is_dir()]
            modes = {p.stat().st_mode & 0o777 for e in entries for p in e.rglob("*") if p.is_file()}
            assert modes == {0o600}, "cache files hold process memory"
            _ok(_run_step(shards, "Remove this runner", suite, there, {}), "shard clean-up")
            assert not Path(there["CRIU_CACHE"]).exists()
        assert len(prepares(prepare_log)) == 1, "no shard prepared"
    finally:
        _clear(main_cache, suite)


# -- refusals -------------------------------------------------------------------------------


def _xfeatures_everywhere(image: bytes) -> bytes:
    """A cpuinfo.img whose CPU has every xsave feature (field 8 of its x86 entry)."""

    def varint(data: bytes, at: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = data[at]
            at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value, at

    def encode(value: int) -> bytes:
        out = bytearray()
        while True:
            byte, value = value & 0x7F, value >> 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                return bytes(out)

    (size,) = struct.unpack("<I", image[8:12])
    entry = image[12 : 12 + size]
    assert entry[0] == 0x0A, "one x86 entry"
    length, at = varint(entry, 1)
    inner, rewritten = entry[at : at + length], bytearray()
    at = 0
    while at < len(inner):
        tag, after = varint(inner, at)
        if tag & 7 == 0:
            value, end = varint(inner, after)
            rewritten += encode(tag) + encode(value | (1 << 40) - 1 if tag >> 3 == 8 else value)
        else:
            assert tag & 7 == 2
            size, start = varint(inner, after)
            end = start + size
            rewritten += inner[at:end]
        at = end
    body = b"\x0a" + encode(len(rewritten)) + bytes(rewritten)
    return image[:8] + struct.pack("<I", len(body)) + body


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV / "pytest-criu"), *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_an_import_restores_on_each_engine_and_refuses_what_cannot_restore(
    suite: Path, prepare_log: Path, engine: str, no_leaks: None
) -> None:
    cache, elsewhere = suite / "cache", suite / "elsewhere"
    pytest_args = ["-p", "no:cacheprovider", "--criu-cache"]
    try:
        done = subprocess.run(
            [VENV / "pytest", "--setup-only", "-q", *pytest_args, f"--criu-cache-dir={cache}"],
            cwd=suite,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        _ok(done, "prepare")
        exported = suite / "exported"
        _ok(_cli("export", "--engine", engine, "--cache-dir", str(cache), str(exported)), "export")
        _ok(_cli("import", "--engine", engine, "--cache-dir", str(elsewhere), str(exported)), "")
        run = subprocess.run(
            [VENV / "pytest", *pytest_args, f"--criu-cache-dir={elsewhere}"],
            cwd=suite,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert re.search(r"box: snapshot/fresh; imported from \S+ ", _ok(run, "imported run"))
        assert len(prepares(prepare_log)) == 1, "the imported snapshot needed no prepare"
        _clear(elsewhere, suite)

        (entry,) = [p for p in exported.iterdir() if p.is_dir()]
        manifest = entry / "export.json"
        original = manifest.read_text()

        def refusal(change: dict[str, str] | None = None) -> str:
            data = json.loads(original)
            data["host"].update(change or {})
            manifest.write_text(json.dumps(data))
            shutil.rmtree(elsewhere, ignore_errors=True)
            done = _cli("import", "--engine", engine, "--cache-dir", str(elsewhere), str(exported))
            assert done.returncode == 1, done.stdout + done.stderr
            assert not [p for p in elsewhere.iterdir() if p.is_dir()], "nothing was imported"
            prefix = f"refused {entry.name} (made with "
            assert done.stdout.startswith(prefix), done.stdout
            return done.stdout.split("): ", 1)[1].strip()

        criu = json.loads(original)["host"]["criu"]
        assert refusal({"criu": "3.17.1"}) == (
            f"it was made with CRIU 3.17.1 and this host has CRIU {criu}; install CRIU 3.17.x "
            "here or prepare here (run the suite without importing)"
        )
        assert refusal({"kernel": "5.10.0-30-amd64"}) == (
            f"it was made on Linux 5.10.0-30-amd64 and this host runs Linux {platform.release()}; "
            "prepare on this kernel (run the suite without importing)"
        )
        other, this = ("Podman", "Docker") if engine == "docker" else ("Docker", "Podman")
        assert refusal({"engine": other.lower()}).startswith(
            f"it was made with {other} and this host restores with {this};"
        )

        pages = next(entry.glob("checkpoint/*")) if engine == "podman" else None
        pages = pages or entry / "checkpoint" / "pages-1.img"
        memory = pages.read_bytes()
        pages.write_bytes(memory[:-1] + bytes([memory[-1] ^ 1]))
        relative = pages.relative_to(entry).as_posix()
        assert refusal().startswith(
            f"the snapshot is damaged or was altered since its export: {relative} has SHA-256 "
        )
        pages.write_bytes(memory)

        # A CPU with features this one lacks: CRIU itself refuses (the checksum is updated).
        cpuinfo = entry / "cpuinfo.img"
        cpuinfo.write_bytes(_xfeatures_everywhere(cpuinfo.read_bytes()))
        data = json.loads(original)
        data["checksums"]["cpuinfo.img"] = hashlib.sha256(cpuinfo.read_bytes()).hexdigest()
        original = json.dumps(data)
        reason = refusal()
        assert reason.startswith(
            "this CPU lacks features of the one it was made on (criu cpuinfo check: exit 1: "
        ), reason
        assert "CPU xfeatures has unsupported bits" in reason
    finally:
        _clear(cache, suite)
        _clear(elsewhere, suite)
