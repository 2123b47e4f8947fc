"""Sensitive key-building layers (children's homes): what each tier may show of them.

A layer is sensitive when its [[key_buildings]] entry says ``sensitive = true``
or its schema declares it (``data_schemas/childrens_homes.json``); the
buildings table then carries ``sensitive`` (bool) and ``sensitive_display``.

- Public tier: no row of a sensitive layer, in any form (``public_buildings``);
  the public map and briefing draw no building at all, and regions there are
  named by streets only.
- Partner tier, ``sensitive_display = "exact"``: shown like any building.
- Partner tier, ``sensitive_display = "cell"`` (the default): only "a sensitive
  site in this cell" (``partner_buildings``): no name, no own id, the location
  moved to the centre of the grid cell holding it, and never a region's name
  (``names_places``). Its profile is measured around that cell centre
  (``at_cell_centres``, before the profiles), not around the true location:
  counts within 100, 250 and 500 m of the true place, set against police.uk's
  open records, gave it back to within 0-20 m for five of the example's six
  homes (a disclosure audit). The partnership still sees the risk around the
  site's cell, which is what it acts on.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

CELL_LABEL = "A sensitive site in this cell"
# Columns that could name or place a building; a cell-display row keeps none of them as loaded.
_IDENTIFYING = ("subtype", "postcode", "address", "area_code")


def sensitive_mask(table: pd.DataFrame | None) -> np.ndarray:
    """True for the rows of sensitive layers (all False when the table has no ``sensitive`` column)."""
    if table is None or "sensitive" not in table:
        return np.zeros(0 if table is None else len(table), dtype=bool)
    return table["sensitive"].fillna(False).astype(bool).to_numpy()


def cell_only(table: pd.DataFrame | None) -> np.ndarray:
    """True for the rows shown only as "a sensitive site in this cell" in the partner tier."""
    mask = sensitive_mask(table)
    if not mask.any():
        return mask
    return mask & (table["sensitive_display"].astype(str).to_numpy() != "exact")


def names_places(table: pd.DataFrame | None) -> np.ndarray:
    """True for the buildings whose names may name a place (a region, a label): all but cell-only ones."""
    return ~cell_only(table) if table is not None else np.zeros(0, dtype=bool)


def at_cell_centres(table: pd.DataFrame | None, grid) -> pd.DataFrame | None:
    """``table`` with each cell-display sensitive row (``cell_only``) placed at the centre of the grid cell
    holding it, so that nothing measured around it (its profile) can place it closer than its cell."""
    if table is None or not len(table) or grid is None:
        return table
    idx = np.flatnonzero(cell_only(table))
    if not len(idx):
        return table
    out = table.copy()
    cell = grid.assign(out["x"].to_numpy(float)[idx], out["y"].to_numpy(float)[idx])
    cx, cy = grid.centres()
    inside = cell >= 0
    out.iloc[idx[inside], out.columns.get_loc("x")] = cx[cell[inside]]
    out.iloc[idx[inside], out.columns.get_loc("y")] = cy[cell[inside]]
    return out


def partner_buildings(table: pd.DataFrame | None, grid) -> pd.DataFrame | None:
    """The buildings table as the partner tier shows it: cell-display sensitive rows become
    "A sensitive site in this cell (<type>)" at the centre of their grid cell, with ``cell_id`` and an
    id made of the layer and the cell (``children_homes:sensitive-C12_30``); other rows unchanged."""
    if table is None or not len(table):
        return table
    hide = cell_only(table)
    if not hide.any():
        return table
    out = at_cell_centres(table, grid)      # a copy, the sites at their cells' centres
    idx = np.nonzero(hide)[0]
    cell = grid.assign(out["x"].to_numpy(float)[idx], out["y"].to_numpy(float)[idx])
    rows, cols = grid.rows_cols
    prefix = "C" if grid.shape == "square" else "H"
    if "cell_id" not in out:
        out["cell_id"] = ""
    out["cell_id"] = out["cell_id"].astype(object)
    out["cell_size_m"] = np.nan
    seen: dict[str, int] = {}
    for k, c in zip(idx, cell):
        cid = f"{prefix}{rows[c]}_{cols[c]}" if c >= 0 else "outside"
        seen[cid] = seen.get(cid, 0) + 1
        layer = str(out.at[out.index[k], "building_id"]).split(":", 1)[0]
        suffix = "" if seen[cid] == 1 else f"-{seen[cid]}"
        out.at[out.index[k], "building_id"] = f"{layer}:sensitive-{cid}{suffix}"
        out.at[out.index[k], "name"] = f"{CELL_LABEL} ({str(out.at[out.index[k], 'type']).replace('_', ' ')})"
        out.at[out.index[k], "cell_id"] = cid
        out.at[out.index[k], "cell_size_m"] = float(grid.cell)
        for col in _IDENTIFYING:
            if col in out:
                out.at[out.index[k], col] = ""
    return out


def public_buildings(table: pd.DataFrame | None) -> pd.DataFrame | None:
    """The buildings a public view may carry: every row of a sensitive layer removed."""
    if table is None or not len(table):
        return table
    return table[~sensitive_mask(table)].reset_index(drop=True)
