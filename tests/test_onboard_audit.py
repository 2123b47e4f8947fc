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
