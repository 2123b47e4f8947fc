"""Weight: how much each incident counts, as the partners agreed.

Input: incidents in the common schema. Output: the same with ``weight`` set to
source weight x evidence-class weight x grade weight, and the weighting table
as applied (for the manifest and the map's methods panel). Defaults are in
``data_schemas/weights.json``; the config's ``[weights]`` table overrides
them (evidence classes by name; ``grades_3x5x2`` / ``grades_5x5x5`` subtables).
Categories marked ``risk = false`` in the taxonomy (stop and search) weigh 0:
where police look is not where harm is.
"""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from hotspots.config import Config
from hotspots.errors import UserError
from hotspots.schema import DEFAULT_WEIGHTS, EVIDENCE_CLASSES, TAXONOMY


def weight_table(cfg: Config) -> dict:
    """The weighting table as it will be applied: defaults overridden by the config."""
    table = copy.deepcopy(DEFAULT_WEIGHTS)
    table.pop("description", None)
    for key, value in cfg.weights.items():
        if key in EVIDENCE_CLASSES:
            if not isinstance(value, (int, float)) or value < 0:
                raise UserError(f"[weights] {key} should be a number >= 0, got {value!r}.", file=str(cfg.path))
            table["evidence"][key] = float(value)
        elif key in ("grades_3x5x2", "grades_5x5x5") and isinstance(value, dict):
            for part in ("source", "intel"):
                table[key][part].update({str(k): float(v) for k, v in value.get(part, {}).items()})
        else:
            raise UserError(f"[weights] has an unknown key '{key}' (evidence classes: "
                            f"{', '.join(EVIDENCE_CLASSES)}; or grades_3x5x2 / grades_5x5x5).",
                            file=str(cfg.path))
    table["sources"] = {s.id: s.weight for s in cfg.sources}
    table["non_risk_categories"] = sorted(c for c, v in TAXONOMY.items() if v.get("risk") is False)
    return table


def grade_weight(grade_source: pd.Series, grade_intel: pd.Series, table: dict) -> np.ndarray:
    """Weight from the intelligence grades; 1 where a record is ungraded.

    A 3x5x2 grade has a numeric source (1-3) and a letter assessment (A-E); a
    5x5x5 grade has a letter source (A-E) and a numeric assessment (1-5).
    """
    gs = grade_source.fillna("").astype(str).str.strip().str.upper()
    gi = grade_intel.fillna("").astype(str).str.strip().str.upper()
    w = np.ones(len(gs))
    modern = gs.str.fullmatch("[1-3]") | gi.str.fullmatch("[A-E]")
    legacy = gs.str.fullmatch("[A-E]") | gi.str.fullmatch("[1-5]")
    for mask, key in ((modern, "grades_3x5x2"), (legacy & ~modern, "grades_5x5x5")):
        if mask.any():
            s = gs[mask].map(table[key]["source"]).fillna(1.0).to_numpy(float)
            i = gi[mask].map(table[key]["intel"]).fillna(1.0).to_numpy(float)
            w[mask.to_numpy()] = s * i
    return w


def apply_weights(incidents: pd.DataFrame, table: dict) -> pd.DataFrame:
    """Set ``weight`` on every incident from ``table`` (see ``weight_table``)."""
    out = incidents.copy()
    w = out["source_id"].map(table["sources"]).fillna(1.0).to_numpy(float)
    w = w * out["evidence"].map(table["evidence"]).fillna(0.0).to_numpy(float)
    w = w * grade_weight(out["grade_source"], out["grade_intel"], table)
    w[out["category"].isin(table["non_risk_categories"]).to_numpy()] = 0.0
    out["weight"] = w
    return out
