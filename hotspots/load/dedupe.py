"""Merge records of the same incident that share a source reference.

police.uk publishes the same crime more than once: adjacent ward queries of
the API overlap, and a crime near a force boundary appears in both forces'
data (the API's ``persistent_id`` equals the street CSV's ``Crime ID``). The
first record (in config order, then file order) is kept, within the
schema's dedupe scope (references of unrelated formats never collide); the others become
rejects "duplicate of <incident_id>". Records without a reference are never
merged here.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from hotspots.load.ledger import Ledger

# Each record's scoped reference as two 64-bit hashes (``dedupe_keys``); 0 and 0: no reference.
DEDUPE_KEYS = ("_dedupe_a", "_dedupe_b")
_HASH_KEYS = ("hotspots-dedupe1", "hotspots-dedupe2")     # pandas' hash keys are 16 characters


def dedupe_keys(refs: pd.Series | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The scoped references ``refs`` ("" or None: none) as two independent 64-bit hashes: 16 bytes
    a record instead of a 70-character string in every file's table and in the keys put together
    (5 GB at 30 M records). Two different references share both hashes with probability about
    n^2 / 2^129 (1e-24 at 30 M records)."""
    if refs is None:
        return np.zeros(n, np.uint64), np.zeros(n, np.uint64)
    values = refs.fillna("").astype(str).to_numpy(object)
    none = values == ""
    out = []
    for key in _HASH_KEYS:
        # Not categorised first: references are nearly all distinct, and the same hashes come 13x faster
        # without pandas' factorising (a month of the Met's 255,000 records: 0.75 s -> 0.06 s a key).
        h = pd.util.hash_array(values, hash_key=key, categorize=False)
        h[none] = 0
        out.append(h)
    return out[0], out[1]


def merge_duplicates(incidents: pd.DataFrame, ledger: Ledger) -> pd.DataFrame:
    """Keep the first of each ``source_ref``; record the rest as rejects."""
    dup = duplicates(incidents, ledger)
    return incidents if dup is None else incidents[~dup]


def duplicates(incidents: pd.DataFrame, ledger: Ledger) -> np.ndarray | None:
    """True for each record merged into an earlier one (recorded as a reject); None when there is none.

    Reads ``source_id``, ``_file``, ``_row``, the ``DEDUPE_KEYS`` and ``incident_id`` (made by
    ``Ledger.incident_ids`` for the records kept when there is no such column) only: at millions
    of rows the loader finds them on those columns and filters each file's table before putting the
    files together, instead of copying the whole table once more."""
    if DEDUPE_KEYS[0] not in incidents or not len(incidents):
        return None
    a, b = (incidents[k].to_numpy(np.uint64) for k in DEDUPE_KEYS)
    has = np.flatnonzero((a != 0) | (b != 0))
    if not len(has):
        return None
    # Each reference's first record is the one kept, the later ones point to it: sorted by reference
    # (stably: a reference's records stay in their order), each run's first is the one kept. Sorted by
    # the first hash only (9 M records: 1.9 s, against 10 s for pandas' groupby of both), by both only
    # if two references share the first (about 1 in 450,000 runs of 9 M records).
    ka, kb = a[has], b[has]
    order = np.argsort(ka, kind="stable")
    sa, sb = ka[order], kb[order]
    if ((sa[1:] == sa[:-1]) & (sb[1:] != sb[:-1])).any():
        order = np.lexsort((kb, ka))
        sa, sb = ka[order], kb[order]
    run_start = np.ones(len(order), dtype=bool)
    run_start[1:] = (sa[1:] != sa[:-1]) | (sb[1:] != sb[:-1])
    kept = np.empty(len(order), dtype=np.int64)
    kept[order] = order[np.maximum.accumulate(np.where(run_start, np.arange(len(order)), 0))]
    later = kept != np.arange(len(order))
    if not later.any():
        return None
    dup = np.zeros(len(incidents), dtype=bool)
    dup[has[later]] = True
    gone = incidents.loc[dup, ["source_id", "_file", "_row"]]
    target = incidents.iloc[has[kept[later]]]
    gone["kept"] = (target["incident_id"] if "incident_id" in target else ledger.incident_ids(target)).to_numpy()
    for (sid, path), grp in gone.groupby(["source_id", "_file"], sort=False):
        ledger.reject(sid, path, grp["_row"].to_numpy(), ("duplicate of " + grp["kept"]).to_numpy(), "source_ref")
    return dup
