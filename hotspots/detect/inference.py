"""One inference engine: the permutation and Monte Carlo machinery every test calls.

As PySAL esda's ``crand.py``: the statistics (``gistar``, ``combine``,
``hotspots.profile``, ``clusters``, the calibration benchmark) ask this module
for their null distributions; none carries its own copy. Randomness only
through an explicit seed.

``conditional_p`` is esda's conditional permutation for a local sum (Gi* with
the cell itself included): the focal cell keeps its value, and its k
neighbours are replaced by k values drawn *without replacement* from the
other n - 1 cells. It is vectorised as follows. For each neighbourhood size
k, ``draws`` rows of k + 1 distinct cell numbers are drawn once and shared by
every cell with that k (esda shares its permutation table likewise). For the
focal cell i, the row's first k cells are its neighbours' stand-ins, except
where i itself is among them: then the (k + 1)-th replaces it. This gives
each focal cell a uniformly random k-subset of the other n - 1 cells, and only
the few rows holding i need correcting (about draws x k / n of them), so the
cost is one sort per k plus O(n log draws + draws x k), not draws x n.

The two-sided p is esda's folded pseudo p-value doubled:
2 (min(#{sim >= obs}, #{sim <= obs}) + 1) / (draws + 1), at most 1; ties count
as extreme, so the test is conservative on discrete counts. The hotspot tests
(``combine``) take instead the tail in the direction of the cell's Gi* z,
doubled (``conditional_p(direction=)``): the permutation's tail speaks of the
neighbours, z of the cell with them, and a label must not rest on the other tail. Where no draw is as
extreme as the observed sum, the p is extrapolated past 2 / (draws + 1) by a
generalised Pareto fit to the largest draws (``gpd_tail_p``), down to 2e-9:
otherwise a source's strongest evidence would be capped at p = 2e-5 (z 4.3)
whatever its volume, and could not outweigh sources that see nothing there.
"""
from __future__ import annotations

import contextlib

import numpy as np
import scipy.sparse as sp

from hotspots.distributions import genpareto_fit, genpareto_sf

DEFAULT_DRAWS = 99_999


def distinct_rows(rng: np.random.Generator, n: int, draws: int, m: int) -> np.ndarray:
    """``draws`` rows of ``m`` distinct integers in [0, n), each row a uniform random ordered sample."""
    if m > n:
        raise ValueError(f"cannot draw {m} distinct values from {n}")
    if m * m > n:
        # Neighbourhoods large against the cells: the m smallest of n random keys per row, in key order
        # (the first m of a random permutation), in chunks of rows. The m smallest found by a partition,
        # then only they sorted: the same rows as sorting every key (n = 1,000, m = 49: 4.3 s -> 1.8 s).
        step = max(1, 2_000_000 // n)
        return np.concatenate([_first_of_permutation(rng.random((min(step, draws - a), n)), m)
                               for a in range(0, draws, step)])
    ids = rng.integers(0, n, size=(draws, m))
    todo = np.arange(draws)
    while len(todo):
        s = np.sort(ids[todo], axis=1)
        todo = todo[(s[:, 1:] == s[:, :-1]).any(axis=1)]
        ids[todo] = rng.integers(0, n, size=(len(todo), m))
    return ids


_tables: dict | None = None       # the tables kept while ``reusing_tables`` is in force


@contextlib.contextmanager
def reusing_tables():
    """Within the block, each permutation table drawn is kept and reused by the tests that ask for the
    same one (seed, cells, draws, size): the public tier tests the same cells twice, with and without the
    records near sensitive sites, and drawing the table is half of each test. Dropped on leaving."""
    global _tables
    outer = _tables
    _tables = {} if outer is None else outer
    try:
        yield
    finally:
        _tables = outer


def permutation_table(seed: int, n: int, draws: int, m: int) -> np.ndarray:
    """``distinct_rows(np.random.default_rng(seed), n, draws, m)``: drawn, or within ``reusing_tables``
    the one drawn before for the same arguments."""
    key = (int(seed), int(n), int(draws), int(m))
    if _tables is not None and key in _tables:
        return _tables[key]
    table = distinct_rows(np.random.default_rng(seed), n, draws, m)
    if _tables is not None:
        table.flags.writeable = False
        _tables[key] = table
    return table


def _first_of_permutation(keys: np.ndarray, m: int) -> np.ndarray:
    """Per row of ``keys``, the columns of its ``m`` smallest keys, smallest first."""
    part = np.argpartition(keys, m - 1, axis=1)[:, :m] if m < keys.shape[1] else np.argsort(keys, axis=1)
    return np.take_along_axis(part, np.argsort(np.take_along_axis(keys, part, axis=1), axis=1), axis=1)


def conditional_p(values: np.ndarray, w: sp.csr_matrix, draws: int = DEFAULT_DRAWS,
                  seed: int = 0, direction: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided conditional permutation p of each cell's neighbourhood sum, and its side.

    ``w`` is binary with ones on the diagonal (Gi*: the cell is its own
    neighbour). Returns (p, side) with side +1 where the observed sum lies in
    the upper tail of its null, -1 in the lower (0 at its middle). See the
    module docstring.

    With ``direction`` (per cell +1, -1 or 0: the sign of the cell's Gi* z), each p is the
    tail in that direction, doubled, and the side is that direction. The permutation holds
    the focal cell and draws its neighbours, so its tail says whether the *neighbours* are
    high or low, while Gi* z counts the cell itself: a busy cell among empty neighbours has
    z > 0 and neighbours in the lower tail. Without a direction that cell would be "hot" on
    a lower-tail p; with it, its p in the direction of its z is about 1. Never below the
    folded p, so no more false positives (a cell with z = 0 gets p = 1).
    """
    tails: dict = {}
    ge, le = conditional_counts(values, w, draws, seed, tails)
    if direction is None:
        side = np.where(ge < le, 1, np.where(le < ge, -1, 0)).astype(np.int8)
        tail = np.minimum(ge, le)
        beyond = np.isfinite(tails["p"])
    else:
        side = np.sign(np.nan_to_num(np.asarray(direction, float))).astype(np.int8)
        tail = np.where(side > 0, ge, np.where(side < 0, le, draws))
        # The extrapolated tail p is the upper one where no draw reached the sum, the lower one
        # where none fell to it: used only when that is the tail in the cell's direction.
        beyond = np.isfinite(tails["p"]) & (((side > 0) & (ge == 0)) | ((side < 0) & (le == 0)))
    p = np.minimum(1.0, 2.0 * (tail + 1) / (draws + 1))
    p[beyond] = np.minimum(p[beyond], 2.0 * tails["p"][beyond])
    p[ge < 0] = 1.0
    side[ge < 0] = 0
    return p, side


TAIL_EXCEEDANCES = 250
TAIL_FLOOR = 1e-9


def gpd_tail_p(sorted_sims: np.ndarray, observed: np.ndarray, n_exc: int = TAIL_EXCEEDANCES) -> np.ndarray:
    """Upper-tail p of values beyond every draw, extrapolated by a generalised Pareto fit to
    the ``n_exc`` largest draws (Knijnenburg et al. 2009, "Fewer permutations, more accurate
    P-values"): p = n_exc / draws x GPD survival beyond the threshold, at most 1 / (draws + 1)
    and at least ``TAIL_FLOOR`` (1e-9: extrapolation is not trusted further)."""
    draws = len(sorted_sims)
    cap = 1.0 / (draws + 1)
    obs = np.asarray(observed, float)
    if draws < 4 * n_exc:
        return np.full(obs.shape, cap)
    u = sorted_sims[draws - n_exc - 1]
    exc = sorted_sims[draws - n_exc:] - u
    if np.ptp(exc) <= 0:
        return np.full(obs.shape, cap)
    c, scale = genpareto_fit(exc)
    p = n_exc / draws * genpareto_sf(obs - u, c, scale)
    return np.clip(np.nan_to_num(p, nan=cap), TAIL_FLOOR, cap)


def esda_p_sim(ge: np.ndarray, draws: int) -> np.ndarray:
    """esda's ``p_sim`` ("directed" folding) from the counts: #{sim >= obs} or, in the lower
    tail, #{sim < obs} (esda does not count ties there; we do, in ``conditional_p``)."""
    larger = np.where(draws - ge < ge, draws - ge, ge)
    return (larger + 1.0) / (draws + 1.0)


def conditional_counts(values: np.ndarray, w: sp.csr_matrix, draws: int = DEFAULT_DRAWS,
                       seed: int = 0, tails: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per cell, how many of ``draws`` conditional permutations give a neighbourhood sum
    >= and <= the observed one (-1 for cells with no neighbour to permute).

    With a dict ``tails``, its key "p" receives per cell the one-sided p extrapolated past the
    draws where no draw was as extreme (``gpd_tail_p``), NaN elsewhere."""
    x = np.asarray(values, dtype=float)
    n = x.size
    w = sp.csr_matrix(w)
    lag = w @ x
    k_of = np.rint(np.asarray(w.sum(axis=1)).ravel()).astype(np.int64) - 1   # neighbours, self excluded
    obs = lag - x                                                              # the neighbours' observed sum
    ge_all = np.full(n, -1, dtype=np.int64)
    le_all = np.full(n, -1, dtype=np.int64)
    tail_all = np.full(n, np.nan)
    if tails is not None:
        tails["p"] = tail_all
    tol = 1e-9 * max(1.0, float(np.abs(x).max(initial=0.0)))
    ks = [k for k in np.unique(k_of) if 0 < k < n]
    if not ks:
        return ge_all, le_all
    # One table for every k: the first k + 1 of a uniform ordered sample are one themselves.
    ids = permutation_table(seed, n, draws, max(ks) + 1)
    vals = x[ids]
    csum = np.cumsum(vals, axis=1)
    # Draws whose first k (the cell's own k) hold the focal cell: it is replaced by the spare, the
    # (k + 1)-th. Found for every cell in one pass over the table (each entry hits the cell it names
    # when its column is below that cell's k), not a pass over the first k columns for each k: the
    # same counts, a quarter of the gathers (a partnership's run holds some 20 of these tests).
    width = ids.shape[1]
    flat = ids.ravel()
    kk = k_of[flat]
    hit = np.flatnonzero(np.arange(flat.size) % width < kk)
    cell, row, k_hit = flat[hit], hit // width, kk[hit]
    old = csum[row, k_hit - 1]
    new = old + vals[row, k_hit] - x[cell]
    tt = obs[cell]
    ge_adj = np.bincount(cell, weights=(new >= tt - tol).astype(float) - (old >= tt - tol), minlength=n)
    le_adj = np.bincount(cell, weights=(new <= tt + tol).astype(float) - (old <= tt + tol), minlength=n)
    for k in ks:
        sel = np.nonzero(k_of == k)[0]
        srt = np.sort(csum[:, k - 1])
        t = obs[sel]
        ge = draws - np.searchsorted(srt, t - tol, side="left") + ge_adj[sel].astype(np.int64)
        le = np.searchsorted(srt, t + tol, side="right") + le_adj[sel].astype(np.int64)
        ge_all[sel], le_all[sel] = ge, le
        if tails is not None:
            up, lo = ge == 0, le == 0
            if up.any():
                tail_all[sel[up]] = gpd_tail_p(srt, t[up])
            if lo.any():
                tail_all[sel[lo]] = gpd_tail_p(-srt[::-1], -t[lo])
    return ge_all, le_all



def null_counts(expected: np.ndarray, rng: np.random.Generator, shape: float | None = 1.0) -> np.ndarray:
    """Counts per cell under a null of no hotspot, for the calibration simulations.

    ``expected`` is each cell's mean (a source's volume spread over its covered
    area, times the cell's covered share). With ``shape`` the counts are
    overdispersed as crime counts are: Poisson(expected x G) with G ~ Gamma(shape,
    1 / shape) drawn independently per cell (negative binomial, variance
    mu + mu^2 / shape), so cells stay exchangeable: no spatial pattern.
    """
    mu = np.asarray(expected, float)
    if shape:
        mu = mu * rng.gamma(shape, 1.0 / shape, size=mu.shape)
    return rng.poisson(mu)


POOL = 4_000
RELOCATION_CHUNK = 200      # draws per neighbour query in ``relocation_null``


def collapse(points_xy: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Identical locations merged, their weights summed (police.uk snap points: 1 M incidents sit
    on tens of thousands of places), so that catchment sums are exact and cheap."""
    pts = np.asarray(points_xy, float)
    return merged_places(pts[:, 0], pts[:, 1], np.asarray(weights, float))


def place_codes(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each point's place (identical coordinates) as a code: (code per point, the places' x, y, in order
    of first appearance). Hashing, not sorting. Each coordinate is hashed as its 64 bits (-0.0 made 0.0
    first, as pandas' float hashing equates them): the codes and places of hashing the floats, a zero's
    sign aside, faster (2 M of the 10 M benchmark's points: 0.54 s -> 0.44 s; 2 M points on 8,094 places:
    0.65 s -> 0.28 s)."""
    import pandas as pd
    fx, ux = pd.factorize((np.asarray(x, float) + 0.0).view(np.int64))
    fy, uy = pd.factorize((np.asarray(y, float) + 0.0).view(np.int64))
    code, keys = pd.factorize(fx.astype(np.int64) * len(uy) + fy)
    return code, ux.view(float)[keys // len(uy)], uy.view(float)[keys % len(uy)]


PLACE_CHUNK = 1 << 21     # rows ``merged_places`` reads at a time


def merged_places(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None,
                  keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Identical places merged among the rows ``keep`` (every row when None) of ``x``, ``y`` and ``weights``:
    the distinct places, (m, 2) in order of first appearance, and their summed weights (None without
    ``weights``). Read a chunk of rows at a time: neither a copy of the rows nor a code per row is held
    (``place_codes`` makes four arrays of 8 bytes a row: 2.4 GB passing through at 30 M incidents). The
    weights are summed per chunk, then across chunks: the same to round-off; one chunk, the same bits."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    xs, ys, ws = [], [], []
    for k0 in range(0, len(x), PLACE_CHUNK):
        rows = slice(k0, k0 + PLACE_CHUNK)
        cx, cy = x[rows], y[rows]
        cw = None if weights is None else np.asarray(weights[rows], float)
        if keep is not None:
            sel = np.asarray(keep[rows], bool)
            cx, cy, cw = cx[sel], cy[sel], (None if cw is None else cw[sel])
        code, px, py = place_codes(cx, cy)
        xs.append(px)
        ys.append(py)
        if cw is not None:
            ws.append(np.bincount(code, weights=cw, minlength=len(px)))
    if not xs:
        return np.empty((0, 2)), (None if weights is None else np.empty(0))
    code, px, py = place_codes(np.concatenate(xs), np.concatenate(ys))
    summed = None if weights is None else np.bincount(code, weights=np.concatenate(ws), minlength=len(px))
    return np.column_stack([px, py]), summed


def flat_neighbours(near) -> tuple[np.ndarray, np.ndarray]:
    """``cKDTree.query_ball_point``'s lists as one array: (every list one after another, each list's length)."""
    lens = np.fromiter((len(v) for v in near), dtype=np.int64, count=len(near))
    flat = np.concatenate([np.asarray(v, dtype=np.int64) for v in near if v]) if lens.sum() else lens[:0]
    return flat, lens


def ball_neighbours(tree, xy: np.ndarray, radius: float, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``flat_neighbours`` of ``tree.query_ball_point(xy, radius)``, asked ``chunk`` points at a time: the
    tree answers in Python lists (36 bytes a neighbour: 250 MB for 4,000 sites' 6.7 M neighbours at 10 M
    incidents), so only a chunk's lists are held at once beside the arrays. The same arrays."""
    parts = [flat_neighbours(tree.query_ball_point(xy[k:k + chunk], radius)) for k in range(0, len(xy), chunk)]
    if len(parts) < 2:
        return parts[0] if parts else flat_neighbours([])
    flat, lens = zip(*parts)
    return np.concatenate(flat), np.concatenate(lens)


def run_indices(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """The positions ``starts[k] .. starts[k] + lens[k] - 1`` of every run k, one run after another."""
    return np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(int(lens.sum()))


def relocation_null(points_xy: np.ndarray, weights: np.ndarray, sites_xy: np.ndarray, radii, n_sim: int,
                    rng: np.random.Generator, tree=None) -> np.ndarray:
    """Monte Carlo relocation: the weighted incidents within each radius of ``n_sim`` sites drawn at
    random among ``sites_xy`` (comparable places inside the covered area). Returns (n_sim, len(radii)):
    the null distribution of a catchment's weighted count for a place like these. ``tree``: the points
    are already ``collapse``'s places and this their (unbalanced) k-d tree, for several calls on them."""
    from scipy.spatial import cKDTree
    radii = list(radii)
    out = np.zeros((n_sim, len(radii)))
    if not len(points_xy) or not len(sites_xy):
        return out
    if tree is None:
        points_xy, weights = collapse(points_xy, weights)
        # Not balanced: built in 1.0 s instead of 1.6 s for 1.8 M places (10 M incidents); the same places
        # within each radius, sorted, and the queries no slower (9.1-9.4 s -> 7.3-8.7 s for the whole null).
        tree = cKDTree(points_xy, balanced_tree=False)
    sites = sites_xy[rng.integers(0, len(sites_xy), n_sim)]
    # A chunk of draws' neighbours in one array, summed per draw and radius by bincount (not a Python
    # loop over the draws: 1.7 s -> 0.3 s for 1,999 draws at 1 M incidents). Chunks, not every draw at
    # once: the tree answers in Python lists, 0.9 GB for 1,999 draws at 10 M incidents (the key
    # buildings' peak). Each draw's sum is the same either way.
    for k0 in range(0, n_sim, RELOCATION_CHUNK):
        chunk = sites[k0:k0 + RELOCATION_CHUNK]
        # Unsorted (each draw's sum in the tree's order, the same to round-off, far inside upper_p's 1e-9):
        # the queries 20-35 % faster than sorting every list.
        idx, lens = flat_neighbours(tree.query_ball_point(chunk, max(radii), return_sorted=False))
        if not len(idx):
            continue
        draw = np.repeat(np.arange(len(chunk)), lens)
        d = np.hypot(points_xy[idx, 0] - chunk[draw, 0], points_xy[idx, 1] - chunk[draw, 1])
        w = weights[idx]
        for j, r in enumerate(radii):
            k = d <= r
            out[k0:k0 + len(chunk), j] = np.bincount(draw[k], weights=w[k], minlength=len(chunk))
    return out


def place_tree(places: np.ndarray, weights: np.ndarray):
    """Distinct places and their weights (``collapse``'s) in the order of the leaves of their k-d tree,
    that tree, and the leaves (each place's position among those given). Places near one another then
    lie near one another in memory: a draw's gathers among them hit the cache (10 M incidents: a
    building type's 499 draws 3.7 s -> 1.1 s). The tree over them is built unbalanced (1.8 M places:
    1.0 s, not 1.6 s): it answers the same lists of places within a radius (sorted) as a balanced one."""
    from scipy.spatial import cKDTree
    leaves = cKDTree(places).indices
    places, weights = places[leaves], weights[leaves]
    return places, weights, cKDTree(places, balanced_tree=False), leaves


def union_relocation_null(points_xy: np.ndarray, weights: np.ndarray, sites_xy: np.ndarray, m: int,
                          radius: float, n_sim: int, rng: np.random.Generator, tree=None) -> np.ndarray:
    """Monte Carlo relocation of a whole building type: ``m`` sites drawn without replacement among
    ``sites_xy``, the weighted incidents within ``radius`` of any of them; (n_sim,) draws.
    ``tree``: the points are ``place_tree``'s places and this its tree (every type of a table shares them)."""
    out = np.zeros(n_sim)
    if not len(points_xy) or not len(sites_xy):
        return out
    if tree is None:
        points_xy, weights, tree, _ = place_tree(*collapse(points_xy, weights))
    if len(sites_xy) > POOL:
        # The draws only need a pool of places, not every candidate: bounds the neighbour lists.
        sites_xy = sites_xy[rng.choice(len(sites_xy), POOL, replace=False)]
    # Each place's neighbours as one run of ``flat``: a draw gathers its places' runs at once (not a
    # Python list of arrays per draw: 2.5 s -> 0.6 s for five types' 499 draws at 1 M incidents).
    flat, lens = ball_neighbours(tree, sites_xy, radius)
    starts = np.cumsum(lens) - lens
    # Only places near some candidate site can be hit: numbered among those (a mark, not np.unique's
    # sort: 10 M, 7 M neighbours, 1.15 s -> 0.11 s).
    near = np.zeros(len(points_xy), bool)
    near[flat] = True
    flat = (np.cumsum(near) - 1)[flat]
    weights = weights[near]
    m = min(m, len(sites_xy))
    # A draw's places, each once (its last position in ``idx`` marks it), at the cost of the draw's own
    # places, not of a mask over every near place (10 M: 1.5 M near places, 120,000 in a draw). The sum
    # runs in the draw's order: the same to round-off (1e-16 of it), far inside the p-values' 1e-9.
    last = np.zeros(len(weights), np.int64)
    for k in range(n_sim):
        pick = rng.choice(len(sites_xy), m, replace=False)
        idx = flat[run_indices(starts[pick], lens[pick])]
        if len(idx):
            at = np.arange(len(idx))
            last[idx] = at
            out[k] = weights[idx[last[idx] == at]].sum()
    return out


def upper_p(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """One-sided Monte Carlo p of each observed value against a null sample: (#{null >= obs} + 1) / (n + 1);
    past every draw (from 1,000 draws on), the generalised Pareto tail fitted to the largest draws where
    it is smaller (``gpd_tail_p``, at most 1 / (n + 1), as Gi*'s). Within the draws the count stands: the
    fitted tail taken there instead made p <= 1e-3 come 1.3-2.5 times as often as it should under the
    null (a review's simulation), where BH across the buildings decides."""
    srt = np.sort(np.asarray(null, float))
    obs = np.asarray(observed, float)
    ge = len(srt) - np.searchsorted(srt, obs - 1e-9, side="left")
    p = (ge + 1.0) / (len(srt) + 1.0)
    beyond = ge == 0
    if beyond.any():
        p[beyond] = np.minimum(p[beyond], gpd_tail_p(srt, obs[beyond]))
    return p


def two_sided_p(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """Two-sided Monte Carlo p against a null sample (ties extreme): 2 min(upper, lower), at most 1,
    each tail as ``upper_p`` gives it."""
    srt = np.sort(np.asarray(null, float))
    obs = np.asarray(observed, float)
    return np.minimum(1.0, 2.0 * np.minimum(upper_p(obs, srt), upper_p(-obs, -srt)))

