"""Read and check a partnership's TOML config.

Paths in the config are relative to the config file. Every problem is a
``UserError`` naming the config file and the key at fault.
"""
from __future__ import annotations

import glob
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from hotspots.detect.kde import MAX_BANDWIDTH_CELLS, MIN_BANDWIDTH_CELLS
from hotspots.errors import UserError
from hotspots.grid import MAX_NEIGHBOUR_CELLS
from hotspots.schema import DEFAULT_WEIGHTS, EVIDENCE_CLASSES, HANDLING_CODES, TAXONOMY
from hotspots.validate_config import (DELIMITER, Bool, Crs, Either, Encoding, ListOf, Map, Number, Table, Tables, Text,
                                      check)

TIERS = ("partner", "public")

# Limits stated here and enforced at load time (the grid's own limit on cells is in hotspots.grid).
MIN_CELL_M = 10.0             # finer than 10 m is below any partner's location precision
MAX_CELL_M = 10_000.0
MAX_RADIUS_M = 5_000.0        # key-building catchment radius
_MONTH = r"\d{4}-\d{2}(-\d{2})?"
_PERIOD = r"\s*\d{4}-\d{2}\s*:\s*\d{4}-\d{2}\s*"
_DAYS = r"\s*\d{4}-\d{2}-\d{2}\s*:\s*\d{4}-\d{2}-\d{2}\s*"
# ``[engine] scheduler`` and ``--scheduler``: a LocalCluster on this machine, or a Dask scheduler's address.
SCHEDULER_PATTERN = r"local|(tcp|tls|ucx|inproc)://[^\s/]+(:\d+)?/?|[A-Za-z0-9.\-]+:\d+"


#: A tile URL a map may load: http(s) or protocol-relative, no quote, bracket, space or backslash to break out
#: of the script it is written into, placeholders {s} {z} {x} {y} {r} only. Checked with the config, so
#: validate says so at once, not run after its analysis (hostile audit: javascript: and data: URLs passed
#: validate).
TILE_URL = r"(https?:)?//[^\s{}<>\"'`\\]*(\{[sxyzr]\}[^\s{}<>\"'`\\]*)*"


@lru_cache(maxsize=1)
def config_rules() -> dict:
    """The config's allow-list: every table and key the code reads, with its type and range.

    One entry per key; ``load_config`` checks the whole file against it before
    anything else is read. Stages that own a table (profile, linkage, geocoding,
    key-building columns) also check their values when they run.
    """
    # Imported here: these modules import this one.
    from hotspots.detect.kde import KERNELS
    from hotspots.load.buildings import _COLUMN_OPTIONS, _OTHER_OPTIONS, _READER_OPTIONS
    from hotspots.load.linkage import DEFAULTS as LINKAGE
    from hotspots.profile import PROFILE_OPTIONS

    text, texts = Text(), ListOf(Text(), single=True)
    weight = Number(lo=0)
    profile = {
        "comparison": Text(("area", "type")), "after_school": Text(), "peak_window_h": Number(1, 12, integer=True),
        "min_timed": Number(lo=1, integer=True), "alpha": Number(lo=0, hi=0.5, lo_open=True),
        "trend_baseline": Text(("time", "area")), "trend_exclude_sources": ListOf(Text()),
        "holidays": ListOf(Text(pattern=_DAYS, example='"2018-07-24:2018-09-04"'), single=True),
    }
    assert set(profile) == set(PROFILE_OPTIONS), "profile options out of step with hotspots.profile"
    building_opts = {k: text for k in (*_COLUMN_OPTIONS, *_READER_OPTIONS, *_OTHER_OPTIONS)}
    building_opts.update({"sheet": Either((Text(), Number(lo=0, integer=True))), "include": Map(ListOf(single=True)),
                          "encoding": Encoding(), "delimiter": DELIMITER, "crs": Crs(),
                          "postcodes": texts})
    # Each system's own grades, as records carry them (upper case): a key the records never carry ('b', 'Z')
    # was kept and never applied, the manifest's weights showing it as agreed. A grade suspected to be false
    # (3x5x2 E, 5x5x5 intelligence 5) weighs 0 whatever the config says: the brief's governance rule.
    false = Number(lo=0, hi=0, why="suspected to be false: it weighs 0")
    grades_3x5x2 = Table({"source": Map(weight, keys=("1", "2", "3")),
                          "intel": Table({**{g: weight for g in "ABCD"}, "E": false})})
    grades_5x5x5 = Table({"source": Map(weight, keys=tuple("ABCDE")),
                          "intel": Table({**{g: weight for g in "1234"}, "5": false})})
    linkage = Table({"enabled": Bool(), "distance_m": Number(lo=0, unit="m"), "days": Number(lo=0),
                     "precision_factor": Number(lo=0), "pairs": ListOf(ListOf(Text(EVIDENCE_CLASSES)))})
    assert set(linkage.keys) == set(LINKAGE), "linkage options out of step with hotspots.load.linkage"
    return {
        "study": Table({"name": text, "start": Text(pattern=_MONTH, example="2018-01 or 2018-01-15"),
                        "end": Text(pattern=_MONTH, example="2019-12 or 2019-12-31"), "area": text,
                        "area_names": texts}, required=("start", "end")),
        "sources": Tables(Table({
            "id": Text(pattern=r"[A-Za-z0-9_.\-]+", example="city_police (letters, digits, _ . -)"),
            "path": text, "schema": text, "mapping": text,
            "evidence": Text(EVIDENCE_CLASSES), "weight": weight,
            "categories": ListOf(Text(tuple(TAXONOMY)), single=True, min_len=1), "coverage": texts,
            "coverage_path": text,      # a polygon file of where the source's data reach (hotspots.coverage)
            "legal_basis": text, "sharing_agreement": text,
            "handling": Text(HANDLING_CODES, normalise=lambda v: v.strip().upper(),
                             why="3x5x2 P or C, 5x5x5 1 to 5, or none; an unknown code is never shared"),
            "handling_conditions": text,
            "period": Text(pattern=_PERIOD, example='"2017-12:2018-06" (START:END months)'),
            # The partner's own "high risk": its levels as written, and what each level means (hotspots.thresholds).
            "high_risk": ListOf(Text(), single=True), "levels": Map(Text()),
            # A source losing more than this share of its rows to one reject reason fails the run
            # (hotspots.load.check_losses); 1 accepts any loss.
            "max_reject_share": Number(0, 1),
        }, required=("id", "path", "schema"))),
        "boundaries": Tables(Table({"id": text, "path": text, "name_field": text, "layer": text},
                                   required=("id", "path", "name_field"))),
        "key_buildings": Tables(Table({
            "id": text, "path": text, "schema": text, "type": text,
            "radius_m": ListOf(Number(lo=0, hi=MAX_RADIUS_M, lo_open=True, unit="m"), single=True, min_len=1),
            # A sensitive layer (children's homes) never reaches a public output; the partner tier shows it
            # exactly or only as "a sensitive site in this cell" (hotspots.sensitive).
            "sensitive": Bool(), "sensitive_display": Text(("exact", "cell")),
            **building_opts, **{k: profile[k] for k in PROFILE_OPTIONS},
        }, required=("id", "path", "schema"))),
        "weights": Table({
            **{c: weight for c in EVIDENCE_CLASSES}, "grades_3x5x2": grades_3x5x2, "grades_5x5x5": grades_5x5x5,
            "recency_half_life_months": Number(lo=0), "harm": Bool(),
            "harm_factors": Map(weight, keys=("1", "2", "3", "4")),
        }),
        "analysis": Table({
            "cell_size_m": Number(MIN_CELL_M, MAX_CELL_M, unit="m"),
            "cell_shape": Text(("square", "hexagon")),
            "neighbour_distance_m": Number(lo=0, lo_open=True, unit="m"),
            "fdr_alpha": Number(lo=0, hi=0.5, lo_open=True, why="a false discovery rate, e.g. 0.05"),
            "gi_inference": Text(("permutation", "normal")),
            "seed": Number(lo=0, hi=2 ** 32 - 1, integer=True),
            "bandwidth_m": Number(lo=0, lo_open=True, unit="m"),
            "kde_kernel": Text(tuple(KERNELS)),
            "clusters": ListOf(Text(("dbscan", "hdbscan")), single=True),
            "cluster_simulations": Number(1, 9999, integer=True),
            "cluster_eps_m": Number(lo=0, lo_open=True, unit="m"),
            "cluster_min_weight": Number(lo=0, lo_open=True),
            "combine": Text(("sources", "pooled")),
            "permutations": Number(999, 9_999_999, integer=True),
            "coverage_units_path": text, "coverage_units_field": text,
            "coverage_reach_m": Number(lo=0, lo_open=True, unit="m"),
            "building_null": Text(("random_places", "snap_points")),
            "building_simulations": Number(99, 99_999, integer=True),
        }),
        "outputs": Table({"tiers": ListOf(Text(TIERS), single=True, min_len=1),
                          "tiles": Text(pattern=TILE_URL, example="https://tiles.example.org/{z}/{x}/{y}.png "
                                                                  "(placeholders {s}, {z}, {x}, {y}, {r} only)"),
                          "tiles_attribution": text}),
        # Where the load stage runs, as --scheduler (which wins over it): "local" or a Dask scheduler's address.
        "engine": Table({"scheduler": Text(pattern=SCHEDULER_PATTERN,
                                           example='"local" or a Dask scheduler address such as "tcp://HOST:8786"')}),
        "attribution": texts,
        "geocoding": Table({"postcodes": texts, "key_buildings": Bool(), "streets": Bool(), "fuzzy": Bool(),
                            "places": ListOf(Table({"path": text, "schema": text, "type": text, **building_opts},
                                                   required=("path", "schema")))}),
        "linkage": linkage,
        "profile": Table(profile),
    }


def _whole_file_problems(raw: dict) -> list[str]:
    """Every problem of the config against ``config_rules``: unknown tables and keys, types, ranges."""
    rules = config_rules()
    out = []
    for key, value in raw.items():
        if key not in rules:
            from hotspots.validate_config import suggest
            out.append(f"unknown table or key '{key}'{suggest(key, rules)}.")
            continue
        out += check(rules[key], value, f"[{key}]")
    return out


@dataclass
class Source:
    """One [[sources]] entry: a partner's extract and how to read it."""
    id: str
    path: str
    schema: str
    evidence: str | None = None
    weight: float = 1.0
    categories: list[str] | None = None
    coverage: list[str] | None = None
    legal_basis: str = ""
    sharing_agreement: str = ""
    handling: str = ""
    handling_conditions: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def files(self, base: Path) -> list[Path]:
        """The files this source's path or glob names, sorted."""
        pattern = str(base / self.path)
        return sorted(Path(p) for p in glob.glob(pattern))


@dataclass
class Boundary:
    """One [[boundaries]] layer: any vector file geopandas reads, any CRS."""
    id: str
    path: str
    name_field: str
    layer: str | None = None


@dataclass
class KeyBuildings:
    """One [[key_buildings]] layer."""
    id: str
    path: str
    schema: str
    type: str | None = None
    radius_m: list[float] = field(default_factory=lambda: [100.0, 250.0, 500.0])
    options: dict[str, Any] = field(default_factory=dict)
    sensitive: bool | None = None      # None: the schema's default (children's homes are sensitive)
    sensitive_display: str = "cell"    # partner tier: "exact", or "cell" ("a sensitive site in this cell")


@dataclass
class Config:
    """A whole run's configuration, with paths resolved against ``base``."""
    path: Path
    base: Path
    name: str
    start: pd.Timestamp
    end: pd.Timestamp          # exclusive upper bound (start of the month/day after `end`)
    end_label: str
    start_label: str
    area: str | None
    area_names: list[str] | None
    sources: list[Source]
    boundaries: list[Boundary]
    key_buildings: list[KeyBuildings]
    weights: dict[str, Any]
    analysis: dict[str, Any]
    outputs: dict[str, Any]
    attribution: list[str]
    raw: dict[str, Any]

    def resolve(self, rel: str) -> Path:
        return (self.base / rel).resolve()

    @property
    def tiers(self) -> list[str]:
        return list(self.outputs.get("tiers", ["partner"]))


def _period(value: Any, key: str, path: Path | None, end: bool) -> tuple[pd.Timestamp, str]:
    """Parse a month ("2018-01") or date ("2018-01-15"); for an end, return the exclusive bound.
    ``key`` is a [study] key of the config at ``path``, or with ``path`` None a command-line option."""
    text = str(value).strip()
    where, file = (f"[study] {key} = '{text}'", str(path)) if path is not None else (f"{key} '{text}'", None)
    try:
        if not re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", text):
            raise ValueError(text)
        if len(text) == 7:
            ts = pd.Timestamp(text + "-01")
            bound = ts + pd.offsets.MonthBegin(1) if end else ts
        else:
            ts = pd.Timestamp(text)
            bound = ts + pd.Timedelta(days=1) if end else ts
    except (ValueError, TypeError):
        raise UserError(f"{where} is not a month (YYYY-MM) or date (YYYY-MM-DD).", file=file) from None
    # Records' dates are nanosecond timestamps (a date outside their range is rejected as no date), and
    # a bound outside it (end = "9999-12", a year 10000) stopped the run with an internal error.
    if not pd.Timestamp.min <= bound <= pd.Timestamp.max:
        # Said as the whole months inside the range: its ends (1677-09-21 00:12, 2262-04-11 23:47) are not.
        raise UserError(f"{where} is outside the dates hotspots can analyse (the months 1677-10 to 2262-03).",
                        file=file)
    return bound, text


def _as_list(value: Any) -> list | None:
    if value is None:
        return None
    return [value] if isinstance(value, (str, int, float)) else list(value)


def load_config(path: str | Path) -> Config:
    """Read ``path`` and return a checked ``Config``.

    The whole file is checked before anything else is read: every table and key
    against ``config_rules`` (types, ranges, enumerations, unknown keys with the
    nearest known key suggested, handling codes), then the limits that relate
    keys (bandwidth and neighbour distance against the cell size, a source's
    period against the study), every source's schema and mapping
    (``hotspots.load.spec``), and that some record can count at all.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError("the config file does not exist.", file=str(path),
                        hint="Give the path to a .toml file, e.g. hotspots run partnership.toml.")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))     # a BOM (Notepad) is no TOML error
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"the config is not valid TOML ({exc}).", file=str(path)) from None
    except RecursionError:      # tomllib parses nested arrays and inline tables by recursion
        raise UserError("the config nests arrays or tables too deeply to read (hundreds of levels; "
                        "hotspots' own keys go a few levels deep).", file=str(path)) from None
    except UnicodeDecodeError:
        raise UserError("the config is not UTF-8 text.", file=str(path)) from None
    _raise(_whole_file_problems(raw), path)
    base = path.resolve().parent
    study = raw.get("study", {})
    if "study" not in raw:
        raise UserError("the config has no [study] table (with start and end).", file=str(path))
    start, start_label = _period(study["start"], "start", path, False)
    end, end_label = _period(study["end"], "end", path, True)
    if end <= start:
        raise UserError(f"[study] end ({end_label}) is before start ({start_label}).", file=str(path))

    sources = []
    seen = set()
    for s in raw.get("sources", []):
        sid = s["id"]
        if sid in seen:
            raise UserError(f"[[sources]] '{sid}': the id is used twice.", file=str(path))
        seen.add(sid)
        known = {"id", "path", "schema", "evidence", "weight", "categories", "coverage",
                 "legal_basis", "sharing_agreement", "handling", "handling_conditions"}
        sources.append(Source(
            id=sid, path=s["path"], schema=s["schema"],
            evidence=s.get("evidence"), weight=float(s.get("weight", 1.0)), categories=_as_list(s.get("categories")),
            coverage=_as_list(s.get("coverage")), legal_basis=str(s.get("legal_basis", "")),
            sharing_agreement=str(s.get("sharing_agreement", "")),
            handling=str(s.get("handling", "")).strip().upper(),
            handling_conditions=str(s.get("handling_conditions", "")),
            options={k2: v for k2, v in s.items() if k2 not in known}))
    if not sources:
        raise UserError("the config has no [[sources]].", file=str(path),
                        hint="Add at least one [[sources]] table with id, path and schema.")

    for table in ("boundaries", "key_buildings"):
        ids = [str(t["id"]) for t in raw.get(table, [])]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            # Each id names an output's column or layer (areas.csv, the map's layers): two tables of one id
            # would publish as one.
            raise UserError(f"[[{table}]] '{twice[0]}': the id is used twice.", file=str(path),
                            hint=f"Give each [[{table}]] table its own id.")
    boundaries = [Boundary(id=b["id"], path=b["path"], name_field=b["name_field"], layer=b.get("layer"))
                  for b in raw.get("boundaries", [])]
    buildings = []
    for b in raw.get("key_buildings", []):
        known = {"id", "path", "schema", "type", "radius_m", "sensitive", "sensitive_display"}
        buildings.append(KeyBuildings(
            id=b["id"], path=b["path"], schema=b["schema"], type=b.get("type"),
            radius_m=[float(r) for r in _as_list(b.get("radius_m", [100, 250, 500]))],
            sensitive=b.get("sensitive"), sensitive_display=str(b.get("sensitive_display", "cell")),
            options={k2: v for k2, v in b.items() if k2 not in known}))

    area = study.get("area")
    if area is not None and area not in {b.id for b in boundaries}:
        raise UserError(f"[study] area = '{area}' names no [[boundaries]] id "
                        f"(have: {', '.join(b.id for b in boundaries) or 'none'}).", file=str(path))
    outputs = raw.get("outputs", {})
    analysis = raw.get("analysis", {})
    _raise(_related_problems(analysis, sources, start, end), path)
    cfg = Config(
        path=path.resolve(), base=base, name=str(study.get("name", path.stem)),
        start=start, end=end, start_label=start_label, end_label=end_label,
        area=area, area_names=_as_list(study.get("area_names")), sources=sources,
        boundaries=boundaries, key_buildings=buildings, weights=raw.get("weights", {}),
        analysis=analysis, outputs=outputs,
        attribution=_as_list(raw.get("attribution", [])) or [], raw=raw)
    _check_stages(cfg)
    return cfg


def _raise(problems: list[str], path: Path) -> None:
    """One UserError for every problem found: one sentence each, numbered when there are several."""
    if not problems:
        return
    if len(problems) == 1:
        raise UserError(problems[0], file=str(path))
    listed = " ".join(f"({k}) {p}" for k, p in enumerate(problems, start=1))
    raise UserError(f"the config has {len(problems)} problems: {listed}", file=str(path))


def _related_problems(analysis: dict, sources: list[Source], start: pd.Timestamp, end: pd.Timestamp) -> list[str]:
    """Limits between keys: neighbour distance and bandwidth against the cell size, periods against the study."""
    out = []
    cell = analysis.get("cell_size_m")
    if cell is not None:
        dist = analysis.get("neighbour_distance_m")
        if dist is not None and dist > MAX_NEIGHBOUR_CELLS * cell:
            out.append(f"[analysis] neighbour_distance_m = {dist:g} is more than {MAX_NEIGHBOUR_CELLS} cells "
                       f"({MAX_NEIGHBOUR_CELLS * cell:g} m at cell_size_m = {cell:g}): the limit of a Gi* "
                       "neighbourhood.")
        bw = analysis.get("bandwidth_m")
        if bw is not None and bw < MIN_BANDWIDTH_CELLS * cell:
            out.append(f"[analysis] bandwidth_m = {bw:g} is less than half the {cell:g} m cell "
                       f"(at least {MIN_BANDWIDTH_CELLS * cell:g} m): a finer kernel only draws the grid.")
        # Hexagon surfaces are computed on a lattice of half the spacing: the limit is in its cells.
        cells = MAX_BANDWIDTH_CELLS / (2 if analysis.get("cell_shape") == "hexagon" else 1)
        if bw is not None and bw > cells * cell:
            out.append(f"[analysis] bandwidth_m = {bw:g} is more than {cells:g} cells "
                       f"({cells * cell:g} m at cell_size_m = {cell:g}).")
    elif analysis.get("bandwidth_m") is not None and analysis["bandwidth_m"] > MAX_BANDWIDTH_CELLS * MAX_CELL_M:
        out.append(f"[analysis] bandwidth_m = {analysis['bandwidth_m']:g} is more than "
                   f"{MAX_BANDWIDTH_CELLS * MAX_CELL_M:g} m.")
    first_month, last_month = pd.Period(start, "M"), pd.Period(end - pd.Timedelta(seconds=1), "M")
    for src in sources:
        period = src.options.get("period")
        if not period:
            continue
        where = f"[[sources]] '{src.id}' period = '{period}'"
        try:
            a, b = (pd.Period(p.strip(), "M") for p in str(period).split(":"))
        except (ValueError, TypeError):
            out.append(f"{where} is not two months START:END (e.g. 2017-12:2018-06).")
            continue
        if b < a:
            out.append(f"{where}: its end is before its start.")
        elif b < first_month or a > last_month:
            out.append(f"{where} lies outside the study ({first_month} to {last_month}).")
    return out


def _check_stages(cfg: Config) -> None:
    """Each source's schema and mapping, the stages' own option tables, and that something can count."""
    from hotspots.load.geocode import geocoding_options
    from hotspots.load.linkage import linkage_options
    from hotspots.load.spec import resolve_schema
    from hotspots.profile import options_from_config

    linkage_options(cfg)
    geocoding_options(cfg)
    options_from_config(cfg)
    evidence_weight = dict(DEFAULT_WEIGHTS["evidence"])
    set_here = {k: float(v) for k, v in cfg.weights.items() if k in EVIDENCE_CLASSES}
    evidence_weight.update(set_here)
    can_count = []
    for src in cfg.sources:
        mapping = src.options.get("mapping")
        try:
            spec = resolve_schema(src.schema, cfg.base, str(mapping) if mapping else None)
        except UserError as exc:
            raise UserError(f"[[sources]] '{src.id}' schema = '{src.schema}'"
                            f"{f' (mapping {mapping!r})' if mapping else ''}: {exc}", file=str(cfg.path)) from None
        classes = [src.evidence or spec.get("evidence")] if (src.evidence or spec.get("evidence")) \
            else list(EVIDENCE_CLASSES)
        best = max(evidence_weight.get(c, 0.0) for c in classes)
        # Zero by this config (a source weight or a [weights] class set to 0), not by the defaults:
        # a police-activity source alone weighs 0 by design and may still be loaded and validated.
        by_config = src.weight == 0 or (best == 0 and any(c in set_here for c in classes))
        can_count.append((src.weight * best, by_config, f"{src.id} {src.weight:g} x {best:g}"))
    if any(w > 0 for w, _, _ in can_count) or not any(by for _, by, _ in can_count):
        return
    raise UserError("nothing can count: every source's weight times its evidence class's weight is 0 "
                    f"({'; '.join(t for _, _, t in can_count)}).", file=str(cfg.path),
                    hint="Give at least one source and its evidence class a weight above 0 "
                         "([[sources]] weight, [weights]).")
