"""Counts of incidents per grid cell: ``n``, ``n_<evidence>``, ``role_<role>_<evidence>`` and ``weighted``.

Input: incidents with ``x``, ``y``, ``evidence``, ``role``, ``weight`` and their
analysed cell number ``cell`` (from ``hotspots.grid``). Output: a DataFrame
indexed by cell number 0..n-1 with

- ``n``: incidents that count as risk (weight > 0; ``hotspots.weight.risk``);
- ``n_<evidence>``: per evidence class present, its records that concern no
  person (incidents and places), context layers included;
- ``role_<role>_<evidence>``: per evidence class and person role present
  (victim, suspect, witness, unknown), the records in that role. Roles are
  never summed into one count (a victim and a suspect of one assault are two
  records of one incident, and mean different things);
- ``weighted``: the sum of weights.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from hotspots.frames import small_codes

COUNT_PREFIXES = ("n_", "role_")


def count_columns(frame: pd.DataFrame) -> list[str]:
    """The per-evidence and per-role count columns of a cells or regions table (``n`` excluded)."""
    return [c for c in frame.columns if str(c).startswith(COUNT_PREFIXES)]


def hotspot_count(incidents: pd.DataFrame, n_cells: int) -> pd.DataFrame:
    """Per-cell counts; see the module docstring for the columns."""
    cell = incidents["cell"].to_numpy(np.int64)
    w = incidents["weight"].to_numpy(float)
    # Codes of role and evidence, not a Python string per incident (hundreds of MB at 10 M), and a column
    # of categories' own codes, not 8 bytes a row made of them (0.5 GB at 30 M).
    role_code, roles = (small_codes(incidents["role"]) if "role" in incidents
                        else (np.zeros(len(incidents), dtype=np.int8), pd.Index([""], dtype=object)))
    ev_code, ev_names = small_codes(incidents["evidence"])
    classes = ev_names[np.bincount(ev_code, minlength=len(ev_names)) > 0]      # those present
    no_role = roles.get_loc("") if "" in roles else -1
    out = pd.DataFrame(index=pd.RangeIndex(n_cells, name="cell"))
    out["n"] = np.bincount(cell[w > 0], minlength=n_cells)
    for ev in sorted(classes):
        mask = ev_code == ev_names.get_loc(ev)
        out[f"n_{ev}"] = np.bincount(cell[mask & (role_code == no_role)], minlength=n_cells)
        for r in sorted(set(roles[np.unique(role_code[mask])]) - {""}):
            out[f"role_{r}_{ev}"] = np.bincount(cell[mask & (role_code == roles.get_loc(r))], minlength=n_cells)
    out["weighted"] = np.bincount(cell, weights=w, minlength=n_cells)
    return out
