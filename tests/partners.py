"""The simulated partner extracts of the bundled example, as the partner tests load them.

The files are the generator's output for seed 2018 in
``examples/london_city_fringe/data/partners/``; its truth table (true places,
planted patterns, the dirt planted in each row) is ``tests/fixtures/partners/truth.csv``
and is read by tests only. ``partner_config`` writes a config that reads them
with the example's police data, postcodes and key buildings.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "london_city_fringe"
DATA = EXAMPLE / "data"
PARTNERS = DATA / "partners"
TRUTH = ROOT / "tests" / "fixtures" / "partners" / "truth.csv"

ED, YOS, CI, LEGACY = ("ed_istv_assaults.csv", "yos_referrals.xlsx", "community_intel.csv",
                       "community_intel_legacy_5x5x5.csv")

POLICE = f'''
[[sources]]
id = "city_police"
path = "{DATA}/city_street/*-street.csv"
schema = "police_uk_street"
evidence = "recorded_crime"
categories = ["violent-crime", "robbery", "possession-of-weapons", "drugs", "public-order"]

[[sources]]
id = "met_police"
path = "{DATA}/met_api/*.json"
schema = "police_uk_api"
evidence = "recorded_crime"
categories = ["violent-crime", "robbery", "possession-of-weapons", "drugs", "public-order"]
'''

SOURCES = {
    "ed": f'''
[[sources]]
id = "ed"
path = "{PARTNERS / ED}"
schema = "istv_ae"
evidence = "health"
''',
    "yos": f'''
[[sources]]
id = "yos"
path = "{PARTNERS / YOS}"
schema = "{EXAMPLE / 'schemas' / 'yos_referrals.json'}"
''',
    "intel": f'''
[[sources]]
id = "intel"
path = "{PARTNERS / CI}"
schema = "community_intel"
''',
    "legacy": f'''
[[sources]]
id = "legacy"
path = "{PARTNERS / LEGACY}"
schema = "community_intel_5x5x5"
''',
}

GEOCODING = f'''
[geocoding]
postcodes = "{DATA}/postcodes/*.csv"
places = [
  {{ path = "{DATA}/buildings/tfl_stations_20220221.csv", schema = "tfl_stations" }},
  {{ path = "{DATA}/buildings/all_schools_xy_2016.csv", schema = "london_schools_atlas" }},
]
'''


def partner_config(folder: Path, sources=("ed", "yos", "intel", "legacy"), police: bool = True,
                   extra: str = "", start: str = "2017-12", end: str = "2019-11", source_extra: dict | None = None,
                   geocoding: str = GEOCODING) -> Path:
    """Write a config reading the generated partner files (and the example's police data)."""
    parts = [f'[study]\nname = "partners"\nstart = "{start}"\nend = "{end}"\n', geocoding]
    if police:
        parts.append(POLICE)
    for s in sources:
        parts.append(SOURCES[s] + (source_extra or {}).get(s, ""))
    parts.append(extra)
    path = Path(folder) / "partners.toml"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


@lru_cache(maxsize=1)
def truth() -> pd.DataFrame:
    """The generator's truth table: one row per data row of each file."""
    return pd.read_csv(TRUTH, keep_default_na=False, na_values=[""],
                       dtype={"police_crime_id": str, "dirt": str, "target_name": str, "true_time": str})


def truth_of(name: str) -> pd.DataFrame:
    t = truth()
    out = t[t["file"] == name].copy()
    out["dirt"] = out["dirt"].fillna("")
    return out.set_index("row", drop=False)


def has_dirt(t: pd.DataFrame, tag: str) -> pd.Series:
    """Rows whose ';'-separated dirt list holds ``tag`` (or a tag starting with ``tag:``)."""
    return t["dirt"].map(lambda d: any(x == tag or x.startswith(tag + ":") for x in d.split(";")))


@lru_cache(maxsize=1)
def loaded_partners(folder: str):
    """(config, Loaded) of every partner source with the police data, loaded once per test module folder."""
    from hotspots.config import load_config
    from hotspots.load import load_sources
    cfg = load_config(partner_config(Path(folder)))
    return cfg, load_sources(cfg)


def rows_of(loaded, source_id: str) -> pd.DataFrame:
    inc = loaded.incidents
    return inc[inc["source_id"] == source_id].set_index("_row", drop=False)


def rejects_of(loaded, source_id: str) -> pd.DataFrame:
    rej = loaded.ledger.rejects
    return rej[rej["source_id"] == source_id].set_index("row", drop=False)
