"""Calibration kept: the floor of benchmarks/CALIBRATION.md on fewer, seeded runs.

The setting is the bundled example's own grid, coverage and source volumes
(``benchmarks/calibration.py``): null runs respect coverage and overdispersion.
"""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks import calibration as cal


@pytest.fixture(scope="module")
def setting(example_result):
    return cal.setting_from_result(example_result)


def test_null_runs_show_an_fdr_significant_cell_in_at_most_5_percent(setting):
    # 19,999 draws as the benchmark (the pipeline uses 99,999): with 4,999 the tail extrapolation
    # past the draws is rougher (3 of 40 null runs at 4,999).
    out = cal.null_runs(setting, runs=40, combine="sources", draws=19_999, seed=11)
    assert out["fpr"] <= 0.05, out


def test_the_pooled_rule_is_not_calibrated_where_coverage_differs(setting):
    # Why combine = "sources" is the default: pooled counts make coverage edges into hot and cold spots.
    out = cal.null_runs(setting, runs=5, combine="pooled", draws=2_999, seed=11)
    assert out["fpr"] == 1.0 and out["cold_per_run"] > 20


def test_a_100_incident_partner_cluster_is_found_where_pooled_counts_miss_it(setting):
    table = cal.power(setting, sizes=(100,), runs=6, draws=19_999, combines=("sources", "pooled"))
    outside = table[table["place"] == "outside police coverage"]
    assert len(outside) == 1 and outside["found_sources"].iloc[0] >= 4 / 6
    assert outside["found_pooled"].iloc[0] <= 1 / 6
