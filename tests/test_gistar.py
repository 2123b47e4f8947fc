"""Gi* against PySAL esda, Benjamini-Hochberg against a hand computation, Gi_Bin classes."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from hotspots.detect.gistar import bh_qvalues, gi_class, gi_star, hotspot_gistar, neighbour_matrix, p_two_sided
from tests.esda_reference import esda_gi_z


@pytest.mark.parametrize("distance_cells", [np.sqrt(2), 2.0, 3.0])
def test_gi_z_equals_esda_g_local_star_on_an_irregular_grid(distance_cells):
    rng = np.random.default_rng(7)
    mask = np.ones((30, 40), bool)
    mask[:12, :15] = False           # an L-shaped study area
    rows, cols = np.nonzero(mask)
    values = rng.poisson(2.0, len(rows)).astype(float)
    values[(rows > 20) & (cols > 30)] += 6   # a planted hot corner
    w = neighbour_matrix(cols, rows, 150.0, 150.0 * distance_cells)
    ours = gi_star(values, w)
    ref = esda_gi_z(values, w)
    assert np.max(np.abs(ours - ref)) < 1e-9


def test_neighbour_matrix_queen_ring_has_nine_cells_inside_and_four_in_a_corner():
    rows, cols = np.nonzero(np.ones((5, 5), bool))
    w = neighbour_matrix(cols, rows, 100.0, 100.0 * np.sqrt(2))
    counts = np.asarray(w.sum(axis=1)).ravel().reshape(5, 5)
    assert counts[2, 2] == 9 and counts[0, 0] == 4 and counts[0, 2] == 6
    assert (w.diagonal() == 1).all()


def test_bh_qvalues_match_a_hand_computation():
    p = np.array([0.01, 0.04, 0.03, 0.20, np.nan])
    # sorted 0.01, 0.03, 0.04, 0.20 (m=4): 0.04, 0.06, 0.0533, 0.20 -> monotone: 0.04, 0.0533, 0.0533, 0.20
    q = bh_qvalues(p)
    assert q[0] == pytest.approx(0.04)
    assert q[2] == pytest.approx(0.04 * 4 / 3)
    assert q[1] == pytest.approx(0.04 * 4 / 3)
    assert q[3] == pytest.approx(0.20)
    assert np.isnan(q[4])


def test_gi_class_follows_gi_bin_levels_on_q():
    z = np.array([4.0, 2.5, 1.8, 0.5, -2.5, -4.0])
    q = np.array([0.005, 0.03, 0.08, 0.5, 0.04, 0.001])
    assert gi_class(z, q, 0.05).tolist() == [3, 2, 1, 0, -2, -3]


def test_p_values_are_two_sided_normal():
    assert p_two_sided(np.array([1.959963985]))[0] == pytest.approx(0.05, abs=1e-8)


def _noise_false_alarm_rate(lam: float, inference: str, runs: int = 60) -> float:
    rows, cols = np.nonzero(np.ones((40, 40), bool))
    w = neighbour_matrix(cols, rows, 100.0, 100.0 * np.sqrt(2))
    alarms = 0
    for seed in range(runs):
        values = np.random.default_rng(seed).poisson(lam, len(rows)).astype(float)
        stats = hotspot_gistar(values, w, 0.05, inference=inference, draws=50_000, seed=seed)
        alarms += bool((stats["gi_class"] >= 2).any())
    return alarms / runs


@pytest.mark.parametrize("lam", [0.5, 3.0])
def test_pure_noise_gives_no_fdr_hot_cell_in_at_least_95_percent_of_runs(lam):
    assert _noise_false_alarm_rate(lam, "permutation") <= 0.05


def test_normal_p_values_are_anti_conservative_on_sparse_counts():
    # Why randomisation is the default: the normal curve finds "hotspots" in noise.
    assert _noise_false_alarm_rate(0.5, "normal") > 0.2


def test_planted_hotspot_is_found_and_nothing_far_from_it():
    rows, cols = np.nonzero(np.ones((40, 40), bool))
    w = neighbour_matrix(cols, rows, 100.0, 100.0 * np.sqrt(2))
    values = np.random.default_rng(3).poisson(3.0, len(rows)).astype(float)
    block = (rows >= 10) & (rows < 13) & (cols >= 20) & (cols < 23)
    values[block] += 8
    cls = hotspot_gistar(values, w, 0.05)["gi_class"]
    centre = (rows == 11) & (cols == 21)
    assert cls[centre][0] == 3
    assert (cls[block] >= 2).sum() >= 7
    far = (np.abs(rows - 11) > 2) | (np.abs(cols - 21) > 2)
    assert (cls[far] >= 2).sum() == 0


def test_permutation_p_matches_the_exact_null_on_a_tiny_case():
    # Two cells valued 1, eight valued 0; a neighbourhood of 2 cells sums 2 with
    # probability (2/10)^2 = 0.04 under draws with replacement: two-sided p = 0.08.
    values = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], float)
    w = sp.csr_matrix(np.eye(10) + np.diag(np.ones(9), 1))
    from hotspots.detect.gistar import permutation_p
    p = permutation_p(values, w, draws=400_000, seed=1)
    assert p[0] == pytest.approx(0.08, abs=0.003)


def test_nested_draws_give_each_size_the_same_null():
    """A coverage's edge gives neighbourhoods of 1 to 9 cells. Every size's sums taken from one set of
    draws of the largest (``nested``) read the same p as draws of each size on its own, within Monte Carlo
    error, on overdispersed counts (a negative binomial, many zeros). The tiny case's exact p holds too."""
    from hotspots.detect.gistar import neighbour_matrix, permutation_p
    rng = np.random.default_rng(5)
    rows, cols = np.divmod(np.arange(30 * 30), 30)
    keep = (rows - 15) ** 2 + (cols - 15) ** 2 <= 14 ** 2 - 3 * np.sin(cols)          # a ragged disc of cells
    rr, cc = rows[keep], cols[keep]
    w = neighbour_matrix(cc, rr, 100.0, 100.0 * np.sqrt(2) + 1e-6)
    sizes = np.rint(np.asarray(w.sum(axis=1)).ravel()).astype(int)
    assert len(set(sizes)) >= 4 and sizes.max() == 9
    values = rng.negative_binomial(0.4, 0.2, len(rr)).astype(float)
    one = permutation_p(values, w, draws=400_000, seed=2)
    nested = permutation_p(values, w, draws=400_000, seed=3, nested=True)
    assert np.abs(one - nested).max() < 0.006 and np.abs(one - nested).mean() < 0.002
    assert np.array_equal(nested, permutation_p(values, w, draws=400_000, seed=3, nested=True))
    tiny = sp.csr_matrix(np.eye(10) + np.diag(np.ones(9), 1))
    p = permutation_p(np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], float), tiny, draws=400_000, seed=1, nested=True)
    assert p[0] == pytest.approx(0.08, abs=0.003) and p[-1] == pytest.approx(1.0)


def test_row_sums_are_numpys_bit_for_bit():
    """permutation_p's sums of each draw's cells, column by column, in numpy's own order of additions:
    the same null, bit for bit, for every row length (numpy's pairwise blocks of 8, and beyond 128)."""
    from hotspots.detect.gistar import row_sums
    rng = np.random.default_rng(3)
    for k in range(0, 150):
        a = rng.random((500, k)) * rng.choice([1.0, 0.3, 1e-3, -7.0, 1e12], (500, k))
        assert np.array_equal(row_sums(a), a.sum(axis=1)), k
    a = rng.random((50, 9))
    a[3, 4] = np.nan
    assert np.array_equal(row_sums(a), a.sum(axis=1), equal_nan=True)
