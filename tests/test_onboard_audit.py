"""Onboarding a new partner with a mapping written over partner_generic (audit of draft-mapping -> validate)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tests.partners import GEOCODING


def _load(tmp: Path, data: Path, mapping: dict):
    from hotspots.config import load_config
    from hotspots.load import load_sources
    schema = tmp / "mapping.json"
    schema.write_text(json.dumps(mapping), encoding="utf-8")
    cfg = tmp / "p.toml"
    cfg.write_text(f'[study]\nname = "t"\nstart = "2017-12"\nend = "2019-11"\n{GEOCODING}\n'
                   f'[[sources]]\nid = "p"\npath = "{data}"\nschema = "{schema}"\n', encoding="utf-8")
    return load_sources(load_config(cfg))


def _load_lonlat(tmp: Path, rows: list[str], **location):
    """Load ``rows`` (a semicolon CSV: Ref;Date;Type;Longitude;Latitude) with a lon/lat mapping."""
    path = tmp / "gps.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return _load(tmp, path, {"name": "gps", "extends": "partner_generic", "reader": {"format": "csv", "delimiter": ";"},
                             "fields": {"category": {"column": "Type", "map": {"Fighting": "violent-crime"}}},
                             "date": {"column": "Date"},
                             "location": {"kind": "lonlat", "x": "Longitude", "y": "Latitude", **location}})


def _youth_club(tmp: Path, stamps: list[str]) -> Path:
    feats = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [-0.09 + k * 1e-4, 51.52]},
              "properties": {"when": s, "what": "fight"}} for k, s in enumerate(stamps)]
    path = tmp / "club.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}), encoding="utf-8")
    return path


def test_a_mappings_single_format_is_used_over_the_bases_list(tmp_path):
    """docs/mappings.md: "format": "ISO8601" reads stamped times. Laid over partner_generic, whose
    "formats" list was kept and tried instead, it rejected every row as 'unparseable date'."""
    path = _youth_club(tmp_path, ["2019-04-03T21:15:00+01:00", "2019-01-15T18:00:00Z"] * 15)
    got = _load(tmp_path, path, {"name": "club", "extends": "partner_generic", "reader": {"format": "vector"},
                                 "fields": {"category": {"column": "what", "map": {"fight": "violent-crime"}}},
                                 "date": {"column": "when", "format": "ISO8601", "precision": "minute"},
                                 "location": {"kind": "geometry"}})
    inc = got.incidents.sort_values("_row") if "_row" in got.incidents else got.incidents
    assert len(got.ledger.rejects) == 0
    assert len(inc) == 30
    assert set(inc["occurred_from"]) == {pd.Timestamp("2019-04-03 21:15"), pd.Timestamp("2019-01-15 18:00")}


def test_eastings_with_thousands_separators_are_read(tmp_path):
    """A council log exported from a spreadsheet writes '532,754' (a semicolon-delimited CSV keeps the comma):
    every such row was rejected 'unparseable coordinates'."""
    path = tmp_path / "asb.csv"
    rows = ["Case No;Date Reported;Incident Type;Easting;Northing"]
    rows += [f"ASB/{k};0{1 + k % 9}/04/2019;Fighting;532,754;181,859" for k in range(20)]
    rows += ["ASB/X;03/04/2019;Fighting;1,234,567;181,859"]          # a slip of the keyboard: rejected, not moved
    path.write_text("\n".join(rows) + "\n", encoding="cp1252")
    got = _load(tmp_path, path, {"name": "asb", "extends": "partner_generic",
                                 "reader": {"format": "csv", "delimiter": ";", "encoding": "cp1252"},
                                 "fields": {"category": {"column": "Incident Type", "map": {"Fighting": "violent-crime"}}},
                                 "date": {"column": "Date Reported"},
                                 "location": {"kind": "en", "x": "Easting", "y": "Northing"}})
    inc = got.incidents
    assert len(inc) == 20
    assert (inc["x"] == 532754).all() and (inc["y"] == 181859).all()
    assert list(got.ledger.rejects["reason"]) == ["outside Great Britain"]


def test_draft_keeps_named_coordinate_columns_with_messy_cells(tmp_path):
    """A community app's export: Longitude / Latitude with a few rows swapped, one in degrees-minutes-seconds,
    one with decimal commas, 'N/A'. The draft said the columns were 'not used' and located by free text
    (and a council log's Easting / Northing with '532,754' and 'N/A': 'no coordinates ... column found')."""
    from hotspots.draft import draft_mapping
    path = tmp_path / "reports.csv"
    rows = ["Report ID,Submitted,What happened,Longitude,Latitude,Where"]
    cells = [("-0.0808", "51.5180"), ("51.5155", "-0.0925"), ("0°05'10.1\"W", "51°31'02.5\"N"),
             ("N/A", "N/A"), ("-0.0779", "51.5155"), ("51.5136", "-0.0890"), ("\"-0,0850\"", "\"51,5170\""),
             ("-0.0850 W", "51.5170 N"), ("-0.0850", "51.5170"), ("-0.0921", "51.5201"), ("see notes", "see notes")]
    for k, (x, y) in enumerate(cells * 3):
        rows.append(f"CR{k},2019-04-0{1 + k % 9} 21:00,Fighting,{x},{y},near Moorgate {k}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    draft = draft_mapping(path)
    first = draft.mapping["location"][0]
    assert first == {"kind": "lonlat", "x": "Longitude", "y": "Latitude", "fix_swapped": True}
    # Degrees-minutes-seconds, decimal commas and hemisphere letters are read as the loader reads them: only
    # 'see notes' is said to be no degree (they were 18 cells 'not plain numbers').
    assert [t.split(" cell")[0] for t in draft.todo if t.startswith("location.")] == ["location.lonlat: 6"]

    asb = tmp_path / "asb.csv"
    en = [("532,754", "181,859"), ("532657.0", "181476.0"), ("N/A", "N/A"), ("-", "-"), ("533309", "181308"),
          ("531927,5", "181741,5")]
    asb.write_text("Case No;Date Reported;Incident Type;Easting;Northing\n" + "".join(
        f"ASB/{k};0{1 + k % 9}/04/2019;Fighting;{x};{y}\n" for k, (x, y) in enumerate(en * 3)), encoding="cp1252")
    draft = draft_mapping(asb)
    assert draft.mapping["location"] == {"kind": "en", "x": "Easting", "y": "Northing"}
    assert [t.split(" cell")[0] for t in draft.todo if t.startswith("location.")] == ["location.en: 6"]


def test_iso_8601_times_are_uk_clock_time_and_a_date_alone_stays_a_day(tmp_path):
    """A youth club's GeoJSON: stamped times (+01:00, Z) are UK clock time at that instant; a date alone is
    that day (it became 01:00 on a summer day: the GeoJSON reader made it midnight UTC, and ISO8601 read
    unstamped times as UTC); an unstamped time is clock time as written."""
    stamps = ["2019-04-03T21:15:00+01:00", "2019-06-30T23:30:00Z", "2019-05-06", "2019-06-01T22:00:00"]
    path = _youth_club(tmp_path, stamps * 6)
    got = _load(tmp_path, path, {"name": "club", "extends": "partner_generic", "reader": {"format": "vector"},
                                 "fields": {"category": {"column": "what", "map": {"fight": "violent-crime"}}},
                                 "date": {"column": "when", "formats": ["ISO8601"], "precision": "day"},
                                 "location": {"kind": "geometry"}})
    inc = got.incidents
    assert len(inc) == 24
    seen = inc.groupby(["occurred_from", "occurred_to", "date_precision"]).size()
    assert set(seen.index) == {
        (pd.Timestamp("2019-04-03 21:15"), pd.Timestamp("2019-04-03 21:15"), "minute"),
        (pd.Timestamp("2019-07-01 00:30"), pd.Timestamp("2019-07-01 00:30"), "minute"),
        (pd.Timestamp("2019-05-06 00:00"), pd.Timestamp("2019-05-06 23:59:59"), "day"),
        (pd.Timestamp("2019-06-01 22:00"), pd.Timestamp("2019-06-01 22:00"), "minute")}


def test_draft_reads_times_stamped_with_their_offset(tmp_path):
    """A GeoJSON of youth-club incidents dated '2019-04-03T21:15:00+01:00' / '...Z': the draft said 'no column
    reads as dates' and left the column 'not used'; it now drafts ISO8601 and the drafted mapping loads."""
    from hotspots.draft import draft_mapping
    stamps = ["2019-04-03T21:15:00+01:00", "2019-06-30T23:30:00Z", "2019-01-15T18:00:00+00:00"]
    path = _youth_club(tmp_path, stamps * 8)
    draft = draft_mapping(path)
    m = draft.mapping
    assert m["date"]["column"] == "when" and "ISO8601" in m["date"]["formats"]
    assert not [t for t in draft.todo if t.startswith("date")]
    m["name"] = "club"
    got = _load(tmp_path, path, {k: v for k, v in m.items() if k != "_draft"})
    assert set(got.incidents["occurred_from"]) == {pd.Timestamp("2019-04-03 21:15"), pd.Timestamp("2019-07-01 00:30"),
                                                   pd.Timestamp("2019-01-15 18:00")}


def test_validate_fails_a_small_source_that_lost_every_row_to_one_reason(tmp_path, capsys):
    """The contract: validate exits 1 when a source fails as a whole. A 7-row file whose every date the
    mapping cannot read loaded nothing and validate said exit 0 (the loss check began at 20 rows)."""
    from hotspots.cli import main
    path = _youth_club(tmp_path, ["03 April 2019 at 9pm"] * 7)
    schema = tmp_path / "club.json"
    schema.write_text(json.dumps({"name": "club", "extends": "partner_generic", "reader": {"format": "vector"},
                                  "fields": {"category": {"column": "what", "map": {"fight": "violent-crime"}}},
                                  "date": {"column": "when"}, "location": {"kind": "geometry"}}), encoding="utf-8")
    cfg = tmp_path / "p.toml"
    cfg.write_text(f'[study]\nname = "t"\nstart = "2017-12"\nend = "2019-11"\n'
                   f'[[sources]]\nid = "club"\npath = "{path}"\nschema = "{schema}"\n', encoding="utf-8")
    assert main(["validate", str(cfg)]) == 1
    out = capsys.readouterr()
    assert "lost 7 of its 7 rows" in out.out + out.err
    # A few rows lost among others is no failure of the whole source.
    path2 = _youth_club(tmp_path, ["03 April 2019 at 9pm"] * 3 + ["03/04/2019"] * 4)
    assert path2 == path
    assert main(["validate", str(cfg)]) == 0


def test_draft_uses_a_postcode_column_with_some_partial_postcodes(tmp_path):
    """An ED extract: 'Incident postcode' full in half its cells, partial ('EC2A', 'E1 6') in the rest, and a
    free-text place. The draft left the postcode column 'not used' (it needed 80 % full postcodes), so a row
    with a full postcode and no free text was rejected 'no location'."""
    from openpyxl import Workbook

    from hotspots.draft import draft_mapping
    wb = Workbook()
    ws = wb.active
    ws.append(["Homerton ED - ISTV extract"])
    ws.append([])
    ws.append(["Attendance No", "Date of Assault", "Assault type", "Where did the assault happen?", "Incident postcode"])
    rows = [("Knife", "Liverpool St station", "EC2A"), ("Glass/bottle", "Cheapside", "EC2V 6AA"),
            ("Blunt object", "", "EC1V 3PQ"), ("Knife", "Bishopsgate", "E1 6"), ("Other", "home", "EC2Y 8NJ")]
    for k, (what, where, pc) in enumerate(rows * 4):
        ws.append([f"A{k}", f"0{1 + k % 9}/04/2019 22:15", what, where, pc])
    path = tmp_path / "ed.xlsx"
    wb.save(path)
    draft = draft_mapping(path)
    assert draft.mapping["location"] == [{"kind": "postcode", "column": "Incident postcode"},
                                         {"kind": "freetext", "column": "Where did the assault happen?"}]
    assert [t.split(" cell")[0] for t in draft.todo if t.startswith("location.")] == ["location.postcode: 8"]


def test_draft_reads_a_column_of_months(tmp_path):
    """A youth service's referral sheet dates referrals by month only ('Mar-2019', 'Jun 2019'): the draft said
    no column reads as dates. It drafts month formats at month precision, and the months load as months."""
    from hotspots.draft import draft_mapping
    path = tmp_path / "referrals.csv"
    rows = ["Referral Ref,Referral Month,Reason for referral,Incident Postcode"]
    rows += [f"YS-{k},{['Mar-2019', 'Apr-2019', 'Jun 2019'][k % 3]},Knife carrying,EC2Y 8NJ" for k in range(21)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    draft = draft_mapping(path)
    m = draft.mapping
    assert m["date"]["column"] == "Referral Month" and m["date"]["precision"] == "month"
    assert not [t for t in draft.todo if t.startswith("date")]
    m["name"] = "refs"
    got = _load(tmp_path, path, {k: v for k, v in m.items() if k != "_draft"})
    inc = got.incidents
    assert len(inc) == 21 and (inc["date_precision"] == "month").all()
    assert set(inc["occurred_from"]) == {pd.Timestamp("2019-03-01"), pd.Timestamp("2019-04-01"),
                                         pd.Timestamp("2019-06-01")}
    assert set(inc["occurred_to"]) == {pd.Timestamp("2019-03-31 23:59:59"), pd.Timestamp("2019-04-30 23:59:59"),
                                       pd.Timestamp("2019-06-30 23:59:59")}


def test_degrees_with_decimal_commas_or_minutes_and_seconds_are_read_with_a_note(tmp_path):
    """A partner's lon/lat written with a decimal comma (a European export, semicolon-delimited) or as
    degrees, minutes and seconds (a GPS unit): each was rejected 'unparseable coordinates', and '51,512'
    would read as 51512 were it taken for a thousands separator. Each is read at the place the decimal
    degrees give (pyproj from the same decimals: the same metres), with a note, and a precision from
    the last unit written; '91°', '0°75'' and '51 5145' (a slip, not 51°51'45") stay rejects."""
    from hotspots.crs import BNG, WGS84, transformer
    lon, lat = -0.0823, 51.5145
    written = [("-0,0823", "51,5145", "decimal comma"),
               ("0°4'56.28\"W", "51°30'52.2\"N", "degrees, minutes and seconds"),
               ("W 0 4.938", "N 51 30.87", "degrees, minutes and seconds"),
               ("0.0823 W", "51.5145N", "a hemisphere letter"),
               ("0d4m56.28sW", "51d30m52.2sN", "degrees, minutes and seconds"),
               ("-0.0823", "51.5145", "")]
    rows = ["Ref;Date;Type;Longitude;Latitude"]
    rows += [f"R{k};03/04/2019;Fighting;{x};{y}" for k, (x, y, _) in enumerate(written)]
    rows += ["R8;03/04/2019;Fighting;0°4'56\"W;91°30'52\"N", "R9;03/04/2019;Fighting;0°75'W;51°30'N",
             "R10;03/04/2019;Fighting;-0.0823;51 5145"]
    got = _load_lonlat(tmp_path, rows)
    inc = got.incidents.sort_values("_row")
    assert inc["_row"].tolist() == [1, 2, 3, 4, 5, 6]
    ex, ey = transformer(WGS84, BNG).transform(lon, lat)
    assert abs(inc["x"] - ex).max() < 0.5 and abs(inc["y"] - ey).max() < 0.5
    notes = got.ledger.notes.set_index("row")["note"]
    assert notes.get(1) == "decimal comma read as a decimal point"
    assert [notes.get(k) for k in (2, 3, 5)] == ["degrees, minutes and seconds read as decimal degrees"] * 3
    assert notes.get(4) == "a hemisphere letter read as the sign"
    assert 6 not in notes.index
    # Half the last unit, the coarser coordinate's: 4 decimals of a degree 5.6 m; a tenth of a second 1.5 m;
    # a hundredth of a minute 9.3 m.
    assert inc["location_precision_m"].tolist() == [5.6, 1.5, 9.3, 5.6, 1.5, 5.6]
    rej = got.ledger.rejects.set_index("row")["reason"]
    assert rej.to_dict() == {7: "coordinates out of range", 8: "unparseable coordinates", 9: "unparseable coordinates"}


def test_a_long_run_of_spaces_in_a_coordinate_cell_does_not_stall_the_load():
    """A lon/lat cell of a digit, a long run of spaces and a letter ('51' + 2,000 spaces + 'x') took 15 s
    in the degree patterns (their runs of optional spaces backtrack, cubic in the run): a few such cells in
    a hostile or badly padded export held the load for hours. It is read (or refused) at once."""
    import time

    import numpy as np

    from hotspots.load.location import _column_degrees
    cells = pd.Series(["51" + " " * 2000 + "x", "N" + " " * 2000 + "51" + " " * 2000 + "x",
                       "51" + " " * 2000 + "5" + " " * 2000 + "x", "51.5145" + " " * 3000 + "N", "0.0823 W"])
    note = np.full(len(cells), "", dtype=object)
    start = time.perf_counter()
    text, _ = _column_degrees(cells, note)
    assert time.perf_counter() - start < 1.0
    assert text.iloc[4] == "-0.0823" and note[4] == "a hemisphere letter read as the sign"
    assert list(note[:3]) == ["", "", ""]


def test_a_hemisphere_letter_of_the_other_coordinate_is_refused_not_read_as_a_sign(tmp_path):
    """'0.0823 S' in the longitude column was read as 0.0823 W, and 0°4'56"N as east, each with the note
    'a hemisphere letter read as the sign': N and S say nothing of east or west, so the row went 11 km
    either side of the meridian on a guess. They are rejected with their own reason; a pair whose letters
    are both the other axis's (the columns swapped) is still put back by fix_swapped."""
    rows = ["Ref;Date;Type;Longitude;Latitude",
            "R1;03/04/2019;Fighting;0.0823 S;51.5145 N",
            "R2;03/04/2019;Fighting;0.0823 W;51.5145 E",
            "R3;03/04/2019;Fighting;0°4'56\"N;51°30'52\"N",
            "R4;03/04/2019;Fighting;51.5145 N;0.0823 W",
            "R5;03/04/2019;Fighting;0.0823 W;51.5145 N"]
    got = _load_lonlat(tmp_path, rows, fix_swapped=True)
    assert sorted(got.incidents["_row"]) == [4, 5]
    from hotspots.load.location import WRONG_HEMISPHERE
    assert got.ledger.rejects.set_index("row")["reason"].to_dict() == {1: WRONG_HEMISPHERE, 2: WRONG_HEMISPHERE,
                                                                       3: WRONG_HEMISPHERE}
    inc = got.incidents.sort_values("_row")
    assert abs(inc["x"].iloc[0] - inc["x"].iloc[1]) < 0.5 and abs(inc["y"].iloc[0] - inc["y"].iloc[1]) < 0.5


def test_a_longitude_in_degrees_and_minutes_needs_a_letter_or_a_sign(tmp_path):
    """A review: 0°4'56" with no letter was read as east, 11 km from the same place written west, with only
    a note. A longitude so written is rejected; a minus sign says west; a latitude needs no letter in
    Great Britain; a sign that contradicts its letter is refused."""
    from hotspots.crs import BNG, WGS84, transformer
    from hotspots.load.location import UNSIGNED_LONGITUDE
    rows = ["Ref;Date;Type;Longitude;Latitude",
            "R1;03/04/2019;Fighting;0°4'56.28\";51°30'52.2\"N",        # no letter, no sign: rejected
            "R2;03/04/2019;Fighting;-0°4'56.28\";51°30'52.2\"",        # a sign: west; a latitude alone: north
            "R3;03/04/2019;Fighting;-0°4'56.28\"W;51°30'52.2\"N",      # sign and letter agree
            "R4;03/04/2019;Fighting;-0°4'56.28\"E;51°30'52.2\"N"]      # they disagree: refused
    got = _load_lonlat(tmp_path, rows)
    inc = got.incidents.sort_values("_row")
    assert inc["_row"].tolist() == [2, 3]
    ex, ey = transformer(WGS84, BNG).transform(-0.0823, 51.5145)
    assert abs(inc["x"] - ex).max() < 0.5 and abs(inc["y"] - ey).max() < 0.5
    rej = got.ledger.rejects.set_index("row")["reason"]
    assert rej.to_dict() == {1: UNSIGNED_LONGITUDE, 4: "unparseable coordinates"}
