"""Where a checkpoint's bytes are: process memory from /proc, files by kind."""

from __future__ import annotations

import os
import subprocess
import sys

from pytest_criu.engine.footprint import FileKinds, describe, file_kinds, process_memory

MB = 1024**2


def test_file_kinds_sort_criu_images() -> None:
    files = {
        "pages-1.img": 10 * MB,
        "pages-2.img": 2 * MB,
        "tmpfs-dev-54.tar.gz.img": MB,
        "core-1.img": 4096,
        "pytest-criu-nonce": 80,
    }
    assert file_kinds(files) == FileKinds(pages=12 * MB, tmpfs=MB, other=4176)


def test_an_archive_has_no_kinds() -> None:
    assert file_kinds({"checkpoint.tar": 5 * MB}) is None


def test_describe_names_the_biggest_processes_first() -> None:
    memory = {"redis-server (pid 1)": 17 * MB, "sh (pid 9)": MB // 10}
    files = {"pages-1.img": 17 * MB, "tmpfs-dev-5.tar.gz.img": MB // 2, "core-1.img": MB // 2}
    assert describe(memory, files) == (
        "checkpoint 18.0 MB: process memory redis-server (pid 1) 17.0 MB, sh (pid 9) 0.1 MB; "
        "files: pages 17.0 MB, tmpfs 0.5 MB, other 0.5 MB"
    )


def test_describe_folds_the_small_ones() -> None:
    memory = {f"worker (pid {n})": (10 - n) * MB for n in range(1, 6)}
    line = describe(memory, {"checkpoint.tar": 40 * MB})
    assert line == (
        "checkpoint 40.0 MB: process memory worker (pid 1) 9.0 MB, worker (pid 2) 8.0 MB, "
        "worker (pid 3) 7.0 MB, 2 more 11.0 MB"
    )


def test_describe_without_anything_known() -> None:
    assert describe({}, {}) is None


def test_process_memory_covers_the_descendants() -> None:
    script = "import subprocess, sys; subprocess.run(['sleep', '30']); "
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        for _ in range(200):
            memory = process_memory(parent.pid)
            if any(label.startswith("sleep ") for label in memory):
                break
            os.sched_yield()
            subprocess.run(["sleep", "0.01"], check=True)
        labels = list(memory)
        assert any(label.endswith(f"(pid {parent.pid})") for label in labels)
        assert any(label.startswith("sleep (pid ") for label in labels)
        sizes = list(memory.values())
        assert sizes == sorted(sizes, reverse=True)
        assert sizes[0] > 0
    finally:
        subprocess.run(["pkill", "-P", str(parent.pid)], check=False)
        parent.kill()
        parent.wait()


def test_process_memory_of_no_process() -> None:
    assert process_memory(0) == {}
    assert process_memory(2**22 + 7) == {}
