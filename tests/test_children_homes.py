"""The example's children's homes and care homes, profiled like every key building, with the youth
service's exploitation concerns and the missing episodes counted around each.

Counts are recomputed here from the partners' files and the Code-Point Open postcodes with csv,
openpyxl and numpy: not through the loader or the profile under test.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
from openpyxl import load_workbook

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "london_city_fringe"
PARTNERS = EXAMPLE / "data" / "partners"


def _postcodes() -> dict[str, tuple[float, float]]:
    out = {}
    for f in sorted((EXAMPLE / "data" / "postcodes").glob("*.csv")):
        with open(f, encoding="latin-1", newline="") as fh:
            for row in csv.reader(fh):
                out[row[0].replace(" ", "").upper()] = (float(row[2]), float(row[3]))
    return out


PC = _postcodes()


def _xy(postcode) -> tuple[float, float] | None:
    return PC.get(str(postcode or "").replace(" ", "").upper())


def homes() -> dict[str, tuple[float, float]]:
    out = {}
    with open(PARTNERS / "childrens_homes_SIMULATED.csv", encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            out[row["Setting Name"]] = ((float(row["Easting"]), float(row["Northing"])) if row["Easting"].strip()
                                        else _xy(row["Postcode"]))
    return out


def missing_points() -> np.ndarray:
    with open(PARTNERS / "missing_episodes.csv", encoding="utf-8-sig", newline="") as fh:
        pts = [_xy(r["Last Seen Postcode"]) for r in csv.DictReader(fh)]
    return np.array([p for p in pts if p is not None])


def exploitation_points() -> np.ndarray:
    ws = load_workbook(PARTNERS / "yos_referrals.xlsx", read_only=True)["Referrals"]
    rows = list(ws.iter_rows(values_only=True))
    head = list(rows[3])
    concern, where = head.index("Concern Type"), head.index("Incident Postcode")
    pts = [_xy(r[where]) for r in rows[4:]
           if str(r[concern] or "").strip().lower() in ("criminal exploitation", "county lines")]
    return np.array([p for p in pts if p is not None])


def _within(points: np.ndarray, xy, r: float) -> int:
    return int((np.hypot(points[:, 0] - xy[0], points[:, 1] - xy[1]) <= r).sum())


def _row_of(result, xy) -> pd.Series:
    """The partner table's row of the home at ``xy`` (shown by its cell: found through the cell id)."""
    g = result.grid
    cell = g.assign(np.array([xy[0]]), np.array([xy[1]]))[0]
    rows, cols = g.rows_cols
    b = result.buildings
    hit = b[b["building_id"] == f"children_homes:sensitive-C{rows[cell]}_{cols[cell]}"]
    assert len(hit) == 1
    return hit.iloc[0]


def test_every_home_is_profiled_and_the_planted_one_alone_is_found(example_result):
    b = example_result.buildings
    assert (b["type"] == "childrens_home").sum() == 6 and b.loc[b["type"] == "childrens_home", "sensitive"].all()
    found = b[(b["type"] == "childrens_home") & (b["q_exploitation_250"] <= 0.05) & (b["q_missing_episode_250"] <= 0.05)]
    assert len(found) == 1
    planted = homes()["Willow House (simulated)"]
    row = _row_of(example_result, planted)
    assert row["building_id"] == found["building_id"].iloc[0]
    # Counted around the centre of the cell it is shown by, not its true site (whose counts, set against
    # open police data, gave the site back: a disclosure audit): equal to a count made from the raw files
    # there, and near the true site's 51 and 31.
    shown = (float(row["x"]), float(row["y"]))
    assert np.hypot(shown[0] - planted[0], shown[1] - planted[1]) <= 150 / np.sqrt(2)
    assert row["n_missing_episode_250"] == _within(missing_points(), shown, 250) == 43
    assert _within(missing_points(), planted, 250) == 51
    assert row["n_exploitation_250"] == _within(exploitation_points(), shown, 250)
    assert _within(exploitation_points(), planted, 250) == 31
    assert row["rr_missing_episode_250"] > 20 and row["rr_exploitation_250"] > 20
    # Against relocation among random places where those records could be made, not a flat Poisson rate
    # (q < 1e-20 there): BH among the six homes.
    assert 0.001 < row["q_missing_episode_250"] <= 0.05 and 0.001 < row["q_exploitation_250"] <= 0.05
    # Expected: each recording source's rate over the part of the study area it covers, times the disc's
    # part inside it.
    import shapely
    inc = example_result.incidents
    by_source = inc.loc[inc["category"] == "missing-episode", "source_id"].astype(str).value_counts()
    assert by_source.sum() == 205
    area = example_result.study_area
    cover = dict(zip(example_result.coverage["source_id"], example_result.coverage.geometry))
    disc = shapely.Point(shown).buffer(250, quad_segs=256)
    expected = 0.0
    for sid, n in by_source.items():
        region = area.intersection(cover[sid]) if sid in cover else area
        expected += n * disc.intersection(region).area / region.area
    assert np.isclose(row["expected_missing_episode_250"], expected, rtol=1e-3)


def test_the_quiet_home_is_not_found(example_result):
    quiet = homes()["Beech Lodge (simulated)"]
    row = _row_of(example_result, quiet)
    shown = (float(row["x"]), float(row["y"]))      # its cell's centre (see above)
    assert row["n_exploitation_250"] == _within(exploitation_points(), shown, 250) == 0
    assert row["n_missing_episode_250"] == _within(missing_points(), shown, 250) <= 1
    assert row["q_exploitation_250"] == 1.0 and row["q_missing_episode_250"] >= 0.5


def test_all_incident_profile_finds_the_planted_home_once_police_data_are_expected_only_where_they_exist(
        example_result):
    """The planted home lies outside police coverage. Against one study-area rate, police-dominated, its
    all-incident relative risk was 0.32 (statistics audit: 72 of the 73 buildings outside police coverage
    were "significantly low"); each source expected over the area it covers, it is 4.35 at 250 m, its
    records (partner records, no police data there) well above what those partners record elsewhere."""
    row = _row_of(example_result, homes()["Willow House (simulated)"])
    assert row["rr_250"] > 4 and row["rr_low_250"] > 3


def test_care_homes_load_from_the_cqc_format_and_are_profiled(example_result):
    b = example_result.buildings
    care = b[b["type"] == "care_home"]
    with open(PARTNERS / "cqc_care_homes_SIMULATED.csv", encoding="utf-8", newline="") as fh:
        raw = list(csv.DictReader(fh))
    assert sorted(care["name"]) == sorted(r["name"] for r in raw) and len(care) == 5
    assert not care["sensitive"].any()
    assert care["building_id"].str.fullmatch(r"care_homes:SIM-10\d\d").all()
    for r in raw:
        from pyproj import Transformer
        x, y = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True).transform(float(r["lon"]), float(r["lat"]))
        got = care[care["name"] == r["name"]].iloc[0]
        assert abs(got["x"] - x) < 0.01 and abs(got["y"] - y) < 0.01   # not sensitive: exact
        assert got["n_missing_episode_250"] == _within(missing_points(), (x, y), 250)
    types = example_result.building_types
    assert {"care_home", "childrens_home"} <= set(types["type"])
