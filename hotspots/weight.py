"""Weight: how much each incident counts, as the partners agreed.

Input: incidents in the common schema. Output: the same with ``weight`` set to
source weight x evidence-class weight x grade weight, and the weighting table
as applied (for the manifest and the map's methods panel). Defaults are in
``data_schemas/weights.json``; the config's ``[weights]`` table overrides
them (evidence classes by name; ``grades_3x5x2`` / ``grades_5x5x5`` subtables).
Categories marked ``risk = false`` in the taxonomy (stop and search) weigh 0:
where police look is not where harm is. A probable duplicate of another
agency's record (``duplicate_of`` set by ``hotspots.load.linkage``) weighs 0:
the incident is counted once, on the record kept.

Optional factors (both off by default, both recorded in the table):

- recency: ``[weights] recency_half_life_months = H`` multiplies by
  0.5 ** (age / H), the age in months of 30.44 days from the middle of the
  incident's date window to the end of the study period;
- harm: ``[weights] harm = true`` multiplies by the severity factor of the
  harmonised severity 1-4 (``harm_factors`` overrides the defaults of
  ``weights.json``: 0.25, 0.5, 1, 2).
"""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from hotspots.config import Config
from hotspots.errors import UserError
from hotspots.frames import text_codes, text_in
from hotspots.schema import DEFAULT_WEIGHTS, EVIDENCE_CLASSES, TAXONOMY


def weight_table(cfg: Config) -> dict:
    """The weighting table as it will be applied: defaults overridden by the config."""
    table = copy.deepcopy(DEFAULT_WEIGHTS)
    table.pop("description", None)
    table["recency"]["reference"] = (cfg.end - pd.Timedelta(seconds=1)).strftime("%Y-%m-%d")
    for key, value in cfg.weights.items():
        if key == "recency_half_life_months":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise UserError(f"[weights] recency_half_life_months should be a number of months > 0 (or 0 for "
                                f"off), got {value!r}.", file=str(cfg.path))
            table["recency"]["half_life_months"] = float(value) if value > 0 else None
        elif key == "harm":
            if not isinstance(value, bool):
                raise UserError(f"[weights] harm should be true or false, got {value!r}.", file=str(cfg.path))
            table["harm"]["enabled"] = value
        elif key == "harm_factors":
            if not isinstance(value, dict) or not all(str(k) in ("1", "2", "3", "4") and isinstance(v, (int, float))
                                                      and v >= 0 for k, v in value.items()):
                raise UserError("[weights] harm_factors should map severities \"1\"-\"4\" to numbers >= 0, "
                                f"got {value!r}.", file=str(cfg.path))
            table["harm"]["severity_factor"].update({str(k): float(v) for k, v in value.items()})
        elif key in EVIDENCE_CLASSES:
            if not isinstance(value, (int, float)) or value < 0:
                raise UserError(f"[weights] {key} should be a number >= 0, got {value!r}.", file=str(cfg.path))
            table["evidence"][key] = float(value)
        elif key in ("grades_3x5x2", "grades_5x5x5") and isinstance(value, dict):
            for part in ("source", "intel"):
                table[key][part].update({str(k): float(v) for k, v in value.get(part, {}).items()})
        else:
            raise UserError(f"[weights] has an unknown key '{key}' (evidence classes: "
                            f"{', '.join(EVIDENCE_CLASSES)}; or grades_3x5x2 / grades_5x5x5, "
                            "recency_half_life_months, harm, harm_factors).", file=str(cfg.path))
    table["sources"] = {s.id: s.weight for s in cfg.sources}
    table["period_scale"] = period_scales(cfg)
    table["risk_roles"] = list(RISK_ROLES)
    table["non_risk_categories"] = sorted(c for c, v in TAXONOMY.items() if v.get("risk") is False)
    table["duplicates"] = "a probable duplicate of another agency's record (duplicate_of) weighs 0"
    return table


RISK_ROLES = ("victim", "unknown", "")


def period_scales(cfg: Config) -> dict[str, float]:
    """Sources whose extract covers only part of the study period (``period = "2017-12:2018-06"``
    on the [[sources]] entry) are scaled by study months / covered months, so that an area
    covered for seven months is compared like for like with one covered for twenty-four."""
    from hotspots.tiers import study_months
    out = {}
    study = study_months(cfg.start, cfg.end)
    for src in cfg.sources:
        period = src.options.get("period")
        if not period:
            continue
        try:
            first, last = (pd.Period(p.strip(), "M") for p in str(period).split(":"))
        except (ValueError, TypeError):
            raise UserError(f"[[sources]] '{src.id}' period = '{period}' should be START:END months, "
                            "e.g. 2017-12:2018-06.", file=str(cfg.path)) from None
        lo = max(first, pd.Period(cfg.start, "M"))
        hi = min(last, pd.Period(cfg.end - pd.Timedelta(seconds=1), "M"))
        covered = (hi - lo).n + 1
        out[src.id] = round(study / covered, 4) if covered > 0 else 1.0
    return out


def recency_factor(occurred_from: pd.Series, occurred_to: pd.Series, table: dict) -> np.ndarray:
    """0.5 ** (age / half-life) per incident; 1 when recency is off (see the module docstring)."""
    half = table.get("recency", {}).get("half_life_months")
    if not half:
        return np.ones(len(occurred_from))
    mid = occurred_from + (occurred_to.fillna(occurred_from) - occurred_from) / 2
    ref = pd.Timestamp(table["recency"]["reference"]) + pd.Timedelta(days=1)
    age = ((ref - mid).dt.total_seconds() / (30.4375 * 86400)).clip(lower=0).fillna(0).to_numpy(float)
    return 0.5 ** (age / float(half))


def harm_factor(severity: pd.Series, table: dict) -> np.ndarray:
    """The severity factor per incident; 1 when harm weighting is off (or the severity is unknown)."""
    harm = table.get("harm", {})
    if not harm.get("enabled"):
        return np.ones(len(severity))
    factors = {int(k): float(v) for k, v in harm["severity_factor"].items()}
    return pd.to_numeric(severity, errors="coerce").map(factors).fillna(1.0).to_numpy(float)


def grade_weight(grade_source: pd.Series, grade_intel: pd.Series, table: dict) -> np.ndarray:
    """Weight from the intelligence grades; 1 where a record is ungraded.

    A 3x5x2 grade has a numeric source (1-3) and a letter assessment (A-E); a
    5x5x5 grade has a letter source (A-E) and a numeric assessment (1-5).
    """
    # Decided once per distinct pair of grades (a handful), then spread to the records.
    s_code, s_values = text_codes(grade_source)
    i_code, i_values = text_codes(grade_intel)
    n_i = max(len(i_values), 1)
    # The pairs present, in order, and each record's among them: np.unique's answer, by counting the
    # few possible pairs instead of sorting every record (10 M: 1.53 s -> 0.1 s).
    key = s_code.astype(np.int64) * n_i + i_code
    present = np.bincount(key, minlength=len(s_values) * n_i) > 0
    pair, inverse = np.flatnonzero(present), (np.cumsum(present) - 1)[key]
    gs = pd.Series(np.asarray(s_values, dtype=object)[pair // n_i], dtype=str).str.strip().str.upper()
    gi = pd.Series(np.asarray(i_values, dtype=object)[pair % n_i], dtype=str).str.strip().str.upper()
    return _grade_weight(gs, gi, table)[inverse.reshape(-1)] if len(pair) else np.ones(0)


def _grade_weight(gs: pd.Series, gi: pd.Series, table: dict) -> np.ndarray:
    """``grade_weight`` of cleaned (stripped, upper-case) grade texts."""
    w = np.ones(len(gs))
    modern = gs.str.fullmatch("[1-3]") | gi.str.fullmatch("[A-E]")
    legacy = gs.str.fullmatch("[A-E]") | gi.str.fullmatch("[1-5]")
    for mask, key in ((modern, "grades_3x5x2"), (legacy & ~modern, "grades_5x5x5")):
        if mask.any():
            s = gs[mask].map(table[key]["source"]).fillna(1.0).to_numpy(float)
            i = gi[mask].map(table[key]["intel"]).fillna(1.0).to_numpy(float)
            w[mask.to_numpy()] = s * i
    return w


def lookup(values: pd.Series, mapping: dict, default: float) -> np.ndarray:
    """``values.map(mapping).fillna(default)`` as floats, looked up once per distinct value: mapping a
    string column value by value makes a Python object per row (gigabytes at 10 M incidents)."""
    codes, distinct = pd.factorize(values)
    found = pd.Series(distinct, dtype=object).map(mapping).fillna(default).to_numpy(float)
    # A missing value (code -1) takes the default, the last entry: one gather, not a where over every row.
    return np.append(found, float(default))[codes]


def apply_weights(incidents: pd.DataFrame, table: dict) -> pd.DataFrame:
    """Set ``weight`` on every incident from ``table`` (see ``weight_table``)."""
    out = incidents.copy(deep=False)     # copy-on-write: only ``weight`` is new
    w = lookup(out["source_id"], table["sources"], 1.0)
    w = w * lookup(out["source_id"], table.get("period_scale", {}), 1.0)
    w = w * lookup(out["evidence"], table["evidence"], 0.0)
    w = w * grade_weight(out["grade_source"], out["grade_intel"], table)
    w = w * recency_factor(out["occurred_from"], out["occurred_to"], table)
    w = w * harm_factor(out["severity"], table)
    w[out["category"].isin(table["non_risk_categories"]).to_numpy()] = 0.0
    # Records about a person count as risk for one role only (victims, or role unknown):
    # a suspect's and a victim's record of the same incident are never summed.
    w[~text_in(out["role"], table.get("risk_roles", RISK_ROLES))] = 0.0
    if "duplicate_of" in out:
        w[(out["duplicate_of"].fillna("").astype(str) != "").to_numpy()] = 0.0
    out["weight"] = w
    return out


def risk(incidents: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """The incidents that count as risk: weight above zero (not context, not a linked duplicate,
    not held to a role other than victim). With ``columns`` only those are copied (at millions of
    rows a copy of every column is the largest allocation of the stage that asks)."""
    keep = is_risk(incidents)
    return (incidents if columns is None else incidents[list(columns)])[keep]


def is_risk(incidents: pd.DataFrame) -> np.ndarray:
    """Which incidents count as risk (``risk``'s rows), as a boolean array."""
    return incidents["weight"].to_numpy() > 0
