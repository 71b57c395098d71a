"""The compatibility table tool's pure parts: row labels and the median it reports."""

from __future__ import annotations

import pytest

from tests.tooling.compat_table import Row, median_reset


def test_row_labels_name_the_network_and_a_non_default_holder_setting() -> None:
    assert Row("bridge").label == "bridge, published port"
    assert Row("bridge", "stable").label == "bridge, published port, `--criu-network-holder=stable`"
    assert Row("none").label == "`none`"


def test_the_median_leaves_out_the_first_restore_made_at_set_up() -> None:
    report = {"containers": [{"reset_seconds": [0.0, 0.3, 0.5, 0.4]}]}
    assert median_reset(report) == pytest.approx(0.4)
    assert median_reset({"containers": [{"reset_seconds": [0.0]}]}) is None


def test_a_report_without_exactly_one_container_is_refused() -> None:
    with pytest.raises(ValueError, match="expected one warm container"):
        median_reset({"containers": []})
