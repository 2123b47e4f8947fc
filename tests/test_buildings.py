"""Key buildings: loaders on real files, the profile's statistics on constructed layouts, and the real example.

Loader data: the example's copies of the London Schools Atlas and TfL stations
(examples/london_city_fringe/data/buildings) and the fixtures cut from the NHS
Choices hospitals, Trafford care homes and OS Code-Point Open files
(tests/fixtures/buildings, see its README). Expected numbers are counted here
independently (csv module, pyproj, scipy's distributions, brute-force distances).
"""
from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer
from scipy import stats

from hotspots.config import KeyBuildings
from hotspots.errors import UserError
from hotspots.load.buildings import load_buildings
from hotspots.load.ledger import Ledger
from hotspots.load.readers import read_table
from hotspots.profile import (bh_qvalues, building_types, catchment_areas, garwood_interval, profile_buildings,
                              time_note)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "london_city_fringe"
SCHOOLS = EXAMPLE / "data" / "buildings" / "all_schools_xy_2016.csv"
STATIONS = EXAMPLE / "data" / "buildings" / "tfl_stations_20220221.csv"
FIX = ROOT / "tests" / "fixtures" / "buildings"
HOSPITALS = FIX / "nhs_choices_hospitals_sample.csv"
CARE_HOMES = FIX / "trafford_care_homes_sample.csv"
CODEPOINT = FIX / "codepoint" / "*.csv"
WGS84_TO_BNG = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True)
EXAMPLE_LAYERS = [
    KeyBuildings("schools", "data/buildings/all_schools_xy_2016.csv", "london_schools_atlas", "school",
                 [100.0, 250.0, 500.0]),
    KeyBuildings("stations", "data/buildings/tfl_stations_20220221.csv", "tfl_stations", "station",
                 [100.0, 250.0, 500.0]),
]



def risk_in_own_coverage(result) -> pd.DataFrame:
    """The run's risk records (weight above zero) whose point lies in their own source's coverage (every record
    of a source without one): what the buildings are profiled on, found here point by point with shapely."""
    risk = result.incidents[result.incidents["weight"] > 0].reset_index(drop=True)
    geoms = dict(zip(result.coverage["source_id"].astype(str), result.coverage.geometry.values))
    sid = risk["source_id"].astype(str).to_numpy()
    own = np.ones(len(risk), dtype=bool)
    for s in set(sid) & set(geoms):
        m = sid == s
        own[m] = shapely.intersects_xy(geoms[s], risk["x"].to_numpy()[m], risk["y"].to_numpy()[m])
    return risk[own].reset_index(drop=True)

def load(cfg, *layers: KeyBuildings):
    """load_buildings on ``cfg`` with only ``layers``; returns (buildings, accounting, ledger)."""
    ledger = Ledger()
    b, acc = load_buildings(dataclasses.replace(cfg, key_buildings=list(layers)), ledger)
    return b, acc, ledger


def csv_rows(path: Path, encoding: str = "utf-8-sig", delimiter: str = ",") -> list[dict]:
    with open(path, encoding=encoding, newline="") as fh:
        return list(csv.DictReader(fh, delimiter=delimiter))


# --------------------------------------------------------------------------- loaders on real data

def test_schools_atlas_accounts_for_every_row_duplicates_and_closed_schools(example_config):
    rows = csv_rows(SCHOOLS)
    closed = sum(r["STATUS"] == "Closed" for r in rows)
    seen, dups = set(), 0
    for r in rows:
        key = (r["URN"], r["EASTING"], r["NORTHING"])
        dups += key in seen and r["STATUS"] != "Closed"   # a closed school's second row is filtered, not a reject
        seen.add(key)
    b, acc, ledger = load(example_config, EXAMPLE_LAYERS[0])
    assert (len(rows), closed, dups) == (240, 9, 19)
    assert acc.loc[0, ["rows_read", "rows_loaded", "rows_filtered", "rows_rejected"]].tolist() == [240, 212, 9, 19]
    assert len(b) == 240 - 9 - 19 and b["building_id"].is_unique
    rej = ledger.rejects
    assert set(rej["reason"].str.replace(r"\d+", "N", regex=True)) == {"duplicate of row N"}
    # Row 4 repeats row 3 (City of London School for Girls, URN 100001), 1-based data rows.
    first = rej.iloc[0]
    assert (first["row"], first["reason"]) == (4, "duplicate of row 3")
    assert rows[2]["URN"] == rows[3]["URN"] == "100001"
    assert set(ledger.filtered["reason"]) == {"school closed"}


def test_schools_atlas_uses_easting_northing_and_repairs_the_mangled_age(example_config):
    b, _, _ = load(example_config, EXAMPLE_LAYERS[0])
    rows = {r["URN"]: r for r in csv_rows(SCHOOLS)}
    for _, bld in b.iterrows():
        src = rows[bld["building_id"].split(":")[1]]
        assert (bld["x"], bld["y"]) == (float(src["EASTING"]), float(src["NORTHING"]))
    assert set(b["type"]) == {"school"} and set(b["location_from"]) == {"en"}
    girls = b.set_index("building_id").loc["schools:100001"]
    assert rows["100001"]["AGE"] == "18-Jul" and girls["age_range"] == "7-18"
    assert rows["100235"]["AGE"] == "11-Mar" and b.set_index("building_id").loc["schools:100235", "age_range"] == "3-11"


def test_blank_cells_holding_one_space_are_read_as_blank():
    raw_text = SCHOOLS.read_text(encoding="utf-8-sig")
    assert ", ," in raw_text
    raw = read_table(SCHOOLS, {"format": "csv"})
    rows = csv_rows(SCHOOLS)
    for col, blanks in (("WEBLINK", 57), ("map_icon", 78)):
        assert [r[col] for r in rows].count(" ") == (raw[col] == "").sum() == blanks
        assert not raw[col].str.isspace().any()


def test_schools_lon_lat_reprojected_lie_within_metres_of_their_easting_northing(example_config):
    forced = dataclasses.replace(EXAMPLE_LAYERS[0], options={"coordinates": "lonlat"})
    b, _, _ = load(example_config, forced)
    rows = {r["URN"]: r for r in csv_rows(SCHOOLS)}
    e = np.array([float(rows[i.split(":")[1]]["EASTING"]) for i in b["building_id"]])
    n = np.array([float(rows[i.split(":")[1]]["NORTHING"]) for i in b["building_id"]])
    d = np.hypot(b["x"].to_numpy() - e, b["y"].to_numpy() - n)
    assert set(b["location_from"]) == {"lonlat"}
    # pyproj without OSTN15 is ~2 m off; the integer EASTING/NORTHING add up to 0.7 m.
    assert np.median(d) < 4 and (d < 8).sum() == len(d) - 1
    # The one exception is a quirk of the source (its lon/lat sit 81 m away), hence EASTING/NORTHING first.
    assert b.loc[d >= 8, "name"].tolist() == ["Queensbridge Primary School"] and 80 < d.max() < 82


def test_tfl_stations_xy_are_osgb36_not_wgs84(example_config):
    b, acc, ledger = load(example_config, EXAMPLE_LAYERS[1])
    rows = csv_rows(STATIONS)
    assert len(rows) == 69 and acc.loc[0, ["rows_loaded", "rows_rejected"]].tolist() == [69, 0]
    assert b["x"].tolist() == [float(r["EASTING"]) for r in rows]
    forced, _, _ = load(example_config, dataclasses.replace(EXAMPLE_LAYERS[1], options={"coordinates": "lonlat"}))
    d = np.hypot(forced["x"].to_numpy() - b["x"].to_numpy(), forced["y"].to_numpy() - b["y"].to_numpy())
    assert (d < 1.0).sum() == 68 and forced.loc[d >= 1.0, "name"].tolist() == ["Liverpool Street NR"]
    # Read as WGS84, as labelled, the same x/y land about 125 m from the stations.
    wx, wy = WGS84_TO_BNG.transform([float(r["x"]) for r in rows], [float(r["y"]) for r in rows])
    dw = np.hypot(np.array(wx) - b["x"].to_numpy(), np.array(wy) - b["y"].to_numpy())
    assert 120 < np.median(dw) < 130


def test_nhs_hospitals_cp1252_pilcrow_delimited_scientific_notation_and_the_row_without_latitude(example_config):
    layer = KeyBuildings("hospitals", str(HOSPITALS), "nhs_hospitals")
    b, acc, ledger = load(example_config, layer)
    assert acc.loc[0, ["rows_read", "rows_loaded", "rows_filtered", "rows_rejected"]].tolist() == [12, 11, 0, 1]
    rej = ledger.rejects
    assert rej[["row", "reason", "columns"]].values.tolist() == [[11, "no coordinates", "Longitude,Latitude"]]
    rows = csv_rows(HOSPITALS, encoding="cp1252", delimiter="¬")
    assert rows[10]["OrganisationName"] == "Noble's Hospital" and rows[10]["Latitude"] == ""
    assert "Guy's Hospital" in set(b["name"]) and "\xa0" in rows[4]["Fax"]
    # Scientific notation: The Royal London Hospital's longitude, parsed and reprojected.
    royal = rows[6]
    assert royal["Longitude"] == "-5.9213317930698395E-2"
    ex, ey = WGS84_TO_BNG.transform(-0.059213317930698395, float(royal["Latitude"]))
    got = b.set_index("name").loc["The Royal London Hospital"]
    assert abs(got["x"] - ex) < 1e-6 and abs(got["y"] - ey) < 1e-6
    # The NHS coordinates are postcode centroids: within a few metres of Code-Point's E/N for E1 1BZ.
    assert math.hypot(got["x"] - 534753, got["y"] - 181798) < 3
    assert set(b["type"]) == {"hospital"} and b["building_id"].iloc[0] == "hospitals:17989"


def test_nhs_hospitals_read_as_utf8_is_a_user_error_naming_the_file(example_config, tmp_path):
    schema = tmp_path / "hosp_utf8.json"
    import json
    spec = json.loads((ROOT / "data_schemas" / "nhs_hospitals.json").read_text(encoding="utf-8"))
    spec["reader"]["encoding"] = "utf-8"
    schema.write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(UserError, match="not utf-8 text") as err:
        load(example_config, KeyBuildings("h", str(HOSPITALS), str(schema)))
    assert err.value.file == str(HOSPITALS)


def test_hospital_without_coordinates_is_looked_up_by_postcode_and_not_found(example_config):
    layer = KeyBuildings("hospitals", str(HOSPITALS), "nhs_hospitals", options={"postcodes": str(CODEPOINT)})
    _, _, ledger = load(example_config, layer)
    assert ledger.rejects[["row", "reason", "columns"]].values.tolist() == [[11, "postcode not found",
                                                                           "Postcode"]]


def test_cqc_care_homes_repair_the_area_code_typo(example_config):
    rows = csv_rows(CARE_HOMES)
    assert {r["area_code"] for r in rows} == {"E0800009"}
    b, acc, _ = load(example_config, KeyBuildings("care", str(CARE_HOMES), "cqc_care_homes"))
    assert acc.loc[0, ["rows_read", "rows_loaded", "rows_rejected"]].tolist() == [8, 8, 0]
    assert set(b["area_code"]) == {"E08000009"} and set(b["type"]) == {"care_home"}
    ex, ey = WGS84_TO_BNG.transform(float(rows[0]["lon"]), float(rows[0]["lat"]))
    assert b["building_id"].iloc[0] == "care:" + rows[0]["cqc_id"]
    assert abs(b["x"].iloc[0] - ex) < 1e-6 and abs(b["y"].iloc[0] - ey) < 1e-6


def test_care_homes_by_postcode_with_a_code_point_file(example_config, tmp_path):
    # A constructed Code-Point file (no header, 7-character padded postcodes) holding two of the postcodes.
    (tmp_path / "m.csv").write_text('"M41 5BU",10,375800,394600,"E92000001","","","","E08000009","E05000001"\n'
                                    '"WA156SQ",10,377400,389200,"E92000001","","","","E08000009","E05000002"\n',
                                    encoding="utf-8")
    layer = KeyBuildings("care", str(CARE_HOMES), "cqc_care_homes",
                         options={"coordinates": "postcode", "postcodes": str(tmp_path / "*.csv")})
    b, acc, ledger = load(example_config, layer)
    assert acc.loc[0, ["rows_loaded", "rows_rejected"]].tolist() == [2, 6]
    assert b[["x", "y"]].values.tolist() == [[375800.0, 394600.0], [377400.0, 389200.0]]
    assert set(b["location_from"]) == {"postcode"}
    rows = csv_rows(CARE_HOMES)
    assert ledger.rejects["reason"].tolist() == ["postcode not found"] * len(rows[2:])


def test_care_homes_by_postcode_with_an_ons_postcode_directory_file(example_config, tmp_path):
    # Hostile audit: the ONSPD file the config's [geocoding] postcodes reads was read here as Code-Point's
    # columns 0, 2 and 3 (pcd, pcds, dointr): every building 'postcode not found', with no word.
    (tmp_path / "onspd.csv").write_text("pcd,pcd2,pcds,dointr,doterm,oseast1m,osnrth1m,osgrdind\n"
                                        "M41 5BU,M41  5BU,M41 5BU,198001,,375800,394600,1\n"
                                        "WA156SQ,WA15 6SQ,WA15 6SQ,198001,,377400,389200,1\n", encoding="utf-8")
    layer = KeyBuildings("care", str(CARE_HOMES), "cqc_care_homes",
                         options={"coordinates": "postcode", "postcodes": str(tmp_path / "*.csv")})
    b, acc, _ = load(example_config, layer)
    assert acc.loc[0, ["rows_loaded", "rows_rejected"]].tolist() == [2, 6]
    assert b[["x", "y"]].values.tolist() == [[375800.0, 394600.0], [377400.0, 389200.0]]


def test_a_layer_that_loses_every_row_fails_naming_the_reason(example_config, tmp_path):
    # Hostile audit: care homes looked up in a postcodes file that holds none of theirs were all 'postcode
    # not found', and validate and run went on with exit 0 and the layer empty.
    (tmp_path / "m.csv").write_text('"ZZ991ZZ",10,375800,394600,"E92000001","","","","E08000009","E05000001"\n',
                                    encoding="utf-8")
    layer = KeyBuildings("care", str(CARE_HOMES), "cqc_care_homes",
                         options={"coordinates": "postcode", "postcodes": str(tmp_path / "*.csv")})
    with pytest.raises(UserError) as exc:
        load(example_config, layer)
    assert ("[[key_buildings]] 'care' lost every one of its 8 rows, 8 of them to one reason: postcode not found "
            "(column ") in str(exc.value)


# --------------------------------------------------------------------------- generic points

def test_generic_points_csv_with_lon_lat_postcode_and_overridden_columns(example_config, tmp_path):
    path = tmp_path / "youth.csv"
    path.write_text("Site,Kind,Postcode,lon,lat\n"
                    "Hub <b>One</b>,youth_centre,,-0.0977,51.5204\n"
                    "Hostel A,hostel,ec1a 1aa,,\n"
                    "Hostel B,,E1  6AN,,\n"
                    "Nowhere,hostel,XX1 1XX,,\n"
                    ",hostel,,-0.09,51.51\n"
                    "Bad,hostel,,abc,51.5\n", encoding="utf-8")
    layer = KeyBuildings("partners", str(path), "generic_points",
                         options={"name_column": "Site", "type_column": "Kind", "postcodes": str(CODEPOINT)})
    b, acc, ledger = load(example_config, layer)
    assert acc.loc[0, ["rows_read", "rows_loaded", "rows_rejected"]].tolist() == [6, 3, 3]
    assert b["building_id"].tolist() == ["partners:1", "partners:2", "partners:3"]
    assert b["type"].tolist() == ["youth_centre", "hostel", "partners"]
    assert b["location_from"].tolist() == ["lonlat", "postcode", "postcode"]
    assert b.loc[1, ["x", "y"]].tolist() == [531131.0, 182382.0]   # EC1A1AA in Code-Point
    assert b.loc[2, ["x", "y"]].tolist() == [533414.0, 181742.0]   # "E1  6AN", padded to 7 characters
    ex, ey = WGS84_TO_BNG.transform(-0.0977, 51.5204)
    assert abs(b.loc[0, "x"] - ex) < 1e-6 and abs(b.loc[0, "y"] - ey) < 1e-6
    assert ledger.rejects[["row", "reason"]].values.tolist() == [
        [4, "postcode not found"], [5, "no name"], [6, "unparseable coordinates"]]


def test_generic_points_geojson_and_geopackage_in_any_crs(example_config, tmp_path):
    pts = gpd.GeoDataFrame({"name": ["A", "B"], "type": ["youth_centre", "hostel"]},
                           geometry=gpd.points_from_xy([-0.0977, -0.08], [51.5204, 51.515]), crs="EPSG:4326")
    pts.to_file(tmp_path / "p.geojson", driver="GeoJSON")
    pts.to_crs("EPSG:27700").to_file(tmp_path / "p.gpkg", driver="GPKG")
    a, _, _ = load(example_config, KeyBuildings("g", str(tmp_path / "p.geojson"), "generic_points"))
    c, _, _ = load(example_config, KeyBuildings("g", str(tmp_path / "p.gpkg"), "generic_points"))
    ex, ey = WGS84_TO_BNG.transform([-0.0977, -0.08], [51.5204, 51.515])
    assert np.allclose(a["x"], ex, atol=1e-6) and np.allclose(a["y"], ey, atol=1e-6)
    assert np.allclose(c["x"], ex, atol=1e-3) and np.allclose(c["y"], ey, atol=1e-3)
    assert a["type"].tolist() == ["youth_centre", "hostel"] and set(a["location_from"]) == {"geometry"}


def test_generic_points_easting_northing_case_insensitive(example_config, tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("NAME,Easting,Northing\nClub,532000,181000\n", encoding="utf-8")
    b, _, _ = load(example_config, KeyBuildings("clubs", str(path), "generic_points", "youth_club"))
    assert b[["name", "type", "x", "y"]].values.tolist() == [["Club", "youth_club", 532000.0, 181000.0]]


def test_whole_file_problems_are_user_errors_naming_file_and_column(example_config, tmp_path):
    path = tmp_path / "noname.csv"
    path.write_text("title,lon,lat\nA,-0.1,51.5\n", encoding="utf-8")
    with pytest.raises(UserError) as err:
        load(example_config, KeyBuildings("x", str(path), "generic_points"))
    assert err.value.column == "name" and err.value.file == str(path)
    path2 = tmp_path / "nocoords.csv"
    path2.write_text("name,postcode\nA,E1 6AN\n", encoding="utf-8")
    with pytest.raises(UserError, match="no coordinate columns.*no postcodes file") as err:
        load(example_config, KeyBuildings("x", str(path2), "generic_points"))
    assert err.value.file == str(path2)
    with pytest.raises(UserError, match="column 'URN'"):
        load(example_config, KeyBuildings("x", str(path), "london_schools_atlas"))
    with pytest.raises(UserError, match="incident schema, not a key-building schema"):
        load(example_config, KeyBuildings("x", str(path), "police_uk_street"))
    with pytest.raises(UserError, match="matches no file"):
        load(example_config, KeyBuildings("x", "nowhere/*.csv", "generic_points"))


# --------------------------------------------------------------------------- constructed layouts

SQUARE = shapely.box(0, 0, 3000, 3000)
START, END = pd.Timestamp("2018-01-01"), pd.Timestamp("2018-07-01")


def incidents_at(x, y, when=None, precision="month", weight=1.0, location="exact", location_m=0.0,
                 evidence="recorded_crime") -> pd.DataFrame:
    x = np.asarray(x, float)
    when = pd.to_datetime(when) if when is not None else pd.DatetimeIndex([pd.Timestamp("2018-03-01")] * len(x))
    return pd.DataFrame({"x": x, "y": np.asarray(y, float), "weight": weight, "evidence": evidence,
                         "category": "violent-crime", "occurred_from": when, "occurred_to": when,
                         "date_precision": precision, "location_precision": location,
                         "location_precision_m": location_m})


def buildings_at(xy, types=None, radii=(100.0, 250.0, 500.0)) -> gpd.GeoDataFrame:
    xy = np.asarray(xy, float)
    types = types or ["school"] * len(xy)
    k = range(len(xy))
    return gpd.GeoDataFrame({"building_id": [f"t:{i}" for i in k], "name": [f"B{i}" for i in k], "type": types, "subtype": "", "layer": "t", "x": xy[:, 0], "y": xy[:, 1],
                             "radius_m": [tuple(radii)] * len(xy)},
                            geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs="EPSG:27700")


NO_REGIONS = gpd.GeoDataFrame({"region_id": []}, geometry=[], crs="EPSG:27700")


def planted_layout(seed: int = 7):
    """300 uniform incidents on a 3 km square, 60 more within 80 m of (1000, 1000), none within 300 m of
    (2500, 500); buildings: B0 in the cluster, B1 in ordinary ground, B2 in the cleared ground."""
    rng = np.random.default_rng(seed)
    bx, by = rng.uniform(0, 3000, 300), rng.uniform(0, 3000, 300)
    keep = np.hypot(bx - 2500, by - 500) > 300
    ang, rad = rng.uniform(0, 2 * np.pi, 60), 80 * np.sqrt(rng.uniform(0, 1, 60))
    x = np.concatenate([bx[keep], 1000 + rad * np.cos(ang)])
    y = np.concatenate([by[keep], 1000 + rad * np.sin(ang)])
    return incidents_at(x, y), buildings_at([(1000, 1000), (2000, 2200), (2500, 500)])


def test_building_in_a_planted_cluster_has_an_interval_above_one_and_empty_ground_does_not():
    inc, b = planted_layout()
    table, _ = profile_buildings(b, inc, SQUARE, NO_REGIONS, [100, 250, 500], START, END, {})
    t = table.set_index("name")
    assert t.loc["B0", "rr_low_250"] > 1 and t.loc["B0", "q_250"] < 0.001 and t.loc["B0", "rank"] == 1
    assert t.loc["B1", "rr_low_250"] < 1 < t.loc["B1", "rr_high_250"] and t.loc["B1", "q_250"] > 0.05
    assert t.loc["B2", "n_250"] == 0 and t.loc["B2", "rr_250"] == 0 and t.loc["B2", "q_250"] == 1
    # Brute-force counts.
    for name, (cx, cy) in {"B0": (1000, 1000), "B1": (2000, 2200)}.items():
        d = np.hypot(inc["x"] - cx, inc["y"] - cy)
        assert [t.loc[name, f"n_{r}"] for r in (100, 250, 500)] == [int((d <= r).sum()) for r in (100, 250, 500)]
    assert list(table.columns[:5]) == ["building_id", "name", "type", "x", "y"]
    assert list(table.columns[5:12]) == ["n_100", "weighted_100", "expected_100", "rr_100", "rr_low_100",
                                         "rr_high_100", "q_100"]
    assert list(table.columns[26:30]) == ["rank", "region_id", "trend", "peak_hours"]


def test_expected_counts_for_a_disc_inside_half_outside_and_in_a_corner_of_a_square():
    # 400 incidents of weight 1 on a 2 km square: rate 1e-4 per m^2.
    area = shapely.box(0, 0, 2000, 2000)
    g = np.linspace(25, 1975, 20)
    xx, yy = np.meshgrid(g, g)
    inc = incidents_at(xx.ravel(), yy.ravel())
    b = buildings_at([(1000, 1000), (0, 1000), (0, 0)])
    table, _ = profile_buildings(b, inc, area, NO_REGIONS, [100], START, END, {})
    t = table.set_index("name")
    assert t.loc["B0", "expected_100"] == pytest.approx(1e-4 * math.pi * 100 ** 2, rel=1e-12)   # pi
    assert t.loc["B1", "expected_100"] == pytest.approx(math.pi / 2, rel=1e-9)
    assert t.loc["B2", "expected_100"] == pytest.approx(math.pi / 4, rel=1e-9)
    assert t.loc["B1", "catchment_km2_100"] == pytest.approx(math.pi * 0.01 / 2, rel=1e-9)
    assert catchment_areas(np.array([1000.0]), np.array([1000.0]), 100.0, area)[0] == math.pi * 1e4


def test_exact_poisson_interval_and_p_against_hand_values():
    # Garwood limits for n = 7: chi2(0.025; 14) / 2 and chi2(0.975; 16) / 2, from published tables.
    low, high = garwood_interval([0, 7])
    assert low[1] == pytest.approx(5.628726 / 2, abs=1e-6) and high[1] == pytest.approx(28.845350 / 2, abs=1e-6)
    assert low[0] == 0 and high[0] == pytest.approx(-math.log(0.025), rel=1e-9)   # 3.689
    # A building with n = 7 where pi are expected: rr = 7 / pi with those limits over pi.
    area = shapely.box(0, 0, 2000, 2000)
    g = np.linspace(25, 1975, 20)
    xx, yy = np.meshgrid(g, g)
    far = np.hypot(xx.ravel() - 1000, yy.ravel() - 1000) > 100
    x = np.concatenate([xx.ravel()[far], [1000, 1010, 990, 1000, 1000, 1020, 980]])
    y = np.concatenate([yy.ravel()[far], [1000, 1000, 1000, 1010, 990, 1020, 980]])
    inc = incidents_at(x, y)
    table, _ = profile_buildings(buildings_at([(1000, 1000)]), inc, area, NO_REGIONS, [100], START, END, {})
    mu = len(x) / 4e6 * math.pi * 1e4
    row = table.iloc[0]
    assert row["n_100"] == 7 and row["expected_100"] == pytest.approx(mu, rel=1e-12)
    assert row["rr_100"] == pytest.approx(7 / mu) and row["rr_low_100"] == pytest.approx(5.628726 / 2 / mu, rel=1e-6)
    assert row["rr_high_100"] == pytest.approx(28.845350 / 2 / mu, rel=1e-6)
    tail = 1 - sum(math.exp(-mu) * mu ** k / math.factorial(k) for k in range(7))
    assert row["p_100"] == pytest.approx(tail, rel=1e-9)


def test_weights_scale_the_point_estimate_but_the_interval_follows_the_count():
    area = shapely.box(0, 0, 2000, 2000)
    g = np.linspace(25, 1975, 20)
    xx, yy = np.meshgrid(g, g)
    inc = pd.concat([incidents_at(xx.ravel(), yy.ravel()),
                     incidents_at([1000, 1001, 1002, 1003], [1000] * 4, weight=0.3, evidence="community_report"),
                     incidents_at([1004], [1000], weight=0.0, evidence="police_activity")], ignore_index=True)
    table, _ = profile_buildings(buildings_at([(1000, 1000)]), inc, area, NO_REGIONS, [100], START, END, {})
    row = table.iloc[0]
    W = 400 + 4 * 0.3
    expected = W / 4e6 * math.pi * 1e4
    n_grid = int((np.hypot(xx.ravel() - 1000, yy.ravel() - 1000) <= 100).sum())
    assert row["n_100"] == n_grid + 4                       # the weight-0 record never counts
    assert row["n_community_report_100"] == 4 and "n_police_activity_100" not in table
    assert row["weighted_100"] == pytest.approx(n_grid + 1.2)
    assert row["rr_100"] == pytest.approx((n_grid + 1.2) / expected)
    mu = expected / ((n_grid + 1.2) / (n_grid + 4))
    assert row["rr_low_100"] == pytest.approx(stats.chi2.ppf(0.025, 2 * (n_grid + 4)) / 2 / mu)
    assert row["rr_low_100"] < row["rr_100"] < row["rr_high_100"]


def test_benjamini_hochberg_against_hand_computation():
    # Sorted 0.005, 0.01, 0.03, 0.04 (m = 4): p * m / rank = 0.02, 0.02, 0.04, 0.04; running minimum from the top.
    assert bh_qvalues([0.01, 0.04, 0.03, 0.005]).tolist() == pytest.approx([0.02, 0.04, 0.04, 0.02])
    q = bh_qvalues([0.5, np.nan, 0.01])
    assert np.isnan(q[1]) and q[0] == pytest.approx(0.5) and q[2] == pytest.approx(0.02)


def test_q_values_in_the_table_are_bh_across_buildings():
    inc, b = planted_layout()
    table, _ = profile_buildings(b, inc, SQUARE, NO_REGIONS, [250], START, END, {})
    assert table["q_250"].tolist() == pytest.approx(bh_qvalues(table["p_250"]).tolist())


def test_month_only_dates_give_no_peak_hours_and_say_so():
    inc, b = planted_layout()
    table, _ = profile_buildings(b, inc, SQUARE, NO_REGIONS, [100, 250], START, END, {})
    assert (table["peak_hours"] == "").all() and table["after_school_share"].isna().all()
    assert set(table["time_note"]) == {"dates are month-only: no time profile"}
    assert time_note(inc) == "dates are month-only: no time profile"
    assert (table["weekday_profile"] == "").all()


def test_minute_dates_planted_after_school_give_peak_hours_and_share():
    # Weekdays (Tue 2018-03-06 .. ) at 15:30, 15:45, 16:00, 16:45, 17:10, 17:29; Saturday 16:00;
    # weekday 09:00; weekday 18:00 (the window's end is exclusive).
    when = ["2018-03-06 15:30", "2018-03-07 15:45", "2018-03-08 16:00", "2018-03-09 16:45", "2018-03-12 17:10",
            "2018-03-13 17:29", "2018-03-10 16:00", "2018-03-14 09:00", "2018-03-15 18:00"]
    k = len(when)
    inc = pd.concat([incidents_at(1000 + np.arange(k), [1000] * k, when, precision="minute"),
                     incidents_at(np.linspace(100, 2900, 50), np.linspace(2900, 100, 50))], ignore_index=True)
    b = buildings_at([(1000, 1000)])
    table, _ = profile_buildings(b, inc, SQUARE, NO_REGIONS, [100, 250, 500], START, END, {})
    row = table.iloc[0]
    assert row["peak_hours"] == "15-18" and row["time_note"] == ""
    assert row["after_school_share"] == pytest.approx(6 / 9)
    assert row["weekday_profile"] == "Mon 1, Tue 2, Wed 2, Thu 2, Fri 1, Sat 1, Sun 0"
    custom, _ = profile_buildings(b, inc, SQUARE, NO_REGIONS, [250], START, END, {"after_school": "16:00-17:00"})
    assert custom.iloc[0]["after_school_share"] == pytest.approx(2 / 9)
    few, _ = profile_buildings(b, inc, SQUARE, NO_REGIONS, [250], START, END, {"min_timed": 10})
    assert few.iloc[0]["peak_hours"] == "" and few.iloc[0]["time_note"].startswith("too few timed incidents (9)")


def test_trend_compares_the_last_third_of_months_with_the_months_before():
    # January to June: recent = May and June (61 of 181 days). 5 incidents Jan-Apr, 30 in May-Jun near B0.
    early = pd.date_range("2018-01-05", "2018-04-25", periods=5)
    late = pd.date_range("2018-05-02", "2018-06-28", periods=30)
    when = list(early) + list(late)
    inc = incidents_at(np.full(35, 1000.0), np.full(35, 1000.0), when, precision="day")
    inc = pd.concat([inc, incidents_at([2900], [2900])], ignore_index=True)
    table, _ = profile_buildings(buildings_at([(1000, 1000), (2000, 2000)]), inc, SQUARE, NO_REGIONS, [250],
                                 START, END, {})
    t = table.set_index("name")
    p0 = 61 / 181
    hand = 2 * sum(math.comb(35, k) * p0 ** k * (1 - p0) ** (35 - k) for k in range(30, 36))
    assert t.loc["B0", "trend"] == "rising" and t.loc["B0", "trend_p"] == pytest.approx(hand, rel=1e-9)
    assert t.loc["B1", "trend"] == "" and np.isnan(t.loc["B1", "trend_p"])


def test_snap_point_precision_is_flagged_and_the_small_radius_not_used_for_rank():
    inc, b = planted_layout()
    inc = inc.assign(location_precision="snap_point", location_precision_m=200.0)
    table, _ = profile_buildings(b, inc, SQUARE, NO_REGIONS, [100, 250, 500], START, END, {})
    note = table.set_index("name").loc["B0", "precision_note"]
    assert note == ("snap-point locations (~200 m): profile is approximate; 100 m radius below the location "
                    "precision (~200 m): not used for rank")
    assert set(table["rank_radius_m"]) == {250.0}
    coarse, _ = profile_buildings(b, inc.assign(location_precision="area", location_precision_m=800.0), SQUARE,
                                  NO_REGIONS, [100, 250, 500], START, END, {})
    assert coarse["rank"].isna().all() and coarse["rank_radius_m"].isna().all()


def test_region_id_is_the_hotspot_region_the_building_lies_in():
    inc, b = planted_layout()
    regions = gpd.GeoDataFrame({"region_id": ["R1", "R2"]},
                               geometry=[shapely.box(900, 900, 1100, 1100), shapely.box(2000, 2200, 2300, 2400)],
                               crs="EPSG:27700")
    table, _ = profile_buildings(b, inc, SQUARE, regions, [250], START, END, {})
    assert table.set_index("name")["region_id"].to_dict() == {"B0": "R1", "B1": "R2", "B2": ""}


def test_comparison_with_other_buildings_of_the_same_type():
    inc, _ = planted_layout()
    b = buildings_at([(1000, 1000), (2000, 2200), (500, 2500)], types=["school", "school", "hostel"])
    table, _ = profile_buildings(b, inc, SQUARE, NO_REGIONS, [250], START, END, {"comparison": "type"})
    t = table.set_index("name")
    # B0's expected is the weighted count around the other school (whole discs: same area).
    assert t.loc["B0", "expected_250"] == pytest.approx(t.loc["B1", "weighted_250"])
    assert t.loc["B1", "expected_250"] == pytest.approx(t.loc["B0", "weighted_250"])
    assert "only building of its type" in t.loc["B2", "precision_note"]


def test_buildings_outside_the_study_area_are_left_out_and_counted():
    inc, b = planted_layout()
    b = pd.concat([b, buildings_at([(5000, 5000)])], ignore_index=True)
    table, _ = profile_buildings(b, inc, SQUARE, NO_REGIONS, [250], START, END, {})
    assert len(table) == 3 and table.attrs["outside_study_area"] == 1


def test_buildings_outside_the_study_area_are_filtered_in_the_accounting_not_counted_as_loaded(tmp_path):
    # Hostile audit: the manifest counted every building outside the study area as loaded while
    # buildings.csv left it out with no reason anywhere (the example: 212 schools loaded, 97 profiled).
    from hotspots.config import load_config
    from hotspots.pipeline import analyse
    month = EXAMPLE / "data" / "city_street" / "2018-01-city-of-london-street.csv"
    cfg = tmp_path / "p.toml"
    cfg.write_text(f'[study]\nstart = "2018-01"\nend = "2018-01"\n[[sources]]\nid = "city"\n'
                   f'path = "{month.as_posix()}"\nschema = "police_uk_street"\n[[key_buildings]]\nid = "stations"\n'
                   f'path = "{STATIONS.as_posix()}"\nschema = "tfl_stations"\n', encoding="utf-8")
    result = analyse(load_config(cfg))
    acc = result.building_accounting.iloc[0]
    assert acc["rows_loaded"] == len(result.buildings) < acc["rows_read"] == 69
    assert acc["rows_read"] == acc["rows_loaded"] + acc["rows_filtered"] + acc["rows_rejected"]
    gone = result.ledger.filtered
    gone = gone[gone["source_id"] == "stations"]
    assert set(gone["reason"]) == {"outside study area"} and len(gone) == acc["rows_filtered"] > 0


def test_building_type_table_on_a_constructed_layout():
    # Type A sits on three planted clusters, type B in ordinary ground.
    rng = np.random.default_rng(3)
    x, y = list(rng.uniform(0, 3000, 500)), list(rng.uniform(0, 3000, 500))
    a_sites = [(600, 600), (1500, 2400), (2400, 1200)]
    for cx, cy in a_sites:
        ang, rad = rng.uniform(0, 2 * np.pi, 25), 200 * np.sqrt(rng.uniform(0, 1, 25))
        x += list(cx + rad * np.cos(ang))
        y += list(cy + rad * np.sin(ang))
    inc = incidents_at(x, y)
    b_sites = [(600, 2400), (2400, 2600), (1500, 600)]
    b = buildings_at(a_sites + b_sites, types=["A"] * 3 + ["B"] * 3)
    _, types = profile_buildings(b, inc, SQUARE, NO_REGIONS, [100, 250, 500], START, END, {})
    t = types.set_index("type")
    assert list(types.columns[:11]) == ["type", "buildings", "radius_m", "area_km2_near", "n_near", "weighted_near",
                                       "n_elsewhere", "rate_ratio", "rr_low", "rr_high", "p_value"]
    assert t.loc["A", "rate_ratio"] > 1 and t.loc["A", "rr_low"] > 1 and t.loc["A", "p_value"] < 0.001
    assert t.loc["B", "rr_low"] < 1 < t.loc["B", "rr_high"] and t.loc["B", "p_value"] > 0.05
    # Hand computation for A: three whole discs of 250 m, counts by brute force, exact binomial interval.
    X, Y = np.array(x), np.array(y)
    near = np.zeros(len(X), bool)
    for cx, cy in a_sites:
        near |= np.hypot(X - cx, Y - cy) <= 250
    n_near, N = int(near.sum()), len(X)
    a_near = 3 * math.pi * 250 ** 2
    a_else = 9e6 - a_near
    assert t.loc["A", "n_near"] == n_near and t.loc["A", "n_elsewhere"] == N - n_near
    assert t.loc["A", "area_km2_near"] == pytest.approx(a_near / 1e6, rel=1e-9)
    assert t.loc["A", "rate_ratio"] == pytest.approx((n_near / a_near) / ((N - n_near) / a_else))
    lo = stats.beta.ppf(0.025, n_near, N - n_near + 1)
    assert t.loc["A", "rr_low"] == pytest.approx(lo / (1 - lo) * a_else / a_near)
    p0 = a_near / 9e6
    upper = stats.binom.sf(n_near - 1, N, p0)
    assert t.loc["A", "p_value"] == pytest.approx(min(1.0, 2 * upper), rel=1e-6)
    assert building_types(b, inc, SQUARE).equals(types)


def test_a_record_exactly_at_the_radius_is_near_for_its_building_and_its_type():
    """A building's catchment holds the records within the radius, its edge included; its type's
    'near' counts the same records (snap points and buildings on whole metres sit exactly 250 m apart:
    150 m east and 200 m north). scipy's nearest-neighbour bound is strict, which once left them out."""
    xs = [1500.0 + 150, 1500.0 - 250, 1500.0, 1500.0 + 151, 2800.0]
    ys = [1500.0 + 200, 1500.0, 1500.0 - 250, 1500.0 + 200, 2800.0]
    inc = incidents_at(xs, ys)
    b = buildings_at([(1500, 1500)], types=["A"])
    table, types = profile_buildings(b, inc, SQUARE, NO_REGIONS, [100, 250, 500], START, END, {})
    assert table["n_250"].iat[0] == 3           # the three at exactly 250 m; not the one at 250.6 m
    assert types.set_index("type").loc["A", "n_near"] == 3 and types["n_elsewhere"].iat[0] == 2


# --------------------------------------------------------------------------- the real example

@pytest.fixture(scope="module")
def example_profile(example_config, example_result):
    b, acc, ledger = load(example_config, *EXAMPLE_LAYERS)
    r = example_result
    table, types = profile_buildings(b, r.incidents, r.study_area, r.regions, [100, 250, 500],
                                     example_config.start, example_config.end, {})
    return b, acc, table, types, r


def test_every_example_building_inside_the_study_area_has_a_profile(example_profile):
    b, acc, table, _, r = example_profile
    inside = shapely.covers(r.study_area, shapely.points(b["x"], b["y"]))
    assert acc["rows_loaded"].tolist() == [212, 69]
    assert sorted(table["building_id"]) == sorted(b.loc[inside, "building_id"])
    assert table.attrs["outside_study_area"] == int((~inside).sum())
    for lab in ("100", "250", "500"):
        assert table[f"expected_{lab}"].gt(0).all() and table[f"rr_{lab}"].notna().all()
    # Police dates are month-only; the emergency department's carry times: hours come from those
    # alone, and a building with too few timed incidents says so instead of showing hours.
    timed = table["peak_hours"].fillna("") != ""
    assert timed.any() and (~timed).any()
    assert table.loc[~timed, "time_note"].str.startswith("too few timed incidents").all()
    notes = table["precision_note"].fillna("")
    said = notes.str.contains(r"^(?:snap-point|postcode-level|street-level|place-level) locations \(~", regex=True)
    # Where the records near a building are coarser than its smallest radius, that radius is not ranked on.
    below = notes.str.contains(r"^100 m radius below the location precision \(~\d+ m\): not used for rank$", regex=True)
    assert (said | below | (notes == "")).all() and said.sum() > 100   # coarse locations are said, per building
    assert set(table["rank_radius_m"]) == {250.0} and table["rank"].notna().all()


def test_example_counts_equal_a_brute_force_count(example_profile):
    _, _, table, _, r = example_profile
    inc = r.incidents[r.incidents["weight"] > 0]
    X, Y = inc["x"].to_numpy(), inc["y"].to_numpy()
    picks = table.iloc[[0, 1, len(table) // 2, len(table) - 1]]
    for _, row in picks.iterrows():
        d = np.hypot(X - row["x"], Y - row["y"])
        for lab in (100, 250, 500):
            assert row[f"n_{lab}"] == int((d <= lab).sum()), (row["name"], lab)
    # Stop and search (weight 0) is context, never counted.
    allx = np.hypot(r.incidents["x"].to_numpy() - picks.iloc[0]["x"], r.incidents["y"].to_numpy() - picks.iloc[0]["y"])
    assert picks.iloc[0]["n_500"] <= int((allx <= 500).sum())


def test_example_building_types(example_profile):
    _, _, table, types, _ = example_profile
    assert types["type"].tolist() == ["school", "station"]
    assert types["buildings"].tolist() == [int((table["type"] == t).sum()) for t in ("school", "station")]
    st = types.set_index("type").loc["station"]
    assert st["rr_low"] > 1 and st["p_value"] < 1e-6


# --------------------------------------------------------------------------- options and the map

def test_profile_options_are_checked(example_config):
    from hotspots.profile import options_from_config
    with pytest.raises(UserError, match="comparison = 'nearby'"):
        profile_buildings(buildings_at([(1000, 1000)]), incidents_at([1], [1]), SQUARE, NO_REGIONS, [100],
                          START, END, {"comparison": "nearby"})
    with pytest.raises(UserError, match="after_school = '3pm'"):
        profile_buildings(buildings_at([(1000, 1000)]), incidents_at([1], [1]), SQUARE, NO_REGIONS, [100],
                          START, END, {"after_school": "3pm"})
    layer = dataclasses.replace(EXAMPLE_LAYERS[0], options={"comparison": "type"})
    cfg = dataclasses.replace(example_config, key_buildings=[layer], raw={**example_config.raw, "profile": {}})
    assert options_from_config(cfg)["comparison"] == "type"
    with pytest.raises(UserError, match="unknown key 'radius'"):
        load(example_config, dataclasses.replace(EXAMPLE_LAYERS[0], options={"radius": 100}))


def test_map_layers_one_group_per_type_with_profiles_as_data(example_profile):
    import json

    import folium

    from hotspots.publish.map_buildings import BANDS, buildings_layers, buildings_legend_html, risk_band
    _, _, table, _, _ = example_profile
    hostile = table.copy()
    name = "<img src=x onerror=alert(1)> ${alert(2)} `x` {{ 7*7 }}"
    hostile.loc[0, "name"] = name
    groups = buildings_layers(hostile, "dates are month-only: no time profile")
    assert [g.layer_name for g in groups] == ["Buildings · Key buildings: school", "Buildings · Key buildings: station"]
    m = folium.Map(location=[51.515, -0.09], zoom_start=14, tiles=None)
    for g in groups:
        g.add_to(m)
    html = m.get_root().render()
    elements = [e for g in groups for e in g._children.values() if type(e).__name__ == "BuildingMarkers"]
    markers = [b for e in elements for b in json.loads(e.markers)]
    styles = json.loads(elements[0].styles)
    # one marker per building, each drawn in its band's style (a circle marker, no folium.Icon)
    assert len(markers) == len(table) and "L.circleMarker(" in html
    assert "AwesomeMarkers.icon(" not in html and "L.marker(" not in html
    bands = [risk_band(r, ["100", "250", "500"]) for _, r in hostile.iterrows()]
    by_name = {b["profile"]["title"]: b for b in markers}
    for (_, row), band in zip(hostile.iterrows(), bands):
        assert by_name[row["name"]]["style"] == band == by_name[row["name"]]["profile"]["risk"]
    assert {k: v["fillColor"] for k, v in styles.items() if not k.startswith("sensitive")} == {
        k: c for k, (c, _) in BANDS.items()}
    # the hostile name is text in a JSON string: no markup, no template syntax in the page
    assert by_name[name]["profile"]["title"] == name
    assert "<img src=x" not in html and "{{ 7" not in html
    # each popup shows its hours, or its own time note, or the study-wide one
    for _, row in hostile.iterrows():
        hours = dict(by_name[row["name"]]["profile"]["lines"])["Peak hours"]
        if row["peak_hours"]:
            assert hours.startswith(f"{row['peak_hours']} h"), hours
        else:
            assert hours == (row["time_note"] or "dates are month-only: no time profile"), hours
    top = table.iloc[0]
    assert bands[0] == "high" and top["rr_low_250"] > 1 and top["q_250"] <= 0.05
    row250 = by_name[name]["profile"]["rows"][1]
    assert row250[0] == "250 m" and row250[1] == str(int(top["n_250"])) and row250[4].startswith(f"{top['rr_250']:.2f} (")
    legend = buildings_legend_html()
    assert "Key buildings" in legend and legend.count("hs-swatch") == 4


def test_school_holidays_against_term_on_a_constructed_layout():
    from hotspots.profile import holiday_days
    # 2019: summer holiday 1 Jul - 31 Aug (62 of 365 days). 40 dated incidents at the building,
    # 20 of them in the holiday: ratio (20/40) / (62/365) = 2.94.
    start, end = pd.Timestamp("2019-01-01"), pd.Timestamp("2020-01-01")
    days = holiday_days(["2019-07-01:2019-08-31"], start, end)
    assert len(days) == 62
    rng = np.random.default_rng(3)
    term_days = pd.to_datetime(rng.choice(pd.date_range("2019-01-01", "2019-06-30"), 20))
    hol_days = pd.to_datetime(rng.choice(pd.date_range("2019-07-01", "2019-08-31"), 20))
    when = pd.DatetimeIndex(list(term_days) + list(hol_days)) + pd.Timedelta(hours=16)
    inc = incidents_at(np.full(40, 1000.0), np.full(40, 1000.0))
    inc["occurred_from"] = when
    inc["occurred_to"] = when
    inc["date_precision"] = "minute"
    table, _ = profile_buildings(buildings_at([(1000, 1000)]), inc, SQUARE, NO_REGIONS, [100], start, end,
                                 {"holidays": ["2019-07-01:2019-08-31"]})
    assert table.loc[0, "holiday_ratio"] == pytest.approx((20 / 40) / (62 / 365))
    assert table.loc[0, "holiday_p"] < 0.001
    # without term dates, no term/holiday profile
    table, _ = profile_buildings(buildings_at([(1000, 1000)]), inc, SQUARE, NO_REGIONS, [100], start, end, {})
    assert np.isnan(table.loc[0, "holiday_ratio"])
    with pytest.raises(UserError, match="holidays"):
        profile_buildings(buildings_at([(1000, 1000)]), inc, SQUARE, NO_REGIONS, [100], start, end,
                          {"holidays": ["summer"]})


def test_grouped_risk_equals_pandas_groupby_of_the_risk_rows(monkeypatch):
    """``grouped_risk`` numbers groups key by key (memory at 10 M incidents): the same groups, in order of
    first appearance, the same values, dtypes and sums as pandas' groupby of the risk rows; rows of no
    weight or no place left out, a missing precision its own group."""
    from hotspots import profile
    from hotspots.profile import RISK_COLUMNS, grouped_risk
    rng = np.random.default_rng(11)
    n = 5000
    snap = rng.integers(0, 40, n)
    table = pd.DataFrame({
        "x": 530000.0 + snap * 37.5, "y": 181000.0 + (snap % 7) * 52.25,
        "weight": rng.choice([1.0, 0.6, 0.35, 0.0, -1.0], n),
        "evidence": pd.Categorical(rng.choice(["recorded_crime", "health"], n),
                                   categories=["community_report", "health", "recorded_crime"]),
        "source_id": pd.Categorical(rng.choice(["met", "ed"], n)),
        "location_precision": pd.Categorical(rng.choice(["snap_point", "exact"], n)),
        "location_precision_m": rng.choice([200.0, 10.0, np.nan], n),
        "occurred_from": pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 6, n) * 31, unit="D"),
        "date_precision": pd.Categorical(rng.choice(["month", "minute"], n)),
        "category": "violent-crime"})
    table.loc[::97, "x"] = np.nan
    got = grouped_risk(table)
    risk = table.loc[(table["weight"] > 0) & table["x"].notna(), list(RISK_COLUMNS)]
    keys = [c for c in RISK_COLUMNS if c != "weight"]
    g = risk.groupby(keys, sort=False, observed=True, dropna=False)["weight"]
    expected = pd.concat([g.sum(), g.size().rename("count")], axis=1).reset_index()[[*RISK_COLUMNS, "count"]]
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-12)
    assert got["count"].sum() == len(risk) and got["location_precision_m"].isna().any()
    assert grouped_risk(got) is got
    # A chunk of rows at a time (memory at 30 M incidents), the chunks' groups grouped again: the same.
    monkeypatch.setattr(profile, "GROUP_CHUNK", 700)
    pd.testing.assert_frame_equal(grouped_risk(table), expected, check_exact=False, rtol=1e-12)


def test_a_building_profile_with_missing_values_reads_as_their_defaults(example_profile):
    """Missing text in the buildings table (NaN after a merge, not only None) shows as the profile's
    defaults, and the profile stays valid JSON for the page (NaN would make ``js_json`` fail)."""
    import json

    from hotspots.publish.escape import js_json
    from hotspots.publish.map_buildings import profile_text
    _, _, table, _, _ = example_profile
    row = table.iloc[0].to_dict()
    row.update(trend=float("nan"), trend_p=float("nan"), region_id=float("nan"), peak_hours=float("nan"),
               time_note=float("nan"), weekday_profile=None, subtype=float("nan"), precision_note=float("nan"),
               holiday_ratio=float("nan"))
    profile = profile_text(row, ["100", "250", "500"], "study-wide note")
    assert dict(profile["lines"]) == {"Hotspot region": "none", "Trend": "–", "Peak hours": "study-wide note"}
    assert profile["kind"] == str(row["type"]) and profile["note"] == ""
    assert json.loads(js_json(profile)) == profile


def _police_west_health_everywhere(police_rows: np.ndarray, health_cols: np.ndarray, health_rows: np.ndarray):
    """(incidents, study area, coverage) on a 2 x 1 km study area: police records on a grid of 40 columns
    and ``police_rows`` over the west half it covers, health records on the grid of ``health_cols`` and
    ``health_rows`` over the whole."""
    px, py = np.meshgrid(np.linspace(12.5, 987.5, 40), police_rows)
    hx, hy = np.meshgrid(health_cols, health_rows)
    inc = pd.concat([incidents_at(px.ravel(), py.ravel()).assign(source_id="police"),
                     incidents_at(hx.ravel(), hy.ravel(), evidence="health").assign(source_id="health")],
                    ignore_index=True)
    coverage = gpd.GeoDataFrame({"source_id": ["police"]}, geometry=[shapely.box(0, 0, 1000, 1000)], crs="EPSG:27700")
    return inc, shapely.box(0, 0, 2000, 1000), coverage


def test_expected_counts_each_source_over_the_area_it_covers():
    """A source is expected only where it has data (statistics audit: with one study-area rate, police
    records that exist in 55 % of the example's area made 72 of the 73 buildings outside police coverage
    "significantly low" at 100 m, rr_high < 1, median relative risk 0.049). Police: 1,000 records on the
    west half it covers (1e-3 per m^2); health: 100 over the whole 2 x 1 km (5e-5 per m^2)."""
    inc, area, coverage = _police_west_health_everywhere(np.linspace(25, 975, 25), np.linspace(50, 1950, 10),
                                                          np.linspace(50, 950, 10))
    b = buildings_at([(1500, 500), (500, 500), (1000, 500)])
    table, _ = profile_buildings(b, inc, area, NO_REGIONS, [100], START, END, {}, coverage=coverage)
    t = table.set_index("name")
    disc = math.pi * 100 ** 2
    assert t.loc["B0", "expected_100"] == pytest.approx(100 / 2e6 * disc, rel=1e-9)            # health only: 1.571
    assert t.loc["B1", "expected_100"] == pytest.approx((1000 / 1e6 + 100 / 2e6) * disc, rel=1e-9)   # 32.99
    assert t.loc["B2", "expected_100"] == pytest.approx(1000 / 1e6 * disc / 2 + 100 / 2e6 * disc, rel=1e-3)
    for name, (cx, cy) in {"B0": (1500, 500), "B1": (500, 500), "B2": (1000, 500)}.items():
        near = np.hypot(inc["x"] - cx, inc["y"] - cy) <= 100
        assert t.loc[name, "n_100"] == near.sum()
        assert t.loc[name, "rr_100"] == pytest.approx(near.sum() / t.loc[name, "expected_100"])
    # Without coverage every source covers the study area: one rate, 1,100 / 2e6 per m^2, as before.
    flat, _ = profile_buildings(b, inc, area, NO_REGIONS, [100], START, END, {})
    assert flat.set_index("name").loc["B0", "expected_100"] == pytest.approx(1100 / 2e6 * disc, rel=1e-9)


def test_example_buildings_outside_police_coverage_are_not_low_for_want_of_police_data(example_result):
    """In the example, police data (City and Met) exist in 55 % of the study area. Each building's
    expected count is recomputed here source by source (discs of 4,096 segments, shapely) and the
    buildings outside police coverage are no longer almost all "significantly low": before, 72 of 73
    had rr_high_100 < 1 (median relative risk 0.049), as their expected count took the police rate."""
    r = example_result
    b = r.buildings
    risk = risk_in_own_coverage(r)
    geoms = dict(zip(r.coverage["source_id"], r.coverage.geometry.values))
    x, y = b["x"].to_numpy(float), b["y"].to_numpy(float)
    for radius in (100, 250):
        expected = np.zeros(len(b))
        for sid, rows in risk.groupby("source_id", observed=True):
            region = shapely.intersection(r.study_area, geoms[sid]) if sid in geoms else r.study_area
            discs = shapely.buffer(shapely.points(x, y), radius, quad_segs=1024)
            part = shapely.area(shapely.intersection(discs, region)) / shapely.area(discs) * math.pi * radius ** 2
            expected += rows["weight"].sum() / region.area * part
        assert np.allclose(b[f"expected_{radius}"], expected, rtol=1e-3), radius
        some = expected > 0            # where no risk source covers the catchment there is no expectation
        assert np.allclose(b.loc[some, f"rr_{radius}"], b.loc[some, f"weighted_{radius}"] / expected[some], rtol=1e-3)
        assert b.loc[~some, f"rr_{radius}"].isna().all()
    police = shapely.union(geoms["city_police"], geoms["met_police"])
    outside = ~shapely.contains_xy(police, x, y)
    assert outside.sum() == 73
    assert (b.loc[outside, "rr_high_100"] < 1).sum() < 36                 # 72 with one study-area rate


def test_building_type_rate_ratio_weighs_each_source_over_the_area_it_covers():
    """Police records only where police data exist (the west half), health records everywhere, both
    uniform: a type whose buildings all lie in the west is near as much risk as anywhere once each
    source is expected only where it covers, rate ratio 1, not 1,100 / 2e6 against the east's 100 / 1e6
    (statistics audit: in the example the stations' 3.44 is 2.42 and the schools' 0.65 is 0.84
    source by source)."""
    inc, area, coverage = _police_west_health_everywhere(np.linspace(12.5, 987.5, 40), np.linspace(12.5, 1987.5, 80),
                                                          np.linspace(12.5, 987.5, 40))
    b = buildings_at([(300, 300), (700, 700)], types=["A", "A"], radii=(100.0,))
    types = building_types(b, inc, area, precision_m=0.0, coverage=coverage).set_index("type")
    near = np.zeros(len(inc), bool)
    for cx, cy in ((300, 300), (700, 700)):
        near |= np.hypot(inc["x"] - cx, inc["y"] - cy) <= 100
    a_near = 2 * math.pi * 100 ** 2
    # Expected near and elsewhere, source by source: police 1,600 over 1e6 m^2, health 3,200 over 2e6.
    e_near = 1600 / 1e6 * a_near + 3200 / 2e6 * a_near
    e_else = 1600 / 1e6 * (1e6 - a_near) + 3200 / 2e6 * (2e6 - a_near)
    by_hand = (near.sum() / e_near) / ((~near).sum() / e_else)
    assert types.loc["A", "rate_ratio"] == pytest.approx(by_hand, rel=1e-3)
    assert abs(by_hand - 1) < 0.05                  # the lattice of points against the discs: 1.036
    assert types.loc["A", "rr_low"] < by_hand < types.loc["A", "rr_high"]
    flat = building_types(b, inc, area, precision_m=0.0).set_index("type")
    assert flat.loc["A", "rate_ratio"] == pytest.approx((near.sum() / a_near) / ((~near).sum() / (2e6 - a_near)), rel=1e-3)


def test_example_building_types_are_compared_source_by_source(example_result):
    """The example's building types at 250 m, recomputed here (discs of 1,024 segments): stations 2.49
    and schools 0.83 against the rest of the study area, each source over the area it covers and on its
    records there (one study-area rate gave 3.44 and 0.65: stations lie in police coverage, schools mostly
    outside it; with the City police's records outside the City counted, 2.42 and 0.84)."""
    r = example_result
    b, types = r.buildings, r.building_types.set_index("type")
    risk = risk_in_own_coverage(r)
    x, y, w = risk["x"].to_numpy(), risk["y"].to_numpy(), risk["weight"].to_numpy()
    sid = risk["source_id"].astype(str).to_numpy()
    geoms = dict(zip(r.coverage["source_id"], r.coverage.geometry.values))
    for t, expected in (("station", 2.495), ("school", 0.831)):
        g = b[b["type"] == t]
        near = np.zeros(len(risk), bool)
        for gx, gy in zip(g["x"], g["y"]):
            near |= np.hypot(x - gx, y - gy) <= 250
        union = shapely.intersection(shapely.union_all(shapely.buffer(shapely.points(g["x"], g["y"]), 250,
                                                                       quad_segs=256)), r.study_area)
        e_near = e_else = 0.0
        for s in np.unique(sid):
            region = shapely.intersection(r.study_area, geoms[s]) if s in geoms else r.study_area
            share = shapely.intersection(union, region).area / region.area
            e_near += w[sid == s].sum() * share
            e_else += w[sid == s].sum() * (1 - share)
        by_hand = (w[near].sum() / e_near) / (w[~near].sum() / e_else)
        assert by_hand == pytest.approx(expected, abs=0.001)
        assert types.loc[t, "rate_ratio"] == pytest.approx(by_hand, rel=2e-3), t


def _clustered_records(rng, centres: int, per: int, side: float) -> pd.DataFrame:
    """Records in tight clusters (overdispersed: several at one place, as concerns about one address)
    around centres placed uniformly in a square of ``side`` metres."""
    c = rng.uniform(0, side, (centres, 2))
    xy = np.repeat(c, per, axis=0) + rng.normal(0, 30, (centres * per, 2))
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "category": "exploitation", "source_id": "yos"})


def test_category_q_values_are_calibrated_on_clustered_records_where_a_flat_rate_is_not():
    """Null runs: exploitation concerns in clusters at random places, buildings at other random places.
    Against relocation among random places a run calls some building significant (q <= 0.05) about as
    often as BH allows; against the flat Poisson rate (the rule before) most runs did."""
    from hotspots.profile import category_counts, poisson_upper_p
    side = 4000.0
    area = shapely.box(0, 0, side, side)
    runs, called, flat_called = 40, 0, 0
    for k in range(runs):
        rng = np.random.default_rng(k)
        records = _clustered_records(rng, 8, 12, side)
        b = pd.DataFrame({"building_id": [f"b{i}" for i in range(30)], "type": "childrens_home",
                          "x": rng.uniform(0, side, 30), "y": rng.uniform(0, side, 30)})
        sites = rng.uniform(0, side, (20_000, 2))
        out = category_counts(b, records, ["exploitation"], [250.0], area, sites=sites, n_sim=999, seed=k)
        called += bool((out["q_exploitation_250"] <= 0.05).any())
        flat = bh_qvalues(poisson_upper_p(out["n_exploitation_250"].to_numpy(), out["expected_exploitation_250"]))
        flat_called += bool((flat <= 0.05).any())
    assert called <= 5            # 2 expected at the 5 % level; 5 of 40 has probability < 0.05 then
    assert flat_called >= 10


def test_category_counts_are_expected_over_the_recording_sources_coverage_only():
    """A source covering the west half records 40 concerns there: a building in the east half has no
    expectation (no q), one in the west is set against 40 over the west half, not over the whole."""
    from hotspots.profile import category_counts
    area = shapely.box(0, 0, 4000, 2000)
    coverage = gpd.GeoDataFrame({"source_id": ["yos"]}, geometry=[shapely.box(0, 0, 2000, 2000)], crs=27700)
    rng = np.random.default_rng(3)
    records = pd.DataFrame({"x": rng.uniform(0, 2000, 40), "y": rng.uniform(0, 2000, 40),
                            "category": "exploitation", "source_id": "yos"})
    b = pd.DataFrame({"building_id": ["w", "e"], "type": "school", "x": [1000.0, 3000.0], "y": [1000.0, 1000.0]})
    out = category_counts(b, records, ["exploitation"], [250.0], area, coverage=coverage,
                          sites=rng.uniform(0, 4000, (5000, 2)).clip([0, 0], [4000, 2000]), n_sim=199)
    assert np.isclose(out["expected_exploitation_250"].iloc[0], 40 * math.pi * 250 ** 2 / 2000 ** 2, rtol=1e-3)
    assert out["expected_exploitation_250"].iloc[1] == 0
    assert np.isnan(out["q_exploitation_250"].iloc[1]) and np.isnan(out["rr_exploitation_250"].iloc[1])
    assert 0 < out["q_exploitation_250"].iloc[0] <= 1


def test_a_source_s_records_outside_its_coverage_are_neither_observed_nor_expected(example_result):
    """Statistics audit: 424 of the example's City police records lie outside the City (its declared coverage),
    up to 3.9 km away. They counted around every building where they fell, while the expected count spread
    the City police's rate over the City only: Aldgate East (1.2 % of its 250 m catchment in the City) read a
    relative risk of 1.49 on 16 of them. Recomputed here from the records: each source's risk records inside
    its own coverage, counted within 250 m and expected as the sum over sources of its weight over the part of
    the study area it covers times the part of the catchment there (256-sided discs scaled to pi r^2)."""
    from scipy.spatial import cKDTree
    r = example_result
    geoms = dict(zip(r.coverage["source_id"].astype(str), r.coverage.geometry.values))
    kept = risk_in_own_coverage(r)
    city = r.incidents[(r.incidents["weight"] > 0).to_numpy() & (r.incidents["source_id"] == "city_police").to_numpy()]
    assert len(city) - int((kept["source_id"] == "city_police").sum()) > 300     # the audit's 424 of 4,225
    b = r.buildings[np.isfinite(r.buildings["rr_250"].to_numpy(float))].reset_index(drop=True)
    xy = b[["x", "y"]].to_numpy(float)
    near = cKDTree(kept[["x", "y"]].to_numpy()).query_ball_point(xy, 250.0)
    w = kept["weight"].to_numpy()
    n = np.array([len(i) for i in near])
    weighted = np.array([w[i].sum() for i in near])
    discs = shapely.buffer(shapely.points(xy), 250.0, quad_segs=64)
    scale = math.pi * 250.0 ** 2 / shapely.area(shapely.buffer(shapely.Point(0, 0), 250.0, quad_segs=64))
    expected = np.zeros(len(b))
    for s in set(kept["source_id"].astype(str)):
        part = shapely.intersection(geoms[s], r.study_area) if s in geoms else r.study_area
        total = w[(kept["source_id"].astype(str) == s).to_numpy()].sum()
        expected += total / part.area * shapely.area(shapely.intersection(discs, part)) * scale
    assert np.array_equal(b["n_250"].to_numpy(), n)
    np.testing.assert_allclose(b["weighted_250"].to_numpy(float), weighted, rtol=1e-9)
    np.testing.assert_allclose(b["expected_250"].to_numpy(float), expected, rtol=2e-3)
    np.testing.assert_allclose(b["rr_250"].to_numpy(float), weighted / expected, rtol=2e-3)
    aldgate = b["name"].eq("Aldgate East").to_numpy()
    assert aldgate.sum() == 1 and 0.6 < float(b.loc[aldgate, "rr_250"].iloc[0]) < 0.7
