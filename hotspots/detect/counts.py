"""Counts of incidents per grid cell: ``n``, ``n_<evidence>`` and ``weighted``.

Input: incidents with ``x``, ``y``, ``evidence``, ``weight`` and their analysed
cell number ``cell`` (from ``hotspots.grid``). Output: a DataFrame indexed by
cell number 0..n-1 with ``n`` (incidents that count as risk, i.e. weight > 0),
one ``n_<evidence>`` per evidence class present (every incident, context
layers included), and ``weighted`` (sum of weights).
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def hotspot_count(incidents: pd.DataFrame, n_cells: int) -> pd.DataFrame:
    """Per-cell counts; see the module docstring for the columns."""
    cell = incidents["cell"].to_numpy(np.int64)
    w = incidents["weight"].to_numpy(float)
    out = pd.DataFrame(index=pd.RangeIndex(n_cells, name="cell"))
    out["n"] = np.bincount(cell[w > 0], minlength=n_cells)
    for ev in sorted(incidents["evidence"].unique()):
        mask = (incidents["evidence"] == ev).to_numpy()
        out[f"n_{ev}"] = np.bincount(cell[mask], minlength=n_cells)
    out["weighted"] = np.bincount(cell, weights=w, minlength=n_cells)
    return out
