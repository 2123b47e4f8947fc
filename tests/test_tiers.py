"""Audience tiers: the public map and exports follow the disclosure rules; payloads stay inert."""
from __future__ import annotations

import json
import re

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from hotspots.cli import main
from hotspots.tiers import SUPPRESSED, factual_mask, public_count
from tests.browser import chromium_available, open_offline
from tests.conftest import EXAMPLE

needs_chromium = pytest.mark.skipif(not chromium_available(), reason="Debian's chromium is not installed")
STREET = (EXAMPLE / "data" / "city_street").as_posix()
LAD = (EXAMPLE / "data" / "boundaries" / "london-2021-lad22-gen20.shp").as_posix()


@pytest.mark.parametrize("value, shown", [(0, "0"), (1, SUPPRESSED), (7, SUPPRESSED), (8, "10"), (12, "10"),
                                          (12.5, "15"), (13, "15"), (17.4, "15"), (17.5, "20"), (1234, "1235")])
def test_public_count_suppresses_one_to_seven_and_rounds_to_five(value, shown):
    assert public_count(value) == shown


def test_factual_mask_withholds_anecdotal_only_hotspots():
    regions = pd.DataFrame({"n_recorded_crime": [3, 0, 0], "n_community_report": [0, 9, 4],
                            "n_health": [0, 0, 2]})
    assert factual_mask(regions).tolist() == [True, False, True]


def _config(tmp_path, months=("2018-01", "2018-12"), tiers='["partner", "public"]', extra=""):
    text = f'''
[study]
name = "Public tier test"
start = "{months[0]}"
end = "{months[1]}"
[[sources]]
id = "city"
path = "{STREET}/2018-*-street.csv"
schema = "police_uk_street"
categories = ["violent-crime", "robbery", "drugs", "possession-of-weapons", "public-order"]
[[boundaries]]
id = "lad"
path = "{LAD}"
name_field = "LAD22NM"
[analysis]
cell_size_m = 150
[outputs]
tiers = {tiers}
{extra}
'''
    path = tmp_path / "p.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def public_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("public")
    out = tmp / "out"
    assert main(["run", str(_config(tmp)), "--out", str(out)]) == 0
    return out


def _count_values(frame: pd.DataFrame) -> list[str]:
    cols = [c for c in frame.columns if c == "n" or c.startswith("n_") or c in ("weighted", "hot_cells")]
    return [str(v) for c in cols for v in frame[c]]


def test_public_exports_hold_no_count_between_one_and_seven(public_run):
    cells = gpd.read_file(public_run / "public" / "cells.geojson")
    regions = gpd.read_file(public_run / "public" / "regions.geojson")
    areas = pd.read_csv(public_run / "public" / "areas.csv", dtype=str)
    for frame in (cells, regions, areas):
        for v in _count_values(frame):
            assert v == "0" or v == SUPPRESSED or (int(v) % 5 == 0 and int(v) >= 10), v
    assert "<8" in set(_count_values(cells))          # suppression happened
    assert "clusters" not in {p.stem for p in (public_run / "public").iterdir()}
    assert "gi_q" not in cells.columns


def test_public_cells_are_at_least_400_m(public_run):
    cells = gpd.read_file(public_run / "public" / "hotspots.gpkg", layer="cells")
    assert cells.geometry.area.min() == pytest.approx(400 * 400)
    partner = gpd.read_file(public_run / "hotspots.gpkg", layer="cells")
    assert partner.geometry.area.max() == pytest.approx(150 * 150)


def test_manifest_marks_each_output_with_its_tier(public_run):
    m = json.loads((public_run / "manifest.json").read_text())
    tiers = {o["path"]: o["tier"] for o in m["outputs"]}
    assert tiers["map-public.html"] == "public" and tiers["map.html"] == "partner"
    assert tiers["public/cells.geojson"] == "public" and tiers["rejects.csv"] == "analyst"


def test_public_tier_needs_twelve_months(tmp_path, capsys):
    code = main(["run", str(_config(tmp_path, months=("2018-01", "2018-06"))), "--out", str(tmp_path / "o")])
    assert code == 1
    err = capsys.readouterr().err
    assert "at least 12 months" in err and "covers 6" in err


NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?![\w.])")


@needs_chromium
def test_public_map_shows_no_number_between_one_and_seven_and_no_points(public_run):
    with open_offline(public_run / "map-public.html") as (page, errors, blocked):
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.wait_for_timeout(400)
        assert errors == [] and blocked == []
        assert page.locator("path.hs-cluster").count() == 0
        assert page.locator(".leaflet-marker-icon:not(:has(.hs-label))").count() == 0   # only area labels
        assert page.locator("circle, path.leaflet-interactive[d*='a']").count() == 0  # no circle markers
        texts = []
        for el in page.locator("path.hs-cell, path.hs-region").all()[:60]:
            el.click(force=True)
            texts.append(page.locator(".leaflet-popup-content").last.inner_text())
        page.locator("#hs-areas summary").click()
        texts.append(page.locator("#hs-areas").inner_text())
        data = page.evaluate("""() => { const out = [];
            const map = Object.values(window).find(v => v instanceof L.Map);
            map.eachLayer(l => { if (l.feature) out.push(JSON.stringify(l.feature.properties)); }); return out; }""")
        texts += data
        assert texts
        for text in texts:
            for number in NUMBER.findall(text):
                assert not (1 <= float(number) <= 7), (number, text)


PAYLOADS = ['<img src=x onerror="alert(1)">', "${alert(2)}", "</script><script>alert(3)</script>",
            "`;alert(4);`", "<b onmouseover=alert(5)>bold</b>"]


@needs_chromium
def test_script_payloads_in_every_free_text_field_stay_text(tmp_path):
    lad = gpd.read_file(LAD)
    lad = lad[lad["LAD22NM"].isin(["City of London", "Islington", "Camden"])].copy()
    lad["LAD22NM"] = [PAYLOADS[0], PAYLOADS[1], PAYLOADS[2]]
    lad_path = tmp_path / "lad.geojson"
    lad.to_crs(4326).to_file(lad_path)
    cfg = _config(tmp_path, tiers='["partner"]').read_text()
    cfg = cfg.replace(LAD, lad_path.as_posix()).replace('name = "Public tier test"', f'name = {json.dumps(PAYLOADS[3])}')
    cfg = cfg.replace('schema = "police_uk_street"', f'schema = "police_uk_street"\nlegal_basis = {json.dumps(PAYLOADS[4])}'
                      f'\nsharing_agreement = {json.dumps(PAYLOADS[0])}')
    cfg = f"attribution = [{json.dumps(PAYLOADS[2])}]\n" + cfg.replace('id = "city"', f'id = {json.dumps(PAYLOADS[4])}')
    path = tmp_path / "payload.toml"
    path.write_text(cfg)
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out)]) == 0
    html = (out / "map.html").read_text()
    assert "<script>alert(3)" not in html and 'onerror="alert(1)"' not in html
    with open_offline(out / "map.html") as (page, errors, blocked):
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.wait_for_timeout(500)
        page.locator("#hs-methods summary").click()
        for el in page.locator("path.hs-cell").all()[:10]:
            el.click(force=True)
        page.locator("path.hs-boundary").first.hover(force=True)
        page.wait_for_timeout(300)
        assert errors == [], errors
        labels = page.locator(".hs-label").all_inner_texts()
        assert PAYLOADS[0] in labels and PAYLOADS[1] in labels and PAYLOADS[2] in labels
        methods = page.locator("#hs-methods").inner_text()
        assert PAYLOADS[4] in methods            # the source id, in the sources table
        for p in PAYLOADS[2:]:
            assert p in methods
        assert page.locator("img[src='x']").count() == 0 and page.locator("b[onmouseover]").count() == 0
