"""Prospective evaluation of hotspot maps: hit rate, PAI, PEI and RRI.

A hotspot method gives every grid cell a score from *training* data (an
earlier period). The map is judged on the *test* period that follows: if an
agency patrolled the top-scoring cells covering, say, 5 % of the area, what
share of the next period's incidents would fall inside? This is the
prospective set-up of Chainey, Tompson & Uhlig (2008) and of open_cp.

Selecting cells for a coverage level
------------------------------------
Cells are ranked by score, highest first; NaN scores rank last. Cells are
then taken in rank order until their cumulative area reaches ``coverage x
total area``. The cells that cross the threshold are counted *in
proportion*: if only 40 % of their area is needed, 40 % of their incidents
(training and test) are counted. "The cells that cross" are the whole block
of cells tied on the crossing score (cells with equal counts, every cell
when the score is constant), so no order among tied cells decides the
figures: with cells of equal area, this is the mean over every order of the
tied cells (a constant score gives exactly PAI 1). Tie-breaking by a random
order, as before, moved the example's previous-period PAI at 3 % anywhere
from 13.82 to 14.26 with the seed (a statistics audit). This makes every
method cover exactly the same area, so PAIs are comparable across methods
and across grids. ``plot_coverage`` draws the curve along one seeded order
of the ties (``rank_cells``). (``partial=False`` instead includes the whole
crossing cell in that order, and ``area_fraction`` then reports the
slightly larger actual area.)

Measures (n = test incidents in the selected cells, N = all test incidents,
a = selected area, A = total area; see ``FORMULAS``)
-------------------------------------------------------------------------
* hit rate = n / N
* PAI (Predictive Accuracy Index, Chainey et al. 2008) = (n / N) / (a / A):
  how many times better than a random choice of the same area. 1 = random.
* PEI (Predictive Efficiency Index, Hunt 2016) = PAI / PAI*, where PAI* is
  the best PAI any map could have reached at the same area, from ranking the
  cells by the test counts themselves (per unit area, which is the same
  ranking when cells are equal). Between 0 and 1.
* RRI (Recapture Rate Index, Levine 2008) = (n2 / n1) / (N2 / N1), with
  n1, N1 the *training* counts in the selected cells / overall and n2, N2
  the *test* counts: above 1 when the selected cells' share of incidents grew
  from training to test. NaN when n1, N1 or N2 is zero.

Every measure is NaN when undefined (no test incidents, zero area).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

DEFAULT_COVERAGES = (0.01, 0.03, 0.05, 0.10)

FORMULAS = """\
Prospective hotspot evaluation (cells ranked by each method's training score;
the top cells covering a fraction a/A of the area are compared with the test
period's incidents):
  hit rate = n / N                   share of test incidents inside the selected cells
  PAI      = (n / N) / (a / A)       Predictive Accuracy Index (Chainey et al. 2008); 1 = random
  PEI      = PAI / PAI*              Predictive Efficiency Index; PAI* = best PAI at the same
                                     area (cells ranked by their own test counts per area); 0..1
  RRI      = (n2 / n1) / (N2 / N1)   Recapture Rate Index (Levine 2008); n1, N1 = training
                                     counts selected / overall, n2, N2 = test counts
n, N = test incidents selected / overall; a, A = selected / total area. Ties in a
score are broken at random (seeded); the last cell is counted in proportion to
the part of its area needed to reach the coverage exactly."""

COLUMNS = ["coverage", "area_fraction", "hit_rate", "pai", "pei", "rri"]
METHOD_COLUMNS = ["method", "coverage", "hit_rate", "pai", "pei", "rri", "area_fraction"]


def random_baseline(test_counts: np.ndarray, train_counts: np.ndarray, cell_area: np.ndarray,
                    coverages: Sequence[float] = DEFAULT_COVERAGES, draws: int = 1000, seed: int = 0,
                    partial: bool = True) -> pd.DataFrame:
    """The ``random`` method: the mean of ``draws`` (1,000) random rankings, with the 95 % range.

    One random ranking is one draw of a lottery (at 1 % of the example's area its PAI ranged
    0 to 3.4 over seeds); the mean is the baseline (its expectation: hit rate = coverage,
    PAI = 1) and ``hit_rate_low``/``hit_rate_high``, ``pai_low``/``pai_high`` are the 2.5 and
    97.5 percentiles over the draws: how far a map could beat random by luck alone. Columns
    as ``evaluate_methods`` plus those four.
    """
    rng = np.random.default_rng(seed)
    n = np.asarray(cell_area).size
    runs = [coverage_curve(rng.random(n), test_counts, train_counts, cell_area, coverages, seed + 1 + k, partial)
            for k in range(draws)]
    stack = pd.concat(runs, keys=range(draws), names=["draw", "row"]).reset_index(level="draw")
    g = stack.groupby("coverage", sort=False)
    out = g[["area_fraction", "hit_rate", "pai", "pei", "rri"]].mean().reset_index()
    for col in ("hit_rate", "pai"):
        out[f"{col}_low"] = g[col].quantile(0.025).to_numpy()
        out[f"{col}_high"] = g[col].quantile(0.975).to_numpy()
    out.insert(0, "method", "random")
    return out[METHOD_COLUMNS + ["hit_rate_low", "hit_rate_high", "pai_low", "pai_high"]]


def random_score(n_cells: int, seed: int = 0) -> np.ndarray:
    """A seeded uniform random score: the 'random' baseline method."""
    return np.random.default_rng(seed).random(n_cells)


def _check(score, test_counts, train_counts, cell_area):
    arrays = [np.asarray(a, dtype=float).ravel() for a in (score, test_counts, train_counts, cell_area)]
    n = arrays[0].size
    if any(a.size != n for a in arrays):
        raise ValueError("score, test_counts, train_counts and cell_area must have one value per cell")
    area = arrays[3]
    if (area < 0).any() or not np.isfinite(area).all() or area.sum() <= 0:
        raise ValueError("cell_area must be finite, non-negative, with a positive total")
    return arrays


def rank_cells(score: np.ndarray, seed: int = 0) -> np.ndarray:
    """Cell indices from best to worst score; ties in random (seeded) order.

    The random key is drawn for every cell from ``seed`` and used only as a
    secondary sort key, so a constant score yields a uniformly random order
    and results do not depend on cell numbering. NaN scores come last.
    """
    score = np.asarray(score, dtype=float).ravel()
    key = np.random.default_rng(seed).random(score.size)
    primary = np.where(np.isnan(score), np.inf, -score)
    # lexsort: last key is primary.
    return np.lexsort((key, primary))


def _tie_blocks(score: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each position of ``order``, the first and one-past-last positions of its block of cells tied on
    ``score`` (NaN scores tied with one another)."""
    s = score[order]
    new = np.ones(s.size, dtype=bool)
    new[1:] = ~((s[1:] == s[:-1]) | (np.isnan(s[1:]) & np.isnan(s[:-1])))
    first = np.flatnonzero(new)
    block = np.cumsum(new) - 1
    ends = np.append(first[1:], s.size)
    return first[block], ends[block]


def _take(order: np.ndarray, area: np.ndarray, counts: Sequence[np.ndarray],
          target: float, partial: bool, blocks: tuple[np.ndarray, np.ndarray] | None = None
          ) -> tuple[float, list[float]]:
    """Area and count sums of the top cells in ``order`` up to ``target`` area. With ``partial`` and
    ``blocks`` (``_tie_blocks``), the cells tied with the one that crosses the target are taken together,
    in proportion (the module docstring)."""
    a = area[order]
    cum = np.cumsum(a)
    sums = [np.cumsum(c[order]) for c in counts]
    if target <= 0:
        return 0.0, [0.0 for _ in counts]
    # k = first cell whose cumulative area reaches the target.
    k = int(np.searchsorted(cum, target * (1 - 1e-12), side="left"))
    if k >= a.size:                                   # coverage 100 % (or more)
        return float(cum[-1]), [float(s[-1]) for s in sums]
    b0, b1 = (int(blocks[0][k]), int(blocks[1][k])) if partial and blocks is not None else (k, k + 1)
    prev_area = cum[b0 - 1] if b0 else 0.0
    prev = [s[b0 - 1] if b0 else 0.0 for s in sums]
    span = cum[b1 - 1] - prev_area
    if partial:
        # span > 0 here because cum[k] >= target > prev_area.
        frac = min(1.0, max(0.0, (target - prev_area) / span))
    else:
        frac = 1.0
    got_area = prev_area + frac * span
    got = [float(p + frac * (s[b1 - 1] - p)) for p, s in zip(prev, sums)]
    return float(got_area), got


def _best_score(test: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Score of the best possible map: test incidents per unit area.

    With equal cells this is the same ranking as the test counts. With
    unequal cells (e.g. clipped at the boundary) ranking by density is the
    true optimum of "most incidents in a given area" when the last cell is
    counted in proportion (the fractional knapsack), so PEI never exceeds 1.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return test / area


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


def coverage_curve(score: np.ndarray, test_counts: np.ndarray, train_counts: np.ndarray,
                   cell_area: np.ndarray, coverages: Sequence[float] = DEFAULT_COVERAGES,
                   seed: int = 0, partial: bool = True) -> pd.DataFrame:
    """Hit rate, PAI, PEI and RRI of one method's cell scores at each coverage.

    ``score`` is the method's score per cell (higher = hotter), computed from
    training data; ``test_counts`` and ``train_counts`` the incidents per cell
    in the test and training periods (weighted counts are fine);
    ``cell_area`` each cell's area (any unit; only fractions are used).
    ``coverages`` are fractions of the total area (0.05 = 5 %). See the
    module docstring for the selection rule and formulas.

    Returns one row per coverage with columns ``coverage``, ``area_fraction``
    (the area actually selected / total; equals coverage with ``partial``),
    ``hit_rate`` (n/N), ``pai``, ``pei`` and ``rri`` (NaN where undefined).
    """
    score, test, train, area = _check(score, test_counts, train_counts, cell_area)
    A = area.sum()
    N2 = test.sum()
    N1 = train.sum()
    order = rank_cells(score, seed)
    best_score = _best_score(test, area)
    best = rank_cells(best_score, seed)
    ties, best_ties = _tie_blocks(score, order), _tie_blocks(best_score, best)
    rows = []
    for cov in coverages:
        cov = float(cov)
        target = min(cov, 1.0) * A
        a, (n2, n1) = _take(order, area, (test, train), target, partial, ties)
        a_best, (n_best,) = _take(best, area, (test,), target, partial, best_ties)
        af = a / A
        hit = _ratio(n2, N2)
        pai = _ratio(hit, af) if np.isfinite(hit) else float("nan")
        hit_best = _ratio(n_best, N2)
        pai_best = _ratio(hit_best, a_best / A) if np.isfinite(hit_best) else float("nan")
        pei = _ratio(pai, pai_best) if np.isfinite(pai) and np.isfinite(pai_best) else float("nan")
        rri = (_ratio(n2 / n1, N2 / N1) if n1 > 0 and N1 > 0 and N2 > 0 else float("nan"))
        rows.append((cov, af, hit, pai, pei, rri))
    return pd.DataFrame(rows, columns=COLUMNS)


def evaluate_methods(scores: Mapping[str, np.ndarray], test_counts: np.ndarray,
                     train_counts: np.ndarray, cell_area: np.ndarray,
                     coverages: Sequence[float] = DEFAULT_COVERAGES, seed: int = 0,
                     partial: bool = True) -> pd.DataFrame:
    """``coverage_curve`` for several methods, stacked into one table.

    ``scores`` maps a method name (e.g. "gi_star", "kde", "weighted_count",
    "previous_period", "random") to its score per cell. Every method uses the
    same tie-breaking ``seed``. Returns one row per method per coverage with
    columns ``method``, ``coverage``, ``hit_rate``, ``pai``, ``pei``, ``rri``
    and ``area_fraction``, methods in the order given.
    """
    frames = []
    for name, score in scores.items():
        df = coverage_curve(score, test_counts, train_counts, cell_area, coverages, seed, partial)
        df.insert(0, "method", name)
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=METHOD_COLUMNS)
    return pd.concat(frames, ignore_index=True)[METHOD_COLUMNS]


def _cumulative(order: np.ndarray, area: np.ndarray, test: np.ndarray):
    """Cumulative (area fraction, hit rate) along a ranking, starting at (0, 0)."""
    x = np.r_[0.0, np.cumsum(area[order])] / area.sum()
    total = test.sum()
    y = np.r_[0.0, np.cumsum(test[order])] / total if total > 0 else np.zeros_like(x)
    return x, y


def plot_coverage(scores: Mapping[str, np.ndarray], test_counts: np.ndarray,
                  cell_area: np.ndarray, path: str | Path, seed: int = 0,
                  coverages: Sequence[float] = DEFAULT_COVERAGES, show_best: bool = True,
                  title: str | None = None) -> Path:
    """Save a PNG of hit rate against area coverage (0-100 %) for each method.

    One line per method along its seeded ranking (straight segments between
    cells are the proportional counting used by ``coverage_curve``), the
    random expectation (the diagonal), the best possible curve (cells ranked
    by the test counts) when ``show_best``, and dotted verticals at
    ``coverages``. The PAI formula is written under the plot. Uses the Agg
    canvas directly, so no GUI and no global pyplot state. Returns the path.
    """
    # Imported here so the metrics work without matplotlib being imported.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    test = np.asarray(test_counts, dtype=float).ravel()
    area = np.asarray(cell_area, dtype=float).ravel()
    fig = Figure(figsize=(7.5, 6.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 100], [0, 100], color="0.6", ls="--", lw=1, label="random (PAI = 1)")
    if show_best:
        x, y = _cumulative(rank_cells(_best_score(test, area), seed), area, test)
        ax.plot(100 * x, 100 * y, color="0.3", ls=":", lw=1.5, label="best possible (test counts)")
    for name, score in scores.items():
        score = np.asarray(score, dtype=float).ravel()
        if score.size != test.size:
            raise ValueError(f"score for {name!r} has {score.size} cells, expected {test.size}")
        x, y = _cumulative(rank_cells(score, seed), area, test)
        ax.plot(100 * x, 100 * y, lw=1.8, label=name)
    for c in coverages:
        ax.axvline(100 * c, color="0.85", lw=0.8, zorder=0)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_xlabel("area covered, % of study area (a/A)")
    ax.set_ylabel("hit rate, % of test-period incidents captured (n/N)")
    ax.set_title(title or "Hit rate against area coverage")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.text(0.5, 0.01, "PAI = (n/N) / (a/A): hit rate divided by area share; "
             "the diagonal is PAI = 1", ha="center", va="bottom", fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
