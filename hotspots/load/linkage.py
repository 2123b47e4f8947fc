"""Probable duplicates across agencies: one incident recorded by two of them, counted once.

An assault treated in an emergency department is often also a crime the police
recorded. ``link_duplicates`` flags such pairs from the incidents alone, never
from people: only location, time and category are compared, and no person-level
field exists to compare. Two records of different sources, in a pair of
evidence classes that may describe the same incident (by default police
recorded crime and health), are a probable duplicate when:

- their categories are compatible: the same, or one a subcategory of the
  other in the taxonomy (``violence-with-weapon`` is a kind of
  ``violent-crime``); context categories (stop and search) never link;
- their times agree: the occurrence windows overlap once each window finer than
  a month is widened by ``days`` on both sides. police.uk dates are month-only,
  so for police against ED this means "the same month";
- their locations agree: the distance is at most ``distance_m`` plus
  ``precision_factor`` times the combined imprecision of the two locations,
  sqrt(p1^2 + p2^2) with p the ``location_precision_m`` of each (a police.uk
  snap point is 200 m, a postcode 100 m, a street 150-500 m): a snapped or
  geocoded point is not where the incident was, and the threshold says by how
  much.

Each record links to at most one other: candidate pairs are taken closest
first. Of a linked pair, the record with the more precise location is kept for
combined counts (on a tie, the record of the first evidence class of the pair:
the police record); the other gets ``duplicate_of`` = the kept record's
``incident_id`` (weight 0 in ``hotspots.weight``, so it is counted once). Both
stay in their own source's layer of the data.

Config ``[linkage]``: ``distance_m`` (default 50), ``days`` (default 1),
``precision_factor`` (default 0.1), ``pairs`` (default
``[["recorded_crime", "health"]]``), ``enabled`` (default true).

Why the defaults are tight: police.uk gives only the month, so a police record
and an ED record can agree in month, place and category by coincidence. At a
busy snap point (a nightlife street with several violent crimes a month) almost
any assault treated in the ED that month "matches". On the bundled example
(generator seed 2018), 19 % of the ED assaults that are not duplicates have a
same-month police violent crime within 50 m. Wider thresholds find the last
planted duplicates but flag far more coincidences (100 m and a factor of 1
link 63 % of the ED records); the defaults flag 29 % of them, close to the
share of ED-treated violence the police know of (a quarter to a third), and
find 20 of the 22 planted duplicates. A flag is a probable duplicate, not an
identification: it only sets one record's weight in combined counts to 0.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from hotspots.errors import UserError
from hotspots.frames import text_values
from hotspots.schema import EVIDENCE_CLASSES, TAXONOMY

DEFAULTS = {"enabled": True, "distance_m": 50.0, "days": 1.0, "precision_factor": 0.1,
            "pairs": [["recorded_crime", "health"]]}


def linkage_options(cfg) -> dict:
    """The config's [linkage] table over ``DEFAULTS``, checked."""
    raw = cfg.raw.get("linkage", {}) if cfg is not None else {}
    if not isinstance(raw, dict):
        raise UserError("[linkage] should be a table.", file=str(cfg.path))
    opts = dict(DEFAULTS)
    for key, value in raw.items():
        if key not in DEFAULTS:
            raise UserError(f"[linkage] has an unknown key '{key}' (known: {', '.join(DEFAULTS)}).", file=str(cfg.path))
        opts[key] = value
    for key in ("distance_m", "days", "precision_factor"):
        if not isinstance(opts[key], (int, float)) or isinstance(opts[key], bool) or opts[key] < 0:
            raise UserError(f"[linkage] {key} should be a number >= 0, got {opts[key]!r}.", file=str(cfg.path))
        opts[key] = float(opts[key])
    if not isinstance(opts["enabled"], bool):
        raise UserError(f"[linkage] enabled should be true or false, got {opts['enabled']!r}.", file=str(cfg.path))
    for pair in opts["pairs"]:
        if not (isinstance(pair, list) and len(pair) == 2 and all(p in EVIDENCE_CLASSES for p in pair)):
            raise UserError(f"[linkage] pairs: {pair!r} should be two evidence classes "
                            f"({', '.join(EVIDENCE_CLASSES)}).", file=str(cfg.path))
    return opts


def category_family(category: pd.Series) -> pd.Series:
    """The taxonomy parent of each category, or the category itself; "" for context categories."""
    fam = {c: v.get("parent", c) for c, v in TAXONOMY.items() if v.get("risk", True)}
    return category.astype(str).map(fam).fillna("")


def _candidate_pairs(a: pd.DataFrame, b: pd.DataFrame, opts: dict) -> pd.DataFrame:
    """Every (a, b) pair meeting the three criteria, with its distance."""
    cols = ["ia", "ib", "d"]
    if not len(a) or not len(b):
        return pd.DataFrame(columns=cols)
    pa, pb = a["location_precision_m"].fillna(0).to_numpy(float), b["location_precision_m"].fillna(0).to_numpy(float)
    reach = opts["distance_m"] + opts["precision_factor"] * np.hypot(pa.max(), pb.max())
    tree = cKDTree(np.c_[b["x"].to_numpy(float), b["y"].to_numpy(float)])
    hits = tree.query_ball_point(np.c_[a["x"].to_numpy(float), a["y"].to_numpy(float)], r=reach)
    ia = np.repeat(np.arange(len(a)), [len(h) for h in hits])
    ib = np.fromiter((j for h in hits for j in h), dtype=int, count=len(ia))
    if not len(ia):
        return pd.DataFrame(columns=cols)
    d = np.hypot(a["x"].to_numpy(float)[ia] - b["x"].to_numpy(float)[ib],
                 a["y"].to_numpy(float)[ia] - b["y"].to_numpy(float)[ib])
    ok = d <= opts["distance_m"] + opts["precision_factor"] * np.hypot(pa[ia], pb[ib])
    fa, fb = category_family(a["category"]).to_numpy(), category_family(b["category"]).to_numpy()
    ok &= (fa[ia] == fb[ib]) & (fa[ia] != "")
    ok &= a["source_id"].to_numpy()[ia] != b["source_id"].to_numpy()[ib]
    widen = pd.Timedelta(days=opts["days"])

    def window(df: pd.DataFrame):
        fine = (df["date_precision"] != "month").to_numpy()
        pad = np.where(fine, widen.value, 0).astype("timedelta64[ns]")
        return df["occurred_from"].to_numpy("datetime64[ns]") - pad, df["occurred_to"].to_numpy("datetime64[ns]") + pad

    alo, ahi = window(a)
    blo, bhi = window(b)
    ok &= (alo[ia] <= bhi[ib]) & (blo[ib] <= ahi[ia])
    return pd.DataFrame({"ia": ia[ok], "ib": ib[ok], "d": d[ok]})


# What the candidate search reads of each record (a narrow copy, not the whole table).
PAIR_COLUMNS = ["source_id", "category", "x", "y", "location_precision_m", "occurred_from", "occurred_to",
                "date_precision"]


def link_duplicates(incidents: pd.DataFrame, cfg, ids=None) -> tuple[pd.DataFrame, dict]:
    """Add ``duplicate_of`` ("" or the incident_id of the record kept) when two linkable evidence classes
    are loaded (no column otherwise), and return what was linked. ``ids``: the incident ids of a table's
    rows (``Ledger.incident_ids``), for a table without an ``incident_id`` column. Returns
    ``{"linked": n, "distance_m", "days", "precision_factor", "pairs", "by_pair": {"a+b": n}, "rule"}``."""
    opts = linkage_options(cfg)
    out = incidents.copy(deep=False)     # copy-on-write: only duplicate_of is written
    present = text_values(out["evidence"])
    if not opts["enabled"] or not any(ea in present and eb in present for ea, eb in opts["pairs"]):
        # Nothing that could be linked (e.g. police data alone): no column, the common schema unchanged.
        return out, {"linked": 0, "distance_m": opts["distance_m"], "days": opts["days"],
                     "precision_factor": opts["precision_factor"], "pairs": [list(p) for p in opts["pairs"]],
                     "by_pair": {}, "rule": "not applied: no pair of evidence classes to link is loaded"
                     if opts["enabled"] else "disabled in the config"}
    out["duplicate_of"] = ""
    info = {"linked": 0, "distance_m": opts["distance_m"], "days": opts["days"],
            "precision_factor": opts["precision_factor"], "pairs": [list(p) for p in opts["pairs"]],
            "by_pair": {}, "rule": "same or parent category; time windows overlap (windows finer than a month "
            "widened by `days`); distance <= distance_m + precision_factor * sqrt(p1^2 + p2^2); one link per "
            "record, closest first; the more precise location is kept (tie: the first class of the pair)"}
    used = np.zeros(len(out), dtype=bool)
    pos = np.arange(len(out))
    links: list[tuple[int, int]] = []        # (the record linked, the record kept), by position
    for ea, eb in opts["pairs"]:
        ma = (out["evidence"] == ea).to_numpy() & ~used
        mb = (out["evidence"] == eb).to_numpy() & ~used
        a, b = out.loc[ma, PAIR_COLUMNS], out.loc[mb, PAIR_COLUMNS]
        pairs = _candidate_pairs(a, b, opts).sort_values(["d", "ia", "ib"], kind="stable")
        pa, pb = pos[ma], pos[mb]
        n = 0
        taken_a, taken_b = set(), set()
        for ia, ib in zip(pairs["ia"].to_numpy(), pairs["ib"].to_numpy()):
            if ia in taken_a or ib in taken_b:
                continue
            taken_a.add(ia)
            taken_b.add(ib)
            ra, rb = pa[ia], pb[ib]
            prec_a = out["location_precision_m"].iat[ra]
            prec_b = out["location_precision_m"].iat[rb]
            keep, drop = (rb, ra) if prec_b < prec_a else (ra, rb)
            links.append((drop, keep))
            used[ra] = used[rb] = True
            n += 1
        info["by_pair"][f"{ea}+{eb}"] = n
        info["linked"] += n
    if links:
        drop, keep = (np.array(v, dtype=np.int64) for v in zip(*links))
        kept = out.iloc[keep]
        named = kept["incident_id"] if "incident_id" in kept else ids(kept)
        column = out["duplicate_of"].to_numpy(dtype=object, copy=True)
        column[drop] = named.to_numpy(dtype=object)
        out["duplicate_of"] = pd.Series(column, index=out.index, dtype=out["duplicate_of"].dtype)
    return out, info
