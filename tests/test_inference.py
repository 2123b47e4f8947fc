"""The inference engine against esda's conditional permutation and exact hand computations."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from hotspots.detect.gistar import neighbour_matrix
from hotspots.detect.inference import conditional_counts, conditional_p, distinct_rows, esda_p_sim


def _grid():
    rng = np.random.default_rng(3)
    mask = np.ones((12, 15), bool)
    mask[:4, :5] = False                       # an L-shaped area: edge cells have fewer neighbours
    rows, cols = np.nonzero(mask)
    x = rng.poisson(1.0, len(rows)).astype(float)
    x[(rows > 8) & (cols > 11)] += 3           # a planted hot corner
    return x, neighbour_matrix(cols, rows, 100.0, 100.0 * np.sqrt(2))


def test_conditional_permutation_matches_esda_g_local_star_p_sim():
    esda = pytest.importorskip("esda")
    libpysal = pytest.importorskip("libpysal")
    x, w = _grid()
    n = w.shape[0]
    W = libpysal.weights.WSP(sp.csr_matrix(w - sp.eye(n))).to_W(silence_warnings=True)
    ref = esda.G_Local(x, W, transform="B", star=True, permutations=19_999, seed=1).p_sim
    draws = 99_999
    ge, _ = conditional_counts(x, w, draws=draws, seed=2)
    ours = esda_p_sim(ge, draws)
    # Monte Carlo error of esda's 19,999 draws: sd <= 0.0035 per cell; 165 cells.
    assert np.max(np.abs(ours - ref)) < 0.02
    assert np.corrcoef(ours, ref)[0, 1] > 0.995


def test_conditional_p_equals_the_exact_enumeration_on_a_tiny_case():
    # Six cells on a line, neighbours within one step; every k-subset of the other five
    # cells is equally likely under the conditional null: enumerate them all.
    x = np.array([5.0, 3.0, 0.0, 1.0, 0.0, 2.0])
    n = len(x)
    w = sp.csr_matrix(np.eye(n) + np.eye(n, k=1) + np.eye(n, k=-1))
    draws = 200_000
    ge, le = conditional_counts(x, w, draws=draws, seed=4)
    for i in range(n):
        nb = w[i].indices
        k = len(nb) - 1
        obs = x[nb].sum() - x[i]
        others = np.delete(x, i)
        sums = np.array([others[list(c)].sum() for c in itertools.combinations(range(n - 1), k)])
        assert ge[i] / draws == pytest.approx((sums >= obs - 1e-9).mean(), abs=0.005)
        assert le[i] / draws == pytest.approx((sums <= obs + 1e-9).mean(), abs=0.005)
    # Cell 0 (value 5) with neighbour 3: the neighbour's value is the largest of the other
    # five, so P(sum >= 3) = 1/5, two-sided p = 2 x 0.2 = 0.4.
    p, side = conditional_p(x, w, draws=draws, seed=4)
    assert p[0] == pytest.approx(0.4, abs=0.01) and side[0] == 1


def test_the_focal_cell_is_held_out_unlike_a_bootstrap_of_all_cells():
    # One very heavy cell among zeros: its own neighbours are ordinary, so it is not extreme
    # under the conditional null (its value is not part of the draws for itself), while its
    # neighbours' sums (which include it) are.
    x = np.zeros(100)
    x[55] = 50.0
    rows, cols = np.divmod(np.arange(100), 10)
    w = neighbour_matrix(cols, rows, 1.0, np.sqrt(2))
    p, side = conditional_p(x, w, draws=20_000, seed=0)
    assert p[55] == 1.0
    assert p[54] < 0.2 and side[54] == 1


def test_distinct_rows_are_distinct_and_uniform():
    rng = np.random.default_rng(0)
    ids = distinct_rows(rng, 50, 40_000, 6)
    s = np.sort(ids, axis=1)
    assert (s[:, 1:] != s[:, :-1]).all()
    freq = np.bincount(ids.ravel(), minlength=50) / ids.size
    assert np.abs(freq - 1 / 50).max() < 0.002
    small = distinct_rows(rng, 8, 1000, 8)           # every row a permutation
    assert (np.sort(small, axis=1) == np.arange(8)).all()


def test_pure_noise_gives_uniform_p_values():
    x, w = _grid()
    x = np.random.default_rng(9).poisson(2.0, len(x)).astype(float)
    ps = []
    for seed in range(20):
        xs = np.random.default_rng(100 + seed).permutation(x)
        ps.append(conditional_p(xs, w, draws=2_000, seed=seed)[0])
    ps = np.concatenate(ps)
    # Two-sided, ties counted as extreme: conservative, so P(p <= a) <= a (within noise).
    for a in (0.01, 0.05, 0.2):
        assert (ps <= a).mean() <= a * 1.15 + 0.003
    assert (ps <= 0.2).mean() > 0.1          # and not absurdly conservative


def test_place_codes_equal_hashing_the_floats():
    """Coordinates hashed as their bits give pandas' factorization of the floats: the same codes, places
    in order of first appearance, -0.0 and 0.0 one place."""
    import pandas as pd
    from hotspots.detect.inference import place_codes
    rng = np.random.default_rng(11)
    for n, k in ((0, 1), (1, 1), (5_000, 40), (50_000, 30_000)):
        px, py = rng.uniform(500_000, 560_000, k).round(1), rng.uniform(150_000, 200_000, k).round(1)
        px[: k // 3] = px[0]                       # places sharing an x, or a y, with others
        at = rng.integers(0, k, n)
        x, y = px[at], py[at]
        if n > 2:
            x[1], x[2], y[2] = 0.0, -0.0, y[1]       # one place, its x written with either sign
        code, ux, uy = place_codes(x, y)
        fx, vx = pd.factorize(x)
        fy, vy = pd.factorize(y)
        want, keys = pd.factorize(fx.astype(np.int64) * len(vy) + fy)
        assert np.array_equal(code, want)
        assert np.array_equal(ux, vx[keys // len(vy)]) and np.array_equal(uy, vy[keys % len(vy)])
        assert np.array_equal(np.column_stack([ux, uy])[code], np.column_stack([x + 0.0, y]))
        if n > 2:
            assert code[1] == code[2]


def test_ball_neighbours_asked_in_chunks_are_the_trees_lists_flattened():
    from scipy.spatial import cKDTree

    from hotspots.detect.inference import ball_neighbours
    rng = np.random.default_rng(5)
    pts = rng.uniform(0, 1000, (3000, 2))
    tree = cKDTree(pts, balanced_tree=False)
    sites = np.vstack([rng.uniform(-100, 1100, (50, 2)), [[5000.0, 5000.0]]])      # the last reaches nothing
    whole = tree.query_ball_point(sites, 80.0)
    want_flat = np.concatenate([np.asarray(v, np.int64) for v in whole if v])
    want_lens = np.array([len(v) for v in whole])
    for chunk in (1, 7, 50, 51, 256):
        flat, lens = ball_neighbours(tree, sites, 80.0, chunk=chunk)
        assert flat.dtype == np.int64 and lens.dtype == np.int64
        assert np.array_equal(flat, want_flat) and np.array_equal(lens, want_lens)
    assert lens[-1] == 0 and lens.sum() == len(want_flat) > 1000
    flat, lens = ball_neighbours(tree, np.zeros((0, 2)), 80.0)
    assert len(flat) == len(lens) == 0


def test_conditional_counts_equal_counting_each_cells_draws_one_by_one():
    """The counts read off one pass over the draws' table equal the plain count per cell: each draw's
    first k cells (k the cell's neighbours), the focal cell swapped for the (k + 1)-th, summed and
    compared with the observed sum, on the L-shaped grid whose edge cells have fewer neighbours."""
    x, w = _grid()
    x = x + np.random.default_rng(5).gamma(0.5, 1.0, len(x)) * (np.arange(len(x)) % 3 == 0)
    draws, seed = 3_000, 11
    ge, le = conditional_counts(x, w, draws=draws, seed=seed)
    k_of = np.asarray(w.sum(axis=1)).ravel().astype(int) - 1
    ids = distinct_rows(np.random.default_rng(seed), len(x), draws, k_of.max() + 1)
    tol = 1e-9 * max(1.0, np.abs(x).max())
    for i in range(len(x)):
        k = k_of[i]
        obs = x[w[i].indices].sum() - x[i]
        rows = [r[:k] if i not in r[:k] else np.append(r[:k][r[:k] != i], r[k]) for r in ids]
        sums = np.array([x[r].sum() for r in rows])
        assert ge[i] == (sums >= obs - tol).sum() and le[i] == (sums <= obs + tol).sum(), i


def test_distinct_rows_of_large_neighbourhoods_are_the_first_of_a_random_permutation():
    # m * m > n: each row is the order of the m smallest of n random keys, which sorting every key
    # gives too (the same generator's keys, chunk by chunk).
    n, m, draws = 60, 9, 5_000
    got = distinct_rows(np.random.default_rng(8), n, draws, m)
    rng, step = np.random.default_rng(8), max(1, 2_000_000 // n)
    want = np.concatenate([np.argsort(rng.random((min(step, draws - a), n)), axis=1)[:, :m]
                           for a in range(0, draws, step)])
    assert np.array_equal(got, want)
    assert np.array_equal(distinct_rows(np.random.default_rng(8), 9, 50, 9).shape, (50, 9))


def test_tables_are_reused_only_within_reusing_tables():
    """Inside ``reusing_tables`` a table asked for twice is drawn once (the same array, read-only, equal to
    a fresh draw from the seed); outside, nothing is kept. The p-values are the same either way."""
    from hotspots.detect import inference as inf
    fresh = inf.distinct_rows(np.random.default_rng(5), 400, 1000, 9)
    outside = inf.permutation_table(5, 400, 1000, 9)
    assert inf._tables is None and (outside == fresh).all() and outside is not inf.permutation_table(5, 400, 1000, 9)
    with inf.reusing_tables():
        first = inf.permutation_table(5, 400, 1000, 9)
        assert inf.permutation_table(5, 400, 1000, 9) is first and (first == fresh).all()
        assert not first.flags.writeable
        assert inf.permutation_table(6, 400, 1000, 9) is not first          # another seed, another table
    assert inf._tables is None
    rng = np.random.default_rng(1)
    x = rng.poisson(3, 400).astype(float)
    w = sp.eye(400, format="csr") + sp.diags([1.0, 1.0], [1, -1], shape=(400, 400), format="csr", dtype=float)
    plain = inf.conditional_p(x, w, 999, seed=3)
    with inf.reusing_tables():
        again = [inf.conditional_p(x, w, 999, seed=3) for _ in range(2)]
    for p, side in again:
        assert (p == plain[0]).all() and (side == plain[1]).all()


def test_the_public_tier_draws_each_table_once(example_result, monkeypatch):
    """The public tier tests its cells twice (with and without the partner records near sensitive sites):
    the second test reuses the first's tables."""
    from hotspots.detect import inference as inf
    from hotspots.pipeline import public_view
    asked, drawn = [], []
    table, rows = inf.permutation_table, inf.distinct_rows
    monkeypatch.setattr(inf, "permutation_table", lambda *a: asked.append(a) or table(*a))
    monkeypatch.setattr(inf, "distinct_rows", lambda *a: drawn.append(a) or rows(*a))
    public_view(example_result)
    assert len(asked) > len(set(asked)) and len(drawn) == len(set(asked)) > 0
    assert inf._tables is None


def _busy_cell_among_empty_neighbours():
    # A 15 x 15 grid of Poisson(5) cells; the middle cell holds 75 and its 8 neighbours none:
    # Gi* z (which counts the cell itself) is positive, the neighbours are in the lower tail.
    rng = np.random.default_rng(11)
    rows, cols = np.divmod(np.arange(225), 15)
    x = rng.poisson(5.0, 225).astype(float)
    mid = 7 * 15 + 7
    near = (abs(rows - 7) <= 1) & (abs(cols - 7) <= 1)
    x[near] = 0.0
    x[mid] = 75.0
    return x, neighbour_matrix(cols, rows, 100.0, 100.0 * np.sqrt(2)), mid


def test_a_p_in_the_direction_of_z_never_calls_a_cell_hot_on_its_neighbours_lower_tail():
    from hotspots.detect.gistar import gi_star
    x, w, mid = _busy_cell_among_empty_neighbours()
    z = gi_star(x, w)
    assert 0 < z[mid] < 2.5                                   # the cell's own count makes z positive
    p, side = conditional_p(x, w, draws=20_000, seed=2)
    assert side[mid] == -1 and p[mid] < 0.01                  # folded: the neighbours are very low
    pd_, sd = conditional_p(x, w, draws=20_000, seed=2, direction=np.sign(z))
    assert sd[mid] == 1 and pd_[mid] == 1.0                   # in z's direction: nothing unusual
    # Where the tail and z agree the p is the folded one; it is never smaller anywhere.
    agree = side == np.sign(z)
    assert agree.sum() > 150
    np.testing.assert_array_equal(pd_[agree], p[agree])
    assert (pd_ >= p).all()
    assert (pd_[np.sign(z) == 0] == 1.0).all()


def test_the_direction_keeps_the_extrapolated_tail_only_on_its_own_side():
    x, w, mid = _busy_cell_among_empty_neighbours()
    x = x.copy()
    hub = 2 * 15 + 2
    x[[hub - 16, hub - 15, hub - 14, hub - 1, hub + 1, hub + 14, hub + 15, hub + 16]] = 30.0
    p, side = conditional_p(x, w, draws=2_000, seed=5)
    assert side[hub] == 1 and p[hub] < 2 / 2_001              # past every draw: extrapolated
    up, _ = conditional_p(x, w, draws=2_000, seed=5, direction=np.ones(len(x)))
    down, _ = conditional_p(x, w, draws=2_000, seed=5, direction=-np.ones(len(x)))
    assert up[hub] == p[hub] and down[hub] == 1.0
