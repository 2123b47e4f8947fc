"""The common incident schema, the category taxonomy and the source schemas.

Everything here is read from ``data_schemas/``: the schema is data, this module
only loads it and enforces it. ``enforce`` is the allow-list: only the fields
of ``common.schema.json`` survive loading.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from hotspots.errors import UserError


def schemas_dir() -> Path:
    """The folder of built-in schemas: the repository's ``data_schemas/``, installed
    inside the package as ``hotspots/data_schemas``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "data_schemas", here.parent / "data_schemas"):
        if (candidate / "common.schema.json").is_file():
            return candidate
    raise RuntimeError("data_schemas/ is missing from this installation of hotspots")


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


COMMON = _read_json(schemas_dir() / "common.schema.json")
FIELDS = [f["name"] for f in COMMON["fields"]]
_FIELD = {f["name"]: f for f in COMMON["fields"]}
EVIDENCE_CLASSES = tuple(_FIELD["evidence"]["constraints"]["enum"])
_TAX = _read_json(schemas_dir() / "taxonomy.json")
TAXONOMY: dict[str, dict] = _TAX["categories"]
CATEGORY_MAPS: dict[str, dict[str, str]] = _TAX["maps"]
DEFAULT_WEIGHTS = _read_json(schemas_dir() / "weights.json")
# Handling codes (College of Policing APP): the only values a source's or a record's handling may
# take. "" is no code. Which of them may be shared is governance's rule (hotspots.governance).
HANDLING_3X5X2 = ("P", "C")
HANDLING_5X5X5 = ("1", "2", "3", "4", "5")
HANDLING_CODES = ("",) + HANDLING_3X5X2 + HANDLING_5X5X5
ROLES = tuple(r for r in _FIELD["role"]["constraints"]["enum"] if r)
LOCATION_PRECISIONS = tuple(_FIELD["location_precision"]["constraints"]["enum"])
DATE_PRECISIONS = tuple(_FIELD["date_precision"]["constraints"]["enum"])

_DTYPES = {"string": "str", "integer": "Int64", "number": "float64", "datetime": "datetime64[ns]"}


def builtin_schemas(kind: str = "incidents") -> dict[str, Path]:
    """Names and paths of the built-in schemas of one ``kind`` (every JSON file with a ``reader``).

    ``kind`` is "incidents" (partner extracts, the default) or "buildings" (key
    building layers, whose schema files say ``"kind": "buildings"``).
    """
    out = {}
    for p in sorted(schemas_dir().glob("*.json")):
        spec = _read_json(p)
        if "reader" in spec and spec.get("kind", "incidents") == kind:
            out[spec["name"]] = p
    return out


_KINDS = {  # kind -> (what users call it, the entries its schema file must have)
    "incidents": ("incident schema", ("name", "reader", "location", "date")),
    "buildings": ("key-building schema", ("name", "reader", "name_field", "location")),
}


def read_json_object(path: Path, what: str) -> dict:
    """A user's JSON file (a schema, a mapping) as a dict; anything else is a UserError naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:      # the parser recurses into nested arrays and objects
        raise UserError(f"the {what} is nested too deeply to read.", file=str(path)) from None
    except UnicodeDecodeError:
        raise UserError(f"the {what} is not UTF-8 text.", file=str(path)) from None
    except (OSError, ValueError) as exc:    # ValueError: not JSON, not UTF-8, an over-long number
        raise UserError(f"the {what} cannot be read ({exc}).", file=str(path)) from None
    if not isinstance(data, dict):
        raise UserError(f"the {what} should be a JSON object {{...}}.", file=str(path))
    return data


@lru_cache(maxsize=None)
def _load_schema_file(path: str, kind: str, stamp: tuple = ()) -> dict:
    """A schema file read once per ``stamp`` (a partnership's own file: its time stamp and size, so that a
    mapping edited between two runs in one process, a notebook's, is read again; it was not, and the
    second run used the first mapping with no word)."""
    what, required = _KINDS[kind]
    spec = read_json_object(Path(path), what)
    if spec.get("kind", "incidents") != kind:
        raise UserError(f"the schema is not a {what} (its \"kind\" is '{spec.get('kind', 'incidents')}').", file=path)
    for key in required:
        if key not in spec:
            raise UserError(f"the {what} has no '{key}' entry.", file=path)
    return spec


def _schema(name: str, base: Path | None, kind: str) -> dict:
    what = _KINDS[kind][0]
    builtin = builtin_schemas(kind)
    if name in builtin:
        return _load_schema_file(str(builtin[name]), kind)
    path = (base / name) if base is not None else Path(name)
    if path.suffix == ".json" and path.is_file():
        st = path.stat()
        return _load_schema_file(str(path.resolve()), kind, (st.st_mtime_ns, st.st_size))
    other = "buildings" if kind == "incidents" else "incidents"
    if name in builtin_schemas(other):
        raise UserError(f"schema '{name}' is a {_KINDS[other][0]}, not a {what}.",
                        hint=f"Built-in {what}s: {', '.join(builtin)}.")
    raise UserError(f"unknown {'schema' if kind == 'incidents' else what} '{name}'.",
                    hint=f"Built-in {what}s: {', '.join(builtin)}; or give a path to a schema JSON file.")


def source_schema(name: str, base: Path | None = None) -> dict:
    """The source schema called ``name`` (built in) or at path ``name`` (relative to ``base``)."""
    return _schema(name, base, "incidents")


def building_schema(name: str, base: Path | None = None) -> dict:
    """The key-building schema called ``name`` (built in) or at path ``name`` (relative to ``base``)."""
    return _schema(name, base, "buildings")


def empty_incidents() -> pd.DataFrame:
    """An empty table with the common schema's columns and types."""
    return pd.DataFrame({f: pd.Series(dtype=_DTYPES[_FIELD[f]["type"]]) for f in FIELDS})


def enforce(df: pd.DataFrame, optional: tuple = ()) -> pd.DataFrame:
    """Return ``df`` reduced to the common schema's fields, typed, and checked.

    Columns that are not in the schema are dropped (the allow-list). Missing
    optional fields (and the required ones named in ``optional``) are added empty. Raises
    ``ValueError`` when a required field is missing or an enum is violated: that is a bug
    in a loader, not a user error, because loaders reject bad rows before this point.
    """
    out = pd.DataFrame(index=df.index)
    for name in FIELDS:
        spec = _FIELD[name]
        dtype = _DTYPES[spec["type"]]
        cons = spec.get("constraints", {})
        if name in df.columns:
            col = df[name]
        elif cons.get("required") and name not in optional:
            raise ValueError(f"loader produced no '{name}' field")
        elif dtype == "str":        # "" for every row, held as one category: a byte a row, not a string
            col = pd.Series(pd.Categorical.from_codes(np.zeros(len(df), dtype=np.int8), categories=[""]),
                            index=df.index)
        else:
            col = pd.Series(np.nan, index=df.index)
        if dtype == "str" and isinstance(col.dtype, pd.CategoricalDtype) and not col.isna().any():
            pass        # text held as categories (hotspots.load.compact): kept so, not one string a row
        elif dtype == "str":
            col = col.astype(str).fillna("")
        else:
            col = col.astype(dtype)
        if "enum" in cons and not (isinstance(col.dtype, pd.CategoricalDtype)
                                   and col.cat.categories.isin(cons["enum"]).all()):
            bad = ~col.isin(cons["enum"])
            if bad.any():
                raise ValueError(f"field '{name}' has values outside its enum: {sorted(set(col[bad]))[:5]}")
        out[name] = col
    return out
