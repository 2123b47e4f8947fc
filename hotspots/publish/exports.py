"""Write the GIS and table outputs: GeoPackage, GeoJSON, CSV.

Input: the ``Result`` layers of the pipeline. Output files, as the brief's
table: ``hotspots.gpkg`` (layers cells, regions, clusters, buildings,
boundaries in EPSG:27700), ``cells.geojson`` / ``regions.geojson`` /
``clusters.geojson`` (EPSG:4326), and every CSV through ``write_csv``
(``areas.csv``, ``buildings.csv``, ``rejects.csv``, ...): text cells that a
spreadsheet would run as a formula are neutralised.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

# OWASP "CSV injection": a cell starting with one of these is a formula to Excel, LibreOffice and
# Google Sheets (``=HYPERLINK(...)``, ``@SUM(...)``, ``+cmd|...``); tab and carriage return hide one.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def _gis_ready(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Columns typed for GIS readers: booleans as integers 0/1 would lose meaning, so keep bool;
    object columns as text."""
    out = gdf.copy()
    for c in out.columns:
        if c != out.geometry.name and out[c].dtype == object:
            out[c] = out[c].astype(str)
    return out


def write_layers(layers: dict[str, gpd.GeoDataFrame], out: Path, web: tuple[str, ...]) -> list[Path]:
    """Write each layer to ``hotspots.gpkg`` and the ``web`` ones also as GeoJSON in EPSG:4326."""
    written = []
    gpkg = out / "hotspots.gpkg"
    if gpkg.exists():
        gpkg.unlink()
    for name, gdf in layers.items():
        gdf = _gis_ready(gdf)
        # Through Arrow: the same files (GeoJSON byte for byte, the same GeoPackage fields and values), and
        # a small GeoPackage layer in ~0.01 s instead of ~0.1 s (the 10 k run's tables: 0.84 s -> 0.67 s).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            gdf.to_file(gpkg, layer=name, driver="GPKG", use_arrow=True)
        if name in web:
            path = out / f"{name}.geojson"
            gdf.to_crs("EPSG:4326").to_file(path, driver="GeoJSON", use_arrow=True)
            written.append(path)
    written.insert(0, gpkg)
    return written


def _formula_like(value) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_TRIGGERS)


def _formula_cells(s: pd.Series) -> np.ndarray | None:
    """Which cells of ``s`` are formula-like text (None: a numeric, boolean or date column).
    Categories are tested once each and text columns by pandas' own ``startswith`` (at 1 M
    incidents the CSVs' 158 k text cells were 0.43 s one by one); other columns value by value."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = s.cat.categories
        hit = np.append(np.fromiter((_formula_like(v) for v in cats), bool, len(cats)), False)
        return hit[s.cat.codes.to_numpy()]          # code -1 (missing) reads the False appended
    if isinstance(s.dtype, pd.StringDtype):
        return s.str.startswith(FORMULA_TRIGGERS).fillna(False).to_numpy(bool)
    if pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype):
        return np.fromiter((_formula_like(v) for v in s.to_numpy(dtype=object)), bool, len(s))
    return None


def neutralise_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every text cell and column name that starts with ``= + - @``, tab or carriage
    return prefixed with ``'`` (OWASP's rule), so that a spreadsheet shows it instead of running it.
    Numeric, boolean and date columns are left as they are: -1.5 in a float column stays a number.
    Returns ``df`` itself when nothing needs changing (the caller's frame is never modified)."""
    out = df
    for i in range(df.shape[1]):
        s = df.iloc[:, i]
        hit = _formula_cells(s)
        if hit is not None and hit.any():
            values = s.to_numpy(dtype=object).copy()
            values[hit] = ["'" + v for v in values[hit]]
            if out is df:
                out = df.copy()
            out.isetitem(i, pd.Series(values, index=df.index, dtype=object))
    if any(_formula_like(c) for c in df.columns):
        out = out.set_axis(["'" + c if _formula_like(c) else c for c in df.columns], axis=1)
    return out


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    """Write ``df`` as CSV (no index) with formula-like text neutralised; every CSV output goes here.

    Lines end with CRLF (RFC 4180, as Excel writes): the csv writer then quotes a text cell holding a
    carriage return, which with bare LF endings it leaves unquoted, splitting the row in two."""
    df = neutralise_formulas(df)
    text = _text_csv(df)
    if text is None:
        df.to_csv(path, index=False, lineterminator="\r\n")
    else:
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    return path


def _quoted(cells):
    """Arrow text cells quoted as Python's csv writer quotes them for CRLF lines (``QUOTE_MINIMAL``): a
    cell holding a comma, a double quote, a carriage return or a line feed is put in double quotes, its
    double quotes doubled; the others are left as they are."""
    import pyarrow.compute as pc
    need = pc.match_substring_regex(cells, '[",\r\n]')
    return pc.if_else(need, pc.binary_join_element_wise('"', pc.replace_substring(cells, '"', '""'), '"', ""), cells)


def _text_csv(df: pd.DataFrame) -> str | None:
    """The CSV pandas' ``to_csv(index=False, lineterminator="\\r\\n")`` writes of a table whose columns are all
    text or integers, byte for byte, made by Arrow's string functions column by column (rejects.csv at
    10 M incidents, 420,000 rows: 2.4 s -> 0.4 s); None for any other table (floats, dates, booleans:
    pandas formats them), or one of a single column (the csv writer quotes its empty cells)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    if df.shape[1] < 2 or not all(isinstance(c, str) for c in df.columns):
        return None
    columns = []
    for i in range(df.shape[1]):
        s = df.iloc[:, i]
        if pd.api.types.is_integer_dtype(s.dtype) and not isinstance(s.dtype, pd.CategoricalDtype):
            cells = pa.array(s, from_pandas=True).cast(pa.string())
        elif (isinstance(s.dtype, (pd.CategoricalDtype, pd.StringDtype)) or pd.api.types.is_object_dtype(s.dtype)):
            values = s.cat.categories if isinstance(s.dtype, pd.CategoricalDtype) else s
            if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
                return None         # numbers, bytes or mixed objects: pandas writes each as it writes it
            try:
                cells = pa.array(s.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeError):
                return None         # not every cell is text (or not every text UTF-8): pandas writes it
        else:
            return None
        columns.append(_quoted(pc.fill_null(cells, "")))
    header = _quoted(pa.array(list(df.columns), type=pa.string())).to_pylist()
    lines = [",".join(header)]
    if len(df):
        lines += pc.binary_join_element_wise(*columns, ",").to_pylist()
    return "\r\n".join(lines) + "\r\n"
