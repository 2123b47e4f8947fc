"""The simulated partner extracts: deterministic, in their real formats, dirty, with the planted
patterns where the truth table says they are.

The generator lives in examples/ (it is not part of the package); truth.csv is read here only.
"""
from __future__ import annotations

import glob
import importlib.util
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook
from pyproj import Transformer

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("generate_partner_data",
                                               REPO / "examples" / "generate_partner_data.py")
gen = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = gen  # dataclasses look their module up there
_spec.loader.exec_module(gen)

pytestmark = pytest.mark.skipif(not gen.SHARED_LONDON.is_dir(),
                                reason=f"shared London data not found at {gen.SHARED_LONDON}")

ED, YOS, CI, LEGACY = gen.ED_FILE, gen.YOS_FILE, gen.CI_FILE, gen.LEGACY_FILE
DMY = re.compile(r"^\d{2}/\d{2}/\d{4}$")


def _within(df: pd.DataFrame, centre: tuple[float, float], radius: float) -> np.ndarray:
    return np.hypot(df["easting"] - centre[0], df["northing"] - centre[1]).to_numpy() <= radius


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("partners")
    started = time.perf_counter()
    info = gen.generate(out, seed=2018)
    info["elapsed_s"] = time.perf_counter() - started
    return info


@pytest.fixture(scope="module")
def truth(run) -> pd.DataFrame:
    return pd.read_csv(run["truth"], keep_default_na=False, na_values=[""],
                       dtype={"police_crime_id": str, "dirt": str, "target_name": str})


@pytest.fixture(scope="module")
def ed(run) -> pd.DataFrame:
    return pd.read_csv(run["files"][ED]["path"], dtype=str, keep_default_na=False,
                       encoding="utf-8-sig")


@pytest.fixture(scope="module")
def yos(run) -> pd.DataFrame:
    return pd.read_excel(run["files"][YOS]["path"], header=run["yos_header_row"] - 1, dtype=object)


@pytest.fixture(scope="module")
def ci(run) -> pd.DataFrame:
    return pd.read_csv(run["files"][CI]["path"], dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def legacy(run) -> pd.DataFrame:
    return pd.read_csv(run["files"][LEGACY]["path"], dtype=str, keep_default_na=False,
                       encoding="cp1252")


@pytest.fixture(scope="module")
def police_violence() -> pd.DataFrame:
    files = sorted(glob.glob(str(gen.DEFAULT_POLICE / "*.csv")))
    po = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    po = po[po["Crime type"] == "Violence and sexual offences"].dropna(subset=["Longitude"])
    x, y = Transformer.from_crs(4326, 27700, always_xy=True).transform(
        po["Longitude"].to_numpy(), po["Latitude"].to_numpy())
    return po.assign(easting=x, northing=y)


def test_same_seed_writes_identical_bytes_and_another_seed_does_not(run, tmp_path):
    again = gen.generate(tmp_path / "again", seed=2018)
    for name in [ED, YOS, CI, LEGACY, gen.TRUTH_FILE]:
        first = Path(run["out_dir"], name).read_bytes()
        assert Path(again["out_dir"], name).read_bytes() == first, name
    other = gen.generate(tmp_path / "other", seed=7, n_scale=0.3)
    assert Path(other["out_dir"], ED).read_bytes() != Path(run["out_dir"], ED).read_bytes()


def test_generation_takes_under_ten_seconds(run):
    assert run["elapsed_s"] < 10


def test_each_file_has_its_real_format_columns(run, ed, yos, ci, legacy):
    assert list(ed.columns) == gen.ED_COLUMNS
    assert {"Arrival_Date", "Arrival_Time", "Assault_Date", "Assault_Time", "Assault_Location_Type",
            "Assault_Location_Free_Text", "Assault_Weapon"} <= set(ed.columns)
    assert list(yos.columns) == gen.YOS_COLUMNS
    assert list(ci.columns) == gen.CI_COLUMNS
    assert list(legacy.columns) == gen.LEGACY_COLUMNS
    # columns a loader's allow-list must drop are really there
    for name, cols in run["never_survive"].items():
        assert set(cols) <= set(run["files"][name]["columns"]), name
    # the ED extract is "CSV UTF-8" from Excel: BOM and CRLF
    raw = Path(run["files"][ED]["path"]).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw


def test_yos_sheet_has_title_rows_above_the_header(run):
    ws = load_workbook(run["files"][YOS]["path"]).active
    assert ws.title == "Referrals"
    assert "Referrals" in str(ws["A1"].value)
    assert ws["A3"].value is None
    assert [c.value for c in ws[run["yos_header_row"]]] == gen.YOS_COLUMNS


def test_truth_has_one_row_per_data_row_of_each_file(run, truth, ed, yos, ci, legacy):
    frames = {ED: ed, YOS: yos, CI: ci, LEGACY: legacy}
    for name, df in frames.items():
        t = truth[truth["file"] == name]
        assert len(t) == len(df) == run["files"][name]["rows"], name
        assert t["row"].tolist() == list(range(1, len(df) + 1)), name
    new_files = [gen.MISSING_FILE, gen.CHILDREN_HOMES_FILE, gen.CARE_HOMES_FILE]
    for name in new_files:
        df = pd.read_csv(run["files"][name]["path"], encoding="utf-8-sig", dtype=str, keep_default_na=False)
        t = truth[truth["file"] == name]
        assert len(t) == len(df) == run["files"][name]["rows"], name
        assert t["record_id"].tolist() == df.iloc[:, 1 if name == gen.CARE_HOMES_FILE else 0].tolist(), name
    assert len(truth) == sum(len(df) for df in frames.values()) + sum(run["files"][n]["rows"] for n in new_files)
    # record ids line up row by row
    assert truth.loc[truth["file"] == ED, "record_id"].tolist() == ed["ED_Attendance_Ref"].tolist()
    assert truth.loc[truth["file"] == CI, "record_id"].tolist() == ci["Intel_Ref"].tolist()
    assert truth.loc[truth["file"] == YOS, "record_id"].tolist() == yos["Referral ID"].tolist()
    # 300 referrals plus the 30 planted around the exploitation children's home
    assert 1400 <= len(ed) <= 1600 and 310 <= len(yos) <= 350 and 550 <= len(ci) <= 650
    assert 40 <= len(legacy) <= 120


def test_hospital_hotspot_is_concentrated_where_police_record_almost_nothing(
        run, truth, police_violence):
    pat = run["patterns"]["hospital_hotspot"]
    centre = (pat["easting"], pat["northing"])
    assert pat["place"] == "Shoreditch High Street station"
    assert centre == (533555.0, 182248.0)  # the TfL stations file's point
    hot = truth[truth["pattern"] == "hospital_hotspot"]
    assert set(hot["file"]) == {ED}
    assert len(hot) >= 200
    assert _within(hot, centre, 300).mean() > 0.9
    n_police = _within(police_violence, centre, 300).sum()
    assert n_police <= 5 < len(hot) / 20
    # and the anecdotal sources do not show it
    anecdotal = truth[truth["file"].isin([CI, LEGACY])]
    assert _within(anecdotal, centre, 300).sum() < len(hot) / 10


def test_anecdotal_hotspot_is_concentrated_where_hospital_and_police_see_little(
        run, truth, police_violence):
    pat = run["patterns"]["anecdotal_hotspot"]
    centre = (pat["easting"], pat["northing"])
    assert pat["place"] == "Hoxton station"
    hot = truth[truth["pattern"] == "anecdotal_hotspot"]
    assert set(hot["file"]) == {CI, LEGACY}
    assert len(hot) >= 120
    assert _within(hot, centre, 300).mean() > 0.85
    assert _within(police_violence, centre, 300).sum() == 0
    assert _within(truth[truth["file"] == ED], centre, 300).sum() < len(hot) / 10
    hospital = run["patterns"]["hospital_hotspot"]
    assert np.hypot(centre[0] - hospital["easting"], centre[1] - hospital["northing"]) > 600


def test_planted_duplicates_match_police_violence_in_month_and_place(truth, ed, police_violence):
    dup = truth[truth["pattern"] == "duplicate_of_police"]
    assert 15 <= len(dup) <= 30
    assert set(dup["file"]) == {ED}
    by_id = police_violence.set_index("Crime ID")
    for _, t in dup.iterrows():
        p = by_id.loc[t["police_crime_id"]]
        assault = pd.to_datetime(ed.loc[t["row"] - 1, "Assault_Date"], format="%d/%m/%Y")
        assert assault.strftime("%Y-%m") == p["Month"]
        assert np.hypot(p["easting"] - t["easting"], p["northing"] - t["northing"]) <= 100
        assert t["location_kind"] in {"street", "postcode"}


def test_ed_extract_carries_realistic_dirt(ed, truth):
    parsed = pd.to_datetime(ed["Assault_Date"], format="%d/%m/%Y", errors="coerce")
    impossible = ed["Assault_Date"].isin(gen.IMPOSSIBLE_DATES) | ed["Arrival_Date"].isin(
        gen.IMPOSSIBLE_DATES)
    assert impossible.sum() >= 3
    assert parsed.isna().sum() > (ed["Assault_Date"] == "").sum()  # more than blanks fail
    assert (ed["Assault_Date"] == "").mean() > 0.03
    assert ed["Assault_Time"].str.lower().isin(["unknown", "unk", "n/k", "?"]).sum() >= 20
    assert (ed["Assault_Time"] == "").sum() >= 20
    swapped = ed["Arrival_Date"].str.fullmatch(r"\d{2}:\d{2}") | ed["Assault_Date"].str.fullmatch(
        r"\d{2}:\d{2}")
    assert swapped.sum() >= 2
    assert ed["Assault_Location_Free_Text"].str.endswith(" ").sum() >= 20
    assert ed["Assault_Location_Type"].str.endswith(" ").sum() >= 10
    assert (ed["Assault_Location_Type"].str.strip().str.lower() != ed["Assault_Location_Type"]
            .str.strip()).sum() > 0 and ed["Assault_Location_Type"].str.islower().sum() >= 20
    assert ed["Assault_Location_Free_Text"].str.contains("\n").sum() >= 1
    assert ed.duplicated().sum() >= 3  # the same attendance exported twice
    text = ed["Assault_Location_Free_Text"].str.lower()
    assert text.isin(["home", "dont know", "unknown", ""]).sum() >= 20
    assert text.str.contains(r"\bstn\b|station").sum() >= 50
    assert truth["dirt"].fillna("").str.contains("typo").sum() >= 10
    # everything valid stays in the study period
    ok = parsed.dropna()
    assert (ok >= "2017-12-01").mean() > 0.99 and (ok <= "2019-11-30").mean() > 0.99


def test_ed_times_lean_to_nights_and_weekends(truth):
    t = truth[truth["file"] == ED]
    hours = pd.to_datetime(t["true_time"], format="%H:%M").dt.hour
    assert ((hours >= 20) | (hours < 4)).mean() > 0.4
    dow = pd.to_datetime(t["true_date"]).dt.day_of_week
    assert dow.isin([4, 5, 6]).mean() > 0.5
    assert t["true_date"].min() >= "2017-12-01" and t["true_date"].max() <= "2019-11-30"


def test_yos_sheet_mixes_excel_and_text_dates_and_dirty_codes(run, yos):
    kinds = yos["Referral Date"].map(lambda v: type(v).__name__).value_counts()
    assert kinds.get("datetime", 0) >= 200 and kinds.get("str", 0) >= 20
    risk = yos["Risk Rating"]
    assert set(risk.dropna().str.strip().str.title()) == {"Red", "Amber", "Green"}
    assert risk.isna().sum() >= 5
    assert (risk.dropna() != risk.dropna().str.strip().str.title()).sum() >= 10
    pc = yos["Incident Postcode"].dropna().astype(str)
    valid = pc.str.upper().str.replace(" ", "").str.fullmatch(r"[A-Z]{1,2}\d[A-Z\d]?\d[A-Z]{2}")
    assert valid.mean() > 0.8 and (~valid).sum() >= 10
    assert pc.str.islower().sum() >= 10 and (~pc.str.contains(" ")).sum() >= 20
    assert set(yos["Role"].str.lower()) == {"victim", "perpetrator", "at risk"}
    assert set(yos["Concern Type"]) == set(gen.CONCERNS)


def test_community_intel_is_graded_3x5x2_with_mixed_location_columns(ci, legacy):
    assert set(ci["Source_Eval"]) <= {"1", "2", "3", ""}
    assert set(ci["Intel_Eval"].str.upper()) == set("ABCDE")
    assert (ci["Intel_Eval"] == "E").sum() >= 5
    assert set(ci["Handling"]) <= {"P", "C", ""}
    c_rows = ci[ci["Handling"] == "C"]
    assert (c_rows["Handling_Conditions"] != "").sum() >= 10
    assert (c_rows["Handling_Conditions"] == "").sum() >= 5
    assert (ci.loc[ci["Handling"] == "P", "Handling_Conditions"] == "").all()
    located = (ci[["Grid_Ref", "Postcode", "Lon"]] != "").sum(axis=1)
    assert located.max() == 1  # one way of giving the location per row
    assert (located == 0).sum() >= 5
    for col in ["Grid_Ref", "Postcode", "Lon"]:
        assert (ci[col] != "").sum() >= 80, col
    assert ci["Grid_Ref"].str.fullmatch(r"TQ \d{5} \d{5}").sum() >= 30
    assert ci["Report_Date"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").sum() >= 200
    assert ci["Report_Date"].str.fullmatch(r"\d{2}/\d{2}/\d{4}").sum() >= 100
    assert set(ci["Report_Type"]) == {"community report", "youth worker concern", "intelligence"}
    # legacy 5x5x5
    assert set(legacy["Source_Grade"]) <= set("ABCDE")
    assert set(legacy["Intel_Grade"]) <= set("12345")
    assert {"4", "5"} <= set(legacy["Handling_Code"])
    assert legacy["Intelligence_Text"].str.contains("£").any()


def test_location_targets_are_real_reference_places(truth, ed, ci):
    cp = gen._read_postcodes(gen.DEFAULT_POSTCODES)[0].set_index("postcode")
    stations = gen._read_stations(gen.DEFAULT_STATIONS).set_index("name")
    pcs = truth[truth["location_kind"] == "postcode"]
    assert len(pcs) > 500
    assert np.allclose(cp.loc[pcs["target_name"], "x"], pcs["target_easting"])
    assert np.allclose(cp.loc[pcs["target_name"], "y"], pcs["target_northing"])
    st = truth[truth["location_kind"] == "station"]
    assert np.allclose(stations.loc[st["target_name"], "x"], st["target_easting"])
    assert (truth.loc[truth["location_kind"] == "junk", "target_easting"].isna()).all()
    # the text written names its target: postcodes appear in the ED free text
    e = truth[(truth["file"] == ED) & (truth["location_kind"] == "postcode")]
    text = ed.loc[e["row"] - 1, "Assault_Location_Free_Text"].str.upper().str.replace(" ", "")
    assert all(t.replace(" ", "") in s for t, s in zip(e["target_name"], text))
    # and grid references land in the square they denote
    g = truth[(truth["file"] == CI) & (truth["location_kind"] == "grid_ref")]
    off = np.hypot(g["easting"] - g["target_easting"], g["northing"] - g["target_northing"])
    assert off.max() < 75  # half the diagonal of a 100 m square


def test_grid_reference_conversion():
    assert gen.bng_to_gridref(533555, 182248)[0] == "TQ 33555 82248"
    ref, cx, cy = gen.bng_to_gridref(533555, 182248, digits=6)
    assert (ref, cx, cy) == ("TQ 335 822", 533550.0, 182250.0)
    assert gen.bng_to_gridref(325000, 675000, digits=4)[0] == "NT 25 75"  # Edinburgh


def test_accepts_reference_files_copied_elsewhere(tmp_path):
    ref = tmp_path / "ref"
    (ref / "police").mkdir(parents=True)
    shutil.copy(gen.DEFAULT_POSTCODES / "ec.csv", ref / "ec.csv")
    shutil.copy(gen.DEFAULT_POSTCODES / "e.csv", ref / "e.csv")
    shutil.copy(gen.DEFAULT_STATIONS, ref / "stations.csv")
    for f in sorted(gen.DEFAULT_POLICE.glob("2018-0*.csv")):
        shutil.copy(f, ref / "police" / f.name)
    info = gen.generate(tmp_path / "out", seed=1, n_scale=0.2,
                        postcodes_csv=[ref / "ec.csv", ref / "e.csv"],
                        stations_csv=ref / "stations.csv", schools_csv=None,
                        police_csvs=ref / "police",
                        streets=["Cheapside", "Liverpool Street", "Bishopsgate", "Aldgate"])
    t = pd.read_csv(info["truth"], keep_default_na=False, na_values=[""])
    assert set(t.loc[t["location_kind"] == "street", "target_name"]) <= {
        "Cheapside", "Liverpool Street", "Bishopsgate", "Aldgate"}
    assert t.loc[t["location_kind"] == "postcode", "target_name"].str.match(r"^(EC|E)\d").all()
    assert info["files"][ED]["rows"] == 300
    dup = t[t["pattern"] == "duplicate_of_police"]
    assert len(dup) >= 1 and dup["true_date"].str[:7].between("2018-01", "2018-09").all()
