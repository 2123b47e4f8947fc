"""Partner sources in their real formats: the ED ISTV extract, the youth offending service's Excel log,
3x5x2 community intelligence and the legacy 5x5x5 export, loaded into the common schema.

The files are the generator's seed-2018 output bundled with the example; the truth table says which
dirt was planted in which row, so every reject below is checked against what was planted.
"""
from __future__ import annotations

import contextlib
import io
import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook
from shapely.geometry import Point

from hotspots.config import load_config
from hotspots.load import finish, load_sources
from hotspots.load.geocode import PARTIAL_POSTCODE
from hotspots.schema import FIELDS
from hotspots.weight import apply_weights, weight_table
from tests import partners as P


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    return P.loaded_partners(str(tmp_path_factory.mktemp("partners")))


def _reasons(loaded, source_id, rows):
    rej = P.rejects_of(loaded, source_id).reindex(rows)
    return rej["reason"].fillna("LOADED").str.replace(r" '.*'$", "", regex=True)


# --------------------------------------------------------------------------- the bundled files

def test_bundled_partner_files_and_truth_are_the_generator_output_for_seed_2018(tmp_path):
    import hashlib
    import importlib.util
    import sys
    spec = importlib.util.spec_from_file_location("generate_partner_data",
                                                  P.ROOT / "examples" / "generate_partner_data.py")
    gen = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = gen
    spec.loader.exec_module(gen)
    if not gen.SHARED_LONDON.is_dir():
        pytest.skip(f"shared London data not found at {gen.SHARED_LONDON}")
    gen.generate(tmp_path, seed=2018)

    def digest(path):
        return hashlib.sha256(path.read_bytes()).hexdigest()
    for name in (P.ED, P.YOS, P.CI, P.LEGACY):
        assert digest(tmp_path / name) == digest(P.PARTNERS / name), name
    assert digest(tmp_path / "truth.csv") == digest(P.TRUTH)
    assert not (P.PARTNERS / "truth.csv").exists()      # the truth is for tests, never for a schema


# --------------------------------------------------------------------------- row accounting

def test_each_generated_file_accounts_for_every_row(loaded):
    cfg, ld = loaded
    acc = ld.ledger.accounting(ld.incidents).set_index("source_id")
    got = {s: acc.loc[s, ["rows_read", "rows_loaded", "rows_filtered", "rows_rejected"]].tolist()
           for s in ("ed", "yos", "intel", "legacy")}
    assert got == {"ed": [1500, 1058, 0, 442], "yos": [330, 290, 0, 40], "intel": [600, 552, 0, 48],
                   "legacy": [82, 79, 0, 3]}
    assert (acc["rows_read"] == acc["rows_loaded"] + acc["rows_filtered"] + acc["rows_rejected"]).all()


def test_validate_prints_each_generated_file_with_its_top_reject_reasons(tmp_path):
    from hotspots.cli import main
    cfg = P.partner_config(tmp_path)     # the police data names the streets the ED texts mention
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["validate", str(cfg)])
    out = buf.getvalue()
    assert code == 0
    lines = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines() if ln and not ln.startswith(" ")}
    assert lines["ed"] == ["1", "1,500", "1,058", "0", "442"]
    assert lines["yos"] == ["1", "330", "290", "0", "40"]
    # validate holds back the records run holds back (handling code C, no conditions in the config): filtered
    assert lines["intel"] == ["1", "600", "487", "65", "48"]
    assert lines["legacy"] == ["1", "82", "65", "14", "3"]      # 5x5x5 handling 4 and 5 held back
    assert "top reject reasons: location not geocoded (399); no location (33); impossible date (4)" in out
    # The generator's partial postcodes ("E1", "EC1V") are named as such, apart from the malformed ones.
    assert ("top reject reasons: not a valid postcode (23); no location (10); partial postcode (district or "
            "sector only): too wide to place (4)") in out
    assert "top reject reasons: no location (31); no date (3); malformed grid reference (3)" in out


# --------------------------------------------------------------------------- dirty values

@pytest.mark.parametrize("source_id, name, tag, reason, columns", [
    ("ed", P.ED, "impossible_date:Assault_Date", "impossible date", "Assault_Date"),
    ("ed", P.ED, "swapped:Assault_Date:Assault_Time", "date and time swapped", "Assault_Date,Assault_Time"),
    ("ed", P.ED, "year_typo", "date in the future", "Assault_Date"),
    ("intel", P.CI, "malformed_grid_ref", "malformed grid reference", "Grid_Ref"),
    ("intel", P.CI, "zero_lon_lat", "zero coordinates", "Lon,Lat"),
    ("intel", P.CI, "blank_report_date", "no date", "Report_Date"),
    ("intel", P.CI, "blank_source_eval", "no source evaluation", "Source_Eval"),
    ("intel", P.CI, "no_location", "no location", "Grid_Ref,Postcode,Lon,Lat"),
    ("yos", P.YOS, "blank_postcode", "no location", "Incident Postcode"),
    ("legacy", P.LEGACY, "no_location", "no location", "Location"),
])
def test_dirty_values_are_rejects_naming_row_reason_and_columns(loaded, source_id, name, tag, reason, columns):
    _, ld = loaded
    t = P.truth_of(name)
    rows = t.index[P.has_dirt(t, tag)]
    assert len(rows) >= 1
    rej = P.rejects_of(ld, source_id).reindex(rows)
    assert (rej["reason"].str.replace(r" '.*'$", "", regex=True) == reason).all(), rej
    assert (rej["columns"] == columns).all()
    assert (rej["row"] == rows).all()


def test_impossible_dates_are_rejected_without_quoting_the_value(loaded):
    _, ld = loaded
    rej = P.rejects_of(ld, "ed")
    impossible = rej[rej["reason"].str.startswith("impossible date")]
    assert len(impossible) and (impossible["reason"] == "impossible date").all()
    raw = pd.read_csv(P.PARTNERS / P.ED, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    written = {raw["Assault_Date"].iloc[row - 1][:5] for row in impossible["row"]}
    assert written <= {"31/02", "30/02", "31/04", "31/06", "29/02", "00/03", "31/09", "32/01"}


def test_invalid_postcodes_are_rejects_whether_malformed_or_unknown(loaded):
    _, ld = loaded
    for source_id, name, column in (("yos", P.YOS, "Incident Postcode"), ("intel", P.CI, "Postcode")):
        t = P.truth_of(name)
        rows = t.index[P.has_dirt(t, "invalid_postcode")]
        rej = P.rejects_of(ld, source_id).reindex(rows)
        stems = rej["reason"].str.replace(r" '.*'$", "", regex=True)
        assert set(stems) <= {"not a valid postcode", "postcode not found", PARTIAL_POSTCODE}
        assert (rej["columns"] == column).all()
    raw = pd.read_csv(P.PARTNERS / P.CI, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    rej = P.rejects_of(ld, "intel")
    partial = raw.loc[rej.index[rej["reason"] == PARTIAL_POSTCODE] - 1, "Postcode"]
    assert len(partial) and partial.str.fullmatch(r"(E|EC|N|WC)[0-9][0-9V]?( 6)?").all()   # the generator's
    yos = P.rejects_of(ld, "yos")
    assert (yos["reason"] == "not a valid postcode").sum() == 23
    assert (yos["reason"] == PARTIAL_POSTCODE).sum() == 4
    assert (yos["reason"] == "postcode not found").sum() == 3


def test_swapped_longitude_and_latitude_are_put_back_with_a_note(loaded):
    _, ld = loaded
    t = P.truth_of(P.CI)
    rows = t.index[P.has_dirt(t, "swapped_lon_lat")]
    notes = ld.ledger.notes
    mine = notes[(notes["source_id"] == "intel") & notes["row"].isin(rows)]
    assert sorted(mine["row"]) == sorted(rows) and len(rows) == 3
    assert set(mine["note"]) == {"longitude and latitude swapped: corrected"}
    assert set(mine["columns"]) == {"Lon,Lat"}
    got = P.rows_of(ld, "intel").loc[rows]
    assert (np.hypot(got["x"] - t.loc[rows, "easting"], got["y"] - t.loc[rows, "northing"]) < 20).all()


def test_other_dirt_is_read_not_rejected(loaded):
    """Lower-case grades, grid references without spaces, two-digit years, text dates, odd case
    in risk ratings and roles: read as meant."""
    _, ld = loaded
    for source_id, name, tag in (("intel", P.CI, "lower_case_grade"), ("intel", P.CI, "gridref_lower"),
                                 ("ed", P.ED, "typo"), ("ed", P.ED, "embedded_newline"),
                                 ("yos", P.YOS, "postcode_format"), ("legacy", P.LEGACY, "gridref_no_spaces")):
        t = P.truth_of(name)
        rows = t.index[P.has_dirt(t, tag) & (t["location_kind"] != "junk")]
        reasons = _reasons(ld, source_id, rows)
        assert ((reasons == "LOADED") | (reasons == "no location")).all(), (tag, reasons.value_counts())


# --------------------------------------------------------------------------- ISTV (emergency department)

def test_istv_assault_time_to_the_minute_and_whole_days_when_unknown(loaded):
    _, ld = loaded
    ed = P.rows_of(ld, "ed")
    t = P.truth_of(P.ED).loc[ed.index]
    minute = ed["date_precision"] == "minute"
    assert minute.sum() == 892 and (ed["date_precision"] == "day").sum() == 166
    when = pd.to_datetime(t["true_date"] + " " + t["true_time"])
    assert (ed.loc[minute, "occurred_from"] == when[minute]).all()
    assert (ed.loc[minute, "occurred_to"] == ed.loc[minute, "occurred_from"]).all()
    unknown = P.has_dirt(t, "unknown_assault_time") | P.has_dirt(t, "blank_assault_time")
    assert (ed.loc[unknown & ~P.has_dirt(t, "blank_assault_date"), "date_precision"] == "day").all()


def test_istv_blank_assault_date_falls_back_to_the_day_before_arrival(loaded):
    _, ld = loaded
    ed = P.rows_of(ld, "ed")
    t = P.truth_of(P.ED).loc[ed.index]
    raw = pd.read_csv(P.PARTNERS / P.ED, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    blank = P.has_dirt(t, "blank_assault_date")
    assert blank.sum() == 55
    got = ed[blank]
    assert set(got["date_precision"]) == {"day"}
    assert ((got["occurred_to"] - got["occurred_from"]) == pd.Timedelta(hours=24)).all()
    arrival = pd.to_datetime(raw["Arrival_Date"] + " " + raw["Arrival_Time"], format="%d/%m/%Y %H:%M",
                             errors="coerce").to_numpy()[got.index - 1]
    timed = ~pd.isna(arrival)
    assert (got["occurred_to"].to_numpy()[timed] == arrival[timed]).all()
    true = pd.to_datetime(t.loc[blank, "true_date"] + " " + t.loc[blank, "true_time"])
    assert ((true >= got["occurred_from"]) & (true <= got["occurred_to"])).all()
    notes = ld.ledger.notes
    mine = notes[notes["source_id"] == "ed"]
    assert sorted(mine["row"]) == sorted(got.index)
    assert set(mine["note"]) == {"assault date blank: within 24 hours before arrival"}


def test_istv_two_digit_years_are_read(loaded):
    _, ld = loaded
    ed = P.rows_of(ld, "ed")
    t = P.truth_of(P.ED)
    rows = [r for r in t.index[P.has_dirt(t, "two_digit_year")] if r in ed.index]
    assert len(rows) == 6
    assert (ed.loc[rows, "occurred_from"].dt.date.astype(str) == t.loc[rows, "true_date"]).all()


def test_istv_assault_method_gives_category_and_severity_knife_highest(loaded):
    _, ld = loaded
    ed = P.rows_of(ld, "ed")
    raw = pd.read_csv(P.PARTNERS / P.ED, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    weapon = raw["Assault_Weapon"].to_numpy()[ed.index - 1]
    knife = weapon == "Knife/sharp object"
    assert knife.sum() == 101
    assert set(ed.loc[knife, "category"]) == {"violence-with-weapon"} and set(ed.loc[knife, "severity"]) == {4}
    body = weapon == "Body part (hit/punch/kick)"
    assert set(ed.loc[body, "category"]) == {"violent-crime"} and set(ed.loc[body, "severity"]) == {2}
    assert ed["severity"].max() == 4 and set(ed.loc[ed["severity"] == 4, "category"]) == {"violence-with-weapon"}
    assert ed.groupby("category").size().to_dict() == {"violence-with-weapon": 285, "violent-crime": 773}
    # the method and the location type are kept as recorded
    ltype = raw["Assault_Location_Type"].str.strip().to_numpy()[ed.index - 1]
    first = ed.index[0]
    assert ed.loc[first, "source_category"] == f"weapon: {weapon[0]}; location type: {ltype[0]}"
    assert ed["source_category"].str.contains("location type: ").sum() == (ltype != "").sum()


def test_istv_attendance_exported_twice_is_loaded_once(loaded):
    _, ld = loaded
    t = P.truth_of(P.ED)
    repeats = t.index[P.has_dirt(t, "exact_repeat_of_previous_row")]
    reasons = _reasons(ld, "ed", repeats)
    dup = P.rejects_of(ld, "ed").reindex(repeats)
    located = reasons.str.startswith("duplicate of")
    assert located.sum() == 2          # the other three name nowhere: rejected as not geocoded
    for row, reason in zip(repeats[located.to_numpy()], dup.loc[located.to_numpy(), "reason"]):
        assert reason == f"duplicate of {P.rows_of(ld, 'ed').loc[row - 1, 'incident_id']}"


# --------------------------------------------------------------------------- youth offending service (Excel)

def test_yos_mapping_reads_the_excel_log_with_its_header_on_row_4(loaded):
    _, ld = loaded
    ws = load_workbook(P.PARTNERS / P.YOS, read_only=True)["Referrals"]
    rows = list(ws.iter_rows(values_only=True))
    assert rows[3][0] == "Referral ID" and len(rows) - 4 == 330
    yos = P.rows_of(ld, "yos")
    assert len(yos) == 290 and set(yos["evidence"]) == {"partner_record"}
    assert set(yos["location_precision"]) == {"postcode"} and set(yos["location_precision_m"]) == {100.0}
    t = P.truth_of(P.YOS).loc[yos.index]
    assert (yos["occurred_from"].dt.date.astype(str) == t["true_date"]).all()   # Excel dates and text dates
    assert (np.hypot(yos["x"] - t["target_easting"], yos["y"] - t["target_northing"]) < 1).all()
    assert yos.groupby("category").size().to_dict() == {
        "exploitation": 105, "gang-activity": 44, "possession-of-weapons": 46, "robbery": 30, "violent-crime": 65}


def test_yos_red_amber_green_maps_onto_the_common_scale_keeping_the_original(loaded):
    _, ld = loaded
    yos = P.rows_of(ld, "yos")
    rag = yos["source_severity"].str.strip().str.lower()
    assert (yos.loc[rag == "red", "severity"] == 4).all() and (rag == "red").sum() == 83
    assert (yos.loc[rag == "amber", "severity"] == 3).all() and (rag == "amber").sum() == 116
    assert (yos.loc[rag == "green", "severity"] == 2).all() and (rag == "green").sum() == 77
    # the rating kept as the service wrote it, case and all
    assert {"Red", "RED", "red", "Amber", "AMBER", "amber"} <= set(yos["source_severity"])
    # no rating: the category's own severity, nothing invented in source_severity
    blank = yos["source_severity"] == ""
    assert blank.sum() == 14 and set(yos.loc[blank, "severity"]) <= {2, 3}


def test_yos_roles_map_to_victim_suspect_unknown(loaded):
    _, ld = loaded
    yos = P.rows_of(ld, "yos")
    raw = pd.read_excel(P.PARTNERS / P.YOS, header=3, dtype=str)
    said = raw["Role"].str.strip().str.lower().to_numpy()[yos.index - 1]
    assert (yos.loc[said == "victim", "role"] == "victim").all()
    assert (yos.loc[said == "perpetrator", "role"] == "suspect").all()
    assert (yos.loc[said == "at risk", "role"] == "unknown").all()
    assert yos.groupby("role").size().to_dict() == {"suspect": 103, "unknown": 95, "victim": 92}
    others = ld.incidents[ld.incidents["source_id"] != "yos"]
    assert set(others["role"].fillna("")) == {""}


# --------------------------------------------------------------------------- community intelligence

def test_intel_3x5x2_grades_handling_and_evidence_from_report_type(loaded):
    _, ld = loaded
    ci = P.rows_of(ld, "intel")
    raw = pd.read_csv(P.PARTNERS / P.CI, dtype=str, keep_default_na=False)
    rtype = raw["Report_Type"].to_numpy()[ci.index - 1]
    assert (ci.loc[rtype == "intelligence", "evidence"] == "intelligence").all()
    assert (ci.loc[rtype != "intelligence", "evidence"] == "community_report").all()
    assert ci.groupby("evidence").size().to_dict() == {"community_report": 450, "intelligence": 102}
    assert set(ci["grade_source"]) == {"1", "2", "3"} and set(ci["grade_intel"]) == set("ABCDE")
    assert (ci["grade_intel"] == raw["Intel_Eval"].str.upper().to_numpy()[ci.index - 1]).all()
    assert ci["handling"].value_counts().to_dict() == {"P": 487, "C": 62, "": 3}


def test_intel_located_by_grid_reference_postcode_or_lon_lat(loaded):
    _, ld = loaded
    ci = P.rows_of(ld, "intel")
    t = P.truth_of(P.CI).loc[ci.index]
    d = np.hypot(ci["x"] - t["easting"], ci["y"] - t["northing"])
    by = ci.assign(d=d).groupby("location_precision")["d"]
    assert by.size().to_dict() == {"area": 33, "exact": 260, "postcode": 259}
    # 6-figure references name a 100 m square (centre within 71 m); 8 and 10 figures and lon/lat are exact
    assert by.max()["area"] <= 71 and by.max()["exact"] <= 10
    assert set(ci.loc[ci["location_precision"] == "area", "location_precision_m"]) == {50.0}
    # a postcode is where its address is, a few dozen metres from the incident
    assert by.median()["postcode"] < 40


def test_legacy_5x5x5_export_in_cp1252(loaded):
    _, ld = loaded
    lg = P.rows_of(ld, "legacy")
    assert len(lg) == 79 and set(lg["evidence"]) == {"intelligence"}
    assert set(lg["grade_source"]) <= set("ABCDE") and set(lg["grade_intel"]) <= set("12345")
    assert lg["handling"].value_counts().to_dict() == {"1": 41, "3": 13, "2": 11, "4": 9, "5": 5}
    t = P.truth_of(P.LEGACY).loc[lg.index]
    assert (np.hypot(lg["x"] - t["easting"], lg["y"] - t["northing"]) < 300).all()
    assert lg.groupby("location_precision").size().to_dict() == {"area": 7, "exact": 30, "postcode": 42}


# --------------------------------------------------------------------------- the allow-list

# Columns no loaded value may equal, and free-text columns no loaded value may contain.
PERSONAL = {
    P.ED: ["ED_Attendance_Ref", "Patient_Age_Band", "Patient_Sex", "Patient_Ethnic_Category"],
    P.YOS: ["Referral ID", "Young Person Initials", "DOB", "Gender", "Home Postcode"],
    P.CI: ["Intel_Ref", "Submitting_Agency"],
    P.LEGACY: ["URN"],
}
FREE_TEXT = {P.ED: ["Assault_Location_Free_Text"], P.YOS: ["Notes"], P.CI: ["Narrative"],
             P.LEGACY: ["Intelligence_Text"]}


@pytest.mark.parametrize("source_id, name", [("ed", P.ED), ("yos", P.YOS), ("intel", P.CI),
                                             ("legacy", P.LEGACY)])
def test_personal_and_free_text_columns_never_survive_loading(loaded, source_id, name):
    _, ld = loaded
    out = finish(ld.incidents[ld.incidents["source_id"] == source_id])
    assert list(out.columns) == FIELDS + ["duplicate_of"]
    if name == P.YOS:
        raw = pd.read_excel(P.PARTNERS / name, header=3, dtype=str).fillna("")
    elif name == P.LEGACY:
        raw = pd.read_csv(P.PARTNERS / name, dtype=str, keep_default_na=False, encoding="cp1252")
    else:
        raw = pd.read_csv(P.PARTNERS / name, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    personal = {v.strip() for c in PERSONAL[name] for v in raw[c] if v.strip()}
    assert len(personal) > 20
    texts = set(np.unique(out.select_dtypes(exclude=["number", "datetime"]).astype(str).to_numpy()))
    assert not texts & personal
    # Free text ("outside Liverpool St station", a narrative) is never carried, not even inside a value.
    # (Single words such as "street" or "home" also name schema values, so only phrases are compared.)
    free = {v.strip() for c in FREE_TEXT[name] for v in raw[c] if len(v.strip()) >= 12}
    assert len(free) >= 8
    assert not any(v in cell for cell in texts for v in free)
    if name == P.YOS:   # home postcodes, however written, never reach a loaded value
        homes = {v.replace(" ", "").upper() for v in raw["Home Postcode"] if v}
        assert not any(h in cell.replace(" ", "").upper() for cell in texts for h in homes)


# --------------------------------------------------------------------------- weights

def test_weights_grade_e_and_intelligence_5_count_zero(loaded):
    cfg, ld = loaded
    inc = apply_weights(finish(ld.incidents), weight_table(cfg))
    ci, lg = inc[inc["source_id"] == "intel"], inc[inc["source_id"] == "legacy"]
    assert (ci.loc[ci["grade_intel"] == "E", "weight"] == 0).all() and (ci["grade_intel"] == "E").sum() == 28
    assert (lg.loc[lg["grade_intel"] == "5", "weight"] == 0).all()
    # 3x5x2: evidence x source x intel, e.g. a community report graded 2/C: 0.3 x 0.8 x 0.6
    one = ci[(ci["evidence"] == "community_report") & (ci["grade_source"] == "2") & (ci["grade_intel"] == "C")]
    assert np.allclose(one["weight"], 0.3 * 0.8 * 0.6)
    # 5x5x5: intelligence graded B/2: 0.5 x 0.8 x 0.8
    two = lg[(lg["grade_source"] == "B") & (lg["grade_intel"] == "2")]
    assert len(two) and np.allclose(two["weight"], 0.5 * 0.8 * 0.8)
    yos = inc[inc["source_id"] == "yos"]
    # a record about a person counts as risk for victims (or role unknown) only: roles are never summed
    assert np.allclose(yos.loc[yos["role"].isin(["victim", "unknown"]), "weight"], 0.8)
    assert (yos.loc[yos["role"] == "suspect", "weight"] == 0).all() and (yos["role"] == "suspect").sum() > 0


def test_weights_recency_and_harm_from_the_config(loaded, tmp_path):
    cfg0, ld = loaded
    extra = "\n[weights]\nrecency_half_life_months = 12\nharm = true\n"
    cfg = load_config(P.partner_config(tmp_path, extra=extra))
    table = weight_table(cfg)
    assert table["recency"]["half_life_months"] == 12.0 and table["recency"]["reference"] == "2019-11-30"
    assert table["harm"]["enabled"] and table["harm"]["severity_factor"] == {"1": 0.25, "2": 0.5, "3": 1.0, "4": 2.0}
    inc = finish(ld.incidents)
    base = apply_weights(inc, weight_table(cfg0))["weight"].to_numpy()
    both = apply_weights(inc, table)["weight"].to_numpy()
    ed = (inc["source_id"] == "ed").to_numpy() & (inc["duplicate_of"] == "").to_numpy()
    mid = inc["occurred_from"] + (inc["occurred_to"] - inc["occurred_from"]) / 2
    age = (pd.Timestamp("2019-12-01") - mid).dt.total_seconds() / (30.4375 * 86400)
    factor = 0.5 ** (age / 12) * inc["severity"].map({1: 0.25, 2: 0.5, 3: 1.0, 4: 2.0}).astype(float)
    assert np.allclose(both[ed], base[ed] * factor.to_numpy()[ed])
    # an incident in the last days of the period keeps almost all its weight; two years earlier a quarter
    assert (0.5 ** (age / 12)).max() > 0.99 and 0.24 < (0.5 ** (age / 12)).min() < 0.26


def test_weights_table_rejects_a_bad_harm_value(tmp_path):
    from hotspots.errors import UserError
    with pytest.raises(UserError, match="harm should be true or false"):
        weight_table(load_config(P.partner_config(tmp_path, extra="\n[weights]\nharm = \"yes\"\n", police=False)))


# --------------------------------------------------------------------------- partner_generic

def _generic_points(loaded):
    _, ld = loaded
    yos = P.rows_of(ld, "yos").head(40).reset_index(drop=True)
    return pd.DataFrame({"ref": [f"R{i}" for i in range(len(yos))], "when": yos["occurred_from"].dt.strftime("%d.%m.%Y"),
                         "what": ["Knife carrying", "Robbery"] * 20, "level": ["High", "Low"] * 20,
                         "x": yos["x"].to_numpy(), "y": yos["y"].to_numpy()})


def _write_mapping(folder, location, reader=None):
    mapping = {"name": "council_asb", "reader": reader or {"format": "auto"},
               "fields": {"category": {"column": "what", "map": {"Knife carrying": "possession-of-weapons",
                                                                 "Robbery": "robbery"}},
                          "severity": {"column": "level", "map": {"High": 4, "Low": 1}},
                          "source_severity": {"column": "level"}},
               "date": {"column": "when", "formats": ["%Y-%m-%d", "%d.%m.%Y"]},
               "location": location}
    (folder / "mapping.json").write_text(json.dumps(mapping), encoding="utf-8")


@pytest.mark.parametrize("kind", ["csv_en", "geojson", "gpkg", "excel_lonlat"])
def test_partner_generic_reads_csv_excel_geojson_and_geopackage(loaded, tmp_path, kind):
    pts = _generic_points(loaded)
    location = {"kind": "geometry"}
    if kind == "csv_en":
        path = tmp_path / "council.csv"
        pts.rename(columns={"x": "easting", "y": "northing"}).to_csv(path, index=False)
        location = {"kind": "en", "x": "easting", "y": "northing"}
    elif kind == "excel_lonlat":
        from pyproj import Transformer
        lon, lat = Transformer.from_crs(27700, 4326, always_xy=True).transform(pts["x"], pts["y"])
        path = tmp_path / "council.xlsx"
        pts.drop(columns=["x", "y"]).assign(lon=lon, lat=lat).to_excel(path, index=False)
        location = {"kind": "lonlat", "x": "lon", "y": "lat"}
    else:
        gdf = gpd.GeoDataFrame(pts.drop(columns=["x", "y"]),
                               geometry=[Point(x, y) for x, y in zip(pts["x"], pts["y"])], crs=27700)
        if kind == "geojson":
            path = tmp_path / "council.geojson"
            gdf.to_crs(4326).to_file(path, driver="GeoJSON")
        else:
            path = tmp_path / "council.gpkg"
            gdf.to_file(path, layer="reports", driver="GPKG")
    _write_mapping(tmp_path, location)
    toml = tmp_path / "p.toml"
    toml.write_text(f'[study]\nstart = "2017-12"\nend = "2019-11"\n\n[[sources]]\nid = "council"\npath = "{path.name}"\n'
                    f'schema = "partner_generic"\nmapping = "mapping.json"\n', encoding="utf-8")
    ld = load_sources(load_config(toml))
    inc = ld.incidents
    assert len(inc) == 40 and not len(ld.ledger.rejects)
    assert np.allclose(inc["x"], pts["x"], atol=2) and np.allclose(inc["y"], pts["y"], atol=2)
    assert inc["category"].tolist() == ["possession-of-weapons", "robbery"] * 20
    assert inc["severity"].tolist() == [4, 1] * 20 and inc["source_severity"].tolist() == ["High", "Low"] * 20
    assert set(inc["evidence"]) == {"partner_record"} and set(inc["date_precision"]) == {"day"}


def test_partner_generic_mapping_without_a_date_column_is_a_user_error(tmp_path):
    from hotspots.errors import UserError
    (tmp_path / "m.json").write_text(json.dumps({"location": {"kind": "postcode", "column": "pc"}}))
    (tmp_path / "a.csv").write_text("pc,d\nEC1A 1AA,2018-01-01\n")
    toml = tmp_path / "p.toml"
    toml.write_text('[study]\nstart = "2018-01"\nend = "2018-12"\n\n[[sources]]\nid = "a"\npath = "a.csv"\n'
                    'schema = "partner_generic"\nmapping = "m.json"\n')
    with pytest.raises(UserError, match="no date column"):
        load_sources(load_config(toml))
