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
  "unknown <label>" (not in the map), "invalid <label> (allowed: ...)". A
  reason never quotes the value: a column may hold free text, and
  ``rejects.csv`` is shared.
- ``date``: see ``hotspots.load.dates``.
- ``location``: see ``hotspots.load.location``.
- ``dedupe``: ``{"key": "source_ref", "scope"}`` or ``{"column", "scope"}``:
  records with the same reference (kept internally, hashed) are one record.
- ``gazetteer``: ``{"street": column, "strip": regex}``: the source's named
  snap points feed the street gazetteer (police.uk "On or near ...").
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hotspots.errors import UserError
from hotspots.load.dates import parse_when
from hotspots.load.geocode import RULES, street_points
from hotspots.load.location import candidates, locate
from hotspots.load.readers import header_further_down, map_few, pick
from hotspots.schema import CATEGORY_MAPS, EVIDENCE_CLASSES, TAXONOMY


@dataclass
class Mapped:
    """One file mapped: see the module docstring."""
    incidents: pd.DataFrame
    rejects: pd.DataFrame          # _row, reason, columns
    notes: pd.DataFrame            # _row, note, columns (loaded rows corrected on the way)
    geocoded: pd.Series            # match level of every row the geocoder was asked about
    where: pd.DataFrame | None = None  # x, y of every row as located (None: not kept)


def expected_columns(schema: dict) -> list[str]:
    """The input columns a schema reads: its ``required_columns``, else every column its
    fields, date, location and dedupe entries name (in that order, once each)."""
    if schema.get("required_columns"):
        return list(dict.fromkeys(schema["required_columns"]))
    out: list[str] = []

    def add(value) -> None:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, (list, tuple)):
            for v in value:
                add(v)
        elif isinstance(value, dict):
            for v in value.values():
                add(v)

    for spec in schema.get("fields", {}).values():
        add(spec.get("column"))
        add(spec.get("columns"))
    date = schema.get("date") or {}
    add([date.get("column"), date.get("time_column"), (date.get("fallback") or {}).get("column"),
         (date.get("fallback") or {}).get("time_column")])
    for cand in candidates(schema.get("location") or []):
        add([cand.get("x"), cand.get("y"), cand.get("column")])
    add((schema.get("dedupe") or {}).get("column"))
    return [c for c in dict.fromkeys(out) if not c.startswith("_")]


def _shown(names: list[str], most: int = 20) -> str:
    """Column names for a message: at most ``most``, each cut to 40 characters."""
    cut = [n if len(n) <= 40 else n[:37] + "..." for n in map(str, names[:most])]
    more = f" ... ({len(names):,} columns)" if len(names) > most else ""
    return ", ".join(cut) + more if cut else "(none)"


def _delimiter_hint(header: list[str], delimiter: str) -> str | None:
    """A header read as one column that holds another separator: the file was saved with it."""
    if len(header) != 1:
        return None
    for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars"), (",", "commas")):
        if sep != delimiter and sep in header[0]:
            return (f"The header looks separated by {name}: save the file as comma-separated, "
                    "or set the schema's reader delimiter.")
    return None


def check_columns(raw: pd.DataFrame, schema: dict, path: str, header: list[str] | None = None) -> None:
    """Raise a UserError when the file's header does not match the schema, naming the file,
    the columns it has and the columns the schema expects.

    ``header`` is the file's whole header (``readers.read_source``); without it the
    table's columns are used. A required column missing is an error; for a schema
    without ``required_columns``, a header holding none of the columns it names is (a
    file saved with another separator, a renamed header, an unrelated file, one of the
    tool's own outputs picked up by a glob). A file with no header at all and no rows
    (an empty JSON array) is empty, not wrong.
    """
    have = [c for c in (header if header is not None else raw.columns) if c != "_row" and not
            (header is None and str(c).startswith("_"))]
    if not have and not len(raw):
        return
    expected = expected_columns(schema)
    if not expected:
        return
    delimiter = schema.get("reader", {}).get("delimiter", ",")
    hint = _delimiter_hint(have, delimiter)
    present = set(have) | set(raw.columns)
    what = f"(the file has: {_shown(have)}; schema '{schema['name']}' expects: {_shown(expected)})"
    missing = [c for c in expected if c not in present]
    if len(missing) == len(expected):
        # Nothing matches: another separator, a renamed header, the wrong file, or title rows above the header.
        row = header_further_down(Path(path), schema.get("reader", {}), expected) if not hint else None
        if row is not None:
            hint = (f"The header looks to be on row {row} of the file: set the mapping's reader "
                    f"\"header_row\": {row} (title rows above it are skipped).")
        raise UserError(f"no column of the file is one that schema '{schema['name']}' reads {what}.",
                        file=path, hint=hint)
    lacking = None if schema.get("required_columns") else _lacking(schema, present)
    if lacking:
        part, col = lacking
        raise UserError(f"{part} '{col}' that schema '{schema['name']}' reads is not in the file's header, so "
                        f"every row would be rejected {what}.", file=path, column=col,
                        hint="Rename the column in the mapping (or the file), or add the header the mapping "
                             "expects.")
    if schema.get("required_columns") and missing:
        which = f"the column '{missing[0]}'" if len(missing) == 1 else \
            "the columns " + ", ".join(f"'{c}'" for c in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise UserError(f"{which} required by schema '{schema['name']}' "
                        f"{'is' if len(missing) == 1 else 'are'} missing {what}.",
                        file=path, column=missing[0] if len(missing) == 1 else None, hint=hint)


def _names(value) -> list[str]:
    return [] if not value else [value] if isinstance(value, str) else list(value)


def _lacking(schema: dict, present: set) -> tuple[str, str] | None:
    """The part every row needs (its date, its place, its category) whose columns are all absent from
    the header, as (what, the first column named), or None. A mapping without ``required_columns`` read
    a renamed date column as a blank one: every row rejected 'no date (column Date)', a wrong reason."""
    date = schema.get("date") or {}
    when = _names(date.get("column")) + _names((date.get("fallback") or {}).get("column"))
    if when and not any(c in present for c in when):
        return "the date column", when[0]
    needs = {"lonlat": ("x", "y"), "en": ("x", "y"), "geometry": ()}
    cands = candidates(schema.get("location") or [])
    cols = [[c for k in needs.get(cand.get("kind"), ("column",)) for c in _names(cand.get(k))] for cand in cands]
    if cols and not any(all(c in present for c in cs) for cs in cols):
        return "the location column", next(c for c in cols[0] if c not in present)
    spec = (schema.get("fields") or {}).get("category") or {}
    named = _names(spec.get("column"))
    if named and "value" not in spec and spec.get("blank", "reject") == "reject" \
            and not any(c in present for c in named):
        return "the category column", named[0]
    return None


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
    text = pick(raw, spec["column"])
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
        values = map_few(key, lookup)
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
        # The schema's own allowed values may be named; the cell's value never is.
        reason[bad] = (f"invalid {label} (allowed: {', '.join(map(str, spec['allowed']))[:120]})"
                       if "allowed" in spec else f"unknown {label}")
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


def street_points_from(raw: pd.DataFrame, schema: dict, keep_index: bool = False,
                       where: pd.DataFrame | None = None) -> pd.DataFrame:
    """The named snap points of a police.uk table (schema ``gazetteer`` entry), for the street gazetteer;
    ``keep_index``: indexed by the rows of ``raw`` they come from. ``where``: the rows' ``x``, ``y``
    when already located (``map_rows`` without a geocoder), else located here."""
    gz = street_source(schema)
    if "street" not in gz or gz["street"] not in raw.columns:
        return pd.DataFrame(columns=["name", "x", "y"])
    if where is None:
        where = locate(raw, schema["location"])
    return street_points(raw[gz["street"]], where["x"].to_numpy(float), where["y"].to_numpy(float),
                         gz.get("strip", ""), keep_index)


TOTALS_ROW = "a totals row, not an incident"
# A cell that is a totals label and nothing more ('Total', 'Grand Total:', 'Sub-total 412', 'Total cases'), not
# one that begins with the word ('Total loss of vehicle').
_TOTALS = re.compile(r"\s*(?:grand\s*|sub\s*-?\s*)?totals?(?:\s+(?:cases|incidents|records|reports|rows))?"
                     r"\s*[:=-]?\s*[\d,.]*\s*", re.IGNORECASE)


def totals_rows(raw: pd.DataFrame, rejected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which of the ``rejected`` rows are an export's totals line (a cell of it reads 'Total', 'Grand total: 412'),
    and the column of that cell: such a row lacks a date, a place or a category, and is said to be a totals row
    rather than rejected for the first field it lacks (a user audit: a footer 'Total cases' was 'no category')."""
    found = np.zeros(len(raw), dtype=bool)
    label = np.full(len(raw), "", dtype=object)
    rows = np.flatnonzero(rejected)
    for col in [c for c in raw.columns if not str(c).startswith("_")] if len(rows) else []:
        cells = raw[col].iloc[rows]
        if cells.dtype != object and not pd.api.types.is_string_dtype(cells.dtype):
            continue
        # The word first (C speed), the pattern on the few cells that hold it: 1 M rows' 42 k rejects in 0.1 s.
        hit = cells.str.contains("total", case=False, regex=False, na=False).to_numpy(bool, copy=True)
        hit[hit] = cells[hit].str.fullmatch(_TOTALS, na=False).to_numpy(bool)
        new = rows[hit & ~found[rows]]
        found[new], label[new] = True, str(col)
    return found, label


def map_rows(raw: pd.DataFrame, schema: dict, source_id: str, evidence: str, path: str,
             geocoder=None, fixed_evidence: bool = False, header: list[str] | None = None) -> Mapped:
    """Map one file's raw rows onto the common schema; see the module docstring.

    ``evidence`` is the source's evidence class. A per-row ``evidence`` field of
    the schema (e.g. from a report type) takes precedence, with ``evidence`` for
    blank cells, unless ``fixed_evidence`` (the config set the class). ``header`` is the
    file's whole header, for the message when its columns do not match (``check_columns``).
    """
    check_columns(raw, schema, path, header)
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
        why[unknown] = "unknown category"
        reject(why, _colname(cspec) if ("column" in cspec or "columns" in cspec) else "category")
    if "evidence" in out:
        out["evidence"] = out["evidence"].where(out["evidence"] != "", evidence or "")
        wrong = ~out["evidence"].isin(EVIDENCE_CLASSES) & (reason == "")
        why = pd.Series("", index=raw.index, dtype=str)
        why[wrong] = "unknown evidence class"
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
        default = map_few(out["category"], {c: v.get("severity", 1) for c, v in TAXONOMY.items()}).fillna(1)
        sev = pd.to_numeric(out["severity"], errors="coerce") if "severity" in out else \
            pd.Series(np.nan, index=raw.index)
        out["severity"] = sev.where(sev.notna(), default).astype("Int64")
    dedupe = schema.get("dedupe", {})
    if "column" in dedupe:
        ref = pick(raw, dedupe["column"]).str.strip()
        # Only a hash of the reference is kept, and only until loading ends.
        out["_dedupe_ref"] = ref.map(lambda r: hashlib.sha1(r.encode()).hexdigest()[:16] if r else "")

    footer, label = totals_rows(raw, reason != "")
    reason[footer], columns[footer] = TOTALS_ROW, label[footer]
    bad = pd.Series(reason != "", index=raw.index)
    rejects = pd.DataFrame({"_row": raw.loc[bad, "_row"].to_numpy(), "reason": reason[bad.to_numpy()],
                            "columns": columns[bad.to_numpy()]})
    fb = schema["date"].get("fallback", {})
    from_date = (when["note"] != "").to_numpy()
    note = np.where(from_date, when["note"].to_numpy(object), where["note"].to_numpy(object))
    when_cols = when["columns"].to_numpy(object)
    note_cols = np.where(from_date, np.where(when_cols != "", when_cols, ",".join(
        c for c in (fb.get("column"), fb.get("time_column")) if c)), where["columns"].to_numpy(object))
    noted = ~bad.to_numpy() & (note != "")
    notes = pd.DataFrame({"_row": raw["_row"].to_numpy()[noted], "note": note[noted], "columns": note_cols[noted]})
    geocoded = where.loc[where["geocoded"], "level"]
    # Boolean indexing copies already (pandas' copy-on-write): no second copy.
    return Mapped(out[~bad], rejects, notes, geocoded, where[["x", "y"]])
