"""The "Where to act" panel's key-building entries say how sure the tool is, not only the relative risk."""
from __future__ import annotations

from types import SimpleNamespace

import pandas as pd

from hotspots.publish.where import where_to_act


def _building(name: str, rank: int, rr: float, low: float, q: float) -> dict:
    return {"building_id": name, "name": name, "type": "school", "x": 533000.0, "y": 181500.0, "rank": rank,
            "rank_radius_m": 250.0, "n_250": 161, "weighted_250": 502.8, "expected_250": 70.5, "rr_250": rr,
            "rr_low_250": low, "rr_high_250": rr * 1.2, "q_250": q, "region_id": ""}


def test_building_entries_say_whether_the_relative_risk_is_significant():
    # Winton Primary School in the demo: relative risk 7.13 (interval 6.07-8.32) ranked first, q 0.761 against
    # comparable places; the panel said only "relative risk 7.13", which a meeting read as a finding.
    table = pd.DataFrame([_building("Winton Primary School", 1, 7.129, 6.07, 0.7606),
                          _building("Sure School", 2, 3.0, 2.1, 0.0004)])
    result = SimpleNamespace(regions=None, buildings=table)
    entries = where_to_act(result, public=False)
    assert [e["title"] for e in entries] == ["1. Winton Primary School", "2. Sure School"]
    assert entries[0]["detail"].endswith(
        "against 70.5 expected (relative risk 7.13, q 0.761: not significant against comparable places)")
    assert entries[1]["detail"].endswith("(relative risk 3.00, q <0.001: significant against comparable places)")
