"""Statistical honesty of the hotspot engine on synthetic data with known truth."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely

from hotspots import grid as gridmod
from hotspots.detect.clusters import sample_csr
from hotspots.pipeline import hotspot_grid

# An irregular study area: an L-shaped borough with a bite out of it, 4 km across.
AREA = shapely.difference(
    shapely.Polygon([(0, 0), (4000, 0), (4000, 1800), (1800, 1800), (1800, 4000), (0, 4000)]),
    shapely.box(600, 600, 1100, 1100))


def _hot_regions(x, y, cell=150.0, area=AREA, seed=0):
    g = gridmod.build_grid(area, cell)
    inc = pd.DataFrame({"x": x, "y": y, "weight": 1.0, "evidence": "recorded_crime"})
    inc["cell"] = g.assign(x, y)
    inc = inc[inc["cell"] >= 0]
    cells, w = hotspot_grid(inc, g, g.touch_distance, 0.05, "permutation", seed)
    return cells, g


def test_complete_spatial_randomness_gives_no_hot_region_in_95_percent_of_runs():
    runs, with_hot = 40, 0
    for seed in range(runs):
        pts = sample_csr(AREA, 2500, np.random.default_rng(seed))
        cells, _ = _hot_regions(pts[:, 0], pts[:, 1], seed=seed)
        with_hot += bool((cells["gi_class"] >= 2).any())
    assert with_hot / runs <= 0.05, with_hot


def test_a_planted_hotspot_of_known_size_and_strength_is_found():
    rng = np.random.default_rng(11)
    background = sample_csr(AREA, 2500, rng)
    centre = np.array([3000.0, 900.0])
    # 120 extra incidents within 150 m: about six times the background in that disc.
    r = 150 * np.sqrt(rng.uniform(0, 1, 120))
    t = rng.uniform(0, 2 * np.pi, 120)
    planted = centre + np.column_stack([r * np.cos(t), r * np.sin(t)])
    pts = np.vstack([background, planted])
    cells, g = _hot_regions(pts[:, 0], pts[:, 1])
    hot = cells[cells["gi_class"] >= 2]
    assert len(hot) >= 4
    cx, cy = g.centres()
    d = np.hypot(cx[hot.index] - centre[0], cy[hot.index] - centre[1])
    assert d.max() < 450          # every hot cell is at the planted spot


def test_stray_points_cannot_turn_the_city_hot():
    rng = np.random.default_rng(5)
    pts = sample_csr(AREA, 2500, rng)
    keep, _ = gridmod.drop_strays(pts[:, 0], pts[:, 1])
    assert keep.all()
    # A few records mistyped into another county would, in a bounding-box grid, make the
    # whole city a hot spot against empty countryside. They are strays here.
    strays = np.array([[90_000.0, 60_000.0], [150_000.0, 20_000.0], [-80_000.0, 5_000.0]])
    allpts = np.vstack([pts, strays])
    keep, _ = gridmod.drop_strays(allpts[:, 0], allpts[:, 1])
    assert keep[:2500].all() and not keep[2500:].any()
    area, inside = gridmod.derived_area(allpts[keep, 0], allpts[keep, 1], 150.0)
    cells, _ = _hot_regions(allpts[keep, 0][inside], allpts[keep, 1][inside], area=area)
    assert (cells["gi_class"] >= 2).sum() == 0
    # The pitfall itself, shown: the bounding box of the strays as the study area.
    box = shapely.box(*shapely.MultiPoint(allpts).bounds)
    cells_box, _ = _hot_regions(allpts[:, 0], allpts[:, 1], cell=2000.0, area=box)
    assert (cells_box["gi_class"] >= 2).sum() > 0


def test_each_region_s_factual_and_anecdotal_records_are_its_risk_records_of_either_kind(example_result):
    """Statistics audit: sensitivity_regions.csv summed the cells' ``n_<evidence>`` columns, which leave out
    records with a role and count linked duplicates: R3, made hot by missing-episode and youth-offending
    records, read 4 factual records of its 80; R1 531 (494 risk records). Recounted here from the records."""
    from hotspots.detect.combine import ANECDOTAL
    from hotspots.sensitivity import FACTUAL
    r = example_result
    inc = r.incidents[r.incidents["weight"] > 0]
    region_of = dict(zip(r.cells.index, r.cells["region_id"]))
    region = inc["cell"].map(region_of).fillna("")
    ev = inc["evidence"].astype(str)
    got = r.sensitivity_regions.set_index("region_id")
    assert len(got) == 3
    for rid, row in got.iterrows():
        mine = (region == rid).to_numpy()
        assert row["n_factual"] == int((mine & ev.isin(FACTUAL).to_numpy()).sum()), rid
        assert row["n_anecdotal"] == int((mine & ev.isin(ANECDOTAL).to_numpy()).sum()), rid
    assert got.loc["R3", "n_factual"] == 80 and got.loc["R1", "n_factual"] == 494
