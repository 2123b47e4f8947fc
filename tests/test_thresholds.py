"""Each partner's "high risk", side by side: thresholds.csv, the high_risk_only scenario and layer,
the table in the partner map and briefing (never the public ones)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from openpyxl import load_workbook

from hotspots import thresholds
from hotspots.thresholds import NO_MEANING, NOT_MAPPED, NOT_STATED


def _fake(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame({"source_id": [r[0] for r in rows], "source_severity": [r[1] for r in rows],
                         "occurred_from": pd.to_datetime([r[2] for r in rows])})


RECORDS = [("yos_referrals", "Red", "2018-01-03"), ("yos_referrals", " red ", "2018-01-09"),
           ("yos_referrals", "RED", "2018-02-01"), ("yos_referrals", "Red", "2018-01-20"),
           ("yos_referrals", "Amber", "2018-03-01"), ("yos_referrals", "Amber", "2018-03-02"),
           ("yos_referrals", "Purple", "2018-03-02"), ("yos_referrals", None, "2018-04-02"),
           ("missing_episodes", "High", "2018-01-01"), ("city_police", "", "2018-01-01")]


def test_levels_counts_shares_and_flags(example_config):
    t = thresholds.threshold_table(example_config, _fake(RECORDS))
    assert set(t["source_id"]) == {"yos_referrals", "missing_episodes"}   # police.uk has no grading of its own
    yos = t[t["source_id"] == "yos_referrals"].set_index("level")
    assert yos.index.tolist() == ["Red", "Amber", "Green", "(blank)", "Purple"]
    assert yos["records"].tolist() == [4, 2, 0, 1, 1]
    assert yos["common_severity"].tolist()[:3] == [4, 3, 2] and yos["common_severity"].iloc[3:].isna().all()
    assert yos["high_risk"].tolist() == [True, False, False, False, False]
    assert yos["months"].eq(24).all() and yos.loc["Red", "per_month"] == round(4 / 24, 2)
    assert yos.loc["Red", "busiest_month"] == 3                       # three in January 2018
    assert yos["source_high_risk_share"].eq(0.5).all()                # 4 of 8
    assert yos.loc["Red", "flag"] == "" and yos.loc["Green", "flag"] == ""
    assert yos.loc["Purple", "flag"] == f"{NOT_MAPPED}; {NO_MEANING}"
    assert yos.loc["Red", "meaning"].startswith("high risk")
    miss = t[t["source_id"] == "missing_episodes"].set_index("level")
    assert miss.loc["No Apparent Risk", "flag"] == NO_MEANING and miss.loc["No Apparent Risk", "records"] == 0
    assert miss.loc["High", "records"] == 1 and miss.loc["High", "source_high_risk_share"] == 1.0
    assert miss.loc["High", "months"] == 24


def test_without_a_stated_high_risk_the_top_of_the_scale_is_taken_and_said(example_config):
    sources = [dataclasses.replace(s, options={k: v for k, v in s.options.items() if k != "high_risk"})
               if s.id == "yos_referrals" else s for s in example_config.sources]
    cfg = dataclasses.replace(example_config, sources=sources)
    t = thresholds.threshold_table(cfg, _fake(RECORDS)).set_index(["source_id", "level"])
    assert t.loc[("yos_referrals", "Red"), "high_risk"] and t.loc[("yos_referrals", "Red"), "flag"] == NOT_STATED
    said = [dataclasses.replace(s, options={**s.options, "high_risk": ["Amber", "Red"]})
            if s.id == "yos_referrals" else s for s in example_config.sources]
    mask = thresholds.high_risk_mask(dataclasses.replace(example_config, sources=said), _fake(RECORDS))
    assert mask.tolist() == [True] * 6 + [False, False, True, False]


def test_example_thresholds_match_the_partners_files(example_result):
    t = example_result.thresholds.set_index(["source_id", "level"])
    # The referral log's ratings, counted from the spreadsheet for the rows the pipeline kept.
    ws = load_workbook(example_result.cfg.resolve("data/partners/yos_referrals.xlsx"), read_only=True)["Referrals"]
    rows = list(ws.iter_rows(values_only=True))
    rating = rows[3].index("Risk Rating")
    rej = example_result.ledger.rejects
    gone = set(rej.loc[rej["source_id"] == "yos_referrals", "row"].astype(int))
    assert len(gone) == 40
    raw = [str(r[rating] or "").strip().lower() for k, r in enumerate(rows[4:], start=1) if k not in gone]
    assert t.loc[("yos_referrals", "Red"), "records"] == raw.count("red") == 83
    assert t.loc[("yos_referrals", "Amber"), "records"] == raw.count("amber")
    assert t.loc[("yos_referrals", "(blank)"), "records"] == raw.count("")
    assert t.loc[("missing_episodes", "Med"), "flag"] == f"{NOT_MAPPED}; {NO_MEANING}"
    assert t.loc[("missing_episodes", "High"), "records"] == 40
    assert t.loc[("missing_episodes", "High"), "source_high_risk_share"] == round(40 / 205, 3)
    mask = thresholds.high_risk_mask(example_result.cfg, example_result.incidents)
    assert mask.sum() == 83 + 40


def test_high_risk_scenario_and_layer(example_result):
    sens = example_result.sensitivity.set_index("scenario")
    cls = example_result.cells["gi_class_high_risk"].to_numpy()
    assert sens.loc["high_risk_only", "hot_cells"] == int((cls >= 2).sum()) > 0
    assert sens.loc["high_risk_only", "anecdotal_weight"] == sens.loc["as_agreed", "anecdotal_weight"]
    # Each anecdotal class's weight against recorded crime's, in its own column (a statistics audit: one
    # column printed community reports' 0.3 as "the anecdotal weight" where intelligence weighed 0.5).
    ev = example_result.weights["evidence"]
    crime = ev["recorded_crime"]
    for scenario in ("as_agreed", "pooled", "high_risk_only"):
        assert sens.loc[scenario, "anecdotal_weight"] == round(ev["community_report"] / crime, 3)
        assert sens.loc[scenario, "intelligence_weight"] == round(ev["intelligence"] / crime, 3)
    assert ev["intelligence"] != ev["community_report"]
    assert sens.loc["factual_only", ["anecdotal_weight", "intelligence_weight"]].tolist() == [0.0, 0.0]
    assert sens.loc["anecdotal_equal", ["anecdotal_weight", "intelligence_weight"]].tolist() == [1.0, 1.0]
    # Hot where the partners' own high-risk records gather: the planted children's home's cell among them.
    g = example_result.grid
    cell = g.assign(np.array([531277.0]), np.array([183304.0]))[0]
    assert cls[cell] >= 2
    # Tested source by source within coverage (combine = "sources"), the agreed weights find it
    # too, on the youth offending service's and missing-episode records' own evidence (pooled
    # counts, where the police volume set the variance, did not).
    agreed = example_result.cells.iloc[cell]
    assert agreed["gi_class"] >= 2 and {"yos_referrals", "missing_episodes"} & set(agreed["support"].split(";"))


def test_thresholds_in_partner_outputs_only(demo_out):
    _, _, out = demo_out
    t = pd.read_csv(out / "thresholds.csv")
    assert list(t.columns) == thresholds.COLUMNS and len(t) == 10
    import json
    tiers = {o["path"]: o["tier"] for o in json.loads((out / "manifest.json").read_text())["outputs"]}
    assert tiers["thresholds.csv"] == "partner"
    for name in ("map.html", "briefing.html"):
        text = (out / name).read_text(encoding="utf-8")
        assert "hs-thresholds" in text and "No Apparent Risk" in text and NO_MEANING in text
    assert "high risk as each partner defines it" in (out / "map.html").read_text(encoding="utf-8")
    for name in ("map-public.html", "briefing-public.html"):
        text = (out / name).read_text(encoding="utf-8")
        assert "hs-thresholds" not in text and "No Apparent Risk" not in text
        assert "high risk as each partner defines it" not in text
