"""The schema a source is read with: built in, a file of the partnership's, or a small mapping over a base.

A partner format that is new to hotspots needs no code: the analyst writes a
small JSON mapping (columns, coordinate system, date formats, category and
severity maps) and either

- names it as the source's schema (``schema = "schemas/yos_referrals.json"``)
  with ``"extends": "partner_generic"`` inside, or
- keeps ``schema = "partner_generic"`` and adds ``mapping = "schemas/yos_referrals.json"``
  to the [[sources]] entry.

Either way the mapping is laid over the base schema: tables (``reader``,
``date``, ``fields``, ``maps``, ...) are merged key by key, so the mapping
names only what differs; a field spec or a list is replaced whole.
"""
from __future__ import annotations

from pathlib import Path

from hotspots.errors import UserError
from hotspots.load.readers import READERS
from hotspots.schema import (CATEGORY_MAPS, DATE_PRECISIONS, EVIDENCE_CLASSES, FIELDS, HANDLING_CODES,
                             LOCATION_PRECISIONS, ROLES, TAXONOMY, builtin_schemas, read_json_object,
                             source_schema)
from hotspots.validate_config import (DELIMITER, Any_, Bool, Crs, DateFormat, Either, Encoding, ListOf, Map, Number,
                                      Table, Text, check)

# Tables whose entries are themselves whole specs: a mapping replaces an entry, never merges into it.
_WHOLE_ENTRIES = {"fields", "maps"}

# The mapping format as data: every key a schema or mapping may hold, the code that reads it in brackets.
# Keys starting with "_" inside "fields" are internal fields; elsewhere "_"-keys are comments.
LOCATION_KINDS = ("lonlat", "en", "gridref", "postcode", "freetext", "geometry")
_COLUMN = Either((Text(), ListOf(Text(), min_len=1)))
_FIELD = Table({                                   # hotspots.load.mapping.map_field
    "value": Any_(), "column": _COLUMN, "columns": Map(Text()),
    "map": Either((Text(), Map())), "case": Text(("insensitive", "sensitive")), "upper": Bool(),
    "allowed": ListOf(Either((Text(), Number()))), "blank": Any_(),
    "unknown": Text(("reject", "default", "keep")), "default": Any_(), "label": Text(), "required": Bool(),
})
_CANDIDATE = Table({                               # hotspots.load.location
    "kind": Text(LOCATION_KINDS), "x": _COLUMN, "y": _COLUMN, "crs": Crs(), "column": _COLUMN,
    "detect": Bool(), "fix_swapped": Bool(), "precision": Text(LOCATION_PRECISIONS),
    "precision_m": Number(lo=0, lo_open=True, unit="m"),
    # freetext only: the kinds of place the column may name (hotspots.load.geocode.GAZETTEER_KINDS)
    "gazetteer": ListOf(Text(("streets", "stations", "buildings", "postcodes")), min_len=1),
}, required=("kind",))
_FORMATS = ListOf(DateFormat())
SPEC = Table({
    "name": Text(), "title": Text(), "description": Text(), "reference": Text(), "notes": Text(),
    "extends": Text(), "kind": Text(("incidents",)),
    "reader": Table({                              # hotspots.load.readers
        "format": Text(("auto", *READERS)), "encoding": Encoding(),
        "delimiter": DELIMITER,
        "header": Number(lo=0, integer=True), "header_row": Number(lo=1, integer=True),
        "group_row": Number(lo=1, integer=True),
        "names": ListOf(Text()), "records": Text(), "sheet": Either((Text(), Number(lo=0, integer=True))),
        "layer": Text(),
    }),
    "evidence": Text(EVIDENCE_CLASSES),
    "required_columns": ListOf(Text()),
    "fields": Map(_FIELD),
    "maps": Map(Map()),
    "date": Table({                                # hotspots.load.dates
        "column": Either((Text(nullable=True), ListOf(Text(), min_len=1))), "format": DateFormat(),
        "formats": _FORMATS,
        "precision": Text(DATE_PRECISIONS), "time_column": _COLUMN, "time_formats": _FORMATS,
        "fallback": Table({"column": _COLUMN, "time_column": _COLUMN, "time_formats": _FORMATS,
                           "hours_before": Number(lo=0, lo_open=True), "note": Text()}, required=("column",)),
        "earliest": Text(pattern=r"\d{4}-\d{2}-\d{2}", example="1990-01-01"),
    }),
    "location": Either((ListOf(_CANDIDATE), Table({"try": ListOf(_CANDIDATE, min_len=1)}), _CANDIDATE)),
    "dedupe": Table({"key": Text(("source_ref",)), "column": Text(), "scope": Text()}),   # hotspots.load
    "gazetteer": Table({"street": Text(), "strip": Text()}),                               # hotspots.load.mapping
}, comments=True)
# What a mapped value of a field may be: a value outside these stops at config time, not row by row.
_FIELD_VALUES = {
    "category": (tuple(TAXONOMY), "the common taxonomy"),
    "evidence": (EVIDENCE_CLASSES, "the evidence classes"),
    "role": (ROLES + ("",), "the roles"),
    "severity": ((1, 2, 3, 4), "the severity scale 1-4"),
    "handling": (HANDLING_CODES, "the handling codes (3x5x2 P, C; 5x5x5 1-5)"),
}


def _merge(base: dict, over: dict, parent: str = "") -> dict:
    """``over`` laid over ``base``: tables merged key by key, except the entries of ``_WHOLE_ENTRIES``."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and parent not in _WHOLE_ENTRIES:
            out[key] = _merge(out[key], value, key)
        else:
            out[key] = value
    if parent == "date":
        # "format" (one) and "formats" (a list) say the same thing: the mapping's wins over the base's
        # other one ("format": "ISO8601" over partner_generic's "formats" was ignored: every row rejected).
        for mine, theirs in (("format", "formats"), ("formats", "format")):
            if mine in over and theirs not in over:
                out.pop(theirs, None)
    return out


def _schema_file(name: str, base: Path | None) -> str:
    """The file a schema called ``name`` is read from (for messages)."""
    found = builtin_schemas().get(name)
    return str(found) if found is not None else str((base / name) if base is not None else name)


def _check_keys(spec: dict, file: str) -> None:
    """Every key of one schema or mapping file against ``SPEC``: one UserError listing each problem."""
    problems = check(SPEC, spec, "")
    if not problems:
        return
    text = problems[0] if len(problems) == 1 else \
        f"{len(problems)} problems: " + " ".join(f"({k}) {p}" for k, p in enumerate(problems, start=1))
    raise UserError(f"the mapping is not valid: {text}", file=file,
                    hint="Every key of the mapping format is described in docs/mappings.md.")


def resolve_schema(name: str, base: Path, mapping: str | None = None, _seen: tuple = ()) -> dict:
    """The effective schema of a source: ``name`` (built in or a path relative to ``base``), with its
    ``extends`` chain and the source's ``mapping`` file laid over it.

    Each file is checked against ``SPEC`` (unknown keys with the nearest known one, types, allowed
    values), and the merged schema as a whole (a date column, a location, mapped values that exist):
    every problem is a UserError naming the file and the key.
    """
    spec = source_schema(name, base)
    _check_keys(spec, _schema_file(name, base))
    if "extends" in spec:
        parent = spec["extends"]
        if parent in _seen:
            raise UserError(f"schema '{name}' extends itself through '{parent}'.")
        spec = _merge(resolve_schema(parent, base, None, _seen + (name,)), spec)
        spec.pop("extends", None)
    if mapping:
        path = base / mapping
        over = read_json_object(path, "mapping")
        _check_keys(over, str(path))
        spec = _merge(spec, over)
        spec["name"] = over.get("name", spec["name"])
        spec["_mapping_file"] = str(path)
    if not _seen:
        _check(spec, str(base / mapping) if mapping else _schema_file(name, base), name, bool(mapping))
    return spec


def _check(spec: dict, where: str, name: str = "", mapped: bool = True) -> None:
    """The merged schema as a whole: a date column, a location, and mapped values that exist."""
    base_only = name == "partner_generic" and not mapped
    date = spec.get("date") or {}
    if not date.get("column"):
        if base_only:
            raise UserError("schema 'partner_generic' is a base to extend, not a schema to use alone: add "
                            "mapping = \"<your mapping>.json\" to the [[sources]] entry (or name a mapping file "
                            "with \"extends\": \"partner_generic\" as its schema) saying at least the date column "
                            "and the location.", file=where)
        raise UserError("the mapping says no date column (\"date\": {\"column\": ...}).", file=where)
    loc = spec.get("location")
    cands = loc.get("try", [loc]) if isinstance(loc, dict) else (loc or [])
    if not cands or not all(isinstance(c, dict) and c.get("kind") for c in cands):
        raise UserError("the mapping says no location (\"location\": {\"kind\": \"postcode\" | \"lonlat\" | \"en\" | "
                        "\"gridref\" | \"freetext\" | \"geometry\", ...}).", file=where)
    for k, cand in enumerate(cands):
        need = ("x", "y") if cand["kind"] in ("lonlat", "en") else ("column",) if cand["kind"] != "geometry" else ()
        for key in need:
            if not cand.get(key):
                raise UserError(f"location {cand['kind']} (candidate {k + 1}) names no '{key}' column.", file=where)
    problems = []
    for fname, fspec in (spec.get("fields") or {}).items():
        if not fname.startswith("_") and fname not in FIELDS:
            problems.append(f"fields.{fname} is not a field of the common schema{_near(fname, FIELDS)}.")
            continue
        problems += _value_problems(fname, fspec, spec)
    if problems:
        raise UserError(problems[0] if len(problems) == 1 else
                        " ".join(f"({k}) {p}" for k, p in enumerate(problems, start=1)), file=where)


def _near(key: str, known, label: str = "known keys") -> str:
    from hotspots.validate_config import suggest
    return suggest(key, known, label)


def _value_problems(fname: str, fspec: dict, spec: dict) -> list[str]:
    """Mapped, constant, default and allowed values of one field outside what the field may hold."""
    if fname not in _FIELD_VALUES:
        return []
    allowed, what = _FIELD_VALUES[fname]
    norm = (lambda v: int(v) if str(v).strip() in ("1", "2", "3", "4") else v) if fname == "severity" else \
        (lambda v: str(v).strip().upper()) if fname == "handling" else (lambda v: v)
    where = f"fields.{fname}"
    table = fspec.get("map")
    values = []
    if isinstance(table, str):
        found = (spec.get("maps") or {}).get(table)
        if found is None:
            found = CATEGORY_MAPS.get(table)
        if found is None:
            return [f"{where}.map = '{table}' names no map (the schema's \"maps\": "
                    f"{', '.join(spec.get('maps') or {}) or 'none'}; built in: {', '.join(CATEGORY_MAPS)})."]
        values += [(f"maps.{table}[{k!r}]", v) for k, v in found.items()]
    elif isinstance(table, dict):
        values += [(f"{where}.map[{k!r}]", v) for k, v in table.items()]
    for key in ("value", "default"):
        if key in fspec and not (key == "default" and fspec.get("unknown") != "default"):
            values.append((f"{where}.{key}", fspec[key]))
    if fname == "handling":
        values += [(f"{where}.allowed", v) for v in fspec.get("allowed", [])]
    out = []
    codes = [str(a) for a in allowed if a != ""]
    for key, v in values:
        if v == "TODO":       # left for the analyst by draft-mapping
            out.append(f"{key} is still TODO: fill it with one of {what} ({', '.join(codes)}).")
        elif isinstance(v, bool) or norm(v) not in allowed:
            out.append(f"{key} = {v!r} is not in {what}{_near(str(v), codes, 'codes')}.")
    return out


def needs_geocoder(spec: dict) -> tuple[bool, bool]:
    """(any geocoding, postcodes in particular) for a schema's location candidates."""
    loc = spec.get("location")
    cands = loc.get("try", [loc]) if isinstance(loc, dict) else list(loc or [])
    kinds = {c.get("kind") for c in cands}
    return bool(kinds & {"postcode", "freetext"}), "postcode" in kinds
