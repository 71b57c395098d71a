"""A third-party suite as a workload: pg8000's own tests, shared server vs pristine per test.

``python -m benchmarks.third_party [--engine podman] [--keep-going]`` downloads pg8000's sdist
(its tests are in it) into a temporary directory and runs the suite, unchanged, twice:
(a) against one server container started with the engine's CLI, (b) with pytest-criu
restoring a pristine server before every test. It compares every test's outcome, prints a
table and writes ``result.json``; non-zero exit when outcomes differ or a run breaks.

- ``server.py``: the server's settings, the same for both runs;
- ``plugin.py``: ``-p`` plugin of both runs: the connection settings, every test's outcome;
- ``pristine.py``: ``-p`` plugin of run (b): the warm container, every test marked;
- ``outcomes.py``: folding, comparing and tabulating outcomes (pure);
- ``run.py``: the command.
"""
