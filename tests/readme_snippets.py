"""The README's code blocks, so that tests can run what the README shows."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK_RE = re.compile(r"^```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)


def section(title: str) -> str:
    """The text of the README's ``## title`` section, up to the next ``## `` heading."""
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def blocks(text: str, lang: str) -> list[str]:
    """The bodies of the fenced ``lang`` code blocks in ``text``."""
    return [match["body"] for match in _BLOCK_RE.finditer(text) if match["lang"] == lang]


def quick_start_files() -> dict[str, str]:
    """The quick start's Python files, by the name their first line gives (``# conftest.py``)."""
    files = {}
    for body in blocks(section("Quick start"), "python"):
        first, _, _ = body.partition("\n")
        if not (first.startswith("# ") and first.endswith(".py")):
            raise ValueError(f"a quick start block must start with '# NAME.py', not {first!r}")
        files[first[2:]] = body
    return files


def quick_start_commands() -> list[str]:
    """Every command line of the quick start's ``sh`` blocks, comments removed."""
    lines = []
    for body in blocks(section("Quick start"), "sh"):
        for line in body.splitlines():
            command = line.split("  #", 1)[0].strip()
            if command and not command.startswith("#"):
                lines.append(command)
    return lines
