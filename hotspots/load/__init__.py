"""Load: every partner's extract into the common incident schema.

``load_sources(config)`` reads every file of every source with its schema
from ``data_schemas/``, maps it (``mapping``), filters it by the config's
period and categories, and merges duplicate records (``dedupe``). It returns
the incidents (common-schema columns plus ``_file`` and ``_row``, kept until
the study-area clip so that late rejects still name their row) and the
``Ledger`` that accounts for every input row.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hotspots.config import Config, Source
from hotspots.errors import UserError
from hotspots.load.dedupe import merge_duplicates
from hotspots.load.ledger import Ledger
from hotspots.load.mapping import map_rows
from hotspots.load.readers import read_table
from hotspots.schema import empty_incidents, enforce, source_schema


@dataclass
class Loaded:
    incidents: pd.DataFrame
    ledger: Ledger


def _load_source(cfg: Config, src: Source, ledger: Ledger) -> list[pd.DataFrame]:
    schema = source_schema(src.schema, cfg.base)
    evidence = src.evidence or schema.get("evidence")
    if not evidence:
        raise UserError(f"[[sources]] '{src.id}' needs an evidence class (schema '{schema['name']}' gives none).",
                        file=str(cfg.path))
    files = src.files(cfg.base)
    if not files:
        raise UserError(f"[[sources]] '{src.id}': path '{src.path}' matches no file.",
                        file=str(cfg.path), hint=f"Paths are relative to the config's folder ({cfg.base}).")
    frames = []
    for path in files:
        raw = read_table(path, schema["reader"])
        fidx = ledger.add_file(src.id, path, len(raw))
        mapped, rejects = map_rows(raw, schema, src.id, evidence, str(path))
        ledger.reject(src.id, str(path), rejects["_row"], rejects["reason"], rejects["columns"])
        # Filters chosen by the config: the study period, then the source's categories.
        out_period = (mapped["occurred_to"] < cfg.start) | (mapped["occurred_from"] >= cfg.end)
        why = pd.Series(np.where(out_period, "outside study period", ""), index=mapped.index)
        if src.categories:
            why[(why == "") & ~mapped["category"].isin(src.categories)] = "category not selected"
        drop = why != ""
        ledger.filter(src.id, str(path), mapped.loc[drop, "_row"], why[drop])
        mapped = mapped[~drop].copy()
        mapped["_file"] = str(path)
        mapped["incident_id"] = f"{src.id}:{fidx}:" + mapped["_row"].astype(str)
        mapped["handling"] = src.handling
        scope = schema.get("dedupe", {}).get("scope")
        ref = mapped.get("source_ref", pd.Series("", index=mapped.index)).fillna("")
        mapped["_dedupe"] = (scope + ":" + ref).where(ref != "", "") if scope else ""
        frames.append(mapped)
    return frames


def load_sources(cfg: Config, only: list[str] | None = None, keep_going: bool = False) -> Loaded:
    """Load every source of ``cfg`` (or those in ``only``).

    With ``keep_going`` a source that fails as a whole (missing file, missing
    column) is recorded in ``ledger.failures`` instead of stopping the run;
    ``validate`` uses this to report every source.
    """
    ledger = Ledger()
    frames = []
    for src in cfg.sources:
        if only and src.id not in only:
            continue
        try:
            frames += _load_source(cfg, src, ledger)
        except UserError as exc:
            if not keep_going:
                raise
            ledger.failures[src.id] = str(exc)
    frames = [f for f in frames if len(f)]
    if frames:
        incidents = pd.concat(frames, ignore_index=True)
    else:
        incidents = empty_incidents().assign(_file=pd.Series(dtype=str), _row=pd.Series(dtype=int))
    incidents = merge_duplicates(incidents, ledger)
    return Loaded(incidents, ledger)


def finish(incidents: pd.DataFrame) -> pd.DataFrame:
    """Drop the bookkeeping columns and enforce the common schema (the allow-list)."""
    return enforce(incidents).reset_index(drop=True)
