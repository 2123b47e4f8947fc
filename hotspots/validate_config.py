"""Rules that a config (TOML) and a source mapping (JSON) are checked against, as data.

Each table of a config or mapping is described by a ``Table`` of keys, and each
key by a rule (``Number``, ``Text``, ``Bool``, ``ListOf``, ``Map``, ``Table``,
``Tables``, ``Either``). ``check(rule, value, where)`` returns every problem
found, one clear sentence each, naming the key ("[analysis] cell_size_m ..."):
a type, a range, an enumeration or an unknown key (with the nearest known key
suggested). ``hotspots.config.CONFIG`` is the config's allow-list;
``hotspots.load.spec.SPEC`` the mapping's. Nothing here reads a data file.
"""
from __future__ import annotations

import codecs
import difflib
import math
import re
from dataclasses import dataclass, field
from typing import Any


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def suggest(key: str, known, label: str = "known keys") -> str:
    """" (did you mean x?)" for the nearest known key, or the list of known keys."""
    known = [str(k) for k in known]
    near = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    if near:
        return f" (did you mean {near[0]}?)"
    return f" ({label}: {', '.join(known)})" if known else ""


class Rule:
    """A rule for one value: ``problems(value, where)`` lists what is wrong ("" never)."""
    what = "a value"

    def problems(self, value: Any, where: str) -> list[str]:
        return []


@dataclass(frozen=True)
class Any_(Rule):
    """Anything (checked elsewhere, by the stage that reads it)."""
    what: str = "a value"


@dataclass(frozen=True)
class Refused(Rule):
    """A key people write that nothing reads yet: refused with what to do instead, never ignored."""
    instead: str = ""

    def problems(self, value, where):
        return [f"{where} is not read by hotspots yet: {self.instead}"]


@dataclass(frozen=True)
class Number(Rule):
    """A finite number (never a boolean) within [lo, hi]; ``lo_open`` excludes ``lo``."""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    integer: bool = False
    unit: str = ""
    why: str = ""

    @property
    def what(self) -> str:
        return "a whole number" if self.integer else "a number"

    def problems(self, value, where):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return [f"{where} should be {self.what}{' of ' + self.unit if self.unit else ''}, got {_show(value)}."]
        if self.integer and not isinstance(value, int):
            return [f"{where} should be a whole number, got {_show(value)}."]
        if not math.isfinite(value):
            return [f"{where} should be a finite number, got {_show(value)}."]
        unit = f" {self.unit}" if self.unit else ""
        why = f" ({self.why})" if self.why else ""
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            bound = "more than" if self.lo_open else "at least"
            return [f"{where} should be {bound} {self.lo:g}{unit}{why}, got {_show(value)}."]
        if self.hi is not None and value > self.hi:
            return [f"{where} should be at most {self.hi:g}{unit}{why}, got {_show(value)}."]
        return []


@dataclass(frozen=True)
class Text(Rule):
    """A string; with ``choices`` one of them (compared after ``normalise``), with ``pattern`` matching it."""
    choices: tuple | None = None
    pattern: str | None = None
    example: str = ""
    nullable: bool = False
    normalise: Any = None      # e.g. str.upper for handling codes
    why: str = ""              # said after the choices: what they mean

    what = "text"

    def problems(self, value, where):
        if value is None and self.nullable:
            return []
        if not isinstance(value, str):
            return [f"{where} should be text (in quotes), got {_show(value)}."]
        # TOML's "\u0000": no file name can hold it (the system refuses it as an "embedded null
        # byte", an internal error where a path was first used), nor any text a file holds.
        if "\x00" in value:
            return [f"{where} = {_show(value)} holds a NUL character (\\u0000), which no file name or text "
                    "may hold."]
        text = self.normalise(value) if self.normalise else value
        if self.choices is not None and text not in self.choices:
            shown = ", ".join(f"'{c}'" if c else "'' (none)" for c in self.choices)
            if value == "TODO":       # left for the analyst by draft-mapping
                return [f"{where} is still TODO: fill it with one of {shown}."]
            near = suggest(text, self.choices) if len(self.choices) > 8 else ""
            why = f" ({self.why})" if self.why else ""
            return [f"{where} = {_show(value)} is not one of {shown}{why}{near}."]
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            return [f"{where} = {_show(value)} should look like {self.example or self.pattern}."]
        return []


@dataclass(frozen=True)
class _Known(Text):
    """Text that a library must also know (``unknown`` says why it does not): a value it refuses stopped the run
    with an internal error where it was first used, so it is a config error instead."""
    def problems(self, value, where):
        found = super().problems(value, where)
        if found:
            return found
        why = self.unknown(value)
        return [f"{where} = {_show(value)} {why}"] if why else []

    def unknown(self, value: str) -> str | None:
        raise NotImplementedError


@dataclass(frozen=True)
class Encoding(_Known):
    """A text encoding Python knows: another ('utf8 bom', a typo) stopped the run with an internal error."""
    def unknown(self, value):
        try:
            codecs.lookup(value)
        except LookupError:
            return "is not a text encoding (e.g. utf-8-sig, cp1252, latin-1, utf-16)."
        return None


@dataclass(frozen=True)
class Crs(_Known):
    """A coordinate reference system pyproj knows ("EPSG:27700", "EPSG:4326", a PROJ string): a typo
    ('EPSG:277000') stopped the run with an internal error (pyproj's CRSError) at the first file."""
    def unknown(self, value):
        from pyproj import CRS
        from pyproj.exceptions import CRSError
        try:
            CRS.from_user_input(value)
        except CRSError:
            return ("is not a coordinate reference system (e.g. \"EPSG:27700\" for eastings and northings, "
                    "\"EPSG:4326\" for longitude and latitude).")
        return None


@dataclass(frozen=True)
class DateFormat(_Known):
    """A date or time format pandas can read with ("%d/%m/%Y", "ISO8601"): a typo ('%Q', a stray '%') stopped
    validate and run with an internal error where the first cell was read."""
    def unknown(self, value):
        if value == "ISO8601":
            return None
        import pandas as pd
        try:
            pd.to_datetime(pd.Series(["2000-01-01"]), format=value, errors="coerce")
        except ValueError as exc:
            return (f"is not a date format ({exc}); formats are written as Python's strftime, e.g. "
                    "\"%d/%m/%Y %H:%M\".")
        return None


# A CSV delimiter: one character (';;' or '' stopped the run with an internal error, the csv module's TypeError).
DELIMITER = Text(pattern=r"(?s).", example='one character, e.g. ",", ";", "\\t" or "|"')


@dataclass(frozen=True)
class Bool(Rule):
    what = "true or false"

    def problems(self, value, where):
        return [] if isinstance(value, bool) else [f"{where} should be true or false, got {_show(value)}."]


@dataclass(frozen=True)
class ListOf(Rule):
    """A list of values that each meet ``item``; with ``single`` a bare value counts as a list of one."""
    item: Rule = field(default_factory=Any_)
    single: bool = False
    min_len: int = 0

    what = "a list"

    def problems(self, value, where):
        if not isinstance(value, list):
            if self.single and not isinstance(value, dict):
                return self.item.problems(value, where)
            return [f"{where} should be a list [...], got {_show(value)}."]
        if len(value) < self.min_len:
            return [f"{where} should list at least {self.min_len} value(s)."]
        out = []
        for k, v in enumerate(value):
            out += self.item.problems(v, f"{where}[{k}]")
        return out


@dataclass(frozen=True)
class Either(Rule):
    """The first of ``rules`` whose kind fits the value decides (e.g. text or a list of texts)."""
    rules: tuple = ()

    def problems(self, value, where):
        found = [r.problems(value, where) for r in self.rules]
        if any(not p for p in found):
            return []
        # Report against the rules meant for this kind of value (a table, a list, text), the closest first.
        fitting = [p for r, p in zip(self.rules, found) if _fits(r, value)] or found[:1]
        return min(fitting, key=len)


def _fits(rule: Rule, value) -> bool:
    """Whether ``value`` is of the kind ``rule`` is about (a table, a list, text, a number)."""
    if isinstance(rule, (Table, Map)):
        return isinstance(value, dict)
    if isinstance(rule, ListOf):
        return isinstance(value, list)
    if isinstance(rule, Text):
        return isinstance(value, str)
    if isinstance(rule, (Number, Bool)):
        return isinstance(value, (int, float))
    return True


@dataclass(frozen=True)
class Map(Rule):
    """A table of free keys (``keys``: the allowed ones, if limited) whose values meet ``value``."""
    value: Rule = field(default_factory=Any_)
    keys: tuple | None = None

    def problems(self, value, where):
        if not isinstance(value, dict):
            return [f"{where} should be a table {{...}}, got {_show(value)}."]
        out = []
        for k, v in value.items():
            if self.keys is not None and str(k) not in self.keys:
                out.append(f"{where} has an unknown key '{k}'{suggest(k, self.keys)}.")
                continue
            out += self.value.problems(v, f"{where}.{k}")
        return out


@dataclass(frozen=True)
class Table(Rule):
    """A table with known keys, each with its rule; ``required`` keys must be present.

    Keys starting with ``_`` are comments when ``comments`` is set (mapping files).
    """
    keys: dict = field(default_factory=dict)
    required: tuple = ()
    comments: bool = False
    label: str = ""      # how the table is written in a message, when not ``where``

    def problems(self, value, where):
        if not isinstance(value, dict):
            return [f"{where} should be a table, got {_show(value)}."]
        out = []
        named = where or "the top level"
        for k in self.required:
            if k not in value:
                out.append(f"{named} is missing the key '{k}'.")
        for k, v in value.items():
            if k not in self.keys:
                if self.comments and str(k).startswith("_"):
                    continue
                out.append(f"{named} has an unknown key '{k}'{suggest(k, self.keys)}.")
                continue
            out += self.keys[k].problems(v, join(where, k))
        return out


@dataclass(frozen=True)
class Tables(Rule):
    """An array of tables (``[[name]]`` in TOML), each meeting ``table``; ``name_by`` names each entry."""
    table: Table = field(default_factory=Table)
    name_by: str = "id"

    def problems(self, value, where):
        if isinstance(value, dict):
            return [f"{where} is written as one table: write each entry as [[{where.strip('[]')}]] "
                    "(an array of tables)."]
        if not isinstance(value, list):
            return [f"{where} should be an array of tables ([[...]]), got {_show(value)}."]
        out = []
        for k, entry in enumerate(value, start=1):
            name = entry.get(self.name_by) if isinstance(entry, dict) else None
            label = f"[{where}] '{name}'" if isinstance(name, str) and name else f"[{where}] number {k}"
            out += self.table.problems(entry, label)
        return out


def join(where: str, key: str) -> str:
    """'[analysis]' + 'seed' -> '[analysis] seed'; 'fields' + 'category' -> 'fields.category'."""
    if re.search(r"(\]|'|number \d+)$", where):
        return f"{where} {key}"
    return f"{where}.{key}" if where else str(key)


def check(rule: Rule, value: Any, where: str = "") -> list[str]:
    """Every problem of ``value`` against ``rule``, one sentence each."""
    return rule.problems(value, where)
