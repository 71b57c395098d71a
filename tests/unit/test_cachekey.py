"""Cache keys follow the source of prepare and of what it calls in the test tree."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from pytest_criu.engine.cachekey import cache_key, inputs_digest, source_digest


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def digest_of(tmp_path: Path, conftest: str, helpers: str, tag: str) -> str:
    root = tmp_path / tag
    root.mkdir()
    (root / "helpers.py").write_text(helpers)
    (root / "conftest.py").write_text(conftest)
    sys.path.insert(0, str(root))
    sys.modules.pop("helpers", None)
    try:
        module = load(root / "conftest.py", f"conftest_{tag}")
    finally:
        sys.path.remove(str(root))
        sys.modules.pop("helpers", None)
    return source_digest(module.seed, root)


CONFTEST = """
import helpers

def migrate(handle):
    helpers.run(handle, "CREATE TABLE t (id INT)")

def seed(handle):
    migrate(handle)
"""

HELPERS = "def run(handle, sql):\n    return sql\n"


def test_digest_follows_called_functions_and_modules(tmp_path: Path) -> None:
    base = digest_of(tmp_path, CONFTEST, HELPERS, "a")
    assert base == digest_of(tmp_path, CONFTEST, HELPERS, "b"), "same code, same digest"
    changed_callee = CONFTEST.replace("CREATE TABLE t", "CREATE TABLE u")
    assert digest_of(tmp_path, changed_callee, HELPERS, "c") != base
    changed_module = HELPERS.replace("return sql", "return sql.upper()")
    assert digest_of(tmp_path, CONFTEST, changed_module, "d") != base


def test_code_outside_the_root_is_not_hashed(tmp_path: Path) -> None:
    def seed(handle: object) -> None:
        Path("x").exists()

    # Path lives in the standard library, not under tmp_path: the digest is stable
    assert source_digest(seed, tmp_path) == source_digest(seed, tmp_path)
    assert source_digest(None, tmp_path) != source_digest(seed, tmp_path)


def test_inputs_digest_sees_content_changes(tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001.sql").write_text("CREATE TABLE a (id INT);")
    before = inputs_digest([migrations])
    (migrations / "0002.sql").write_text("ALTER TABLE a ADD b INT;")
    after = inputs_digest([migrations])
    assert before != after
    assert inputs_digest([tmp_path / "missing"]) != inputs_digest([migrations])


def test_cache_key_is_short_and_order_independent() -> None:
    key = cache_key({"a": 1, "b": [1, 2]})
    assert key == cache_key({"b": [1, 2], "a": 1})
    assert len(key) == 32
    assert key.isalnum()
    assert key != cache_key({"a": 2, "b": [1, 2]})


def test_module_constants_prepare_reads_are_covered(tmp_path: Path) -> None:
    conftest = "KEYS = 10\n\ndef seed(handle):\n    return KEYS\n"
    ten = digest_of(tmp_path, conftest, HELPERS, "ten")
    assert digest_of(tmp_path, conftest.replace("10", "20"), HELPERS, "twenty") != ten
