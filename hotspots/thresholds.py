"""Each partner's "high risk", side by side (``thresholds.csv``).

Partners grade risk on their own scales (a youth offending service's Red /
Amber / Green, the police missing-person grading High / Medium / Low / No
Apparent Risk); each source's mapping puts those levels onto the common 1-4
severity and keeps the level as written in ``source_severity``. A source
"carries its own grading" when its schema maps ``severity`` from a column and
keeps ``source_severity``.

The partner says in the config what it calls high risk and what each level means::

    [[sources]]
    id = "yos_referrals"
    high_risk = ["Red"]
    levels = { Red = "...", Amber = "...", Green = "..." }

Without ``high_risk`` the levels mapped to the top of the common scale (4) are
taken, and the table says so.

``threshold_table(cfg, incidents)`` returns one row per source and level:
``source_id``, ``level`` (as the mapping writes it, or as recorded when the
mapping does not define it; ``(blank)`` for none), ``common_severity`` (1-4,
empty where the level is not in the mapping), ``meaning`` (the partner's own
words from ``levels``), ``high_risk`` (the partner calls it high risk),
``records``, ``months`` (months of the source's period), ``per_month`` (mean
records a month), ``busiest_month`` (most records in one month),
``share_of_source`` (of the source's records), ``source_high_risk_share``
(the share of the source's records the partner itself calls high risk, the
same on every row of the source) and ``flag`` (``no stated meaning``,
``not in the mapping: the category's severity was used``, ``high risk not
stated: levels mapped to 4 taken``; ``;``-separated).

``high_risk_mask(cfg, incidents)`` is True for the records their own partner
calls high risk (sources without a grading of their own: never).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from hotspots.config import Config
from hotspots.frames import text_codes
from hotspots.load.spec import resolve_schema

COLUMNS = ["source_id", "level", "common_severity", "meaning", "high_risk", "records", "months", "per_month",
           "busiest_month", "share_of_source", "source_high_risk_share", "flag"]
BLANK = "(blank)"
NO_MEANING = "no stated meaning"
NOT_MAPPED = "not in the mapping: the category's severity was used"
NOT_STATED = "high risk not stated: levels mapped to 4 taken"


def _norm(value) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip().casefold()


def source_levels(cfg: Config) -> dict[str, dict]:
    """For each source with its own grading: ``levels`` (level as written -> common severity),
    ``high_risk`` (normalised levels the partner calls high risk), ``stated`` (whether the
    partner said so) and ``meanings`` (normalised level -> words)."""
    out = {}
    for src in cfg.sources:
        try:
            spec = resolve_schema(src.schema, cfg.base, src.options.get("mapping"))
        except Exception:       # the load stage reports a bad schema; here it only has no grading
            continue
        fields = spec.get("fields", {})
        sev = fields.get("severity") or {}
        if "column" not in sev or "source_severity" not in fields or "map" not in sev:
            continue
        table = sev["map"] if isinstance(sev["map"], dict) else spec.get("maps", {}).get(sev["map"], {})
        levels = {str(k): int(v) for k, v in table.items() if str(k).strip()}
        said = src.options.get("high_risk")
        said = [said] if isinstance(said, str) else list(said or [])
        high = {_norm(v) for v in said} if said else {_norm(k) for k, v in levels.items() if v == 4}
        meanings = {_norm(k): str(v) for k, v in (src.options.get("levels") or {}).items()}
        out[src.id] = {"levels": levels, "high_risk": high, "stated": bool(said), "meanings": meanings}
    return out


def high_risk_mask(cfg: Config, incidents: pd.DataFrame) -> np.ndarray:
    """True for each record its own partner calls high risk."""
    mask = np.zeros(len(incidents), dtype=bool)
    if not len(incidents) or "source_severity" not in incidents:
        return mask
    level = incidents["source_severity"].map(_norm).to_numpy()
    sid, names = text_codes(incidents["source_id"])     # once, not per source (-1: a source with no record)
    for source, info in source_levels(cfg).items():
        mask |= (sid == names.get_indexer([source])[0]) & np.isin(level, list(info["high_risk"]))
    return mask


def _months(cfg: Config, source) -> int:
    start, end = cfg.start, cfg.end
    period = source.options.get("period")
    if period:
        a, b = (pd.Timestamp(p.strip() + "-01") for p in str(period).split(":"))
        start, end = max(start, a), min(end, b + pd.offsets.MonthBegin(1))
    return max(int((end.to_period("M") - start.to_period("M")).n), 1)


def threshold_table(cfg: Config, incidents: pd.DataFrame) -> pd.DataFrame:
    """One row per source with its own grading and level; see the module docstring for the columns."""
    rows = []
    by_id = {s.id: s for s in cfg.sources}
    sid, names = text_codes(incidents["source_id"])
    for source, info in source_levels(cfg).items():
        inc = incidents[sid == names.get_indexer([source])[0]] if len(incidents) else incidents
        level = inc["source_severity"].map(_norm) if len(inc) else pd.Series(dtype=str)
        month = pd.to_datetime(inc["occurred_from"]).dt.to_period("M") if len(inc) else pd.Series(dtype=object)
        months = _months(cfg, by_id[source])
        total = len(inc)
        high_share = float(level.isin(info["high_risk"]).mean()) if total else float("nan")
        defined = {_norm(k): k for k in info["levels"]}
        written = {}
        for raw, key in zip(inc["source_severity"] if total else [], level):
            written.setdefault(key, BLANK if key == "" else str(raw).strip())
        keys = list(defined) + [k for k in sorted(written) if k not in defined]
        for key in keys:
            hit = (level == key).to_numpy() if total else np.zeros(0, dtype=bool)
            n = int(hit.sum())
            per = month[hit].value_counts() if n else pd.Series(dtype=int)
            flags = []
            if key not in defined:
                flags.append(NOT_MAPPED)
            if key not in info["meanings"]:
                flags.append(NO_MEANING)
            is_high = key in info["high_risk"]
            if is_high and not info["stated"]:
                flags.append(NOT_STATED)
            rows.append({
                "source_id": source, "level": defined.get(key, written.get(key, key)),
                "common_severity": info["levels"].get(defined[key]) if key in defined else None,
                "meaning": info["meanings"].get(key, ""), "high_risk": is_high, "records": n, "months": months,
                "per_month": round(n / months, 2), "busiest_month": int(per.max()) if n else 0,
                "share_of_source": round(n / total, 3) if total else None,
                "source_high_risk_share": round(high_share, 3) if total else None,
                "flag": "; ".join(flags)})
    out = pd.DataFrame(rows, columns=COLUMNS)
    out["common_severity"] = out["common_severity"].astype("Int64")
    return out
