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

import json
from pathlib import Path

from hotspots.errors import UserError
from hotspots.schema import source_schema

# Tables whose entries are themselves whole specs: a mapping replaces an entry, never merges into it.
_WHOLE_ENTRIES = {"fields", "maps"}


def _merge(base: dict, over: dict, parent: str = "") -> dict:
    """``over`` laid over ``base``: tables merged key by key, except the entries of ``_WHOLE_ENTRIES``."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and parent not in _WHOLE_ENTRIES:
            out[key] = _merge(out[key], value, key)
        else:
            out[key] = value
    return out


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"the mapping cannot be read ({exc}).", file=str(path)) from None


def resolve_schema(name: str, base: Path, mapping: str | None = None, _seen: tuple = ()) -> dict:
    """The effective schema of a source: ``name`` (built in or a path relative to ``base``), with its
    ``extends`` chain and the source's ``mapping`` file laid over it."""
    spec = source_schema(name, base)
    if "extends" in spec:
        parent = spec["extends"]
        if parent in _seen:
            raise UserError(f"schema '{name}' extends itself through '{parent}'.")
        spec = _merge(resolve_schema(parent, base, None, _seen + (name,)), spec)
        spec.pop("extends", None)
    if mapping:
        path = base / mapping
        over = _read(path)
        spec = _merge(spec, over)
        spec["name"] = over.get("name", spec["name"])
        spec["_mapping_file"] = str(path)
    if not _seen:
        _check(spec, mapping or name)
    return spec


def _check(spec: dict, where: str) -> None:
    """A mapping must at least say where the date and the location are."""
    date = spec.get("date") or {}
    if not date.get("column"):
        raise UserError("the mapping says no date column (\"date\": {\"column\": ...}).", file=where)
    loc = spec.get("location")
    cands = loc.get("try", [loc]) if isinstance(loc, dict) else (loc or [])
    if not cands or not all(isinstance(c, dict) and c.get("kind") for c in cands):
        raise UserError("the mapping says no location (\"location\": {\"kind\": \"postcode\" | \"lonlat\" | \"en\" | "
                        "\"gridref\" | \"freetext\" | \"geometry\", ...}).", file=where)


def needs_geocoder(spec: dict) -> tuple[bool, bool]:
    """(any geocoding, postcodes in particular) for a schema's location candidates."""
    loc = spec.get("location")
    cands = loc.get("try", [loc]) if isinstance(loc, dict) else list(loc or [])
    kinds = {c.get("kind") for c in cands}
    return bool(kinds & {"postcode", "freetext"}), "postcode" in kinds
