"""Key buildings and building types against comparable places (Monte Carlo relocation), calibrated."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hotspots import weight
from hotspots.detect.gistar import bh_qvalues
from hotspots.detect.inference import relocation_null, two_sided_p, union_relocation_null, upper_p
from hotspots.profile import building_types, comparable_places, profile_buildings


def test_relocation_null_and_p_match_a_hand_computation():
    pts = np.array([[0.0, 0.0], [10.0, 0.0], [100.0, 0.0]])
    w = np.array([1.0, 2.0, 4.0])
    sites = np.array([[0.0, 0.0], [100.0, 0.0]])
    null = relocation_null(pts, w, sites, [5.0, 20.0], 400, np.random.default_rng(0))
    # At (0, 0): 1 within 5 m, 3 within 20 m; at (100, 0): 4 and 4.
    assert set(map(tuple, null)) == {(1.0, 3.0), (4.0, 4.0)}
    assert upper_p(np.array([4.0]), np.array([1.0, 1.0, 4.0, 4.0]))[0] == pytest.approx(3 / 5)
    assert two_sided_p(np.array([0.0]), np.array([1.0, 2.0, 3.0]))[0] == pytest.approx(2 * 1 / 4)
    both = union_relocation_null(pts, w, sites, 2, 20.0, 10, np.random.default_rng(0))
    assert (both == 7.0).all()


def test_relocation_null_in_chunks_of_draws_equals_every_draw_at_once(monkeypatch):
    """The draws' neighbours are found a chunk at a time (memory): each draw's sums are the same, bit
    for bit, as when every draw is queried at once, with a last chunk shorter than the others."""
    from hotspots.detect import inference
    rng = np.random.default_rng(4)
    pts = np.round(rng.normal(0, 400, (20_000, 2)), -1)        # shared places, as police.uk snap points
    w = rng.choice([1.0, 0.6, 0.35], len(pts))
    sites = rng.uniform(-800, 800, (700, 2))
    chunked = relocation_null(pts, w, sites, [100.0, 250.0], 1999, np.random.default_rng(6))
    assert inference.RELOCATION_CHUNK < 1999 and 1999 % inference.RELOCATION_CHUNK
    monkeypatch.setattr(inference, "RELOCATION_CHUNK", 10 ** 9)
    whole = relocation_null(pts, w, sites, [100.0, 250.0], 1999, np.random.default_rng(6))
    assert np.array_equal(chunked, whole) and chunked[:, 1].min() > 0


@pytest.mark.parametrize("m", [2, 10, 300])
def test_union_relocation_null_equals_each_draw_summed_by_hand(m):
    """Draws of 2 sites reach a few places (each gathered once, sorted), of 300 most of them (a mask
    over the places): either way a draw's value is the weight of the places within the radius of any
    drawn site, each once, for the same draws (the same generator, replayed here)."""
    rng = np.random.default_rng(3)
    places = rng.uniform(0, 2000, (3000, 2))
    w = rng.choice([0.5, 1.0, 2.0], 3000)
    sites = rng.uniform(0, 2000, (500, 2))
    null = union_relocation_null(places, w, sites, m, 60.0, 30, np.random.default_rng(8))
    replay = np.random.default_rng(8)
    for k in range(30):
        pick = sites[replay.choice(len(sites), m, replace=False)]
        near = (np.hypot(places[:, None, 0] - pick[None, :, 0], places[:, None, 1] - pick[None, :, 1]) <= 60.0)
        assert null[k] == pytest.approx(w[near.any(axis=1)].sum(), rel=1e-12)


@pytest.fixture(scope="module")
def example_places(example_result):
    r = example_result
    risk = weight.risk(r.incidents)
    analysed = r.cells["status"].to_numpy() == "analysed"
    sites = comparable_places(risk, r.buildings[["x", "y"]].to_numpy(float), r.grid, analysed, seed=9)
    cx, cy = r.grid.centres()
    return r, sites, np.column_stack([cx, cy])[analysed]


def _random_buildings(rng, centres, cell, n, btype="random"):
    xy = centres[rng.integers(0, len(centres), n)] + rng.uniform(-cell / 2, cell / 2, (n, 2))
    return pd.DataFrame({"building_id": [f"b{i}" for i in range(n)], "name": "x", "type": btype,
                         "x": xy[:, 0], "y": xy[:, 1], "radius_m": [[100.0, 250.0, 500.0]] * n})


def test_random_points_standing_in_for_buildings_are_significant_at_most_at_the_nominal_rate(example_places):
    r, sites, centres = example_places
    rng = np.random.default_rng(3)
    b = _random_buildings(rng, centres, r.grid.cell, 200)
    table, _ = profile_buildings(b, r.incidents, r.study_area, r.regions, [100.0, 250.0, 500.0],
                                 r.cfg.start, r.cfg.end, null_sites=sites, n_sim=999, seed=1)
    assert table["null"].str.startswith("Monte Carlo relocation").all()
    for lab in ("100", "250", "500"):
        assert (table[f"q_{lab}"] <= 0.05).mean() <= 0.05
        assert (table[f"p_{lab}"] <= 0.05).mean() <= 0.08      # unadjusted: near the nominal rate
    # The flat Poisson rate, for contrast, calls many random points significant.
    flat, _ = profile_buildings(b, r.incidents, r.study_area, r.regions, [250.0], r.cfg.start, r.cfg.end)
    assert (flat["q_250"] <= 0.05).mean() > 0.10


def test_random_building_types_are_significant_at_most_at_the_nominal_rate(example_places):
    r, sites, centres = example_places
    rng = np.random.default_rng(5)
    # 200 types: at most 20 at p <= 0.05 (20 or more by chance at the nominal 5 %: 0.1 %). With 30 types
    # and at most 3, a change of the example's data alone tipped it to 4 (0.13), as 6 % of seeds would.
    frames = [_random_buildings(rng, centres, r.grid.cell, 40, f"t{k}") for k in range(200)]
    b = pd.concat(frames, ignore_index=True)
    risk = weight.risk(r.incidents)
    types = building_types(b, risk, r.study_area, 0.0, null_sites=sites, n_sim=199, seed=2)
    assert types["null"].str.startswith("Monte Carlo relocation").all()
    assert (types["p_value"] <= 0.05).mean() < 0.1
    flat = building_types(b, risk, r.study_area, 0.0)
    assert (flat["p_value"] <= 0.05).mean() > 0.5


def test_merged_places_read_in_chunks_equal_collapse_of_the_rows_kept(monkeypatch):
    """``merged_places`` (and ``collapse``, which is it) reads a chunk of rows at a time (memory at 30 M
    incidents): the same places in the same order (first appearance) as pandas' groupby of the kept
    rows, the same weights to round-off, in one chunk or eight."""
    from hotspots.detect import inference
    rng = np.random.default_rng(12)
    x = np.round(rng.normal(530000, 300, 50_000), -1)
    y = np.round(rng.normal(181000, 300, 50_000), -1)
    w = rng.choice([0.0, 1.0, 0.6, 0.35], len(x))
    keep = w > 0
    ref = pd.DataFrame({"x": x[keep], "y": y[keep], "w": w[keep]}).groupby(["x", "y"], sort=False)["w"].sum()
    ref_places, ref_w = np.array(ref.index.to_list()), ref.to_numpy()
    places, summed = inference.merged_places(x, y, w, keep)
    assert np.array_equal(places, ref_places)
    np.testing.assert_allclose(summed, ref_w, rtol=1e-12)
    assert all(np.array_equal(a, b) for a, b in zip(inference.collapse(np.column_stack([x, y])[keep], w[keep]),
                                                     (places, summed)))
    monkeypatch.setattr(inference, "PLACE_CHUNK", 7_000)       # eight chunks, the last one short
    places, summed = inference.merged_places(x, y, w, keep)
    assert np.array_equal(places, ref_places)
    np.testing.assert_allclose(summed, ref_w, rtol=1e-12)
    alone, none = inference.merged_places(x, y)
    assert none is None and np.array_equal(alone, np.column_stack(inference.place_codes(x, y)[1:]))
    empty, ew = inference.merged_places(x[:0], y[:0], w[:0])
    assert empty.shape == (0, 2) and ew.shape == (0,)


def test_the_snap_point_null_compares_buildings_with_the_records_snap_points_and_the_buildings(example_config):
    """``building_null = "snap_points"`` through the pipeline: the comparable places are the distinct
    places of the risk records located at a police.uk snap point, and every key building, in the cells
    some risk source covers, counted here from the result's own tables."""
    import dataclasses

    from hotspots.pipeline import analyse
    cfg = dataclasses.replace(example_config, analysis={**example_config.analysis, "building_null": "snap_points"})
    r = analyse(cfg)
    risk = weight.risk(r.incidents)
    snap = risk.loc[risk["location_precision"].astype(str) == "snap_point", ["x", "y"]].drop_duplicates()
    from hotspots.load.buildings import load_buildings
    from hotspots.load.ledger import Ledger
    every_building = load_buildings(cfg, Ledger())[0]
    xy = np.vstack([snap.to_numpy(float), every_building[["x", "y"]].to_numpy(float)])
    cell = r.grid.assign(xy[:, 0], xy[:, 1])
    analysed = r.cells["status"].to_numpy() == "analysed"
    n_sites = int(((cell >= 0) & analysed[np.maximum(cell, 0)]).sum())
    assert len(snap) > 1000 and n_sites > 1000
    (text,) = set(r.buildings["null"])
    assert text.startswith(f"Monte Carlo relocation among {n_sites:,} police.uk snap points and key "
                           f"buildings in the covered area, 1,999 draws")
    # Where a building is past all but 9 draws, more at that radius: the text says how many, and
    # the smallest q they allow (buildings / (draws + 1)).
    nb = len(r.buildings)
    for r_m in (100, 250, 500):
        assert f" at {r_m} m" in text.split("smallest q")[1]
    if "5,919 at 100 m" in text:
        assert f"{nb / 5_920:.2g} at 100 m" in text


def test_a_building_far_beyond_every_relocation_draw_can_be_significant_among_many():
    # 1,999 draws and 148 buildings: with p floored at 1 / 2,000, BH's smallest q was 0.074 and no
    # building could be significant (audit finding: Leicester Square, rate ratio 25.7, q 0.074).
    # Past every draw, the p comes from the generalised Pareto tail, as Gi*'s does.
    rng = np.random.default_rng(3)
    null = rng.gamma(2.0, 10.0, 1999)                        # a building's null catchment weights
    srt = np.sort(null)
    observed = np.concatenate([[null.max() * 3.0], rng.gamma(2.0, 10.0, 147)])
    p = upper_p(observed, null)
    assert 1e-9 <= p[0] < 1 / 2000 / 50
    assert bh_qvalues(p)[0] <= 0.01
    # With any draw at or past it, the plain count (#{null >= obs} + 1) / (n + 1): a fitted tail taken
    # within the draws made small p too common under the null (a review's simulation).
    ge = 1999 - np.searchsorted(srt, observed - 1e-9)
    counted = ge >= 1
    assert counted.sum() == 147
    np.testing.assert_allclose(p[counted], (ge[counted] + 1) / 2000)
    assert upper_p(srt[-1:], null)[0] == pytest.approx(2 / 2000)
    assert upper_p(observed[:1], null[:999])[0] == pytest.approx(1 / 1000)
    # A tail of one repeated value has no shape to fit: the count stands.
    flat = np.concatenate([np.zeros(1700), np.full(299, 5.0)])
    assert upper_p(np.array([5.0]), flat)[0] == pytest.approx(300 / 2000)
    assert upper_p(np.array([6.0]), flat)[0] == pytest.approx(1 / 2000)
    # Two-sided: twice the nearer tail, each as upper_p gives it.
    assert two_sided_p(observed[:1], null)[0] == pytest.approx(2 * p[0])
    assert two_sided_p(np.array([-1.0]), null)[0] < 2 / 2000


def test_a_radius_where_a_building_is_past_almost_every_draw_draws_more(example_result):
    # The example's 148 buildings: Leicester Square's weighted count at 100 m is past every one of
    # the first 1,999 draws. That radius draws more (2 / 0.05 per building: 5,919), so BH's smallest
    # q there is 148 / 5,920 = 0.025, not 0.074; 250 m needs no more; the largest radius, the costly
    # one, draws what is left of the first draws' catchment area: 3,841 in all (1,999 + (1,999 x 500^2
    # - 3,920 x 100^2) / 500^2), q 0.039.
    # Its p is then a count among the 5,919, no longer at the floor of 1,999.
    b = example_result.buildings
    text = b["null"].iat[0]
    assert "1,999 draws (5,919 at 100 m, 3,841 at 500 m," in text
    assert "0.025 at 100 m, 0.074 at 250 m, 0.039 at 500 m" in text
    top = b.loc[b["name"] == "Leicester Square"].iloc[0]
    assert top["p_100"] == pytest.approx(3 / 5920)              # 2 of the 5,919 draws reach it
    np.testing.assert_allclose(b["q_100"], bh_qvalues(b["p_100"].to_numpy()))
