"""Emerging hot spot analysis: Gi* per time step plus a Mann-Kendall trend.

This follows the logic of Esri's *Emerging Hot Spot Analysis* (ArcGIS Pro,
Space Time Pattern Mining toolbox):

1. Incidents are binned into a space-time cube: one row per grid cell, one
   column per time step (``space_time_cube``).
2. Every time step is analysed on its own with Getis-Ord Gi* (binary
   neighbours, self included) and Benjamini-Hochberg FDR correction *within
   that time step* (``gi_star_cube`` and ``period_classes``). A cell-period is
   **significantly hot** when its Gi_Bin-style class is >= 2, i.e. z > 0 and
   BH q <= ``fdr_alpha`` (the 95 % level with the default alpha of 0.05);
   **significantly cold** when its class is <= -2. The weaker 90 % class
   (+-1) is deliberately *not* counted, so "hot" here means the same thing as
   a hot cell in the project's static Gi* map.
3. For each cell the series of Gi* z-scores over time is tested with the
   Mann-Kendall trend test (``mann_kendall``), as ArcGIS does: the trend is
   in the *intensity of clustering*, not in the raw counts.
4. Each cell gets one of 17 labels (``emerging_classes``).

Under ``combine = "sources"`` (the pipeline's default) step 2 is done source by source, as the
map's Gi*: each month each source's Gi* on the cells it covers, combined per cell by weighted
Stouffer, then BH per month (``emerging_classes_by_source``); pooling the sources' counts would
make a source's coverage read as a persistent hot spot.

Difference from ArcGIS: ArcGIS's Gi* uses a space-time neighbourhood (the
spatial neighbours in the current and the previous ``k`` time steps). Here
each time step is analysed with spatial neighbours only, which is ArcGIS with
a neighbourhood time step of 0 plus per-step FDR. The class rules are the
same.

The classes, in our words (T = number of time steps, "90 %" means at least
ninety percent of the T steps, computed in integers as ``10 * n >= 9 * T``)
-------------------------------------------------------------------------
new hot spot
    Significantly hot in the final time step and never hot before it.
consecutive hot spot
    A single unbroken run of at least two hot steps that ends in the final
    step, no hot step before that run, and fewer than 90 % of steps hot.
intensifying hot spot
    Hot in at least 90 % of steps including the final one, and the Gi* z
    series has a significant upward Mann-Kendall trend (clustering of high
    counts is getting stronger).
persistent hot spot
    Hot in at least 90 % of steps including the final one, no significant
    trend either way.
diminishing hot spot
    Hot in at least 90 % of steps including the final one, with a
    significant downward trend (clustering is weakening).
sporadic hot spot
    Hot in the final step, on-and-off hot before (so not new or
    consecutive), fewer than 90 % of steps hot, and never significantly cold.
oscillating hot spot
    Hot in the final step, significantly cold in at least one earlier step,
    fewer than 90 % of steps hot.
historical hot spot
    Not hot in the final step, but hot in at least 90 % of all steps.

The eight cold classes are the mirror image (swap hot and cold). For cold
spots "intensifying" means the clustering of *low* counts is getting
stronger, i.e. the Gi* z trend is significantly *negative*; "diminishing"
means a significantly positive z trend.

no pattern detected
    None of the above.

Where Esri's wording leaves an overlap we resolve it as follows (the state
of the final step decides first, because the tool is about what is happening
*now*):

* A cell hot in the final step can only get a hot class; cold in the final
  step only a cold class. Historical classes apply only when the final step
  is significant in neither direction. (Example: hot in 11 of 12 months and
  significantly cold in the last one is an *oscillating cold spot*, not a
  historical hot spot.)
* Persistent requires the final step to be hot; otherwise a >= 90 % hot cell
  whose final step is not hot would be both persistent and historical.
* A cold history takes precedence for the "< 90 %" classes: a cell that was
  significantly cold earlier and is hot now is *oscillating*, even if its
  hot steps would otherwise make it new or consecutive. Esri's sporadic
  definition explicitly excludes any cold step, and oscillating is the class
  defined by a change of sign, so the cold history is what distinguishes it.
* The Mann-Kendall trend is significant when its two-sided p-value is
  <= ``trend_alpha`` (0.05 by default); it is not FDR-corrected across
  cells (ArcGIS does not correct the trend test either).
* With fewer than 10 time steps "90 %" means *every* step, so historical
  classes cannot occur; ``choose_period`` aims for at least 10 steps for
  this reason (ArcGIS needs 10 time steps before it reports a trend).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hotspots.detect.gistar import bh_qvalues, gi_class, permutation_p
from hotspots.distributions import norm_isf, norm_sf

#: Labels in a fixed order (hot, then cold, then none), for legends and tests.
HOT_CLASSES = (
    "new hot spot", "consecutive hot spot", "intensifying hot spot",
    "persistent hot spot", "diminishing hot spot", "sporadic hot spot",
    "oscillating hot spot", "historical hot spot",
)
COLD_CLASSES = tuple(c.replace("hot spot", "cold spot") for c in HOT_CLASSES)
NO_PATTERN = "no pattern detected"
ALL_CLASSES = HOT_CLASSES + COLD_CLASSES + (NO_PATTERN,)


def trending(classes: pd.Series) -> pd.Series:
    """Where ``trend_class`` names a pattern: neither "no pattern detected" nor missing (a cell no source
    of the trends covers has no class)."""
    return classes.notna() & (classes != NO_PATTERN)

#: pandas frequency aliases for the steps ``choose_period`` can return.
PANDAS_FREQ = {"month": "MS", "week": "W-MON", "day": "D"}

#: ArcGIS reports trends only with at least this many time steps.
MIN_TREND_STEPS = 10


# ---------------------------------------------------------------------------
# Cube and time step
# ---------------------------------------------------------------------------

def space_time_cube(cell_index: np.ndarray, period_index: np.ndarray,
                    weights: np.ndarray, n_cells: int, n_periods: int) -> np.ndarray:
    """Weighted incident counts per (cell, period).

    ``cell_index`` (0..n_cells-1) and ``period_index`` (0..n_periods-1) give
    each incident's grid cell and time step; ``weights`` its weight (use ones
    for plain counts). Returns a float array of shape (n_cells, n_periods).
    Indices out of range raise ``ValueError`` rather than being dropped, so
    that incidents are never silently lost.
    """
    cell_index = np.asarray(cell_index, dtype=np.int64).ravel()
    period_index = np.asarray(period_index, dtype=np.int64).ravel()
    weights = np.asarray(weights, dtype=float).ravel()
    if not (cell_index.size == period_index.size == weights.size):
        raise ValueError("cell_index, period_index and weights must have the same length")
    if cell_index.size:
        if cell_index.min() < 0 or cell_index.max() >= n_cells:
            raise ValueError("cell_index out of range 0..n_cells-1")
        if period_index.min() < 0 or period_index.max() >= n_periods:
            raise ValueError("period_index out of range 0..n_periods-1")
    # One flat bincount is a single C pass, far faster than a groupby.
    flat = cell_index * n_periods + period_index
    counts = np.bincount(flat, weights=weights, minlength=n_cells * n_periods)
    return counts.reshape(n_cells, n_periods)


def month_index(when: pd.Series, start: pd.Timestamp) -> np.ndarray:
    """Whole months from ``start``'s month to each timestamp's month (integer arithmetic:
    pandas Period subtraction runs a Python object per row, 100x slower at a million rows). Naive
    timestamps are counted in numpy's calendar months since 1970 (10 M incidents: 0.40 s -> 0.05 s)."""
    values = when.to_numpy() if isinstance(when, pd.Series) else np.asarray(when)
    if values.dtype.kind == "M":
        return values.astype("datetime64[M]").astype(np.int64) - ((start.year - 1970) * 12 + start.month - 1)
    return ((when.dt.year.to_numpy(np.int64) - start.year) * 12
            + when.dt.month.to_numpy(np.int64) - start.month)


def choose_period(months: int) -> tuple[str, str]:
    """Pick the time step for the cube from the span of the data in months.

    Rule (so that the Mann-Kendall trend has the 10 steps ArcGIS requires):

    * ``months >= 10``: ``"month"`` (calendar months; at least 10 steps);
    * ``3 <= months < 10``: ``"week"`` (3 months is about 13 weeks);
    * ``months < 3``: ``"day"``; under roughly 10 days the reason says the
      trend will be unreliable.

    Months are preferred whenever possible because weekly and daily counts
    of violent crime are sparse and dominated by day-of-week effects.
    Returns ``(step, how_chosen)``: step is ``"month"``, ``"week"`` or
    ``"day"`` (see ``PANDAS_FREQ`` for pandas aliases) and how_chosen is a
    sentence for the report.
    """
    months = int(months)
    if months < 0:
        raise ValueError("months must be >= 0")
    if months >= MIN_TREND_STEPS:
        return "month", (f"{months} months of data: monthly steps give {months} time steps "
                         f"(at least {MIN_TREND_STEPS} are needed for a trend)")
    weeks = int(months * 52 / 12)
    if weeks >= MIN_TREND_STEPS:
        return "week", (f"only {months} months of data (fewer than {MIN_TREND_STEPS}): "
                        f"weekly steps give about {weeks} time steps")
    days = int(round(months * 365.25 / 12))
    how = (f"only {months} month(s) of data: daily steps give about {days} time steps"
           if months else "less than one month of data: daily steps")
    if days < MIN_TREND_STEPS:
        how += f"; fewer than {MIN_TREND_STEPS} steps, so trends are unreliable"
    return "day", how


# ---------------------------------------------------------------------------
# Mann-Kendall
# ---------------------------------------------------------------------------

def _tie_term(x: np.ndarray) -> np.ndarray:
    """Per row, sum over tie groups of t(t-1)(2t+5) (t = group size)."""
    n, T = x.shape
    xs = np.sort(x, axis=1)
    starts = np.ones((n, T), dtype=bool)
    starts[:, 1:] = xs[:, 1:] != xs[:, :-1]
    # Label every run of equal values across the whole flattened array; rows
    # never share a label because each row starts a new run.
    labels = np.cumsum(starts.ravel()) - 1
    sizes = np.bincount(labels).astype(float)
    row_of_group = np.repeat(np.arange(n), starts.sum(axis=1))
    term = sizes * (sizes - 1) * (2 * sizes + 5)
    return np.bincount(row_of_group, weights=term, minlength=n)


def mann_kendall_s(series_2d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mann-Kendall S and its tie-corrected variance for each row.

    S = sum over i < j of sign(x_j - x_i) along the row (time order);
    Var(S) = [T(T-1)(2T+5) - sum_g t_g(t_g-1)(2t_g+5)] / 18 over tie groups.
    Returns ``(S, var)``, one value per row.
    """
    x = np.atleast_2d(np.asarray(series_2d, dtype=float))
    n, T = x.shape
    s = np.zeros(n)
    # Loop over lags, not pairs: T-1 vectorised passes of size n x (T-k)
    # keep memory at O(nT) instead of O(nT^2) for 90,000-cell grids.
    for k in range(1, T):
        s += np.sign(x[:, k:] - x[:, :-k]).sum(axis=1)
    var = (T * (T - 1) * (2 * T + 5) - _tie_term(x)) / 18.0
    return s, var


def mann_kendall(series_2d: np.ndarray, continuity: bool = True
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Mann-Kendall trend test on each row of ``series_2d`` (rows = cells).

    Columns are in time order. Returns ``(z, p)``: the normal score and the
    two-sided p-value per row. With ``continuity=True`` (the textbook form,
    Gilbert 1987) z = (S - sign(S)) / sqrt(Var S); with ``continuity=False``
    z = S / sqrt(Var S), which is exactly the statistic of
    ``scipy.stats.kendalltau(t, x, method="asymptotic")`` because time has no
    ties (tested). Rows with no variance (constant, or fewer than 2 values)
    get z = 0 and p = 1: no evidence of a trend. NaN values are not allowed
    (replace them first; ``emerging_classes`` uses 0).
    """
    x = np.atleast_2d(np.asarray(series_2d, dtype=float))
    if np.isnan(x).any():
        raise ValueError("mann_kendall: series contain NaN")
    s, var = mann_kendall_s(x)
    num = s - np.sign(s) if continuity else s
    z = np.zeros_like(s)
    ok = var > 0
    z[ok] = num[ok] / np.sqrt(var[ok])
    p = 2.0 * norm_sf(np.abs(z))
    return z, p


# ---------------------------------------------------------------------------
# Gi* on the cube
# ---------------------------------------------------------------------------

def gi_star_cube(cube: np.ndarray, w: sp.csr_matrix) -> np.ndarray:
    """Gi* z for every cell and period: ``gistar.gi_star`` on each column.

    Computed in one sparse product ``w @ cube`` instead of T separate calls,
    with the same formula and the same handling of degenerate values
    (a period with no variance is all NaN; a cell whose neighbourhood has no
    variance term gets 0). Returns an (n_cells, n_periods) array.
    """
    x = np.asarray(cube, dtype=float)
    n = x.shape[0]
    xbar = x.mean(axis=0)
    s = np.sqrt((x * x).mean(axis=0) - xbar * xbar)
    wi = np.asarray(w.sum(axis=1)).ravel()
    s1 = np.asarray(w.multiply(w).sum(axis=1)).ravel()
    lag = np.asarray(w @ x)
    # One cell (n = 1) or a neighbourhood that is the whole grid leaves the variance term undefined:
    # those z are set below, without a warning.
    with np.errstate(invalid="ignore", divide="ignore"):
        root = np.sqrt((n * s1 - wi * wi) / (n - 1))
        z = (lag - np.outer(wi, xbar)) / np.outer(root, s)
    bad = ~np.isfinite(z)
    no_var = (s == 0) | ~np.isfinite(s)
    z[bad] = 0.0
    z[:, no_var] = np.nan
    return z


def period_classes(z: np.ndarray, fdr_alpha: float = 0.05, cube: np.ndarray | None = None,
                   w: sp.csr_matrix | None = None, draws: int = 50_000, seed: int = 0) -> np.ndarray:
    """Gi_Bin-style class (-3..3) per cell and period, BH-corrected per period.

    FDR is controlled within each time step separately (each step is one map
    of n tests), as ArcGIS does for each time slice. With ``cube`` and ``w``
    the p-values come from randomisation (``gistar.permutation_p``), as for
    the single-period map: monthly counts are sparse, where the normal curve
    finds hot spots in noise. Without them, normal p-values. Returns int8 (n, T).
    """
    z = np.asarray(z, dtype=float)
    out = np.zeros(z.shape, dtype=np.int8)
    for t in range(z.shape[1]):
        col = z[:, t]
        if cube is not None and w is not None:
            p = permutation_p(cube[:, t], w, draws=draws, seed=seed + t)
            p[~np.isfinite(col)] = np.nan
        else:
            p = 2.0 * norm_sf(np.abs(col))
        out[:, t] = gi_class(col, bh_qvalues(p), fdr_alpha)
    return out


# ---------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------

def _trailing_run(mask: np.ndarray) -> np.ndarray:
    """Length of the run of True values that ends in the last column."""
    T = mask.shape[1]
    rev = mask[:, ::-1]
    first_false = np.argmax(~rev, axis=1)
    return np.where(rev.all(axis=1), T, first_false)


def _label(last: np.ndarray, n_sig: np.ndarray, run: np.ndarray, n_other: np.ndarray,
           ninety: np.ndarray, intens: np.ndarray, dimin: np.ndarray,
           names: tuple[str, ...], out: np.ndarray) -> None:
    """Write the eight labels of one sign (hot or cold) into ``out``.

    ``names`` is HOT_CLASSES or COLD_CLASSES; ``n_other`` counts significant
    steps of the opposite sign; ``intens``/``dimin`` are the significant
    trend directions already oriented for this sign.
    """
    new, consec, intensifying, persistent, diminishing, sporadic, oscill, _historical = names
    # >= 90 % hot including the final step: trend decides.
    strong = last & ninety
    out[strong & intens] = intensifying
    out[strong & dimin] = diminishing
    out[strong & ~intens & ~dimin] = persistent
    # < 90 % hot, hot now.
    weak = last & ~ninety
    osc = weak & (n_other > 0)          # a cold history wins (see module doc)
    out[osc] = oscill
    clean = weak & ~osc
    only_run = run == n_sig             # nothing significant before the final run
    out[clean & only_run & (run == 1)] = new
    out[clean & only_run & (run >= 2)] = consec
    out[clean & ~only_run] = sporadic
    # ``hist`` is assigned by the caller: it needs the final step to be
    # significant in neither direction, which one sign alone cannot see.


def emerging_classes(cube: np.ndarray, w: sp.csr_matrix, fdr_alpha: float = 0.05,
                     trend_alpha: float = 0.05, inference: str = "normal", seed: int = 0) -> pd.DataFrame:
    """Classify every cell of a space-time cube as in Emerging Hot Spot Analysis.

    ``cube`` is (n_cells, n_periods) counts in time order (``space_time_cube``);
    ``w`` the n x n binary neighbour matrix with self included
    (``gistar.neighbour_matrix``). Gi* is computed for each period, BH-corrected
    per period; a cell-period is hot when its class is >= 2 (q <= fdr_alpha,
    z > 0) and cold when <= -2. The Mann-Kendall test runs on each cell's Gi*
    z series (periods with no variance at all, whose z is NaN, count as z = 0:
    no clustering); its trend is significant at ``trend_alpha``.

    Returns a DataFrame with one row per cell (same order as the cube) and
    columns:

    * ``trend_z``, ``trend_p``: Mann-Kendall z and two-sided p of the Gi* z series;
    * ``trend_class``: one of ``ALL_CLASSES`` (see the module docstring);
    * ``hot_periods``: number of periods significantly hot;
    * ``last_hot``: whether the final period is significantly hot;
    * ``cold_periods``, ``last_cold``: the same for cold.
    """
    cube = np.asarray(cube, dtype=float)
    if cube.ndim != 2:
        raise ValueError("cube must be 2-D (n_cells, n_periods)")
    n, T = cube.shape
    if w.shape != (n, n):
        raise ValueError("w must be n_cells x n_cells")

    z = gi_star_cube(cube, w)
    if inference == "permutation":
        cls = period_classes(z, fdr_alpha, cube=cube, w=w, seed=seed)
    else:
        cls = period_classes(z, fdr_alpha)
    return _classify(z, cls, trend_alpha)


def emerging_classes_by_source(cubes: dict, w: sp.csr_matrix, weights: dict, fdr_alpha: float = 0.05,
                               trend_alpha: float = 0.05, draws: int | None = 50_000, seed: int = 0) -> pd.DataFrame:
    """``emerging_classes`` under ``combine = "sources"``: each month, each source's Gi* on the cells it
    covers only (its values and reference set; ``hotspots.detect.combine`` does the same for the whole
    period), its two-sided p (randomisation with ``draws``, or the normal curve with ``draws=None``) as a
    signed normal score, the cell's weighted Stouffer Z over the sources that cover it and have records
    that month, then BH per month over the cells with a Z. The Mann-Kendall test runs on each cell's Z
    series. Pooling the sources' counts instead made every cell of a source that covers part of the area
    look hot each month for its volume alone (statistics audit: the example's monthly Gi* z averaged
    +2.9 over the City police's 131 cells and -0.5 over the other 719, and all 6 of its trend classes
    were City cells).

    ``cubes`` maps a source id to (covered, cube): a boolean mask over the n cells of ``w`` and its
    (n, T) values (density: weighted records / covered share; read only where covered). ``weights``
    maps a source id to its weight. Same columns as ``emerging_classes``.
    """
    n, T = next(iter(cubes.values()))[1].shape if cubes else (w.shape[0], 0)
    num, den = np.zeros((n, T)), np.zeros((n, T))
    for j, (sid, (covered, cube)) in enumerate(cubes.items()):
        wt = float(weights.get(sid, 0.0))
        idx = np.flatnonzero(covered)
        if wt <= 0 or len(idx) < 2:
            continue
        sub = sp.csr_matrix(w)[idx][:, idx]
        x = np.asarray(cube, float)[idx]
        z = gi_star_cube(x, sub)
        for t in range(T):
            ok = np.isfinite(z[:, t])
            if not ok.any():            # no record of this source this month: it says nothing
                continue
            p = (permutation_p(x[:, t], sub, draws=draws, seed=seed + 7919 * j + t, nested=True) if draws
                 else 2.0 * norm_sf(np.abs(z[:, t])))
            score = np.sign(z[:, t]) * norm_isf(np.clip(p, 1e-300, 1.0) / 2.0)
            num[idx[ok], t] += wt * score[ok]
            den[idx[ok], t] += wt * wt
    with np.errstate(invalid="ignore", divide="ignore"):
        Z = np.where(den > 0, num / np.sqrt(den), np.nan)
    cls = np.zeros((n, T), dtype=np.int8)
    for t in range(T):
        q = bh_qvalues(np.where(np.isfinite(Z[:, t]), 2.0 * norm_sf(np.abs(np.nan_to_num(Z[:, t]))), np.nan))
        cls[:, t] = gi_class(np.nan_to_num(Z[:, t]), q, fdr_alpha)
    return _classify(Z, cls, trend_alpha)


def _classify(z: np.ndarray, cls: np.ndarray, trend_alpha: float) -> pd.DataFrame:
    """The classes of ``emerging_classes`` from each cell-period's z and Gi_Bin-style class."""
    n, T = z.shape
    hot = cls >= 2
    cold = cls <= -2

    trend_z, trend_p = mann_kendall(np.nan_to_num(z, nan=0.0))
    sig = trend_p <= trend_alpha
    up = sig & (trend_z > 0)
    down = sig & (trend_z < 0)

    n_hot = hot.sum(axis=1)
    n_cold = cold.sum(axis=1)
    last_hot = hot[:, -1]
    last_cold = cold[:, -1]
    # Integer form of "at least 90 %" avoids 0.9 * T rounding surprises.
    ninety_hot = 10 * n_hot >= 9 * T
    ninety_cold = 10 * n_cold >= 9 * T

    labels = np.full(n, NO_PATTERN, dtype=object)
    _label(last_hot, n_hot, _trailing_run(hot), n_cold, ninety_hot,
           intens=up, dimin=down, names=HOT_CLASSES, out=labels)
    # Cold: clustering of low values intensifies when z trends downwards.
    _label(last_cold, n_cold, _trailing_run(cold), n_hot, ninety_cold,
           intens=down, dimin=up, names=COLD_CLASSES, out=labels)
    neither_now = ~last_hot & ~last_cold
    labels[neither_now & ninety_hot] = HOT_CLASSES[-1]
    labels[neither_now & ninety_cold] = COLD_CLASSES[-1]

    return pd.DataFrame({
        "trend_z": trend_z,
        "trend_p": trend_p,
        "trend_class": labels.astype(str),
        "hot_periods": n_hot.astype(int),
        "last_hot": last_hot,
        "cold_periods": n_cold.astype(int),
        "last_cold": last_cold,
    })
