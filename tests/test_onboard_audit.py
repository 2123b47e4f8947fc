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
