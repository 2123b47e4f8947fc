"""Audience tiers: what each audience may see. The one place the tiers' rules live.

``partner``: the analysis as run, for the partnership's members.
``public``: aggregated and disclosure-controlled, after NHS Digital's rule for
published counts: cells of at least 400 m, counts from one to seven
suppressed and the rest rounded to the nearest five, a window of at least 12
months, no incident points, no hotspot supported only by anecdotal or
intelligence sources, no sexual-offence or domestic-abuse layer, and no
building profile below the suppression threshold. Records other than police
data within ``sensitive_exclusion_m`` of a sensitive site are left out, and the
evidence and role mix is published only for the cells of published hotspots
(``pipeline.public_view``).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from hotspots.errors import UserError
from hotspots.schema import TAXONOMY

PUBLIC = {
    "min_cell_m": 400.0,
    "suppress_below": 8,        # counts 1..7 are suppressed
    "round_to": 5,
    "min_months": 12,
    "factual_evidence": ("recorded_crime", "health", "partner_record"),
    # Records that are not police.uk-style police data, within this distance of a sensitive site
    # (children's homes), are left out of the public tier: around a home they are its profile.
    "sensitive_exclusion_m": 300.0,
    "police_evidence": ("recorded_crime", "police_activity"),
    "restricted_categories": tuple(sorted(c for c, v in TAXONOMY.items() if v.get("restricted"))),
}
SUPPRESSED = "<8"

RULES_TEXT = ("Public tier: cells of at least 400 m; counts from one to seven are suppressed (shown as "
              "\"<8\") and all other counts rounded to the nearest five (NHS Digital's rule); a window of "
              "at least twelve months; no incident locations; hotspots supported only by anecdotal or "
              "intelligence sources are not shown; no sexual offence or domestic abuse layer; buildings "
              "are profiled only where counts reach the threshold; partner records near places the "
              "partnership protects are left out; the mix of evidence is shown for published hotspots only.")


def public_count(value) -> str:
    """One count as the public may see it: '0', '<8', or rounded to the nearest 5."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    v = float(value)
    if v <= 0:
        return "0"
    if v < PUBLIC["suppress_below"]:
        return SUPPRESSED
    return str(int(PUBLIC["round_to"] * np.floor(v / PUBLIC["round_to"] + 0.5)))


def public_counts(values: pd.Series) -> pd.Series:
    """``public_count`` over a column."""
    return values.map(public_count).astype(str)


def is_count(column: str) -> bool:
    """True for the columns that count records and so follow the suppression rule: ``n``, ``weighted``
    (a sum of weights: with the weights printed it is a count in disguise), ``n_<evidence>`` and
    ``role_<role>_<evidence>``."""
    return column in ("n", "weighted") or column.startswith(("n_", "role_"))


def disclose(frame: pd.DataFrame) -> pd.DataFrame:
    """A table as the public tier publishes it: counts as numbers, rounded to the nearest five, empty
    (NaN) where suppressed, and a ``suppressed`` flag.

    A row whose ``n`` is from one to seven is suppressed whole: every count it carries is empty, since
    any of them (the weighted sum, one source's count) would give its ``n`` back. In the other rows a
    single count from one to seven is emptied on its own.
    """
    out = frame.copy()
    cols = [c for c in out.columns if is_count(str(c))]
    low = PUBLIC["suppress_below"]
    n = out["n"].astype(float) if "n" in out else pd.Series(0.0, index=out.index)
    suppressed = (n > 0) & (n < low)
    for c in cols:
        v = out[c].astype(float)
        rounded = PUBLIC["round_to"] * np.floor(v / PUBLIC["round_to"] + 0.5)
        out[c] = rounded.where(~suppressed & ~((v > 0) & (v < low)))
    out["suppressed"] = suppressed.to_numpy()
    return out


def study_months(start: pd.Timestamp, end: pd.Timestamp) -> int:
    """Whole months from ``start`` to the exclusive ``end``."""
    return (end.to_period("M") - start.to_period("M")).n


def check_public(cfg) -> None:
    """Raise a UserError when the config cannot meet the public tier's rules: the window (``end`` is
    exclusive) must span twelve months of elapsed time, not twelve calendar months touched."""
    months = 0
    while cfg.start + pd.DateOffset(months=months + 1) <= cfg.end:
        months += 1
    if months < PUBLIC["min_months"]:
        raise UserError(f"the public tier needs a window of at least {PUBLIC['min_months']} months; the study "
                        f"covers {months} ({cfg.start_label} to {cfg.end_label}).", file=str(cfg.path),
                        hint="Lengthen [study] start/end, or remove \"public\" from [outputs] tiers.")


def public_coverage(coverage: pd.DataFrame | None) -> pd.DataFrame | None:
    """The coverages the public tier may draw or name: areas a source declared, or a polygon file.
    A coverage derived from a source's records (the units it recorded in, or the cells near them)
    would say where a small source's few records lie, so it stays in the partner tier."""
    if coverage is None:
        return None
    return coverage[~coverage["how"].astype(str).str.startswith("derived")]


def near_sensitive(incidents: pd.DataFrame, sites: np.ndarray | None) -> np.ndarray:
    """True for the records the public tier leaves out near sensitive sites: those not from police
    data (``police_evidence``) within ``sensitive_exclusion_m`` of a site (``sites``: x, y rows)."""
    out = np.zeros(len(incidents), dtype=bool)
    if sites is None or not len(sites) or not len(incidents):
        return out
    from scipy.spatial import cKDTree
    xy = incidents[["x", "y"]].to_numpy(float)
    dist, _ = cKDTree(np.asarray(sites, float)).query(xy, k=1)
    police = incidents["evidence"].astype(str).isin(PUBLIC["police_evidence"]).to_numpy()
    return (dist <= PUBLIC["sensitive_exclusion_m"]) & ~police


def factual_mask(frame: pd.DataFrame) -> pd.Series:
    """True for rows (regions, clusters) supported by at least one factual record."""
    cols = [c for c in frame.columns for e in PUBLIC["factual_evidence"]
            if c == f"n_{e}" or (c.startswith("role_") and c.endswith(f"_{e}"))]
    if not cols:
        return pd.Series(False, index=frame.index)
    return frame[cols].sum(axis=1) > 0


def public_accounting(accounting: pd.DataFrame, filtered: pd.DataFrame) -> pd.DataFrame:
    """The rows per input file as the public tier states them: the records held back for their handling
    code (``governance.REASONS``: C without conditions, 5x5x5 handling 4 and 5, ...) are neither read nor
    filtered there. Counted among the rows filtered they gave back how many restricted records each
    source holds (a source's filtered rows can be exactly its held-back ones)."""
    from hotspots.governance import REASONS
    held = filtered[filtered["reason"].astype(str).isin([r for r in REASONS if r])] if len(filtered) else filtered
    if not len(held):
        return accounting
    per = held.groupby([held["source_id"].astype(str), held["file"].astype(str)]).size()
    keys = pd.MultiIndex.from_arrays([accounting["source_id"].astype(str), accounting["path"].astype(str)])
    less = per.reindex(keys, fill_value=0).to_numpy()
    out = accounting.copy()
    out["rows_read"] = out["rows_read"] - less
    out["rows_filtered"] = out["rows_filtered"] - less
    return out
