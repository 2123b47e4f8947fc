"""Load key buildings: every [[key_buildings]] layer into one table of points in British National Grid.

``load_buildings(cfg, ledger)`` reads each layer's file(s) with
``readers.read_table``, applies its key-building schema from ``data_schemas/``
(``"kind": "buildings"``), reprojects to EPSG:27700 and returns

- a GeoDataFrame, one row per building, columns ``building_id`` (layer id +
  ":" + the source's own id, or its 1-based row when the source has none),
  ``name``, ``type`` (the config's ``type`` if given, else the schema's type
  column or constant), ``subtype``, ``layer``, ``x``, ``y``, ``radius_m`` (a
  tuple of the layer's radii in metres), ``location_from`` (``en``, ``lonlat``,
  ``geometry`` or ``postcode``), any ``attributes`` the schema declares, and
  ``sensitive`` (the layer's ``sensitive`` key, else its schema's default:
  children's homes are sensitive), ``sensitive_display`` (``exact`` or
  ``cell`` for a sensitive layer, empty otherwise) and ``geometry`` (points);
- a per-file accounting table: ``source_id`` (the layer id), ``path``,
  ``sha256``, ``rows_read``, ``rows_loaded``, ``rows_filtered``,
  ``rows_rejected`` (read = loaded + filtered + rejected).

Bad rows go to ``ledger.reject`` ("no name", "no coordinates", "unparseable
coordinates", "zero coordinates", "coordinates out of range", "outside Great
Britain", "postcode not found '<postcode>'", "duplicate of row N"); rows the
schema or the config leaves out go to ``ledger.filter``. A problem with a whole
file (missing, unreadable, a required column absent, no coordinate columns)
raises ``UserError`` naming the file and the column.

Schema entries (see ``data_schemas/generic_points.json`` for a commented one):
``reader``; ``required_columns``; ``id_field`` / ``name_field`` /
``type_field`` / ``subtype_field``: ``{"column": name or [names]}`` (first
non-empty) or ``{"value": constant}``, ``"optional": true`` when the column may
be absent; ``attributes``: extra columns, each ``{"column", "map"?,
"parse"?}``; ``location``: candidate locations tried in order per row
(``{"kind": "en" | "lonlat", "x", "y", "crs"}``, ``{"kind": "postcode",
"column"}``, ``{"kind": "geometry"}`` for vector files); ``filters``:
``[{"column", "exclude": [...], "reason"}]``; ``dedupe``: ``"id"``;
``missing_values``: strings that mean blank; ``match_columns``:
``"case-insensitive"``.

Config options of a [[key_buildings]] entry: ``name_column``, ``type_column``,
``id_column``, ``subtype_column``, ``lon_column``, ``lat_column``,
``easting_column``, ``northing_column``, ``postcode_column``, ``crs`` (of
easting/northing), ``coordinates`` (force one location kind), ``postcodes``
(OS Code-Point Open CSV file or glob, relative to the config), ``include``
(``{column = [values]}``: keep only those rows), and reader options
``encoding``, ``delimiter``, ``layer``, ``sheet``.
"""
from __future__ import annotations

import copy
import glob
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from hotspots.config import Config, KeyBuildings
from hotspots.errors import UserError
from hotspots.load.ledger import Ledger, sha256
from hotspots.load.location import BNG, in_great_britain, to_bng
from hotspots.load.readers import read_table
from hotspots.schema import building_schema

BUILDING_COLUMNS = ["building_id", "name", "type", "subtype", "layer", "x", "y", "radius_m", "location_from"]
ACCOUNT_COLUMNS = ["source_id", "path", "sha256", "rows_read", "rows_loaded", "rows_filtered", "rows_rejected"]

# Config option -> (schema entry, key) it overrides.
_COLUMN_OPTIONS = {
    "name_column": ("name_field", None), "type_column": ("type_field", None), "id_column": ("id_field", None),
    "subtype_column": ("subtype_field", None), "lon_column": ("lonlat", "x"), "lat_column": ("lonlat", "y"),
    "easting_column": ("en", "x"), "northing_column": ("en", "y"), "postcode_column": ("postcode", "column"),
}
_READER_OPTIONS = ("encoding", "delimiter", "layer", "sheet")
_OTHER_OPTIONS = ("crs", "coordinates", "postcodes", "include")
_AUTO_FORMATS = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".xlsx": "excel", ".xls": "excel",
                 ".geojson": "vector", ".json": "vector", ".gpkg": "vector", ".shp": "vector"}
_MONTHS = {m: i for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                                       "nov", "dec"], start=1)}
# Two rows with the same id closer than this are one building listed twice.
_SAME_PLACE_M = 1.0


def normalise_postcode(text: pd.Series) -> pd.Series:
    """Postcodes without spaces, upper case ("e1 6an", "E1  6AN" -> "E16AN")."""
    return text.fillna("").astype(str).str.replace(r"\s+", "", regex=True).str.upper()


def postcode_lookup(pattern: str, base: Path) -> pd.DataFrame:
    """OS Code-Point Open (with or without its header row) or ONS Postcode Directory files, read as the
    geocoder reads [geocoding] postcodes, as a table indexed by normalised postcode with columns ``e``,
    ``n`` (BNG metres; NaN where the file places none). An ONSPD file was read as Code-Point's columns
    0, 2 and 3: every building 'postcode not found', with no word of the format."""
    from hotspots.load.geocode import PostcodeLookup
    files = sorted(glob.glob(str(base / pattern)))
    if not files:
        raise UserError(f"postcodes = '{pattern}' matches no file.", hint=f"Paths are relative to {base}.")
    return PostcodeLookup.from_files(files).table.rename(columns={"x": "e", "y": "n"})


def _repair_age_range(text: pd.Series) -> pd.Series:
    """"3-11" turned into a date by a spreadsheet ("11-Mar") back into "3-11"; "0 - 11" into "0-11"."""
    def one(v: str) -> str:
        m = re.fullmatch(r"\s*(\d+)\s*-\s*([A-Za-z]{3})\s*", v)
        if m and m.group(2).lower() in _MONTHS:
            return f"{_MONTHS[m.group(2).lower()]}-{int(m.group(1))}"
        m = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", v)
        return f"{int(m.group(1))}-{int(m.group(2))}" if m else v
    return text.map(one)


_PARSERS = {"age_range": _repair_age_range}


class _Columns:
    """Find a file's columns by name, exactly or (for generic schemas) ignoring case."""

    def __init__(self, raw: pd.DataFrame, case_insensitive: bool):
        self.raw = raw
        self.lower = {c.lower(): c for c in raw.columns} if case_insensitive else {}

    def find(self, name: str) -> str | None:
        if name in self.raw.columns:
            return name
        return self.lower.get(name.lower())

    def present(self, names) -> list[str]:
        names = [names] if isinstance(names, str) else list(names)
        return [c for c in (self.find(n) for n in names) if c is not None]

    def values(self, names) -> pd.Series:
        """First non-empty value among the columns ``names`` (empty where none)."""
        out = pd.Series("", index=self.raw.index, dtype=object)
        for col in reversed(self.present(names)):
            out = self.raw[col].where(self.raw[col] != "", out)
        return out.astype(str)


def _layer_schema(layer: KeyBuildings, base: Path, cfg_path: str) -> dict:
    """The layer's schema with the config's column and reader overrides applied."""
    schema = copy.deepcopy(building_schema(layer.schema, base))
    opts = layer.options
    known = set(_COLUMN_OPTIONS) | set(_READER_OPTIONS) | set(_OTHER_OPTIONS)
    # Profile options may sit beside a layer; everything else unknown is a typo worth naming.
    from hotspots.profile import PROFILE_OPTIONS
    for key in opts:
        if key not in known and key not in PROFILE_OPTIONS:
            raise UserError(f"[[key_buildings]] '{layer.id}' has an unknown key '{key}' "
                            f"(options: {', '.join(sorted(known))}).", file=cfg_path)
    for key in _READER_OPTIONS:
        if key in opts:
            schema["reader"][key] = opts[key]
    for key, (entry, sub) in _COLUMN_OPTIONS.items():
        if key not in opts:
            continue
        col = str(opts[key])
        if sub is None:
            schema[entry] = {"column": col}
            continue
        cands = [c for c in schema["location"] if c["kind"] == entry]
        if not cands:
            cands = [{"kind": entry, "crs": "EPSG:4326" if entry == "lonlat" else BNG}]
            schema["location"].append(cands[0])
        cands[0][sub] = col
    if "crs" in opts:
        for c in schema["location"]:
            if c["kind"] == "en":
                c["crs"] = str(opts["crs"])
    if "coordinates" in opts:
        kind = str(opts["coordinates"])
        schema["location"] = [c for c in schema["location"] if c["kind"] == kind]
        if not schema["location"]:
            raise UserError(f"[[key_buildings]] '{layer.id}': coordinates = '{kind}' is not a location kind of "
                            f"schema '{schema['name']}'.", file=cfg_path)
    return schema


def _reader_spec(schema: dict, path: Path) -> dict:
    reader = dict(schema["reader"])
    if reader.get("format", "csv") == "auto":
        fmt = _AUTO_FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise UserError(f"cannot tell the format of '{path.name}' from its extension "
                            f"(have {', '.join(sorted(_AUTO_FORMATS))}).", file=str(path))
        reader["format"] = fmt
    return reader


def _field(cols: _Columns, spec: dict | None, path: Path, what: str) -> pd.Series | None:
    """The values of an id/name/type field, or None when the schema has none (or an optional column is absent)."""
    if not spec:
        return None
    if "value" in spec:
        return pd.Series(str(spec["value"]), index=cols.raw.index, dtype=object)
    if not cols.present(spec["column"]):
        if spec.get("optional"):
            return None
        name = spec["column"] if isinstance(spec["column"], str) else spec["column"][0]
        have = ", ".join(c for c in cols.raw.columns if not c.startswith("_"))
        raise UserError(f"the {what} column '{name}' is missing (the file has: {have}).",
                        file=str(path), column=name, hint=f"Set {what}_column in [[key_buildings]].")
    return cols.values(spec["column"])


def _usable_locations(schema: dict, cols: _Columns, postcodes: pd.DataFrame | None) -> list[dict]:
    usable = []
    for cand in schema["location"]:
        kind = cand["kind"]
        if kind == "geometry":
            if "_x" in cols.raw.columns and "_y" in cols.raw.columns:
                usable.append({**cand, "_cols": ["geometry"]})
        elif kind == "postcode":
            found = cols.present(cand["column"])
            if found and postcodes is not None:
                usable.append({**cand, "_cols": found[:1]})
        else:
            xs, ys = cols.present(cand["x"]), cols.present(cand["y"])
            if xs and ys:
                usable.append({**cand, "_cols": [xs[0], ys[0]]})
    return usable


def _no_location_error(schema: dict, path: Path, cols: _Columns, postcodes) -> UserError:
    wants = []
    for cand in schema["location"]:
        if cand["kind"] == "geometry":
            continue
        if cand["kind"] == "postcode":
            name = cand["column"] if isinstance(cand["column"], str) else cand["column"][0]
            have_col = bool(cols.present(cand["column"]))
            wants.append(f"'{name}'" + (" (found, but no postcodes file is configured)" if have_col
                                        and postcodes is None else ""))
        else:
            x = cand["x"] if isinstance(cand["x"], str) else cand["x"][0]
            y = cand["y"] if isinstance(cand["y"], str) else cand["y"][0]
            wants.append(f"'{x}'/'{y}'")
    have = ", ".join(c for c in cols.raw.columns if not c.startswith("_"))
    first = schema["location"][0]
    column = first.get("column") or first.get("x") or "geometry"
    column = column if isinstance(column, str) else column[0]
    return UserError(f"no coordinate columns: expected {' or '.join(wants) or 'a point geometry'} "
                     f"(the file has: {have}).", file=str(path), column=column,
                     hint="Name the columns with lon_column/lat_column, easting_column/northing_column or "
                          "postcode_column (with postcodes = \"...\") in [[key_buildings]].")


def _locate(raw: pd.DataFrame, cols: _Columns, usable: list[dict], postcodes: pd.DataFrame | None):
    """Try each usable location per row; returns x, y, kind and (reason, columns) for rows none could place."""
    n = len(raw)
    x, y = np.full(n, np.nan), np.full(n, np.nan)
    kind = np.full(n, "", dtype=object)
    fail = np.full(n, "", dtype=object)
    fail_cols = np.full(n, "", dtype=object)
    for cand in usable:
        todo = np.isnan(x)
        if not todo.any():
            break
        names = ",".join(cand["_cols"])
        bad = np.full(n, "", dtype=object)
        if cand["kind"] == "postcode":
            text = cols.values(cand["column"])
            key = normalise_postcode(text)
            present = (key != "").to_numpy()
            hit = key.map(postcodes["e"]) if postcodes is not None else pd.Series(np.nan, index=key.index)
            cx, cy = hit.to_numpy(float), key.map(postcodes["n"]).to_numpy(float)
            bad[present & np.isnan(cx)] = "postcode not found"
            ok = present & ~np.isnan(cx)
        else:
            if cand["kind"] == "geometry":
                xs, ys = raw["_x"], raw["_y"]
                crs_col = raw["_crs"] if "_crs" in raw.columns else pd.Series("", index=raw.index)
            else:
                xs, ys = cols.values(cand["x"]), cols.values(cand["y"])
                crs_col = pd.Series(cand.get("crs", "EPSG:4326" if cand["kind"] == "lonlat" else BNG),
                                    index=raw.index)
            present = ((xs != "") & (ys != "")).to_numpy()
            xn = pd.to_numeric(xs, errors="coerce").to_numpy(float)
            yn = pd.to_numeric(ys, errors="coerce").to_numpy(float)
            unparsed = present & (np.isnan(xn) | np.isnan(yn))
            bad[unparsed] = "unparseable coordinates"
            lonlat = cand["kind"] == "lonlat"
            zero = present & ~unparsed & (((xn == 0) & (yn == 0)) if lonlat else ((xn == 0) | (yn == 0)))
            bad[zero & (bad == "")] = "zero coordinates"
            if lonlat:
                out = present & ~unparsed & ((np.abs(xn) > 180) | (np.abs(yn) > 90))
                bad[out & (bad == "")] = "coordinates out of range"
            ok = present & (bad == "")
            cx, cy = np.full(n, np.nan), np.full(n, np.nan)
            for crs in pd.unique(crs_col[ok]):
                sel = ok & (crs_col == crs).to_numpy()
                if not crs:
                    bad[sel] = "no coordinate reference system"
                    continue
                cx[sel], cy[sel] = to_bng(xn[sel], yn[sel], str(crs))
            ok = ok & (bad == "")
        outside = ok & ~in_great_britain(cx, cy)
        bad[outside] = "outside Great Britain"
        take = todo & ok & ~outside
        x[take], y[take] = cx[take], cy[take]
        kind[take] = cand["kind"]
        first = todo & (bad != "") & (fail == "")
        fail[first] = bad[first]
        fail_cols[first] = names
    nowhere = np.isnan(x) & (fail == "")
    fail[nowhere] = "no coordinates"
    fail_cols[nowhere] = ";".join(",".join(c["_cols"]) for c in usable)
    fail[~np.isnan(x)] = ""
    return x, y, kind, fail, fail_cols


def _load_file(layer: KeyBuildings, schema: dict, path: Path, postcodes, ledger: Ledger,
               cfg_path: str) -> tuple[pd.DataFrame, int]:
    raw = read_table(path, _reader_spec(schema, path))
    for missing in schema.get("missing_values", []):
        raw = raw.replace(missing, "")
    cols = _Columns(raw, schema.get("match_columns") == "case-insensitive")
    for col in schema.get("required_columns", []):
        if cols.find(col) is None:
            have = ", ".join(c for c in raw.columns if not c.startswith("_"))
            raise UserError(f"the column '{col}' required by schema '{schema['name']}' is missing "
                            f"(the file has: {have}).", file=str(path), column=col)
    name = _field(cols, schema.get("name_field"), path, "name")
    ids = _field(cols, schema.get("id_field"), path, "id")
    types = _field(cols, schema.get("type_field"), path, "type")
    subtypes = _field(cols, schema.get("subtype_field"), path, "subtype")
    usable = _usable_locations(schema, cols, postcodes)
    if not usable:
        raise _no_location_error(schema, path, cols, postcodes)

    rows = raw["_row"].to_numpy()
    reason = np.full(len(raw), "", dtype=object)
    columns = np.full(len(raw), "", dtype=object)
    name_col = schema["name_field"].get("column", "")
    name_col = name_col if isinstance(name_col, str) else name_col[0]
    no_name = (name == "").to_numpy()
    reason[no_name], columns[no_name] = "no name", name_col
    x, y, kind, fail, fail_cols = _locate(raw, cols, usable, postcodes)
    fresh = (reason == "") & (fail != "")
    reason[fresh], columns[fresh] = fail[fresh], fail_cols[fresh]

    bad = reason != ""
    ledger.reject(layer.id, str(path), rows[bad], reason[bad], columns[bad])

    # Filters: the schema's (closed schools) and the config's `include`.
    why = np.full(len(raw), "", dtype=object)
    for flt in schema.get("filters", []):
        found = cols.find(flt["column"])
        if found:
            hit = raw[found].isin(flt["exclude"]).to_numpy()
            why[hit & (why == "")] = flt.get("reason", f"{flt['column']} excluded")
    for col, values in (layer.options.get("include") or {}).items():
        found = cols.find(col)
        if found is None:
            raise UserError(f"[[key_buildings]] '{layer.id}': include names a column '{col}' the file lacks.",
                            file=str(path), column=col)
        values = [values] if isinstance(values, str) else [str(v) for v in values]
        why[~raw[found].isin(values).to_numpy() & (why == "")] = f"{col} not selected by include"
    drop = ~bad & (why != "")
    ledger.filter(layer.id, str(path), rows[drop], why[drop])

    keep = ~bad & ~drop
    own_id = ids if ids is not None else pd.Series("", index=raw.index)
    out = pd.DataFrame({
        "_row": rows, "_file": str(path), "_id": own_id.to_numpy(),
        "name": name.to_numpy(),
        "type": (str(layer.type) if layer.type else
                 (types.where(types != "", layer.id).to_numpy() if types is not None else layer.id)),
        "subtype": subtypes.to_numpy() if subtypes is not None else "",
        "layer": layer.id, "x": x, "y": y,
        "location_from": kind,
    })
    for attr, spec in schema.get("attributes", {}).items():
        vals = cols.values(spec["column"])
        if "map" in spec:
            vals = vals.replace(spec["map"])
        if "parse" in spec:
            vals = _PARSERS[spec["parse"]](vals)
        out[attr] = vals.to_numpy()
    return out[keep].reset_index(drop=True), len(raw)


def _assign_ids(layer_id: str, df: pd.DataFrame, dedupe: bool, ledger: Ledger) -> pd.DataFrame:
    """``building_id`` per row; the same id at the same place twice is a duplicate (rejected),
    the same id at another place gets "-r<row>" so every id stays unique."""
    own = df["_id"].where(df["_id"] != "", df["_row"].astype(str))
    first_of: dict[str, int] = {}
    ids, dup_of = [], []
    for k, key in enumerate(own):
        j = first_of.get(key)
        if j is None:
            first_of[key] = k
            ids.append(f"{layer_id}:{key}")
            dup_of.append(-1)
        elif dedupe and np.hypot(df["x"].iat[k] - df["x"].iat[j], df["y"].iat[k] - df["y"].iat[j]) <= _SAME_PLACE_M:
            ids.append("")
            dup_of.append(j)
        else:
            ids.append(f"{layer_id}:{key}-r{df['_row'].iat[k]}")
            dup_of.append(-1)
    df = df.assign(building_id=ids)
    dup = np.array(dup_of) >= 0
    if dup.any():
        gone = df[dup]
        firsts = np.array(dup_of)[dup]
        same_file = df["_file"].to_numpy()[firsts] == gone["_file"].to_numpy()
        text = [f"duplicate of row {df['_row'].iat[j]}" + ("" if s else f" of {Path(df['_file'].iat[j]).name}")
                for j, s in zip(firsts, same_file)]
        for path, grp in pd.DataFrame({"f": gone["_file"], "r": gone["_row"], "t": text}).groupby("f", sort=False):
            ledger.reject(layer_id, path, grp["r"].to_numpy(), grp["t"].to_numpy(), "id")
    return df[~dup]


def _check_layers(cfg: Config) -> None:
    seen = set()
    for layer in cfg.key_buildings:
        if layer.id in seen:
            raise UserError(f"[[key_buildings]]: the id '{layer.id}' is used twice.", file=str(cfg.path))
        seen.add(layer.id)
        if not layer.radius_m or any(not np.isfinite(r) or r <= 0 for r in layer.radius_m):
            raise UserError(f"[[key_buildings]] '{layer.id}': radius_m should be positive numbers of metres, "
                            f"got {layer.radius_m!r}.", file=str(cfg.path))


def empty_buildings() -> gpd.GeoDataFrame:
    """A building table with no rows and the documented columns (a layer of a header only, or whose
    every row is rejected, profiles nothing: the pipeline still reads its sensitive flags)."""
    df = pd.DataFrame({c: pd.Series(dtype=float if c in ("x", "y") else object) for c in BUILDING_COLUMNS})
    df["sensitive"] = pd.Series(dtype=bool)
    df["sensitive_display"] = pd.Series(dtype=object)
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries([], crs=BNG), crs=BNG)


def _check_lost(cfg: Config, acc: pd.DataFrame, rejects: pd.DataFrame) -> None:
    """A layer that lost every row it read to rejects fails with its main reason, as a source does
    (``load.check_losses``): children's homes looked up in the wrong postcodes file were all 'postcode not
    found', and validate and run went on with exit 0, the layer empty."""
    for layer in cfg.key_buildings:
        mine = acc[acc["source_id"] == layer.id]
        read = int(mine["rows_read"].sum())
        if not read or int(mine["rows_rejected"].sum()) < read:
            continue
        from hotspots.load import main_reason
        reason, columns, n = main_reason(rejects[rejects["source_id"] == layer.id])
        raise UserError(f"[[key_buildings]] '{layer.id}' lost every one of its {read:,} rows, {n:,} of them to "
                        f"one reason: {reason} (column {columns}).", file=str(cfg.path),
                        hint="Check the layer's columns, coordinates and postcodes file (hotspots schemas "
                             f"{layer.schema} shows its schema), or leave the layer out.")


def load_buildings(cfg: Config, ledger: Ledger, area=None) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Every [[key_buildings]] layer of ``cfg`` as points in EPSG:27700, and the per-file accounting.

    With ``area`` (the study area, a shapely geometry) the buildings outside it are filtered, "outside
    study area": they are not profiled, and were counted as loaded while buildings.csv left them out
    (the example's London-wide schools file: 212 loaded, 97 profiled, 115 gone with no reason).
    See the module docstring for the columns of both tables.
    """
    _check_layers(cfg)
    frames, accounts = [], []
    for layer in cfg.key_buildings:
        schema = _layer_schema(layer, cfg.base, str(cfg.path))
        pattern = layer.options.get("postcodes")
        postcodes = postcode_lookup(str(pattern), cfg.base) if pattern else None
        files = sorted(Path(p) for p in glob.glob(str(cfg.base / layer.path)))
        if not files:
            raise UserError(f"[[key_buildings]] '{layer.id}': path '{layer.path}' matches no file.",
                            file=str(cfg.path), hint=f"Paths are relative to the config's folder ({cfg.base}).")
        parts = []
        for path in files:
            part, n_read = _load_file(layer, schema, path, postcodes, ledger, str(cfg.path))
            if not n_read:      # as an incident file with a header only: loaded, and said
                ledger.warn(layer.id, str(path), "the file has no data rows.")
            parts.append(part)
            accounts.append({"source_id": layer.id, "path": str(path), "sha256": sha256(path),
                             "rows_read": n_read})
        df = pd.concat(parts, ignore_index=True)
        df = _assign_ids(layer.id, df, schema.get("dedupe") == "id", ledger)
        df["radius_m"] = [tuple(float(r) for r in layer.radius_m)] * len(df)
        # Sensitive: the config's word, else the schema's default (children's homes are sensitive).
        sensitive = bool(schema.get("sensitive", False)) if layer.sensitive is None else bool(layer.sensitive)
        df["sensitive"] = sensitive
        df["sensitive_display"] = layer.sensitive_display if sensitive else ""
        frames.append(df)
    acc = pd.DataFrame(accounts, columns=["source_id", "path", "sha256", "rows_read"])
    loaded = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["layer", "_file"])
    if area is not None and len(loaded):
        import shapely
        shapely.prepare(area)
        out = ~shapely.covers(area, shapely.points(loaded["x"].to_numpy(float), loaded["y"].to_numpy(float)))
        for (layer_id, path), grp in loaded[out].groupby(["layer", "_file"], sort=False):
            ledger.filter(layer_id, path, grp["_row"].to_numpy(), "outside study area")
        loaded = loaded[~out]
        frames = [loaded]
    rej, flt = ledger.rejects, ledger.filtered
    for name, table, key in (("rows_loaded", loaded, ["layer", "_file"]),
                             ("rows_filtered", flt, ["source_id", "file"]),
                             ("rows_rejected", rej, ["source_id", "file"])):
        counts = table.groupby(key).size() if len(table) else pd.Series(dtype=int)
        idx = pd.MultiIndex.from_frame(acc[["source_id", "path"]])
        acc[name] = counts.reindex(idx).fillna(0).astype(int).to_numpy() if len(counts) and len(acc) else 0
    acc = acc[ACCOUNT_COLUMNS]
    _check_lost(cfg, acc, rej)
    if not frames or not len(loaded):
        return empty_buildings(), acc
    extra = [c for c in loaded.columns if c not in BUILDING_COLUMNS and not c.startswith("_")]
    out = loaded[BUILDING_COLUMNS + extra].reset_index(drop=True)
    return gpd.GeoDataFrame(out, geometry=gpd.points_from_xy(out["x"], out["y"]), crs=BNG), acc
