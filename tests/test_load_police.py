"""police.uk loaders on the bundled real data: row accounting and every format quirk.

The data is the example's own copy (examples/london_city_fringe/data, real police.uk
open data under the Open Government Licence v3.0; see its ATTRIBUTION.md). Every
expected number is counted here independently with csv / json / collections / pyproj,
then compared exactly with what ``hotspots.load`` did; the quirks are those listed in
the data's PROVENANCE.md (month-only dates, rows without coordinates, ASB rows without
Crime ID, far strays, rows in neighbouring boroughs, API slugs and string coordinates,
persistent_id/id, ids repeated across ward files, crimes in both forces, stop and
search personal columns and ISO datetimes).
"""
from __future__ import annotations

import collections
import csv
import json
import shutil
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer

from hotspots.config import load_config
from hotspots.errors import UserError
from hotspots.load import finish, load_sources
from hotspots.schema import CATEGORY_MAPS, FIELDS, TAXONOMY, enforce

DATA = Path(__file__).resolve().parent.parent / "examples" / "london_city_fringe" / "data"
STREET = DATA / "city_street"
API = DATA / "met_api"
STOP = DATA / "city_stop_search"
LAD = DATA / "boundaries" / "london-2021-lad22-gen20.shp"

STREET_GLOB = str(STREET / "*-street.csv")
API_GLOB = str(API / "*.json")
STOP_GLOB = str(STOP / "*.csv")
PERSONAL = ["Gender", "Age range", "Self-defined ethnicity", "Officer-defined ethnicity"]
WGS84_TO_BNG = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True)


# --------------------------------------------------------------------------- helpers

def write_config(folder: Path, sources: list[dict], start: str = "2017-12", end: str = "2019-11",
                 extra: str = "") -> Path:
    """A TOML config in ``folder`` with the given [[sources]] (values written as TOML)."""
    lines = ["[study]", f'start = "{start}"', f'end = "{end}"', ""]
    for src in sources:
        lines.append("[[sources]]")
        for key, value in src.items():
            lines.append(f"{key} = {json.dumps(value)}")  # JSON strings/arrays are valid TOML
        lines.append("")
    path = folder / "partnership.toml"
    path.write_text("\n".join(lines) + extra, encoding="utf-8")
    return path


def load(folder: Path, sources: list[dict], **kw):
    cfg = load_config(write_config(folder, sources, **kw))
    return cfg, load_sources(cfg)


def street(sid="city", path=STREET_GLOB, **kw):
    return {"id": sid, "path": path, "schema": "police_uk_street", **kw}


def api(sid="met", path=API_GLOB, **kw):
    return {"id": sid, "path": path, "schema": "police_uk_api", **kw}


def stop(sid="stop", path=STOP_GLOB, **kw):
    return {"id": sid, "path": path, "schema": "police_uk_stop_search", **kw}


@lru_cache(maxsize=None)
def csv_rows(path: str) -> tuple[dict, ...]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return tuple(csv.DictReader(fh))


@lru_cache(maxsize=None)
def csv_line_count(path: str) -> int:
    """Data rows by the csv module: non-empty records after the header."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return sum(1 for rec in csv.reader(fh) if rec) - 1


@lru_cache(maxsize=None)
def json_rows(path: str) -> tuple[dict, ...]:
    return tuple(json.loads(Path(path).read_text(encoding="utf-8")))


def street_files() -> list[str]:
    return sorted(str(p) for p in STREET.glob("*-street.csv"))


def api_files() -> list[str]:
    return sorted(str(p) for p in API.glob("*.json"))


def stop_files() -> list[str]:
    return sorted(str(p) for p in STOP.glob("*.csv"))


def has_coords(rec: dict) -> bool:
    return rec["Longitude"].strip() != "" and rec["Latitude"].strip() != ""


def api_key(rec: dict) -> str:
    return rec.get("persistent_id") or str(rec["id"])


def keyed(frame: pd.DataFrame) -> dict:
    """(file, row) -> record index of a loaded frame (before ``finish``)."""
    return {(f, int(r)): i for i, (f, r) in enumerate(zip(frame["_file"], frame["_row"]))}


def reject_keys(rej: pd.DataFrame) -> set:
    return {(f, int(r)) for f, r in zip(rej["file"], rej["row"])}


def assert_accounting_balances(acc: pd.DataFrame) -> None:
    total = acc["rows_loaded"] + acc["rows_filtered"] + acc["rows_rejected"]
    assert (acc["rows_read"] == total).all(), acc[acc["rows_read"] != total]


# --------------------------------------------------------------------------- shared loads

@pytest.fixture(scope="module")
def all_three(tmp_path_factory):
    """City street, Met API and City stop and search, all months, no filters (City listed first)."""
    return load(tmp_path_factory.mktemp("all"), [street(), api(), stop()])


@pytest.fixture(scope="module")
def met_only(tmp_path_factory):
    return load(tmp_path_factory.mktemp("met"), [api()])


@pytest.fixture(scope="module")
def city_analysed(tmp_path_factory):
    """The whole City street data analysed with no [study] area: the area is derived from the data."""
    from hotspots.pipeline import analyse
    # the normal approximation keeps Gi* quick; this test is about the study area, not Gi*
    cfg = load_config(write_config(tmp_path_factory.mktemp("city"), [street()],
                                   extra='\n[analysis]\ngi_inference = "normal"\n'))
    return analyse(cfg)


# --------------------------------------------------------------------------- 1. row accounting

def test_every_file_accounts_for_every_row_it_read(all_three):
    _, loaded = all_three
    acc = loaded.ledger.accounting(loaded.incidents)
    expected = {p: csv_line_count(p) for p in street_files() + stop_files()}
    expected.update({p: len(json_rows(p)) for p in api_files()})
    assert len(acc) == len(expected) == 24 + 42 + 24
    assert dict(zip(acc["path"], acc["rows_read"])) == expected
    assert_accounting_balances(acc)
    per = acc.groupby("source_id")[["rows_read", "rows_loaded", "rows_filtered", "rows_rejected"]].sum()
    assert per.loc["city"].tolist() == [18347, 17035, 0, 1219 + 93]
    assert per.loc["met"].tolist() == [22417, 21281, 0, 1008 + 128]
    assert per.loc["stop"].tolist() == [3739, 2394, 0, 1345]
    # a row is loaded, filtered or rejected: never two of them
    inc = set(keyed(loaded.incidents))
    rej = reject_keys(loaded.ledger.rejects)
    assert len(rej) == acc["rows_rejected"].sum() and not inc & rej


def test_accounting_balances_when_two_sources_read_the_same_file(tmp_path):
    month = str(STREET / "2018-01-city-of-london-street.csv")
    _, loaded = load(tmp_path, [street("city_violence", month, categories=["violent-crime"]),
                                street("city_asb", month, categories=["anti-social-behaviour"],
                                       evidence="community_report")], start="2018-01", end="2018-01")
    acc = loaded.ledger.accounting(loaded.incidents)
    assert acc["rows_read"].tolist() == [698, 698]
    assert_accounting_balances(acc)


# --------------------------------------------------------------------------- 2. police_uk_street

def test_street_month_only_dates_cover_their_whole_month(all_three):
    _, loaded = all_three
    city = loaded.incidents[loaded.incidents["source_id"] == "city"]
    assert len(city) == 17035
    assert set(city["date_precision"]) == {"month"}
    month = pd.to_datetime([csv_rows(f)[r - 1]["Month"] + "-01" for f, r in zip(city["_file"], city["_row"])])
    assert (city["occurred_from"].to_numpy() == month.to_numpy()).all()
    start, end = city["occurred_from"], city["occurred_to"]
    assert (end > start).all()
    assert (end.dt.to_period("M") == start.dt.to_period("M")).all()
    assert (end == start + pd.offsets.MonthEnd(0) + pd.Timedelta(hours=23, minutes=59, seconds=59)).all()


def test_street_locations_are_snap_points(all_three):
    _, loaded = all_three
    city = loaded.incidents[loaded.incidents["source_id"] == "city"]
    assert set(city["location_precision"]) == {"snap_point"}
    assert set(city["location_precision_m"]) == {200.0}


def test_street_rows_without_coordinates_are_rejected_naming_longitude_latitude(all_three):
    _, loaded = all_three
    no_coords = {(f, k) for f in street_files() for k, rec in enumerate(csv_rows(f), 1) if not has_coords(rec)}
    assert len(no_coords) == 1219
    assert 0.06 < len(no_coords) / 18347 < 0.08  # "~7 %" in PROVENANCE.md
    rej = loaded.ledger.rejects
    mine = rej[(rej["source_id"] == "city") & (rej["reason"] == "no coordinates")]
    assert reject_keys(mine) == no_coords
    assert set(mine["columns"]) == {"Longitude,Latitude"}


def test_street_asb_rows_have_no_crime_id_and_are_still_loaded(all_three):
    _, loaded = all_three
    asb = [(f, k) for f in street_files() for k, rec in enumerate(csv_rows(f), 1)
           if rec["Crime type"] == "Anti-social behaviour" and has_coords(rec)]
    no_id = [(f, k) for f in street_files() for k, rec in enumerate(csv_rows(f), 1)
             if rec["Crime ID"] == "" and has_coords(rec)]
    assert len(asb) == 2645 and sorted(asb) == sorted(no_id)
    city = loaded.incidents[loaded.incidents["source_id"] == "city"]
    loaded_asb = city[city["category"] == "anti-social-behaviour"]
    assert sorted(keyed(loaded_asb)) == sorted(asb)
    assert set(loaded_asb["source_ref"]) == {""}
    assert (city.loc[city["category"] != "anti-social-behaviour", "source_ref"] != "").all()


def test_street_bad_rows_are_rejected_with_reason_and_row_number(tmp_path):
    src = STREET / "2018-01-city-of-london-street.csv"
    with open(src, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header, real = reader.fieldnames, [next(reader) for _ in range(2)]
    crime, asb = dict(real[0]), dict(real[1])          # row 2 of the real file is ASB, no Crime ID
    assert asb["Crime ID"] == "" and asb["Crime type"] == "Anti-social behaviour"
    rows = [
        crime,                                                       # 1 loaded
        {**crime, "Longitude": "0", "Latitude": "0"},                # 2 zero coordinates
        {**crime, "Month": "January 2018"},                          # 3 unparseable date
        {**crime, "Crime type": "Fraud and forgery"},                # 4 unknown category
        asb,                                                         # 5 loaded, no Crime ID
        {**crime, "Longitude": "", "Latitude": ""},                  # 6 no coordinates
        {**crime, "Longitude": "n/a"},                               # 7 unparseable coordinates
        {**crime, "Latitude": "95.0"},                               # 8 out of range
        {**crime, "Longitude": "2.352222", "Latitude": "48.856614"}, # 9 Paris
        {**crime, "Crime type": ""},                                 # 10 no category
        {**crime, "Month": ""},                                      # 11 no date
        {**crime, "Longitude": "0.000000", "Latitude": "0.000000"},  # 12 zero, written with decimals
    ]
    fixture = tmp_path / "2018-01-fixture-street.csv"
    with open(fixture, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
    _, loaded = load(tmp_path, [street(path="2018-01-fixture-street.csv")], start="2018-01", end="2018-01")
    rej = loaded.ledger.rejects
    assert list(zip(rej["row"], rej["reason"], rej["columns"])) == [
        (2, "zero coordinates", "Longitude,Latitude"),
        (3, "unparseable date", "Month"),
        (4, "unknown category", "Crime type"),
        (6, "no coordinates", "Longitude,Latitude"),
        (7, "unparseable coordinates", "Longitude,Latitude"),
        (8, "coordinates out of range", "Longitude,Latitude"),
        (9, "outside Great Britain", "Longitude,Latitude"),
        (10, "no category", "Crime type"),
        (11, "no date", "Month"),
        (12, "zero coordinates", "Longitude,Latitude"),
    ]
    inc = loaded.incidents
    assert inc["_row"].tolist() == [1, 5]
    assert inc["source_ref"].tolist() == [crime["Crime ID"], ""]
    assert inc["category"].tolist() == ["other-theft", "anti-social-behaviour"]
    assert inc["incident_id"].tolist() == ["city:0:1", "city:0:5"]
    acc = loaded.ledger.accounting(inc)
    assert acc[["rows_read", "rows_loaded", "rows_filtered", "rows_rejected"]].iloc[0].tolist() == [12, 2, 0, 10]


def test_far_away_points_do_not_stretch_the_grid(city_analysed):
    import geopandas as gpd
    import shapely
    res = city_analysed
    lad = gpd.read_file(LAD)
    city_poly = lad.loc[lad["LAD22NM"] == "City of London"].geometry.iloc[0]
    cx0, cy0, cx1, cy1 = city_poly.bounds                      # about 2.9 km x 1.7 km
    g = res.grid
    gx0, gy0, gx1, gy1 = g.x0, g.y0, g.x0 + g.nx * g.cell, g.y0 + g.ny * g.cell
    # the grid hugs the data: within 2.5 km of the City's bounds on every side
    for grid_edge, city_edge in ((gx0, cx0), (gy0, cy0), (gx1, cx1), (gy1, cy1)):
        assert abs(grid_edge - city_edge) < 2500
    assert g.cell == 75.0 and (gx1 - gx0) < 6000 and (gy1 - gy0) < 4000

    # every row counted; the strays are rejects, not grid
    assert_accounting_balances(res.accounting)
    assert res.accounting["rows_read"].sum() == 18347
    assert res.accounting["rows_loaded"].sum() == len(res.incidents) == 16970
    rej = res.ledger.rejects
    outside = rej[rej["reason"].str.startswith("outside study area")]
    assert outside["reason"].value_counts().to_dict() == {
        "outside study area (stray point far from the rest)": 38,
        "outside study area (isolated from the main body of the data)": 27}
    assert set(outside["columns"]) == {"coordinates"}

    # independently: where is every row with coordinates, and how far from the City?
    pts = [(f, k, float(rec["Longitude"]), float(rec["Latitude"])) for f in street_files()
           for k, rec in enumerate(csv_rows(f), 1) if has_coords(rec)]
    x, y = WGS84_TO_BNG.transform(np.array([p[2] for p in pts]), np.array([p[3] for p in pts]))
    dist = shapely.distance(city_poly, shapely.points(x, y))
    far = {(p[0], p[1]) for p, d in zip(pts, dist) if d > 5000}
    assert len(far) == 24                                      # Derbyshire, Essex, Surrey, ...
    assert float(dist.max()) > 200_000                         # one point in Derbyshire Dales
    assert far <= reject_keys(outside)
    in_city = {(p[0], p[1]) for p, d in zip(pts, dist) if d == 0}
    assert not in_city & reject_keys(outside)                  # nothing inside the City is cut
    cut = np.array([(p[0], p[1]) in reject_keys(outside) for p in pts])
    assert float(dist[cut].min()) > 500                        # the nearest cut point is 631 m outside the City
    # kept incidents lie within 2.5 km of the City
    assert float(shapely.distance(city_poly, shapely.points(res.incidents["x"], res.incidents["y"])).max()) < 2500


def test_rows_in_neighbouring_boroughs_lsoas_are_kept(all_three, city_analysed):
    _, loaded = all_three
    neighbours = {(f, k) for f in street_files() for k, rec in enumerate(csv_rows(f), 1)
                  if has_coords(rec) and not rec["LSOA name"].startswith("City of London")}
    # PROVENANCE.md says "about 1,300"; the example data has 980 such rows with coordinates
    assert len(neighbours) == 980
    city_loaded = set(keyed(loaded.incidents[loaded.incidents["source_id"] == "city"]))
    rej = loaded.ledger.rejects
    rej = rej[rej["source_id"] == "city"]
    gone = reject_keys(rej) & neighbours
    assert set(rej.loc[[k in gone for k in zip(rej["file"], rej["row"])], "reason"].str[:12]) <= {"duplicate of"}
    assert len(neighbours & city_loaded) == 980 - len(gone) == 971
    # after the derived study area: only the far ones go
    res = city_analysed
    rej2 = res.ledger.rejects
    outside = reject_keys(rej2[rej2["reason"].str.startswith("outside study area")])
    assert outside <= neighbours                                # no City LSOA row is cut
    assert len(outside) == 65 and not outside & gone
    kept = neighbours - reject_keys(rej2)
    assert len(kept) == 980 - 9 - 65 == 906


# --------------------------------------------------------------------------- 3. police_uk_api

def test_api_category_slugs_map_to_the_taxonomy(met_only):
    _, loaded = met_only
    inc = loaded.incidents
    slugs = [json_rows(f)[r - 1]["category"] for f, r in zip(inc["_file"], inc["_row"])]
    assert inc["source_category"].tolist() == slugs
    assert inc["category"].tolist() == [CATEGORY_MAPS["police_uk_slug"][s] for s in slugs]
    assert set(inc["category"]) <= set(TAXONOMY)
    everything = collections.Counter(rec["category"] for f in api_files() for rec in json_rows(f))
    assert len(everything) == 14 and everything["violent-crime"] == 3510
    assert not loaded.ledger.rejects["reason"].str.contains("category").any()
    sev = inc["severity"].astype(int)
    assert (sev == inc["category"].map(lambda c: TAXONOMY[c]["severity"])).all()


def test_api_string_coordinates_become_bng_within_5_m(met_only):
    _, loaded = met_only
    inc = loaded.incidents
    recs = [json_rows(f)[r - 1]["location"] for f, r in zip(inc["_file"], inc["_row"])]
    assert all(isinstance(loc["longitude"], str) and isinstance(loc["latitude"], str) for loc in recs)
    lon = np.array([float(loc["longitude"]) for loc in recs])
    lat = np.array([float(loc["latitude"]) for loc in recs])
    ex, ny = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True).transform(lon, lat)
    err = np.hypot(inc["x"].to_numpy() - ex, inc["y"].to_numpy() - ny)
    assert len(err) == 21409 and float(err.max()) < 5.0
    # the six wards around the City: all within about 3 km of it
    assert 526_000 < inc["x"].min() and inc["x"].max() < 536_000
    assert 177_000 < inc["y"].min() and inc["y"].max() < 184_000
    assert set(inc["location_precision"]) == {"snap_point"}
    assert set(inc["date_precision"]) == {"month"}


def test_api_source_ref_is_persistent_id_falling_back_to_id(met_only):
    _, loaded = met_only
    all_recs = [rec for f in api_files() for rec in json_rows(f)]
    empty = [rec for rec in all_recs if not rec.get("persistent_id")]
    assert len(all_recs) == 22417 and len(empty) == 5616     # PROVENANCE.md: 5,616
    inc = loaded.incidents
    recs = [json_rows(f)[r - 1] for f, r in zip(inc["_file"], inc["_row"])]
    assert inc["source_ref"].tolist() == [api_key(rec) for rec in recs]
    from_id = [rec for rec in recs if not rec.get("persistent_id")]
    assert (inc["source_ref"] != "").all()
    # the empty-persistent_id records lose only their cross-ward repeats
    empty_repeats = sum(n - 1 for n in collections.Counter(str(r["id"]) for r in empty).values())
    assert len(from_id) == 5616 - empty_repeats == 5551


def test_api_records_repeated_across_ward_files_are_merged(met_only):
    _, loaded = met_only
    first: dict[str, str] = {}
    repeats = []
    id_files = collections.defaultdict(set)
    for fidx, f in enumerate(api_files()):
        for k, rec in enumerate(json_rows(f), 1):
            key = api_key(rec)
            id_files[rec["id"]].add(f)
            if key in first:
                repeats.append((f, k, first[key]))
            else:
                first[key] = f"met:{fidx}:{k}"
    across = [i for i, files in id_files.items() if len(files) > 1]
    assert len(across) == 358                                  # PROVENANCE.md: 358 ids in two ward files
    assert len(first) == 21409 and len(repeats) == 22417 - 21409 == 1008
    rej = loaded.ledger.rejects
    dups = rej[rej["reason"].str.startswith("duplicate of ")]
    assert len(dups) == 1008 and len(rej) == 1008
    assert sorted(zip(dups["file"], dups["row"], dups["reason"])) == sorted(
        (f, k, "duplicate of " + target) for f, k, target in repeats)
    assert set(dups["columns"]) == {"source_ref"}
    assert loaded.incidents["source_ref"].is_unique


def test_a_crime_in_both_forces_is_counted_once(all_three):
    _, loaded = all_three
    city_first: dict[str, str] = {}
    for fidx, f in enumerate(street_files()):
        for k, rec in enumerate(csv_rows(f), 1):
            if rec["Crime ID"] and has_coords(rec):
                city_first.setdefault(rec["Crime ID"], f"city:{fidx}:{k}")
    met = [(f, k, rec["persistent_id"]) for f in api_files() for k, rec in enumerate(json_rows(f), 1)
           if rec["persistent_id"] in city_first]
    assert len({m[2] for m in met}) == len(met) == 128       # PROVENANCE.md: 128
    rej = loaded.ledger.rejects
    cross = rej[(rej["source_id"] == "met") & rej["reason"].str.startswith("duplicate of city:")]
    assert sorted(zip(cross["file"], cross["row"], cross["reason"])) == sorted(
        (f, k, "duplicate of " + city_first[pid]) for f, k, pid in met)
    refs = loaded.incidents["source_ref"].dropna()
    assert refs[refs != ""].is_unique


def test_a_crime_in_both_forces_is_kept_from_the_first_listed_source(tmp_path):
    months = ["2017-12", "2018-01", "2018-02", "2018-03", "2018-04", "2018-05", "2018-06"]
    folder = tmp_path / "street"
    folder.mkdir()
    for m in months:
        shutil.copy(STREET / f"{m}-city-of-london-street.csv", folder)
    _, loaded = load(tmp_path, [api(), street(path="street/*-street.csv")], start="2017-12", end="2018-06")
    met_keys = {api_key(rec) for f in api_files() for rec in json_rows(f)}
    city_files = sorted(str(p) for p in folder.glob("*.csv"))
    expected = [(f, k) for f in city_files for k, rec in enumerate(csv_rows(f), 1)
                if has_coords(rec) and rec["Crime ID"] in met_keys]
    # 128 crimes; one of them is listed twice in the City's 2017-12 file: both copies go
    assert len(expected) == 129
    assert len({csv_rows(f)[k - 1]["Crime ID"] for f, k in expected}) == 128
    rej = loaded.ledger.rejects
    cross = rej[(rej["source_id"] == "city") & rej["reason"].str.startswith("duplicate of met:")]
    assert sorted(zip(cross["file"], cross["row"])) == sorted(expected)


# --------------------------------------------------------------------------- 4. police_uk_stop_search

@pytest.fixture(scope="module")
def stop_loaded(tmp_path_factory):
    return load(tmp_path_factory.mktemp("stop"), [stop()])


def test_stop_search_is_police_activity_weighted_zero(stop_loaded, tmp_path):
    from hotspots.weight import apply_weights, weight_table
    cfg, loaded = stop_loaded
    inc = apply_weights(finish(loaded.incidents), weight_table(cfg))
    assert len(inc) == 2394
    assert set(inc["evidence"]) == {"police_activity"}
    assert set(inc["category"]) == {"stop-and-search"}
    assert (inc["weight"] == 0.0).all()
    # raising the evidence weight does not make stop and search a risk layer
    cfg2 = load_config(write_config(tmp_path, [stop()], extra="\n[weights]\npolice_activity = 1.0\n"))
    assert (apply_weights(inc, weight_table(cfg2))["weight"] == 0.0).all()


def test_stop_search_personal_columns_never_survive(stop_loaded):
    _, loaded = stop_loaded
    out = finish(loaded.incidents)
    assert list(out.columns) == FIELDS and len(FIELDS) == 20
    personal_values = {rec[c] for f in stop_files() for rec in csv_rows(f) for c in PERSONAL if rec[c]}
    assert {"Male", "Female", "White", "18-24"} <= personal_values
    texts = set(np.unique(out.select_dtypes(exclude=["number", "datetime"]).astype(str).to_numpy()))
    assert not texts & personal_values
    assert set(out["source_category"]) <= {rec["Object of search"] for f in stop_files() for rec in csv_rows(f)}


def test_stop_search_iso_datetimes_become_local_minutes(stop_loaded):
    _, loaded = stop_loaded
    inc = loaded.incidents
    london = ZoneInfo("Europe/London")
    raw = [csv_rows(f)[r - 1]["Date"] for f, r in zip(inc["_file"], inc["_row"])]
    assert all(t.endswith("+00:00") for t in raw)
    local = [datetime.fromisoformat(t).astimezone(london).replace(tzinfo=None) for t in raw]
    assert inc["occurred_from"].tolist() == [pd.Timestamp(t) for t in local]
    assert (inc["occurred_to"] == inc["occurred_from"]).all()
    assert set(inc["date_precision"]) == {"minute"}
    shifted = sum(pd.Timestamp(t) != pd.Timestamp(r[:19]) for t, r in zip(local, raw))
    assert shifted == 1412                                     # rows stamped during British Summer Time
    first = inc[(inc["_file"] == str(STOP / "2018-06-city-of-london-stop-and-search.csv")) & (inc["_row"] == 1)]
    assert first["occurred_from"].iloc[0] == pd.Timestamp("2018-06-01 04:11:48")  # 03:11:48 UTC


# --------------------------------------------------------------------------- 5. the allow-list

def test_enforce_keeps_exactly_the_schema_fields():
    frame = pd.DataFrame({
        "incident_id": ["a:0:1", "a:0:2"], "source_id": "a", "evidence": "recorded_crime",
        "category": "robbery", "occurred_from": pd.Timestamp("2018-01-01"), "date_precision": "month",
        "x": [532000.0, 532100.0], "y": [181000.0, 181100.0], "location_precision": "snap_point",
        "Gender": ["Male", "Female"], "Self-defined ethnicity": "White", "Age range": "18-24",
        "Officer-defined ethnicity": "White", "name": ["A Person", "B Person"], "_row": [1, 2], "_file": "f.csv",
    })
    out = enforce(frame)
    assert list(out.columns) == FIELDS
    assert out["source_ref"].tolist() == ["", ""] and out["weight"].isna().all()
    assert out["severity"].dtype == "Int64" and out["occurred_to"].isna().all()
    with pytest.raises(ValueError, match="'x'"):
        enforce(frame.drop(columns=["x"]))
    with pytest.raises(ValueError, match="enum"):
        enforce(frame.assign(evidence="gossip"))


# --------------------------------------------------------------------------- 6. filters

def test_category_filter_counts_other_categories_as_filtered(tmp_path):
    _, loaded = load(tmp_path, [street(categories=["robbery"])])
    valid = [(f, k, rec) for f in street_files() for k, rec in enumerate(csv_rows(f), 1) if has_coords(rec)]
    robbery = [(f, k, rec) for f, k, rec in valid if rec["Crime type"] == "Robbery"]
    robbery_dups = len(robbery) - len({rec["Crime ID"] for _, _, rec in robbery})
    fil = loaded.ledger.filtered
    assert fil["reason"].value_counts().to_dict() == {"category not selected": 17128 - 249}
    assert {(f, int(r)) for f, r in zip(fil["file"], fil["row"])} == {
        (f, k) for f, k, rec in valid if rec["Crime type"] != "Robbery"}
    assert len(valid) == 17128 and len(robbery) == 249
    assert len(loaded.incidents) == 249 - robbery_dups == 244
    assert set(loaded.incidents["category"]) == {"robbery"}
    acc = loaded.ledger.accounting(loaded.incidents)
    assert_accounting_balances(acc)
    assert acc["rows_filtered"].sum() == 16879 and acc["rows_rejected"].sum() == 1219 + robbery_dups
    assert not reject_keys(loaded.ledger.rejects) & {(f, int(r)) for f, r in zip(fil["file"], fil["row"])}


def test_a_sources_period_filters_its_records_outside_it(tmp_path):
    # Hostile audit: period = "2018-03:2018-03" on a source whose files hold two years loaded every month;
    # the pooled rule then weighed each of its records 24 times (study months / covered months), with no word.
    _, loaded = load(tmp_path, [street(period="2018-03:2018-03")])
    fil = loaded.ledger.filtered
    assert set(fil["reason"]) == {"outside source period"}
    other = sum(1 for f in street_files() for rec in csv_rows(f) if has_coords(rec) and rec["Month"] != "2018-03")
    assert len(fil) == other == 16462
    assert (loaded.incidents["occurred_from"] == pd.Timestamp("2018-03-01")).all()


def test_one_month_study_period_filters_the_other_months(tmp_path):
    _, loaded = load(tmp_path, [street(), api()], start="2018-03", end="2018-03")
    fil = loaded.ledger.filtered
    assert set(fil["reason"]) == {"outside study period"}
    city_other = sum(1 for f in street_files() for rec in csv_rows(f) if has_coords(rec) and rec["Month"] != "2018-03")
    met_other = sum(1 for f in api_files() for rec in json_rows(f) if rec["month"] != "2018-03")
    assert fil.groupby("source_id").size().to_dict() == {"city": city_other, "met": met_other}
    assert (city_other, met_other) == (17128 - 666, 22417 - 3078) == (16462, 19339)
    inc = loaded.incidents
    assert (inc["occurred_from"] == pd.Timestamp("2018-03-01")).all()
    assert (inc["occurred_to"] == pd.Timestamp("2018-03-31 23:59:59")).all()
    march = str(STREET / "2018-03-city-of-london-street.csv")
    recs = csv_rows(march)
    valid = [r for r in recs if has_coords(r)]
    ids = [r["Crime ID"] for r in valid if r["Crime ID"]]
    dups = len(ids) - len(set(ids))
    assert (len(recs), len(valid), dups) == (707, 666, 4)
    acc = loaded.ledger.accounting(inc).set_index("path")
    assert_accounting_balances(acc)
    assert acc.loc[march, ["rows_read", "rows_loaded", "rows_filtered", "rows_rejected"]].tolist() == [
        707, 666 - dups, 0, 707 - 666 + dups]
    assert acc["rows_filtered"].sum() == city_other + met_other
    # the filtered rows are not rejects
    assert not reject_keys(loaded.ledger.rejects) & {(f, int(r)) for f, r in zip(fil["file"], fil["row"])}


# --------------------------------------------------------------------------- 7. errors

def test_missing_required_column_names_the_file_and_the_column(tmp_path):
    src = STREET / "2018-01-city-of-london-street.csv"
    bad = tmp_path / "2018-01-no-type-street.csv"
    with open(src, encoding="utf-8-sig", newline="") as fh, open(bad, "w", encoding="utf-8", newline="") as out:
        reader = csv.DictReader(fh)
        cols = [c for c in reader.fieldnames if c != "Crime type"]
        w = csv.DictWriter(out, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(reader)
    with pytest.raises(UserError) as exc:
        load(tmp_path, [street(path=bad.name)], start="2018-01", end="2018-01")
    assert str(bad) in str(exc.value) and "'Crime type'" in str(exc.value)
    assert exc.value.file == str(bad) and exc.value.column == "Crime type"


def test_missing_nested_json_column_names_the_file_and_the_column(tmp_path):
    recs = [dict(rec) for rec in json_rows(api_files()[0])[:3]]
    for rec in recs:
        rec["location"] = {k: v for k, v in rec["location"].items() if k != "latitude"}
    bad = tmp_path / "no_latitude.json"
    bad.write_text(json.dumps(recs), encoding="utf-8")
    with pytest.raises(UserError) as exc:
        load(tmp_path, [api(path=bad.name)], start="2017-12", end="2017-12")
    assert str(bad) in str(exc.value) and "'location.latitude'" in str(exc.value)


def test_path_matching_no_file_names_the_source(tmp_path):
    with pytest.raises(UserError) as exc:
        load(tmp_path, [street(), api("met_wards", path="nowhere/*.json")])
    assert "'met_wards'" in str(exc.value) and "nowhere/*.json" in str(exc.value)


def test_unknown_schema_name_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="unknown schema 'police_uk_streets'"):
        load(tmp_path, [{"id": "city", "path": STREET_GLOB, "schema": "police_uk_streets"}])


def test_dedupe_keys_tell_references_apart_and_mark_none():
    from hotspots.load.dedupe import dedupe_keys
    refs = pd.Series(["street:abc", "street:abd", "", None, "street:abc", "api:abc"])
    a, b = dedupe_keys(refs, len(refs))
    pairs = list(zip(a.tolist(), b.tolist()))
    assert pairs[0] == pairs[4]                               # the same reference, the same key
    assert len({pairs[0], pairs[1], pairs[5]}) == 3           # a letter or the scope apart: different keys
    assert pairs[2] == pairs[3] == (0, 0)                     # no reference: never merged
    assert dedupe_keys(None, 2)[0].tolist() == [0, 0]


@pytest.mark.parametrize("shared_first_hash", [False, True])
def test_duplicates_keep_each_references_first_record(shared_first_hash):
    """Records merge only when both hashes of their reference agree; the first in order is kept and the
    later ones point to it. Two references whose first hashes happen to agree (sorted by both then)
    stay apart."""
    from hotspots.load.dedupe import duplicates
    from hotspots.load.ledger import Ledger
    a = np.array([5, 9, 5, 0, 9, 5, 7], dtype=np.uint64)
    b = np.array([1, 2, 3 if shared_first_hash else 1, 0, 2, 1, 4], dtype=np.uint64)
    inc = pd.DataFrame({"source_id": "city", "_file": "f.csv", "_row": np.arange(2, 9), "incident_id":
                        [f"i{k}" for k in range(7)], "_dedupe_a": a, "_dedupe_b": b})
    ledger = Ledger()
    dup = duplicates(inc, ledger)
    later = {4: "i1", 5: "i0"} if shared_first_hash else {2: "i0", 4: "i1", 5: "i0"}
    assert np.flatnonzero(dup).tolist() == sorted(later)
    rej = ledger.rejects
    assert rej["row"].tolist() == [k + 2 for k in sorted(later)]
    assert rej["reason"].tolist() == [f"duplicate of {later[k]}" for k in sorted(later)]


def test_duplicates_equal_pandas_on_many_references_with_shared_first_hashes():
    """20,000 records of 3,000 references (some sharing a first hash, some records without one): the
    records merged are pandas' ``duplicated`` of both hashes, each pointing to its reference's first."""
    from hotspots.load.dedupe import duplicates
    from hotspots.load.ledger import Ledger
    rng = np.random.default_rng(8)
    ref_a = rng.integers(1, 1_500, 3_000).astype(np.uint64)          # about half share a first hash
    ref_b = rng.integers(1, 2**63, 3_000).astype(np.uint64)
    pick = rng.integers(0, 3_000, 20_000)
    a, b = ref_a[pick], ref_b[pick]
    a[rng.random(20_000) < 0.05] = 0
    b[a == 0] = 0
    inc = pd.DataFrame({"source_id": "city", "_file": "f.csv", "_row": np.arange(20_000),
                        "incident_id": [f"i{k}" for k in range(20_000)], "_dedupe_a": a, "_dedupe_b": b})
    ledger = Ledger()
    dup = duplicates(inc, ledger)
    has = (a != 0) | (b != 0)
    want = pd.DataFrame({"a": a, "b": b}).duplicated(keep="first").to_numpy() & has
    assert dup.tolist() == want.tolist() and want.sum() > 10_000
    first = pd.Series(np.arange(20_000)).groupby([a, b]).transform("first").to_numpy()
    rej = ledger.rejects
    assert rej["row"].tolist() == np.flatnonzero(want).tolist()
    assert rej["reason"].tolist() == [f"duplicate of i{first[k]}" for k in np.flatnonzero(want)]
