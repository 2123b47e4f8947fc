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


def merge_duplicates(incidents: pd.DataFrame, ledger: Ledger) -> pd.DataFrame:
    """Keep the first of each ``source_ref``; record the rest as rejects."""
    dup = duplicates(incidents, ledger)
    return incidents if dup is None else incidents[~dup]


def duplicates(incidents: pd.DataFrame, ledger: Ledger) -> np.ndarray | None:
    """True for each record merged into an earlier one (recorded as a reject); None when there is none.

    Reads ``source_id``, ``_file``, ``_row``, ``_dedupe`` and ``incident_id`` only: at millions of
    rows the loader finds them on those columns and filters each file's table before putting the
    files together, instead of copying the whole table once more."""
    if "_dedupe" not in incidents or not len(incidents):
        return None
    ref = incidents["_dedupe"].fillna("")
    # On codes, not on a Python string per record (a gigabyte at 5 M rows): each reference's
    # first record is the one kept, the later ones point to it.
    codes, _ = pd.factorize(ref)
    _, first = np.unique(codes, return_index=True)
    dup = (ref != "").to_numpy() & (first[codes] != np.arange(len(codes)))
    if not dup.any():
        return None
    gone = incidents.loc[dup, ["source_id", "_file", "_row"]]
    gone["kept"] = incidents["incident_id"].iloc[first[codes[dup]]].to_numpy()
    for (sid, path), grp in gone.groupby(["source_id", "_file"], sort=False):
        ledger.reject(sid, path, grp["_row"].to_numpy(), ("duplicate of " + grp["kept"]).to_numpy(), "source_ref")
    return dup
