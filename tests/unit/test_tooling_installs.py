"""The engines' prefix: engine.env, the unavailable notes, the installers' command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tooling import installs


@pytest.fixture
def prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(installs, "PREFIX", tmp_path)
    return tmp_path


def test_engine_env_is_read_without_comments(prefix: Path) -> None:
    (prefix / "docker-28").mkdir()
    (prefix / "docker-28/engine.env").write_text(
        "# written by pytest-criu's tests/tooling/engines.py\nENGINE=docker-28\n"
        "DOCKER_VERSION = 28.5.2\nnot a pair\nRUNC_VERSION=1.3.6+ds1\n"
    )
    facts, why = installs.installed_facts("docker-28", "run: X")
    assert (facts, why) == (
        {"ENGINE": "docker-28", "DOCKER_VERSION": "28.5.2", "RUNC_VERSION": "1.3.6+ds1"},
        "",
    )


def test_a_missing_engine_says_how_to_install_it(prefix: Path) -> None:
    facts, why = installs.installed_facts("podman-5.8", "run: sudo X")
    assert facts is None
    assert why == (
        f"engine podman-5.8 is not installed ({prefix}/podman-5.8/engine.env does not exist); "
        "run: sudo X podman-5.8"
    )


def test_a_missing_engine_quotes_its_installers_note(prefix: Path) -> None:
    installs.unavailable_note("podman-5.4").write_text("Debian trixie now has podman 5.6.1\n")
    _, why = installs.installed_facts("podman-5.4", "run: X")
    assert why.startswith("engine podman-5.4 is not installed (Debian trixie now has podman 5.6.1)")


def test_install_main_installs_the_named_engines_or_all(
    prefix: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)
    done: list[str] = []
    installers = {
        "a-1": lambda refresh: done.append(f"a-1 {refresh}"),
        "b-2": lambda refresh: done.append(f"b-2 {refresh}"),
    }
    for argv in (["--refresh", "b-2"], []):
        code = installs.install_main(
            argv, prog="python -m x", description=None, installers=installers, log=print
        )
        assert code == 0
    assert done == ["b-2 True", "a-1 False", "b-2 False"]


def test_install_main_refuses_unknown_engines(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        installs.install_main(
            ["c-3"], prog="python -m x", description=None, installers={"a-1": print}, log=print
        )
    assert exited.value.code == 2
    assert "unknown engine(s) c-3; known: a-1" in capsys.readouterr().err


def test_install_main_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    said: list[str] = []
    code = installs.install_main(
        [], prog="python -m x", description=None, installers={"a-1": print}, log=said.append
    )
    assert (code, said) == (1, ["must run as root: sudo .venv/bin/python -m x"])
