"""Load: every partner's extract into the common incident schema.

``load_sources(config)`` reads every file of every source with its schema
from ``data_schemas/`` (or the partnership's own mapping, ``spec``), maps it
(``mapping``: fields, ``dates``, ``location`` with offline ``geocode``),
filters it by the config's period and categories, merges records published
twice (``dedupe``) and flags probable duplicates of one incident across
agencies (``linkage``). It returns a ``Loaded``:

- ``incidents``: common-schema columns plus ``duplicate_of`` (see
  ``linkage``), the bookkeeping columns ``_file`` and ``_row`` (kept until the
  study-area clip so that late rejects still name their row) and
  ``_conditions`` (True where a record carries its own handling conditions;
  read by ``hotspots.governance``);
- ``ledger``: accounts for every input row (loaded, filtered, rejected) and
  notes corrections;
- ``geocoding``: per source whose locations are geocoded, the number of rows
  matched at each level: ``{"postcode", "street", "place", "unmatched"}`` (over
  every row the geocoder was asked about, whatever else was wrong with it);
- ``linkage``: what ``linkage.link_duplicates`` did (``linked``, thresholds).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hotspots.config import Config, Source
from hotspots.errors import UserError
from hotspots.load.dedupe import merge_duplicates
from hotspots.load.geocode import Geocoder, build_geocoder, match_counts
from hotspots.load.ledger import Ledger
from hotspots.load.linkage import link_duplicates
from hotspots.load.mapping import check_columns, map_rows, street_points_from, street_source
from hotspots.load.readers import read_source, schema_columns
from hotspots.load.spec import needs_geocoder, resolve_schema
from hotspots.schema import TAXONOMY, empty_incidents, enforce

# Columns outside the common schema that ``finish`` keeps: bookkeeping about
# incidents (never about people), which later stages read.
ANNOTATIONS = ("duplicate_of",)


@dataclass
class Loaded:
    incidents: pd.DataFrame
    ledger: Ledger
    geocoding: dict[str, dict[str, int]] = field(default_factory=dict)
    linkage: dict = field(default_factory=dict)
    # Named snap points (``name``, ``x``, ``y``) of the sources that publish street names (police.uk
    # "On or near ..."): public place names, for the map's street labels and region names.
    streets: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["name", "x", "y"]))


def with_subcategories(categories: list[str]) -> set[str]:
    """The categories and every taxonomy category whose ``parent`` is one of them."""
    chosen = set(categories)
    return chosen | {c for c, v in TAXONOMY.items() if v.get("parent") in chosen}


@dataclass
class _Plan:
    src: Source
    schema: dict | None = None
    files: list = field(default_factory=list)
    error: UserError | None = None


def _plan(cfg: Config, src: Source) -> _Plan:
    plan = _Plan(src)
    try:
        mapping = src.options.get("mapping")
        plan.schema = resolve_schema(src.schema, cfg.base, str(mapping) if mapping else None)
        plan.files = src.files(cfg.base)
        if not plan.files:
            raise UserError(f"[[sources]] '{src.id}': path '{src.path}' matches no file.",
                            file=str(cfg.path), hint=f"Paths are relative to the config's folder ({cfg.base}).")
    except UserError as exc:
        plan.error = exc
    return plan


def _load_source(cfg: Config, plan: _Plan, ledger: Ledger, raw_cache: dict, geocoder: Geocoder | None,
                 geocoding: dict, streets: list | None = None) -> list[pd.DataFrame]:
    src, schema = plan.src, plan.schema
    fields = schema.get("fields", {})
    evidence = src.evidence or schema.get("evidence")
    if not evidence and "evidence" not in fields:
        raise UserError(f"[[sources]] '{src.id}' needs an evidence class (schema '{schema['name']}' gives none).",
                        file=str(cfg.path))
    selected = with_subcategories(src.categories) if src.categories else None
    frames = []
    for path in plan.files:
        table = raw_cache.pop(_cache_key(path, schema), None)
        if table is None:
            table = read_source(path, schema["reader"],
                                keep=schema_columns(schema) | set(street_source(schema).values()))
        raw, header = table
        # A file whose header the mapping does not recognise fails before it is counted:
        # never "0 rows read" for a file of the wrong shape.
        check_columns(raw, schema, str(path), header)
        if not len(raw):
            ledger.warn(src.id, str(path), "the file has no data rows.")
        fidx = ledger.add_file(src.id, path, len(raw))
        if streets is not None and "street" in street_source(schema):
            streets.append(street_points_from(raw, schema))
        m = map_rows(raw, schema, src.id, evidence, str(path), geocoder, fixed_evidence=src.evidence is not None,
                     header=header)
        ledger.reject(src.id, str(path), m.rejects["_row"], m.rejects["reason"], m.rejects["columns"])
        mapped = m.incidents
        if len(m.geocoded) or needs_geocoder(schema)[0]:
            counts = match_counts(m.geocoded)
            total = geocoding.setdefault(src.id, dict.fromkeys(counts, 0))
            for k, v in counts.items():
                total[k] += v
        # Filters chosen by the config: the study period, then the source's categories.
        out_period = (mapped["occurred_to"] < cfg.start) | (mapped["occurred_from"] >= cfg.end)
        why = pd.Series(np.where(out_period, "outside study period", ""), index=mapped.index)
        if selected:
            why[(why == "") & ~mapped["category"].isin(selected)] = "category not selected"
        drop = why != ""
        ledger.filter(src.id, str(path), mapped.loc[drop, "_row"], why[drop])
        kept_rows = set(mapped.loc[~drop, "_row"])
        notes = m.notes[m.notes["_row"].isin(kept_rows)]
        ledger.note(src.id, str(path), notes["_row"].to_numpy(), notes["note"].to_numpy(), notes["columns"].to_numpy())
        mapped = mapped[~drop].copy()
        mapped["_file"] = str(path)
        mapped["incident_id"] = f"{src.id}:{fidx}:" + mapped["_row"].astype(str)
        # A record's own handling code wins; a blank one takes the source's (the config's) code.
        own = mapped["handling"].fillna("").astype(str) if "handling" in mapped else pd.Series("", index=mapped.index)
        mapped["handling"] = own.where(own != "", src.handling)
        conds = mapped.pop("_handling_conditions") if "_handling_conditions" in mapped else None
        mapped["_conditions"] = (conds.fillna("").astype(str).str.strip() != "") if conds is not None else False
        dd = schema.get("dedupe", {})
        scope = dd.get("scope")
        if "column" in dd:
            ref = mapped["_dedupe_ref"]
        else:
            ref = mapped.get("source_ref", pd.Series("", index=mapped.index)).fillna("")
        mapped["_dedupe"] = (scope + ":" + ref).where(ref != "", "") if scope else ""
        mapped = mapped.drop(columns=[c for c in ("_dedupe_ref",) if c in mapped])
        frames.append(mapped)
    return frames


def _cache_key(path, schema: dict) -> tuple:
    """A file read once for the street gazetteer is reused by its source: same path, same reader."""
    return str(path), json.dumps(schema["reader"], sort_keys=True)


def _prepare_geocoder(cfg: Config, plans: list[_Plan], raw_cache: dict) -> tuple[Geocoder | None, UserError | None]:
    """Build the geocoder when a source needs one, from the streets of the sources that name them."""
    wanted = [p for p in plans if p.error is None and needs_geocoder(p.schema)[0]]
    if not wanted:
        return None, None
    streets = []
    for p in plans:
        if p.error is not None or "street" not in street_source(p.schema):
            continue
        for path in p.files:
            try:
                key = _cache_key(path, p.schema)
                table = raw_cache.get(key)
                if table is None:
                    table = raw_cache[key] = read_source(path, p.schema["reader"])
                streets.append(street_points_from(table.rows, p.schema))
            except UserError:
                continue     # the source reports its own failure when it is loaded
    try:
        return build_geocoder(cfg, streets, any(needs_geocoder(p.schema)[1] for p in wanted)), None
    except UserError as exc:
        return None, exc


def load_sources(cfg: Config, only: list[str] | None = None, keep_going: bool = False) -> Loaded:
    """Load every source of ``cfg`` (or those in ``only``).

    With ``keep_going`` a source that fails as a whole (missing file, a file
    whose header the mapping does not recognise, an unreadable file, no postcode
    lookup) is recorded in ``ledger.failures`` instead of stopping the run;
    ``validate`` uses this to report every source. A file with a matching header
    and no data rows is not a failure: ``ledger.warnings`` notes it.
    """
    ledger = Ledger()
    plans = [_plan(cfg, s) for s in cfg.sources if not only or s.id in only]
    raw_cache: dict = {}
    geocoder, geo_error = _prepare_geocoder(cfg, plans, raw_cache)
    frames, geocoding, streets = [], {}, []
    for plan in plans:
        try:
            if plan.error is not None:
                raise plan.error
            if geo_error is not None and needs_geocoder(plan.schema)[0]:
                raise geo_error
            frames += _load_source(cfg, plan, ledger, raw_cache, geocoder, geocoding, streets)
        except UserError as exc:
            if not keep_going:
                raise
            ledger.failures[plan.src.id] = str(exc)
    frames = [f for f in frames if len(f)]
    if frames:
        incidents = pd.concat(frames, ignore_index=True)
    else:
        incidents = empty_incidents().assign(_file=pd.Series(dtype=str), _row=pd.Series(dtype=int),
                                             _conditions=pd.Series(dtype=bool))
    incidents = merge_duplicates(incidents, ledger)
    incidents, linkage = link_duplicates(incidents, cfg)
    streets = [s for s in streets if len(s)]
    loaded = Loaded(incidents, ledger, geocoding, linkage)
    if streets:
        loaded.streets = pd.concat(streets, ignore_index=True)
    return loaded


def finish(incidents: pd.DataFrame) -> pd.DataFrame:
    """Drop the bookkeeping columns and enforce the common schema (the allow-list).

    The ``ANNOTATIONS`` present are kept after the schema's fields; a
    ``duplicate_of`` naming an incident no longer present (clipped or held back)
    is cleared, so that the record it pointed to is not counted zero times.
    """
    out = enforce(incidents).reset_index(drop=True)
    for col in ANNOTATIONS:
        if col in incidents:
            values = incidents[col].fillna("").astype(str).to_numpy()
            out[col] = np.where(pd.Series(values).isin(set(out["incident_id"])), values, "")
    return out
