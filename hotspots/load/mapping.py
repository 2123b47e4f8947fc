"""Apply a declarative source schema (``data_schemas/*.json``) to a raw table.

Input: the string table of ``readers.read_table`` (with ``_row``). Output: a
DataFrame with the common schema's fields plus ``_row``, and a DataFrame of
rejects (``_row``, ``reason``, ``columns``). Every row ends up in exactly one
of the two. Filtering by the config (period, categories) happens later, in
``hotspots.load``; here a row is only rejected when it cannot be read.

Schema entries used here:
- ``fields``: common field -> ``{"column": name or [names, first non-empty]}``
  optionally with ``"map": <taxonomy map>``, or ``{"value": constant}``.
- ``date``: ``{"column", "format" (strftime or "ISO8601"), "precision"}``.
- ``location``: ``{"kind": "lonlat" | "en", "x", "y", "crs", "precision", "precision_m"}``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from pyproj import Transformer

from hotspots.errors import UserError
from hotspots.schema import CATEGORY_MAPS, TAXONOMY

BNG = "EPSG:27700"
# A generous box around Great Britain in BNG metres: beyond it a point is a
# stray (a typo, a swapped or zeroed coordinate), never a reason to grow the grid.
GB_BOX = (-10_000.0, -10_000.0, 700_000.0, 1_250_000.0)

_TRANSFORMERS: dict[str, Transformer] = {}


def to_bng(x: np.ndarray, y: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    """Reproject coordinates to British National Grid (pyproj without the OSTN15 grid: ~2 m off)."""
    if crs.upper() in (BNG, "EPSG:27700"):
        return x, y
    if crs not in _TRANSFORMERS:
        _TRANSFORMERS[crs] = Transformer.from_crs(crs, BNG, always_xy=True)
    return _TRANSFORMERS[crs].transform(x, y)


def _column(raw: pd.DataFrame, names, path: str) -> pd.Series:
    names = [names] if isinstance(names, str) else list(names)
    out = pd.Series("", index=raw.index, dtype=str)
    for name in reversed(names):
        if name not in raw.columns:
            continue
        col = raw[name]
        out = col.where(col != "", out)
    return out


def check_columns(raw: pd.DataFrame, schema: dict, path: str) -> None:
    """Raise a UserError naming the first required column the file lacks."""
    for col in schema.get("required_columns", []):
        if col not in raw.columns and (len(raw) or len(raw.columns) > 1):
            have = ", ".join(c for c in raw.columns if c != "_row")
            raise UserError(f"the column '{col}' required by schema '{schema['name']}' is missing "
                            f"(the file has: {have}).", file=path, column=col)


def parse_dates(text: pd.Series, spec: dict) -> tuple[pd.Series, pd.Series, str]:
    """Parse a date column; returns (occurred_from, occurred_to, precision). NaT where unparseable."""
    fmt = spec.get("format", "ISO8601")
    precision = spec.get("precision", "day")
    if fmt == "ISO8601":
        ts = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
        # police.uk stamps UTC; profiles by hour need local (UK) clock time.
        ts = ts.dt.tz_convert("Europe/London").dt.tz_localize(None)
    else:
        ts = pd.to_datetime(text, format=fmt, errors="coerce")
    ts = ts.astype("datetime64[ns]")
    if precision == "month":
        start = ts.dt.to_period("M").dt.start_time
        end = start + pd.offsets.MonthBegin(1) - pd.Timedelta(seconds=1)
    elif precision == "day":
        start = ts.dt.normalize()
        end = start + pd.Timedelta(days=1) - pd.Timedelta(seconds=1)
    else:
        start = end = ts
    return start.astype("datetime64[ns]"), end.astype("datetime64[ns]"), precision


def map_rows(raw: pd.DataFrame, schema: dict, source_id: str, evidence: str,
             path: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Map one file's raw rows onto the common schema; see the module docstring."""
    check_columns(raw, schema, path)
    out = pd.DataFrame({"_row": raw["_row"].to_numpy()}, index=raw.index)
    reason = pd.Series("", index=raw.index, dtype=str)
    columns = pd.Series("", index=raw.index, dtype=str)

    def reject(mask: pd.Series, why, cols: str) -> None:
        new = mask & (reason == "")
        if isinstance(why, pd.Series):
            reason[new] = why[new]
        else:
            reason[new] = why
        columns[new] = cols

    for name, spec in schema.get("fields", {}).items():
        if "value" in spec:
            out[name] = spec["value"]
            continue
        col = _column(raw, spec["column"], path)
        if "map" in spec:
            table = CATEGORY_MAPS.get(spec["map"]) or schema.get("maps", {}).get(spec["map"])
            if table is None:
                raise UserError(f"the schema names an unknown category map '{spec['map']}'.",
                                file=schema.get("name"))
            mapped = col.map(table)
            colname = spec["column"] if isinstance(spec["column"], str) else "/".join(spec["column"])
            reject(col == "", "no category", colname)
            reject(mapped.isna(), "unknown category '" + col + "'", colname)
            col = mapped.fillna("")
        out[name] = col
    if "category" in out:
        reject(~out["category"].isin(list(TAXONOMY)), "unknown category '" + out["category"] + "'",
               schema.get("fields", {}).get("category", {}).get("column", "category")
               if isinstance(schema.get("fields", {}).get("category", {}).get("column", ""), str) else "category")

    dspec = schema["date"]
    dtext = _column(raw, dspec["column"], path)
    start, end, precision = parse_dates(dtext, dspec)
    reject(dtext == "", "no date", dspec["column"])
    reject(start.isna(), "unparseable date '" + dtext + "'", dspec["column"])
    out["occurred_from"], out["occurred_to"], out["date_precision"] = start, end, precision

    loc = schema["location"]
    xs, ys = _column(raw, loc["x"], path), _column(raw, loc["y"], path)
    cols = f"{loc['x']},{loc['y']}"
    xn = pd.to_numeric(xs, errors="coerce")
    yn = pd.to_numeric(ys, errors="coerce")
    reject((xs == "") | (ys == ""), "no coordinates", cols)
    reject(xn.isna() | yn.isna(), "unparseable coordinates", cols)
    crs = loc.get("crs", "EPSG:4326" if loc["kind"] == "lonlat" else BNG)
    # A zeroed location: (0, 0) in lon/lat (longitude 0 alone is the Greenwich meridian,
    # a real place in London); either coordinate 0 in eastings/northings.
    zero = ((xn == 0) & (yn == 0)) if loc["kind"] == "lonlat" else ((xn == 0) | (yn == 0))
    reject(zero, "zero coordinates", cols)
    if loc["kind"] == "lonlat":
        reject((xn.abs() > 180) | (yn.abs() > 90), "coordinates out of range", cols)
    good = reason == ""
    x = np.full(len(raw), np.nan)
    y = np.full(len(raw), np.nan)
    if good.any():
        gx, gy = to_bng(xn[good].to_numpy(float), yn[good].to_numpy(float), crs)
        x[good.to_numpy()] = gx
        y[good.to_numpy()] = gy
    out["x"], out["y"] = x, y
    x0, y0, x1, y1 = GB_BOX
    reject(pd.Series(~((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)), index=raw.index),
           "outside Great Britain", cols)
    out["location_precision"] = loc.get("precision", "exact")
    out["location_precision_m"] = float(loc.get("precision_m", 0.0))
    out["evidence"] = evidence
    out["source_id"] = source_id
    if "category" in out:
        sev = out["category"].map(lambda c: TAXONOMY.get(c, {}).get("severity", 1))
        out["severity"] = sev.astype("Int64")

    bad = reason != ""
    rejects = pd.DataFrame({"_row": raw.loc[bad, "_row"].to_numpy(), "reason": reason[bad].to_numpy(),
                            "columns": columns[bad].to_numpy()})
    return out[~bad].copy(), rejects
