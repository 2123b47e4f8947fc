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


def _counts(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c in ("n", "weighted") or c.startswith(("n_", "role_"))]


def _public_tables(out):
    return {"cells": gpd.read_file(out / "public" / "cells.geojson"),
            "regions": gpd.read_file(out / "public" / "regions.geojson"),
            "cells.gpkg": gpd.read_file(out / "public" / "hotspots.gpkg", layer="cells"),
            "areas": pd.read_csv(out / "public" / "areas.csv")}


def test_public_exports_carry_counts_as_numbers_rounded_or_empty(public_run):
    tables = _public_tables(public_run)
    for name, frame in tables.items():
        if not len(frame):
            continue
        cols = _counts(frame)
        assert "n" in cols and "weighted" in cols, name
        for c in cols:
            assert frame[c].dtype.kind == "f", (name, c)          # numbers, not text: QGIS can graduate them
            v = frame[c].dropna()
            assert ((v == 0) | ((v % 5 == 0) & (v >= 10))).all(), (name, c, sorted(set(v))[:10])
        sup = frame["suppressed"].astype(bool)
        assert frame.loc[sup, cols].isna().all().all(), name      # every count of a suppressed row is empty
    cells = tables["cells"]
    assert cells["suppressed"].astype(bool).sum() > 0             # suppression happened
    assert "clusters" not in {p.stem for p in (public_run / "public").iterdir()}
    assert not {"gi_z", "gi_p", "gi_q"} & set(cells.columns)


def test_no_suppressed_count_can_be_recovered_from_the_public_outputs(public_run):
    """Try as an attacker would: every suppressed cell's count from everything the public tier writes."""
    tables = _public_tables(public_run)
    cells, regions = tables["cells"], tables["regions"]
    sup = cells[cells["suppressed"].astype(bool)]
    # 1. No count of a suppressed cell anywhere (GeoJSON and GeoPackage alike).
    for frame in (cells, tables["cells.gpkg"]):
        assert frame.loc[frame["suppressed"].astype(bool), _counts(frame)].isna().all().all()
    # 2. Differencing: a region's total less its other cells, with every published figure rounded to 5
    # (a true value within 2 of it), must leave more than one possible value for a suppressed cell.
    pinned = []
    for reg in regions.itertuples():
        members = cells[cells["region_id"] == reg.region_id]
        hidden = members[members["suppressed"].astype(bool)]
        if len(hidden) != 1 or pd.isna(reg.n):
            continue
        shown = members.loc[~members["suppressed"].astype(bool), "n"].fillna(0)
        k = len(shown) + 1
        lo, hi = reg.n - shown.sum() - 2 * k, reg.n - shown.sum() + 2 * k
        possible = [v for v in range(1, 8) if lo <= v <= hi]
        if len(possible) < 2:
            pinned.append((reg.region_id, possible))
    assert pinned == []
    # 3. The public map carries no exact figure of the run: the partner's exact row counts are absent.
    html = (public_run / "map-public.html").read_text(encoding="utf-8")
    manifest = json.loads((public_run / "manifest.json").read_text())
    exact = {v for e in manifest["inputs"] for k, v in e.items()
             if k.startswith("rows_") and isinstance(v, int) and v >= 8 and v % 5}
    text = re.sub(r"<script.*?</script>|<style.*?</style>|data:[^\"')]+", " ", html, flags=re.S)
    shown_numbers = {int(m.replace(",", "")) for m in re.findall(r"(?<![\w.#])\d[\d,]*(?![\w.])", text)}
    assert not exact & shown_numbers, sorted(exact & shown_numbers)
    assert len(sup) > 0


def test_public_cells_are_at_least_400_m(public_run):
    cells = gpd.read_file(public_run / "public" / "hotspots.gpkg", layer="cells")
    assert cells.geometry.area.min() == pytest.approx(400 * 400)
    partner = gpd.read_file(public_run / "hotspots.gpkg", layer="cells")
    assert partner.geometry.area.max() == pytest.approx(150 * 150)


def test_public_hexagons_hold_at_least_a_400_m_squares_area(tmp_path):
    # A disclosure audit: hexagons 400 m across the flats held 138,564 m2, 13 % less than a 400 m square.
    config = _config(tmp_path)
    config.write_text(config.read_text().replace("cell_size_m = 150", 'cell_size_m = 150\ncell_shape = "hexagon"'))
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out)]) == 0
    cells = gpd.read_file(out / "public" / "hotspots.gpkg", layer="cells")
    assert cells.geometry.area.min() == pytest.approx(400 * 400, rel=1e-6)


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


@pytest.mark.parametrize("months, ok", [(("2017-12-31", "2018-12-01"), False), (("2017-12", "2018-10"), False),
                                        (("2018-01", "2018-12"), True), (("2018-01-15", "2019-01-14"), True),
                                        (("2018-01-15", "2019-01-13"), False)])
def test_twelve_months_are_elapsed_time_not_calendar_months_touched(tmp_path, months, ok):
    from hotspots.config import load_config
    from hotspots.errors import UserError
    from hotspots.tiers import check_public
    cfg = load_config(_config(tmp_path, months=months))
    if ok:
        check_public(cfg)
    else:
        with pytest.raises(UserError, match="at least 12 months"):
            check_public(cfg)


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
        # The areas table: incidents follow the rule; hot cells, regions and cross-boundary regions
        # are places the map shows, not counts of records (map.py _areas_panel), and may be 1 to 7.
        panel = page.locator("#hs-areas").inner_text()
        texts.append("\n".join("\t".join(line.split("\t")[:2]) for line in panel.splitlines()))
        data = page.evaluate("""() => { const out = [];
            const map = Object.values(window).find(v => v instanceof L.Map);
            map.eachLayer(l => { if (l.feature) out.push(JSON.stringify(l.feature.properties)); }); return out; }""")
        texts += data
        assert texts
        for text in texts:
            for number in NUMBER.findall(text):
                assert not (1 <= float(number) <= 7), (number, text)


def test_cells_and_regions_count_each_person_role_apart(example_result):
    """n_<evidence> counts records about no person; each role has its own column; none sums two roles."""
    inc, cells, regions = example_result.incidents, example_result.cells, example_result.regions
    yos = inc[inc["evidence"] == "partner_record"]
    role = yos["role"].fillna("").astype(str)
    assert set(role) >= {"victim", "suspect"}
    assert cells["n_partner_record"].sum() == int((role == "").sum())
    for r in sorted(set(role) - {""}):
        assert cells[f"role_{r}_partner_record"].sum() == int((role == r).sum()), r
    # regions carry the same columns, summed over their cells only
    for reg in regions.itertuples():
        members = cells[cells["region_id"] == reg.region_id]
        assert getattr(reg, "role_suspect_partner_record") == members["role_suspect_partner_record"].sum()


def test_the_public_outline_follows_the_public_cells_not_single_incidents(public_run):
    """The study area a public map draws is made of its 400 m cells: an incident 200 m outside the
    partner area cannot grow it by a strip that traces where the incident lies."""
    area = gpd.read_file(public_run / "public" / "hotspots.gpkg", layer="study_area").geometry.iloc[0]
    coords = shapely.get_coordinates(area)
    assert len(coords) > 4
    assert (np.abs(coords / 400.0 - np.round(coords / 400.0)) < 1e-6).all()   # every vertex on the 400 m lattice
    partner = gpd.read_file(public_run / "hotspots.gpkg", layer="study_area").geometry.iloc[0]
    assert not (np.abs(shapely.get_coordinates(partner) / 400.0
                       - np.round(shapely.get_coordinates(partner) / 400.0)) < 1e-6).all()


def test_public_cells_name_supporting_sources_only_for_published_hotspots(demo_out):
    """Outside a published hotspot, a cell's `support` would place what the public tier withholds:
    the community reports' own concentration by Hoxton, or missing-from-care episodes by a home."""
    partner = gpd.read_file(demo_out[2] / "cells.geojson")
    assert (partner["support"].fillna("").str.contains("community_intel") & (partner["region_id"].fillna("") == "")).any()
    for frame in (gpd.read_file(demo_out[2] / "public" / "cells.geojson"),
                  gpd.read_file(demo_out[2] / "public" / "hotspots.gpkg", layer="cells")):
        support, region = frame["support"].fillna(""), frame["region_id"].fillna("")
        assert (support[region == ""] == "").all()
        assert (support[region != ""] != "").any()
        # Each published region rests on at least one factual source's own evidence.
        for rid in set(region) - {""}:
            names = {s for v in support[region == rid] for s in v.split(";") if s}
            assert names & {"city_police", "met_police", "ed_assaults", "yos_referrals", "missing_episodes"}


def test_partner_records_near_a_sensitive_site_stay_out_of_the_public_tier(example_result):
    """Around a children's home the partner records (missing episodes, exploitation referrals) are its
    profile: the public view leaves out every non-police record within 300 m of a sensitive site."""
    from scipy.spatial import cKDTree

    from hotspots.pipeline import public_view
    sites = example_result.sensitive_sites
    assert sites is not None and len(sites) == 6
    full = example_result.incidents
    police = full["evidence"].astype(str).isin(["recorded_crime", "police_activity"]).to_numpy()
    dist = cKDTree(sites).query(full[["x", "y"]].to_numpy(float))[0]
    willow = np.hypot(full["x"] - 531277, full["y"] - 183304).to_numpy() <= 300   # the planted home
    assert (willow & ~police).sum() >= 50          # what the partner tier profiles there
    view = public_view(example_result)
    assert len(view.incidents) == len(full) - int(((dist <= 300) & ~police).sum())
    vdist = cKDTree(sites).query(view.incidents[["x", "y"]].to_numpy(float))[0]
    vpolice = view.incidents["evidence"].astype(str).isin(["recorded_crime", "police_activity"]).to_numpy()
    assert not ((vdist <= 300) & ~vpolice).any()
    # The public cell holding the planted home counts no partner record.
    home = view.grid.assign(np.array([531277.0]), np.array([183304.0]))[0]
    row = view.cells.iloc[home]
    assert not row["region_id"]  # no published hotspot there
    assert row[[c for c in view.cells.columns if c.startswith("role_")]].fillna(0).sum() == 0


def test_a_hotspot_only_anecdotal_sources_support_is_withheld_even_when_they_weigh_as_much(example_config):
    """With community reports and intelligence weighted as recorded crime, the Hoxton cluster is a
    partner-tier region labelled anecdotal-only; on 400 m cells it takes in a few factual records, and
    must still not be published."""
    import dataclasses

    from hotspots.pipeline import analyse, public_view
    cfg = dataclasses.replace(example_config, weights={**example_config.weights, "intelligence": 1.0,
                                                       "community_report": 1.0})
    result = analyse(cfg)
    assert result.regions["anecdotal_only"].any()
    # Without the sensitive-site rule, which leaves out records near a children's home by Hoxton too.
    view = public_view(dataclasses.replace(result, sensitive_sites=None))
    # Withheld cell by cell now, before regions are drawn (a region of such cells never forms).
    assert view.extra["withheld_anecdotal_only_cells"] + view.extra["withheld_anecdotal_only_regions"] >= 1
    centres = view.regions.geometry.centroid
    assert (np.hypot(centres.x - 533576, centres.y - 183148) > 600).all()   # nothing by Hoxton station
    assert not {"support", "anecdotal_only"} & set(view.regions.columns)


def test_leaving_out_records_near_a_sensitive_site_makes_no_cold_spot_there(example_result):
    """Near a sensitive site (within the exclusion and one Gi* neighbourhood), a public cell is cold
    only where it is cold with the left-out records kept too: the hole in the data makes no cold spot,
    and a real cold spot there stays."""
    import dataclasses

    import shapely

    from hotspots.pipeline import public_view
    view = public_view(example_result)
    kept = public_view(dataclasses.replace(example_result, sensitive_sites=None))
    zone = shapely.union_all(shapely.buffer(shapely.points(example_result.sensitive_sites),
                                            300.0 + view.grid.touch_distance))
    touched = shapely.intersects(view.cells.geometry.values, zone)
    assert touched.sum() >= 6
    shown = view.cells["gi_class"].fillna(0).to_numpy()
    whole = kept.cells["gi_class"].fillna(0).to_numpy()
    cold = touched & (shown < 0)
    assert (whole[cold] <= shown[cold]).all()
    # Without the rule, the exclusion alone would have made cold cells there (it did: a column of them
    # by the planted home); with it, none is colder than with every record.
    assert not (touched & (shown < 0) & (whole >= 0)).any()


def test_a_public_only_run_writes_no_partner_table(tmp_path):
    out = tmp_path / "o"
    assert main(["run", str(_config(tmp_path, tiers='["public"]')), "--out", str(out)]) == 0
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {"map-public.html", "briefing-public.html", "public/cells.geojson", "manifest.json"} <= names
    assert not names & {"map.html", "briefing.html", "cells.geojson", "regions.geojson", "clusters.geojson",
                        "hotspots.gpkg", "buildings.csv", "sensitivity.csv", "sensitivity_regions.csv",
                        "thresholds.csv", "building_types.csv"}
    tiers = {o["tier"] for o in json.loads((out / "manifest.json").read_text())["outputs"]}
    assert "partner" not in tiers


def test_public_covered_by_names_declared_coverage_only(demo_out):
    """A coverage derived from a source's records (the Met's LSOAs, or the cells near a small partner's
    few records) would place them; the public cells name only the sources that declared theirs."""
    partner = gpd.read_file(demo_out[2] / "cells.geojson")
    public = gpd.read_file(demo_out[2] / "public" / "cells.geojson")
    assert partner["covered_by"].str.contains("met_police").any()
    named = {s for v in public["covered_by"].fillna("") for s in v.split(";") if s}
    assert named and not named & {"met_police", "city_stop_search"}
    manifest = json.loads((demo_out[2] / "manifest.json").read_text())
    declared = {k for k, v in manifest["parameters"]["coverage"]["value"].items() if v["how"] == "declared areas"}
    assert named <= declared


def test_the_public_methods_panel_does_not_count_restricted_records(demo_out):
    assert "held back from shared outputs" in (demo_out[2] / "map.html").read_text(encoding="utf-8")
    assert "held back" not in (demo_out[2] / "map-public.html").read_text(encoding="utf-8")
    assert "held back" not in (demo_out[2] / "briefing-public.html").read_text(encoding="utf-8")


def test_every_public_hot_cell_is_hot_on_the_factual_sources_alone(example_result):
    """Hostile audit: the rule was applied per region, so two of the example's 400 m cells were
    published hot (C7_14 at 99 %) on community reports and intelligence, inside a region that factual
    sources support, and their public ``support`` named the intelligence sources. Now a cell is
    published hot only where the factual sources alone (anecdotal weights 0) make it hot too, as
    recomputed here on the public grid; only factual sources are named."""
    from hotspots import weight
    from hotspots.detect.combine import ANECDOTAL
    from hotspots.pipeline import evidence_classes, hotspot_grid, public_view, source_weights
    from hotspots.tiers import PUBLIC
    view = public_view(example_result)
    ev = evidence_classes(example_result.incidents)
    cells = view.cells
    for v in cells["support"].fillna(""):
        assert all(ev[s] in PUBLIC["factual_evidence"] for s in v.split(";") if s)
    inc = view.incidents.assign(cell=view.grid.assign(view.incidents["x"].to_numpy(), view.incidents["y"].to_numpy()))
    inc = inc[inc["cell"] >= 0]

    def classes(records):
        out, _ = hotspot_grid(records, view.grid, view.grid.touch_distance, 0.05, "permutation",
                              int(example_result.cfg.analysis.get("seed", 0)), example_result.coverage,
                              example_result.study_area, "sources",
                              source_weights(weight.risk(records, ["source_id", "evidence"]), example_result.weights))
        return out["gi_class"].fillna(0).to_numpy()
    agreed = classes(inc)
    factual = classes(inc.assign(weight=inc["weight"].where(~inc["evidence"].isin(ANECDOTAL), 0.0)))
    published = cells["gi_class"].fillna(0).to_numpy()
    assert (published > 0).any()
    assert (factual[published > 0] > 0).all()                    # every published hot cell
    demoted = (agreed > 0) & (factual <= 0)
    assert demoted.any() and (published[demoted] <= 0).all()      # hot only with the anecdotal sources
    kept = (agreed > 0) & (factual > 0) & (cells["region_id"].fillna("") != "").to_numpy()
    assert kept.any() and (published[kept] > 0).all()

def test_the_public_sources_table_does_not_count_held_back_records(demo_out):
    """Hostile audit: the public map's and briefing's table of sources showed each source's rows "Filtered",
    and those held back for their handling code were among them: community_intel's 30 filtered rows are
    exactly its 30 3x5x2 C records held back, legacy_intel's 14 its 5x5x5 handling 4 and 5. The public
    tier counts the records it may use: the held-back rows are neither read nor filtered there."""
    import re
    for name in ("map-public.html", "briefing-public.html"):
        html = (demo_out[2] / name).read_text(encoding="utf-8")
        rows = {}
        for row in re.findall(r"<tr>(<td>(?:community_intel|legacy_intel)</td>.*?)</tr>", html):
            cells = re.findall(r"<td>(.*?)</td>", row)
            nums = [c for c in cells if re.fullmatch(r"\d+|&lt;8|<8", c)]
            rows[cells[0]] = nums[:4]       # read, loaded, filtered, rejected
        # community_intel: 600 read, 490 loaded, 62 filtered (all held back: C), 48 rejected
        assert rows["community_intel"] == ["540", "490", "0", "50"], (name, rows)
        # legacy_intel: 82 read, 65 loaded, 14 filtered (all held back), 3 rejected
        assert rows["legacy_intel"][:3] == ["70", "65", "0"], (name, rows)
    # The partner map still says what was held back, and why.
    assert "held back from shared outputs" in (demo_out[2] / "map.html").read_text(encoding="utf-8")


DA_MAPPING = {"name": "da_referrals", "extends": "partner_generic", "reader": {"format": "csv"},
              "evidence": "partner_record",
              "fields": {"source_category": {"column": "Type"},
                         "category": {"column": "Type", "map": {"Domestic abuse": "domestic-abuse"}}},
              "date": {"column": "Date", "formats": ["%Y-%m-%d"]},
              "location": {"kind": "en", "x": "Easting", "y": "Northing"}}


def test_a_restricted_category_alone_makes_no_public_hotspot_and_its_source_is_not_named(tmp_path):
    """Disclosure audit: 80 domestic-abuse referrals from one source made a 95 % public hotspot by Leicester
    Square (a public region) and its cells named the source in ``support``: a domestic-abuse layer in
    effect. A public cell is hot only where it is hot without the restricted categories' records, and a
    source holding any of them is not named."""
    for name in ("data", "schemas"):
        (tmp_path / name).symlink_to(EXAMPLE / name, target_is_directory=True)
    rng = np.random.default_rng(4)
    days = pd.date_range("2018-01-01", "2019-10-31", freq="D")
    rows = [f"{days[rng.integers(len(days))].date()},{529800 + rng.normal(0, 40):.0f},{181200 + rng.normal(0, 40):.0f},"
            "Domestic abuse" for _ in range(80)]
    (tmp_path / "da.csv").write_text("Date,Easting,Northing,Type\n" + "\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "da.json").write_text(json.dumps(DA_MAPPING), encoding="utf-8")
    text = (EXAMPLE / "partnership.toml").read_text(encoding="utf-8")
    source = ('\n[[sources]]\nid = "marac_domestic_abuse"\npath = "da.csv"\nschema = "da.json"\n'
              'coverage = ["City of London", "Camden", "Hackney", "Islington", "Tower Hamlets", "Westminster"]\n'
              'handling = "P"\n')
    at = text.index("[[boundaries]]")
    (tmp_path / "p.toml").write_text(text[:at] + source + "\n" + text[at:], encoding="utf-8")
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "p.toml"), "--out", str(out)]) == 0
    partner = gpd.read_file(out / "cells.geojson")
    here = partner[partner.geometry.to_crs(27700).contains(shapely.Point(529800, 181200))]
    assert "marac_domestic_abuse" in here["support"].iloc[0]       # its own evidence is high there
    public = gpd.read_file(out / "public" / "cells.geojson")
    assert not public["support"].fillna("").str.contains("marac_domestic_abuse").any()
    cell = public[public.geometry.to_crs(27700).contains(shapely.Point(529800, 181200))]
    assert (cell["gi_class"].fillna(0) <= 0).all(), cell[["cell_id", "gi_class"]]
