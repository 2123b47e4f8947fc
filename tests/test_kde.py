"""Kernel density on the grid: accuracy against direct summation, mass, hand values,
the default bandwidth rule, and agreement with scikit-learn."""
from __future__ import annotations

import math

import numpy as np
import pytest

from hotspots.detect.kde import choose_bandwidth, kde_exact, kde_grid
from hotspots.detect.inference import merged_places

X0, Y0 = 530_000.0, 180_000.0        # a British National Grid corner in the City fringe
CELL, NX, NY = 50.0, 60, 40          # 3 km x 2 km grid of 50 m cells
CELL_KM2 = (CELL / 1000.0) ** 2


def _centres(x0=X0, y0=Y0, cell=CELL, nx=NX, ny=NY):
    cx = x0 + (np.arange(nx) + 0.5) * cell
    cy = y0 + (np.arange(ny) + 0.5) * cell
    return np.meshgrid(cx, cy)


def _clustered(seed: int = 7, n: int = 300):
    """300 weighted points: five Gaussian clusters, 20 % background, some outside the grid."""
    rng = np.random.default_rng(seed)
    centres = np.array([[600, 500], [1500, 1200], [2400, 700], [2950, 1900], [300, 1700]], float)
    sds = np.array([80, 150, 250, 120, 200], float)
    lab = rng.integers(0, len(centres), n)
    p = centres[lab] + rng.normal(size=(n, 2)) * sds[lab, None]
    m = n // 5
    p[:m] = rng.uniform([-400, -400], [3400, 2400], (m, 2))       # extends past the grid edge
    w = rng.choice([0.5, 1.0, 1.0, 2.0, 3.0], n)
    return X0 + p[:, 0], Y0 + p[:, 1], w


def _max_rel_err(grid, exact, floor=0.01):
    m = exact >= floor * exact.max()
    return float(np.max(np.abs(grid[m] - exact[m]) / exact[m]))


# --------------------------------------------------------------------------- 1. accuracy
@pytest.mark.parametrize("kernel", ["quartic", "gaussian"])
@pytest.mark.parametrize("bandwidth", [60.0, 200.0, 800.0])
@pytest.mark.parametrize("method", ["auto", "fft"])
def test_grid_matches_direct_summation(kernel, bandwidth, method):
    x, y, w = _clustered()
    cx, cy = _centres()
    exact = kde_exact(x, y, w, cx, cy, bandwidth, kernel)
    grid = kde_grid(x, y, w, X0, Y0, CELL, NX, NY, bandwidth, kernel, method=method)
    assert grid.shape == (NY, NX)
    # the brief: within 3 % wherever the exact density is >= 1 % of its maximum
    assert _max_rel_err(grid, exact, 0.01) < 0.03
    # the documented guarantee is tighter: 1 % wherever it is >= 0.5 % of the maximum
    assert _max_rel_err(grid, exact, 0.005) < 0.01


@pytest.mark.parametrize("kernel,bandwidth", [("quartic", 50.0), ("quartic", 1000.0),
                                              ("gaussian", 50.0), ("gaussian", 500.0)])
def test_fft_path_on_denser_data_one_to_twenty_cells(kernel, bandwidth):
    """5,000 points, bandwidth from 1 cell to 20 cells (quartic) / 10 cells (Gaussian sigma)."""
    rng = np.random.default_rng(11)
    n = 5000
    c = rng.uniform([0, 0], [3000, 2000], (12, 2))
    p = c[rng.integers(0, 12, n)] + rng.normal(size=(n, 2)) * 120
    p[: n // 4] = rng.uniform([-300, -300], [3300, 2300], (n // 4, 2))
    x, y, w = X0 + p[:, 0], Y0 + p[:, 1], rng.choice([0.5, 1.0, 2.0], n)
    cx, cy = _centres()
    exact = kde_exact(x, y, w, cx, cy, bandwidth, kernel)
    grid = kde_grid(x, y, w, X0, Y0, CELL, NX, NY, bandwidth, kernel, method="fft")
    assert _max_rel_err(grid, exact, 0.01) < 0.03
    assert _max_rel_err(grid, exact, 0.005) < 0.01


@pytest.mark.parametrize("kernel,bandwidth,seed", [("quartic", 300.0, 1), ("quartic", 150.0, 2),
                                                   ("gaussian", 100.0, 1)])
def test_error_bound_repair_fixes_sparse_tails(kernel, bandwidth, seed):
    """40 scattered points: single-point kernel tails decide the 1 % contour.

    The raw FFT estimate misses the 3 % target there (a fixed lattice cannot
    resolve the edge of each isolated kernel); the cells its error bound flags
    are recomputed exactly, which brings every cell within 1 %.
    """
    rng = np.random.default_rng(seed)
    n = 40
    x, y = X0 + rng.uniform(0, 3000, n), Y0 + rng.uniform(0, 2000, n)
    w = rng.choice([0.5, 1.0, 3.0], n)
    cx, cy = _centres()
    exact = kde_exact(x, y, w, cx, cy, bandwidth, kernel)
    raw = kde_grid(x, y, w, X0, Y0, CELL, NX, NY, bandwidth, kernel, method="fft", repair=False)
    fixed = kde_grid(x, y, w, X0, Y0, CELL, NX, NY, bandwidth, kernel, method="fft")
    assert _max_rel_err(raw, exact) > 0.03
    assert _max_rel_err(fixed, exact) < 0.01


@pytest.mark.parametrize("method", ["fft", "direct"])
def test_points_stacked_on_snap_points_give_the_surface_of_every_point(method):
    """20,000 incidents on 300 snap points (as police.uk publishes them), weights of every kind: the
    surface is the exact sum over all 20,000 (the stacked points are merged into one each, carrying
    their summed weight, which only the order of the sums can change), and equal, to round-off, to
    the surface of the same incidents nudged a millionth of a metre apart (too many places to merge)."""
    rng = np.random.default_rng(5)
    places = rng.uniform([-200, -200], [3200, 2200], (300, 2))
    which = rng.integers(0, 300, 20_000)
    x, y = X0 + places[which, 0], Y0 + places[which, 1]
    w = rng.choice([0.25, 1.0, 1.0, 2.0], 20_000)
    cx, cy = _centres()
    grid = kde_grid(x, y, w, X0, Y0, CELL, NX, NY, 150.0, method=method)
    exact = kde_exact(x, y, w, cx, cy, 150.0)
    assert _max_rel_err(grid, exact, 0.005) < 0.01
    nudged = kde_grid(x + rng.uniform(-1e-6, 1e-6, x.size), y, w, X0, Y0, CELL, NX, NY, 150.0, method=method)
    assert np.max(np.abs(grid - nudged)) < (1e-5 if method == "fft" else 1e-9) * grid.max()

    # The places merged beforehand (as the pipeline does) and said to be distinct: the same surface,
    # bit for bit, as merging them inside.
    places_xy, summed = merged_places(x, y, w)
    given = kde_grid(places_xy[:, 0], places_xy[:, 1], summed, X0, Y0, CELL, NX, NY, 150.0, method=method,
                     distinct=True)
    assert np.array_equal(given, grid)

def test_points_outside_the_grid_contribute():
    # one point 100 m left of the grid's west edge, level with row 10's centre
    x, y = np.array([X0 - 100.0]), np.array([Y0 + 10.5 * CELL])
    for method in ("auto", "fft"):
        g = kde_grid(x, y, [1.0], X0, Y0, CELL, NX, NY, 200.0, "quartic", method=method)
        d = 125.0                                   # to the centre of column 0, row 10
        expect = 3 / (math.pi * 200.0 ** 2) * (1 - d * d / 200.0 ** 2) ** 2 * 1e6
        assert g[10, 0] == pytest.approx(expect, rel=0.01)
        assert g[:, 3:].max() == 0.0                # column 3's centre is 275 m > 200 m away


# --------------------------------------------------------------------------- 2. mass
@pytest.mark.parametrize("kernel,bandwidth", [("quartic", 200.0), ("gaussian", 100.0)])
@pytest.mark.parametrize("method", ["auto", "fft"])
def test_mass_is_conserved(kernel, bandwidth, method):
    rng = np.random.default_rng(3)
    n = 2000
    # well inside: at least 4 sigma / 1 radius + a cell from every edge
    x = X0 + rng.uniform(900, 2100, n)
    y = Y0 + rng.uniform(600, 1400, n)
    w = rng.choice([0.5, 1.0, 2.0], n)
    g = kde_grid(x, y, w, X0, Y0, CELL, NX, NY, bandwidth, kernel, method=method)
    assert g.sum() * CELL_KM2 == pytest.approx(w.sum(), rel=0.01)


# --------------------------------------------------------------------------- 3. by hand
@pytest.mark.parametrize("bandwidth", [60.0, 200.0, 500.0])
@pytest.mark.parametrize("method", ["auto", "fft"])
def test_single_point_hand_value(bandwidth, method):
    i, j = 30, 20
    x = np.array([X0 + (i + 0.5) * CELL])
    y = np.array([Y0 + (j + 0.5) * CELL])
    g = kde_grid(x, y, np.array([2.0]), X0, Y0, CELL, NX, NY, bandwidth, "quartic", method=method)
    peak = 2.0 * 3.0 / (math.pi * bandwidth ** 2) * 1e6       # per m^2 -> per km^2
    assert g[j, i] == pytest.approx(peak, rel=0.03)
    # e.g. h = 200 m: 2 * 3 / (pi * 40,000 m^2) = 4.775e-5 /m^2 = 47.75 per km^2
    if bandwidth == 200.0:
        assert g[j, i] == pytest.approx(47.7465, rel=0.03)
    cx, cy = _centres()
    d = np.hypot(cx - x[0], cy - y[0])
    assert np.all(g[d >= bandwidth] == 0.0)
    assert np.all(g[d < bandwidth] > 0.0)
    # and a ring value: the centre one cell east, d = 50 m
    ring = peak * (1 - (CELL / bandwidth) ** 2) ** 2 if CELL < bandwidth else 0.0
    assert g[j, i + 1] == pytest.approx(ring, rel=0.03)


# --------------------------------------------------------------------------- 4. bandwidth
def test_choose_bandwidth_formula_by_hand():
    rng = np.random.default_rng(42)
    n = 1001                                       # odd, so the median is one value
    x = 531_000 + rng.normal(0, 400, n)
    y = 181_000 + rng.normal(0, 400, n)
    mx, my = x.mean(), y.mean()
    d = np.hypot(x - mx, y - my)
    sd = math.sqrt(np.mean(d ** 2))                # standard distance
    dm = float(np.median(d))                       # median distance to the mean centre
    expect = 0.9 * min(sd, math.sqrt(1 / math.log(2)) * dm) * n ** -0.2
    bw, how = choose_bandwidth(x, y)
    assert bw == pytest.approx(expect, rel=1e-12)
    # for a circular Gaussian both spreads estimate sigma * sqrt(2) = 566 m,
    # so the bandwidth is about 0.9 * 566 * 1001^-0.2 = 128 m
    assert 115 < bw < 140
    assert "0.9 x min(SD, sqrt(1/ln2) x Dm) x n^-0.2" in how
    assert "WARNING" not in how
    bw50, how50 = choose_bandwidth(x, y, cell=50)
    assert bw50 == bw and "WARNING" not in how50
    bw200, how200 = choose_bandwidth(x, y, cell=200)
    assert bw200 == bw and "WARNING" in how200 and "smaller than the 200 m cell" in how200


def test_choose_bandwidth_weights_are_replication():
    """Integer weights give the same answer as repeating the points (n = sum of weights)."""
    rng = np.random.default_rng(5)
    x = rng.normal(0, 300, 200) + 530_000
    y = rng.normal(0, 200, 200) + 180_000
    w = rng.integers(1, 4, 200).astype(float)
    if int(w.sum()) % 2 == 0:                      # odd total: a unique median
        w[0] += 1
    bw_w, _ = choose_bandwidth(x, y, w)
    bw_r, _ = choose_bandwidth(np.repeat(x, w.astype(int)), np.repeat(y, w.astype(int)))
    assert bw_w == pytest.approx(bw_r, rel=1e-12)


def test_choose_bandwidth_degenerate():
    with pytest.raises(ValueError):
        choose_bandwidth([1.0, 1.0], [2.0, 2.0])
    # over half the weight at one address: median distance 0, falls back on SD
    x = np.r_[np.zeros(60), np.linspace(-500, 500, 40)] + 530_000
    y = np.r_[np.zeros(60), np.zeros(40)] + 180_000
    bw, how = choose_bandwidth(x, y)
    assert bw > 0 and "standard distance alone" in how


# --------------------------------------------------------------------------- 5. sklearn
def test_agrees_with_sklearn_gaussian():
    from sklearn.neighbors import KernelDensity
    x, y, w = _clustered(seed=21)
    sigma = 150.0
    cx, cy = _centres()
    kd = KernelDensity(kernel="gaussian", bandwidth=sigma).fit(np.column_stack([x, y]),
                                                               sample_weight=w)
    # score_samples: log density per m^2, normalised by the total weight
    sk = np.exp(kd.score_samples(np.column_stack([cx.ravel(), cy.ravel()])))
    sk = sk.reshape(cx.shape) * w.sum() * 1e6      # -> weighted incidents per km^2
    for method in ("auto", "fft"):
        g = kde_grid(x, y, w, X0, Y0, CELL, NX, NY, sigma, "gaussian", method=method)
        assert _max_rel_err(g, sk, 0.01) < 0.03
        # only the 4-sigma truncation separates them: 0.03 % renormalisation
        assert _max_rel_err(g, sk, 0.05) < 0.005


# --------------------------------------------------------------------------- misc
def test_input_checks_and_empty():
    assert kde_grid([], [], [], X0, Y0, CELL, 4, 3, 100.0).shape == (3, 4)
    assert not kde_grid([], [], [], X0, Y0, CELL, 4, 3, 100.0).any()
    far = kde_grid([X0 - 5000.0], [Y0], None, X0, Y0, CELL, 4, 3, 100.0, method="fft")
    assert not far.any()
    with pytest.raises(ValueError):
        kde_grid([X0], [Y0], [1.0], X0, Y0, CELL, 4, 3, 100.0, kernel="epanechnikov")
    with pytest.raises(ValueError):
        kde_grid([X0], [Y0], [1.0], X0, Y0, CELL, 4, 3, 0.0)
    with pytest.raises(ValueError):
        kde_grid([X0, np.nan], [Y0, Y0], [1.0, 1.0], X0, Y0, CELL, 4, 3, 100.0)
