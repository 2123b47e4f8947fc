"""Probable duplicates across agencies: the same assault recorded by the police and the ED, flagged from
place, time and category alone and counted once.

Measured on the generator's 22 planted duplicates (ED assaults copied from City of London Police
"Violence and sexual offences" records: same month, within 60 m).
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from hotspots.errors import UserError
from hotspots.load import finish
from hotspots.load.linkage import _candidate_pairs, link_duplicates, linkage_options
from hotspots.weight import apply_weights, weight_table
from tests import partners as P


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    return P.loaded_partners(str(tmp_path_factory.mktemp("linkage")))


def _cfg(**linkage):
    return SimpleNamespace(raw={"linkage": linkage} if linkage else {}, path="test.toml")


def _incident(iid, evidence, x, y, when, precision, category="violent-crime", prec_m=200.0, source=None):
    start = pd.Timestamp(when)
    if precision == "month":
        end = start + pd.offsets.MonthBegin(1) - pd.Timedelta(seconds=1)
    else:
        end = start
    return {"incident_id": iid, "source_id": source or iid.split(":")[0], "evidence": evidence,
            "category": category, "x": x, "y": y, "occurred_from": start, "occurred_to": end,
            "date_precision": precision, "location_precision_m": prec_m}


def _link(rows, **linkage):
    df = pd.DataFrame(rows)
    out, info = link_duplicates(df, _cfg(**linkage))
    return dict(zip(out["incident_id"], out["duplicate_of"])), info


# --------------------------------------------------------------------------- the criteria

def test_police_month_and_ed_minute_link_within_the_same_month_only():
    rows = [_incident("pol:1", "recorded_crime", 531000, 181000, "2018-03-01", "month"),
            _incident("ed:1", "health", 531020, 181000, "2018-03-31 23:50", "minute", prec_m=100),
            _incident("ed:2", "health", 531020, 181000, "2018-04-01 00:10", "minute", prec_m=100)]
    got, info = _link(rows)
    assert info["linked"] == 1
    assert got == {"pol:1": "ed:1", "ed:1": "", "ed:2": ""}     # the ED postcode (100 m) beats the snap point


def test_distance_allows_for_the_imprecision_of_both_locations():
    # 65 m apart: further than distance_m (50) but within 50 + 0.1 * sqrt(200^2 + 100^2) = 72 m
    near = [_incident("pol:1", "recorded_crime", 531000, 181000, "2018-03-01", "month"),
            _incident("ed:1", "health", 531065, 181000, "2018-03-10 22:00", "minute", prec_m=100)]
    assert _link(near)[1]["linked"] == 1
    exact = [dict(near[0], location_precision_m=0.0), dict(near[1], location_precision_m=0.0)]
    assert _link(exact)[1]["linked"] == 0                          # exact points: 50 m is the limit
    far = [near[0], dict(near[1], x=531080)]
    assert _link(far)[1]["linked"] == 0
    assert _link(far, precision_factor=1.0)[1]["linked"] == 1      # 50 + 224 m


def test_categories_must_be_compatible():
    pol = _incident("pol:1", "recorded_crime", 531000, 181000, "2018-03-01", "month")
    knife = _incident("ed:1", "health", 531010, 181000, "2018-03-10 22:00", "minute", "violence-with-weapon", 100)
    assert _link([pol, knife])[1]["linked"] == 1                   # a subcategory links with its parent
    robbery = dict(pol, category="robbery")
    assert _link([robbery, knife])[1]["linked"] == 0
    search = dict(pol, category="stop-and-search", evidence="recorded_crime")
    assert _link([search, dict(knife, category="stop-and-search")])[1]["linked"] == 0


def test_days_widen_windows_finer_than_a_month():
    a = _incident("pol:1", "recorded_crime", 531000, 181000, "2018-03-10 23:00", "minute")
    b = _incident("ed:1", "health", 531010, 181000, "2018-03-11 20:00", "minute", prec_m=100)
    assert _link([a, b])[1]["linked"] == 1
    assert _link([a, dict(b, occurred_from=pd.Timestamp("2018-03-13"), occurred_to=pd.Timestamp("2018-03-13"))]
                 )[1]["linked"] == 0
    assert _link([a, dict(b, occurred_from=pd.Timestamp("2018-03-13"), occurred_to=pd.Timestamp("2018-03-13"))],
                 days=3)[1]["linked"] == 1


def test_each_record_links_once_closest_first_and_never_within_one_source():
    rows = [_incident("pol:1", "recorded_crime", 531000, 181000, "2018-03-01", "month"),
            _incident("pol:2", "recorded_crime", 531030, 181000, "2018-03-01", "month"),
            _incident("ed:1", "health", 531025, 181000, "2018-03-05 01:00", "minute", prec_m=300),
            _incident("ed:2", "health", 531005, 181000, "2018-03-06 01:00", "minute", prec_m=300)]
    got, info = _link(rows)
    assert info["linked"] == 2
    assert got == {"pol:1": "", "pol:2": "", "ed:1": "pol:2", "ed:2": "pol:1"}   # the snap point is more precise
    same = [dict(rows[2], source_id="ed"), dict(rows[3], source_id="ed", evidence="recorded_crime")]
    assert _link(same)[1]["linked"] == 0


def test_nothing_to_link_leaves_the_schema_unchanged():
    rows = [_incident("pol:1", "recorded_crime", 531000, 181000, "2018-03-01", "month")]
    out, info = link_duplicates(pd.DataFrame(rows), _cfg())
    assert "duplicate_of" not in out and info["linked"] == 0
    out, info = link_duplicates(pd.DataFrame(rows + [_incident("ed:1", "health", 531000, 181000, "2018-03-02",
                                                               "minute")]), _cfg(enabled=False))
    assert "duplicate_of" not in out and info["rule"] == "disabled in the config"


@pytest.mark.parametrize("linkage, message", [({"distance_m": -1}, "distance_m should be a number"),
                                              ({"pairs": [["health", "gossip"]]}, "pairs"),
                                              ({"radius": 3}, "unknown key 'radius'")])
def test_bad_linkage_settings_are_user_errors(linkage, message):
    with pytest.raises(UserError, match=message):
        linkage_options(_cfg(**linkage))


# --------------------------------------------------------------------------- on the generated data

def _planted(ld):
    t = P.truth_of(P.ED)
    ed = P.rows_of(ld, "ed")
    planted = ed[ed.index.isin(t.index[t["pattern"] == "duplicate_of_police"])]
    return set(planted["incident_id"]), dict(zip(planted["incident_id"], t.loc[planted.index, "police_crime_id"]))


def test_planted_duplicates_are_found_recall_and_precision(loaded):
    """Seed 2018: 306 links; 20 of the 22 planted duplicates are among them (recall 0.91), 13 of them
    with the very police record the generator copied (the others with another violent crime at the
    same snap point that month: the same count). Precision against the plant is 20/306 = 0.065: see
    the next test for why it cannot be higher with month-only police dates."""
    _, ld = loaded
    inc = ld.incidents
    assert ld.linkage["linked"] == 306
    assert ld.linkage["distance_m"] == 50.0 and ld.linkage["days"] == 1.0
    planted, crime_of = _planted(ld)
    assert len(planted) == 22
    dup = inc[inc["duplicate_of"] != ""]
    pair_of = {}
    ref = inc.set_index("incident_id")["source_ref"]
    for a, b in zip(dup["incident_id"], dup["duplicate_of"]):
        ed, pol = (a, b) if a.startswith("ed:") else (b, a)
        pair_of[ed] = ref[pol]
    assert len(pair_of) == 306 and all(k.startswith("ed:") for k in pair_of)
    found = planted & set(pair_of)
    recall, precision = len(found) / len(planted), len(found) / len(pair_of)
    assert recall >= 0.9 and precision >= 0.06
    assert sum(pair_of[e] == crime_of[e] for e in found) >= 13
    # ED records linked: about a third, the share of ED-treated violence the police know of
    assert 0.25 <= len(pair_of) / (inc["source_id"] == "ed").sum() <= 0.33


def test_precision_is_bounded_by_coincidences_in_month_only_police_data(loaded):
    _, ld = loaded
    inc = ld.incidents
    planted, _ = _planted(ld)
    police = inc[inc["evidence"] == "recorded_crime"].reset_index(drop=True)
    ed = inc[inc["evidence"] == "health"].reset_index(drop=True)
    pairs = _candidate_pairs(police, ed, linkage_options(_cfg(precision_factor=0.0)))
    candidates = set(ed["incident_id"].to_numpy()[pairs["ib"]])
    others = set(ed["incident_id"]) - planted
    # a fifth of the ED assaults that are no duplicate have a same-month police violent crime within 50 m
    assert 0.15 < len(candidates & others) / len(others) < 0.25


def test_a_duplicate_weighs_zero_and_its_pair_is_counted_once(loaded):
    cfg, ld = loaded
    inc = apply_weights(finish(ld.incidents), weight_table(cfg))
    dup = inc["duplicate_of"] != ""
    assert dup.sum() == 306 and (inc.loc[dup, "weight"] == 0).all()
    kept = inc.set_index("incident_id").loc[inc.loc[dup, "duplicate_of"]]
    assert (kept["weight"] > 0).all() and (kept["duplicate_of"] == "").all()
    assert kept["source_id"].astype(str).value_counts().to_dict() == {"ed": 302, "city_police": 3, "met_police": 1}


def test_a_link_to_a_record_dropped_later_is_cleared(loaded):
    _, ld = loaded
    inc = ld.incidents
    dup = inc[inc["duplicate_of"] != ""].iloc[0]
    kept_id = dup["duplicate_of"]
    out = finish(inc[inc["incident_id"] != kept_id])
    assert out.loc[out["incident_id"] == dup["incident_id"], "duplicate_of"].iloc[0] == ""
    # Every other link stays as it was.
    before = inc[inc["incident_id"] != kept_id].set_index("incident_id")["duplicate_of"]
    after = out.set_index("incident_id")["duplicate_of"]
    changed = after[after != before.loc[after.index].astype(str)]
    assert set(changed.index) == set(before.index[before == kept_id]) and (after[changed.index] == "").all()


def test_linkage_reads_incident_fields_only(loaded):
    """Linking persons is impossible by construction: the frame linked carries no person field."""
    _, ld = loaded
    out, info = link_duplicates(finish(ld.incidents).drop(columns=["duplicate_of", "role"]), _cfg())
    assert info["linked"] == 306
    assert np.array_equal(out["duplicate_of"].to_numpy(), ld.incidents["duplicate_of"].to_numpy())


def test_the_compact_load_holds_no_ids_yet_names_the_same_records(loaded):
    """The pipeline's load holds no incident id a row; the ids it makes where they are read (a duplicate's
    reject, a linked record's ``duplicate_of``, ``finish``'s check) are the full load's, which are
    ``<source>:<file index>:<row>`` as the ledger numbers the files."""
    from hotspots.load import LoadOptions, load_sources
    cfg, ld = loaded
    compact = load_sources(cfg, options=LoadOptions(compact=True))
    assert "incident_id" not in compact.incidents
    full = ld.incidents
    index = {(f["source_id"], f["path"]): k for k, f in enumerate(ld.ledger.files)}
    by_hand = [f"{s}:{index[(s, p)]}:{r}" for s, p, r in zip(full["source_id"].astype(str),
                                                            full["_file"].astype(str), full["_row"])]
    assert full["incident_id"].tolist() == by_hand
    assert compact.incidents["duplicate_of"].tolist() == full["duplicate_of"].tolist()
    assert (compact.incidents["duplicate_of"] != "").sum() == 306
    dups = ld.ledger.rejects["reason"].str.startswith("duplicate of ")
    assert dups.sum() > 0
    pd.testing.assert_frame_equal(compact.ledger.rejects, ld.ledger.rejects)
    # finish: the links kept, and cleared where the record kept is gone, as with the ids a row.
    gone = full["incident_id"] == full.loc[full["duplicate_of"] != "", "duplicate_of"].iloc[0]
    for keep in (np.ones(len(full), bool), ~gone.to_numpy()):
        want = finish(full[keep])
        got = finish(compact.incidents[keep], compact.ledger)
        assert got["duplicate_of"].tolist() == want["duplicate_of"].tolist()
        assert (got["incident_id"] == "").all()
    assert (finish(compact.incidents[~gone.to_numpy()], compact.ledger)["duplicate_of"] != "").sum() == 305
