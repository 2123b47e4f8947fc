"""Offline geocoding: postcodes, OS grid references and free-text place names to British National Grid.

Nothing here goes to the network. Three look-ups, each built from files the
partnership holds:

- ``PostcodeLookup``: OS Code-Point Open CSVs (no header, postcodes padded to
  seven characters, ``"E1  0AA"``) or the ONS Postcode Directory (a header
  with ``pcds``/``pcd``, ``oseast1m``, ``osnrth1m``). Postcodes are compared
  without spaces, in upper case.
- ``parse_gridref``: OS grid references (``"TQ 32345 81234"``, ``"tq3234581234"``,
  ``"TQ 308 825"``) to the centre of the square they name.
- ``Gazetteer``: named places: streets (the median of the police.uk snap points
  published as "On or near <street>"), stations and key buildings. Free text
  ("outside Liverpool St station", "Fenchurch St nr the Tesco") is matched
  against it after both sides are reduced to one canonical form
  (``canonical``; the rules are data, in ``data_schemas/gazetteer.json``).

Names as partners write them: a text that is only a station's name, with filler
words ("outside", "o/s") and operator suffixes ("LU", "NR", "DLR"), is that station
(``Gazetteer._bare``), at the wider ``district`` precision when the one-word name is
also a district's ("Angel", "Bank"); a school also answers to the distinctive part of
its name where the text says school ("Prior Weston school"; ``short_name``). Both
rules are data in ``gazetteer.json`` (``bare_names``, ``building_short_names``).

Junctions (``Gazetteer.junction``): "junction of A and B", "corner of A and B", "A / B",
"A & B junction", "A jct B", "j/o A and B" (and "A and B" alone). When A and B are both
streets whose nearest snap points lie within ``JUNCTION_MAX_M`` metres (300 m), the record is
placed at the midpoint of those two points: level ``street``, how ``junction``, precision
their distance apart, at least ``street_min``. When only one part names a street, that street
is the match (as any other text); two streets farther apart, or a part that is not a street,
fall back to ordinary matching. Nothing is placed when neither part names a known place.

A per-column hint (``geocode_text(text, kinds=...)``; the mapping's ``"gazetteer":
["stations"]`` on a freetext candidate, values ``GAZETTEER_KINDS``) restricts the matcher
to those kinds of place; a column hinted stations only reads a one-word station name
("Bank") as the station, without a cue word and at place precision.

``Geocoder`` combines them. Every record gets a match level (``postcode``,
``street``, ``place`` or ``unmatched``) and a precision in metres; an
unmatched record gets a reject reason and no coordinates: nothing is ever
placed where the text does not say.

Precision (``gazetteer.json`` ``precision_m``): postcode 100 m; street the
75th percentile distance of its snap points from their median, kept within
at least 150 m (150-300 m typically, up to 500 m on a long street; wider names are ambiguous
and dropped); place 100 m.
"""
from __future__ import annotations

import glob
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from hotspots.errors import UserError
from hotspots.frames import first_rows, row_groups
from hotspots.schema import schemas_dir

RULES = json.loads((schemas_dir() / "gazetteer.json").read_text(encoding="utf-8"))
PRECISION = RULES["precision_m"]
LEVELS = ("postcode", "street", "place", "unmatched")
# The hint values a freetext column may restrict the matcher to, and the place kind each names.
GAZETTEER_KINDS = {"streets": "street", "stations": "station", "buildings": "building", "postcodes": "postcode"}
JUNCTION_MAX_M = 300.0

# ----------------------------------------------------------------------------- postcodes
_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$")
# A postcode's district ("E1", "EC2M") or sector ("E16", "EC2M7", written "E1 6"), compact: an area of
# hundreds of addresses, too wide to place an incident on a grid of cells (never its centroid).
# The postcode areas of the UK and Crown dependencies (Royal Mail): "A1" (a road) is no district.
POSTCODE_AREAS = ("AB AL B BA BB BD BH BL BN BR BS BT CA CB CF CH CM CO CR CT CV CW DA DD DE DG DH DL DN DT DY "
                  "E EC EH EN EX FK FY G GL GU GY HA HD HG HP HR HS HU HX IG IM IP IV JE KA KT KW KY L LA LD LE "
                  "LL LN LS LU M ME MK ML N NE NG NN NP NR NW OL OX PA PE PH PL PO PR RG RH RM S SA SE SG SK SL "
                  "SM SN SO SP SR SS ST SW SY TA TD TF TN TQ TR TS TW UB W WA WC WD WF WN WR WS WV YO ZE").split()
_PARTIAL_POSTCODE = re.compile(rf"^(?:{'|'.join(POSTCODE_AREAS)})[0-9][A-Z0-9]?[0-9]?$")
PARTIAL_POSTCODE = "partial postcode (district or sector only): too wide to place"
_POSTCODE_IN_TEXT = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{1,2}[0-9][A-Za-z0-9]?)\s*([0-9][A-Za-z]{2})(?![A-Za-z0-9])")


def compact_postcode(text: pd.Series) -> pd.Series:
    """Postcodes without spaces, upper case: ``"ec2m  7py "`` -> ``"EC2M7PY"``."""
    return text.fillna("").astype(str).str.replace(r"\s+", "", regex=True).str.upper()


def is_postcode(compact: pd.Series) -> pd.Series:
    """True where a compact postcode has the shape of a full UK postcode (outward and inward code)."""
    return compact.str.fullmatch(_POSTCODE.pattern).fillna(False).astype(bool)


def pretty_postcode(compact: str) -> str:
    """``"EC2M7PY"`` -> ``"EC2M 7PY"``."""
    return f"{compact[:-3]} {compact[-3:]}" if len(compact) > 3 else compact


def postcode_in_text(text: pd.Series) -> pd.Series:
    """The first full postcode written anywhere in free text, compact; empty when none."""
    found = text.fillna("").astype(str).str.extract(_POSTCODE_IN_TEXT)
    return (found[0].fillna("") + found[1].fillna("")).str.upper()


def _read_postcode_file(path: str) -> pd.DataFrame:
    with open(path, encoding="latin-1") as fh:
        first = fh.readline()
    head = first.lower()
    try:
        if "oseast1m" in head:             # ONS Postcode Directory
            df = pd.read_csv(path, dtype=str, encoding="latin-1", usecols=lambda c: c.lower() in
                             ("pcd", "pcds", "oseast1m", "osnrth1m"))
            df.columns = [c.lower() for c in df.columns]
            pc = df["pcds"] if "pcds" in df else df["pcd"]
            e, n = df["oseast1m"], df["osnrth1m"]
        else:                              # OS Code-Point Open, with or without its header row
            header = 0 if "postcode" in head or "eastings" in head else None
            df = pd.read_csv(path, dtype=str, encoding="latin-1", header=header, usecols=[0, 2, 3])
            pc, e, n = df.iloc[:, 0], df.iloc[:, 1], df.iloc[:, 2]
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise UserError(f"the postcode file cannot be read as OS Code-Point Open or ONS Postcode Directory "
                        f"({exc}).", file=path) from None
    e = pd.to_numeric(e, errors="coerce")
    n = pd.to_numeric(n, errors="coerce")
    # Code-Point quality 90 and ONSPD terminated/unplaced postcodes carry 0 or blank coordinates.
    placed = e.notna() & n.notna() & (e > 0) & (n > 0)
    return pd.DataFrame({"postcode": compact_postcode(pc), "x": e.where(placed), "y": n.where(placed)})


@lru_cache(maxsize=8)
def _read_postcodes(files: tuple[tuple[str, float], ...]) -> pd.DataFrame:
    table = pd.concat([_read_postcode_file(f) for f, _ in files], ignore_index=True)
    return table.drop_duplicates("postcode").set_index("postcode")


@dataclass
class PostcodeLookup:
    """Postcode -> BNG point. ``table`` is indexed by compact postcode, columns ``x``, ``y`` (NaN: no coordinates)."""
    table: pd.DataFrame
    files: list[str] = field(default_factory=list)

    @classmethod
    def from_files(cls, files: list[str]) -> "PostcodeLookup":
        key = tuple((f, Path(f).stat().st_mtime) for f in sorted(files))
        return cls(_read_postcodes(key), [f for f, _ in key])

    def locate(self, text: pd.Series) -> pd.DataFrame:
        """Columns ``x``, ``y``, ``postcode`` (compact) and ``reason``: "" when located, else
        "not a valid postcode", ``PARTIAL_POSTCODE`` (a district or sector), "postcode not found" or
        "postcode has no coordinates" (the value is never quoted: a postcode column may hold free text)."""
        compact = compact_postcode(text)
        valid = is_postcode(compact)
        # Positions in the table by its index's own hash table, built once per table (``isin`` hashed
        # every postcode of the lookup again at each call: 0.2-0.5 s a partner file).
        at = self.table.index.get_indexer(compact.where(valid, "\0"))
        known = pd.Series(at >= 0, index=text.index)
        x = pd.Series(np.where(known, self.table["x"].to_numpy(float)[at], np.nan), index=text.index)
        y = pd.Series(np.where(known, self.table["y"].to_numpy(float)[at], np.nan), index=text.index)
        reason = pd.Series("", index=text.index, dtype=str)
        reason[~valid] = "not a valid postcode"
        reason[~valid & compact.str.fullmatch(_PARTIAL_POSTCODE.pattern).fillna(False).astype(bool)] = PARTIAL_POSTCODE
        reason[valid & ~known] = "postcode not found"
        reason[valid & known & x.isna()] = "postcode has no coordinates"
        return pd.DataFrame({"x": x.where(reason == ""), "y": y.where(reason == ""), "postcode": compact,
                             "reason": reason})


# ----------------------------------------------------------------------------- OS grid references
_GRID_LETTERS = "ABCDEFGHJKLMNOPQRSTUVWXYZ"   # 25 letters: the grid has no I
_GRIDREF = re.compile(r"^([A-HJ-Z]{2})(\d*)$")
_GRIDREF_LIKE = re.compile(r"^[A-Za-z]{2}[\d\s]*$")


def _letter_offset(letter: str) -> tuple[int, int]:
    """Column and row (from the bottom) of a letter in the OS 5 x 5 lettering."""
    k = _GRID_LETTERS.index(letter)
    return k % 5, 4 - k // 5


def looks_like_gridref(text: pd.Series) -> pd.Series:
    """True where a value has the shape of a grid reference (two letters, then digits), valid or not."""
    return text.fillna("").astype(str).str.strip().str.fullmatch(_GRIDREF_LIKE.pattern).fillna(False).astype(bool)


def parse_gridref(text: pd.Series) -> pd.DataFrame:
    """OS grid references to the centre of the square each names, in BNG metres.

    Columns ``x``, ``y``, ``precision_m`` (half the side of the square: 1 m for
    10 figures, 5 m for 8, 50 m for 6, 500 m for 4) and ``reason`` ("" or
    "malformed grid reference", without the text). Two to ten figures are accepted in an
    even number; the first letter must name a 500 km square over Great Britain
    (H, J, N, O, S, T).
    """
    malformed = (np.nan, np.nan, np.nan, "malformed grid reference")
    rows = []       # a tuple a row, made into columns once (a cell set at a time: 0.2 s a partner file)
    for raw in text.fillna("").astype(str):
        ref = re.sub(r"\s+", "", raw).upper()
        m = _GRIDREF.fullmatch(ref)
        digits = m.group(2) if m else ""
        if not m or len(digits) % 2 or not 4 <= len(digits) <= 10 or ref[0] not in "HJNOST":
            rows.append(malformed)
            continue
        c1, r1 = _letter_offset(ref[0])
        c2, r2 = _letter_offset(ref[1])
        half = len(digits) // 2
        res = 10 ** (5 - half)
        e = (c1 - 2) * 500_000 + c2 * 100_000 + int(digits[:half]) * res + res / 2
        n = (r1 - 1) * 500_000 + r2 * 100_000 + int(digits[half:]) * res + res / 2
        rows.append((float(e), float(n), float(max(res / 2, 1.0)), ""))
    x, y, prec, reason = zip(*rows) if rows else ((), (), (), ())
    return pd.DataFrame({"x": np.array(x, float), "y": np.array(y, float), "precision_m": np.array(prec, float),
                         "reason": pd.Series(reason, index=text.index, dtype=str)}, index=text.index)


# ----------------------------------------------------------------------------- canonical text
_ABBREV = RULES["abbreviations"]
_PHRASES = [(re.compile(r"\b" + re.escape(k) + r"\b"), v) for k, v in
            sorted(RULES["phrases"].items(), key=lambda kv: -len(kv[0]))]
_LONG_WORDS = [w for w in _ABBREV if len(w) >= 6]   # typo-tolerant: "stret", "staion"
_BARE = RULES["bare_names"]
_FILLERS = {w for w in _BARE["fillers"] if " " not in w}
_FILLER_PHRASES = [w.split() for w in _BARE["fillers"] if " " in w]
_SUFFIXES = set(_BARE["suffixes"])
_STOP_WORDS = set(_BARE["stop_words"])
_SHORT = RULES["building_short_names"]
_GENERIC_WORDS = set(_SHORT["generic_words"])
_SCHOOL_CUES = set(_SHORT["cues"])
_CUES = {c for c in RULES["station_cues"] if " " not in c}
_CUE_PHRASES = [c for c in RULES["station_cues"] if " " in c]


def within_one_edit(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` differ by at most one edit: a letter inserted, dropped,
    substituted, or swapped with its neighbour."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    if la > lb:
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1:]


@lru_cache(maxsize=65536)
def canonical(text: str) -> str:
    """Lower case, apostrophes dropped, punctuation to spaces, '&' as 'and', phrases and words
    abbreviated as ``gazetteer.json`` says (so 'St.', 'Street' and 'Saint' are all 'st')."""
    s = str(text).lower().replace("&", " and ")
    s = re.sub(r"['\u2019`]", "", s)
    s = re.sub(r"[^a-z0-9]+", " ", s).strip()
    for pattern, short in _PHRASES:
        s = pattern.sub(short, s)
    words = []
    for w in s.split():
        if w in _ABBREV:
            w = _ABBREV[w]
        elif len(w) >= 5 and not w.isdigit():
            near = [k for k in _LONG_WORDS if within_one_edit(w, k)]
            if len(near) == 1:
                w = _ABBREV[near[0]]
        words.append(w)
    return " ".join(words)


def short_name(name: str) -> str:
    """A building's name without the generic words of ``building_short_names`` (canonical form):
    "Prior Weston Primary School and Children's Centre" -> "prior weston"."""
    return " ".join(w for w in canonical(name).split() if w not in _GENERIC_WORDS)


def has_station_cue(canon: str) -> bool:
    """True when canonical text says it is about a station ("stn", "tube", "platform", ...)."""
    return bool(_CUES.intersection(canon.split())) or any(p in canon for p in _CUE_PHRASES)


# ----------------------------------------------------------------------------- gazetteer
_GENERIC = {g.lower() for g in RULES["police_generic_locations"]}


def street_points(names: pd.Series, x: np.ndarray, y: np.ndarray, strip: str = "",
                  keep_index: bool = False) -> pd.DataFrame:
    """Named snap points (police.uk "On or near <street>") as ``name``, ``x``, ``y``: the prefix
    stripped; generic labels ("Supermarket", "Nightclub"), junctions ("A/B") and road numbers dropped.
    ``keep_index``: indexed as ``names``, else 0, 1, ..."""
    # Each distinct label cleaned once (a million rows of police.uk hold a few thousand).
    codes, labels = pd.factorize(names.fillna("").astype(str), use_na_sentinel=False)
    label = pd.Series(labels, dtype=str).str.strip()
    if strip:
        label = label.str.replace(strip, "", regex=True).str.strip()
    usable = ((label != "") & ~label.str.lower().isin(_GENERIC) & ~label.str.contains("/", regex=False)
              & ~label.str.fullmatch(r"[ABM]\d+(\(M\))?").astype(bool)).to_numpy(bool)
    keep = usable[codes] & np.isfinite(x) & np.isfinite(y)
    return pd.DataFrame({"name": label.to_numpy(object)[codes[keep]], "x": np.asarray(x)[keep],
                         "y": np.asarray(y)[keep]}, index=names.index[keep] if keep_index else None)


def collapse_streets(points: pd.DataFrame) -> pd.DataFrame:
    """Named snap points (``name``, ``x``, ``y``) as each distinct point once, with ``n``, its records, in
    order of first appearance: a snap point's name recurs at each of its records (6.2 M rows, 208 MB,
    at 10 M incidents, held from the load to the labels; 7,300 distinct). ``street_labels`` gives the
    same labels from either form."""
    if points is None or not len(points):
        return pd.DataFrame({"name": pd.Series(dtype="str"), "x": pd.Series(dtype=float),
                             "y": pd.Series(dtype=float), "n": pd.Series(dtype=np.int64)})
    counts = points["n"].to_numpy(np.int64) if "n" in points else np.ones(len(points), np.int64)
    x, y = points["x"].to_numpy(float), points["y"].to_numpy(float)
    group = row_groups([points["name"], x, y])
    first = first_rows(group)
    return pd.DataFrame({"name": points["name"].iloc[first].astype("str").to_numpy(), "x": x[first], "y": y[first],
                         "n": np.bincount(group, weights=counts, minlength=len(first)).astype(np.int64)})


def streets_from_points(points: pd.DataFrame) -> pd.DataFrame:
    """One entry per street name: the median of its points and a precision in metres. ``points``:
    ``name``, ``x``, ``y`` a record, or each point once with ``n``, its records (the same entries).

    Returns ``name``, ``x``, ``y``, ``precision_m``, ``n`` (points), ``ambiguous``
    (points spread wider than ``street_max``: two streets of one name, or a long road) and
    ``points`` (its distinct snap points, an array of x, y rows: for junctions).
    """
    cols = ["name", "x", "y", "precision_m", "n", "ambiguous", "points"]
    if points.empty:
        return pd.DataFrame(columns=cols)
    if "n" in points:       # counted points (``collapse_streets``, ``Loaded.streets``): a row a record again
        points = points.loc[points.index.repeat(points["n"].to_numpy(np.int64))].drop(columns="n")
    pts = points.assign(canon=points["name"].map(canonical))
    pts = pts[pts["canon"] != ""]
    g = pts.groupby("canon")
    med = g[["x", "y"]].median()
    d = np.hypot(pts["x"].to_numpy() - med.loc[pts["canon"], "x"].to_numpy(),
                 pts["y"].to_numpy() - med.loc[pts["canon"], "y"].to_numpy())
    spread = pd.Series(d, index=pts.index).groupby(pts["canon"]).quantile(0.75)
    out = pd.DataFrame({
        # The spelling used most often, e.g. "St Martin'S Le Grand" as police.uk writes it.
        "name": _most_common(pts["canon"], pts["name"]),
        "x": med["x"], "y": med["y"],
        "precision_m": spread.clip(lower=PRECISION["street_min"]),
        "n": g.size(), "ambiguous": spread > PRECISION["street_max"]})
    out["points"] = _distinct_points(pts["canon"], pts["x"].to_numpy(float), pts["y"].to_numpy(float))
    return out.reset_index(drop=True)[cols]


def _most_common(key: pd.Series, value: pd.Series) -> pd.Series:
    """Per ``key``, its most frequent ``value``; a tie goes to the value seen first (as
    ``value_counts().index[0]`` of each group gives, without a Python call per group: a partnership's
    3,000 streets, 0.4 s)."""
    counts = pd.DataFrame({"k": key.to_numpy(), "v": value.to_numpy()}).groupby(["k", "v"], sort=False).size()
    k = counts.index.get_level_values("k")
    # Stable sort by key, then the first of each key's largest counts, in order of first appearance.
    order = np.lexsort((-counts.to_numpy(), k.to_numpy()))
    top = pd.Series(counts.index.get_level_values("v")[order], index=k[order])
    return top[~top.index.duplicated()]


def _distinct_points(key: pd.Series, x: np.ndarray, y: np.ndarray) -> pd.Series:
    """Per ``key``, its distinct snap points as an array of x, y rows ordered by x then y (what
    ``np.unique(..., axis=0)`` gives each group), for junctions: one sort of every point, not a
    group at a time (a partnership's 3,000 streets, 0.9 s)."""
    codes, names = pd.factorize(key, sort=True)
    order = np.lexsort((y, x, codes))
    c, xs, ys = codes[order], x[order], y[order]
    new = np.ones(len(c), dtype=bool)
    new[1:] = (c[1:] != c[:-1]) | (xs[1:] != xs[:-1]) | (ys[1:] != ys[:-1])
    c, xy = c[new], np.column_stack([xs[new], ys[new]])
    cuts = np.flatnonzero(np.diff(c)) + 1
    arrays = np.empty(len(names), dtype=object)
    for k, part in enumerate(np.split(xy, cuts) if len(xy) else []):
        arrays[k] = part       # one at a time: a list of equal-shaped arrays would make one 3-d array
    return pd.Series(arrays, index=names)


@dataclass
class Gazetteer:
    """Named places. ``places``: ``name``, ``kind`` (street / station / building), ``x``, ``y``,
    ``precision_m``, optionally ``alias`` (another name it is known by, matched in its place);
    after construction also ``canon`` and ``needs_cue`` (a one-word station
    name or alias, such as "Bank", matches only when the text says station, tube, platform...)."""
    places: pd.DataFrame
    dropped: pd.DataFrame = field(default_factory=pd.DataFrame)   # ambiguous names, not used
    # Streets dropped as spread too wide (a long road: "London Wall"), ``name`` and ``points``:
    # used only where a junction with a nearby street says which part of them is meant.
    long_streets: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __post_init__(self):
        p = self.places.copy()
        if p.empty:
            p = pd.DataFrame(columns=["name", "kind", "x", "y", "precision_m"])
        # An alias ("kings x") is matched as itself but reports the place's own name.
        alias = p["alias"].fillna("").astype(str) if "alias" in p else pd.Series("", index=p.index)
        p["canon"] = alias.where(alias != "", p["name"].astype(str)).map(canonical)
        p = p[p["canon"] != ""]
        p, dropped = _merge_same_names(p)
        p["needs_cue"] = (p["kind"] == "station") & (p["canon"].str.count(" ") == 0)
        p["cue_kind"] = p["cue_kind"].fillna("").astype(str) if "cue_kind" in p else ""
        self.places = p.reset_index(drop=True)
        self.dropped = pd.concat([self.dropped, dropped], ignore_index=True) if len(self.dropped) else dropped
        self._index: dict[tuple, list[int]] = {}
        self._fuzzy: dict[tuple, list[tuple[str, int]]] = {}
        for i, canon in enumerate(self.places["canon"]):
            toks = tuple(canon.split())
            self._index.setdefault(toks, []).append(i)
            if len(canon) >= RULES["fuzzy"]["min_length"]:
                self._fuzzy.setdefault((len(toks), canon[0]), []).append((canon, i))
        self._longest = max((len(k) for k in self._index), default=0)
        self._long: dict[tuple, tuple[str, np.ndarray]] = {}
        if len(self.long_streets) and "points" in self.long_streets:
            for name, pts in zip(self.long_streets["name"], self.long_streets["points"]):
                if isinstance(pts, np.ndarray) and len(pts) and canonical(name):
                    self._long[tuple(canonical(name).split())] = (str(name), pts)

    @classmethod
    def build(cls, streets: pd.DataFrame | None = None, stations: pd.DataFrame | None = None,
              buildings: pd.DataFrame | None = None) -> "Gazetteer":
        """From street entries (``streets_from_points``), stations and buildings (``name``, ``x``, ``y``)."""
        parts, dropped = [], []
        if streets is not None and len(streets):
            amb = streets["ambiguous"].astype(bool)
            keep = ["name", "x", "y", "precision_m"] + (["points"] if "points" in streets else [])
            parts.append(streets.loc[~amb, keep].assign(kind="street"))
            dropped.append(streets.loc[amb, ["name"]].assign(kind="street", why="points spread too wide"))
        if stations is not None and len(stations):
            st = stations[["name", "x", "y"]].copy()
            st["name"] = st["name"].astype(str).str.replace(RULES["station_name_suffix"], "", regex=True).str.strip()
            st["precision_m"] = float(PRECISION["place"])
            st["kind"] = "station"
            aliases = []
            for alias, target in RULES["station_aliases"].items():
                hit = st[st["name"].map(canonical) == canonical(target)]
                if len(hit):
                    aliases.append(hit.iloc[[0]].assign(alias=alias))
            parts += [st] + aliases
        if buildings is not None and len(buildings):
            b = buildings[["name", "x", "y"]].assign(precision_m=float(PRECISION["place"]), kind="building")
            parts.append(b)
            # The distinctive part of a school's name, matched only where the text says school.
            short = b["name"].astype(str).map(short_name)
            keep = (short != "") & (short != b["name"].astype(str).map(canonical)) & \
                (short.str.replace(" ", "").str.len() >= 5)
            parts.append(b[keep].assign(alias=short[keep], cue_kind="school"))
        places = pd.concat(parts, ignore_index=True) if parts else None
        drop = pd.concat(dropped, ignore_index=True) if dropped else pd.DataFrame(columns=["name", "kind", "why"])
        long_streets = (streets.loc[streets["ambiguous"].astype(bool), ["name", "points"]]
                        if streets is not None and len(streets) and "points" in streets else pd.DataFrame())
        return cls(places if places is not None else pd.DataFrame(), drop, long_streets)

    def _candidates(self, toks: list[str], cue: bool, fuzzy: bool,
                    school: bool = False, kinds: frozenset | None = None) -> list[tuple[int, int, int]]:
        """(tokens matched, position, place index) of every name found in ``toks``."""
        found = []
        for n in range(min(self._longest, len(toks)), 0, -1):
            for i in range(len(toks) - n + 1):
                gram = toks[i:i + n]
                if not fuzzy:
                    hits = self._index.get(tuple(gram), [])
                else:
                    text = " ".join(gram)
                    if len(text) < RULES["fuzzy"]["min_length"]:
                        continue
                    # Names starting with the text's first or second letter: a typo may drop or swap the first.
                    pool = self._fuzzy.get((n, text[0]), []) + (self._fuzzy.get((n, text[1]), [])
                                                                if text[1] != text[0] else [])
                    hits = sorted({k for canon, k in pool if within_one_edit(text, canon)})
                found += [(n, i, k) for k in hits if (cue or not self.places.at[k, "needs_cue"])
                          and (school or self.places.at[k, "cue_kind"] != "school")
                          and (kinds is None or self.places.at[k, "kind"] in kinds)]
        return found

    def _bare(self, toks: list[str]) -> tuple[int, str] | None:
        """A text that is nothing but one station's name(s), with filler words and operator suffixes
        around them ("Angel", "outside Euston", "Euston NR", "Bank/Monument"): (index, "bare" or
        "bare-station"); "bare" when nothing in the text says station (a district's name too).
        Only where a one-word name that needs a cue is among the names: longer names match anyway."""
        if _STOP_WORDS.intersection(toks):
            return None
        for phrase in _FILLER_PHRASES:
            n = len(phrase)
            toks = [t for i, t in enumerate(toks) if not any(toks[j:j + n] == phrase for j in range(i - n + 1, i + 1))]
        said = any(t in _SUFFIXES for t in toks)
        core = [t for t in toks if t not in _FILLERS and t not in _SUFFIXES]
        if not core:
            return None
        hits, i = [], 0
        while i < len(core):
            for n in range(min(self._longest, len(core) - i), 0, -1):
                found = [k for k in self._index.get(tuple(core[i:i + n]), []) if self.places.at[k, "kind"] == "station"]
                if found:
                    hits.append(found[0])
                    i += n
                    break
            else:
                return None
        names = {self.places.at[k, "name"] for k in hits}
        if len(names) != 1 or not any(self.places.at[k, "needs_cue"] for k in hits):
            return None
        return hits[0], "bare-station" if said else "bare"

    def match(self, text: str, fuzzy: bool = True, kinds: frozenset | None = None) -> tuple[int, str] | None:
        """The place named in ``text``: (index into ``places``, how), or None.

        A text that is only a station's name (``_bare``) is that station: how "bare"
        (a district's name too: the wider precision) or "bare-station". Otherwise the
        longest name wins; between names of equal length, a station when the text
        says station, else a street, then a building: how "exact". A fuzzy match is
        tried only when no name matches exactly, and must be unique: how "fuzzy".

        ``kinds`` (place kinds: street, station, building) restricts the places that may match;
        a text of a column that names stations only needs no cue word ("Bank" is the station).
        """
        canon = canonical(text)
        toks = canon.split()
        if not toks:
            return None
        stations_only = kinds is not None and kinds <= {"station"}
        cue = has_station_cue(canon) or stations_only
        if not cue and (kinds is None or "station" in kinds):
            bare = self._bare(toks)
            if bare is not None:
                return bare
        pref = ({"station": 2, "building": 1, "street": 0} if cue else {"street": 2, "building": 1, "station": 0})
        for how in ("exact", "fuzzy"):
            if how == "fuzzy" and not fuzzy:
                break
            found = self._candidates(toks, cue, how == "fuzzy", school=bool(_SCHOOL_CUES.intersection(toks)),
                                     kinds=kinds)
            if not found:
                continue
            kinds = self.places["kind"]
            best = max(found, key=lambda f: (f[0], pref[kinds.at[f[2]]], -f[1]))
            if how == "fuzzy":
                rivals = {k for n, _, k in found if n == best[0] and kinds.at[k] == kinds.at[best[2]]
                          and self.places.at[k, "canon"] != self.places.at[best[2], "canon"]}
                if rivals:
                    return None
            return best[2], how
        return None

    def street_points(self, k: int) -> np.ndarray:
        """The snap points of street ``k`` (rows of x, y); its median alone when they are not known."""
        pts = self.places.at[k, "points"] if "points" in self.places else None
        if isinstance(pts, np.ndarray) and len(pts):
            return pts
        return np.array([[float(self.places.at[k, "x"]), float(self.places.at[k, "y"])]])

    def _long_street(self, part: str) -> tuple[str, np.ndarray] | None:
        """The longest name of a long street (``long_streets``) written in ``part``, exactly."""
        toks = canonical(part).split()
        for n in range(len(toks), 0, -1):
            for i in range(len(toks) - n + 1):
                if tuple(toks[i:i + n]) in self._long:
                    return self._long[tuple(toks[i:i + n])]
        return None

    def junction(self, text: str, fuzzy: bool = True) -> tuple[str, str, float, float, float] | None:
        """Two streets named as a junction ("junction of A and B", "A / B", "A jct B", "corner of
        A and B", "j/o A and B", "A & B junction"): (street A, street B, x, y, metres apart) with
        x, y the midpoint of their nearest snap points, or None when the text does not name exactly
        two streets (a part that says station is not a street) whose nearest points lie within
        ``JUNCTION_MAX_M`` of each other. A long street dropped from ordinary matching
        (``long_streets``) may be one of the two: the other says which of its points is meant."""
        parts = split_junction(text)
        if len(parts) < 2:
            return None
        found: dict[str, np.ndarray] = {}
        for part in parts:
            if has_station_cue(canonical(part)):
                return None                       # "Moorgate station / London Wall": a station, not a junction
            hit = self.match(part, fuzzy=fuzzy, kinds=frozenset({"street"}))
            if hit is not None:
                found.setdefault(str(self.places.at[hit[0], "name"]), self.street_points(hit[0]))
                continue
            long = self._long_street(part)
            if long is not None:
                found.setdefault(*long)
        if len(found) != 2:
            return None
        (name_a, a), (name_b, b) = found.items()
        d = np.hypot(a[:, None, 0] - b[None, :, 0], a[:, None, 1] - b[None, :, 1])
        i, j = np.unravel_index(int(np.argmin(d)), d.shape)
        if d[i, j] > JUNCTION_MAX_M:
            return None
        x, y = (a[i] + b[j]) / 2
        return name_a, name_b, float(x), float(y), float(d[i, j])


# "junction of", "jct", "corner of", "j/o", ... and the separators between the two streets' names.
_JUNCTION_CUE = re.compile(r"(?<![a-z])(?:junction|junct|junc|jnct|jctn|jct|jcn|jnc|jn|j\s*/\s*o|j\.o\.?"
                           r"|corner|cnr|crnr|crn)\.?(?:\s+(?:of|with|w/))?(?![a-z])", re.I)
_JUNCTION_SEP = re.compile(r"\s*[/&+]\s*|\s+(?:and|with|by)\s+|\s*,\s*", re.I)


def split_junction(text: str) -> list[str]:
    """The parts of a text around a junction cue or separator, blanks dropped:
    "junction of Cheapside and Wood St" -> ["Cheapside", "Wood St"]; one part when there is none."""
    s = _JUNCTION_CUE.sub("|", str(text))
    s = _JUNCTION_SEP.sub("|", s)
    return [p.strip() for p in s.split("|") if p.strip(" .-")]


def _merge_same_names(p: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Entries of one kind with the same canonical name: one place at their mean when they lie within
    ``same_name_merge`` metres of each other (Liverpool Street LU and NR), else ambiguous and dropped.
    The places in order of their names' first entries."""
    if p.empty:
        return pd.DataFrame(columns=list(p.columns)), pd.DataFrame(columns=["name", "kind", "why"])
    group = p.groupby(["kind", "canon"], sort=False).ngroup().to_numpy()
    single = np.bincount(group)[group] == 1
    # The names of one entry as they are, at once (a frame a name cost 0.4 s for 3,000 streets).
    keep, order, dropped = [p[single]], [group[single]], []
    for code, grp in p[~single].groupby(group[~single], sort=False):
        cx, cy = grp["x"].mean(), grp["y"].mean()
        far = np.hypot(grp["x"] - cx, grp["y"] - cy).max()
        if far * 2 <= PRECISION["same_name_merge"]:
            row = grp.iloc[[0]].copy()
            row["x"], row["y"] = cx, cy
            row["precision_m"] = max(float(grp["precision_m"].max()), float(far))
            keep.append(row)
            order.append([code])
        else:
            dropped.append(pd.DataFrame({"name": [grp["name"].iloc[0]], "kind": [grp["kind"].iloc[0]],
                                         "why": ["same name at places more than "
                                                 f"{PRECISION['same_name_merge']} m apart"]}))
    kept = pd.concat(keep, ignore_index=True)
    kept = kept.iloc[np.argsort(np.concatenate(order), kind="stable")].reset_index(drop=True)
    drop = pd.concat(dropped, ignore_index=True) if dropped else pd.DataFrame(columns=["name", "kind", "why"])
    return kept, drop


# ----------------------------------------------------------------------------- the geocoder
GEOCODE_COLUMNS = ["level", "x", "y", "location_precision", "location_precision_m", "name", "how", "reason"]


@dataclass
class Geocoder:
    """Postcodes and free text to BNG points. Either part may be missing (None / empty gazetteer)."""
    postcodes: PostcodeLookup | None
    gazetteer: Gazetteer
    fuzzy: bool = True

    def _empty(self, index) -> pd.DataFrame:
        return pd.DataFrame({"level": "unmatched", "x": np.nan, "y": np.nan, "location_precision": "",
                             "location_precision_m": np.nan, "name": "", "how": "", "reason": ""}, index=index)

    def geocode_postcodes(self, text: pd.Series, column: str = "postcode") -> pd.DataFrame:
        """A postcode column: ``GEOCODE_COLUMNS``; level ``postcode`` or ``unmatched`` with the reason."""
        if self.postcodes is None:
            raise UserError("a source has postcodes to locate but no postcode lookup is configured.",
                            hint="Add [geocoding] postcodes = \"<Code-Point Open CSV files>\" to the config.")
        out = self._empty(text.index)
        hit = self.postcodes.locate(text)
        ok = hit["reason"] == ""
        out.loc[ok, ["x", "y"]] = hit.loc[ok, ["x", "y"]].to_numpy()
        out.loc[ok, "level"] = "postcode"
        out.loc[ok, "location_precision"] = "postcode"
        out.loc[ok, "location_precision_m"] = float(PRECISION["postcode"])
        out.loc[ok, "name"] = hit.loc[ok, "postcode"].map(pretty_postcode)
        out.loc[ok, "how"] = "exact"
        out["reason"] = hit["reason"]
        return out

    def geocode_text(self, text: pd.Series, kinds=None) -> pd.DataFrame:
        """Free-text locations: ``GEOCODE_COLUMNS``.

        A full postcode anywhere in the text is tried first; then the place names
        of the gazetteer (``Gazetteer.match``). A postcode that is not in the
        lookup does not stop a place name from matching; when nothing matches the
        reason is "postcode not found" if the text held one, else "location not
        geocoded" (neither the text nor the postcode is quoted: it may hold
        personal details). Two nearby streets named as a junction are placed where they
        meet (``Gazetteer.junction``: how "junction").

        ``kinds``: the column's hint, a list of ``GAZETTEER_KINDS`` keys ("streets",
        "stations", "buildings", "postcodes"); only those kinds of place are matched.
        None: all of them.
        """
        if kinds is not None:
            unknown = [k for k in kinds if k not in GAZETTEER_KINDS]
            if unknown:
                raise UserError(f"unknown gazetteer kind(s) {', '.join(map(repr, unknown))} "
                                f"(known: {', '.join(GAZETTEER_KINDS)}).")
            kinds = frozenset(GAZETTEER_KINDS[k] for k in kinds)
        place_kinds = None if kinds is None else kinds - {"postcode"}
        text = text.fillna("").astype(str)
        out = self._empty(text.index)
        out["reason"] = "location not geocoded"
        pcs = postcode_in_text(text) if kinds is None or "postcode" in kinds else pd.Series("", index=text.index)
        has_pc = pcs != ""
        if has_pc.any():
            if self.postcodes is None:
                raise UserError("a free-text location holds postcodes but no postcode lookup is configured.",
                                hint="Add [geocoding] postcodes = \"<Code-Point Open CSV files>\" to the config.")
            hit = self.geocode_postcodes(pcs[has_pc])
            out.loc[has_pc] = hit[GEOCODE_COLUMNS].to_numpy()
        todo = (out["level"] == "unmatched").to_numpy()
        places = self.gazetteer.places
        gaz = self.gazetteer
        cache: dict[str, tuple | None] = {}
        rows, hits, hows, jrows, jvals = [], [], [], [], []
        for pos, t in zip(np.flatnonzero(todo), text.to_numpy()[todo]):
            if t not in cache:
                cache[t] = None
                if t.strip() and (place_kinds is None or "street" in place_kinds):
                    cache[t] = gaz.junction(t, fuzzy=self.fuzzy)
                if cache[t] is None and t.strip() and place_kinds != frozenset():
                    cache[t] = gaz.match(t, fuzzy=self.fuzzy, kinds=place_kinds)
            hit = cache[t]
            if hit is None:
                continue
            if len(hit) == 5:                   # a junction: (street A, street B, x, y, metres apart)
                a, b, x, y, d = hit
                jrows.append(pos)
                jvals.append((x, y, max(d, float(PRECISION["street_min"])), f"{a} / {b}"))
            else:
                rows.append(pos)
                hits.append(hit[0])
                hows.append(hit[1])
        for c in ("x", "y", "location_precision_m"):
            out[c] = out[c].astype(float)
        if jrows:
            x, y, prec, name = (np.array(v) for v in zip(*jvals))
            for col, values in (("level", "street"), ("x", x), ("y", y), ("location_precision", "street"),
                                ("location_precision_m", prec), ("name", name), ("how", "junction"),
                                ("reason", "")):
                out.iloc[jrows, out.columns.get_loc(col)] = values
        if rows:
            p = places.iloc[hits]
            level = np.where(p["kind"].to_numpy() == "street", "street", "place")
            # A station's name alone that is also a district's ("Angel"): the wider place
            # (not in a column hinted stations only: there it is the station).
            prec = np.where(np.array(hows) == "bare", np.maximum(p["precision_m"].to_numpy(float),
                                                                  float(PRECISION["district"])),
                            p["precision_m"].to_numpy(float))
            for col, values in (("level", level), ("x", p["x"].to_numpy(float)), ("y", p["y"].to_numpy(float)),
                                ("location_precision", level),
                                ("location_precision_m", prec),
                                ("name", p["name"].to_numpy()), ("how", np.array(hows)), ("reason", "")):
                out.iloc[rows, out.columns.get_loc(col)] = values
        return out


def match_counts(levels: pd.Series) -> dict[str, int]:
    """{"postcode": n, "street": n, "place": n, "unmatched": n} from a column of match levels."""
    counts = levels.value_counts()
    return {lv: int(counts.get(lv, 0)) for lv in LEVELS}


def describe_rates(geocoding: dict[str, dict[str, int]]) -> list[str]:
    """One line per geocoded source for the run summary, e.g. "ed: 1,065 of 1,500 located (71 %):
    574 by postcode, 318 by street, 173 by place; 435 unmatched"."""
    lines = []
    for sid, c in geocoding.items():
        asked = sum(c.values())
        located = asked - c.get("unmatched", 0)
        rate = f" ({100 * located / asked:.0f} %)" if asked else ""
        lines.append(f"{sid}: {located:,} of {asked:,} located{rate}: {c.get('postcode', 0):,} by postcode, "
                     f"{c.get('street', 0):,} by street, {c.get('place', 0):,} by place; "
                     f"{c.get('unmatched', 0):,} unmatched")
    return lines


# ----------------------------------------------------------------------------- from the config
def geocoding_options(cfg) -> dict:
    """The config's [geocoding] table, checked. Keys: ``postcodes`` (a glob or a list of globs of
    Code-Point Open / ONSPD CSVs, relative to the config), ``key_buildings`` (use the names of the
    [[key_buildings]] layers as places; default true), ``places`` (extra named-place layers: a list of
    tables with ``path``, ``schema`` (a key-building schema) and optional ``type``), ``streets``
    (street names from the police.uk sources' Location field; default true) and ``fuzzy`` (default true)."""
    opts = cfg.raw.get("geocoding", {})
    if not isinstance(opts, dict):
        raise UserError("[geocoding] should be a table.", file=str(cfg.path))
    known = {"postcodes", "key_buildings", "places", "streets", "fuzzy"}
    for k in opts:
        if k not in known:
            raise UserError(f"[geocoding] has an unknown key '{k}' (known: {', '.join(sorted(known))}).",
                            file=str(cfg.path))
    for k in ("key_buildings", "streets", "fuzzy"):
        if k in opts and not isinstance(opts[k], bool):
            raise UserError(f"[geocoding] {k} should be true or false, got {opts[k]!r}.", file=str(cfg.path))
    return opts


def postcode_files(cfg) -> list[str]:
    """The postcode lookup files the config names (empty list when none)."""
    pats = geocoding_options(cfg).get("postcodes", [])
    pats = [pats] if isinstance(pats, str) else list(pats)
    files = []
    for pat in pats:
        hit = sorted(glob.glob(str(cfg.base / str(pat))))
        if not hit:
            raise UserError(f"[geocoding] postcodes = '{pat}' matches no file.", file=str(cfg.path),
                            hint=f"Paths are relative to the config's folder ({cfg.base}).")
        files += hit
    return files


def _named_places(cfg) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(stations, buildings) named in the config's key-building layers and [geocoding] places."""
    import dataclasses

    from hotspots.config import KeyBuildings
    from hotspots.load.buildings import load_buildings
    from hotspots.load.ledger import Ledger

    opts = geocoding_options(cfg)
    layers = list(cfg.key_buildings) if opts.get("key_buildings", True) else []
    for k, p in enumerate(opts.get("places", []), start=1):
        if not isinstance(p, dict) or "path" not in p or "schema" not in p:
            raise UserError(f"[geocoding] places entry {k} needs 'path' and 'schema' (a key-building schema "
                            "such as tfl_stations or generic_points).", file=str(cfg.path))
        layers.append(KeyBuildings(id=f"gazetteer_{k}", path=p["path"], schema=p["schema"], type=p.get("type"),
                                   options={o: v for o, v in p.items() if o not in ("path", "schema", "type")}))
    empty = pd.DataFrame(columns=["name", "x", "y"])
    if not layers:
        return empty, empty
    found, _ = load_buildings(dataclasses.replace(cfg, key_buildings=layers), Ledger())
    found = found[found["name"].astype(str).str.strip() != ""]
    is_station = found["type"].astype(str).str.lower() == "station"
    return (pd.DataFrame(found.loc[is_station, ["name", "x", "y"]]),
            pd.DataFrame(found.loc[~is_station, ["name", "x", "y"]]))


def build_geocoder(cfg, street_tables: list[pd.DataFrame], need_postcodes: bool) -> Geocoder:
    """The geocoder of a run: the configured postcode lookup, and a gazetteer of the streets in
    ``street_tables`` (``street_points`` frames from the police sources), stations and buildings."""
    opts = geocoding_options(cfg)
    files = postcode_files(cfg)
    if need_postcodes and not files:
        raise UserError("a source locates records by postcode but the config names no postcode lookup.",
                        file=str(cfg.path),
                        hint="Add [geocoding] postcodes = \"<Code-Point Open CSV files>\" (relative to the config).")
    lookup = PostcodeLookup.from_files(files) if files else None
    streets = None
    if opts.get("streets", True) and street_tables:
        streets = streets_from_points(pd.concat(street_tables, ignore_index=True))
    stations, buildings = _named_places(cfg)
    return Geocoder(lookup, Gazetteer.build(streets, stations, buildings), fuzzy=opts.get("fuzzy", True))
