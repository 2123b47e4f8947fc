"""Density clusters + Monte Carlo CSR test (hotspots.detect.clusters), with numbers."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from sklearn.cluster import DBSCAN

# Let the file run from any working directory, not only the repo root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hotspots.detect.clusters import (  # noqa: E402
    CSRSampler,
    collapse_points,
    find_clusters,
    sample_csr,
    weighted_dbscan,
)

# 3 km x 2 km with a 1.5 km x 1 km corner cut out: 4.5 km2, L-shaped, so a
# bounding-box sampler would put a quarter of its points outside.
L_SHAPE = shapely.Polygon([(0, 0), (3000, 0), (3000, 1000), (1500, 1000), (1500, 2000), (0, 2000)])
CENTRE = (700.0, 1400.0)
CLASSES = np.array(["recorded_crime", "health", "community_report"])
WEIGHTS = {"recorded_crime": 1.0, "health": 2.0, "community_report": 0.5}


def _frame(xy: np.ndarray, rng: np.random.Generator, weighted: bool = False) -> pd.DataFrame:
    ev = rng.choice(CLASSES, len(xy))
    w = pd.Series(ev).map(WEIGHTS).to_numpy(dtype=float) if weighted else np.ones(len(xy))
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "weight": w, "evidence": ev})


def _planted(seed: int = 0):
    """200 incidents uniform in a 50 m disc around CENTRE + 800 CSR incidents."""
    rng = np.random.default_rng(seed)
    r = 50.0 * np.sqrt(rng.random(200))
    t = rng.uniform(0, 2 * np.pi, 200)
    planted = np.column_stack([CENTRE[0] + r * np.cos(t), CENTRE[1] + r * np.sin(t)])
    background = sample_csr(L_SHAPE, 800, rng)
    return _frame(np.vstack([planted, background]), rng), planted


@pytest.fixture(scope="module")
def planted_dbscan():
    df, planted = _planted(0)
    # The background here is CSR by construction, so CSR is the right null for this data.
    clusters, params = find_clusters(df, L_SHAPE, method="dbscan", n_sim=99, seed=0, background="csr")
    return df, planted, clusters, params


# 1 --------------------------------------------------------------------------
def test_planted_cluster_found_by_dbscan(planted_dbscan):
    df, planted, clusters, params = planted_dbscan
    assert len(clusters) == 1, clusters.drop(columns="geometry")
    row = clusters.iloc[0]
    assert row["cluster_id"] == "D1" and row["method"] == "dbscan"
    # Border points: background incidents within eps of the cluster's core
    # also join it. Expected ~ 800/4.5 km2 * pi * (50 + 76 m)^2 ~ 9, so allow 15.
    assert 200 <= row["n"] <= 215
    assert row["weighted"] == pytest.approx(row["n"])  # unit weights here
    poly = row["geometry"]
    assert poly.geom_type == "Polygon"
    assert poly.contains(shapely.Point(CENTRE))
    assert shapely.contains_xy(poly, planted[:, 0], planted[:, 1]).all()
    # Nothing in 99 CSR simulations came close: p is the smallest possible.
    assert row["p_value"] <= 0.01
    assert row["p_value"] == pytest.approx(1 / 100)
    assert clusters.crs.to_epsg() == 27700

    # Parameters chosen from the data, and recorded with how.
    assert 50 <= params["eps_m"] <= 400
    assert "k-distance" in params["eps_how"]
    assert params["min_weight"] >= 3 and "Poisson" in params["min_weight_how"]
    assert params["n_incidents"] == 1000 and params["n_sim"] == 99
    json.dumps(params)  # the manifest must be serialisable

    # Seeded: the same call gives the same p-values.
    again, _ = find_clusters(df, L_SHAPE, method="dbscan", n_sim=99, seed=0, background="csr")
    assert again["p_value"].tolist() == clusters["p_value"].tolist()


# 2 --------------------------------------------------------------------------
def test_pure_csr_rarely_significant():
    # Stacked, weighted locations, CSR inside the L-shape. With n_sim = 39,
    # p < 0.05 means p = 1/40: the observed maximum beat all 39 simulations,
    # which under H0 happens with probability 1/40 per run (the max-statistic
    # test is family-wise). P(3 or more of 20 runs) = 1.3 %. Measured over
    # 400 runs of this set-up: 9 (2.25 %).
    false_alarms = 0
    n_with_clusters = 0
    for run in range(20):
        rng = np.random.default_rng(1000 + run)
        loc = sample_csr(L_SHAPE, 600, rng)
        xy = np.repeat(loc, rng.poisson(0.7, 600) + 1, axis=0)
        clusters, _ = find_clusters(_frame(xy, rng, weighted=True), L_SHAPE, n_sim=39, seed=run)
        n_with_clusters += len(clusters) > 0
        false_alarms += bool((clusters["p_value"] < 0.05).any())
    assert false_alarms <= 2
    # The test is not vacuous: DBSCAN does find (chance) clusters in CSR data.
    assert n_with_clusters >= 5


# 3 --------------------------------------------------------------------------
def test_collapsed_equals_raw_points():
    rng = np.random.default_rng(7)
    # Three tight groups far apart (no border point can touch two clusters,
    # where raw and collapsed row order could break the tie differently),
    # plus scattered locations; every location repeated 1-6 times.
    groups = [rng.normal(c, 15, (12, 2)) for c in [(300, 300), (1200, 400), (600, 1500)]]
    scatter = sample_csr(L_SHAPE, 30, rng)
    loc = np.round(np.vstack(groups + [scatter]))
    reps = rng.integers(1, 7, len(loc))
    raw = np.repeat(loc, reps, axis=0)
    df = _frame(raw, rng, weighted=True).sample(frac=1.0, random_state=3)  # shuffle rows

    clusters, params = find_clusters(df, L_SHAPE, eps_m=60, min_weight=6, n_sim=0)
    assert params["n_locations"] < len(df)  # it did collapse

    ref = DBSCAN(eps=60, min_samples=6).fit(df[["x", "y"]].to_numpy(),
                                             sample_weight=df["weight"].to_numpy()).labels_
    ref_n = sorted(np.bincount(ref[ref >= 0]).tolist())
    ref_w = sorted(np.round(np.bincount(ref[ref >= 0], weights=df["weight"].to_numpy()[ref >= 0]), 9))
    assert len(ref_n) >= 3
    assert sorted(clusters["n"].tolist()) == ref_n
    assert sorted(np.round(clusters["weighted"].to_numpy(), 9)) == ref_w
    assert clusters["p_value"].isna().all()  # n_sim = 0

    # The vectorised DBSCAN gives scikit-learn's labels exactly, numbering included.
    for seed in range(10):
        r = np.random.default_rng(seed)
        xy = np.round(np.vstack([r.uniform(0, 2000, (400, 2)), r.normal(1000, 80, (200, 2))]))
        w = r.integers(0, 5, len(xy)).astype(float)
        eps, ms = float(r.uniform(20, 120)), int(r.integers(2, 25))
        expect = DBSCAN(eps=eps, min_samples=ms).fit(xy, sample_weight=w).labels_
        assert np.array_equal(weighted_dbscan(xy, w, eps, ms), expect)


# 4 --------------------------------------------------------------------------
def test_evidence_columns_sum_to_n(planted_dbscan):
    df, _, clusters, _ = planted_dbscan
    ev_cols = [c for c in clusters.columns if c.startswith("n_")]
    assert sorted(ev_cols) == sorted(f"n_{c}" for c in CLASSES)
    assert (clusters[ev_cols].sum(axis=1) == clusters["n"]).all()
    # And at the collapse level: per-location evidence counts sum to counts.
    locs = collapse_points(df)
    assert (locs.evidence.sum(axis=1) == locs.count).all()
    assert locs.count.sum() == len(df)
    assert locs.weight.sum() == pytest.approx(df["weight"].sum())


# 5 --------------------------------------------------------------------------
def test_hdbscan_finds_planted_cluster():
    df, planted = _planted(0)
    clusters, params = find_clusters(df, L_SHAPE, method="hdbscan", n_sim=39, seed=0, background="csr")
    assert clusters["cluster_id"].str.match(r"^H\d+$").all()
    hit = clusters[clusters.contains(shapely.Point(CENTRE))]
    assert len(hit) == 1
    row = hit.iloc[0]
    poly = row["geometry"]
    assert shapely.contains_xy(poly, planted[:, 0], planted[:, 1]).sum() >= 195
    # HDBSCAN's excess-of-mass selection also takes in some surrounding
    # background (distinct locations, unweighted): n = 216 here.
    assert 200 <= row["n"] <= 300
    assert row["p_value"] <= 0.05
    # Every other HDBSCAN cluster is chance structure in the CSR background.
    assert (clusters.loc[clusters.index != hit.index[0], "p_value"] > 0.05).all()
    assert params["min_weight"] is None and "no sample weights" in params["weights_in_clustering"]
    ev_cols = [c for c in clusters.columns if c.startswith("n_")]
    assert (clusters[ev_cols].sum(axis=1) == clusters["n"]).all()


# 6 --------------------------------------------------------------------------
def test_csr_sampler_stays_inside_study_area():
    rng = np.random.default_rng(0)
    holed = L_SHAPE.difference(shapely.Point(700, 500).buffer(300))
    islands = shapely.MultiPolygon([holed, shapely.box(4000, 0, 4500, 500)])
    for area in (L_SHAPE, holed, islands):
        xy = sample_csr(area, 50_000, rng)
        assert xy.shape == (50_000, 2)
        assert shapely.contains_xy(area, xy[:, 0], xy[:, 1]).all()
    # Uniform: the share in each part follows its area (island: 0.25/4.217 km2).
    share = np.mean(xy[:, 0] >= 4000)
    assert share == pytest.approx(0.25e6 / islands.area, abs=0.005)
    # None in the cut-out corner nor in the hole (contains_xy above), and the
    # upper arm (0.15 of the bounding box, 1.5/4.217 of the area) gets its share.
    assert np.mean((xy[:, 1] > 1000) & (xy[:, 0] < 1500)) == pytest.approx(
        1.5e6 / islands.area, abs=0.01)
    # The rejection fallback (used only if triangulation fails) stays inside too.
    sampler = CSRSampler(holed)
    sampler.tri = None
    xy = sampler.sample(10_000, rng)
    assert len(xy) == 10_000 and shapely.contains_xy(holed, xy[:, 0], xy[:, 1]).all()


def test_no_points_or_no_clusters_gives_empty_frame():
    empty = pd.DataFrame({"x": [], "y": [], "weight": [], "evidence": []})
    clusters, params = find_clusters(empty, L_SHAPE, n_sim=9)
    assert len(clusters) == 0 and clusters.crs.to_epsg() == 27700
    assert {"cluster_id", "method", "n", "weighted", "p_value", "geometry"} <= set(clusters.columns)
    assert params["n_clusters"] == 0


def test_stacks_at_random_real_snap_points_are_not_clusters_under_random_labelling(example_result):
    # police.uk snap points follow the streets: stacks placed at random among them carry no
    # extra clustering, yet CSR rejects on the street geometry alone. Random labelling (the
    # stacks relabelled onto the snap-point layer) does not.
    inc = example_result.incidents
    snap = inc.loc[inc["location_precision"] == "snap_point", ["x", "y"]].drop_duplicates().to_numpy(float)
    area = example_result.study_area
    flagged = {"random_labelling": 0, "csr": 0}
    runs = 10
    for run in range(runs):
        rng = np.random.default_rng(500 + run)
        loc = snap[rng.choice(len(snap), 800, replace=False)]
        xy = np.repeat(loc, rng.poisson(1.5, 800) + 1, axis=0)
        df = _frame(xy, rng)
        for bg in flagged:
            clusters, _ = find_clusters(df, area, n_sim=39, seed=run, background=bg, background_xy=snap)
            flagged[bg] += bool((clusters["p_value"] < 0.05).any())
    assert flagged["random_labelling"] <= 1, flagged
    assert flagged["csr"] >= 8, flagged


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_dbscan_of_drawn_places_on_the_background_graph_equals_dbscan_from_scratch(seed):
    """PlaceGraph.dbscan (the simulations: places drawn from the background) against
    weighted_dbscan on the drawn points alone, label for label: the numbering by lowest-index core
    point and the border tie rule too (weights of 0.5, 1 and 2 make points sit within eps of
    several clusters at the threshold)."""
    from hotspots.detect.clusters import PlaceGraph, weighted_dbscan
    rng = np.random.default_rng(seed)
    pool = sample_csr(L_SHAPE, 3000, rng)
    graph = PlaceGraph(pool, 80.0)
    for size, threshold in ((1200, 4.0), (2900, 11.5), (300, 50.0)):
        pick = rng.choice(len(pool), size, replace=False)
        w = rng.choice([0.5, 1.0, 2.0], size)
        fresh = weighted_dbscan(pool[pick], w, 80.0, threshold)
        assert np.array_equal(graph.dbscan(pick, w, threshold), fresh)
        if threshold < 50:
            assert fresh.max() >= 1          # several clusters, so that the numbering is tested
        else:
            assert (fresh == -1).all()       # no core point at all


def test_evidence_of_a_categorical_column_is_coded_as_its_text_would_be():
    from hotspots.detect.clusters import _evidence_codes
    text = ["recorded_crime", None, "unknown", "partner_record", "recorded_crime", None, "community_report"]
    # Unused categories, a missing value and a category spelled "unknown" among them.
    cat = pd.Series(pd.Categorical(text, categories=["zzz_unused", "recorded_crime", "unknown", "partner_record",
                                                     "community_report", "aaa_unused"]))
    as_text = pd.Series(text, dtype=object)
    codes, classes = _evidence_codes(cat)
    want_codes, want_classes = _evidence_codes(as_text)
    assert classes == want_classes == ["community_report", "partner_record", "recorded_crime", "unknown"]
    assert codes.tolist() == list(want_codes) == [2, 3, 3, 1, 2, 3, 0]


def test_collapse_points_in_chunks_equals_a_groupby_of_every_row(monkeypatch):
    """``collapse_points`` reads a chunk of rows at a time (memory at 30 M incidents): the same locations,
    sorted by x then y, counts, evidence counts and (to round-off) weights as a groupby of all rows;
    -0.0 and 0.0 are one place; a class that only a later chunk has gets its column."""
    from hotspots.detect import inference
    rng = np.random.default_rng(21)
    n = 30_000
    df = pd.DataFrame({"x": np.round(rng.uniform(-500, 500, n), -2), "y": np.round(rng.uniform(0, 300, n), -2),
                       "weight": rng.choice([1.0, 0.6, 0.35], n),
                       "evidence": rng.choice(["recorded_crime", "health", None], n, p=[0.6, 0.3, 0.1])})
    df.loc[n - 5:, "evidence"] = "community_report"        # only in the last chunk
    df.loc[0, "x"], df.loc[1, "x"] = -0.0, 0.0
    ev = df["evidence"].fillna("unknown")
    key = [df["x"] + 0.0, df["y"]]
    g = df.groupby(key, sort=True)
    expected_xy = np.array(list(g.groups.keys()))
    counts = pd.crosstab(key, ev).sort_index()
    for chunk in (10 ** 9, 4_000):
        monkeypatch.setattr(inference, "PLACE_CHUNK", chunk)
        locs = collapse_points(df)
        assert np.array_equal(locs.xy, expected_xy)
        assert np.array_equal(locs.count, g.size().to_numpy())
        np.testing.assert_allclose(locs.weight, g["weight"].sum().to_numpy(), rtol=1e-12)
        assert locs.classes == sorted(counts.columns)
        assert np.array_equal(locs.evidence, counts[locs.classes].to_numpy())
        # Only the rows kept, snapped to a lattice: as collapsing those rows, snapped beforehand.
        keep = (df["weight"] > 0.5).to_numpy()
        snapped = df[keep].assign(x=(np.floor(df["x"][keep] / 25.0) + 0.5) * 25.0,
                                  y=(np.floor(df["y"][keep] / 25.0) + 0.5) * 25.0)
        ref, got = collapse_points(snapped.reset_index(drop=True)), collapse_points(df, keep=keep, snap=25.0)
        assert np.array_equal(got.xy, ref.xy) and np.array_equal(got.count, ref.count)
        assert np.array_equal(got.evidence, ref.evidence) and got.classes == ref.classes
        np.testing.assert_allclose(got.weight, ref.weight, rtol=1e-12)


def test_the_observed_clusters_on_the_background_graph_are_those_found_from_scratch(monkeypatch):
    """When every observed location is a background place, the observed DBSCAN runs on the
    background's graph (``_rows_in``): the same clusters, p-values and outlines as from scratch."""
    import hotspots.detect.clusters as cl
    rng = np.random.default_rng(11)
    pool = sample_csr(L_SHAPE, 3000, rng)
    # Stacks on 600 of the places, heavier at two centres: clusters to find, many places repeated.
    near = [np.flatnonzero(np.hypot(pool[:, 0] - cx, pool[:, 1] - cy) < 250) for cx, cy in (CENTRE, (2500, 500))]
    at = np.concatenate([rng.choice(len(pool), 600), rng.choice(near[0], 400), rng.choice(near[1], 300)])
    points = _frame(pool[at], rng, weighted=True)
    used = []
    real = cl._rows_in
    monkeypatch.setattr(cl, "_rows_in", lambda places, xy: used.append(1) or real(places, xy))
    graph_way, _ = find_clusters(points, L_SHAPE, eps_m=80, n_sim=19, seed=3, background_xy=pool)
    assert used and real(np.unique(pool, axis=0), np.unique(pool[at], axis=0)) is not None
    monkeypatch.setattr(cl, "_rows_in", lambda places, xy: None)        # from scratch
    scratch, _ = find_clusters(points, L_SHAPE, eps_m=80, n_sim=19, seed=3, background_xy=pool)
    assert len(scratch) >= 2
    pd.testing.assert_frame_equal(pd.DataFrame(graph_way), pd.DataFrame(scratch))
    # A location that is not a background place: no positions, so the observed is found from scratch.
    sorted_pool = np.unique(pool, axis=0)
    assert real(sorted_pool, np.vstack([sorted_pool[[5, 2]], [[1.0, 1.0]]])) is None
    assert real(sorted_pool, sorted_pool[[5, 2, 5]]).tolist() == [5, 2, 5]
