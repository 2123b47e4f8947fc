"""Offline geocoding: postcodes (OS Code-Point Open, ONS Postcode Directory), OS grid references, and free
text against a gazetteer of streets (police.uk snap-point names), stations and key buildings.

The free-text matcher is measured on the generator's truth: every ED location text that names a
postcode, street, station or school, and every one that names nowhere.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hotspots.load import geocode as G
from tests import partners as P

CODEPOINT = P.DATA / "postcodes"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    return P.loaded_partners(str(tmp_path_factory.mktemp("geocode")))


@pytest.fixture(scope="module")
def geocoder(loaded):
    """The geocoder the partner sources were located with (rebuilt from the same config)."""
    from hotspots.load.geocode import build_geocoder
    cfg, ld = loaded
    assert len(ld.streets)                   # the police sources' named snap points
    return build_geocoder(cfg, [ld.streets], need_postcodes=True)


@pytest.fixture(scope="module")
def measured(geocoder):
    """Every ED free-text location geocoded, beside what the generator meant by it."""
    raw = pd.read_csv(P.PARTNERS / P.ED, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    res = geocoder.geocode_text(raw["Assault_Location_Free_Text"].str.strip())
    t = P.truth_of(P.ED).reset_index(drop=True)
    res["kind"] = t["location_kind"].to_numpy()
    res["d_target"] = np.hypot(res["x"] - t["target_easting"], res["y"] - t["target_northing"])
    res["d_true"] = np.hypot(res["x"] - t["easting"], res["y"] - t["northing"])
    return res


# --------------------------------------------------------------------------- postcodes

def test_postcodes_normalise_case_and_spaces():
    text = pd.Series(["ec2m 7py", "EC2M7PY", " EC2M  7PY ", "E1  6AN", "e16an"])
    assert G.compact_postcode(text).tolist() == ["EC2M7PY", "EC2M7PY", "EC2M7PY", "E16AN", "E16AN"]
    assert G.is_postcode(G.compact_postcode(pd.Series(["EC2M7PY", "E1", "N/K", "E1 6", "W1A0AX"]))).tolist() == \
        [True, False, False, False, True]
    assert G.postcode_in_text(pd.Series(["nr EC2M 7PY", "EC1R  3BX (approx)", "ec2a2ut", "E1 6", "home"])).tolist() \
        == ["EC2M7PY", "EC1R3BX", "EC2A2UT", "", ""]


def test_codepoint_open_lookup_reads_padded_postcodes_without_a_header():
    files = sorted(str(p) for p in CODEPOINT.glob("*.csv"))
    lookup = G.PostcodeLookup.from_files(files)
    assert len(lookup.table) == 4240 + 2833 + 6719 + 4363     # ec + wc whole, e and n within the box
    got = lookup.locate(pd.Series(["EC1A 1AA", "ec1a1ah", "E1 6AN", "N/K", "E1 9ZZ", "EC1"]))
    assert got.loc[0, ["x", "y"]].tolist() == [531131.0, 182382.0]     # first row of ec.csv
    assert got.loc[1, ["x", "y"]].tolist() == [531070.0, 182310.0]
    assert got["reason"].tolist()[:2] == ["", ""]
    assert got["reason"].tolist()[3:] == ["not a valid postcode", "postcode not found", G.PARTIAL_POSTCODE]
    # A district or sector is named as such (the analyst learns the partner wrote half a postcode), never
    # placed; a road ("A1") or an area letter not Royal Mail's ("Q1 2") is no postcode at all.
    got = lookup.locate(pd.Series(["E1 6", "ec2m 7", "SW1A", "N1", "A1", "Q1 2", "E1 6A"]))
    assert got["reason"].tolist() == [G.PARTIAL_POSTCODE] * 4 + ["not a valid postcode"] * 3
    assert got[["x", "y"]].isna().all().all()


def test_ons_postcode_directory_format_is_read_too(tmp_path):
    f = tmp_path / "onspd.csv"
    f.write_text("pcd,pcd2,pcds,oseast1m,osnrth1m,lat,long\n"
                 "EC1A1AA,EC1A 1AA,EC1A 1AA,531131,182382,51.5,-0.1\n"
                 "ZZ991ZZ,ZZ99 1ZZ,ZZ99 1ZZ,,,,\n", encoding="utf-8")
    lookup = G.PostcodeLookup.from_files([str(f)])
    got = lookup.locate(pd.Series(["EC1A 1AA", "ZZ99 1ZZ"]))
    assert got.loc[0, ["x", "y"]].tolist() == [531131.0, 182382.0]
    assert got.loc[1, "reason"] == "postcode has no coordinates"


# --------------------------------------------------------------------------- grid references

def test_grid_references_become_the_centre_of_their_square():
    got = G.parse_gridref(pd.Series(["TQ 32345 81234", "tq3234581234", "TQ 3234 8123", "TQ 323 812",
                                     "NN 166 712", "SV 00000 00000", "HP 6000 1700"]))
    assert got[["x", "y"]].values.tolist() == [
        [532345.5, 181234.5], [532345.5, 181234.5], [532345.0, 181235.0], [532350.0, 181250.0],
        [216650.0, 771250.0],       # Ben Nevis
        [0.5, 0.5], [460005.0, 1217005.0]]
    assert got["precision_m"].tolist() == [1.0, 1.0, 5.0, 50.0, 50.0, 1.0, 5.0]
    assert (got["reason"] == "").all()


@pytest.mark.parametrize("text", ["TQ", "TQ 3234 812", "TQ33451812X", "IQ 323 812", "AA 323 812", "TQ 3 8",
                                  "32345 81234", "TQ 123456 123456"])
def test_malformed_grid_references_are_rejected(text):
    got = G.parse_gridref(pd.Series([text]))
    assert np.isnan(got.loc[0, "x"]) and got.loc[0, "reason"] == "malformed grid reference"


# --------------------------------------------------------------------------- free text

def test_canonical_form_abbreviates_both_sides():
    assert G.canonical("Liverpool Street") == G.canonical("liverpool st") == G.canonical("Liverpool St.") \
        == "liverpool st"
    assert G.canonical("St. Paul's") == G.canonical("Saint Pauls") == "st pauls"
    assert G.canonical("Gray's Inn Road") == G.canonical("grays inn rd")
    assert G.canonical("outside the station, near Bank") == "outside the stn nr bank"
    assert G.canonical("Fenchurch Stret") == "fenchurch st"          # a typo in a long word still abbreviates
    assert G.canonical("St Monica's Roman Catholic Primary School") == G.canonical("st monica's rc primary")


def test_within_one_edit():
    assert G.within_one_edit("fenchurch st", "fenchurh st")       # dropped
    assert G.within_one_edit("fenchurch st", "fenhcurch st")      # swapped
    assert G.within_one_edit("fenchurch st", "fenchurrch st")     # doubled
    assert G.within_one_edit("wilson st", "wilton st")            # substituted
    assert not G.within_one_edit("fenchurch st", "fenhcurh st")


def test_streets_come_from_police_uk_snap_point_names_at_their_median():
    names = pd.Series(["On or near Charterhouse Street"] * 3 + ["On or near Supermarket", "On or near A100",
                                                                "On or near Cowcross Street/Turnmill Street"])
    x = np.array([531500.0, 531600.0, 531700.0, 531000.0, 531000.0, 531000.0])
    y = np.array([181800.0, 181800.0, 181900.0, 181000.0, 181000.0, 181000.0])
    pts = G.street_points(names, x, y, strip=r"^On or near\s+")
    assert pts["name"].tolist() == ["Charterhouse Street"] * 3
    streets = G.streets_from_points(pts)
    assert streets[["name", "x", "y"]].values.tolist() == [["Charterhouse Street", 531600.0, 181800.0]]
    assert streets["precision_m"].iloc[0] == 150.0 and not streets["ambiguous"].iloc[0]
    gz = G.Gazetteer.build(streets)
    assert gz.places["canon"].tolist() == ["charterhouse st"]


@pytest.mark.parametrize("text, level, name", [
    ("outside Liverpool Street station", "place", "Liverpool Street"),
    ("Fenchurch St nr the Tesco", "street", "Fenchurch Street"),
    ("EC2M 7PY", "postcode", "EC2M 7PY"),
    ("nr EC1R  3BX", "postcode", "EC1R 3BX"),
    ("bus stop by barbican stn", "place", "Barbican"),
    ("ticket hall bank", "place", "Bank and Monument"),
    ("outside Kings X station", "place", "King's Cross St. Pancras"),
    ("SHOREDITCH HIGH ST STN", "place", "Shoreditch High Street"),
    ("Pret on Old St", "street", "Old Street"),
    ("CLUB O NWIDEGATE STREET", "street", "Widegate Street"),     # the typo moved a space
    ("fenchurh st", "street", "Fenchurch Street"),                 # one letter dropped
    ("home", "unmatched", ""),
    ("dont know", "unmatched", ""),
    ("by the bank", "unmatched", ""),          # a one-word station name needs a station word
    ("the city", "unmatched", ""),
    ("", "unmatched", ""),
])
def test_free_text_examples(geocoder, text, level, name):
    got = geocoder.geocode_text(pd.Series([text])).iloc[0]
    assert (got["level"], got["name"]) == (level, name)
    if level == "unmatched":
        assert np.isnan(got["x"]) and np.isnan(got["y"]) and got["reason"] == "location not geocoded"
    else:
        assert got["location_precision"] == level and got["reason"] == ""
        if level == "street":
            assert 150 <= got["location_precision_m"] <= 500
        else:
            assert got["location_precision_m"] == 100.0


def test_unknown_postcode_in_free_text_says_so(geocoder):
    got = geocoder.geocode_text(pd.Series(["outside E1 9ZZ"])).iloc[0]
    assert got["level"] == "unmatched" and got["reason"] == "postcode not found"


def test_free_text_matcher_precision_and_recall_on_the_generator_truth(measured):
    """Correct = matched within 250 m of the place the text names. Measured on seed 2018:
    1065 of 1068 locatable texts matched (3 on streets whose police.uk points spread wider than 500 m),
    1 wrong: precision 0.999, recall 0.996; no text that names nowhere was matched."""
    res = measured
    matched = res["level"] != "unmatched"
    correct = matched & (res["d_target"] <= 250)
    locatable = res["kind"] != "junk"
    precision = correct.sum() / matched.sum()
    recall = correct.sum() / locatable.sum()
    assert locatable.sum() == 1068 and matched.sum() == 1065
    assert precision >= 0.99 and recall >= 0.99
    assert not (matched & ~locatable).any()                  # "home", "dont know", "pub": never placed
    assert res.loc[~matched, ["x", "y"]].isna().all().all()  # unmatched: no invented coordinates
    # by what the text names
    by = pd.crosstab(res["kind"], res["level"])
    assert by.loc["postcode", "postcode"] == 574
    assert by.loc["station", "place"] >= 160 and by.loc["street", "street"] >= 310
    # names only (no postcode in the text): the harder part
    names = res["kind"].isin(["station", "street", "place"])
    assert (correct & names).sum() / (matched & names).sum() >= 0.99
    assert (correct & names).sum() / names.sum() >= 0.98
    # and against the true incident point, which a name can only approximate
    assert (res.loc[matched, "d_true"] <= 250).mean() >= 0.95


def test_every_record_gets_a_match_level_and_the_rates_are_reported(loaded):
    _, ld = loaded
    assert ld.geocoding["ed"] == {"postcode": 574, "street": 318, "place": 173, "unmatched": 435}
    assert ld.geocoding["yos"] == {"postcode": 290, "street": 0, "place": 0, "unmatched": 30}
    assert ld.geocoding["intel"] == {"postcode": 261, "street": 0, "place": 0, "unmatched": 6}
    assert ld.geocoding["legacy"] == {"postcode": 42, "street": 0, "place": 0, "unmatched": 0}
    assert "city_police" not in ld.geocoding
    assert G.describe_rates({"ed": ld.geocoding["ed"]}) == [
        "ed: 1,065 of 1,500 located (71 %): 574 by postcode, 318 by street, 173 by place; 435 unmatched"]
    ed = P.rows_of(ld, "ed")
    assert set(ed["location_precision"]) == {"postcode", "street", "place"}
    assert set(ed.loc[ed["location_precision"] == "postcode", "location_precision_m"]) == {100.0}
    assert set(ed.loc[ed["location_precision"] == "place", "location_precision_m"]) <= {100.0}
    street = ed.loc[ed["location_precision"] == "street", "location_precision_m"]
    assert street.min() == 150.0 and street.max() <= 500.0
    rej = P.rejects_of(ld, "ed")
    assert (rej["reason"] == "location not geocoded").sum() == 399
    assert (rej["reason"] == "no location").sum() == 33


def test_a_postcode_source_without_a_lookup_fails_with_a_hint(tmp_path):
    from hotspots.config import load_config
    from hotspots.errors import UserError
    from hotspots.load import load_sources
    cfg = load_config(P.partner_config(tmp_path, sources=("yos",), police=False, geocoding=""))
    with pytest.raises(UserError, match=r"no postcode lookup.*\[geocoding\] postcodes"):
        load_sources(cfg)
    ld = load_sources(cfg, keep_going=True)
    assert "yos" in ld.ledger.failures


def test_street_entries_take_the_commonest_spelling_and_each_streets_distinct_points():
    # Spellings as police.uk and partner extracts write one street; a tie goes to the one seen first.
    rows = [("St Mary Axe", 533300.0, 181300.0), ("ST MARY AXE", 533310.0, 181290.0),
            ("ST MARY AXE", 533300.0, 181300.0), ("St Mary Axe", 533320.0, 181280.0),
            ("Old Street", 532600.0, 182500.0), ("OLD STREET", 532600.0, 182500.0),
            ("Old Street", 532610.0, 182500.0), ("old street", 532600.0, 182490.0),
            ("Old Street", 532600.0, 182500.0), ("Moorgate", 532700.0, 181600.0)]
    pts = pd.DataFrame(rows, columns=["name", "x", "y"])
    got = G.streets_from_points(pts).set_index("name")
    assert sorted(got.index) == ["Moorgate", "Old Street", "St Mary Axe"]      # 2-2 tie: the first seen
    # Each street's distinct snap points, ordered by x then y, as np.unique gives them per street.
    for name, canon in (("Old Street", "old st"), ("St Mary Axe", "st mary axe"), ("Moorgate", "moorgate")):
        mine = pts[pts["name"].map(G.canonical) == canon][["x", "y"]].to_numpy()
        assert np.array_equal(got.loc[name, "points"], np.unique(mine, axis=0))
        assert got.loc[name, "n"] == len(mine)
    assert got.loc["Old Street", "points"].tolist() == [[532600.0, 182490.0], [532600.0, 182500.0],
                                                        [532610.0, 182500.0]]


def test_places_of_one_name_merge_when_close_and_drop_when_far_keeping_first_seen_order():
    stations = pd.DataFrame({"name": ["Moorgate", "Liverpool Street", "Bank", "Liverpool Street", "Bank"],
                             "x": [532700.0, 533100.0, 532700.0, 533150.0, 529000.0],
                             "y": [181600.0, 181500.0, 181100.0, 181550.0, 179000.0]})
    gz = G.Gazetteer.build(stations=stations)
    st = gz.places[gz.places["kind"] == "station"]
    assert st["name"].tolist()[:2] == ["Moorgate", "Liverpool Street"]
    lvs = st[st["name"] == "Liverpool Street"].iloc[0]
    assert (lvs["x"], lvs["y"]) == (533125.0, 181525.0)                      # their mean: 71 m apart
    assert lvs["precision_m"] == pytest.approx(max(G.PRECISION["place"], np.hypot(25, 25)))
    assert "Bank" not in set(st["name"]) and gz.dropped["name"].tolist() == ["Bank"]
