"""Where to act: the hotspot regions and key buildings in rank order, as the map's panel lists them.

``where_to_act(result, public)`` returns one entry per place, in rank order:
``{"group", "title", "detail", "bounds"}`` (bounds ``[[south, west], [north,
east]]`` in WGS84). Regions rank by their weighted incidents (R1 the
strongest, as ``regions.rank``); buildings by their rank in ``buildings.csv``
(relative risk with confidence), the top ``TOP_BUILDINGS``, each saying its q and
whether it is significant against comparable places (the rank follows the Poisson
interval, which does not allow for overdispersion: in the example the top ten all
have q >= 0.69, and a bare "relative risk 7.13" read as a finding). The public tier
lists regions only, with its counts suppressed and rounded. Text is plain:
the map sets it with ``textContent``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from hotspots.crs import BNG, WGS84, transformer
from hotspots.detect.spacetime import trending
from hotspots.publish.map_buildings import Q_LEVEL, risk_band
from hotspots.tiers import public_count
from hotspots.weight import is_risk

# What a region's evidence mix counts, and what its support means (a user audit: R1's "Incidents 511" beside a
# mix summing to 709, and a region "made hot by" a source with no record inside it). Shared with the briefing.
MIX_LABEL = "Records by evidence (context layers and records linked as duplicates included)"
SUPPORT_LABEL = "Made hot by (each source's own Gi*: its records in and around the region)"
# Beside a Poisson interval of buildings or building types (a statistics audit: a care home type's 0.42
# (0.39-0.46) read as significantly low where its own test gave p 0.37).
INTERVAL_NOTE = ("The interval counts the incidents as Poisson against the expected count: it does not allow for "
                 "crime's overdispersion, so it is narrower than the uncertainty. Whether a building or a type stands "
                 f"out is said by its test against comparable places (random places in the covered area): p or q at "
                 f"most {Q_LEVEL:g}.")

TOP_BUILDINGS = 10


def _bounds(minx: float, miny: float, maxx: float, maxy: float) -> list[list[float]]:
    xs, ys = transformer(BNG, WGS84).transform([minx, maxx, minx, maxx], [miny, miny, maxy, maxy])
    return [[round(min(ys), 6), round(min(xs), 6)], [round(max(ys), 6), round(max(xs), 6)]]


def clock(records: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whether each record's date carries a time of day (``date_precision`` "minute"), and for those
    records their hour of day and day of week (Monday 0; -1 for the others): for all records at once,
    so that a region's tables are counts of its rows (30 M incidents: the briefing read each region's
    dates anew). Returns (hour, weekday, timed)."""
    when = pd.to_datetime(records["occurred_from"])
    timed = ((records["date_precision"] == "minute") & when.notna()).to_numpy(bool) \
        if "date_precision" in records else np.zeros(len(records), bool)
    hour = np.full(len(records), -1, dtype=np.int64)
    weekday = hour.copy()
    hour[timed] = when[timed].dt.hour.to_numpy(np.int64)
    weekday[timed] = when[timed].dt.day_of_week.to_numpy(np.int64)
    return hour, weekday, timed


def peak_window(hours: np.ndarray) -> str:
    """The three-hour window holding most of the records with a time of day whose hours are ``hours``
    (0-23), in words; "" for fewer than five (police.uk dates are month-only)."""
    if len(hours) < 5:
        return ""
    hours = np.bincount(hours, minlength=24)
    windows = hours + np.roll(hours, -1) + np.roll(hours, -2)
    start = int(np.argmax(windows))
    return f"{start:02d}:00-{(start + 3) % 24:02d}:00 ({windows[start] / hours.sum():.0%} of {hours.sum():,} timed)"


def rows_by_region(record_cell: np.ndarray, region_of_cell) -> dict[str, np.ndarray]:
    """Each region's records: their positions, in record order, keyed by region id, from each
    record's cell (-1: none) and each cell's ``region_id``. One sort of the records, not a pass over
    every record per region (1 M incidents, 20 regions: the briefing and the map's list each did 20)."""
    codes, names = pd.factorize(pd.Series(region_of_cell, dtype=object), use_na_sentinel=True)
    cell = np.asarray(record_cell, dtype=np.int64)
    of = np.where(cell >= 0, codes[np.clip(cell, 0, None)], -1) if len(codes) else np.full(len(cell), -1)
    # Few regions: as 16-bit codes the stable sort is numpy's radix sort (10 M records: 0.56 s as int64).
    order = np.argsort(of.astype(np.int16) if len(names) < 2 ** 15 - 1 else of, kind="stable")
    ends = np.searchsorted(of[order], np.arange(len(names) + 1), side="left")
    return {str(name): order[ends[k]:ends[k + 1]] for k, name in enumerate(names)}


RECORD_COLUMNS = ("x", "y", "cell", "occurred_from", "source_id", "date_precision")


def region_records(result) -> tuple[pd.DataFrame, dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """The risk records inside hotspot regions (their ``RECORD_COLUMNS``, in record order), each
    region's rows among them by the records' own cells (``rows_by_region``) and their ``clock`` (hour,
    weekday, timed): found once per result and kept on it, for the partner map's list and the partner
    briefing both (10 M incidents: about a second each time). Only the records of some region are
    kept: the lists and the briefing read no other (a copy of every risk record's columns and clock
    was 435 MB at 10 M incidents, held through the publishing)."""
    got = result.__dict__.get("_region_records")
    if got is None:
        inc = result.incidents
        risky = np.flatnonzero(is_risk(inc))
        # Cells of no region carry "" (a key of its own here): those records are not kept.
        in_region = {k: v for k, v in rows_by_region(inc["cell"].to_numpy()[risky],
                                                     result.cells["region_id"].to_numpy()).items() if k}
        kept = np.sort(np.concatenate([np.empty(0, np.int64), *in_region.values()]))
        records = pd.DataFrame({c: inc[c].take(risky[kept]) for c in RECORD_COLUMNS if c in inc})
        # Each region's rows among the records kept: where its risk records fall in ``kept`` (both sorted).
        rows = {k: np.searchsorted(kept, v) for k, v in in_region.items()}
        got = (records, rows, *clock(records))
        result.__dict__["_region_records"] = got
    return got


def forget_region_records(result) -> None:
    """Let go of what ``region_records`` kept on ``result`` (a copy of six columns of the records)."""
    result.__dict__.pop("_region_records", None)


def _region_entries(result, public: bool) -> list[dict]:
    regions = result.regions
    if regions is None or not len(regions):
        return []
    cells = result.cells
    # The risk incidents' regions and times once, not once per region (peak hours).
    timed = "cell" in result.incidents and not public
    _, rows, hour, _, has_time = region_records(result) if timed else (None, {}, None, None, None)
    none = np.empty(0, dtype=np.int64)
    out = []
    order = regions.assign(_rank=regions.get("rank", regions["region_id"].str[1:].astype(int)))
    for reg in order.sort_values("_rank").itertuples():
        name = getattr(reg, "name", "") or reg.areas
        if public:
            detail = f"{public_count(reg.n)} incidents; {reg.areas}"
        else:
            members = cells["region_id"] == reg.region_id
            detail = f"{int(reg.n):,} incidents (weighted {reg.weighted:,.1f}); {reg.areas}"
            trends = cells.loc[members, "trend_class"] if "trend_class" in cells else pd.Series(dtype=str)
            trends = trends[trending(trends)]
            if len(trends):
                detail += f"; trend: {trends.value_counts().index[0]}"
            support = getattr(reg, "support", "")
            if isinstance(support, str) and support:
                detail += f"; supported by {support.replace(';', ', ')}"
            if timed:
                at = rows.get(str(reg.region_id), none)
                hours = peak_window(hour[at[has_time[at]]])
                detail += f"; peak hours {hours}" if hours else "; no times of day (month-only dates)"
        if reg.cross_boundary:
            detail += "; crosses a boundary"
        out.append({"group": "Hotspot regions (strongest first)", "title": f"{reg.region_id} {name}",
                    "detail": detail, "bounds": _bounds(*reg.geometry.bounds)})
    return out


def _sureness(b: pd.Series, lab: str) -> str:
    """", q 0.76: not significant against comparable places" (or "significant", the map's "high" band),
    for a building's entry at radius ``lab``; "" where it has no q."""
    q = b.get(f"q_{lab}")
    if q is None or pd.isna(q):
        return ""
    said = "significant" if risk_band(b, [lab]) == "high" else "not significant"
    return f", q {'<0.001' if q < 0.001 else f'{q:.3f}'}: {said} against comparable places"


def _building_entries(result) -> list[dict]:
    table = result.buildings
    if table is None or not len(table) or "rank" not in table:
        return []
    top = table[table["rank"].notna()].sort_values("rank").head(TOP_BUILDINGS)
    out = []
    for _, b in top.iterrows():
        lab = str(int(b["rank_radius_m"])) if pd.notna(b.get("rank_radius_m")) else None
        detail = f"{b['type']}"
        if lab and f"n_{lab}" in b:
            # Expected is in weighted incidents: against the weighted count (its ratio is the relative risk).
            detail += (f"; {b[f'weighted_{lab}']:,.1f} weighted incidents ({int(b[f'n_{lab}']):,} records) within "
                       f"{lab} m against {b[f'expected_{lab}']:,.1f} expected (relative risk {b[f'rr_{lab}']:.2f}"
                       + _sureness(b, lab) + ")")
        if b.get("region_id"):
            detail += f"; in hotspot region {b['region_id']}"
        r = float(lab) if lab else 250.0
        if b.get("cell_id") and pd.notna(b.get("cell_size_m")):
            # A sensitive site shown only by its cell (hotspots.sensitive): the entry zooms to the cell.
            r = float(b["cell_size_m"]) / 2
        out.append({"group": "Key buildings (highest relative risk first)", "title": f"{int(b['rank'])}. {b['name']}",
                    "detail": detail, "bounds": _bounds(b["x"] - r, b["y"] - r, b["x"] + r, b["y"] + r)})
    return out


def where_to_act(result, public: bool) -> list[dict]:
    """The panel's entries (see the module docstring)."""
    return _region_entries(result, public) + ([] if public else _building_entries(result))
