"""Each source's evidence on its own terms, combined by the partnership's weights.

Input: per risk source, its weighted count per cell (its own records with
their grade, recency and harm weights; no period scaling: the test is within
the source, so a constant factor changes nothing), the share of each cell
inside that source's coverage (``hotspots.coverage``), the Gi* neighbour
matrix of the whole grid and the partnership's weight of each source
(source weight x evidence-class weight).

For each source, Gi* runs on the cells it covers only: its reference
distribution and every neighbourhood are restricted to them. A cell partly
inside is compared by its density (count / covered share), not as if whole.
p-values are conditional permutations (``hotspots.detect.inference``) or,
with ``inference="normal"``, the normal curve of the Gi* z.

Each source's two-sided p, in the direction of its Gi* z (the permutation's tail on the side
z points to, doubled: a busy cell among empty neighbours, z > 0 with its neighbours in the lower
tail, is not called hot or cold on it), becomes a signed normal score
``s = side x Phi^-1(1 - p / 2)``, side the sign of z (past the permutations' floor, p is
extrapolated by a generalised Pareto tail: ``inference.conditional_p``); the cell's combined score is the weighted
Stouffer sum ``Z = sum(w_s s_s) / sqrt(sum(w_s^2))`` over the sources that
cover it, with p = 2 Phi(-|Z|) (for a cell covered by one source, its own p),
then Benjamini-Hochberg across the analysed cells and the ``gi_class`` bins.
The weights thus say how much each partner's evidence counts, not how many
records it has: a partner with 400 records and a force with 18,000 can each
make a hotspot.

Columns returned (one row per cell): ``status`` (``analysed``, or
``no_data`` where no risk source covers the cell: no z, p, q or class),
``covered_by`` (';'-separated source ids), ``gi_z`` (the combined Z), ``gi_p``,
``gi_q``, ``gi_class`` (NaN for ``no_data``), ``z_<source>`` (that source's
Gi* z on its covered cells) and ``p_<source>`` (its two-sided p) for each risk
source (NaN where it does not cover the cell), and ``support`` (';'-separated
sources whose own evidence makes the cell hot: z > 0 and p <= fdr_alpha).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hotspots.detect.gistar import bh_qvalues, gi_class, gi_star, p_two_sided
from hotspots.detect.inference import DEFAULT_DRAWS, conditional_p
from hotspots.distributions import norm_isf


def source_evidence(values: np.ndarray, share: np.ndarray, w: sp.csr_matrix, covered: np.ndarray,
                    inference: str = "permutation", draws: int = DEFAULT_DRAWS,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One source's Gi* on its covered cells: (z, p, side, score) per cell of the grid, NaN / 0 outside.

    ``score`` is the signed normal score of p that the combination sums (p past the
    permutations' floor is extrapolated in ``inference.conditional_p``).
    """
    n = len(values)
    z, p, side, score = np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, dtype=np.int8), np.zeros(n)
    idx = np.nonzero(covered)[0]
    if len(idx) < 2:                    # one covered cell: nothing to compare it with, no evidence
        z[idx], p[idx] = 0.0, 1.0
        return z, p, side, score
    dens = np.asarray(values, float)[idx] / np.maximum(share[idx], 1e-9)
    sub = sp.csr_matrix(w)[idx][:, idx]
    zs = gi_star(dens, sub)
    if not np.isfinite(zs).any():       # no variance: this source says nothing anywhere here
        z[idx], p[idx] = 0.0, 1.0
        return z, p, side, score
    if inference == "normal":
        ps, sd = p_two_sided(zs), np.sign(zs).astype(np.int8)
        sc = np.nan_to_num(zs)
    else:
        ps, sd = conditional_p(dens, sub, draws=draws, seed=seed, direction=np.sign(np.nan_to_num(zs)))
        sc = sd * norm_isf(ps / 2.0)
    z[idx], p[idx], side[idx], score[idx] = zs, ps, sd, sc
    return z, p, side, score


def stouffer(p: np.ndarray, side: np.ndarray, weights: np.ndarray, score: np.ndarray | None = None) -> np.ndarray:
    """Weighted Stouffer Z per row of (cells x sources) two-sided p and side (or signed normal
    ``score`` where given); NaN p are left out."""
    ok = np.isfinite(p)
    if score is None:
        score = side * norm_isf(np.clip(np.where(ok, p, 1.0), 1e-300, 1.0) / 2.0)
    s = np.where(ok, score, 0.0)
    wts = np.where(ok, weights[None, :], 0.0)
    den = np.sqrt((wts ** 2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (wts * s).sum(axis=1) / den, np.nan)


def source_table(values: dict[str, np.ndarray], shares: dict[str, np.ndarray], w: sp.csr_matrix,
                 inference: str = "permutation", draws: int = DEFAULT_DRAWS, seed: int = 0,
                 most: float = 0.5) -> dict[str, dict[str, np.ndarray]]:
    """Each source's own evidence: {source: {"z", "p", "side", "score", "covered"}} per cell (``source_evidence``).

    Computed once; ``combine`` then weighs it (cheap), so weighting scenarios reuse it.
    """
    out = {}
    for j, sid in enumerate(values):
        cov = shares[sid] > most
        z, p, side, score = source_evidence(values[sid], shares[sid], w, cov, inference, draws, seed + 7919 * j)
        out[sid] = {"z": z, "p": p, "side": side, "score": score, "covered": cov}
    return out


def combine(evidence: dict[str, dict[str, np.ndarray]], weights: dict[str, float], n: int,
            fdr_alpha: float = 0.05) -> pd.DataFrame:
    """Weighted Stouffer of the sources' evidence, BH and classes; see the module docstring for the columns.

    Sources weighing 0 (or missing from ``weights``) take no part: where only they cover a
    cell, the cell is ``no_data``.
    """
    sids = [s for s in evidence if weights.get(s, 0) > 0]
    if sids:
        P = np.column_stack([evidence[s]["p"] for s in sids])
        S = np.column_stack([evidence[s]["side"] for s in sids])
        C = np.column_stack([evidence[s]["score"] for s in sids])
        Z = stouffer(P, S, np.array([weights[s] for s in sids], float), C)
    else:
        Z = np.full(n, np.nan)
    analysed = np.isfinite(Z)
    p = np.where(analysed, p_two_sided(np.nan_to_num(Z)), np.nan)
    q = bh_qvalues(p)
    cls = gi_class(np.nan_to_num(Z), q, fdr_alpha).astype(float)
    cls[~analysed] = np.nan
    out = pd.DataFrame({"status": np.where(analysed, "analysed", "no_data"),
                        "covered_by": joined(sids, [evidence[s]["covered"] for s in sids], n),
                        "gi_z": np.where(analysed, Z, np.nan), "gi_p": p, "gi_q": q, "gi_class": cls})
    for sid in evidence:
        out[f"z_{sid}"] = evidence[sid]["z"]
        out[f"p_{sid}"] = evidence[sid]["p"]
    out["support"] = joined(sids, [(evidence[s]["side"] > 0) & (np.nan_to_num(evidence[s]["p"], nan=1.0) <= fdr_alpha)
                                   for s in sids], n)
    return out


def joined(names: list[str], masks: list[np.ndarray], n: int) -> list[str]:
    """Per cell, the ``names`` whose mask is set there, joined by ";" in the order of ``names``.
    Each cell's set as the bits of one integer, each distinct set joined once (the 10 k run's four
    calls: 189 k Python joins, 0.2 s)."""
    if len(names) > 62:
        return [";".join(s for s, m in zip(names, masks) if m[i]) for i in range(n)]
    code = np.zeros(n, dtype=np.int64)
    for k, m in enumerate(masks):
        code |= np.asarray(m, dtype=bool).astype(np.int64) << k
    sets, which = np.unique(code, return_inverse=True)
    text = [";".join(s for k, s in enumerate(names) if int(u) >> k & 1) for u in sets]
    return [text[i] for i in which.tolist()]


def pooled(weighted: np.ndarray, covered_any: np.ndarray, w: sp.csr_matrix, fdr_alpha: float = 0.05,
           inference: str = "permutation", draws: int = DEFAULT_DRAWS, seed: int = 0) -> pd.DataFrame:
    """``combine = "pooled"``: one Gi* of the weighted counts of all sources over the cells any
    risk source covers (what ArcGIS users compute on the features they have); same columns,
    without per-source ones."""
    n = len(weighted)
    z, p = np.full(n, np.nan), np.full(n, np.nan)
    idx = np.nonzero(covered_any)[0]
    if len(idx) >= 2:
        sub = sp.csr_matrix(w)[idx][:, idx]
        zz = gi_star(np.asarray(weighted, float)[idx], sub)
        pp = (p_two_sided(zz) if inference == "normal" else
              conditional_p(weighted[idx], sub, draws, seed, direction=np.sign(np.nan_to_num(zz)))[0])
        pp[~np.isfinite(zz)] = np.nan
        z[idx], p[idx] = zz, pp
    q = bh_qvalues(p)
    analysed = np.zeros(n, bool)
    analysed[idx] = True
    cls = gi_class(np.nan_to_num(z), q, fdr_alpha).astype(float)
    cls[~analysed] = np.nan
    return pd.DataFrame({"status": np.where(analysed, "analysed", "no_data"), "gi_z": z, "gi_p": p,
                         "gi_q": q, "gi_class": cls})


ANECDOTAL = ("community_report", "intelligence")


def region_support(regions: pd.DataFrame, cells: pd.DataFrame, evidence_of: dict[str, str]) -> pd.DataFrame:
    """Regions' ``support`` (';'-separated sources whose own evidence makes one of its cells hot)
    and ``anecdotal_only`` (every supporting source is anecdotal: community reports or
    intelligence). ``evidence_of`` maps a source id to its evidence class."""
    regions = regions.copy()
    if "support" not in cells or not len(regions):
        regions["support"] = pd.Series("", index=regions.index, dtype=object)
        regions["anecdotal_only"] = pd.Series(False, index=regions.index, dtype=bool)
        return regions
    sup = []
    for rid in regions["region_id"]:
        names = sorted({s for v in cells.loc[cells["region_id"] == rid, "support"] for s in str(v).split(";") if s})
        sup.append(";".join(names))
    regions["support"] = sup
    regions["anecdotal_only"] = anecdotal_only(regions["support"], evidence_of)
    return regions


def anecdotal_only(support: pd.Series, evidence_of: dict[str, str]) -> np.ndarray:
    """Per row of ';'-separated supporting sources: are there any, and are they all anecdotal?"""
    def only(v) -> bool:
        names = [s for s in str(v if isinstance(v, str) else "").split(";") if s]
        return bool(names) and all(evidence_of.get(s, "") in ANECDOTAL for s in names)
    return np.array([only(v) for v in support], dtype=bool)
