"""Apply a declarative source schema (``data_schemas/*.json``) to a raw table.

Input: the string table of ``readers.read_table`` (with ``_row``). Output
(``Mapped``): the rows in the common schema's fields plus ``_row`` and any
internal ``_``-prefixed fields, the rejects (``_row``, ``reason``,
``columns``), notes on rows that were loaded after a correction, and the
geocoding match level of every row the geocoder was asked about. Every row ends
up loaded or rejected. Filtering by the config (period, categories) happens
later, in ``hotspots.load``; here a row is only rejected when it cannot be read.

Schema entries used here:

- ``fields``: common field (or internal ``_name``) -> a spec:
  ``{"value": constant}``, or ``{"column": name or [names, first non-empty]}``
  or ``{"columns": {label: column}}`` (joined as "label: value; ..."), with
  ``map`` (a taxonomy map name, a map of the schema's ``maps``, or an inline
  table), ``case`` ("insensitive"), ``upper`` (true), ``allowed`` (values
  accepted as they are), ``blank`` (the value of a blank cell, or "reject"),
  ``unknown`` ("reject", the default with a map or ``allowed``; "default" or
  "keep"), ``default`` and ``label`` (used in reasons). Reasons: "no <label>",
  "unknown <label> '<value>'", "invalid <label> '<value>'".
- ``date``: see ``hotspots.load.dates``.
- ``location``: see ``hotspots.load.location``.
- ``dedupe``: ``{"key": "source_ref", "scope"}`` or ``{"column", "scope"}``:
  records with the same reference (kept internally, hashed) are one record.
- ``gazetteer``: ``{"street": column, "strip": regex}``: the source's named
  snap points feed the street gazetteer (police.uk "On or near ...").
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hotspots.errors import UserError
from hotspots.load.dates import parse_when
from hotspots.load.geocode import RULES, street_points
from hotspots.load.location import locate
from hotspots.load.readers import pick
from hotspots.schema import CATEGORY_MAPS, EVIDENCE_CLASSES, TAXONOMY


@dataclass
class Mapped:
    """One file mapped: see the module docstring."""
    incidents: pd.DataFrame
    rejects: pd.DataFrame          # _row, reason, columns
    notes: pd.DataFrame            # _row, note, columns (loaded rows corrected on the way)
    geocoded: pd.Series            # match level of every row the geocoder was asked about


def check_columns(raw: pd.DataFrame, schema: dict, path: str) -> None:
    """Raise a UserError naming the first required column the file lacks."""
    for col in schema.get("required_columns", []):
        if col not in raw.columns and (len(raw) or len(raw.columns) > 1):
            have = ", ".join(c for c in raw.attrs.get("columns", raw.columns) if c != "_row")
            raise UserError(f"the column '{col}' required by schema '{schema['name']}' is missing "
                            f"(the file has: {have}).", file=path, column=col)


def _map_table(spec: dict, schema: dict) -> dict | None:
    table = spec.get("map")
    if table is None or isinstance(table, dict):
        return table
    found = schema.get("maps", {}).get(table) or CATEGORY_MAPS.get(table)
    if found is None:
        raise UserError(f"the schema names an unknown map '{table}'.", file=schema.get("name"))
    return found


def _colname(spec: dict) -> str:
    if "columns" in spec:
        return ",".join(spec["columns"].values())
    col = spec["column"]
    return col if isinstance(col, str) else "/".join(col)


def map_field(raw: pd.DataFrame, name: str, spec: dict, schema: dict) -> tuple[pd.Series, pd.Series, str]:
    """One field: (values, reject reasons ("" where fine), columns named in rejects)."""
    if "value" in spec:
        return pd.Series(spec["value"], index=raw.index), pd.Series("", index=raw.index, dtype=str), ""
    if "columns" in spec:
        parts = [(label + ": " + pick(raw, col)).where(pick(raw, col) != "", "")
                 for label, col in spec["columns"].items()]
        text = parts[0]
        for p in parts[1:]:
            text = (text + "; " + p).where((text != "") & (p != ""), text + p)
        return text, pd.Series("", index=raw.index, dtype=str), _colname(spec)
    cols = _colname(spec)
    text = pick(raw, spec["column"]).str.strip()
    label = spec.get("label", name.strip("_").replace("_", " "))
    insensitive = spec.get("case") == "insensitive"
    key = text.str.lower().str.split().str.join(" ") if insensitive else text
    if spec.get("upper"):
        text = key = text.str.upper()
    reason = pd.Series("", index=raw.index, dtype=str)
    blank = text == ""
    blank_rule = spec.get("blank", "reject" if name == "category" or spec.get("required") else "keep")
    table = _map_table(spec, schema)
    if table is not None:
        lookup = {(" ".join(str(k).lower().split()) if insensitive else str(k)): v for k, v in table.items()}
        values = key.map(lookup)
        known = values.notna() | (blank & ("" not in lookup))
        values = values.where(values.notna(), text)
    elif "allowed" in spec:
        values = text
        known = text.isin([str(a) for a in spec["allowed"]]) | blank
    else:
        values, known = text, pd.Series(True, index=raw.index)
    unknown_rule = spec.get("unknown", "reject" if (table is not None or "allowed" in spec) else "keep")
    bad = ~known & ~blank
    if unknown_rule == "reject":
        reason[bad] = ("invalid " if "allowed" in spec else "unknown ") + label + " '" + text[bad] + "'"
    elif unknown_rule == "default":
        values = values.where(~bad, spec.get("default", ""))
    if blank_rule == "reject" and not (table is not None and "" in table):
        reason[blank] = f"no {label}"
    elif blank_rule not in ("reject", "keep"):
        values = values.where(~blank, blank_rule)
    return values, reason, cols


def street_source(schema: dict) -> dict:
    """The schema's street-name column for the gazetteer (its own ``gazetteer`` entry, else
    ``gazetteer.json`` ``street_sources``); empty when it names no streets."""
    return schema.get("gazetteer") or RULES["street_sources"].get(schema.get("name", ""), {})


def street_points_from(raw: pd.DataFrame, schema: dict) -> pd.DataFrame:
    """The named snap points of a police.uk table (schema ``gazetteer`` entry), for the street gazetteer."""
    gz = street_source(schema)
    if "street" not in gz or gz["street"] not in raw.columns:
        return pd.DataFrame(columns=["name", "x", "y"])
    where = locate(raw, schema["location"])
    return street_points(raw[gz["street"]], where["x"].to_numpy(float), where["y"].to_numpy(float),
                         gz.get("strip", ""))


def map_rows(raw: pd.DataFrame, schema: dict, source_id: str, evidence: str, path: str,
             geocoder=None, fixed_evidence: bool = False) -> Mapped:
    """Map one file's raw rows onto the common schema; see the module docstring.

    ``evidence`` is the source's evidence class. A per-row ``evidence`` field of
    the schema (e.g. from a report type) takes precedence, with ``evidence`` for
    blank cells, unless ``fixed_evidence`` (the config set the class).
    """
    check_columns(raw, schema, path)
    out = pd.DataFrame({"_row": raw["_row"].to_numpy()}, index=raw.index)
    reason = np.full(len(raw), "", dtype=object)
    columns = np.full(len(raw), "", dtype=object)

    def reject(why: pd.Series, cols) -> None:
        """Record ``why`` ("" where fine) for rows not yet rejected; the first reason of a row wins."""
        why = why.to_numpy(object)
        new = (why != "") & (reason == "")
        if new.any():
            reason[new] = why[new]
            columns[new] = cols[new] if isinstance(cols, (pd.Series, np.ndarray)) else cols

    for name, spec in schema.get("fields", {}).items():
        if name == "evidence" and fixed_evidence:
            continue
        values, why, cols = map_field(raw, name, spec, schema)
        reject(why, cols)
        out[name] = values
    if "category" in out:
        cspec = schema.get("fields", {}).get("category", {})
        unknown = (out["category"] != "") & ~out["category"].isin(list(TAXONOMY)) & (reason == "")
        why = pd.Series("", index=raw.index, dtype=str)
        why[unknown] = "unknown category '" + out.loc[unknown, "category"] + "'"
        reject(why, _colname(cspec) if ("column" in cspec or "columns" in cspec) else "category")
    if "evidence" in out:
        out["evidence"] = out["evidence"].where(out["evidence"] != "", evidence or "")
        wrong = ~out["evidence"].isin(EVIDENCE_CLASSES) & (reason == "")
        why = pd.Series("", index=raw.index, dtype=str)
        why[wrong] = "unknown evidence class '" + out.loc[wrong, "evidence"] + "'"
        reject(why, _colname(schema["fields"]["evidence"]))
    else:
        out["evidence"] = evidence

    when = parse_when(raw, schema["date"])
    reject(when["reason"], when["columns"].to_numpy(object))
    for c in ("occurred_from", "occurred_to", "date_precision"):
        out[c] = when[c]

    where = locate(raw, schema["location"], geocoder)
    reject(where["reason"], where["columns"].to_numpy(object))
    for c in ("x", "y", "location_precision", "location_precision_m"):
        out[c] = where[c]
    out["source_id"] = source_id
    if "category" in out:
        default = out["category"].map({c: v.get("severity", 1) for c, v in TAXONOMY.items()}).fillna(1)
        sev = pd.to_numeric(out["severity"], errors="coerce") if "severity" in out else \
            pd.Series(np.nan, index=raw.index)
        out["severity"] = sev.where(sev.notna(), default).astype("Int64")
    dedupe = schema.get("dedupe", {})
    if "column" in dedupe:
        ref = pick(raw, dedupe["column"]).str.strip()
        # Only a hash of the reference is kept, and only until loading ends.
        out["_dedupe_ref"] = ref.map(lambda r: hashlib.sha1(r.encode()).hexdigest()[:16] if r else "")

    bad = pd.Series(reason != "", index=raw.index)
    rejects = pd.DataFrame({"_row": raw.loc[bad, "_row"].to_numpy(), "reason": reason[bad.to_numpy()],
                            "columns": columns[bad.to_numpy()]})
    fb = schema["date"].get("fallback", {})
    from_date = when["note"] != ""
    note = when["note"].where(from_date, where["note"])
    note_cols = where["columns"].where(~from_date, ",".join(c for c in (fb.get("column"), fb.get("time_column")) if c))
    noted = ~bad & (note != "")
    notes = pd.DataFrame({"_row": raw.loc[noted, "_row"].to_numpy(), "note": note[noted].to_numpy(),
                          "columns": note_cols[noted].to_numpy()})
    geocoded = where.loc[where["geocoded"], "level"]
    return Mapped(out[~bad].copy(), rejects, notes, geocoded)
