"""Data is never code: every hostile string in every text field reaches both maps as literal text.

The corpus (``tests/hostile.py``) goes into the study name, attribution, legal
basis, sharing agreement and handling conditions of the config, the names of
boundary areas, and the names, types and subtypes of key buildings. The run
must succeed, no payload may run (no file created, no dialog, no console
error), and the text must show as written, in both tiers, in Chromium.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest

from hotspots.cli import main
from hotspots.publish.escape import HtmlBlock, SafePopup, SafeTooltip, esc, js_json
from tests.browser import chromium_available, open_offline
from tests.conftest import EXAMPLE
from tests.hostile import HOSTILE, payloads

needs_chromium = pytest.mark.skipif(not chromium_available(), reason="Debian's chromium is not installed")
STREET = (EXAMPLE / "data" / "city_street").as_posix()
LAD = (EXAMPLE / "data" / "boundaries" / "london-2021-lad22-gen20.shp").as_posix()
# Real places in and around the City of London (lon, lat), for the hostile key buildings.
PLACES = [(-0.0886, 51.5133), (-0.0983, 51.5138), (-0.0777, 51.5154), (-0.0920, 51.5186), (-0.1040, 51.5160),
          (-0.0810, 51.5110)]


@pytest.mark.parametrize("text", HOSTILE)
def test_esc_leaves_no_character_that_means_something_to_html_js_or_jinja(text):
    out = esc(text)
    assert not set(out) & set("<>\"'`$\\{}\u2028\u2029")
    assert "</" not in js_json(text) and "\u2028" not in js_json(text)
    assert json.loads(js_json(text)) == text


@pytest.mark.parametrize("text", HOSTILE)
def test_html_block_and_popups_render_data_not_template(text):
    """branca's Element(text) would run ``text`` as Jinja2; HtmlBlock renders it as a value, and popups and
    tooltips carry it as a JSON string."""
    import folium
    assert HtmlBlock(esc(text)).render() == esc(text)
    assert HtmlBlock("{{ 7 * 7 }}").render() == "{{ 7 * 7 }}"
    m = folium.Map(tiles=None)
    marker = folium.CircleMarker([51.5, -0.1]).add_to(m)
    marker.add_child(SafePopup(esc(text)))
    marker.add_child(SafeTooltip(text))
    html = m.get_root().render()
    assert js_json(esc(text)) in html
    assert html.count(js_json(esc(text))) == 2


def _hostile_partnership(tmp_path, texts: list[str]):
    """A config, boundary file and key-building file carrying ``texts`` in every text field."""
    lad = gpd.read_file(LAD)
    lad = lad[lad["LAD22NM"].isin(["City of London", "Islington", "Camden", "Hackney", "Westminster",
                                   "Tower Hamlets", "Southwark"])].copy()
    lad["LAD22NM"] = texts[:len(lad)]
    lad_path = tmp_path / "lad.geojson"
    lad.to_crs(4326).to_file(lad_path)
    rows = []
    for k, text in enumerate(texts):
        lon, lat = PLACES[k % len(PLACES)]
        rows.append({"name": text, "type": texts[(k + 1) % len(texts)], "subtype": texts[(k + 2) % len(texts)],
                     "lon": lon + 0.0004 * (k // len(PLACES)), "lat": lat})
    buildings = tmp_path / "buildings.csv"
    pd.DataFrame(rows).to_csv(buildings, index=False)
    # police.uk street names ("On or near ...") become street labels and region names.
    street = tmp_path / "street"
    street.mkdir()
    for path in sorted(Path(STREET).glob("2018-*-street.csv")):
        month = pd.read_csv(path, dtype=str, keep_default_na=False)
        if path.name.startswith("2018-01"):
            for k, text in enumerate(texts):
                month.loc[month.index[k * 7:(k + 1) * 7], "Location"] = "On or near " + text
        month.to_csv(street / path.name, index=False)

    def s(text):   # a TOML basic string
        return json.dumps(text, ensure_ascii=False)
    config = tmp_path / "hostile.toml"
    config.write_text(f'''
attribution = [{", ".join(s(t) for t in texts)}]
[study]
name = {s(texts[0])}
start = "2018-01"
end = "2018-12"
[[sources]]
id = "city"
path = "{street.as_posix()}/2018-*-street.csv"
schema = "police_uk_street"
categories = ["violent-crime", "robbery", "drugs", "possession-of-weapons", "public-order"]
legal_basis = {s(texts[5])}
sharing_agreement = {s(texts[1])}
handling_conditions = {s(texts[10])}
[[boundaries]]
id = "lad"
path = "{lad_path.as_posix()}"
name_field = "LAD22NM"
[[key_buildings]]
id = "hostile"
path = "{buildings.as_posix()}"
schema = "generic_points"
radius_m = [100, 250]
[analysis]
cell_size_m = 150
[outputs]
tiers = ["partner", "public"]
''', encoding="utf-8")
    return config, lad["LAD22NM"].tolist()


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    marker = (tmp / "pwned").as_posix()
    texts = payloads(marker)
    config, areas = _hostile_partnership(tmp, texts)
    out = tmp / "out"
    code = main(["run", str(config), "--out", str(out)])
    return code, out, texts, areas, tmp


def test_hostile_text_runs_nothing_and_the_run_succeeds(hostile_run):
    code, out, texts, _, tmp = hostile_run
    assert code == 0
    assert sorted(p.name for p in tmp.iterdir() if p.name.startswith("pwned")) == []
    for name in ("map.html", "map-public.html"):
        html = (out / name).read_text(encoding="utf-8")
        assert "looplooploop" not in html                       # the Jinja2 loop never ran
        assert "<script>alert(3)" not in html and 'onerror="alert(1)"' not in html
        assert "<b onmouseover" not in html


def _page_texts(page) -> dict:
    page.evaluate("document.querySelector('#hs-methods details').open = true")
    return {"labels": page.locator(".hs-label").all_inner_texts(),
            "methods": page.locator("#hs-methods").inner_text(),
            "title": page.title()}


def _normalise(text: str) -> str:
    # The browser lays a Unicode line separator out as a line break; inner_text then reports "\n".
    return re.sub(r"\s+", " ", text.replace("\u2028", " ").replace("\u2029", " ")).strip()


@needs_chromium
@pytest.mark.parametrize("tier", ["partner", "public"])
def test_hostile_text_shows_literally_in_both_maps(hostile_run, tier):
    code, out, texts, areas, _ = hostile_run
    assert code == 0
    with open_offline(out / ("map.html" if tier == "partner" else "map-public.html")) as (page, errors, blocked):
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.wait_for_timeout(400)
        got = _page_texts(page)
        areas_set = set(areas)
        labels = {_normalise(t) for t in got["labels"]}
        for area in areas:
            if len(area) < 200:
                assert _normalise(area) in labels, area
        methods = _normalise(got["methods"])
        for text in texts:                                      # attribution lists every one
            assert _normalise(text) in methods, text[:40]
        assert _normalise(texts[5]) in methods and _normalise(texts[1]) in methods
        assert got["title"].startswith(texts[0])
        popups = page.evaluate("""() => { const map = Object.values(window).find(v => v instanceof L.Map);
            const out = [];
            map.eachLayer(l => { if (l instanceof L.CircleMarker && l.getPopup && l.getPopup()) {
                l.openPopup(); out.push(l.getPopup().getElement().innerText); } });
            return out; }""")
        # The cells' popups (areas hold the hostile area names): laid out from data, text shown literally.
        cells = page.evaluate("""() => { const map = Object.values(window).find(v => v instanceof L.Map);
            const out = [];
            map.eachLayer(l => { if (l.feature && l.options.className === "hs-cell" && out.length < 40) {
                l.openPopup(l.getBounds().getCenter());
                out.push([l.feature.properties.areas, l.getPopup().getElement().innerText]); } });
            return out; }""")
        page.wait_for_timeout(200)
        assert errors == [] and blocked == []
        assert page.locator("img[src='x']").count() == 0 and page.locator("b[onmouseover]").count() == 0
        assert cells
        shown_areas = set()
        for areas, popup in cells:
            assert _normalise(areas) in _normalise(popup)
            shown_areas |= {a for a in areas.split(";") if a in areas_set}
        assert len(shown_areas) >= 2, shown_areas        # hostile names reached the cells' popups
        page.evaluate("""() => { const map = Object.values(window).find(v => v instanceof L.Map);
                                 map.setZoom(17, {animate: false}); }""")
        page.wait_for_timeout(300)
        streets = {_normalise(t) for t in page.locator(".hs-street-label").all_inner_texts()}
        for text in texts:
            if "/" not in text and len(text) < 60:    # junctions ("A/B") are not street names
                assert _normalise(text) in streets, text
        assert errors == []
        if tier == "partner":
            shown = {_normalise(p) for p in popups}
            for text in texts:
                assert any(_normalise(text) in p for p in shown), text[:40]
        else:
            assert popups == []                                 # no building reaches the public map
