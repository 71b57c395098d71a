"""Warnings pytest-criu issues, so ``-W error::pytest_criu.PytestCriuWarning`` can act on them."""

from __future__ import annotations

import pytest

__all__ = ["NotResetWarning", "PytestCriuWarning"]


class PytestCriuWarning(pytest.PytestWarning):
    """Base class of pytest-criu's warnings."""

    __module__ = "pytest_criu"


class NotResetWarning(PytestCriuWarning):
    """A warm container has state that restores do not reset (a bind mount)."""

    __module__ = "pytest_criu"
