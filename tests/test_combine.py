"""Coverage and the combination of sources: each source on its own terms, weighed as agreed."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely
from scipy.stats import norm

from hotspots import coverage as covermod
from hotspots import grid as gridmod
from hotspots.detect.combine import combine, source_table, stouffer
from hotspots.detect.gistar import bh_qvalues, neighbour_matrix
from hotspots.pipeline import hotspot_grid
from tests.esda_reference import esda_gi_z


def test_weighted_stouffer_matches_a_hand_computation():
    p = np.array([[0.01, 0.5], [0.01, np.nan], [np.nan, np.nan]])
    side = np.array([[1, -1], [1, 0], [0, 0]])
    z = stouffer(p, side, np.array([1.0, 0.3]))
    # (1 x 2.5758 - 0.3 x 0.6745) / sqrt(1 + 0.09)
    assert z[0] == pytest.approx((2.5758293 - 0.3 * 0.6744898) / np.sqrt(1.09), abs=1e-6)
    assert z[1] == pytest.approx(2.5758293, abs=1e-6)           # one source: its own p
    assert np.isnan(z[2])                                        # none: no data


def _two_sources(n_rows=20, n_cols=30, seed=0):
    """A dense 'police' source covering the left two thirds, a sparse 'partner' source everywhere."""
    rng = np.random.default_rng(seed)
    rows, cols = np.nonzero(np.ones((n_rows, n_cols), bool))
    w = neighbour_matrix(cols, rows, 100.0, 100.0 * np.sqrt(2))
    police_cov = cols < 20
    police = np.where(police_cov, rng.poisson(8.0, len(rows)), 0).astype(float)
    partner = rng.poisson(0.3, len(rows)).astype(float)
    return rows, cols, w, police, partner, police_cov


def test_each_source_is_tested_on_its_covered_cells_only_withesda_gi_z():
    rows, cols, w, police, partner, police_cov = _two_sources()
    ev = source_table({"police": police, "partner": partner},
                      {"police": police_cov.astype(float), "partner": np.ones(len(rows))}, w, draws=2_000)
    idx = np.nonzero(police_cov)[0]
    ref = esda_gi_z(police[idx], w[idx][:, idx])          # esda on the covered cells, weights restricted
    assert np.max(np.abs(ev["police"]["z"][idx] - ref)) < 1e-9
    assert np.isnan(ev["police"]["z"][~police_cov]).all() and np.isnan(ev["police"]["p"][~police_cov]).all()


def test_cells_no_source_covers_are_no_data_and_out_of_the_fdr_count():
    rows, cols, w, police, partner, police_cov = _two_sources()
    ev = source_table({"police": police}, {"police": police_cov.astype(float)}, w, draws=2_000)
    out = combine(ev, {"police": 1.0}, len(rows))
    assert (out.loc[~police_cov, "status"] == "no_data").all()
    assert out.loc[~police_cov, ["gi_z", "gi_p", "gi_q", "gi_class"]].isna().all().all()
    assert (out.loc[police_cov, "status"] == "analysed").all()
    # BH over the analysed cells only (600 cells of which 400 analysed).
    assert np.allclose(out.loc[police_cov, "gi_q"], bh_qvalues(out.loc[police_cov, "gi_p"].to_numpy()))


def test_a_partner_only_cluster_beside_a_dense_police_source_is_found():
    rows, cols, w, police, partner, police_cov = _two_sources(seed=1)
    block = (rows >= 8) & (rows < 11) & (cols >= 24) & (cols < 27)      # outside police coverage
    partner[block] += 6                                                 # 54 partner records
    ev = source_table({"police": police, "partner": partner},
                      {"police": police_cov.astype(float), "partner": np.ones(len(rows))}, w, draws=20_000)
    out = combine(ev, {"police": 1.0, "partner": 1.0}, len(rows))
    centre = (rows == 9) & (cols == 25)
    assert out.loc[centre, "gi_class"].iloc[0] >= 2
    assert out.loc[centre, "support"].iloc[0] == "partner"
    assert out.loc[centre, "covered_by"].iloc[0] == "partner"
    far = (np.abs(rows - 9) > 2) | (np.abs(cols - 25) > 2)
    assert (out.loc[far, "gi_class"] >= 2).sum() == 0
    # Pooled, the police volume sets the variance and the same cluster is invisible.
    pooled = police + partner
    from hotspots.detect.combine import pooled as pooled_gi
    cls = pooled_gi(pooled, np.ones(len(rows), bool), w, draws=20_000)["gi_class"].to_numpy()
    assert cls[centre][0] < 2


def test_partly_covered_cells_are_compared_by_their_covered_share():
    g = gridmod.build_grid(shapely.box(0, 0, 1000, 1000), 100.0)
    boxes_cov = pd.DataFrame({"source_id": ["a"]})
    import geopandas as gpd
    cov = gpd.GeoDataFrame(boxes_cov, geometry=[shapely.box(0, 0, 1000, 560)], crs="EPSG:27700")
    shares = covermod.cell_shares(g, shapely.box(0, 0, 1000, 1000), cov, ["a"])[:, 0]
    _, y = g.centres()
    assert np.allclose(shares[y < 500], 1.0)
    assert np.allclose(shares[(y > 500) & (y < 600)], 0.6)        # 60 m of 100 m inside: covered
    assert np.allclose(shares[y > 600], 0.0)
    assert covermod.covered(shares).sum() == 60


@pytest.mark.parametrize("geom", [
    shapely.Polygon([(0, 0), (1000, 0), (0, 1000)]),                                  # diagonal: cut cells
    shapely.union_all([shapely.box(100, 100, 500, 400), shapely.box(500, 300, 800, 900)]),  # cell sides only
    shapely.box(150, 150, 850, 850).difference(shapely.box(300, 300, 700, 700)),      # a hole, half cells
    shapely.Point(500, 500).buffer(420),
])
@pytest.mark.parametrize("shape", ["square", "hexagon"])
def test_cell_shares_equal_clipping_every_cell(geom, shape):
    """The fast path (only cells the outline crosses are clipped) gives each cell's exact clipped share,
    on squares and hexagons, and a second ask is the same."""
    g = gridmod.build_grid(shapely.box(0, 0, 1000, 1000), 100.0, shape)
    boxes = g.boxes()
    exact = shapely.area(shapely.intersection(boxes, geom)) / g.cell_area
    got = covermod.grid_shares(g, geom)
    assert np.allclose(got, exact, atol=1e-12)
    assert covermod.grid_shares(g, geom) is got
    assert 0 < (got == 1).sum() < len(got)


@pytest.mark.parametrize("shape", ["square", "hexagon"])
def test_derived_coverage_shares_are_its_cells(shape):
    """A coverage derived from records (cells within reach of a cell with a record) is made of whole cells:
    the shares it remembers are what clipping every cell against its outline gives."""
    area = shapely.Point(1000, 1000).buffer(950)
    g = gridmod.build_grid(area, 100.0, shape)
    rng = np.random.default_rng(4)
    x, y = rng.uniform(200, 1300, 60), rng.uniform(300, 1800, 60)
    mine = pd.DataFrame({"x": x, "y": y, "cell": g.assign(x, y)})
    geom = covermod._cells_near_records(g, mine, 250.0)
    remembered = covermod.grid_shares(g, geom)
    exact = shapely.area(shapely.intersection(g.boxes(), geom)) / g.cell_area
    assert np.allclose(remembered, exact, atol=1e-9) and set(np.unique(remembered)) == {0.0, 1.0}
    assert np.array_equal(remembered, covermod._shares(g.boxes(), geom, g.cell_area))
    assert 0 < remembered.sum() < g.n


def test_hotspot_grid_keeps_the_pooled_rule_equal_to_esda():
    rng = np.random.default_rng(2)
    area = shapely.box(0, 0, 3000, 2000)
    g = gridmod.build_grid(area, 150.0)
    x, y = rng.uniform(0, 3000, 3000), rng.uniform(0, 2000, 3000)
    inc = pd.DataFrame({"x": x, "y": y, "weight": rng.choice([0.5, 1.0], 3000), "evidence": "recorded_crime",
                        "source_id": rng.choice(["a", "b"], 3000)})
    inc["cell"] = g.assign(x, y)
    cells, w = hotspot_grid(inc, g, g.touch_distance, 0.05, "permutation", 0, None, area, "pooled", draws=2_000)
    # The top row of cells is a third inside the area: not covered, so no data, out of the reference.
    ok = (cells["status"] == "analysed").to_numpy()
    assert ok.sum() == 20 * 13 and cells.loc[~ok, "gi_z"].isna().all()
    idx = np.nonzero(ok)[0]
    ref = esda_gi_z(cells["weighted"].to_numpy()[idx], w[idx][:, idx])
    assert np.max(np.abs(cells["gi_z"].to_numpy()[idx] - ref)) < 1e-9


def test_the_example_finds_the_hospital_only_hotspot_and_nothing_outside_coverage(example_result):
    cells = example_result.cells
    assert {"status", "covered_by", "support", "z_ed_assaults", "p_ed_assaults"} <= set(cells.columns)
    nodata = cells["status"] == "no_data"
    assert nodata.any()
    assert cells.loc[nodata, "gi_class"].isna().all() and (cells.loc[nodata, "covered_by"] == "").all()
    assert not (cells.loc[~nodata, "gi_class"].isna()).any()
    # The planted ED-only hotspot: 104 assaults in one cell by Shoreditch High Street station.
    top = cells.loc[cells["n_health"].idxmax()]
    assert top["n_health"] >= 100
    assert top["gi_class"] >= 2 and "ed_assaults" in top["support"].split(";")
    cov = example_result.parameters["coverage"]["value"]
    assert cov["met_police"]["how"].startswith("derived")
    assert cov["city_police"]["how"] == "declared areas"
    # The Met's six wards are not four boroughs: its derived coverage is well under the study area.
    assert cov["met_police"]["study_share"] < 0.6


def test_derived_coverage_without_units_is_the_cells_near_the_records_and_warns():
    from types import SimpleNamespace
    import geopandas as gpd
    area = shapely.box(0, 0, 3000, 3000)
    g = gridmod.build_grid(area, 100.0)
    xs = np.array([150.0, 250.0, 2850.0])
    ys = np.array([150.0, 150.0, 2850.0])
    inc = pd.DataFrame({"source_id": "p", "x": xs, "y": ys, "cell": g.assign(xs, ys)})
    cfg = SimpleNamespace(sources=[SimpleNamespace(id="p", coverage=None, options={})],
                          analysis={"coverage_reach_m": 200.0}, path="x.toml", resolve=lambda p: p)
    cov = covermod.source_coverage(cfg, gpd.GeoDataFrame(geometry=[], crs="EPSG:27700"), inc, g, area)
    row = cov.iloc[0]
    assert row["how"].startswith("derived: cells within 200 m")
    # Records in cells (col 1, row 1), (2, 1) and (28, 28) of a 30 x 30 grid; covered: the cells whose
    # centres lie within 200 m (a disc of 13 cells) of one of them. Around the first two, row 1 has
    # columns 0-4 (5), rows 0 and 2 columns 0-3 (8), row 3 columns 1-2 (2); row -1 is off the grid:
    # 15. Around (28, 28) the disc loses the two cells beyond column and row 29: 11. 26 of 900 cells.
    assert row["cells"] == 15 + 11
    assert "recorded nothing in 97 %" in row["warning"]


def test_the_example_labels_its_anecdotal_only_hotspot_as_such(example_result):
    """The generator's community-reports hotspot by Hoxton station (no police or hospital records
    there) is not hot under the agreed weights; when anecdotal reports count as recorded crime it is,
    and every such cell there is labelled as supported only by anecdotal sources."""
    cells = example_result.cells
    centre = cells.geometry.centroid
    near = np.hypot(centre.x - 533576, centre.y - 183148) <= 300     # Hoxton, from the TfL stations file
    hot_equal = near & (cells["gi_class_anecdotal_equal"] >= 2)
    assert hot_equal.sum() >= 3
    assert (cells.loc[hot_equal, "gi_class"] < 2).all()
    assert cells.loc[hot_equal, "anecdotal_only"].all()
    for support in cells.loc[hot_equal, "support"]:
        assert set(support.split(";")) <= {"community_intel", "legacy_intel"}
    # A cell with factual support is never labelled anecdotal-only (the ED hotspot, R1).
    factual = cells["support"].str.contains("city_police|met_police|ed_assaults", regex=True)
    assert not (cells.loc[factual, "anecdotal_only"]).any()
    assert cells["anecdotal_only"].sum() < len(cells) / 10


@pytest.mark.parametrize("k", [0, 1, 5, 70])
def test_names_joined_per_cell_as_one_join_each_would_give(k):
    from hotspots.detect.combine import joined
    rng = np.random.default_rng(k)
    names = [f"src_{i}" for i in range(k)]
    masks = [rng.random(500) < 0.3 for _ in names]
    want = [";".join(s for s, m in zip(names, masks) if m[i]) for i in range(500)]
    assert joined(names, masks, 500) == want
    if k == 5:
        assert len(set(want)) > 10 and "" in want      # many sets, and cells of none


def test_no_cell_is_classed_against_the_sign_of_its_own_gi_z():
    # A busy cell whose 8 neighbours are empty, among Poisson(5) cells: its Gi* z is positive
    # while its neighbours lie in the permutation's lower tail (audit finding: it was a 95 % hot
    # spot in the pooled rule on that lower-tail p, and "cold" in the combined score).
    from hotspots.detect.combine import pooled
    from tests.test_inference import _busy_cell_among_empty_neighbours
    x, w, mid = _busy_cell_among_empty_neighbours()
    out = pooled(x, np.ones(len(x), bool), w, 0.05, "permutation", 20_000, 3)
    assert out["gi_z"].iat[mid] > 0 and out["gi_p"].iat[mid] == 1.0 and out["gi_class"].iat[mid] == 0
    ev = source_table({"s": x}, {"s": np.ones(len(x))}, w, "permutation", 20_000, 3)
    comb = combine(ev, {"s": 1.0}, len(x))
    signs = np.sign(comb["gi_z"].to_numpy()) * np.sign(comb["z_s"].to_numpy())
    assert (signs >= 0).all() and comb["gi_class"].iat[mid] == 0
    assert comb["gi_p"].iat[mid] == 1.0


def test_a_partly_covered_cell_counts_only_the_records_inside_the_coverage():
    # Audit finding: a partly covered cell's density is count / covered share, but the count held the
    # source's records outside its coverage too (24 of a City cell's 27 City police records lay
    # outside the City): numerator and exposure now share one footprint.
    import geopandas as gpd
    area = shapely.box(0, 0, 1000, 1000)
    g = gridmod.build_grid(area, 100.0)
    cov = gpd.GeoDataFrame({"source_id": ["a"]}, geometry=[shapely.box(0, 0, 1000, 560)], crs="EPSG:27700")
    rng = np.random.default_rng(2)
    x, y = rng.uniform(0, 1000, 3000), rng.uniform(0, 560, 3000)
    # A row of cells 500-600 m high is 60 % covered: 20 records each in its uncovered 560-600 m strip.
    ox, oy = np.repeat(np.arange(50.0, 1000.0, 100.0), 20), np.full(200, 580.0)
    inc = pd.DataFrame({"x": np.concatenate([x, ox]), "y": np.concatenate([y, oy]), "weight": 1.0,
                        "source_id": "a", "evidence": "recorded_crime", "role": "victim",
                        "category": "violence", "duplicate_of": ""})
    inc["cell"] = g.assign(inc["x"].to_numpy(), inc["y"].to_numpy())
    cells, _, ev = hotspot_grid(inc, g, g.touch_distance, 0.05, "normal", 0, cov, area, "sources", {"a": 1.0},
                                return_evidence=True)
    # Recounted by hand: only the records inside the coverage, over the covered share.
    inside = inc["y"].to_numpy() <= 560
    counts = np.bincount(inc["cell"].to_numpy()[inside], minlength=g.n).astype(float)
    shares = covermod.cell_shares(g, area, cov, ["a"])[:, 0]
    cov_cells = covermod.covered(shares)
    from hotspots.detect.gistar import gi_star
    w = g.neighbours(g.touch_distance)
    idx = np.nonzero(cov_cells)[0]
    z = gi_star(counts[idx] / shares[idx], w[idx][:, idx])
    np.testing.assert_allclose(cells["z_a"].to_numpy()[idx], z, atol=1e-12)
    # Every record still counts in the cell's own figures.
    assert cells["n"].sum() == len(inc)


def test_the_risk_records_inside_each_coverage_are_the_same_read_in_chunks(monkeypatch):
    """``risk_sources`` and ``risk_rows_inside`` read the table a chunk of rows at a time (a copy of the risk
    rows was gigabytes at 30 M incidents): in chunks of 37 rows as in one, and as found directly: the sources
    in the order of their first risk record, and each source's risk rows less those in a partly covered cell
    whose point lies outside its coverage (a cell mostly outside takes no part in the source's test at all;
    a source without a coverage row keeps every row)."""
    import geopandas as gpd

    from hotspots import frames
    area = shapely.box(0, 0, 1000, 1000)
    g = gridmod.build_grid(area, 100.0)
    cov = gpd.GeoDataFrame({"source_id": ["b"]}, geometry=[shapely.box(0, 0, 1000, 460)], crs="EPSG:27700")
    rng = np.random.default_rng(8)
    n = 2_000
    inc = pd.DataFrame({"x": rng.uniform(0, 1000, n), "y": rng.uniform(0, 1000, n),
                        "weight": rng.choice([0.0, 0.5, 1.0], n),
                        "source_id": pd.Categorical(rng.choice(["c", "b", "a"], n), categories=["a", "b", "c", "d"])})
    inc.loc[:40, "weight"] = 0.0                      # the first risk record comes some way in
    inc["cell"] = g.assign(inc["x"].to_numpy(), inc["y"].to_numpy())
    risk = inc["weight"].to_numpy() > 0
    want_order = [str(s) for s in pd.unique(inc.loc[risk, "source_id"].astype(str))]
    shares = covermod.cell_shares(g, area, cov, want_order)
    # The cells 400-500 m high are 60 % covered by b's coverage: its records there above 460 m are left out.
    y = inc["y"].to_numpy()
    direct = {s: np.flatnonzero(risk & (inc["source_id"].astype(str) == s).to_numpy() &
                                (~((y > 460) & (y < 500)) if s == "b" else True)) for s in want_order}
    all_b = int((risk & (inc["source_id"].astype(str) == "b").to_numpy()).sum())
    assert 10 < all_b - len(direct["b"]) < 50
    for chunk in (None, 37):
        if chunk:
            monkeypatch.setattr(frames, "CHUNK_ROWS", chunk)
        assert covermod.risk_sources(inc) == want_order
        parts = list(covermod.risk_rows_inside(inc, want_order, shares, cov))
        assert len(parts) == (1 if chunk is None else -(-n // chunk))
        for j, s in enumerate(want_order):
            assert np.array_equal(np.concatenate([p[j] for p in parts]), direct[s])
