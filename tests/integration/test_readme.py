"""The README's quick start runs as printed, with the local image in place of ``redis:7``."""

from __future__ import annotations

import pytest

from tests.helpers import SERVICES_IMAGE
from tests.readme_snippets import quick_start_files

pytestmark = pytest.mark.usefixtures("engine")


def test_quick_start_runs_as_printed(pytester: pytest.Pytester, no_leaks: None) -> None:
    files = quick_start_files()
    for name, source in files.items():
        # The official image is not reachable here; the services image has redis-server too.
        (pytester.path / name).write_text(source.replace('"redis:7"', repr(SERVICES_IMAGE)))
    tests = files["test_shop.py"].count("\ndef test_")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=300)
    result.assert_outcomes(passed=tests)
    result.stdout.fnmatch_lines(
        [
            "*- pytest-criu -*",
            f"shop: snapshot/fresh; prepared in *s + checkpoint *s; {tests} restores*",
        ]
    )
