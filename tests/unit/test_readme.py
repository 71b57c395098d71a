"""The README's quick start: commands that paste, code that names what it needs."""

from __future__ import annotations

import ast

from tests.readme_snippets import quick_start_commands, quick_start_files, section


def test_the_quick_start_installs_from_the_index_with_its_client() -> None:
    commands = quick_start_commands()
    assert ".venv/bin/pip install pytest-criu redis" in commands
    assert not [line for line in commands if " -e " in line or "/path/" in line], commands


def test_commands_needing_root_say_sudo() -> None:
    for line in quick_start_commands():
        if "bin/pytest" in line:
            assert line.startswith("sudo "), f"{line!r} needs root; run it with sudo"


def test_the_quick_start_uses_an_official_image_and_declared_clients() -> None:
    files = quick_start_files()
    assert set(files) == {"conftest.py", "test_shop.py"}
    assert files["conftest.py"].count('"redis:7"') == 1
    for name, source in files.items():
        tree = ast.parse(source, name)
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
        }
        # what `pip install pytest-criu redis` brings (pytest comes with the plugin)
        assert imported <= {"pytest", "pytest_criu", "redis"}, (name, imported)


def test_the_quick_start_shows_the_timeline() -> None:
    assert "](docs/timeline.svg)" in section("Quick start")
