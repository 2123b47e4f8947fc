"""Junctions of two streets and the per-column gazetteer hint, on real City of London streets.

The street names are those of the example's City of London police.uk files ("On or near
Cheapside", ...). Where two streets meet is written here by hand, in longitude / latitude,
independently of the geocoder and its lists; each point was checked against the two streets'
snap points in the data (every pair has a snap point of each street within about 200 m of it).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer

from hotspots.errors import UserError
from hotspots.load import geocode as G
from hotspots.load.location import locate
from hotspots.load.spec import _check_keys
from tests import partners as P

_TO_BNG = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True)


@pytest.fixture(scope="module")
def geocoder(tmp_path_factory):
    from hotspots.load.geocode import build_geocoder
    cfg, ld = P.loaded_partners(str(tmp_path_factory.mktemp("junctions")))
    return build_geocoder(cfg, [ld.streets], need_postcodes=True)


# (text as a partner might write it, where the two streets meet: longitude, latitude)
JUNCTIONS = [
    ("junction of Cheapside and Wood Street", -0.0950, 51.5143),
    ("corner of Wood St & Gresham St", -0.0943, 51.5154),
    ("Moorgate / London Wall", -0.0886, 51.5175),
    ("Cheapside & King St junction", -0.0924, 51.5139),
    ("Gresham Street jct Moorgate", -0.0897, 51.5150),
    ("j/o Fenchurch St and Gracechurch St", -0.0845, 51.5118),
    ("CHEAPSIDE/QUEEN STREET", -0.0925, 51.5138),
    ("jct of lime st with leadenhall st", -0.0822, 51.5134),
    ("Gracechurch St / Eastcheap", -0.0857, 51.5107),
    ("corner of Liverpool St and Old Broad St", -0.0830, 51.5173),
    ("Aldersgate St jct London Wall", -0.0967, 51.5178),
    ("Old Jewry & Gresham Street", -0.0911, 51.5147),
    ("junction Cornhill and Gracechurch Street", -0.0845, 51.5132),
    ("outside Pret, corner of Leadenhall St and Gracechurch St", -0.0843, 51.5133),
]


def _distance(row, lon, lat) -> float:
    x, y = _TO_BNG.transform(lon, lat)
    return float(np.hypot(row["x"] - x, row["y"] - y))


@pytest.fixture(scope="module")
def placed(geocoder):
    got = geocoder.geocode_text(pd.Series([t for t, _, _ in JUNCTIONS]))
    got["d_true"] = [_distance(r, lon, lat) for (_, lon, lat), (_, r) in zip(JUNCTIONS, got.iterrows())]
    return got


def test_junctions_of_two_known_streets_are_placed_where_they_meet(placed):
    assert (placed["how"] == "junction").all(), placed[placed["how"] != "junction"]
    assert (placed["level"] == "street").all() and (placed["reason"] == "").all()
    assert (placed["d_true"] < 150).all(), placed[["name", "d_true"]]
    assert placed["d_true"].median() < 50
    # Never claimed finer than a street; the stated precision covers the true point.
    assert (placed["location_precision_m"] >= 150).all()
    assert (placed["d_true"] <= placed["location_precision_m"]).all()


def test_a_junction_is_named_by_both_streets(placed):
    assert placed["name"].iloc[0] == "Cheapside / Wood Street"
    assert placed["name"].iloc[2] == "Moorgate / London Wall"   # London Wall: a long road, pinned by Moorgate


def test_a_junction_far_from_either_snap_point_keeps_a_precision_that_covers_it(geocoder):
    # Farringdon Street's only snap point lies some 260 m north of Ludgate Circus.
    got = geocoder.geocode_text(pd.Series(["Fleet St / Farringdon St"])).iloc[0]
    assert got["how"] == "junction"
    d = _distance(got, -0.1045, 51.5140)
    assert d <= got["location_precision_m"] <= G.JUNCTION_MAX_M


def test_a_junction_with_one_known_street_falls_back_to_that_street(geocoder):
    got = geocoder.geocode_text(pd.Series(["junction of Cheapside and Nonesuch Road",
                                           "corner of Zzyzx Lane & Wood Street"]))
    assert got["how"].tolist() == ["exact", "exact"]
    assert got["name"].tolist() == ["Cheapside", "Wood Street"]
    assert (got["level"] == "street").all()


def test_a_junction_of_unknown_streets_is_not_placed(geocoder):
    got = geocoder.geocode_text(pd.Series(["junction of Nonesuch Road and Zzyzx Lane", "Qwerty St / Asdfgh Rd",
                                           "corner of Foo Street & Bar Lane"]))
    assert (got["level"] == "unmatched").all()
    assert got["x"].isna().all() and got["y"].isna().all()
    assert (got["reason"] == "location not geocoded").all()


def test_two_streets_far_apart_are_not_a_junction(geocoder):
    # Cheapside and Fleet Street are about a kilometre apart: no invented meeting point.
    got = geocoder.geocode_text(pd.Series(["Cheapside / Fleet Street"])).iloc[0]
    assert got["how"] != "junction"
    assert got["name"] in ("Cheapside", "Fleet Street")


def test_a_station_beside_a_street_is_not_a_junction(geocoder):
    got = geocoder.geocode_text(pd.Series(["Bank / Threadneedle St", "Bank/Monument", "Moorgate station / London Wall"]))
    assert (got["how"] != "junction").all()
    assert got["name"].iloc[1] == "Bank and Monument"
    assert got["name"].iloc[2] == "Moorgate" and got["level"].iloc[2] == "place"


def test_split_junction():
    assert G.split_junction("junction of Cheapside and Wood St") == ["Cheapside", "Wood St"]
    assert G.split_junction("j/o Gresham Street and Moorgate") == ["Gresham Street", "Moorgate"]
    assert G.split_junction("Cheapside & Wood St junction") == ["Cheapside", "Wood St"]
    assert G.split_junction("Cheapside jct King St") == ["Cheapside", "King St"]
    assert G.split_junction("outside Tesco") == ["outside Tesco"]


# --------------------------------------------------------------------------- the per-column hint

def test_a_column_hinted_stations_reads_bank_as_the_station(geocoder):
    text = pd.Series(["Bank", "Moorgate", "Liverpool Street", "Cheapside", "EC2M 7PY"])
    got = geocoder.geocode_text(text, kinds=["stations"])
    assert got["name"].tolist()[:3] == ["Bank and Monument", "Moorgate", "Liverpool Street"]
    assert (got["level"].iloc[:3] == "place").all()
    # No cue word needed, and not the wider district precision the bare name gets elsewhere.
    assert (got["location_precision_m"].iloc[:3] == 100.0).all()
    assert got["level"].iloc[3:].tolist() == ["unmatched", "unmatched"]     # a street, a postcode: not asked for
    unhinted = geocoder.geocode_text(pd.Series(["Bank"])).iloc[0]
    assert unhinted["location_precision_m"] == 400.0


def test_a_column_hinted_streets_does_not_match_stations(geocoder):
    text = pd.Series(["Bank", "Liverpool Street station", "Moorgate", "junction of Cheapside and Wood Street"])
    got = geocoder.geocode_text(text, kinds=["streets"])
    assert got["level"].tolist() == ["unmatched", "street", "street", "street"]
    assert got["name"].iloc[1] == "Liverpool Street" and got["name"].iloc[2] == "Moorgate"
    station = geocoder.geocode_text(pd.Series(["Moorgate station"])).iloc[0]
    assert (got["x"].iloc[2], got["y"].iloc[2]) != (station["x"], station["y"])
    assert got["how"].iloc[3] == "junction"


def test_postcodes_are_read_only_where_the_hint_allows_them(geocoder):
    text = pd.Series(["nr EC2M 7PY", "Cheapside"])
    assert geocoder.geocode_text(text, kinds=["postcodes"])["level"].tolist() == ["postcode", "unmatched"]
    assert geocoder.geocode_text(text, kinds=["streets"])["level"].tolist() == ["unmatched", "street"]
    assert geocoder.geocode_text(text, kinds=["streets", "postcodes"])["level"].tolist() == ["postcode", "street"]
    with pytest.raises(UserError, match="unknown gazetteer kind"):
        geocoder.geocode_text(text, kinds=["tube"])


def test_the_hint_is_part_of_the_mapping_format_and_reaches_the_geocoder(geocoder):
    cand = {"kind": "freetext", "column": "Location", "gazetteer": ["stations"]}
    _check_keys({"extends": "partner_generic", "location": cand}, "btp.json")
    with pytest.raises(UserError, match="gazetteer"):
        _check_keys({"location": {**cand, "gazetteer": ["tube"]}}, "btp.json")
    with pytest.raises(UserError, match="gazetteer"):
        _check_keys({"location": {**cand, "gazetteer": "stations"}}, "btp.json")
    raw = pd.DataFrame({"Location": ["Bank", "Cheapside", "Liverpool St"]})
    got = locate(raw, cand, geocoder)
    assert got["level"].tolist() == ["place", "unmatched", "place"]
    assert got["reason"].iloc[1] == "location not geocoded"
    plain = locate(raw, {"kind": "freetext", "column": "Location"}, geocoder)
    assert plain["level"].tolist() == ["place", "street", "street"]
