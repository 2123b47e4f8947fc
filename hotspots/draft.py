"""A draft mapping for a partner's file: what ``hotspots draft-mapping FILE`` writes.

``draft_mapping(path, sheet=None)`` reads the file (CSV of any common delimiter
and encoding, Excel with title rows above the header, GeoJSON / GeoPackage,
a JSON array) and guesses, from its header and a sample of its values:

- the reader: format, encoding, delimiter, the header row (title rows skipped);
- personal-data columns (names, dates of birth, home addresses and postcodes,
  contact details, NHS and case-person numbers, narrative free text), found by
  header words and by value patterns, and **left out**: never named by the mapping;
- the date column (the one most of whose values read with the base formats,
  preferring an incident date over a report or arrival date), the formats that
  read it (times included) and a separate time column;
- the location: geometry, longitude/latitude, eastings/northings, grid
  reference, postcode or free text, each as a candidate tried in order;
- the category column, each distinct value with a suggested taxonomy code by
  keyword (``CATEGORY_KEYWORDS``), and a risk rating (Red/Amber/Green,
  High/Medium/Low) or role column with suggested values;
- a reference column for ``dedupe``.

What it cannot decide is written as the string ``"TODO"`` where a value is
needed, and listed in ``_draft.todo`` with what the analyst must do; the
``_draft`` entry (a comment to the loader) also says what each column was taken
for. After the TODOs are filled, ``hotspots validate`` loads the file with it.

Returns ``Draft``: ``mapping`` (the JSON-ready dict) and ``summary`` (lines for
the terminal).
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hotspots.errors import UserError
from hotspots.load.dates import ISO_STAMPED_TIME, parse_date_text, with_times
from hotspots.load.personal import PLACE_WORDS as _PLACE_WORDS, names_place, personal_header, words as _words
from hotspots.load.geocode import compact_postcode, is_postcode, looks_like_gridref, parse_gridref
from hotspots.load.location import degrees
from hotspots.load.readers import AUTO_FORMATS, check_workbook, numbers, read_source, utf16_text
from hotspots.schema import CATEGORY_MAPS, TAXONOMY, source_schema

TODO = "TODO"
SAMPLE = 5000           # values looked at per column
DELIMITERS = [",", ";", "\t", "|"]

# Taxonomy codes suggested from a category value's words; the first rule that matches wins.
CATEGORY_KEYWORDS: list[tuple[str, str]] = [
    (r"sexual|rape|indecent|grooming", "sexual-offences"),
    (r"domestic", "domestic-abuse"),
    (r"county lines|exploit|cuckoo", "exploitation"),
    (r"gang", "gang-activity"),
    (r"robbery|mugg", "robbery"),
    (r"carry|carrying|possess|weapons?$|^weapon|offensive weapon|bladed article", "possession-of-weapons"),
    (r"knife|sharp|blunt|glass|bottle|firearm|stab|machete|gun|shoot|acid|weapon", "violence-with-weapon"),
    (r"drug|cannabis|cocaine|heroin|dealing|supply", "drugs"),
    (r"stop and search|stop/search|stop & search", "stop-and-search"),
    (r"burglar", "burglary"),
    (r"damage|arson|graffiti|vandal", "criminal-damage-arson"),
    (r"shoplift", "shoplifting"),
    (r"bicycle|bike|cycle theft", "bicycle-theft"),
    (r"vehicle|car crime|car theft", "vehicle-crime"),
    (r"theft from the person|pickpocket|snatch", "theft-from-the-person"),
    (r"theft|stolen|steal", "other-theft"),
    (r"public order|affray|disorder|harass|threat", "public-order"),
    (r"asb|anti.?social|nuisance|annoyance|intimidat|rowdy|noise|loitering|begging", "anti-social-behaviour"),
    (r"assault|violen|fight|punch|kick|\bhit\b|gbh|abh|wound|attack|body part|brawl|injur", "violent-crime"),
]
SEVERITY_WORDS = {"red": 4, "high": 4, "critical": 4, "amber": 3, "medium": 3, "moderate": 3,
                  "green": 2, "low": 2}
ROLE_WORDS = {"victim": "victim", "injured party": "victim", "perpetrator": "suspect", "suspect": "suspect",
              "offender": "suspect", "alleged perpetrator": "suspect", "witness": "witness"}

_INCIDENT_WORDS = {"incident", "offence", "occurred", "occurrence", "assault", "event", "crime", "committed", "when"}
_SECOND_WORDS = {"arrival", "reported", "report", "recorded", "received", "created", "entered", "updated",
                 "closed", "extract", "input", "logged", "review"}
_CATEGORY_WORDS = {"type", "category", "offence", "crime", "concern", "incident", "subject", "weapon", "method",
                   "classification", "nature", "issue", "problem", "asb", "reason", "group"}
_REF_WORDS = {"ref", "reference", "urn", "id", "no", "number", "case", "log", "crime", "occurrence"}
_EMAIL = r"[^@\s]+@[^@\s]+\.[a-z]{2,}"
_PHONE = r"(\+44\s?|0)(\d[\s-]?){9,10}"
_NHS = r"\d{3}\s?\d{3}\s?\d{4}"


@dataclass
class Draft:
    """A drafted mapping (``mapping``, JSON-ready) and what was decided, as lines (``summary``)."""
    mapping: dict
    summary: list[str] = field(default_factory=list)

    @property
    def todo(self) -> list[str]:
        return self.mapping["_draft"]["todo"]


# ----------------------------------------------------------------------------- reading
def _decodes(path: Path, encoding: str) -> bool:
    """True when the whole file decodes as ``encoding`` (read in 8 MB blocks: a stray byte may be late)."""
    import codecs
    dec = codecs.getincrementaldecoder(encoding)()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(8 << 20):
                dec.decode(block)
        dec.decode(b"", final=True)
        return True
    except UnicodeDecodeError:
        return False


def _encoding(path: Path, head: bytes) -> str:
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise utf16_text(path)
    if _decodes(path, "utf-8"):
        return "utf-8-sig"
    return "cp1252" if _decodes(path, "cp1252") else "latin-1"


def _delimiter(lines: list[str]) -> str:
    """The separator counted the same on most lines (quotes respected), the most of them winning."""
    best, score = ",", (-1.0, 0)
    for d in DELIMITERS:
        widths = [len(r) for r in csv.reader(lines, delimiter=d) if r]
        if not widths:
            continue
        common = max(set(widths), key=widths.count)
        share = widths.count(common) / len(widths)
        if common > 1 and (share, common) > score:
            best, score = d, (share, common)
    return best


def _header_index(rows: list[list[str]]) -> int | None:
    """The 0-based header row among ``rows``: the first nearly full row of distinct text labels that
    is followed by rows of data (title rows, extract dates and blank rows above it are skipped)."""
    widths = [sum(1 for c in r if str(c).strip()) for r in rows]
    if not widths or max(widths) < 1:
        return None
    full = max(widths)
    for i, row in enumerate(rows):
        cells = [str(c).strip() for c in row if str(c).strip()]
        if len(cells) < max(1, 0.7 * full) or len(set(cells)) != len(cells):
            continue
        labels = [c for c in cells if not re.fullmatch(r"[\d\s.,:/\-+£$%]+", c)]
        if len(labels) >= 0.8 * len(cells) and all(len(c) <= 80 for c in cells):
            return i
    return None


def _two_row_header(rows: list[list[str]], at: int) -> bool:
    """Whether the header found at ``at`` is the upper of two header rows: group labels over gaps (a
    spreadsheet's merged cells, "Incident" over "Date" and "Time") that the next row fills with names,
    every one of them a label, not data."""
    if at + 2 >= len(rows):
        return False
    upper, lower = ([str(c).strip() for c in r] for r in (rows[at], rows[at + 1]))
    named = [k for k, c in enumerate(lower) if c]
    gaps = [k for k in named if k < len(upper) and not upper[k] and any(upper[:k])]
    labels = all(not re.fullmatch(r"[\d\s.,:/\-+£$%]+", lower[k]) and len(lower[k]) <= 80 for k in named)
    return bool(gaps) and labels and len(named) >= 2 and len(set(lower[k] for k in named)) == len(named)


def _read(path: Path, sheet) -> tuple[dict, pd.DataFrame, list[str], list[str]]:
    """(reader entry, the table as strings, header, todo) of the file."""
    fmt = AUTO_FORMATS.get(path.suffix.lower())
    if not path.is_file():
        raise UserError("the file does not exist.", file=str(path))
    todo: list[str] = []
    if fmt is None:
        raise UserError(f"cannot tell the format of '{path.name}' from its extension "
                        f"(known: {', '.join(AUTO_FORMATS)}).", file=str(path))
    reader: dict = {"format": fmt}
    if fmt == "csv":
        with open(path, "rb") as fh:
            head = fh.read(1 << 20)
        if b"\0" in head[:1 << 16] and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise UserError("the file is binary, not CSV text.", file=str(path))
        enc = _encoding(path, head)
        text = head.decode(enc, errors="replace")
        lines = [ln for ln in text.splitlines()[:60] if ln.strip()]
        delim = _delimiter(lines[:40])
        rows = [r for r in csv.reader(io.StringIO("\n".join(lines[:40])), delimiter=delim) if r]
        at = _header_index(rows)
        reader.update({"encoding": enc, "delimiter": delim})
        found = at is not None   # a group row on line 1 is the first row found, 0 (it was taken for not found)
        if at is None:
            at = 0
            todo.append("reader.header_row: no header row found; set it (1-based), or 'names' for a file without one")
        if found and _two_row_header(rows, at):
            reader["group_row"], at = at + 1, at + 1
        if at:
            reader["header_row"] = at + 1
    elif fmt == "excel":
        check_workbook(path)
        try:
            book = pd.ExcelFile(path)
        except Exception as exc:   # damaged workbooks raise many types
            raise UserError(f"the workbook cannot be read ({type(exc).__name__}).", file=str(path)) from None
        names = book.sheet_names
        if sheet is None:
            sizes = {n: pd.read_excel(book, sheet_name=n, header=None, dtype=str).dropna(how="all").shape[0] for n in names}
            sheet = max(names, key=lambda n: sizes[n])
        elif str(sheet) not in names:
            raise UserError(f"the workbook has no sheet '{sheet}' (it has: {', '.join(names)}).", file=str(path))
        top = pd.read_excel(book, sheet_name=sheet, header=None, dtype=str, nrows=40).fillna("")
        rows = top.astype(str).values.tolist()
        at = _header_index(rows)
        reader["sheet"] = str(sheet)
        found = at is not None
        if at is None:
            at = 0
            todo.append("reader.header_row: no header row found on the sheet; set it (1-based, as Excel shows it)")
        if found and _two_row_header(rows, at):
            reader["group_row"], at = at + 1, at + 1
        reader["header_row"] = at + 1
    table = read_source(path, reader)
    # A column with no name in the header (a blank cell; pandas' "Unnamed: 2") cannot be named by a mapping:
    # said, and left out of the draft (it failed 'internal error (KeyError: '')').
    header = [c for c in table.columns if c != "_row"]
    blank = [k + 1 for k, c in enumerate(header) if not str(c).strip() or re.fullmatch(r"Unnamed: \d+", str(c))]
    if blank:
        todo.append(f"reader: column(s) {', '.join(map(str, blank))} have no name in the header row: not drafted; "
                    "give them a name in the file to use them")
    return reader, table.rows, [c for k, c in enumerate(header) if k + 1 not in blank], todo


# ----------------------------------------------------------------------------- columns
def _values(col: pd.Series) -> pd.Series:
    v = col.astype(str).str.strip()
    v = v[v != ""]
    return v.iloc[:SAMPLE]


def _all(col: pd.Series) -> pd.Series:
    """Every non-blank value of a column (for maps, which must hold every value)."""
    v = col.astype(str).str.strip()
    return v[v != ""]


def _share(mask: pd.Series) -> float:
    return float(mask.mean()) if len(mask) else 0.0


def _personal(name: str, v: pd.Series) -> str | None:
    """Why a column is personal data (None when it is not)."""
    words = _words(name)
    place = names_place(name)
    header = personal_header(name)
    if header:
        return header
    if not len(v):
        return None
    low = v.str.lower()
    if _share(low.str.fullmatch(_EMAIL)) > 0.3:
        return "values: e-mail addresses"
    if _share(v.str.fullmatch(_PHONE)) > 0.3:
        return "values: phone numbers"
    if _share(v.str.fullmatch(_NHS)) > 0.5 and "ref" not in words:
        return "values: 10-digit numbers (NHS numbers?)"
    if not place and v.str.split().str.len().mean() >= 7 and v.nunique() > 0.5 * len(v):
        return "values: narrative free text"
    return None


def _date_columns(raw: pd.DataFrame, cols: list[str], formats: list[str]) -> list[tuple[float, str, list[str]]]:
    """(score, column, formats that read it) of every column most of whose values read as dates."""
    out = []
    for c in cols:
        v = _values(raw[c])
        if len(v) < 1 or v.str.len().max() > 40:
            continue
        used, parsed = [], pd.Series(pd.NaT, index=v.index, dtype="datetime64[ns]")
        for f in formats:
            todo = parsed.isna()
            if not todo.any():
                break
            got = parse_date_text(v[todo], [f])
            if got.notna().any():
                used.append(f)
                parsed[todo] = got
        # Times stamped with their offset from UTC ('2019-04-03T21:15:00+01:00', 'Z'), as apps and GeoJSON
        # write them: no strftime format of the base reads them; "ISO8601" does (UK clock time).
        stamped = parsed.isna() & v.str.fullmatch(_ISO_STAMPED)
        if stamped.any():
            got = parse_date_text(v[stamped], ["ISO8601"])
            if got.notna().any():
                used.append("ISO8601")
                parsed[stamped] = got
        share = _share(parsed.notna())
        if share < 0.6:
            continue
        words = _words(c)
        score = share + 0.5 * bool(words & _INCIDENT_WORDS) - 0.3 * bool(words & _SECOND_WORDS) \
            + 0.1 * ("date" in words)
        out.append((score, c, used))
    return sorted(out, key=lambda t: -t[0])


# Month-only formats, tried when no column holds days (the month's precision, never a made-up day).
MONTH_FORMATS = ["%b-%Y", "%b %Y", "%B %Y", "%B-%Y", "%b-%y", "%b %y", "%m/%Y", "%Y-%m"]
_TIME = r"\d{1,2}[:.]\d{2}(:\d{2})?|\d{4}"
_ISO_STAMPED = r"\d{4}-\d{2}-\d{2}[T ]" + ISO_STAMPED_TIME


def _time_column(raw: pd.DataFrame, cols: list[str], date_col: str) -> str | None:
    """A column of times of day that goes with the date column ('Assault_Time' with 'Assault_Date')."""
    dw = _words(date_col) - {"date", "dt"}
    best, score = None, 0.0
    for c in cols:
        words = _words(c)
        if "time" not in words or c == date_col:
            continue
        v = _values(raw[c])
        share = _share(v.str.fullmatch(_TIME)) if len(v) else 0.0
        s = share + 0.5 * bool(words & dw) - 0.3 * bool(words & _SECOND_WORDS)
        if share >= 0.5 and s > score:
            best, score = c, s
    return best


def _numeric(v: pd.Series) -> pd.Series:
    """Numbers as the loader reads them (``readers.numbers``: '532,754' too), NaN where a cell is none."""
    return pd.Series(numbers(v.astype(str)), index=v.index)


# Cells that say "no value" in a coordinate column: blanks, not unreadable numbers.
_PLACEHOLDERS = {"n/a", "na", "-", "--", "none", "null", "nil", "unknown", "n/k", "nk", "?", "tbc"}
# Header words that name a coordinate column whatever its cells hold.
_COORD_WORDS = {"lon", "lng", "longitude", "lat", "latitude", "easting", "eastings", "northing", "northings"}
_DEGREE_WORDS = {"lon", "lng", "long", "longitude", "lat", "latitude"}


def _coordinate_pairs(raw: pd.DataFrame, cols: list[str]) -> list[dict]:
    """lonlat and en candidates from numeric columns, by header words and value ranges.

    A column is numeric when 90 % of its cells are numbers, or half of them when its header names a
    coordinate ('Longitude', 'Easting'): a partner's messy cells (DMS, '531927,5', 'N/A') must not make the
    draft drop named coordinate columns for free text (the analyst hears of the cells in a TODO)."""
    nums = {}
    for c in cols:
        v = _values(raw[c])
        v = v[~v.str.lower().isin(_PLACEHOLDERS)]
        # A column its header names a longitude or latitude is read as the loader reads one: decimal
        # commas ('51,5145') and degrees-minutes-seconds too (its number alone reads '51,501' as 51501).
        n = pd.Series(degrees(v), index=v.index) if _words(c) & _DEGREE_WORDS else _numeric(v)
        need = 0.5 if _words(c) & _COORD_WORDS else 0.9
        if len(v) and _share(n.notna()) > need:
            nums[c] = n.dropna()
    out = []

    def pick(keys: set[str], lo: float, hi: float, exclude=(), other=(0.0, 0.0)) -> str | None:
        for c, n in nums.items():
            # A value in the other coordinate's range is a swapped row (fix_swapped puts it back).
            mine, theirs = n.between(lo, hi), n.between(*other)
            enough = 0.5 if _words(c) & _COORD_WORDS else 0.8
            if c not in exclude and _words(c) & keys and (mine | theirs).mean() > enough and mine.mean() > 0.5:
                return c
        return None

    lon = pick({"lon", "lng", "long", "longitude", "x"}, -9, 2.5, other=(49, 61))
    lat = pick({"lat", "latitude", "y"}, 49, 61, exclude=(lon,), other=(-9, 2.5))
    if lon and lat:
        out.append({"kind": "lonlat", "x": lon, "y": lat, "fix_swapped": True})
    east = pick({"easting", "eastings", "east", "x", "e", "grid", "osgr"}, 1000, 700000, exclude=(lon, lat))
    north = pick({"northing", "northings", "north", "y", "n", "grid", "osgr"}, 1000, 1250000,
                 exclude=(lon, lat, east))
    if east and north:
        out.append({"kind": "en", "x": east, "y": north})
    return out


def _location(raw: pd.DataFrame, cols: list[str], vector: bool) -> tuple[list[dict], list[str]]:
    """Location candidates in the order they are tried, and the columns they use."""
    cands: list[dict] = [{"kind": "geometry"}] if vector else []
    cands += _coordinate_pairs(raw, cols)
    used = [c for cand in cands for c in (cand.get("x"), cand.get("y")) if c]
    grid, posts, free = [], [], []
    for c in cols:
        if c in used:
            continue
        v = _values(raw[c])
        if not len(v):
            continue
        g = _share(looks_like_gridref(v) & parse_gridref(v.iloc[:500]).reindex(v.index)["reason"].fillna("x").eq(""))
        p = _share(is_postcode(compact_postcode(v)))
        words = _words(c)
        if g >= 0.2 and g + p >= 0.8:
            grid.append({"kind": "gridref", "column": c, **({"detect": True} if p > 0.05 else {})})
            if p > 0.05:
                posts.append({"kind": "postcode", "column": c})
        elif p >= 0.8 or (p >= 0.3 and "postcode" in words):
            # A column its header calls a postcode, some cells partial ('EC2A', 'E1 6'): its full ones place
            # their rows better than free text does (an ED's incident postcode was left 'not used').
            posts.append({"kind": "postcode", "column": c})
        elif words & _PLACE_WORDS and not words & {"type", "category", "kind", "class"} and \
                v.nunique() > min(20, 0.1 * len(v)):
            # A column its header calls a station ('Station', 'Station name'): a transport police log names
            # stations there, and unhinted 'Liverpool Street' is the street (a user audit).
            free.append({"kind": "freetext", "column": c,
                         **({"gazetteer": ["stations"]} if words & {"station", "stations"} else {})})
    cands += grid + posts + free[:1]
    return cands, [c for cand in cands for c in (cand.get("x"), cand.get("y"), cand.get("column")) if c]


def _known_names() -> dict[str, str]:
    """Every name the taxonomy itself gives a category (its codes, labels and the police.uk names and slugs
    of ``CATEGORY_MAPS``), lower case, to its code."""
    known = {code: code for code in TAXONOMY}
    known.update({v["label"].lower(): code for code, v in TAXONOMY.items()})
    for table in CATEGORY_MAPS.values():
        known.update({k.lower(): v for k, v in table.items()})
    return known


def suggest_category(value: str) -> str | None:
    """The taxonomy code a partner's category value suggests: the taxonomy's own names first (police.uk's
    "Violence and sexual offences" is violent crime, not a sexual offence), else its words
    (``CATEGORY_KEYWORDS``); None when neither."""
    low = " ".join(str(value).lower().split())
    if low in _KNOWN:
        return _KNOWN[low]
    for pattern, code in CATEGORY_KEYWORDS:
        if re.search(pattern, low):
            return code
    return None


_KNOWN = _known_names()


def _category_column(raw: pd.DataFrame, cols: list[str]) -> tuple[str | None, dict]:
    """The column whose values best read as categories, and its value -> suggestion table."""
    best, best_score, best_map = None, 0.0, {}
    for c in cols:
        v = _values(raw[c])
        if not len(v):
            continue
        distinct = _distinct(v)
        words = _words(c)
        # Few distinct values, or a header that says category (a small file may show each value once).
        few = len(distinct) <= max(3, 0.5 * len(v)) or (words & _CATEGORY_WORDS and v.str.len().mean() < 40)
        if len(distinct) > 60 or not few or _share(_numeric(v).notna()) > 0.5:
            continue
        table = {val: suggest_category(val) for val in distinct.index}
        hit = sum(distinct[val] for val, code in table.items() if code) / distinct.sum()
        score = hit + 0.4 * bool(words & _CATEGORY_WORDS) - 0.5 * bool(words & {"location", "mode", "agency",
                                                                               "source", "team", "provider"})
        if score > best_score and (hit > 0 or words & _CATEGORY_WORDS):
            best, best_score, best_map = c, score, table
    return best, best_map


def _distinct(values: pd.Series) -> pd.Series:
    """Counts of distinct values compared as the mapping does (``"case": "insensitive"``): one entry per
    value whatever its case and spacing, under its most common spelling."""
    key = values.str.lower().str.split().str.join(" ")
    counts = values.groupby(key).agg(lambda s: s.value_counts().index[0]).to_frame("shown")
    counts["n"] = key.value_counts()
    return counts.set_index("shown")["n"].sort_values(ascending=False, kind="stable")


def _word_map(values: pd.Series, words: dict) -> dict | None:
    """value -> mapped word table when most values are those words; None otherwise."""
    distinct = _distinct(values)
    table = {val: words.get(" ".join(val.lower().split())) for val in distinct.index}
    known = sum(distinct[k] for k, m in table.items() if m is not None) / max(distinct.sum(), 1)
    return table if known >= 0.6 and len(distinct) <= 12 else None


# ----------------------------------------------------------------------------- the draft
def draft_mapping(path: str | Path, sheet=None) -> Draft:
    """Read ``path`` and draft its mapping; see the module docstring."""
    path = Path(path)
    reader, raw, header, todo = _read(path, sheet)
    if not len(raw):
        raise UserError("the file has a header but no rows: there is nothing to draft a mapping from.",
                        file=str(path))
    vector = reader["format"] == "vector"
    cols = [c for c in header if not c.startswith("_")]
    role: dict[str, str] = {}
    personal = {}
    for c in cols:
        why = _personal(c, _values(raw[c]))
        if why:
            personal[c] = why
            role[c] = f"left out: personal data ({why})"
    usable = [c for c in cols if c not in personal]
    name = re.sub(r"[^a-z0-9_]+", "_", path.stem.lower()).strip("_") or "partner"
    mapping: dict = {"name": name,
                     "title": f"{path.name} (drafted by hotspots draft-mapping: check it and answer what it marks)",
                     "extends": "partner_generic", "reader": reader, "evidence": "partner_record",
                     "fields": {}}

    # When: the date column and the formats that read it.
    base = source_schema("partner_generic")["date"]["formats"]
    dates = _date_columns(raw, usable, with_times(base))
    # No day anywhere: a column of months ('Mar-2019', 'March 2019', '2019-03'), as a referral log keeps them.
    monthly = not dates and bool(dates := _date_columns(raw, usable, MONTH_FORMATS))
    date: dict = {}
    if dates:
        _, dcol, used = dates[0]
        # The formats seen first, then the base's others: next month's extract may be written differently.
        date = {"column": dcol, "formats": list(dict.fromkeys(used + (MONTH_FORMATS if monthly else base))),
                "precision": "month" if monthly else "day"}
        role[dcol] = f"date (formats seen: {', '.join(used)})"
        tcol = None if monthly else _time_column(raw, usable, dcol)
        if tcol:
            date.update({"time_column": tcol, "precision": "minute"})
            role[tcol] = "time"
        # Without a time column, "day": a time written in the date cell makes that row "minute" by itself.
        blank = int((raw[dcol].astype(str).str.strip() == "").sum())
        for _, other, oused in dates[1:]:
            # A blank incident date dated from a later one (an ED's arrival): the incident came before it.
            if blank and "fallback" not in date and _words(other) & _SECOND_WORDS:
                otime = _time_column(raw, [c for c in usable if c not in role], other)
                date["fallback"] = {"column": other, "hours_before": 24,
                                    "note": f"{dcol} blank: within 24 hours before {other}"}
                role[other] = f"date when {dcol} is blank (formats seen: {', '.join(oused)})"
                if otime:
                    date["fallback"]["time_column"] = otime
                    role[otime] = "time (of the fallback date)"
                todo.append(f"date.fallback: {blank:,} rows have no {dcol}; they are dated within "
                            f"fallback.hours_before = 24 hours before {other}: check the span, or remove "
                            "the fallback to reject them")
            role.setdefault(other, "another date (not used)")
    else:
        date = {"column": TODO}
        todo.append("date.column: no column reads as dates with the base formats; name the incident date "
                    "column and its formats (strftime, e.g. \"%d/%m/%Y %H:%M\")")
    mapping["date"] = date

    # Where.
    cands, loc_cols = _location(raw, [c for c in usable if c not in role], vector)
    if cands:
        mapping["location"] = cands if len(cands) > 1 else cands[0]
        for cand in cands:
            for c in (cand.get("x"), cand.get("y"), cand.get("column")):
                if c:
                    role[c] = role[c] + f", {cand['kind']}" if role.get(c, "").startswith("location") \
                        else f"location ({cand['kind']}"
        role.update({c: r + ")" for c, r in role.items() if r.startswith("location (")})
        for cand in cands:
            if cand["kind"] == "geometry" and "_shape" in raw:
                shapes = raw["_shape"][raw["_shape"] != ""]
                if len(shapes):     # areas, lines, several points: the loader rejects them, not a place inside
                    kinds = ", ".join(sorted(set(shapes)))
                    todo.append(f"location.geometry: {len(shapes):,} feature(s) are not points ({kinds}): those rows "
                                "are rejected 'not a point', or placed by a later candidate; export the incidents "
                                "as points, or name a column that places them")
            if cand.get("gazetteer") == ["stations"]:
                # A police log's 'Station' can be the station that recorded the incident: every record would be
                # placed at the tube stop of that name, a hotspot that is only a police station's workload.
                todo.append(f"location.freetext: '{cand['column']}' is read as rail and tube station names only; "
                            "check that it says where the incident happened, not the police station or office that "
                            "recorded it (then map another column), and drop the gazetteer line if it holds streets")
            if cand["kind"] == "postcode":
                cells = _all(raw[cand["column"]])
                bad = int((~is_postcode(compact_postcode(cells))).sum())
                if bad and not any(c.get("column") == cand["column"] and c["kind"] == "gridref" for c in cands):
                    todo.append(f"location.postcode: {bad:,} cell(s) of {cand['column']} are not full postcodes "
                                "(a district 'EC2A', a sector 'E1 6', a typo): those rows are placed by a later "
                                "candidate, or rejected ('partial postcode' or 'not a valid postcode')")
            if cand["kind"] in ("lonlat", "en"):
                cells = pd.concat([_all(raw[cand["x"]]), _all(raw[cand["y"]])])
                cells = cells[~cells.str.lower().isin(_PLACEHOLDERS)]
                lonlat = cand["kind"] == "lonlat"   # read as the loader reads degrees (a comma, DMS) or numbers
                bad = int(np.isnan(degrees(cells)).sum() if lonlat else _numeric(cells).isna().sum())
                if bad:
                    todo.append(f"location.{cand['kind']}: {bad:,} cell(s) of {cand['x']} / {cand['y']} are not "
                                + ("degrees the loader reads (a decimal, a decimal comma or degrees-minutes-seconds"
                                   " with N/S/E/W)" if lonlat else "plain numbers (a letter, a unit)")
                                + ": those rows are rejected, or placed by a later candidate; correct them in the "
                                  "file or accept it")
    else:
        mapping["location"] = {"kind": TODO, "column": TODO}
        todo.append("location: no coordinates, postcode, grid reference or place column found; set the kind "
                    "(lonlat, en, gridref, postcode, freetext, geometry) and its column(s)")

    # What: category, severity, role, grades, handling.
    rest = [c for c in usable if c not in role]
    ccol, _ = _category_column(raw, rest)
    fields = mapping["fields"]
    values_seen: dict = {}
    if ccol:
        role[ccol] = "category"
        # Every value of the column, not only the sample: a value first seen in the last row still needs a code.
        counts = _distinct(_all(raw[ccol]))
        cmap = {val: (suggest_category(val) or TODO) for val in counts.index}
        if (raw[ccol].astype(str).str.strip() == "").any():
            cmap[""] = TODO
        fields["source_category"] = {"column": ccol}
        fields["category"] = {"column": ccol, "case": "insensitive", "map": cmap}
        blanks = int((raw[ccol].astype(str).str.strip() == "").sum())
        values_seen = {val: int(counts.get(val, 0)) if val else blanks for val in cmap}
        missing = [v for v, code in cmap.items() if code == TODO]
        if missing:
            todo.append(f"fields.category.map: {len(missing)} value(s) of '{ccol}' with no suggested taxonomy code "
                        f"({', '.join(repr(m) for m in missing[:8])}{' ...' if len(missing) > 8 else ''}); "
                        f"use a code of data_schemas/taxonomy.json, or drop the value and set \"unknown\"")
    else:
        fields["category"] = {"value": TODO}
        todo.append("fields.category: no category column found; map a column of incident types, or give every "
                    "row one code with {\"value\": \"violent-crime\"}")
    for c in [c for c in usable if c not in role]:
        v = _values(raw[c])
        if not len(v):
            continue
        words = _words(c)
        sev = _word_map(_all(raw[c]), SEVERITY_WORDS)
        if sev and "severity" not in fields:
            fields["severity"] = {"column": c, "case": "insensitive", "label": c.lower(),
                                  "map": {k: (m or TODO) for k, m in sev.items()}}
            fields["source_severity"] = {"column": c}
            role[c] = "severity"
            if TODO in fields["severity"]["map"].values():
                todo.append(f"fields.severity.map: values of '{c}' with no suggested severity 1-4")
            continue
        rmap = _word_map(_all(raw[c]), ROLE_WORDS) if "role" in words or "involvement" in words else None
        if rmap and "role" not in fields:
            fields["role"] = {"column": c, "case": "insensitive", "label": "role",
                              "map": {k: (m or TODO) for k, m in rmap.items()}}
            role[c] = "role"
            if TODO in fields["role"]["map"].values():
                todo.append(f"fields.role.map: values of '{c}' with no suggested role (victim, suspect, witness, "
                            "unknown)")
            continue
        up = set(_all(raw[c]).str.upper().unique())
        if "handling" in words and up <= {"P", "C", "1", "2", "3", "4", "5"}:
            fields["handling"] = {"column": c, "upper": True, "allowed": sorted(up), "label": "handling code"}
            role[c] = "handling"
        elif words & {"source", "src"} and words & {"eval", "evaluation", "grade", "grading"} and len(up) <= 5:
            fields["grade_source"] = {"column": c, "upper": True, "allowed": sorted(up), "label": c.lower()}
            role[c] = "grade (source)"
        elif words & {"intel", "intelligence", "information"} and words & {"eval", "evaluation", "grade",
                                                                          "grading", "assessment"} and len(up) <= 5:
            fields["grade_intel"] = {"column": c, "upper": True, "allowed": sorted(up), "label": c.lower()}
            role[c] = "grade (intelligence)"
    if "grade_source" in fields or "grade_intel" in fields:
        mapping["evidence"] = "intelligence"
    # A reference exported twice is one record.
    for c in [c for c in usable if c not in role]:
        v = _values(raw[c])
        if len(v) >= 0.9 * min(len(raw), SAMPLE) and _words(c) & _REF_WORDS and v.nunique() >= 0.9 * len(v):
            mapping["dedupe"] = {"column": c, "scope": name}
            role[c] = "reference (dedupe, kept hashed)"
            break
    for c in cols:
        role.setdefault(c, "not used")
    needs = {cand["kind"] for cand in (cands or [])}
    config = [f'[[sources]]', f'id = "{name}"', f'path = "{path.name}"', f'schema = "{name}.json"',
              f'evidence = "{mapping["evidence"]}"', 'weight = 1.0',
              'coverage = ["TODO: the boundary areas this partner covers"]']
    codes = [] if not ccol else list(dict.fromkeys(
        code for val, code in sorted(fields["category"]["map"].items(), key=lambda kv: -values_seen.get(kv[0], 0))
        if code != TODO))
    if codes:
        # Without a categories line every record the mapping keeps counts as risk: a council log's noise and
        # begging doubled a hotspot region in a user audit. The codes are listed for the analyst to trim.
        config.append("categories = [" + ", ".join(f'"{c}"' for c in codes) + "]   # TODO: keep the risk ones")
        todo.append(f"categories: the [[sources]] line lists every code the mapping gives ({len(codes)}); keep "
                    "only those that count as risk for this partnership (anti-social behaviour covers noise and "
                    "begging): without the line, every record counts")
    if needs & {"postcode", "freetext"}:
        config.append("# and [geocoding] postcodes = \"<Code-Point Open CSVs>\" in the config")
    todo.append("evidence: check the evidence class (recorded_crime, health, partner_record, intelligence, "
                f"community_report, police_activity); drafted as {mapping['evidence']}")
    mapping["_draft"] = {"file": path.name, "rows": int(len(raw)), "columns": role,
                         "left_out": sorted(personal), "category_values": values_seen,
                         "todo": todo, "config": config,
                         "how": "drafted by hotspots draft-mapping; keys starting with _ are comments; "
                                "the format: docs/mappings.md"}
    return Draft(mapping, _summary(mapping))


def _summary(m: dict) -> list[str]:
    d = m["_draft"]
    r = m["reader"]
    lines = [f"{d['file']}: {d['rows']:,} rows, read as {r['format']}"
             + (f", encoding {r['encoding']}" if "encoding" in r else "")
             + (f", delimiter {r['delimiter']!r}" if "delimiter" in r else "")
             + (f", sheet '{r['sheet']}'" if "sheet" in r else "")
             + f", header on row {r.get('header_row', 1)}"
             + (f" under group labels on row {r['group_row']}" if "group_row" in r else "")]
    date = m["date"]
    if date.get("column") != TODO:
        lines.append(f"date: '{date['column']}'" + (f" with time '{date['time_column']}'" if "time_column" in date
                                                    else "") + f" ({d['columns'][date['column']][6:-1]}), "
                     f"precision {date['precision']}"
                     + (" (minute where a cell has a time)" if date["precision"] == "day" and
                        "%H" in d["columns"][date["column"]] else ""))
    if "fallback" in date:
        fb = date["fallback"]
        lines.append(f"  blank dates: within {fb['hours_before']} hours before '{fb['column']}'"
                     + (f" and '{fb['time_column']}'" if "time_column" in fb else ""))
    loc = m["location"] if isinstance(m["location"], list) else [m["location"]]
    lines.append("location: " + "; then ".join(
        f"{c['kind']} ({', '.join(str(c[k]) for k in ('x', 'y', 'column') if k in c) or 'geometry'})" for c in loc))
    cat = m["fields"].get("category", {})
    if "map" in cat:
        lines.append(f"category: '{cat['column']}'")
        for val, code in cat["map"].items():
            lines.append(f"  {val or '(blank)'!s:40.40} {d['category_values'].get(val, 0):>7,}  -> {code}")
    for f in ("severity", "role", "handling", "grade_source", "grade_intel"):
        if f in m["fields"]:
            lines.append(f"{f}: '{m['fields'][f]['column']}'")
    if "dedupe" in m:
        lines.append(f"reference (dedupe): '{m['dedupe']['column']}'")
    if d["left_out"]:
        lines.append(f"left out as personal data: {', '.join(d['left_out'])}")
    lines.append(f"TODO ({len(d['todo'])}):")
    lines += [f"  - {t}" for t in d["todo"]]
    return lines
