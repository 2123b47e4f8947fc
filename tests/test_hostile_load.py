"""Hostile and careless input files at load time: every one is a clear UserError naming the
file (and the row and column where they apply) or a reject row, never a silent loss, an
"internal error" or a traceback.

The files are built in tmp_path, mostly from a real police.uk month of the bundled example
(examples/london_city_fringe/data, Open Government Licence v3.0).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hotspots.cli import main
from hotspots.config import load_config
from hotspots.errors import UserError
from hotspots.load import load_sources
from hotspots.load import readers
from hotspots.load.ledger import HotspotsWarning
from hotspots.load.location import in_great_britain, to_bng

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "examples" / "london_city_fringe" / "data"
MONTH = DATA / "city_street" / "2018-01-city-of-london-street.csv"
YOS_XLSX = DATA / "partners" / "yos_referrals.xlsx"
YOS_SCHEMA = ROOT / "examples" / "london_city_fringe" / "schemas" / "yos_referrals.json"
POSTCODES = DATA / "postcodes"
GEOCODING = f'\n[geocoding]\npostcodes = "{POSTCODES.as_posix()}/*.csv"\n'
POLICE_HEADER = ("Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,"
                 "Crime type,Last outcome category,Context")


def write_config(folder: Path, sources: list[dict], extra: str = "") -> Path:
    lines = ["[study]", 'start = "2018-01"', 'end = "2018-02"', ""]
    for src in sources:
        lines.append("[[sources]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in src.items()]
        lines.append("")
    path = folder / "p.toml"
    path.write_text("\n".join(lines) + extra, encoding="utf-8")
    return path


def police(folder: Path, path: str) -> Path:
    return write_config(folder, [{"id": "city", "path": path, "schema": "police_uk_street"}])


def cli(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def load_error(cfg: Path) -> str:
    with pytest.raises(UserError) as exc:
        load_sources(load_config(cfg))
    return str(exc.value)


def police_rows(rows: list[tuple[float, float]], crime: str = "Violence and sexual offences") -> str:
    return POLICE_HEADER + "\n" + "".join(
        f"id{i},2018-01,City of London Police,City of London Police,{lon},{lat},On or near X,,,{crime},,\n"
        for i, (lon, lat) in enumerate(rows))


# --------------------------------------------------------------------------- 1. no row the mapping recognises

def test_a_month_saved_with_semicolons_fails_the_run_naming_file_and_columns(tmp_path):
    bad = tmp_path / "2018-01-street.csv"
    bad.write_text(MONTH.read_text(encoding="utf-8-sig").replace(",", ";"), encoding="utf-8")
    code, _, err = cli("run", str(police(tmp_path, "*-street.csv")), "--out", str(tmp_path / "o"))
    assert code == 1
    assert err.startswith("hotspots: error:") and "internal error" not in err and "Traceback" not in err
    assert "2018-01-street.csv" in err
    assert "the file has: Crime ID;Month;" in err                    # the columns it has
    assert "expects: Month, Longitude, Latitude, Crime type" in err   # the columns the mapping expected
    assert "separated by semicolons" in err
    assert not (tmp_path / "o").exists()


def test_the_tools_own_outputs_picked_up_by_a_glob_fail_validate_for_that_source(tmp_path):
    (tmp_path / "2018-01-street.csv").write_bytes(MONTH.read_bytes())
    (tmp_path / "rejects.csv").write_text("source_id,file,row,reason,columns\ncity,x.csv,3,no coordinates,"
                                          "\"Longitude,Latitude\"\n", encoding="utf-8")
    (tmp_path / "areas.csv").write_text("layer,area,n,weighted,hot_cells,regions,cross_boundary_regions\n",
                                        encoding="utf-8")
    code, out, _ = cli("validate", str(police(tmp_path, "*.csv")))
    assert code == 1
    assert "source 'city' FAILED" in out
    assert "areas.csv" in out or "rejects.csv" in out
    assert "the file has: " in out and "expects: Month, Longitude, Latitude, Crime type" in out


def test_a_renamed_header_names_the_missing_column_even_in_a_file_without_rows(tmp_path):
    for name, text in (("rows.csv", MONTH.read_text(encoding="utf-8-sig")),
                       ("header_only.csv", POLICE_HEADER + "\n")):
        (tmp_path / name).write_text(text.replace("Crime type", "Offence"), encoding="utf-8")
        msg = load_error(police(tmp_path, name))
        assert name in msg and "column 'Crime type'" in msg and "Offence" in msg


def _log_schema(tmp_path) -> dict:
    """log.json (returned): a partner log of dates, eastings and northings, every row violent crime."""
    schema = {"name": "log", "extends": "partner_generic", "reader": {"format": "csv"},
              "fields": {"category": {"value": "violent-crime"}}, "date": {"column": "Date"},
              "location": {"kind": "en", "x": "Easting", "y": "Northing"}}
    (tmp_path / "log.json").write_text(json.dumps(schema), encoding="utf-8")
    return schema


def test_a_header_below_title_rows_is_found_and_its_row_given(tmp_path):
    # Hostile audit: a council log exported with a title and a date line above its header said only "no
    # column of the file is one that schema reads (the file has: Council ASB log, , ...)": nothing said the
    # header was there, two rows down, nor the one key that reads it.
    schema = _log_schema(tmp_path)
    (tmp_path / "log.csv").write_text("Council ASB log,,\nExported 02/01/2019,,\nDate,Easting,Northing\n" + "".join(
        f"05/01/2018,{532000 + k},181300\n" for k in range(30)), encoding="utf-8")
    cfg = write_config(tmp_path, [{"id": "log", "path": "log.csv", "schema": "log.json",
                                   "evidence": "partner_record"}])
    msg = load_error(cfg)
    assert "no column of the file is one that schema 'log' reads" in msg
    assert "The header looks to be on row 3 of the file: set the mapping's reader \"header_row\": 3" in msg
    schema["reader"]["header_row"] = 3
    (tmp_path / "log3.json").write_text(json.dumps(schema), encoding="utf-8")     # schema files are read once
    cfg = write_config(tmp_path, [{"id": "log", "path": "log.csv", "schema": "log3.json",
                                   "evidence": "partner_record"}])
    assert len(load_sources(load_config(cfg)).incidents) == 30


def test_an_unrelated_file_for_a_mapping_without_required_columns_names_what_it_reads(tmp_path):
    schema = {"name": "local_points", "extends": "partner_generic", "reader": {"format": "csv"},
              "fields": {"category": {"value": "violent-crime"}},
              "date": {"column": "When", "formats": ["%Y-%m-%d"]},
              "location": {"kind": "en", "x": "Easting", "y": "Northing"}}
    (tmp_path / "local.json").write_text(json.dumps(schema), encoding="utf-8")
    (tmp_path / "areas.csv").write_text("layer,area,n\nlad,Camden,3\n", encoding="utf-8")
    cfg = write_config(tmp_path, [{"id": "local", "path": "areas.csv", "schema": "local.json",
                                   "evidence": "partner_record"}])
    msg = load_error(cfg)
    assert "areas.csv" in msg and "no column of the file" in msg
    assert "the file has: layer, area, n" in msg and "expects: When, Easting, Northing" in msg


@pytest.mark.parametrize("renamed, part", [("Date", "the date column 'Date'"),
                                            ("Easting", "the location column 'Easting'"),
                                            ("Concern", "the category column 'Concern'")])
def test_a_mapped_column_missing_from_the_header_is_named_not_taken_for_blank_cells(tmp_path, renamed, part):
    # Hostile audit: a drafted mapping (no required_columns) over a month whose export renamed 'Date' to
    # 'Incident Date' rejected every row "no date (column Date)", as if the cells were blank, and the
    # loss message showed "(values not available)": nothing said the column was not there.
    schema = {"name": "council_log", "extends": "partner_generic", "reader": {"format": "csv"},
              "fields": {"category": {"column": "Concern", "map": {"Fight": "violent-crime"}}},
              "date": {"column": "Date"}, "location": {"kind": "en", "x": "Easting", "y": "Northing"}}
    (tmp_path / "log.json").write_text(json.dumps(schema), encoding="utf-8")
    header = ["Ref", "Date", "Easting", "Northing", "Concern"]
    header[header.index(renamed)] = "Incident " + renamed
    (tmp_path / "log.csv").write_text(",".join(header) + "\n" + "".join(
        f"R{k},05/01/2018,{532000 + k},181300,Fight\n" for k in range(30)), encoding="utf-8")
    cfg = write_config(tmp_path, [{"id": "log", "path": "log.csv", "schema": "log.json",
                                   "evidence": "partner_record"}])
    msg = load_error(cfg)
    assert f"file {tmp_path / 'log.csv'}, column '{renamed}': {part} that schema 'council_log' reads is not in " \
           f"the file's header" in msg
    assert f"the file has: {', '.join(header)}" in msg


def test_a_file_with_the_right_header_and_no_rows_is_empty_with_a_warning_not_an_error(tmp_path):
    (tmp_path / "2018-01-street.csv").write_bytes(MONTH.read_bytes())
    (tmp_path / "2018-02-street.csv").write_text(POLICE_HEADER + "\n", encoding="utf-8")
    with pytest.warns(HotspotsWarning, match="2018-02-street.csv: the file has no data rows"):
        loaded = load_sources(load_config(police(tmp_path, "*-street.csv")))
    acc = loaded.ledger.accounting(loaded.incidents).set_index("path")
    assert acc.loc[str(tmp_path / "2018-02-street.csv"), "rows_read"] == 0
    assert acc.loc[str(tmp_path / "2018-01-street.csv"), "rows_read"] > 0
    assert loaded.ledger.warnings == [{"source_id": "city", "file": str(tmp_path / "2018-02-street.csv"),
                                       "message": "the file has no data rows."}]


# --------------------------------------------------------------------------- 2. rejects say what, never the value

PERSONAL = "Jane DOE (DOB 14/07/2002) home 12 Acacia Ave"


def test_rejects_name_what_was_wrong_and_the_column_never_the_value(tmp_path):
    schema = {"name": "referrals", "extends": "partner_generic", "reader": {"format": "csv"},
              "required_columns": ["Date", "Postcode", "Concern", "Grade"],
              "fields": {"category": {"column": "Concern", "map": {"Knife carrying": "possession-of-weapons"}},
                         "grade_source": {"column": "Grade", "allowed": ["1", "2", "3"], "label": "grade"}},
              "date": {"column": "Date", "formats": ["%d/%m/%Y"]},
              "location": [{"kind": "postcode", "column": "Postcode"}, {"kind": "gridref", "column": "Grid"}]}
    (tmp_path / "referrals.json").write_text(json.dumps(schema), encoding="utf-8")
    rows = [("14/01/2018", PERSONAL, "", "Knife carrying", "1"),          # 1 not a valid postcode
            ("14/01/2018", "", f"SX {PERSONAL}", "Knife carrying", "1"),  # 2 malformed grid reference
            (PERSONAL, "EC1A 1BB", "", "Knife carrying", "1"),            # 3 unparseable date
            ("31/02/2018", "EC1A 1BB", "", "Knife carrying", "1"),        # 4 impossible date
            ("14/01/2018", "EC1A 1BB", "", PERSONAL, "1"),                # 5 unknown category
            ("14/01/2018", "EC1A 1BB", "", "Knife carrying", PERSONAL),   # 6 invalid grade
            ("14/01/2018", "EC1A 1BB", "", "Knife carrying", "2")]        # 7 loaded
    pd.DataFrame(rows, columns=["Date", "Postcode", "Grid", "Concern", "Grade"]).to_csv(
        tmp_path / "referrals.csv", index=False)
    cfg = write_config(tmp_path, [
        {"id": "city", "path": str(MONTH), "schema": "police_uk_street"},
        {"id": "yos", "path": "referrals.csv", "schema": "referrals.json", "evidence": "partner_record"}],
        extra=GEOCODING)
    code, _, err = cli("run", str(cfg), "--out", str(tmp_path / "o"))
    assert code == 0, err
    text = (tmp_path / "o" / "rejects.csv").read_text(encoding="utf-8")
    for word in ("Jane", "DOE", "14/07/2002", "Acacia", "31/02", "SX"):
        assert word not in text, word
    rej = pd.read_csv(tmp_path / "o" / "rejects.csv", dtype=str, keep_default_na=False)
    rej = rej[rej["source_id"] == "yos"]
    assert rej[["row", "reason", "columns"]].values.tolist() == [
        ["1", "not a valid postcode", "Postcode"],
        ["2", "malformed grid reference", "Grid"],
        ["3", "unparseable date", "Date"],
        ["4", "impossible date", "Date"],
        ["5", "unknown category", "Concern"],
        ["6", "invalid grade (allowed: 1, 2, 3)", "Grade"]]


def test_no_reject_reason_in_the_load_stage_quotes_a_cell():
    """An audit of the source: a reason is built from literals and schema text, never from a cell."""
    import re
    for name in ("mapping.py", "dates.py", "geocode.py", "location.py", "buildings.py"):
        src = (ROOT / "hotspots" / "load" / name).read_text(encoding="utf-8")
        assert not re.search(r"""(reason|why|bad)\[[^\]]*\]\s*=\s*[^\n]*(\+ *"'"|"' *\+|'\{raw)""", src), name


# --------------------------------------------------------------------------- 3. a column limit, before parsing

def test_a_file_of_a_million_columns_is_refused_from_its_header_before_pandas_parses_it(tmp_path, monkeypatch):
    wide = tmp_path / "2018-01-street.csv"
    extra = "," + ",".join(f"c{i}" for i in range(1_000_000))
    with open(wide, "w", encoding="utf-8") as fh:
        fh.write(POLICE_HEADER + extra + "\n")
        for i in range(50):
            fh.write(f"id{i},2018-01,City,City,-0.09,51.515,On or near X,,,Robbery,," + "," * 1_000_000 + "\n")

    def no_parse(*a, **k):
        raise AssertionError("pandas was asked to parse the file")
    monkeypatch.setattr(readers.pd, "read_csv", no_parse)
    msg = load_error(police(tmp_path, wide.name))
    assert "2018-01-street.csv" in msg and "1,000,012 columns" in msg and "2,000" in msg


def test_rows_far_wider_than_the_header_are_refused_before_pandas_parses_them(tmp_path, monkeypatch):
    wide = tmp_path / "m.csv"
    with open(wide, "w", encoding="utf-8") as fh:
        fh.write(POLICE_HEADER + "\n")
        fh.write("id0,2018-01,City,City,-0.09,51.515,On or near X,,,Robbery,,\n")
        fh.write("id1,2018-01,City,City,-0.09,51.515,On or near X,,,Robbery,," + ",x" * 1_000_000 + "\n")

    def no_parse(*a, **k):
        raise AssertionError("pandas was asked to parse the file")
    monkeypatch.setattr(readers.pd, "read_csv", no_parse)
    msg = load_error(police(tmp_path, wide.name))
    assert "m.csv" in msg and "line 3 of the file has 1,000,012 fields" in msg


def test_the_widest_line_passes_over_only_blocks_that_cannot_hold_a_wide_line(tmp_path, monkeypatch):
    """``_widest_line(at_least=n)`` skips blocks whose lines are all shorter than n bytes: it finds any
    line of n delimiters or more where the full count does (in a block, across blocks, the first
    line, the last without a newline) and never reports one that is not there."""
    monkeypatch.setattr(readers, "WIDTH_BLOCK", 4096)
    rng = np.random.default_rng(5)
    for trial in range(40):
        lines = [",".join("x" * int(k) for k in rng.integers(0, 12, rng.integers(1, 20))) for _ in range(400)]
        for at in rng.integers(0, len(lines), rng.integers(0, 3)):
            lines[at] = "," * int(rng.integers(150, 9000)) + lines[at]
        text = "\n".join(lines) + ("\n" if trial % 2 else "")
        path = tmp_path / f"w{trial}.csv"
        path.write_text(text, encoding="utf-8")
        full = readers._widest_line(path, ",", "utf-8")
        assert full[1] == max(line.count(",") for line in lines)
        for n in (100, 2000, 5000):
            got = readers._widest_line(path, ",", "utf-8", at_least=n)
            if full[1] >= n:
                assert got == full
            else:
                assert got[1] < n


def test_a_row_with_one_field_too_many_keeps_its_columns_in_place(tmp_path):
    # pandas' default made the first fields of such a file an index, shifting every column
    (tmp_path / "m.csv").write_text(POLICE_HEADER + "\n"
                                    "id0,2018-01,City,City,-0.09,51.515,On or near X,,,Robbery,,,extra\n"
                                    "id1,2018-01,City,City,-0.09,51.515,On or near X,,,Robbery,,\n", encoding="utf-8")
    loaded = load_sources(load_config(police(tmp_path, "m.csv")))
    assert len(loaded.incidents) == 2 and set(loaded.incidents["category"]) == {"robbery"}


def test_validate_reports_a_lone_failed_source_in_its_table(tmp_path):
    (tmp_path / "m.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    code, out, err = cli("validate", str(police(tmp_path, "m.csv")))
    assert code == 1 and "internal error" not in err
    assert out.splitlines()[1].split() == ["city", "0", "0", "0", "0", "0"]
    assert "source 'city' FAILED" in out and "m.csv" in out and "the file has: a, b" in out


def test_the_header_travels_beside_the_rows_not_in_attrs(tmp_path):
    table = readers.read_source(MONTH, {"format": "csv", "encoding": "utf-8-sig"}, keep={"Month", "Longitude"})
    assert table.rows.attrs == {}
    assert table.columns == POLICE_HEADER.split(",")
    assert list(table.rows.columns) == ["_row", "Month", "Longitude"]


# --------------------------------------------------------------------------- 4. unreadable files

def _generic(tmp_path: Path, name: str, location: dict | None = None) -> Path:
    schema = {"name": "any", "extends": "partner_generic", "reader": {"format": "auto"},
              "fields": {"category": {"value": "violent-crime"}},
              "date": {"column": "Date", "formats": ["%Y-%m-%d"]},
              "location": location or {"kind": "en", "x": "Easting", "y": "Northing"}}
    (tmp_path / "any.json").write_text(json.dumps(schema), encoding="utf-8")
    return write_config(tmp_path, [{"id": "p", "path": name, "schema": "any.json", "evidence": "partner_record"}])


def test_a_truncated_xlsx_is_a_user_error_naming_the_file(tmp_path):
    data = YOS_XLSX.read_bytes()
    (tmp_path / "yos.xlsx").write_bytes(data[: len(data) // 2])
    cfg = write_config(tmp_path, [{"id": "yos", "path": "yos.xlsx", "schema": str(YOS_SCHEMA)}], extra=GEOCODING)
    code, _, err = cli("run", str(cfg), "--out", str(tmp_path / "o"))
    assert code == 1 and "internal error" not in err
    assert "yos.xlsx" in err and "damaged or truncated" in err


def test_half_a_sheets_xml_is_a_user_error_naming_the_file(tmp_path):
    broken = tmp_path / "yos.xlsx"
    with zipfile.ZipFile(YOS_XLSX) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename.startswith("xl/worksheets/sheet"):
                data = data[: len(data) // 2]
            dst.writestr(item, data)
    cfg = write_config(tmp_path, [{"id": "yos", "path": "yos.xlsx", "schema": str(YOS_SCHEMA)}], extra=GEOCODING)
    msg = load_error(cfg)
    assert "yos.xlsx" in msg and "damaged" in msg


def _workbook(path: Path, sheets: list[tuple[str, str, list[list]]]) -> None:
    import openpyxl
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for title, state, rows in sheets:
        ws = wb.create_sheet(title)
        ws.sheet_state = state
        for row in rows:
            ws.append(row)
    wb.save(path)


def test_which_sheet_of_a_workbook_is_read_is_said_when_it_has_others_or_is_hidden(tmp_path):
    # Hostile audit: a workbook's first sheet was read without a word, hidden or not: an old copy of the
    # data hidden in front of this month's gave last month's rows with exit 0.
    header = ["Date", "Easting", "Northing"]
    stale = [header] + [["2018-01-05", 532000 + i, 181000] for i in range(5)]
    fresh = [header] + [["2018-01-09", 533000 + i, 181500] for i in range(7)]
    _workbook(tmp_path / "log.xlsx", [("Old copy", "hidden", stale), ("January", "visible", fresh)])
    cfg = _generic(tmp_path, "log.xlsx")
    code, out, err = cli("validate", str(cfg))
    said = out + err
    assert "the workbook has 2 sheets ('Old copy', 'January'): the first is read" in said, said
    assert "the sheet read, 'Old copy', is hidden in the workbook." in said
    # Named in the mapping: that sheet, and nothing to say.
    spec = json.loads((tmp_path / "any.json").read_text(encoding="utf-8"))
    spec["reader"]["sheet"] = "January"
    (tmp_path / "any.json").write_text(json.dumps(spec), encoding="utf-8")
    from hotspots.schema import _load_schema_file
    _load_schema_file.cache_clear()         # schema files are read once a process
    loaded = load_sources(load_config(cfg))
    assert loaded.ledger.accounting(loaded.incidents)["rows_read"].sum() == 7
    assert not [w for w in loaded.ledger.warnings if "sheet" in w["message"]]
    # A sheet the workbook does not have: its sheets are named.
    _workbook(tmp_path / "log.xlsx", [("Feb", "visible", fresh)])
    msg = load_error(cfg)
    assert "log.xlsx" in msg and "no sheet 'January' (its sheets: 'Feb')" in msg and "damaged" not in msg
    # A notes page in front of the data: the header error names the sheets too.
    _load_schema_file.cache_clear()
    _workbook(tmp_path / "notes.xlsx", [("Read me", "visible", [["About this export"], ["..."]]),
                                        ("Data", "visible", fresh)])
    msg = load_error(_generic(tmp_path, "notes.xlsx"))
    assert "notes.xlsx" in msg and "the workbook has 2 sheets ('Read me', 'Data')" in msg


def test_which_layer_of_a_geopackage_is_read_is_said_when_it_has_others(tmp_path):
    # Hostile audit: a GeoPackage holding last year's layer in front of this year's was read from its first
    # layer, said only by pyogrio's raw UserWarning (a Python source line on the terminal, or nothing).
    import warnings as warns

    import geopandas as gpd
    import shapely
    def layer(n, y):
        return gpd.GeoDataFrame({"Date": ["2018-01-05"] * n},
                                geometry=[shapely.Point(532000 + 10 * i, y) for i in range(n)], crs=27700)
    layer(5, 181300).to_file(tmp_path / "inc.gpkg", layer="archive_2017")
    layer(7, 181400).to_file(tmp_path / "inc.gpkg", layer="incidents_2018")
    with warns.catch_warnings():
        warns.filterwarnings("error", message="More than one layer")     # pyogrio's raw warning
        loaded = load_sources(load_config(_generic(tmp_path, "inc.gpkg", {"kind": "geometry"})))
    said = [w["message"] for w in loaded.ledger.warnings]
    assert ("the file has 2 layers ('archive_2017', 'incidents_2018'): the first is read (the mapping's reader "
            "names no \"layer\").") in said, said
    assert len(loaded.incidents) == 5


def test_a_mapping_that_reads_a_column_of_personal_data_is_warned_of(tmp_path):
    # Onboarding audit: an ED mapping with "Patient DOB" as the date and "Patient Postcode" as the place
    # validated with exit 0 and no word (two rows only filtered, their births before the study).
    rows = ["Patient DOB,Patient Postcode,Easting,Northing"] + [f"2018-01-{d:02d},E1 6AN,{532000 + d},181000"
                                                              for d in range(1, 11)]
    (tmp_path / "ed.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    cfg = _generic(tmp_path, "ed.csv")
    spec = json.loads((tmp_path / "any.json").read_text(encoding="utf-8"))
    spec["date"]["column"] = "Patient DOB"
    (tmp_path / "any.json").write_text(json.dumps(spec), encoding="utf-8")
    from hotspots.schema import _load_schema_file
    _load_schema_file.cache_clear()
    loaded = load_sources(load_config(cfg))
    said = " ".join(w["message"] for w in loaded.ledger.warnings)
    assert "the mapping reads 'Patient DOB' (header: dob, patient), whose header names personal data" in said
    assert "Patient Postcode" not in said               # not read by this mapping: nothing to say
    assert len(loaded.incidents) == 10


def test_an_old_xls_workbook_says_to_save_it_as_xlsx(tmp_path):
    (tmp_path / "log.xls").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(4096))
    msg = load_error(_generic(tmp_path, "log.xls"))
    assert "log.xls" in msg and "Excel 97-2003" in msg and ".xlsx" in msg


def test_a_password_protected_workbook_is_called_that_by_run_and_draft_mapping(tmp_path):
    # Hostile audit: an encrypted .xlsx is an OLE2 compound file holding an 'EncryptedPackage' stream; run
    # called it an old Excel 97-2003 workbook to save as .xlsx (which it was), and draft-mapping said "the
    # workbook cannot be read (ImportError)". Here its header and the stream's name in its directory.
    from hotspots.draft import draft_mapping
    (tmp_path / "ed.xlsx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(1 << 20) +
                                       "EncryptedPackage".encode("utf-16-le") + bytes(4096))
    msg = load_error(_generic(tmp_path, "ed.xlsx"))
    assert f"file {tmp_path / 'ed.xlsx'}: the workbook is encrypted (password-protected)" in msg
    assert "97-2003" not in msg
    with pytest.raises(UserError) as exc:
        draft_mapping(tmp_path / "ed.xlsx")
    assert "the workbook is encrypted (password-protected)" in str(exc.value)
    (tmp_path / "old.xlsx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(4096))
    with pytest.raises(UserError) as exc:
        draft_mapping(tmp_path / "old.xlsx")
    assert "old Excel 97-2003 workbook" in str(exc.value)


def test_a_csv_in_another_encoding_names_the_file_and_the_encoding(tmp_path):
    # in a column the mapping reads (bytes in columns never read are never decoded)
    text = MONTH.read_text(encoding="utf-8-sig").replace("Anti-social behaviour", "Anti-social behaviour é", 1)
    (tmp_path / "m.csv").write_bytes(text.encode("cp1252"))
    msg = load_error(police(tmp_path, "m.csv"))
    assert "m.csv" in msg and "not utf-8-sig text" in msg and "cp1252" in msg


def test_a_byte_of_another_encoding_deep_in_a_file_is_placed_on_its_line(tmp_path):
    # Hostile audit: a cp1252 'é' on line 35,001 of a 1.5 MB UTF-8 export was said to be "at byte 43200",
    # the decoder's position in its block, where the file held nothing wrong.
    lines = [POLICE_HEADER] + [police_rows([(-0.09, 51.515)]).splitlines()[1].replace("id0", f"id{k}")
                               for k in range(12000)]
    lines[9000] = lines[9000].replace("On or near X", "On or near Caf\xe9")
    data = "\n".join(lines).encode("cp1252")
    (tmp_path / "m.csv").write_bytes(data)
    at = data.index("\xe9".encode("cp1252"))
    assert at > 1 << 20
    msg = load_error(police(tmp_path, "m.csv"))
    assert f"file {tmp_path / 'm.csv'}: the file is not utf-8-sig text (invalid continuation byte on line 9,001, " \
           f"byte {at:,} of the file)" in msg, msg


def test_binary_junk_renamed_csv_is_a_user_error(tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / "junk.csv").write_bytes(rng.integers(0, 256, 8192, dtype=np.uint8).tobytes() + b"\0")
    msg = load_error(police(tmp_path, "junk.csv"))
    assert "junk.csv" in msg and "binary" in msg
    # junk without NUL bytes: not text in the encoding, or a header that matches nothing
    (tmp_path / "junk2.csv").write_bytes(bytes(rng.integers(1, 256, 8192, dtype=np.uint8)))
    msg = load_error(police(tmp_path, "junk2.csv"))
    assert "junk2.csv" in msg


def test_a_stray_nul_byte_names_its_line_and_a_workbook_renamed_csv_is_called_a_zip(tmp_path):
    # Hostile audit: one NUL byte in a month's text and an .xlsx saved as .csv were both "the file is
    # binary, not CSV text (it holds NUL bytes). Check that it is the right file": no line, no word of
    # what the file is.
    lines = MONTH.read_bytes().split(b"\n")
    lines[40] = lines[40].replace(b"On or near", b"On or\x00near", 1)
    (tmp_path / "m.csv").write_bytes(b"\n".join(lines))
    msg = load_error(police(tmp_path, "m.csv"))
    assert f"file {tmp_path / 'm.csv'}: the file is CSV text but holds 1 NUL byte(s)" in msg
    assert "(the first on line 41)" in msg
    # Past the first 64 KB, where the header's check does not read, the same (it was read as a character).
    far = len(b"\n".join(lines[:41]))
    assert far < 1 << 16
    while len(b"\n".join(lines)) < 3 << 16:
        lines[1:1] = lines[1:300]
    k = next(i for i in range(len(lines)) if len(b"\n".join(lines[:i])) > 2 << 16)
    lines = [ln.replace(b"\x00", b" ") for ln in lines]
    lines[k] = lines[k].replace(b"On or near", b"On or\x00near", 1)
    (tmp_path / "m.csv").write_bytes(b"\n".join(lines))
    msg = load_error(police(tmp_path, "m.csv"))
    assert f"the file is CSV text but holds 1 NUL byte(s), a character no text has (the first on line {k + 1:,})" in msg
    (tmp_path / "yos.csv").write_bytes(YOS_XLSX.read_bytes())
    msg = load_error(police(tmp_path, "yos.csv"))
    assert f"file {tmp_path / 'yos.csv'}: the file is a zip archive (an Excel .xlsx workbook" in msg


def test_a_geojson_that_is_not_json_is_a_user_error(tmp_path):
    (tmp_path / "points.geojson").write_text("this is { not json", encoding="utf-8")
    msg = load_error(_generic(tmp_path, "points.geojson", {"kind": "geometry"}))
    assert "points.geojson" in msg and "cannot be read" in msg


def test_a_feature_that_is_not_a_point_is_rejected_naming_its_shape_not_placed_inside_it(tmp_path):
    # Hostile audit: a FeatureCollection of polygons (reports drawn as areas, or a boundary file sent in
    # error) loaded every feature as an exact point inside its shape, a line or several points too.
    x, y = -0.09, 51.515
    shapes = [{"type": "Point", "coordinates": [x, y]},
              {"type": "Polygon", "coordinates": [[[x, y], [x + .01, y], [x + .01, y + .01], [x, y]]]},
              {"type": "LineString", "coordinates": [[x, y], [x + .01, y + .01]]},
              {"type": "MultiPoint", "coordinates": [[x, y], [x + .01, y + .01]]},
              {"type": "MultiPoint", "coordinates": [[x, y]]}]
    (tmp_path / "places.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"Date": "2018-01-05"}, "geometry": g} for g in shapes]}),
        encoding="utf-8")
    loaded = load_sources(load_config(_generic(tmp_path, "places.geojson", {"kind": "geometry"})))
    assert loaded.ledger.rejects[["row", "reason", "columns"]].values.tolist() == [
        [2, "not a point (Polygon)", "geometry"], [3, "not a point (LineString)", "geometry"],
        [4, "not a point (MultiPoint)", "geometry"]]
    assert len(loaded.incidents) == 2


def test_a_json_array_of_non_records_is_a_user_error(tmp_path):
    (tmp_path / "x.json").write_text("[1, 2, 3]", encoding="utf-8")
    msg = load_error(_generic(tmp_path, "x.json"))
    assert "x.json" in msg and "not records" in msg


def test_a_json_records_path_the_file_does_not_have_is_named_not_taken_for_no_rows(tmp_path):
    # Hostile audit: reader records = "data.items" over an API response holding {"data": {"results": [...]}}
    # was read as an empty array: "the file has no data rows", exit 0, the partner's records gone.
    schema = {"name": "api", "extends": "partner_generic", "reader": {"format": "json", "records": "data.items"},
              "fields": {"category": {"value": "violent-crime"}}, "date": {"column": "Date"},
              "location": {"kind": "en", "x": "Easting", "y": "Northing"}}
    (tmp_path / "api.json").write_text(json.dumps(schema), encoding="utf-8")
    cfg = write_config(tmp_path, [{"id": "api", "path": "x.json", "schema": "api.json", "evidence": "partner_record"}])
    record = {"Date": "2018-01-05", "Easting": 532000, "Northing": 181300}
    for data, words in (({"data": {"results": [record]}}, "no key 'items' in 'data'"),
                        ({"result": {"items": [record]}}, "no key 'data' at its top level"),
                        ({"data": [record]}, "no key 'items' in 'data'")):
        (tmp_path / "x.json").write_text(json.dumps(data), encoding="utf-8")
        msg = load_error(cfg)
        assert f"file {tmp_path / 'x.json'}: the JSON has {words}, where the mapping's reader records" in msg
    (tmp_path / "x.json").write_text(json.dumps({"data": {"items": [record]}}), encoding="utf-8")
    assert len(load_sources(load_config(cfg)).incidents) == 1


# --------------------------------------------------------------------------- 5. Great Britain, not Calais

@pytest.mark.parametrize("lon, lat, inside", [
    (1.86, 50.95, False),    # Calais
    (2.37, 51.03, False),    # Dunkirk
    (-2.58, 49.45, False),   # Guernsey
    (-5.93, 54.60, False),   # Belfast
    (-6.26, 53.35, False),   # Dublin
    (1.31, 51.13, True),     # Dover
    (1.76, 52.48, True),     # Lowestoft
    (-6.35, 49.89, True),    # Scilly
    (-0.88, 60.86, True),    # Muckle Flugga, Shetland
    (-5.80, 55.29, True),    # Mull of Kintyre
])
def test_great_britain_is_a_polygon_not_a_box(lon, lat, inside):
    x, y = to_bng(np.array([lon]), np.array([lat]), "EPSG:4326")
    assert bool(in_great_britain(x, y)[0]) is inside


def test_points_in_calais_are_rejected_outside_great_britain_with_their_columns(tmp_path):
    (tmp_path / "m.csv").write_text(police_rows([(1.86, 50.95), (-0.09, 51.515), (1.31, 51.13)]),
                                    encoding="utf-8")
    loaded = load_sources(load_config(police(tmp_path, "m.csv")))
    assert loaded.ledger.rejects[["row", "reason", "columns"]].values.tolist() == [
        [1, "outside Great Britain", "Longitude,Latitude"]]
    assert len(loaded.incidents) == 2


def _log_in_manchester(tmp_path) -> list[dict]:
    """The City police's month and a partner log of 30 records in Manchester (eastings and northings): the
    config's sources."""
    _log_schema(tmp_path)
    (tmp_path / "log.csv").write_text("Date,Easting,Northing\n" + "".join(
        f"05/01/2018,{383000 + 40 * (k % 6)},{398000 + 40 * (k // 6)}\n" for k in range(30)), encoding="utf-8")
    sources = [{"id": "city", "path": MONTH.as_posix(), "schema": "police_uk_street"},
               {"id": "log", "path": "log.csv", "schema": "log.json", "evidence": "partner_record"}]
    return sources


def test_a_source_whose_rows_are_all_strays_fails_the_run_like_a_lost_source(tmp_path):
    # Hostile audit: a partner's whole extract placed in Manchester beside London police data (another
    # area's file, or another coordinate system) was rejected row by row as "stray point far from the
    # rest" and the run exited 0, the partnership's map made without it.
    sources = _log_in_manchester(tmp_path)
    code, _, err = cli("run", str(write_config(tmp_path, sources)), "--out", str(tmp_path / "o"))
    assert code == 1 and "internal error" not in err, err
    assert "source 'log' lost 30 of its 30 loaded rows (100%) as strays far from the rest of the data" in err
    sources[1]["max_reject_share"] = 1.0
    code, _, err = cli("run", str(write_config(tmp_path, sources)), "--out", str(tmp_path / "o"))
    assert code == 0, err


def test_a_source_wholly_outside_a_declared_study_area_fails_the_run(tmp_path):
    # Hostile audit: with [study] area declared, a partner whose every row lay outside it (area_names leaving out
    # its borough, or its places in another city) was rejected row by row 'outside study area', exit 0.
    sources = _log_in_manchester(tmp_path)
    cfg = write_config(tmp_path, sources, extra=f'\n[[boundaries]]\nid = "lad"\npath = "{LAD}"\nname_field = "LAD22NM"\n')
    cfg.write_text(cfg.read_text().replace("[study]\n", '[study]\narea = "lad"\narea_names = ["City of London"]\n'))
    code, _, err = cli("run", str(cfg), "--out", str(tmp_path / "o"))
    assert code == 1 and "internal error" not in err, err
    assert "source 'log': none of its 30 loaded rows lies inside the study area ([study] area = 'lad', area_names)" in err


# --------------------------------------------------------------------------- 6. Gi* where it is undefined

def _grid(nr, nc):
    from hotspots.detect.gistar import neighbour_matrix
    rows, cols = np.nonzero(np.ones((nr, nc), bool))
    return neighbour_matrix(cols, rows, 150.0, 150.0 * np.sqrt(2))


@pytest.mark.parametrize("inference", ["permutation", "normal"])
def test_gi_star_is_zero_with_p_one_where_undefined_and_warns_nothing(inference):
    from hotspots.detect.gistar import hotspot_gistar
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one = hotspot_gistar(np.array([500.0]), _grid(1, 1), inference=inference, draws=2000)
        flat = hotspot_gistar(np.full(9, 7.0), _grid(3, 3), inference=inference, draws=2000)
        spike = hotspot_gistar(np.r_[500.0, np.zeros(8)], _grid(3, 3), inference=inference, draws=2000)
    for res in (one, flat):
        assert (res["gi_z"] == 0).all() and (res["gi_p"] == 1).all() and (res["gi_class"] == 0).all()
    # one non-zero cell on a 3 x 3 grid: defined except for the centre, whose neighbourhood is the grid
    assert np.isfinite(spike["gi_z"]).all() and spike["gi_z"][0] > 0
    assert spike["gi_z"][4] == 0 and spike["gi_p"][4] == 1


def test_five_hundred_incidents_on_one_point_run_with_defined_statistics(tmp_path):
    (tmp_path / "m.csv").write_text(police_rows([(-0.09, 51.515)] * 500), encoding="utf-8")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = cli("run", str(police(tmp_path, "m.csv")), "--out", str(tmp_path / "o"))
    assert code == 0, err
    import geopandas as gpd
    cells = gpd.read_file(tmp_path / "o" / "hotspots.gpkg", layer="cells")
    assert cells["n"].sum() == 500
    assert np.isfinite(cells["gi_z"]).all() and np.isfinite(cells["gi_p"]).all()
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)
                and os.path.basename(w.filename) == "gistar.py"]


# --------------------------------------------------------------------------- a source that loses most of its rows

def _council_log(tmp_path: Path, dates: list[str]) -> Path:
    rows = ["Ref,Date,Easting,Northing"] + [f"R{i},{d},{532400 + 5 * i},{181300 + 3 * i}" for i, d in enumerate(dates)]
    (tmp_path / "log.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return _generic(tmp_path, "log.csv")


def test_a_source_losing_most_rows_to_one_reason_fails_with_the_reason_and_examples(tmp_path):
    """A date format the mapping does not know loses a whole partner: the run stops, naming the reason,
    its column and three values as the file has them, instead of mapping what is left."""
    dates = [f"{d:02d}/01/2018 14:25" for d in range(1, 29)] * 5 + ["2018-01-05"] * 20
    cfg = _council_log(tmp_path, dates)
    code, out, _ = cli("validate", str(cfg))
    assert code == 1
    assert "source 'p' FAILED: source 'p' lost 140 of its 160 rows (88%) to one reason: " in out
    assert "date (column Date). Examples as the file has them: " in out
    assert "'01/01/2018 14:25'; '02/01/2018 14:25'; '03/01/2018 14:25'" in out
    assert "max_reject_share = 0.93" in out
    code, _, err = cli("run", str(cfg), "--out", str(tmp_path / "o"))
    assert code == 1 and "lost 140 of its 160 rows" in err and not (tmp_path / "o").exists()


def test_a_loss_the_partnership_accepts_loads_what_is_left(tmp_path):
    dates = [f"{d:02d}/01/2018 14:25" for d in range(1, 29)] * 5 + ["2018-01-05"] * 20
    cfg = _council_log(tmp_path, dates)
    cfg.write_text(cfg.read_text().replace('evidence = "partner_record"',
                                           'evidence = "partner_record"\nmax_reject_share = 0.9'))
    loaded = load_sources(load_config(cfg))
    assert len(loaded.incidents) == 20 and len(loaded.ledger.rejects) == 140


def test_a_minority_of_rejects_never_fails_a_source(tmp_path):
    dates = ["2018-01-05"] * 100 + ["05/01/2018"] * 40
    loaded = load_sources(load_config(_council_log(tmp_path, dates)))
    assert len(loaded.incidents) == 100 and len(loaded.ledger.rejects) == 40


def test_coordinate_cells_read_as_numbers_as_pandas_reads_them():
    """``readers.numbers`` (Arrow's cast, pandas for a column with any cell that is no number) gives
    pandas.to_numeric's floats, NaN included, for odd cells a partner's file may hold; a number written with
    thousands separators ("1,000") is read as its digits (pandas gives NaN)."""
    import numpy as np
    import pandas as pd

    from hotspots.load.readers import numbers
    odd = ["1.5", "", "abc", " 2", "1e3", "-0.1", "nan", "inf", "+5", ".5", "5.", "0x10", "1_0", "NaN",
           "Infinity", "-inf", "\u0661\u0662", "1e400", "  ", "530000.123456789012345"]
    for cell in odd:
        for dtype in ("str", object):
            col = pd.Series(["531234.5", cell, ""], dtype=dtype)
            assert np.array_equal(numbers(col), pd.to_numeric(col, errors="coerce").to_numpy(float),
                                  equal_nan=True), (cell, dtype)
    for cell, value in (("1,000", 1000.0), ("-532,754.5", -532754.5), ("1,00", np.nan), ("12,3456", np.nan)):
        for dtype in ("str", object):
            assert np.array_equal(numbers(pd.Series(["531234.5", cell, ""], dtype=dtype)),
                                  [531234.5, value, np.nan], equal_nan=True), (cell, dtype)


# Files pyarrow's CSV reader might read otherwise than pandas' C parser (``readers._arrow_csv``).
# Each is read both ways: pyarrow's table is pandas', or pyarrow declines and pandas reads it.
ODD_CSVS = {
    "plain": b"a,b,c\n1,2,3\n4,5,6\n",
    "bom, utf-8-sig": b"\xef\xbb\xbfa,b\n1,2\n",
    "crlf and no final newline": b"a,b\r\n1,2\r\n3,4",
    "cr only": b"a,b\r1,2\r3,4\r",
    "quotes doubled, delimiter and newlines inside": b'a,b\n"x""y","p,q"\n"multi\nline","r\r\ns"\n',
    "text after a closing quote": b'a,b\n"ab"c,d\n',
    "a quote inside a value": b'a,b\nab"c,d"\n',
    "a space before a quote": b'a,b\n "x",y\n',
    "blank lines between and after": b"a,b\n1,2\n\n\n3,4\n\n",
    "a line of spaces": b"a,b\n1,2\n   \n3,4\n",
    "empty cells and an empty row": b"a,b,c\n,,\n1,,3\n",
    "spaces kept around names and values": b" a , b \n 1 , 2 \n",
    "a short row": b"a,b,c\n1,2\n",
    "a long row": b"a,b\n1,2,3\n",
    "a trailing comma on every line": b"a,b,\n1,2,\n",
    "a repeated header name": b"a,a\n1,2\n",
    "a blank header name": b"a,,c\n1,2,3\n",
    "header only": b"a,b\n",
    "formula-like text and unicode": "a,b\n=cmd|' /C calc'!A0,é ☃ \u200f\u00a0x\n".encode(),
    "not utf-8": b"a,b\n\xe9t\xe9,2\n",
    "semicolons": b"a;b\n1;2\n",
    # 3 MB: pyarrow reads in 1 MB blocks, and a block may end inside a quoted newline.
    "quoted newlines over several blocks": b"a,b,c\n" + b"".join(
        b'%d,"line one\nline two, ""%d""",x\n' % (i, i * 7) for i in range(90_000)),
}


def _both_ways(path: Path, spec: dict, keep=None, monkeypatch=None):
    fast = readers._arrow_csv(path, spec, readers._csv_header(path, spec), keep)
    with monkeypatch.context() as m:
        m.setattr(readers, "_arrow_csv", lambda *a: None)
        try:
            slow = readers._read_csv(path, spec, keep)
        except UserError as exc:
            slow = exc
    return fast, slow


@pytest.mark.parametrize("name", sorted(ODD_CSVS))
@pytest.mark.parametrize("keep", [None, {"b", "c"}])
def test_pyarrow_reads_a_csv_as_pandas_does_or_leaves_it_to_pandas(tmp_path, monkeypatch, name, keep):
    path = tmp_path / "odd.csv"
    path.write_bytes(ODD_CSVS[name])
    spec = {"delimiter": ";"} if name == "semicolons" else {}
    try:
        fast, slow = _both_ways(path, spec, keep, monkeypatch)
    except UserError:
        return          # refused before either parser (the header check)
    # The quirks pyarrow would read otherwise (or not at all) are pandas' to read.
    declined = {"a line of spaces", "a short row", "a long row", "a trailing comma on every line",
                "a repeated header name", "a blank header name"}
    named = keep is None or bool(keep & set(readers._csv_header(path, spec)))   # else nothing to read
    assert (fast is None) == (name in declined or not named)
    if fast is None:
        return          # pandas reads it: its table, or its message
    assert not isinstance(slow, UserError), f"pyarrow read what pandas refuses: {slow}"
    assert readers._read_csv(path, spec, keep).rows.equals(slow.rows)
    assert list(fast.columns) == list(slow.rows.columns[1:])
    # Numbered as the file shows its rows (blank lines counted) whichever reader read them.
    pd.testing.assert_frame_equal(readers._numbered(readers._finish(fast), path, spec, readers._scan(path)[1]),
                                  slow.rows)


def test_pyarrow_takes_the_plain_files_and_gives_pandas_tables_for_real_extracts(monkeypatch):
    data = Path("examples/london_city_fringe/data")
    files = sorted(data.rglob("*street.csv"))[:6] + sorted((data / "buildings").glob("*.csv"))
    files.append(Path("tests/fixtures/buildings/trafford_care_homes_sample.csv"))
    assert len(files) == 9
    for path in files:
        fast, slow = _both_ways(path, {}, None, monkeypatch)
        assert fast is not None, path          # the plain case is the fast one
        assert len(fast) >= 8
        pd.testing.assert_frame_equal(readers._finish(fast), slow.rows)


def test_a_quote_left_open_in_the_last_column_never_swallows_the_rest_of_the_file(tmp_path):
    # Hostile audit: an opening quote at the start of row 100's last cell (a partner typing "Cafe
    # Nero) made pyarrow read the rest of the file as that one value: 598 of 698 rows gone, exit 0,
    # rows_read 100. Now the file goes to pandas, which names the row where the quote opens.
    rows = [f"id{i},2018-01,City,City,-0.09,51.515,On or near X,,,Robbery,," for i in range(300)]
    rows[99] += '"Cafe Nero'
    (tmp_path / "m.csv").write_text(POLICE_HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(UserError) as err:
        load_sources(load_config(police(tmp_path, "m.csv")))
    assert "EOF inside string" in str(err.value) and "m.csv" in str(err.value.file)
    # A literal quote inside an unquoted value (an odd count too) reads as before, every row kept.
    rows[99] = rows[99].replace('"Cafe Nero', 'Cafe 5" Nero')
    (tmp_path / "m.csv").write_text(POLICE_HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    assert readers._scan(tmp_path / "m.csv")[0]
    assert len(load_sources(load_config(police(tmp_path, "m.csv"))).incidents) == 300


def test_a_year_out_of_pandas_range_is_a_rejected_date_not_a_crash(tmp_path):
    # Hostile audit: one Month of 9999-01 (or a partner's 31/12/9999) stopped the run with an
    # internal error naming no file, row or column. Now that row is a reject naming its column.
    rows = [f"id{i},2018-01,City,City,-0.09,51.515,On or near X,,,Robbery,," for i in range(5)]
    rows[2] = rows[2].replace("2018-01", "9999-01", 1)
    rows[3] = rows[3].replace("2018-01", "0018-01", 1)
    (tmp_path / "m.csv").write_text(POLICE_HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    loaded = load_sources(load_config(police(tmp_path, "m.csv")))
    rej = loaded.ledger.rejects
    assert len(loaded.incidents) == 3 and sorted(rej["row"]) == [3, 4]      # data rows, from 1
    assert rej["columns"].str.contains("Month").all()


def test_escape_sequences_in_a_partner_file_reach_the_terminal_as_text(tmp_path):
    # Hostile audit: a header cell holding an OSC title change, a screen clear and a colour was
    # printed raw by validate and run ("the file has: ..."), and category values by draft-mapping.
    hostile = "Crime\x1b]0;PWNED\x07\x1b[2J\x1b[31mtype\u202e"
    (tmp_path / "m.csv").write_text(POLICE_HEADER.replace("Crime type", hostile) + "\n"
                                    "id0,2018-01,City,City,-0.09,51.515,On or near X,,,Robbery,,\n", encoding="utf-8")
    config = police(tmp_path, "m.csv")
    for args in (["validate", str(config)], ["draft-mapping", str(tmp_path / "m.csv")]):
        code, out, err = cli(*args)
        text = out + err
        assert "PWNED" in text, args                       # the text is shown...
        assert not any(c in text for c in "\x1b\x07\u202e"), args   # ...and acts on nothing
        assert "\\u001b]0;PWNED\\u0007\\u001b[2J" in text and "\\u202e" in text
    # draft-mapping's JSON on stdout (no --out) stays JSON with DEL and C1 controls in the header.
    (tmp_path / "m.csv").write_text(POLICE_HEADER.replace("Crime type", "Crime\x7f\x85type") + "\n"
                                    "id0,2018-01,City,City,-0.09,51.515,On or near X,,,Robbery,,\n", encoding="utf-8")
    code, out, err = cli("draft-mapping", str(tmp_path / "m.csv"))
    assert code == 0 and "Crime\x7f\x85type" in json.dumps(json.loads(out), ensure_ascii=False)


def test_rows_after_blank_lines_keep_the_numbers_the_file_shows(tmp_path):
    # Hostile audit: with blank lines 22 and 42 (one of them spaces only), a reject named row 59 for
    # the file's data row 61 (line 62): the readers skip blank lines and the rows were numbered after.
    lines = [f"id{i},2018-01,City,City,-0.09,51.515,On or near X,,,Robbery,," for i in range(70)]
    lines[20] = ""
    lines[40] = "   "
    lines[50] = ",,,,,,,,,,,"                 # a row of empty cells: a row (rejected), unlike a blank line
    lines[60] = lines[60].replace("Robbery", "")                 # no category: rejected
    text = POLICE_HEADER + "\n" + "\n".join(lines) + "\n\n"
    for quoted in (False, True):                                 # pyarrow's path, and pandas' (a quote)
        body = text.replace("On or near X", '"On or near ""X"""', 1) if quoted else text
        (tmp_path / "m.csv").write_text(body, encoding="utf-8")
        loaded = load_sources(load_config(police(tmp_path, "m.csv")))
        rej = loaded.ledger.rejects
        assert list(rej["row"]) == [51, 61], quoted              # data row 61 is the file's line 62
        rows = loaded.incidents["_row"].tolist()
        assert rows == [r for r in range(1, 71) if r not in (21, 41, 51, 61)], quoted
        acc = loaded.ledger.accounting(loaded.incidents)
        assert acc["rows_read"].tolist() == [68]                 # read: the 70 rows less the two blank lines


@pytest.mark.parametrize("body, blank", [(b"a,b\r\n1,2\r\n3,4\r\n", False), (b"a,b\r1,2\r3,4\r", False),
                                         (b'a,b\n"x\n",2\n', False), (b"a,b\r\n1,2\r\n \t\r\n3,4\r\n", True),
                                         (b"a,b\r1,2\r\r3,4", True), (b"a,b\n1,2\n\n", False),
                                         (b"a,b\r\n1,2\r\n\r\n  \r\n", False), (b"a,b\n\n1,2\n", True)])
def test_the_scan_finds_blank_lines_whatever_the_line_ends_and_nothing_else(tmp_path, body, blank):
    # A blank line sends the file to the slower row numbering (``readers._data_rows``): a Windows file's
    # CR LF is one line end, not a line end and an empty line.
    (tmp_path / "f.csv").write_bytes(body)
    assert readers._scan(tmp_path / "f.csv")[:2] == (False, blank)


def test_a_folder_or_a_pipe_matched_by_a_source_is_named_not_read_for_ever(tmp_path):
    # Hostile audit: a FIFO (or a link to /dev/zero) matched by a glob hung validate and run for
    # ever, hashing it; a folder was "the file does not exist".
    import os
    os.mkfifo(tmp_path / "m.csv")
    code, out, err = cli("validate", str(police(tmp_path, "m.csv")))
    assert code == 1 and "not a regular file" in out + err
    (tmp_path / "m.csv").unlink()
    (tmp_path / "m.csv").mkdir()
    code, out, err = cli("validate", str(police(tmp_path, "m.csv")))
    assert code == 1 and "not a regular file" in out + err


def test_empty_spreadsheet_rows_are_not_rows(tmp_path):
    # Hostile audit: one space typed in A20000 of a sheet of 60 rows made 19,939 empty rows
    # "rejected" (no category) and the source failed its loss limit. Empty rows are skipped as blank
    # CSV lines are; the rows keep the sheet's numbers.
    import openpyxl
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Ref", "Concern"])
    for i in range(60):
        ws.append([f"r{i}", "knife"])
    ws.cell(row=30, column=1).value = None
    ws.cell(row=30, column=2).value = None               # an empty row inside the data
    ws.cell(row=20_000, column=1, value=" ")             # a stray space far below
    wb.save(tmp_path / "s.xlsx")
    table = readers.read_source(tmp_path / "s.xlsx", {"format": "excel"})
    assert len(table.rows) == 59
    assert table.rows["_row"].tolist() == [r for r in range(1, 61) if r != 29]


# --------------------------------------------------------------------------- boundaries, key buildings, API files

LAD = DATA / "boundaries" / "london-2021-lad22-gen20.shp"


def _damaged_lad(tmp_path: Path, damage) -> list[str]:
    """The stderr of validate and run with a LAD layer that ``damage`` (given the table) spoiled; each
    must exit 1 with no internal error."""
    import geopandas as gpd
    lad = gpd.read_file(LAD)
    damage(lad)
    lad.to_file(tmp_path / "lad.gpkg")
    cfg = police(tmp_path, MONTH.as_posix())
    cfg.write_text(cfg.read_text() + '\n[[boundaries]]\nid = "lad"\npath = "lad.gpkg"\nname_field = "LAD22NM"\n')
    errors = []
    for command in ("validate", "run"):
        code, _, err = cli(command, str(cfg), *(["--out", str(tmp_path / "o")] if command == "run" else []))
        assert code == 1 and "internal error" not in err, err
        assert f"file {tmp_path / 'lad.gpkg'}" in err
        errors.append(err)
    return errors


def test_a_boundary_geopackage_of_several_layers_asks_which_one(tmp_path):
    # Hostile audit: boundaries from a GeoPackage holding districts and wards were read from its first layer,
    # said only by pyogrio's raw warning.
    import geopandas as gpd
    lad = gpd.read_file(LAD)
    lad.to_file(tmp_path / "two.gpkg", layer="wards")
    lad.to_file(tmp_path / "two.gpkg", layer="districts")
    cfg = police(tmp_path, MONTH.as_posix())
    cfg.write_text(cfg.read_text() + '\n[[boundaries]]\nid = "lad"\npath = "two.gpkg"\nname_field = "LAD22NM"\n')
    code, _, err = cli("validate", str(cfg))
    assert code == 1 and "internal error" not in err, err
    assert (f"file {tmp_path / 'two.gpkg'}: boundary layer 'lad': the file has 2 layers ('wards', 'districts'). "
            "Name the one to use with layer = \"wards\"") in err
    cfg.write_text(cfg.read_text().replace('name_field = "LAD22NM"', 'name_field = "LAD22NM"\nlayer = "districts"'))
    code, _, err = cli("validate", str(cfg))
    assert code == 0, err


def test_a_boundary_area_without_a_name_is_a_user_error_naming_the_file_and_field(tmp_path):
    # Hostile audit: a null LAD22NM stopped validate and run with "internal error (TypeError: '<'
    # not supported between 'float' and 'str')" where the area names are sorted.
    def unnamed(lad):
        lad.loc[lad["LAD22NM"] == "City of London", "LAD22NM"] = None
    for err in _damaged_lad(tmp_path, unnamed):
        assert f"file {tmp_path / 'lad.gpkg'}, column 'LAD22NM'" in err
        assert "1 of its 33 features has no name" in err and "(feature 7 is the first)" in err


def test_a_boundary_area_without_a_shape_is_a_user_error_naming_the_area(tmp_path):
    # An area with a null or empty geometry held no cell: areas.csv reported it with no incidents.
    import shapely

    def shapeless(lad):
        lad.loc[lad["LAD22NM"] == "Hackney", "geometry"] = shapely.Polygon()
    for err in _damaged_lad(tmp_path, shapeless):
        assert "1 of its 33 features has no geometry (feature 12, 'Hackney', is the first)" in err


def test_a_layer_of_points_where_areas_belong_is_a_user_error_naming_the_file(tmp_path):
    # ONS publishes centroid files beside its boundaries. Read as a boundary layer, a coverage_path or
    # coverage units they covered nothing: coverage = ["City of London"] over a layer of points made every
    # cell no data (0 hot cells, exit 0, no word), and units of points stopped run with an internal error.
    def centroids(lad):
        lad["geometry"] = lad.geometry.representative_point()
    for err in _damaged_lad(tmp_path, centroids):
        assert ("boundary layer 'lad': 33 of its 33 features are not areas (feature 1, 'Barking and Dagenham', "
                "is a Point)") in err
    for extra, what in (('coverage_path = "lad.gpkg"\n', "[[sources]] 'city' coverage_path"),
                        ('\n[analysis]\ncoverage_units_path = "lad.gpkg"\ncoverage_units_field = "LAD22NM"\n',
                         "[analysis] coverage_units_path")):
        cfg = police(tmp_path, MONTH.as_posix())
        cfg.write_text(cfg.read_text() + extra)
        code, _, err = cli("run", str(cfg), "--out", str(tmp_path / "o"))
        assert code == 1 and "internal error" not in err, err
        assert f"file {tmp_path / 'lad.gpkg'}: {what}: 33 of its 33 features are not areas" in err


def test_validate_reads_the_coverage_units_as_run_does(tmp_path):
    # Hostile audit: validate never read [analysis] coverage_units_path, so a missing file or a layer of points
    # passed validate with exit 0 and stopped run.
    cfg = police(tmp_path, MONTH.as_posix())
    cfg.write_text(cfg.read_text() + '\n[analysis]\ncoverage_units_path = "lsoa.gpkg"\ncoverage_units_field = "X"\n')
    code, _, err = cli("validate", str(cfg))
    assert code == 1 and "internal error" not in err, err
    assert f"file {tmp_path / 'lsoa.gpkg'}: [analysis] coverage_units_path cannot be read" in err


def test_a_key_building_file_with_a_header_and_no_rows_runs_with_a_warning(tmp_path):
    # Hostile audit: "name,lon,lat" alone stopped run with "internal error (KeyError: ['sensitive',
    # 'sensitive_display'] not in index)": the empty table lacked the layer's sensitive flags.
    (tmp_path / "kb.csv").write_text("name,lon,lat\n", encoding="utf-8")
    cfg = police(tmp_path, MONTH.as_posix())
    cfg.write_text(cfg.read_text() + '\n[[key_buildings]]\nid = "k"\npath = "kb.csv"\nschema = "generic_points"\n'
                                     'radius_m = [100, 250]\n')
    code, _, err = cli("run", str(cfg), "--out", str(tmp_path / "o"))
    assert code == 0, err
    assert f"source 'k', file {tmp_path / 'kb.csv'}: the file has no data rows." in err
    buildings = pd.read_csv(tmp_path / "o" / "buildings.csv")
    assert len(buildings) == 0 and {"building_id", "n_100", "n_250", "sensitive"} <= set(buildings.columns)


def test_a_coverage_path_without_geometry_fails_validate_and_run_naming_the_file(tmp_path):
    # Hostile audit: a CSV as coverage_path passed validate (rc 0), and run stopped with "internal
    # error (AttributeError: 'DataFrame' object has no attribute 'crs')".
    def config(coverage: Path) -> Path:
        return write_config(tmp_path, [{"id": "city", "path": MONTH.as_posix(), "schema": "police_uk_street",
                                        "coverage_path": coverage.as_posix()}])
    for command in ("validate", "run"):
        code, _, err = cli(command, str(config(MONTH)), *(["--out", str(tmp_path / "o")] if command == "run" else []))
        assert code == 1 and "internal error" not in err, err
        assert f"file {MONTH}: [[sources]] 'city' coverage_path holds no geometry" in err
    code, _, err = cli("validate", str(config(LAD)))     # a polygon file still passes
    assert code == 0, err


@pytest.mark.parametrize("name, text, words", [
    ("deep", "[" * 100_000 + "]" * 100_000, "the JSON is nested too deeply to be an array of records."),
    ("long_number", '[{"persistent_id": 1' + "0" * 5000 + ', "month": "2018-01"}]',
     "the JSON cannot be read (Exceeds the limit (4300 digits) for integer string conversion: value has "
     "5001 digits)."),
])
def test_a_json_file_python_cannot_parse_fails_only_its_source_in_validate(tmp_path, name, text, words):
    # Hostile audit: arrays nested 100,000 deep (RecursionError) and a 5,000-digit integer
    # (ValueError) were internal errors in run and stopped validate outright.
    (tmp_path / f"{name}.json").write_text(text, encoding="utf-8")
    cfg = write_config(tmp_path, [{"id": "city", "path": MONTH.as_posix(), "schema": "police_uk_street"},
                                  {"id": "met", "path": f"{name}.json", "schema": "police_uk_api"}])
    code, out, err = cli("validate", str(cfg))
    assert code == 1 and "internal error" not in err, err
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[1:] if line.startswith(("city", "met"))}
    assert rows == {"city": ["1", "698", "677", "0", "21"], "met": ["0", "0", "0", "0", "0"]}
    assert f"source 'met' FAILED: file {tmp_path / (name + '.json')}: {words}" in out
    assert "source 'city' FAILED" not in out
    code, _, err = cli("run", str(cfg), "--out", str(tmp_path / "o"))
    assert code == 1 and "internal error" not in err and words in err, err


def test_a_utf16_file_is_called_utf16_and_read_when_the_schema_says_so(tmp_path):
    # Hostile audit: Excel's "Unicode text" was "binary, not CSV text (it holds NUL bytes)" to run,
    # while draft-mapping named it; a schema set to utf-16 could not read it at all.
    text = POLICE_HEADER + "\n" + "id0,2018-01,City,City,-0.09,51.515,On or near X,,,Robbery,,\n"
    (tmp_path / "m.csv").write_bytes(text.encode("utf-16"))
    with pytest.raises(UserError, match="UTF-16 text"):
        readers.read_source(tmp_path / "m.csv", {"format": "csv"})
    table = readers.read_source(tmp_path / "m.csv", {"format": "csv", "encoding": "utf-16"})
    assert table.rows["Crime type"].tolist() == ["Robbery"] and table.rows["_row"].tolist() == [1]
    # After blank lines, rows keep the numbers the file shows (the scan looked for one-byte line ends).
    row = "id{},2018-01,City,City,-0.09,51.515,On or near X,,,Robbery,,\r\n"
    text = POLICE_HEADER + "\r\n" + row.format(1) + "\r\n  \r\n" + row.format(2) + row.format(3)
    (tmp_path / "m.csv").write_bytes(text.encode("utf-16"))
    table = readers.read_source(tmp_path / "m.csv", {"format": "csv", "encoding": "utf-16"})
    assert table.rows["Crime ID"].tolist() == ["id1", "id2", "id3"] and table.rows["_row"].tolist() == [1, 4, 5]


def test_a_config_saved_with_a_byte_order_mark_reads(tmp_path):
    # Hostile audit: Notepad's BOM made the config "not valid TOML (Invalid statement (at line 1,
    # column 1))", with no word of the BOM.
    config = police(tmp_path, "m.csv")
    config.write_bytes(b"\xef\xbb\xbf" + config.read_bytes())
    assert load_config(config).sources[0].id == "city"


def test_a_header_naming_a_mapped_column_twice_is_said_not_resolved_silently(tmp_path):
    # Hostile audit: a header Ref,Date,...,Date read the first Date with no word (a partner's date
    # reported and date of the incident would be confused).
    header = POLICE_HEADER.replace("Context", "Month")
    (tmp_path / "m.csv").write_text(header + "\nid0,2018-01,City,City,-0.09,51.515,On or near X,,,Robbery,,2018-02\n",
                                    encoding="utf-8")
    with pytest.warns(HotspotsWarning, match="'Month' more than once: the first column"):
        loaded = load_sources(load_config(police(tmp_path, "m.csv")))
    assert loaded.incidents["occurred_from"].dt.month.tolist() == [1]


def test_two_quotes_left_open_are_said_though_their_count_is_even(tmp_path):
    # A review: "Cafe Nero on row 10 and "Costa on row 90 (an even count, so pyarrow reads it) read 100
    # rows as 20 with no word. The file's lines against its rows now say so, by either reader.
    rows = [f"id{i},2018-01,City,City,-0.09,51.515,On or near X,,,Robbery,," for i in range(100)]
    rows[9] += '"Cafe Nero'
    rows[89] += '"Costa'
    (tmp_path / "m.csv").write_text(POLICE_HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    with pytest.warns(HotspotsWarning, match=r"row 10 holds a quoted value .* \(80 line breaks lie inside"):
        loaded = load_sources(load_config(police(tmp_path, "m.csv")))
    assert len(loaded.incidents) == 20
    # A plain file says nothing, nor multi-line text (the example's ED file has two such values).
    (tmp_path / "m.csv").write_text(POLICE_HEADER + "\n" + "\n".join(r.replace('"Cafe Nero', "").replace('"Costa', "")
                                                                     for r in rows), encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error", HotspotsWarning)
        assert len(load_sources(load_config(police(tmp_path, "m.csv"))).incidents) == 100


@pytest.mark.parametrize("group", [False, True])
def test_a_line_of_spaces_above_the_header_is_skipped_as_the_parsers_skip_it(tmp_path, group):
    """A review: with a line of spaces between the title and the header, the header's own read counted it
    and the parser did not, so the header was taken one row too early: the columns were named 'Date',
    'Time', 'PC' but the rows came keyed by the first data row's values, and that row was lost with no
    word (with group_row: no rows at all). Both now skip it; header_row counts the lines that are not blank."""
    lines = ["Log of incidents,,", "   \t", *(["Incident,,Location"] if group else []), "Date,Time,PC",
             "01/04/2019,10:00,EC2M 7PY", "02/04/2019,11:00,EC2M 7PY"]
    path = tmp_path / "log.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    spec = {"format": "csv", "header_row": 3 if group else 2, **({"group_row": 2} if group else {})}
    got = readers.read_source(path, spec)
    names = ["Incident Date", "Incident Time", "Location PC"] if group else ["Date", "Time", "PC"]
    assert got.columns == names
    assert got.rows[names[0]].tolist() == ["01/04/2019", "02/04/2019"]
    assert got.rows["_row"].tolist() == [1, 2]


def test_an_export_s_totals_rows_are_rejected_as_such_and_an_incident_naming_a_total_is_not(tmp_path):
    # User audit: a council export's footer "Total cases,,,412" was rejected "no category" (the first field it
    # lacked): the analyst had to open the file to see it was the totals line. A row merely mentioning a total
    # ("Total loss of vehicle") is an incident like any other.
    schema = {"name": "asb", "extends": "partner_generic", "reader": {"format": "csv"},
              "fields": {"category": {"column": "Type", "map": {"Criminal damage": "criminal-damage-arson",
                                                                "Total loss of vehicle": "criminal-damage-arson"}}},
              "date": {"column": "Date"}, "location": {"kind": "en", "x": "Easting", "y": "Northing"}}
    (tmp_path / "asb.json").write_text(json.dumps(schema), encoding="utf-8")
    rows = [f"05/01/2018,Criminal damage,{532000 + k},181300" for k in range(20)]
    rows += ["06/01/2018,Total loss of vehicle,532100,181300", "Sub-total:,,,21", ",Total loss of vehicle,,",
             "Grand Total,,,22", "TOTAL CASES 22,,,"]
    (tmp_path / "asb.csv").write_text("Date,Type,Easting,Northing\n" + "\n".join(rows) + "\n", encoding="utf-8")
    cfg = write_config(tmp_path, [{"id": "asb", "path": "asb.csv", "schema": "asb.json",
                                   "evidence": "partner_record"}])
    loaded = load_sources(load_config(cfg))
    assert len(loaded.incidents) == 21
    rejects = loaded.ledger.rejects.sort_values("row")
    assert rejects[["row", "reason", "columns"]].values.tolist() == [
        [22, "a totals row, not an incident", "Date"],
        [23, "no date", "Date"],                        # blank date and place: not a totals line
        [24, "a totals row, not an incident", "Date"],
        [25, "a totals row, not an incident", "Date"]]
