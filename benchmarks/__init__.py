"""pytest-criu's benchmark harness: ``python -m benchmarks --quick`` (see benchmarks/README.md)."""
