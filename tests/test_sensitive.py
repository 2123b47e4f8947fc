"""Sensitive key-building layers (children's homes): never in a public output, in any form; in the
partner tier exact or only "a sensitive site in this cell".

The sites are read here from the example's children's services export and the Code-Point Open
postcodes beside it, with the csv module and plain arithmetic: not through the loader under test.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import re
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer

from hotspots import attribute, sensitive
from hotspots.errors import UserError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "london_city_fringe"
HOMES = EXAMPLE / "data" / "partners" / "childrens_homes_SIMULATED.csv"
TO_WGS84 = Transformer.from_crs("EPSG:27700", "EPSG:4326", always_xy=True)


def _postcodes() -> dict[str, tuple[float, float]]:
    out = {}
    for f in sorted((EXAMPLE / "data" / "postcodes").glob("*.csv")):
        with open(f, encoding="latin-1", newline="") as fh:
            for row in csv.reader(fh):
                out[row[0].replace(" ", "").upper()] = (float(row[2]), float(row[3]))
    return out


def sites() -> list[dict]:
    """Each children's home of the example: name, URN and true BNG location."""
    pcs = _postcodes()
    out = []
    with open(HOMES, encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["Easting"].strip():
                x, y = float(row["Easting"]), float(row["Northing"])
            else:
                x, y = pcs[row["Postcode"].replace(" ", "").upper()]
            out.append({"name": row["Setting Name"], "urn": row["URN"], "x": x, "y": y})
    return out


def needles(site: dict) -> list[str]:
    """Strings that must never appear: the name (with and without the simulated label), the URN, the id."""
    return [site["name"], site["name"].replace(" (simulated)", ""), site["urn"], f"children_homes:{site['urn']}"]


NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE]-?\d+)?")


def coordinate_hits(text: str, site: dict) -> list[tuple[float, float]]:
    """Every pair of consecutive numbers in ``text`` within 1e-4 degrees of the site (lon, lat or lat, lon)
    or within 10 m of it in British National Grid: the site's location rounded to 1e-4 degrees or 10 m."""
    nums = np.array([float(m) for m in NUMBER.findall(text)] or [0.0])
    lon, lat = TO_WGS84.transform(site["x"], site["y"])
    a, b = nums[:-1], nums[1:]
    same = lambda u, v, step: np.abs(u - v) <= step   # noqa: E731   within one rounding step
    hit = ((same(a, lon, 1e-4) & same(b, lat, 1e-4)) | (same(a, lat, 1e-4) & same(b, lon, 1e-4))
           | (same(a, site["x"], 10.0) & same(b, site["y"], 10.0)))
    return list(zip(a[hit], b[hit]))


def public_texts(out: Path) -> dict[str, str]:
    """Every public file a run wrote, as text: the manifest's public entries, GeoPackages dumped table by
    table (every column, geometry as WKT, and the raw bytes), the manifest's public entries themselves."""
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    public = [o["path"] for o in manifest["outputs"] if o["tier"] == "public"]
    assert {"map-public.html", "briefing-public.html", "public/cells.geojson", "public/hotspots.gpkg"} <= set(public)
    texts = {"manifest public entries": json.dumps([o for o in manifest["outputs"] if o["tier"] == "public"])}
    for rel in public:
        path = out / rel
        raw = path.read_bytes()
        texts[rel] = raw.decode("utf-8", errors="replace")
        if rel.endswith(".gpkg"):
            con = sqlite3.connect(path)
            names = [r[0] for r in con.execute("SELECT table_name FROM gpkg_contents")]
            con.close()
            import geopandas as gpd
            for layer in names:
                df = gpd.read_file(path, layer=layer)
                df["wkt"] = df.geometry.to_crs("EPSG:4326").to_wkt() if len(df) else []
                texts[f"{rel}:{layer}:bng"] = df.drop(columns="wkt").to_wkt().to_csv() if len(df) else ""
                texts[f"{rel}:{layer}"] = df.drop(columns="geometry").to_csv()
    return texts


def test_no_sensitive_site_in_any_public_file(demo_out, example_result):
    code, _, out = demo_out
    assert code == 0
    texts = public_texts(out)
    homes = sites()
    assert len(homes) == 6
    found = []
    for site in homes:
        for where, text in texts.items():
            low = text.lower()
            found += [(site["name"], w, where) for w in needles(site) if w.lower() in low]
            found += [(site["name"], pair, where) for pair in coordinate_hits(text, site)]
    assert found == []
    # The layer's id and type name no public file either.
    for where, text in texts.items():
        assert "children_homes" not in text and "childrens_home" not in text, where
        assert "sensitive site" not in text.lower(), where


def test_the_recovery_search_finds_a_site_when_one_is_there():
    """The search above must be able to fail: rounded coordinates in any common form are caught."""
    site = sites()[0]
    lon, lat = TO_WGS84.transform(site["x"], site["y"])
    for leaked in (json.dumps({"type": "Point", "coordinates": [round(lon, 5), round(lat, 5)]}),
                   f"L.marker([{lat + 3e-5:.6f}, {lon - 3e-5:.6f}])",
                   f"POINT ({round(site['x'], -1):.0f} {round(site['y'], -1):.0f})",
                   f"x,y\n{site['x'] + 4:.1f},{site['y'] - 4:.1f}"):
        assert coordinate_hits(leaked, site), leaked
    assert not coordinate_hits(f"[{lat + 2e-4:.6f}, {lon:.6f}] {site['x'] + 20:.0f} {site['y']:.0f}", site)
    assert any(w.lower() in f"near {site['name'].upper()}".lower() for w in needles(site))


def test_no_public_cell_or_count_singles_a_site_out(demo_out, example_result):
    """The public cell holding a site is at least 400 m, its counts are rounded or suppressed, and records
    within 100 m of the site can never be all of a published count; no public layer counts a source or
    category on its own (the missing episodes located near the homes)."""
    _, _, out = demo_out
    import geopandas as gpd
    cells = gpd.read_file(out / "public" / "hotspots.gpkg", layer="cells")
    inc = example_result.incidents
    for site in sites():
        hit = cells[cells.geometry.contains(shapely.Point(site["x"], site["y"]))]
        if not len(hit):
            continue
        cell = hit.iloc[0]
        minx, miny, maxx, maxy = cell.geometry.bounds
        assert min(maxx - minx, maxy - miny) >= 400 - 1e-6
        # What the public tier counts near a site: police data only (other records within 300 m of a
        # sensitive site are left out of the public tier, tests/test_tiers.py).
        police = inc["evidence"].astype(str).isin(["recorded_crime", "police_activity"])
        near = int(((np.hypot(inc["x"] - site["x"], inc["y"] - site["y"]) <= 100) & police).sum())
        n = cell["n"]
        if pd.notna(n) and n != "":
            assert int(n) % 5 == 0
            assert int(n) - near >= 8 or near == 0, (site["name"], n, near)
    for col in cells.columns:
        assert "missing" not in col and "exploitation" not in col and not col.startswith(("z_", "p_")), col


def test_partner_tier_shows_cell_display_sites_only_by_their_cell(demo_out, example_result):
    _, _, out = demo_out
    table = pd.read_csv(out / "buildings.csv")
    homes = table[table["type"] == "childrens_home"]
    assert len(homes) == 6
    assert (homes["name"].str.startswith("A sensitive site in this cell")).all()
    assert homes["building_id"].str.startswith("children_homes:sensitive-C").all()
    # Moved to the centre of a 150 m cell of the partner grid: never within 1 m of the true site.
    g = example_result.grid
    assert np.allclose(((homes["x"] - g.x0) / g.cell) % 1, 0.5)
    assert np.allclose(((homes["y"] - g.y0) / g.cell) % 1, 0.5)
    for site in sites():
        d = np.hypot(homes["x"] - site["x"], homes["y"] - site["y"]).min()
        assert 1.0 < d <= 150 / np.sqrt(2) + 1e-6
    partner = {p: (out / p).read_text(encoding="utf-8") for p in ("map.html", "briefing.html", "buildings.csv",
                                                                  "regions.geojson", "cells.geojson")}
    for site in sites():
        for where, text in partner.items():
            assert site["name"] not in text and site["urn"] not in text, where
    assert partner["map.html"].count("A sensitive site in this cell") >= 6
    # The legend says what the dashed squares are (a user audit: a meeting could not tell).
    assert "A protected site (a children&#x27;s home, ...) shown by its grid cell only" in partner["map.html"] or \
        "A protected site (a children's home, ...) shown by its grid cell only" in partner["map.html"]
    # Care homes are not sensitive: named as loaded.
    assert "Canal View Care Centre (simulated)" in partner["buildings.csv"]


def _region_with(x: float, y: float):
    return gpd_frame([shapely.box(x - 100, y - 100, x + 100, y + 100)])


def gpd_frame(geoms):
    import geopandas as gpd
    return gpd.GeoDataFrame({"region_id": [f"R{k + 1}" for k in range(len(geoms))], "areas": ["Islington"] * len(geoms)},
                            geometry=geoms, crs="EPSG:27700")


def _buildings(display: str, sensitive_flag: bool = True) -> pd.DataFrame:
    return pd.DataFrame({"building_id": ["children_homes:SC1", "schools:1"], "name": ["Secret House", "Open School"],
                         "type": ["childrens_home", "school"], "x": [530010.0, 530200.0], "y": [180010.0, 180200.0],
                         "rank": [1, 2], "sensitive": [sensitive_flag, False],
                         "sensitive_display": [display if sensitive_flag else "", ""]})


@pytest.mark.parametrize("display, named", [("cell", False), ("exact", True)])
def test_a_sensitive_building_names_a_region_only_when_shown_exactly(display, named):
    regions = gpd_frame([shapely.box(529900, 179900, 530300, 180300)])
    got = attribute.name_regions(regions, None, _buildings(display))
    assert ("Secret House" in got["name"].iloc[0]) is named
    assert "Open School" in got["name"].iloc[0]


def test_partner_buildings_moves_a_cell_display_site_to_its_cell():
    from hotspots.grid import build_grid
    grid = build_grid(shapely.box(529800, 179800, 530400, 180400), 150.0, "square")
    table = _buildings("cell")
    table["subtype"] = ["Children's home", ""]
    got = sensitive.partner_buildings(table, grid)
    home = got.iloc[0]
    assert home["name"] == "A sensitive site in this cell (childrens home)"
    assert home["subtype"] == "" and home["building_id"].startswith("children_homes:sensitive-")
    cell = grid.assign(np.array([530010.0]), np.array([180010.0]))[0]
    cx, cy = grid.centres()
    assert (home["x"], home["y"]) == (cx[cell], cy[cell]) and home["cell_size_m"] == 150.0
    assert got.iloc[1]["name"] == "Open School" and got.iloc[1]["x"] == 530200.0
    # Exact display and non-sensitive layers pass unchanged; the public view keeps no sensitive row.
    assert sensitive.partner_buildings(_buildings("exact"), grid)["name"].tolist() == ["Secret House", "Open School"]
    assert sensitive.public_buildings(_buildings("exact"))["name"].tolist() == ["Open School"]
    assert sensitive.public_buildings(_buildings("cell", False))["name"].tolist() == ["Secret House", "Open School"]


def _config_with(tmp_path: Path, extra: str) -> Path:
    text = (EXAMPLE / "partnership.toml").read_text(encoding="utf-8")
    text = text.replace('sensitive = true\nsensitive_display = "cell"\n', extra)
    cfg = tmp_path / "partnership.toml"
    cfg.write_text(text.replace('path = "data/', f'path = "{EXAMPLE}/data/')
                   .replace('schema = "schemas/', f'schema = "{EXAMPLE}/schemas/')
                   .replace('postcodes = "data/', f'postcodes = "{EXAMPLE}/data/'), encoding="utf-8")
    return cfg


def test_childrens_homes_are_sensitive_by_default_and_the_display_is_checked(tmp_path):
    from hotspots.config import load_config
    from hotspots.load.buildings import load_buildings
    from hotspots.load.ledger import Ledger
    cfg = load_config(_config_with(tmp_path, ""))          # neither key: the schema's default
    layer = next(kb for kb in cfg.key_buildings if kb.id == "children_homes")
    assert layer.sensitive is None and layer.sensitive_display == "cell"
    table, _ = load_buildings(dataclasses.replace(cfg, key_buildings=[layer]), Ledger())
    assert table["sensitive"].all() and (table["sensitive_display"] == "cell").all() and len(table) == 6
    cfg = load_config(_config_with(tmp_path, "sensitive = false\n"))
    layer = next(kb for kb in cfg.key_buildings if kb.id == "children_homes")
    table, _ = load_buildings(dataclasses.replace(cfg, key_buildings=[layer]), Ledger())
    assert not table["sensitive"].any()
    care = next(kb for kb in cfg.key_buildings if kb.id == "care_homes")
    table, _ = load_buildings(dataclasses.replace(cfg, key_buildings=[care]), Ledger())
    assert not table["sensitive"].any() and len(table) == 5
    with pytest.raises(UserError, match="sensitive_display"):
        load_config(_config_with(tmp_path, 'sensitive = true\nsensitive_display = "blurred"\n'))
    with pytest.raises(UserError, match="sensitive"):
        load_config(_config_with(tmp_path, 'sensitive = "yes"\n'))


def test_a_cell_display_sites_profile_is_measured_at_its_cell_centre(example_result):
    """Disclosure audit: the counts around a home's true place (100, 250 and 500 m), set against police.uk's
    open records, gave the place back to within 0-20 m for five of the six homes. Every count of a
    cell-display site is now the count around the cell centre it is shown at, as for any building at
    its own place (recounted here from the incidents)."""
    from tests.test_buildings import risk_in_own_coverage
    b = example_result.buildings
    inc = risk_in_own_coverage(example_result)
    crime = inc[inc["evidence"].astype(str) == "recorded_crime"]
    x, y = crime["x"].to_numpy(float), crime["y"].to_numpy(float)
    homes = (b["type"] == "childrens_home").to_numpy()
    assert homes.sum() == 6
    g = example_result.grid
    assert np.allclose(((b.loc[homes, "x"] - g.x0) / g.cell) % 1, 0.5)
    for radius in (100, 250, 500):
        recount = np.array([np.count_nonzero(np.hypot(x - bx, y - by) <= radius) for bx, by in zip(b["x"], b["y"])])
        assert (b[f"n_recorded_crime_{radius}"].to_numpy() == recount).all(), radius
    # Around the true places the counts differ for some homes: what was published before.
    true_xy = np.array([(s["x"], s["y"]) for s in sites()])
    at_true = [np.count_nonzero(np.hypot(x - sx, y - sy) <= 100) for sx, sy in true_xy]
    assert sorted(at_true) != sorted(b.loc[homes, "n_recorded_crime_100"].tolist())
