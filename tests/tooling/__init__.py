"""Tools the test suite and CI run on the host (standard library only)."""
