"""Handling codes and roles on the generated partner data: records whose code forbids sharing never reach
shared outputs (3x5x2 C without conditions recorded in the config; 5x5x5 handling 4 and 5; a source's
own code limits all its records), an agency's own run still
uses them, and victims and suspects are never counted together."""
from __future__ import annotations

import pandas as pd
import pytest

from hotspots import governance
from hotspots.config import load_config
from hotspots.load import load_sources
from hotspots.load.ledger import Ledger
from tests import partners as P


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    return P.loaded_partners(str(tmp_path_factory.mktemp("governance")))


def _raw_ci():
    return pd.read_csv(P.PARTNERS / P.CI, dtype=str, keep_default_na=False)


def test_3x5x2_P_is_shared_and_C_only_with_its_conditions(loaded):
    cfg, ld = loaded
    inc = ld.incidents
    ok = governance.shareable(inc, cfg)
    ci = inc[inc["source_id"] == "intel"]
    raw = _raw_ci()
    handling = raw["Handling"].to_numpy()[ci["_row"] - 1]
    conditions = raw["Handling_Conditions"].to_numpy()[ci["_row"] - 1]
    assert ok[ci.index[handling == "P"]].all() and (handling == "P").sum() == 487
    # Conditions written on a record restrict it ("Police and YOS only"): only the config's release C (a
    # disclosure audit: the 35 records with conditions reached every partner and the public tier).
    with_cond = (handling == "C") & (conditions != "")
    without = (handling == "C") & (conditions == "")
    assert not ok[ci.index[with_cond]].any() and with_cond.sum() == 35
    assert not ok[ci.index[without]].any() and without.sum() == 27
    # the generator planted exactly these as "C without conditions"
    t = P.truth_of(P.CI)
    planted = set(t.index[P.has_dirt(t, "handling_C_without_conditions")])
    assert set(ci["_row"][without]) == planted & set(ci["_row"])
    # a graded report with no handling code at all stays with its agency too
    assert not ok[ci.index[handling == ""]].any() and (handling == "").sum() == 3
    why = governance.restriction(ci, cfg)
    assert why.value_counts().to_dict() == {"": 487, governance.REASON_C: 62, governance.REASON_NONE: 3}


def test_conditions_recorded_on_the_source_in_the_config_release_C(loaded, tmp_path):
    _, ld = loaded
    cfg = load_config(P.partner_config(tmp_path, source_extra={
        "intel": 'handling_conditions = "Shared under the CSP information sharing agreement s.4: partners only"\n'}))
    ci = ld.incidents[ld.incidents["source_id"] == "intel"]
    why = governance.restriction(ci, cfg)
    assert why.value_counts().to_dict() == {"": 549, governance.REASON_NONE: 3}


def test_a_source_handling_code_fills_blank_codes_and_limits_every_record(tmp_path):
    cfg = load_config(P.partner_config(tmp_path, sources=("intel",), police=False,
                                       source_extra={"intel": 'handling = "C"\n'}))
    ld = load_sources(cfg)
    ci = ld.incidents
    assert ci["handling"].value_counts().to_dict() == {"P": 487, "C": 65}
    # A source set to C, no conditions in the config: none of its records is shared, P ones neither.
    assert governance.restriction(ci, cfg).value_counts().to_dict() == {governance.REASON_C: 552}
    (tmp_path / "r").mkdir()
    (tmp_path / "f").mkdir()
    released = load_config(P.partner_config(tmp_path / "r", sources=("intel",), police=False, source_extra={
        "intel": 'handling = "C"\nhandling_conditions = "Partners only, under the ISA s.4"\n'}))
    assert governance.restriction(ci, released).value_counts().to_dict() == {"": 552}
    # A 5x5x5 source set to 4 never leaves its agency, whatever its records' own codes (an audit found 51
    # of such a source's 65 records in the shared outputs).
    four = load_config(P.partner_config(tmp_path / "f", sources=("legacy",), police=False,
                                        source_extra={"legacy": 'handling = "4"\n'}))
    lg = load_sources(four).incidents
    assert set(lg["handling"]) >= {"1", "2", "3"}
    assert governance.restriction(lg, four).value_counts().to_dict() == {governance.REASON_5X5X5: len(lg)}


def test_5x5x5_handling_4_and_5_never_leave_the_originating_agency(loaded):
    cfg, ld = loaded
    lg = ld.incidents[ld.incidents["source_id"] == "legacy"]
    ok = governance.shareable(lg, cfg)
    assert ok[lg["handling"].isin(["1", "2", "3"])].all()
    held = lg[~ok]
    assert sorted(held["handling"].unique()) == ["4", "5"] and len(held) == 14
    assert set(governance.restriction(held, cfg)) == {governance.REASON_5X5X5}


def test_police_health_and_partner_records_are_shared(loaded):
    cfg, ld = loaded
    inc = ld.incidents
    others = inc[~inc["source_id"].isin(["intel", "legacy"])]
    assert governance.shareable(others, cfg).all()


def test_held_back_records_are_filtered_in_the_ledger_and_accounting_still_balances(loaded):
    cfg, ld = loaded
    ledger = Ledger(files=list(ld.ledger.files), _rejects=list(ld.ledger._rejects),
                    _filtered=list(ld.ledger._filtered))
    kept, held = governance.split_shared(ld.incidents, cfg, ledger)
    assert len(held) == 62 + 3 + 14 and len(kept) + len(held) == len(ld.incidents)
    acc = ledger.accounting(kept).set_index("source_id")
    assert acc.loc["intel", ["rows_read", "rows_loaded", "rows_filtered", "rows_rejected"]].tolist() == \
        [600, 487, 65, 48]
    assert acc.loc["legacy", ["rows_read", "rows_loaded", "rows_filtered", "rows_rejected"]].tolist() == \
        [82, 65, 14, 3]
    assert (acc["rows_read"] == acc["rows_loaded"] + acc["rows_filtered"] + acc["rows_rejected"]).all()
    flt = ledger.filtered
    assert flt[flt["source_id"] == "intel"]["reason"].value_counts().to_dict() == {
        "handling code C without conditions recorded in the config: originating agency only": 62,
        "graded record without a handling code: originating agency only": 3}
    summary = ledger.summary(ledger.accounting(kept)).set_index("source_id")
    assert summary.loc["legacy", "rows_filtered"] == 14


def test_an_agency_run_uses_its_own_restricted_records_and_others_shareable_ones(loaded):
    cfg, ld = loaded
    inc = ld.incidents
    own = governance.shareable(inc, cfg, agency="intel")
    assert own[inc["source_id"] == "intel"].all()
    assert not own[(inc["source_id"] == "legacy") & inc["handling"].isin(["4", "5"])].any()
    legacy = governance.shareable(inc, cfg, agency="legacy")
    assert legacy[inc["source_id"] == "legacy"].all()
    assert (~legacy[inc["source_id"] == "intel"]).sum() == 65
    shared = governance.shareable(inc, cfg)
    assert (~shared).sum() == 79 and ((~own) & shared).sum() == 0


def test_roles_are_counted_apart_and_never_mixed_in_a_layer(loaded):
    _, ld = loaded
    inc = ld.incidents
    counts = governance.role_counts(inc)
    assert counts.to_dict(orient="records") == [
        {"source_id": "yos", "role": "suspect", "n": 103},
        {"source_id": "yos", "role": "unknown", "n": 95},
        {"source_id": "yos", "role": "victim", "n": 92}]
    layers = governance.role_layers(inc)
    assert set(layers) == {"", "suspect", "unknown", "victim"}
    for role, layer in layers.items():
        assert set(layer["role"].fillna("")) == {role}
    assert sum(len(v) for v in layers.values()) == len(inc)
    # what the service wrote, row by row: a perpetrator is never counted as a victim
    raw = pd.read_excel(P.PARTNERS / P.YOS, header=3, dtype=str)
    said = raw["Role"].str.strip().str.lower()
    yos = inc[inc["source_id"] == "yos"]
    pairs = pd.crosstab(said.to_numpy()[yos["_row"] - 1], yos["role"].to_numpy())
    assert pairs.to_dict() == {"suspect": {"at risk": 0, "perpetrator": 103, "victim": 0},
                               "unknown": {"at risk": 95, "perpetrator": 0, "victim": 0},
                               "victim": {"at risk": 0, "perpetrator": 0, "victim": 92}}


def test_an_agency_run_never_writes_a_public_map(tmp_path):
    from hotspots.cli import main
    from tests.conftest import EXAMPLE
    out = tmp_path / "agency"
    import contextlib
    import io
    import json
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["run", str(EXAMPLE / "partnership.toml"), "--agency", "community_intel", "--out", str(out)]) == 0
    assert "briefing (community_intel's own run, not for sharing)" in printed.getvalue()
    assert "partner tier" not in printed.getvalue()
    tiers = {o["tier"] for o in json.loads((out / "manifest.json").read_text())["outputs"]}
    assert "agency:community_intel" in tiers and "partner" not in tiers
    assert (out / "map.html").is_file()
    assert not (out / "map-public.html").exists() and not (out / "public").exists()
    assert "own run" in (out / "map.html").read_text(encoding="utf-8")
    # The briefing, the file printed and handed round at a meeting, says so too: it is not a partner-tier
    # document (hostile audit: it was headed "(partner tier)" with no word of the agency's records).
    brief = (out / "briefing.html").read_text(encoding="utf-8")
    assert "community_intel&#x27;s own run" in brief and "Not for sharing" in brief
    assert "partner tier" not in brief


def test_sharing_is_an_allow_list_of_codes_and_anything_unknown_is_held_back(loaded):
    """Only P, 1-3, C with conditions and no code (ungraded) are shared; every other value, however
    written (CONFIDENTIAL, Code 5, 4.0), is kept to its agency with its own reason."""
    cfg, _ = loaded
    codes = ["P", "p", " 1 ", "2", "3", "", "C", "4", "5", "CONFIDENTIAL", "RESTRICTED", "Code 5", "4.0", "OFFICIAL"]
    inc = pd.DataFrame({"source_id": "ed", "handling": codes, "grade_source": "", "grade_intel": ""})
    why = governance.restriction(inc, cfg)
    assert why.tolist()[:6] == [""] * 6
    assert why.tolist()[6:9] == [governance.REASON_C, governance.REASON_5X5X5, governance.REASON_5X5X5]
    assert why.tolist()[9:] == [governance.REASON_UNKNOWN] * 5
    assert governance.shareable(inc, cfg).sum() == 6
    assert governance.shareable(inc, cfg, agency="ed").all()     # the agency's own run uses them all


def test_split_shared_consuming_its_input_keeps_the_same_records(loaded):
    """``consume=True`` (the pipeline's: the loaded table is let go) takes the kept records column by
    column: the same table, held-back table and ledger entries as the copy."""
    cfg, ld = loaded

    def ledger():
        return Ledger(files=list(ld.ledger.files), _rejects=list(ld.ledger._rejects),
                      _filtered=list(ld.ledger._filtered))
    first, second = ledger(), ledger()
    kept, held = governance.split_shared(ld.incidents, cfg, first)
    table = ld.incidents.copy(deep=True)
    kept2, held2 = governance.split_shared(table, cfg, second, consume=True)
    assert len(held) and len(kept)
    pd.testing.assert_frame_equal(kept2, kept)
    pd.testing.assert_frame_equal(held2, held)
    pd.testing.assert_frame_equal(second.filtered, first.filtered)
    assert table.shape[1] == 0        # emptied: its columns went as they were taken
