"""Read one partner file into a table of strings, whatever its format.

Every reader returns a DataFrame whose values are strings (empty for blank
cells) and an integer column ``_row``: the 1-based data row of the file (the
first row after the header is row 1; for JSON, the position in the array).
Format quirks are handled here and nowhere else.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from hotspots.errors import UserError


def _finish(df: pd.DataFrame, header: list[str] | None = None) -> pd.DataFrame:
    """Strings, stripped, with ``_row``; ``attrs["columns"]`` keeps the file's whole header."""
    header = list(df.columns) if header is None else header
    df = df.astype(object).where(df.notna(), "").astype(str)
    # Blank cells holding only spaces (a spreadsheet habit) count as blank.
    df = df.apply(lambda s: s.str.strip())
    df.insert(0, "_row", range(1, len(df) + 1))
    df = df.reset_index(drop=True)
    df.attrs["columns"] = header
    return df


def pick(raw: pd.DataFrame, names) -> pd.Series:
    """A column of a raw table, or the first non-empty of several, as stripped strings
    ("" where absent). ``names`` is a column name, a list of names, or None."""
    names = [] if not names else [names] if isinstance(names, str) else list(names)
    out = pd.Series("", index=raw.index, dtype=str)
    for name in reversed(names):
        if name in raw.columns:
            col = raw[name].fillna("").astype(str).str.strip()
            out = col.where(col != "", out)
    return out


def _header(spec: dict) -> int:
    """0-based header row: ``header`` (0-based, as pandas) or ``header_row`` (1-based, as a spreadsheet shows it)."""
    if "header_row" in spec:
        return int(spec["header_row"]) - 1
    return int(spec.get("header", 0))


def read_csv(path: Path, spec: dict, keep: set[str] | None = None) -> pd.DataFrame:
    """A CSV file; with ``keep``, only those columns are parsed and cleaned (the rest of a
    police.uk file is never used: reading it cost half the load time at a million rows)."""
    header = _header(spec)
    names = spec.get("names")
    seen: list[str] = []

    def wanted(column: str) -> bool:
        seen.append(column)
        return keep is None or column in keep
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=spec.get("encoding", "utf-8-sig"),
                         usecols=wanted if keep is not None and not names else None,
                         sep=spec.get("delimiter", ","), header=None if names else header, names=names,
                         # pandas' C parser takes only a one-byte separator (not `¬`, two bytes in UTF-8).
                         engine="python" if len(spec.get("delimiter", ",").encode("utf-8")) > 1 else "c",
                         skipinitialspace=False)
    except UnicodeDecodeError as exc:
        raise UserError(f"the file is not {spec.get('encoding', 'utf-8')} text ({exc.reason} at byte {exc.start}).",
                        file=str(path), hint="Set the schema's reader encoding (e.g. cp1252).") from None
    except pd.errors.ParserError as exc:
        raise UserError(f"the CSV cannot be parsed ({exc}).", file=str(path)) from None
    except pd.errors.EmptyDataError:
        raise UserError("the file is empty.", file=str(path)) from None
    return _finish(df, seen if keep is not None and not names else None)


def read_json(path: Path, spec: dict) -> pd.DataFrame:
    try:
        data = json.loads(path.read_text(encoding=spec.get("encoding", "utf-8")))
    except json.JSONDecodeError as exc:
        raise UserError(f"the JSON cannot be parsed ({exc.msg} at line {exc.lineno} column {exc.colno}).",
                        file=str(path)) from None
    record_path = spec.get("records")
    if record_path:
        for key in record_path.split("."):
            data = data.get(key, []) if isinstance(data, dict) else []
    if not isinstance(data, list):
        raise UserError("the JSON is not an array of records.", file=str(path))
    if not data:
        return _finish(pd.DataFrame())
    return _finish(pd.json_normalize(data))


def read_excel(path: Path, spec: dict) -> pd.DataFrame:
    try:
        df = pd.read_excel(path, sheet_name=spec.get("sheet", 0), header=_header(spec), dtype=str)
    except (ValueError, OSError) as exc:
        raise UserError(f"the Excel file cannot be read ({exc}).", file=str(path)) from None
    return _finish(df)


def read_vector(path: Path, spec: dict) -> pd.DataFrame:
    """GeoJSON / GeoPackage / shapefile of points: attributes plus ``_x``/``_y`` in the layer's CRS."""
    import pyogrio
    try:
        gdf = pyogrio.read_dataframe(path, layer=spec.get("layer"))
    except Exception as exc:  # pyogrio raises several error types for unreadable files
        raise UserError(f"the vector file cannot be read ({exc}).", file=str(path)) from None
    geom = gdf.geometry
    attrs = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    ok = geom.notna() & ~geom.is_empty
    attrs["_x"] = ""
    attrs["_y"] = ""
    pts = geom[ok].representative_point()
    attrs.loc[ok, "_x"] = pts.x.map(repr)
    attrs.loc[ok, "_y"] = pts.y.map(repr)
    attrs["_crs"] = gdf.crs.to_string() if gdf.crs else ""
    return _finish(attrs)


READERS = {"csv": read_csv, "json": read_json, "excel": read_excel, "vector": read_vector}


# The format of a file read with ``"format": "auto"`` (partner_generic), by its extension.
AUTO_FORMATS = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".xlsx": "excel", ".xlsm": "excel", ".xls": "excel",
                ".geojson": "vector", ".gpkg": "vector", ".shp": "vector", ".json": "json"}


def read_table(path: Path, reader: dict, keep: set[str] | None = None) -> pd.DataFrame:
    """Read ``path`` with the schema's ``reader`` entry (``format`` plus options); ``keep``
    limits a CSV to the columns a schema names (``schema_columns``).

    ``"format": "auto"`` picks the reader from the file's extension (``AUTO_FORMATS``).
    """
    fmt = reader.get("format", "csv")
    if fmt == "auto":
        fmt = AUTO_FORMATS.get(path.suffix.lower(), "")
        if not fmt:
            raise UserError(f"cannot tell the format of '{path.name}' from its extension "
                            f"(known: {', '.join(AUTO_FORMATS)}).", file=str(path),
                            hint="Set the schema's reader format (csv, excel, json or vector).")
    if fmt not in READERS:
        raise UserError(f"unknown reader format '{fmt}' (have {', '.join(READERS)}).", file=str(path))
    if not path.is_file():
        raise UserError("the file does not exist.", file=str(path))
    if fmt == "csv":
        return read_csv(path, reader, keep)
    return READERS[fmt](path, reader)


def schema_columns(schema: dict) -> set[str]:
    """Every string a schema mentions: a superset of the input columns it reads."""
    out: set[str] = set()

    def walk(value) -> None:
        if isinstance(value, str):
            out.add(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)
    walk({k: v for k, v in schema.items() if k not in ("notes", "title", "description", "reference")})
    return out
