"""Profile: the risk around each key building, and the relative risk of each building type.

``profile_buildings(buildings, incidents, study_area, regions, radii,
period_start, period_end, cfg_options)`` returns two tables.

**Buildings table** (``buildings.csv``), one row per building lying in the
study area (``table.attrs["outside_study_area"]`` counts those left out):
``building_id``, ``name``, ``type``, ``x``, ``y``; for each radius R (whole
metres in the names, e.g. ``n_250``): ``n_R``, ``weighted_R``, ``expected_R``,
``rr_R``, ``rr_low_R``, ``rr_high_R``, ``q_R``; then ``rank``, ``region_id``,
``trend``, ``peak_hours``; then ``layer``, ``subtype``, for each R
``n_<evidence>_R`` (each evidence class among the risk incidents), ``p_R`` and
``catchment_km2_R``; ``rank_radius_m``, ``precision_note``, ``trend_p``,
``after_school_share``, ``weekday_profile``, ``time_note``.

**Building-type table** (``building_types.csv``): ``type``, ``buildings``,
``radius_m``, ``area_km2_near``, ``n_near``, ``weighted_near``,
``n_elsewhere``, ``rate_ratio``, ``rr_low``, ``rr_high``, ``p_value``,
``note``.

Methods
-------
Risk incidents are those with ``weight > 0`` (stop and search and other
context layers weigh 0 and never count); the pipeline hands each source's records
inside its own coverage only (``coverage.in_own_coverage``), as its Gi* counts them,
since its expected count below spreads its rate over its coverage alone. ``n_R``
counts them within R metres of the building (distance <= R), ``weighted_R`` sums
their weights.

*Catchment.* The disc of radius R intersected with the study area; its area
``a_R`` is exact (pi R^2) for a disc wholly inside, otherwise the area of a
256-sided polygon's intersection scaled by pi R^2 / area(polygon).

*Expected.* ``expected_R = (W / A) x a_R``: the study area's weighted rate (W,
the weighted incidents in the study area, over its area A) times the
catchment's area. Given the sources' ``coverage`` (as the pipeline does), it is
summed source by source: each risk source's weighted rate over the part of the
study area it covers, times the part of the catchment it covers
(``coverage_expected``), so that a building where a source has no data is not
read as low risk for want of it (one rate made 72 of the example's 73 buildings
outside police coverage "significantly low"). With ``comparison = "type"`` it is instead the pooled rate
around the *other* buildings of the same type, ``sum(weighted_R) / sum(a_R)``
over them, times ``a_R`` (for whole discs, the mean weighted count around
them); a type with one building falls back to the study-area rate.

*Relative risk and interval.* ``rr_R = weighted_R / expected_R``. The
randomness is in the count n, so the interval is the exact Poisson (Garwood)
interval on n: L = chi2.ppf(0.025, 2n) / 2 and U = chi2.ppf(0.975, 2n + 2) / 2,
divided by the expected count on the count scale mu = expected_R / w, where w
is the mean weight of the building's incidents (of all risk incidents when it
has none). With weights all 1 this is the textbook n / E with Garwood limits;
with mixed weights the weights act as a fixed scale factor and the point
estimate always lies within its interval.

*Test and q-values.* Crime counts are overdispersed: against a flat Poisson
rate, 14-38 % of random points with no building effect were "significant"
(measured). So ``p_R`` comes from Monte Carlo relocation when the pipeline
hands comparable places (by default random places inside the covered area;
or the police.uk snap points and key buildings there): the weighted count within R of the building against
those of ``n_sim`` (1,999) places drawn among them, one-sided,
(#{null >= observed} + 1) / (n_sim + 1) (``inference.relocation_null``).
``null`` says which null was used. Without comparable places, ``p_R`` is the
exact one-sided upper tail P(X >= n | mu) (not mid-p), so that rr_low_R > 1
exactly when p_R < 0.025; ``expected_R`` and the interval stay the
study-area description in both cases. ``q_R`` is the
Benjamini-Hochberg adjustment of ``p_R`` across the buildings, per radius.

*Location precision.* A building's typical location precision is the median
``location_precision_m`` of the risk incidents within its largest radius (of
all risk incidents when there are none). A radius smaller than that is flagged
in ``precision_note`` and is not used for rank; when most of those incidents
are not exact (snap points, postcodes, streets, places, areas) the note says
the profile is approximate.

*Rank.* By ``rr_low`` at the rank radius, highest first (ties by ``rr``, then
``n``): the middle configured radius (``radii[len // 2]``), or the next larger
one that is not below the building's location precision. Buildings with no
such radius are not ranked. ``rank_radius_m`` records the radius used.

*Region.* ``region_id``: the hotspot region(s) whose polygon covers the
building (';'-separated), empty when none.

*Trend* (at the rank radius). The study period's months are split into the
last third (rounded, at least one month) and the months before. With n1 and n2
incidents in the two parts and t1, t2 their lengths in days, under a constant
rate n2 | n1 + n2 ~ Binomial(n1 + n2, t2 / (t1 + t2)) (option
``trend_baseline = "area"`` uses instead the study area's own share of recent
incidents, so an area-wide change or a seasonal swing is not read as a local
one). ``trend_p`` is the exact two-sided p (twice the smaller tail);
``trend`` is "rising" or "falling" when ``trend_p < alpha`` (0.05), else
"stable"; empty when there is no incident or fewer than two months.

*Time of day* (at the rank radius), only from incidents whose
``date_precision`` is "minute": ``peak_hours`` is the ``peak_window_h``-hour
window (3 by default, wrapping past midnight; the earliest on a tie) holding
the most incidents, written "15-18", when at least ``min_timed`` (5) timed
incidents exist; ``after_school_share`` is the share of them on a weekday
(Monday to Friday) within the after-school window (option ``after_school``,
"15:00-18:00" by default, end exclusive). ``weekday_profile`` counts incidents
with day or minute precision by day of week ("Mon 3, Tue 0, ..."). Month-only
sources contribute nothing; ``time_note`` says so ("dates are month-only: no
time profile"). School term against holidays: term dates differ by local
authority and academy trust, so they are configuration (option ``holidays``, a
list of "YYYY-MM-DD:YYYY-MM-DD" periods), never a national rule; with them,
``holiday_ratio`` is the share of a building's dated incidents (day or minute
precision) that fall in holidays over the share of days that are holidays
(1 = no difference, above 1 = more in holidays), with an exact binomial
``holiday_p``.

**Building types** in the manner of Risk Terrain Modeling's relative risk: for
each type, at its middle radius (bumped like the rank radius to the study-wide
median location precision), "near" is the union of that type's catchments
within the study area and "elsewhere" the rest. ``rate_ratio`` is the weighted
rate near over the weighted rate elsewhere; given the sources' coverage (as the
pipeline does) each rate is against the weight the sources would put there,
each spread over the part of the study area it covers, in place of the areas
a_near and a_else (``_expected_near``). Conditional on the total N, the
count near is Binomial(N, pi); the Clopper-Pearson 95 % interval for pi gives
the interval pi / (1 - pi) x (a_else / a_near), scaled by the ratio of mean
weights near and elsewhere as above. ``p_value`` is, with comparable places,
two-sided Monte Carlo: as many places as the type has buildings drawn among
them, the weighted count near any of them, ``n_sim`` times (a binomial test
gave p <= 0.05 for 90 % of random "types"); without, the exact two-sided
binomial test of rate ratio 1. ``null`` says which.
"""
from __future__ import annotations

import functools
import math
import re

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.spatial import cKDTree

from hotspots.detect.gistar import bh_qvalues  # one BH implementation for cells and buildings
from hotspots.detect.inference import (ball_neighbours, collapse, place_codes, place_tree, relocation_null,
                                       two_sided_p, union_relocation_null, upper_p)
from hotspots.distributions import beta_ppf, binom_cdf, binom_sf, chi2_ppf, poisson_sf
from hotspots.errors import UserError
from hotspots.frames import first_rows, group_medians, row_groups, small_codes, text_codes, text_in
from hotspots.weight import is_risk

#: Relocation draws a radius takes when a building's count is past all but a few of the first ones:
#: DRAWS_PER_BUILDING / BUILDING_ALPHA per building (BH's smallest q is buildings / (draws + 1), so
#: 2 / 0.05 puts it at half the level: the strongest building can pass BH, and the draws cost 1 M
#: incidents' 400 buildings 16,000 at 100 m, not 40,000), at most MAX_BUILDING_DRAWS.
DRAWS_PER_BUILDING = 2
BUILDING_ALPHA = 0.05
MAX_BUILDING_DRAWS = 40_000
#: Fewer of the first draws than this at or beyond a building's count: its radius draws more.
FEW_EXCEEDANCES = 10

DEFAULT_OPTIONS = {
    "comparison": "area",          # "area" (study-area rate) or "type" (other buildings of the same type)
    "after_school": "15:00-18:00",
    "peak_window_h": 3,
    "min_timed": 5,
    "alpha": 0.05,
    "trend_baseline": "time",      # "time" (constant rate) or "area" (the study area's own recent share)
    "trend_exclude_sources": (),   # sources covering part of the period only: their start or end is no trend
    "holidays": (),                # school holidays as "YYYY-MM-DD:YYYY-MM-DD" (inclusive); term = the rest
}
PROFILE_OPTIONS = tuple(DEFAULT_OPTIONS)
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
PRECISION_LABELS = {"snap_point": "snap-point", "postcode": "postcode-level", "street": "street-level",
                    "place": "place-level", "area": "area-level"}
TYPE_COLUMNS = ["type", "buildings", "radius_m", "area_km2_near", "n_near", "weighted_near", "n_elsewhere",
                "rate_ratio", "rr_low", "rr_high", "p_value", "note", "null"]
_QUAD_SEGS = 64  # 256-sided discs


# --------------------------------------------------------------------------- options

def profile_options(options: dict | None, where: str = "[profile]") -> dict:
    """``DEFAULT_OPTIONS`` updated by ``options``, checked; a UserError names a bad key or value."""
    out = dict(DEFAULT_OPTIONS)
    for key, value in (options or {}).items():
        if key not in DEFAULT_OPTIONS:
            raise UserError(f"{where} has an unknown key '{key}' (options: {', '.join(DEFAULT_OPTIONS)}).")
        out[key] = value
    if out["comparison"] not in ("area", "type"):
        raise UserError(f"{where} comparison = '{out['comparison']}' should be 'area' or 'type'.")
    if out["trend_baseline"] not in ("time", "area"):
        raise UserError(f"{where} trend_baseline = '{out['trend_baseline']}' should be 'time' or 'area'.")
    parse_window(out["after_school"], where)
    for text in out["holidays"] or ():
        # A reversed range is no day at all: the term/holiday profile then ran with that holiday left out.
        parts = str(text).split(":")
        if len(parts) == 2 and all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", t.strip()) for t in parts) \
                and parts[1].strip() < parts[0].strip():
            raise UserError(f"{where} holidays: '{text}' ends before it starts (write FROM:TO).")
    if not (isinstance(out["peak_window_h"], int) and 1 <= out["peak_window_h"] <= 12):
        raise UserError(f"{where} peak_window_h should be a whole number of hours from 1 to 12.")
    if not (0 < float(out["alpha"]) < 1):
        raise UserError(f"{where} alpha should lie between 0 and 1.")
    return out


def options_from_config(cfg) -> dict:
    """The profile options of a config: its ``[profile]`` table, plus any profile key written in a
    [[key_buildings]] entry instead (all entries that set a key must agree: the profile is one stage)."""
    table = cfg.raw.get("profile", {})
    if not isinstance(table, dict):
        raise UserError("[profile] should be a table.", file=str(cfg.path))
    merged = dict(table)
    for layer in cfg.key_buildings:
        for key in PROFILE_OPTIONS:
            if key in layer.options:
                if key in merged and merged[key] != layer.options[key]:
                    raise UserError(f"[[key_buildings]] '{layer.id}' sets {key} = {layer.options[key]!r}, but "
                                    f"{merged[key]!r} is set elsewhere: set it once, in [profile].",
                                    file=str(cfg.path))
                merged[key] = layer.options[key]
    try:
        return profile_options(merged)
    except UserError as exc:
        raise UserError(str(exc), file=str(cfg.path)) from None


def parse_window(text: str, where: str = "[profile]") -> tuple[int, int]:
    """"15:00-18:00" -> (900, 1080): minutes after midnight, end exclusive."""
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", str(text))
    if not m:
        raise UserError(f"{where} after_school = '{text}' should look like \"15:00-18:00\".")
    a = int(m.group(1)) * 60 + int(m.group(2))
    b = int(m.group(3)) * 60 + int(m.group(4))
    if not (0 <= a < b <= 24 * 60):
        raise UserError(f"{where} after_school = '{text}': the window should start before it ends, within a day.")
    return a, b


def holiday_days(periods, start, end, where: str = "[profile]") -> np.ndarray:
    """The school-holiday dates (datetime64[D]) within [start, end) from "from:to" strings (inclusive).

    Term dates differ between local authorities and academy trusts, so they are configuration,
    never built in; without them no term/holiday profile is made.
    """
    days = []
    for text in periods or ():
        try:
            a, b = (pd.Timestamp(t.strip()) for t in str(text).split(":"))
        except (ValueError, TypeError):
            raise UserError(f"{where} holidays: '{text}' should be YYYY-MM-DD:YYYY-MM-DD.") from None
        days.append(pd.date_range(a, b, freq="D"))
    if not days:
        return np.array([], dtype="datetime64[D]")
    allday = np.unique(np.concatenate([d.values.astype("datetime64[D]") for d in days]))
    return allday[(allday >= np.datetime64(pd.Timestamp(start).date())) &
                  (allday < np.datetime64(pd.Timestamp(end).date()))]


def radius_label(r: float) -> str:
    """Column suffix of a radius: whole metres ("250")."""
    return str(int(round(float(r))))


# --------------------------------------------------------------------------- statistics

def garwood_interval(n, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Garwood) Poisson confidence limits for observed counts ``n``."""
    n = np.asarray(n, dtype=float)
    a = (1 - level) / 2
    low = np.where(n > 0, chi2_ppf(a, 2 * n) / 2, 0.0)
    high = chi2_ppf(1 - a, 2 * n + 2) / 2
    return low, high


def poisson_upper_p(n, mu) -> np.ndarray:
    """Exact one-sided P(X >= n) for X ~ Poisson(mu)."""
    n = np.asarray(n, dtype=float)
    return np.where(n > 0, poisson_sf(n - 1, mu), 1.0)


def binom_two_sided(k: int, n: int, p: float) -> float:
    """Exact two-sided binomial p-value, twice the smaller tail (consistent with Clopper-Pearson)."""
    if n == 0:
        return float("nan")
    lower = binom_cdf(k, n, p)
    upper = binom_sf(k - 1, n, p)
    return float(min(1.0, 2 * min(lower, upper)))


# --------------------------------------------------------------------------- geometry

def _discs(x: np.ndarray, y: np.ndarray, r: float) -> np.ndarray:
    return shapely.buffer(shapely.points(x, y), r, quad_segs=_QUAD_SEGS)


def catchment_areas(x: np.ndarray, y: np.ndarray, r: float, study_area) -> np.ndarray:
    """Area (m^2) of each disc of radius ``r`` within the study area; exact pi r^2 when wholly inside."""
    discs = _discs(x, y, r)
    shapely.prepare(study_area)
    inside = shapely.contains(study_area, discs)
    full = math.pi * r * r
    out = np.full(len(x), full)
    part = ~inside
    if part.any():
        d = discs[part]
        out[part] = shapely.area(shapely.intersection(d, study_area)) * full / shapely.area(d)
    return out


def weight_by_coverage(risk: pd.DataFrame, coverage: gpd.GeoDataFrame) -> dict[bytes, float]:
    """The risk records' weight summed per coverage: WKB of a source's coverage geometry (b"" for a source
    without a ``coverage`` row: the whole study area) -> the weight of every source sharing it (partners
    often declare the same boroughs: their catchments are cut once)."""
    if "source_id" not in risk:
        return {b"": float(risk["weight"].sum())}
    geoms = dict(zip(coverage["source_id"].astype(str), coverage.geometry.values))
    codes, sids = pd.factorize(risk["source_id"])
    totals = np.bincount(codes, weights=risk["weight"].to_numpy(float), minlength=len(sids))
    out: dict[bytes, float] = {}
    for sid, total in zip(sids.astype(str), totals):
        g = geoms.get(sid)
        key = b"" if g is None else shapely.to_wkb(g)
        out[key] = out.get(key, 0.0) + float(total)
    return out


@functools.lru_cache(maxsize=64)
def _covered_part(study: bytes, cover: bytes):
    """The part of the study area (WKB) a coverage (WKB; b"": all of it) covers: asked for by every
    radius, building type and category."""
    region = shapely.from_wkb(study)
    return shapely.intersection(region, shapely.from_wkb(cover)) if cover else region


def coverage_expected(x: np.ndarray, y: np.ndarray, r: float, study_area, risk: pd.DataFrame,
                      coverage: gpd.GeoDataFrame | None) -> np.ndarray | None:
    """Expected weighted incidents within ``r`` of each point, source by source: each risk source's
    weighted rate over the part of the study area it covers (its weight over that area), times the part
    of the catchment inside it. A source without a ``coverage`` row covers the study area. None without
    coverage or ``source_id`` (the caller keeps the one study-area rate)."""
    if coverage is None or not len(coverage) or "source_id" not in risk:
        return None
    study = shapely.to_wkb(study_area)
    # The points in one order (the buildings' table is sorted by rank between the asks).
    x, y = np.asarray(x, float), np.asarray(y, float)
    order = np.lexsort((y, x))
    xy = np.column_stack([x[order], y[order]]).tobytes()
    out = np.zeros(len(x))
    for key, total in weight_by_coverage(risk, coverage).items():
        area = _covered_part(study, key).area
        if area > 0:
            out[order] += total / area * _covered_catchments(study, key, xy, float(r))
    return out


@functools.lru_cache(maxsize=64)
def _covered_catchments(study: bytes, cover: bytes, xy: bytes, r: float) -> np.ndarray:
    """``catchment_areas`` of the points ``xy`` (their bytes) within the part of the study area a coverage
    covers (``_covered_part``): the buildings' profiles and the categories around them ask for the same
    ones at every radius (cutting discs out of a coverage of many LSOAs: 0.34 s a call)."""
    pts = np.frombuffer(xy).reshape(-1, 2)
    catch = catchment_areas(pts[:, 0], pts[:, 1], r, _covered_part(study, cover))
    catch.setflags(write=False)
    return catch


# --------------------------------------------------------------------------- helpers

# What profiling reads of a risk incident: a narrow copy of those rows, not every column.
RISK_COLUMNS = ("x", "y", "weight", "evidence", "source_id", "location_precision", "location_precision_m",
                "occurred_from", "date_precision")


NEAR_CHUNK = 16      # buildings per neighbour query


def _risk(incidents: pd.DataFrame) -> pd.DataFrame:
    w = pd.to_numeric(incidents["weight"], errors="coerce").fillna(0.0)
    ok = ((w > 0) & incidents["x"].notna() & incidents["y"].notna()).to_numpy()
    cols = [c for c in RISK_COLUMNS if c in incidents]
    if ok.all() and list(incidents.columns) == cols and isinstance(incidents.index, pd.RangeIndex) \
            and incidents.index.start == 0 and incidents.index.step == 1:
        return incidents        # already the risk rows (building_types is handed them): no second copy
    return incidents.loc[ok, cols].reset_index(drop=True)


def grouped_risk(incidents: pd.DataFrame, keep: np.ndarray | None = None) -> pd.DataFrame:
    """The risk records (among the rows ``keep``, every row when None) grouped by every field the profiles
    read (place, evidence, location precision, date, date precision, source): one row per group, ``weight``
    summed and ``count`` records. Police.uk records share snap points and month starts, so at 10 M incidents
    the profiles loop over a small part of the rows; every count below is a sum of ``count`` and every figure
    equals the per-record one. A table already grouped (it has ``count``) is returned as it is."""
    if "count" in incidents:
        return incidents
    # A chunk of rows at a time, the chunks' groups grouped again: the codes of the rows of one chunk
    # are held, not of every row (1.2 GB passing through at 30 M incidents). Weights summed per chunk,
    # then across chunks: the same to round-off; one chunk, the same bits.
    parts = [_group_risk(incidents.iloc[k0:k0 + GROUP_CHUNK], keep=None if keep is None else keep[k0:k0 + GROUP_CHUNK])
             for k0 in range(0, max(len(incidents), 1), GROUP_CHUNK)]
    return parts[0] if len(parts) == 1 else _group_risk(pd.concat(parts, ignore_index=True), counted=True)


GROUP_CHUNK = 1 << 21       # rows ``grouped_risk`` groups at a time


def _group_risk(incidents: pd.DataFrame, counted: bool = False, keep: np.ndarray | None = None) -> pd.DataFrame:
    """``grouped_risk`` of one table; ``counted``: its rows are groups already (``count`` records each)."""
    w = pd.to_numeric(incidents["weight"], errors="coerce").fillna(0.0).to_numpy(float)
    ok = (w > 0) & incidents["x"].notna().to_numpy() & incidents["y"].notna().to_numpy()
    rows = np.flatnonzero(ok if keep is None else ok & keep)
    keys = [c for c in RISK_COLUMNS if c != "weight" and c in incidents]

    def key(col: str):      # the kept rows of one key column, made when ``row_groups`` comes to it
        values = incidents[col]
        if isinstance(values.dtype, pd.CategoricalDtype):
            return pd.Categorical.from_codes(values.cat.codes.to_numpy()[rows], dtype=values.dtype, validate=False)
        return values.to_numpy()[rows]

    group = row_groups(key(c) for c in keys)
    first = first_rows(group)
    n = len(first)
    first = rows[first]
    out = {c: incidents[c].iloc[first].reset_index(drop=True) for c in keys}
    out["weight"] = pd.Series(np.bincount(group, weights=w[rows], minlength=n))
    count = incidents["count"].to_numpy(np.int64)[rows] if counted else None
    out["count"] = pd.Series(np.bincount(group, weights=count, minlength=n).astype(np.int64))
    return pd.DataFrame({c: out[c] for c in [*(c for c in RISK_COLUMNS if c in out), "count"]})


def _counts_near(near: list, dist: list, cnt: np.ndarray, code: np.ndarray, n_codes: int, radii
                 ) -> tuple[dict, dict]:
    """Per radius, the records within it of each building (``near``: the building's record groups,
    ``dist``: their distances; ``cnt``: records per group) and the same per code of ``code`` (evidence
    class): {radius: (buildings,)} and {radius: (buildings, n_codes)}, int64. A few buildings' groups
    one after another at a time, counted by bincount, not a Python sum per building, radius and class
    (1 M incidents, 400 buildings: profile_buildings 2.3 s -> 1.8 s); a chunk at a time, so that the
    arrays of every building's groups together (10 M incidents: 200 MB more at the peak) are never made."""
    nb = len(near)
    by_code = {r: np.zeros((nb, n_codes), dtype=np.int64) for r in radii}
    for k0 in range(0, nb, NEAR_CHUNK):
        lens = [len(ix) for ix in near[k0:k0 + NEAR_CHUNK]]
        if not sum(lens):
            continue
        flat = np.concatenate(near[k0:k0 + NEAR_CHUNK])
        d = np.concatenate(dist[k0:k0 + NEAR_CHUNK])
        c, key = cnt[flat].astype(float), np.repeat(np.arange(len(lens)), lens) * n_codes + code[flat]
        for r in radii:
            within = d <= r
            by_code[r][k0:k0 + len(lens)] = np.bincount(key[within], weights=c[within],
                                                        minlength=len(lens) * n_codes).reshape(len(lens), n_codes)
    # Every group has one code: a building's records are its codes' records (whole numbers, exact).
    return {r: by_code[r].sum(axis=1) for r in radii}, by_code


def _time_note(risk: pd.DataFrame) -> str:
    prec = set(text_codes(risk["date_precision"])[1]) if len(risk) else set()
    if "minute" in prec:
        return ""
    if "day" in prec:
        return "dates are day-only: weekday profile only, no hours"
    return "dates are month-only: no time profile"


def time_note(incidents: pd.DataFrame) -> str:
    """The study-wide time note for the map and the methods panel ("" when times of day exist)."""
    return _time_note(_risk(incidents))


def _peak_window(hours: np.ndarray, width: int, counts: np.ndarray | None = None) -> str:
    """The ``width``-hour window (wrapping midnight) holding most records; ``counts``: records per hour value."""
    counts = np.bincount(hours, weights=counts, minlength=24)
    # Every start hour's window as a row, summed at once (a sum per hour and building: 0.2 s at 1 M).
    windows = counts[(np.arange(24)[:, None] + np.arange(width)) % 24].sum(axis=1)
    h0 = int(np.argmax(windows))
    return f"{h0}-{(h0 + width) % 24}"


def _rank_radius(radii: list[float], precision: float) -> float | None:
    """The middle radius, or the next larger one not below ``precision``; None when all are below it."""
    for r in radii[len(radii) // 2:]:
        if not (r < precision):
            return r
    return None


def _precision_note(kinds: np.ndarray, names, counts: np.ndarray, metres: float, flagged: list[float]) -> str:
    """``kinds``: the location precision (codes into ``names``) of each group of records near a
    building, ``counts`` its records."""
    notes = []
    if len(kinds):
        top = np.bincount(kinds, weights=counts, minlength=len(names))
        kind = str(names[int(np.argmax(top))])
        if kind in PRECISION_LABELS and top.max() * 2 > counts.sum():     # a strict majority: no ties
            notes.append(f"{PRECISION_LABELS[kind]} locations (~{metres:.0f} m): profile is approximate")
    if flagged:
        radii = ", ".join(f"{radius_label(r)} m" for r in flagged)
        notes.append(f"{radii} radius below the location precision (~{metres:.0f} m): not used for rank")
    return "; ".join(notes)


def _months(start: pd.Timestamp, end: pd.Timestamp) -> pd.DatetimeIndex:
    """Month starts of the study period [start, end)."""
    first = pd.Timestamp(start).to_period("M").start_time
    return pd.date_range(first, pd.Timestamp(end) - pd.Timedelta(seconds=1), freq="MS")


def _trend_split(start, end) -> tuple[pd.Timestamp, float] | None:
    """The start of the recent part (last third of the months) and its share of the period's days."""
    months = _months(start, end)
    if len(months) < 2:
        return None
    k = max(1, int(round(len(months) / 3)))
    split = max(months[len(months) - k], pd.Timestamp(start))
    share = (pd.Timestamp(end) - split) / (pd.Timestamp(end) - pd.Timestamp(start))
    return split, float(share)


# --------------------------------------------------------------------------- the stage

def comparable_places(incidents: pd.DataFrame, building_xy: np.ndarray, grid=None, analysed: np.ndarray | None = None,
                      kind: str = "random_places", n: int = 20_000, seed: int = 0) -> np.ndarray:
    """The places a key building is compared with, inside the covered area (the cells of ``grid``
    some risk source covers, ``analysed``). ``kind="random_places"`` (default): ``n`` points placed
    uniformly at random in those cells (random placement: a building is compared with anywhere
    the data could have recorded; ``incidents`` is not read); ``"snap_points"``: the distinct
    police.uk snap points of the risk records among ``incidents`` and every key building (stricter:
    snap points exist only where crime was recorded). Only the snap points' places are copied (every
    risk record's place was 0.5 GB at 30 M incidents).
    Returns an (m, 2) array of x, y."""
    if kind == "random_places" and grid is not None:
        rng = np.random.default_rng(seed)
        cells = np.nonzero(np.ones(grid.n, bool) if analysed is None else np.asarray(analysed))[0]
        cx, cy = grid.centres()
        pick = cells[rng.integers(0, len(cells), n)] if len(cells) else np.zeros(0, int)
        half = grid.cell / 2.0
        return np.column_stack([cx[pick] + rng.uniform(-half, half, len(pick)),
                                cy[pick] + rng.uniform(-half, half, len(pick))])
    snapped = is_risk(incidents) & text_in(incidents["location_precision"], ["snap_point"])
    snap = incidents.loc[snapped, ["x", "y"]].drop_duplicates()
    sites = np.vstack([snap.to_numpy(float), np.asarray(building_xy, float).reshape(-1, 2)])
    if analysed is not None and grid is not None:
        cell = grid.assign(sites[:, 0], sites[:, 1])
        sites = sites[(cell >= 0) & np.asarray(analysed)[np.maximum(cell, 0)]]
    return sites


def profile_buildings(buildings: gpd.GeoDataFrame, incidents: pd.DataFrame, study_area, regions: gpd.GeoDataFrame,
                      radii, period_start, period_end, cfg_options: dict | None = None,
                      null_sites: np.ndarray | None = None, n_sim: int = 1999, seed: int = 0,
                      null_label: str = "random places in the covered area", with_types: bool = True,
                      coverage: gpd.GeoDataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(buildings table, building-type table) for ``buildings`` (from ``load_buildings``); see the module
    docstring for both tables' columns and every method. ``incidents`` are in the common schema (EPSG:27700)
    or already grouped (``grouped_risk``);
    ``regions`` has ``region_id`` and ``geometry`` (may be empty); ``radii`` in metres (None: every radius
    of any layer); the period is [period_start, period_end). With ``null_sites`` (an (m, 2) array of
    comparable places inside the covered area, at least 20), p-values come from Monte Carlo relocation
    among them (``n_sim`` draws, ``seed``); without, from the flat Poisson rate (column ``null`` says which).
    ``with_types=False``: no building-type table (None; ``type_profile`` makes it on its own).
    ``coverage`` (``source_id``, geometry; ``hotspots.coverage``): expected counts source by source over
    the area each covers (``coverage_expected``); without, one study-area rate."""
    opts = profile_options(cfg_options)
    if radii is None:
        radii = [float(r) for rs in buildings["radius_m"] for r in rs] if len(buildings) else [100.0, 250.0, 500.0]
    radii = sorted({float(r) for r in radii})
    labels = [radius_label(r) for r in radii]
    risk = grouped_risk(incidents)
    cnt = risk["count"].to_numpy(np.int64)
    evidence = sorted(text_codes(risk["evidence"])[1]) if len(risk) else []
    A = float(study_area.area)
    W = float(risk["weight"].sum())
    N = int(cnt.sum())
    mean_w_all = W / N if N else 1.0
    global_precision = _study_precision(risk)
    note_all = _time_note(risk)

    inside = _in_area(buildings, study_area)
    b = buildings[inside].reset_index(drop=True)
    bx, by = buildings["x"].to_numpy(float)[inside], buildings["y"].to_numpy(float)[inside]
    nb = len(b)

    rx, ry = risk["x"].to_numpy(float), risk["y"].to_numpy(float)
    rw = risk["weight"].to_numpy(float)
    # Evidence and date precision as small codes, not a Python string per incident.
    rev_code, rev_names = small_codes(risk["evidence"])
    rprec = risk["location_precision_m"].to_numpy(float)
    rkind, rkind_names = small_codes(risk["location_precision"])
    rdate = pd.to_datetime(risk["occurred_from"]).reset_index(drop=True)
    rdp_code, rdp_names = small_codes(risk["date_precision"])
    rmax = max(radii)
    if N and nb:
        # Not balanced: built faster (``relocation_null``), the same neighbours, sorted.
        tree = cKDTree(np.column_stack([rx, ry]), balanced_tree=False)
        centres = np.column_stack([bx, by])
        # A few buildings at a time: the tree answers in Python lists (36 bytes per incident near a
        # building, gigabytes at 10 M incidents), each kept only until it is an int32 array.
        near = [np.asarray(ix, dtype=np.int32) for k0 in range(0, nb, NEAR_CHUNK)
                for ix in tree.query_ball_point(centres[k0:k0 + NEAR_CHUNK], rmax)]
    else:
        near = [np.zeros(0, dtype=np.int32) for _ in range(nb)]
    dist = [np.hypot(rx[ix] - x0, ry[ix] - y0) for ix, x0, y0 in zip(near, bx, by)]

    out = pd.DataFrame({"building_id": b["building_id"].to_numpy(), "name": b["name"].to_numpy(),
                        "type": b["type"].to_numpy(), "x": bx, "y": by})
    extra: dict[str, np.ndarray] = {}
    n_by, by_class = _counts_near(near, dist, cnt, rev_code, len(rev_names), radii)
    w_by, area_by = {}, {}
    for r, lab in zip(radii, labels):
        # Weights summed per building, as numpy sums them (pairwise): the same figures as before.
        w_by[r] = np.array([float(rw[ix[d <= r]].sum()) for ix, d in zip(near, dist)])
        area_by[r] = catchment_areas(bx, by, r, study_area) if nb else np.zeros(0)
        for ev in evidence:
            extra[f"n_{ev}_{lab}"] = by_class[r][:, rev_names.get_loc(ev)]
        extra[f"catchment_km2_{lab}"] = area_by[r] / 1e6

    # The null: relocation among comparable places (crime counts are overdispersed: a flat Poisson
    # rate calls most places "significant"), or the flat rate when no sites are given.
    relocate = null_sites is not None and len(null_sites) >= 20 and N > 0
    if relocate:
        sites = np.asarray(null_sites, float)
        # The places and their tree once, for the first draws and any more at a radius.
        places, place_w = collapse(np.column_stack([rx, ry]), rw)
        place_tree = cKDTree(places, balanced_tree=False)
        null_w = relocation_null(places, place_w, sites, radii, n_sim, np.random.default_rng(seed), tree=place_tree)
        null_text = f"Monte Carlo relocation among {len(sites):,} {null_label}, {n_sim:,} draws"
        nulls = {r: null_w[:, j] for j, r in enumerate(radii)}
        # BH across nb buildings cannot give q below nb / (draws + 1): 148 buildings and 1,999 draws
        # floored q at 0.074, so no building could be significant however extreme (audit finding).
        # Where a building's weighted count is past all but a few draws at a radius, that radius
        # draws more, at that radius only, up to enough for BH to resolve (DRAWS_PER_BUILDING / alpha
        # per building, at most MAX_BUILDING_DRAWS), the smallest radii first, all of them together
        # within the catchment area the first draws cost (n_sim catchments of the largest radius):
        # at most twice the first draws' time.
        goal = min(MAX_BUILDING_DRAWS, math.ceil(DRAWS_PER_BUILDING * nb / BUILDING_ALPHA)) - 1
        allowance = float(n_sim) * rmax ** 2
        extended = []
        for j, r in enumerate(radii):
            srt = np.sort(nulls[r])
            past = len(srt) - np.searchsorted(srt, w_by[r] - 1e-9, side="left")
            total = min(goal, n_sim + int(allowance / r ** 2))
            if nb > 1 and total > n_sim and (past < FEW_EXCEEDANCES).any():
                allowance -= (total - n_sim) * r ** 2
                more = relocation_null(places, place_w, sites, [r], total - n_sim, np.random.default_rng([seed, j + 1]),
                                       tree=place_tree)
                nulls[r] = np.concatenate([nulls[r], more[:, 0]])
                extended.append(f"{total:,} at {radius_label(r)} m")
        if extended:
            null_text += (f" ({', '.join(extended)}, where a building's count was past all but "
                          f"{FEW_EXCEEDANCES - 1} draws)")
        null_text += ("; the smallest q BH can give across the buildings: " +
                      ", ".join(f"{nb / (len(nulls[r]) + 1):.2g} at {radius_label(r)} m" for r in radii))
    else:
        null_text = "flat study-area Poisson rate (no comparable places given)"

    # Expected counts: the study-area rate, or the pooled rate around the other buildings of the type.
    comparison_note = np.full(nb, "", dtype=object)
    for r, lab in zip(radii, labels):
        rate = np.full(nb, W / A if A > 0 else np.nan)
        typed = np.zeros(nb, dtype=bool)
        if opts["comparison"] == "type":
            types = b["type"].to_numpy()
            for t in pd.unique(types):
                idx = np.nonzero(types == t)[0]
                if len(idx) < 2:
                    comparison_note[idx] = "only building of its type: study-area rate used"
                    continue
                tw, ta = w_by[r][idx].sum(), area_by[r][idx].sum()
                rate[idx] = (tw - w_by[r][idx]) / (ta - area_by[r][idx])
                typed[idx] = True
        expected = rate * area_by[r]
        by_source = coverage_expected(bx, by, r, study_area, risk, coverage) if nb and N else None
        if by_source is not None:
            expected = np.where(typed, expected, by_source)
        n, w = n_by[r], w_by[r]
        mean_w = np.where(n > 0, w / np.maximum(n, 1), mean_w_all)
        with np.errstate(divide="ignore", invalid="ignore"):
            mu = expected / mean_w
            low, high = garwood_interval(n)
            ok = mu > 0
            rr = np.where(ok, n / mu, np.nan)
            rr_low = np.where(ok, low / mu, np.nan)
            rr_high = np.where(ok, high / mu, np.nan)
            p = np.where(ok, poisson_upper_p(n, np.where(ok, mu, 1.0)), np.nan)
        if relocate:
            p = upper_p(w, nulls[r]) if nb else np.zeros(0)
        out[f"n_{lab}"] = n
        out[f"weighted_{lab}"] = w
        out[f"expected_{lab}"] = expected
        out[f"rr_{lab}"] = rr
        out[f"rr_low_{lab}"] = rr_low
        out[f"rr_high_{lab}"] = rr_high
        out[f"q_{lab}"] = bh_qvalues(p)
        extra[f"p_{lab}"] = p

    # Location precision, rank radius and rank.
    largest = [d <= rmax for d in dist]
    # Every building's median at once (a repeat of each building's records: 1 M incidents, 400 buildings,
    # tens of millions of values); a building with no record near uses the study's.
    ixs = [ix[m] for ix, m in zip(near, largest)]
    of = np.repeat(np.arange(nb), [len(ix) for ix in ixs])
    ix_all = np.concatenate([np.zeros(0, np.int64), *ixs])
    prec_all = rprec[ix_all]
    ok = ~np.isnan(prec_all)
    precision = group_medians(of[ok], prec_all[ok], cnt[ix_all][ok], nb)
    precision[np.array([not m.any() for m in largest], dtype=bool)] = global_precision
    precision = np.where(np.isfinite(precision), precision, 0.0)
    notes, rank_r = [], []
    for k in range(nb):
        flagged = [r for r in radii if r < precision[k]]
        sel = near[k][largest[k]] if largest[k].any() else slice(None)
        note = _precision_note(rkind[sel], rkind_names, cnt[sel], precision[k], flagged)
        if comparison_note[k]:
            note = "; ".join(v for v in (note, comparison_note[k]) if v)
        notes.append(note)
        rank_r.append(_rank_radius(radii, precision[k]))
    key_low = np.array([out.at[k, f"rr_low_{radius_label(r)}"] if r is not None else np.nan
                        for k, r in enumerate(rank_r)], dtype=float)
    key_rr = np.array([out.at[k, f"rr_{radius_label(r)}"] if r is not None else np.nan
                       for k, r in enumerate(rank_r)], dtype=float)
    key_n = np.array([n_by[r][k] if r is not None else -1 for k, r in enumerate(rank_r)], dtype=float)
    rank = pd.array([pd.NA] * nb, dtype="Int64")
    order = [k for k in np.lexsort((-key_n, -np.nan_to_num(key_rr, nan=-1), -np.nan_to_num(key_low, nan=-1)))
             if np.isfinite(key_low[k])]
    for pos, k in enumerate(order, start=1):
        rank[k] = pos
    out["rank"] = rank

    # Hotspot region.
    region = np.full(nb, "", dtype=object)
    if nb and regions is not None and len(regions):
        tree_r = shapely.STRtree(regions.geometry.values)
        bi, ri = tree_r.query(shapely.points(bx, by), predicate="covered_by")
        ids = regions["region_id"].astype(str).to_numpy()
        for k in range(nb):
            region[k] = ";".join(sorted(ids[ri[bi == k]], key=lambda s: (len(s), s)))
    out["region_id"] = region

    # Trend and time profiles at the rank radius.
    split = _trend_split(period_start, period_end)
    start, end = pd.Timestamp(period_start), pd.Timestamp(period_end)
    in_period = ((rdate >= start) & (rdate < end)).to_numpy()
    if opts["trend_exclude_sources"] and "source_id" in risk:
        in_period = in_period & ~risk["source_id"].isin(list(opts["trend_exclude_sources"])).to_numpy()
    recent_all = ((rdate >= split[0]) & (rdate < end)).to_numpy() if split else np.zeros(len(risk), bool)
    if split and opts["trend_baseline"] == "area":
        p0_area = cnt[in_period & recent_all].sum() / max(cnt[in_period].sum(), 1)
    a0, a1 = parse_window(opts["after_school"])
    known = rdate.notna().to_numpy()
    # Small integers: one or two bytes a group of records, not eight.
    minutes = (rdate.dt.hour * 60 + rdate.dt.minute).fillna(-1).astype(np.int16).to_numpy()
    weekday = rdate.dt.day_of_week.fillna(-1).astype(np.int8).to_numpy()
    hours = rdate.dt.hour.fillna(-1).astype(np.int8).to_numpy()
    timed = np.isin(rdp_code, [i for i, v in enumerate(rdp_names) if v == "minute"]) & known
    dated = np.isin(rdp_code, [i for i, v in enumerate(rdp_names) if v in ("minute", "day")]) & known
    trend, trend_p, peak, after, weekly, tnote = [], [], [], [], [], []
    hol_days = holiday_days(opts["holidays"], start, end)
    total_days = int((end - start) / pd.Timedelta(days=1))
    hol_share = len(hol_days) / total_days if total_days > 0 else 0.0
    on_holiday = np.isin(rdate.values.astype("datetime64[D]"), hol_days) if len(hol_days) else np.zeros(len(risk), bool)
    hol_ratio, hol_p = [], []
    for k in range(nb):
        r = rank_r[k] if rank_r[k] is not None else radii[len(radii) // 2]
        ix = near[k][dist[k] <= r]
        sel = ix[in_period[ix]]
        if split is None or not len(sel):
            trend.append("")
            trend_p.append(np.nan)
        else:
            n2 = int(cnt[sel][recent_all[sel]].sum())
            n_tot = int(cnt[sel].sum())
            p0 = p0_area if opts["trend_baseline"] == "area" else split[1]
            pv = binom_two_sided(n2, n_tot, p0)
            trend_p.append(pv)
            if pv < opts["alpha"]:
                trend.append("rising" if n2 > n_tot * p0 else "falling")
            else:
                trend.append("stable")
        t_ix = ix[timed[ix]]
        n_timed = int(cnt[t_ix].sum())
        if note_all:
            peak.append("")
            after.append(np.nan)
            tnote.append(note_all)
        else:
            if n_timed >= opts["min_timed"]:
                peak.append(_peak_window(hours[t_ix], opts["peak_window_h"], cnt[t_ix]))
                tnote.append("")
            else:
                peak.append("")
                tnote.append(f"too few timed incidents ({n_timed}) for an hour profile")
            if n_timed:
                win = (weekday[t_ix] < 5) & (minutes[t_ix] >= a0) & (minutes[t_ix] < a1)
                after.append(float(cnt[t_ix][win].sum() / n_timed))
            else:
                after.append(np.nan)
        d_ix = ix[dated[ix]]
        n_dated = int(cnt[d_ix].sum())
        if 0 < hol_share < 1 and n_dated >= opts["min_timed"]:
            # Share of the building's dated incidents that fall in school holidays, against the share
            # of days that are holidays: 1 = no difference; exact binomial test.
            n_hol = int(cnt[d_ix][on_holiday[d_ix]].sum())
            hol_ratio.append((n_hol / n_dated) / hol_share)
            hol_p.append(binom_two_sided(n_hol, n_dated, hol_share))
        else:
            hol_ratio.append(np.nan)
            hol_p.append(np.nan)
        if n_dated:
            counts = np.bincount(weekday[d_ix], weights=cnt[d_ix], minlength=7).astype(np.int64)
            weekly.append(", ".join(f"{d} {c}" for d, c in zip(DAYS, counts)))
        else:
            weekly.append("")
    out["trend"] = trend
    out["peak_hours"] = peak
    out["layer"] = b["layer"].to_numpy() if "layer" in b else ""
    out["subtype"] = b["subtype"].to_numpy() if "subtype" in b else ""
    for key in sorted(extra, key=lambda c: (c.startswith("catchment"), c.startswith("p_"), c)):
        if key.startswith("n_"):
            out[key] = extra[key]
    for lab in labels:
        out[f"p_{lab}"] = extra[f"p_{lab}"]
    for lab in labels:
        out[f"catchment_km2_{lab}"] = extra[f"catchment_km2_{lab}"]
    out["rank_radius_m"] = [r if r is not None else np.nan for r in rank_r]
    out["precision_note"] = notes
    out["trend_p"] = trend_p
    out["after_school_share"] = after
    out["weekday_profile"] = weekly
    out["holiday_ratio"] = hol_ratio
    out["holiday_p"] = hol_p
    out["time_note"] = tnote
    out["null"] = null_text
    out = out.sort_values(["rank", "building_id"], na_position="last", kind="stable").reset_index(drop=True)
    out.attrs["outside_study_area"] = int((~inside).sum())
    out.attrs["time_note"] = note_all
    out.attrs["radii"] = radii

    return out, (type_profile(buildings, risk, study_area, null_sites, n_sim, seed) if with_types else None)


def type_profile(buildings: gpd.GeoDataFrame, incidents: pd.DataFrame, study_area,
                 null_sites: np.ndarray | None = None, n_sim: int = 1999, seed: int = 0,
                 coverage: gpd.GeoDataFrame | None = None) -> pd.DataFrame:
    """``building_types.csv`` as ``profile_buildings`` makes it, with the same arguments: the buildings
    inside the study area, the study's median location precision, a quarter of the draws (at least 99)
    and the next seed. The pipeline runs it on the second core beside ``profile_buildings``."""
    risk = grouped_risk(incidents)
    relocate = null_sites is not None and len(null_sites) >= 20 and risk["count"].sum() > 0
    return building_types(buildings[_in_area(buildings, study_area)].reset_index(drop=True), risk, study_area,
                          _study_precision(risk), null_sites=null_sites if relocate else None,
                          n_sim=max(n_sim // 4, 99), seed=seed + 1, coverage=coverage)


def _expected_near(near, scale: float, study_area, risk: pd.DataFrame, coverage: gpd.GeoDataFrame
                   ) -> tuple[float, float]:
    """(expected weight near, elsewhere): each risk source's weight spread evenly over the part of the
    study area it covers (a source without a coverage row covers the study area); ``near`` is the union of
    the catchments in the study area, its area times ``scale`` (the polygon discs' correction)."""
    study = shapely.to_wkb(study_area)
    e_near = e_else = 0.0
    for key, total in weight_by_coverage(risk, coverage).items():
        region = _covered_part(study, key)
        if region.area <= 0:
            continue
        share = min(float(shapely.intersection(near, region).area) * scale / region.area, 1.0)
        e_near += total * share
        e_else += total * (1.0 - share)
    return e_near, e_else


def _in_area(buildings: pd.DataFrame, study_area) -> np.ndarray:
    """True for the buildings inside the study area (on its edge included)."""
    if not len(buildings):
        return np.zeros(0, bool)
    shapely.prepare(study_area)
    return shapely.covers(study_area, shapely.points(buildings["x"].to_numpy(float), buildings["y"].to_numpy(float)))


def _study_precision(risk: pd.DataFrame) -> float:
    """The median location precision of the (grouped) risk records, 0 when unknown."""
    prec = risk["location_precision_m"].to_numpy(float)
    ok = ~np.isnan(prec)
    value = group_medians(np.zeros(int(ok.sum()), np.int64), prec[ok], risk["count"].to_numpy(np.int64)[ok], 1)[0]
    return float(value) if np.isfinite(value) else 0.0


def building_types(buildings: gpd.GeoDataFrame, incidents: pd.DataFrame, study_area,
                   precision_m: float | None = None, level: float = 0.95, null_sites: np.ndarray | None = None,
                   n_sim: int = 999, seed: int = 0, coverage: gpd.GeoDataFrame | None = None) -> pd.DataFrame:
    """``building_types.csv``: per type, incidents within its middle radius of any building of the type
    against elsewhere in the study area (see the module docstring). ``buildings`` must lie in the study area.
    With ``coverage`` (``source_id``, geometry) each source's weight is expected only over the area it
    covers (``_expected_near``), so near and elsewhere are compared for what each source could record.
    With ``null_sites``, ``p_value`` is a two-sided Monte Carlo p: as many sites as the type has buildings,
    drawn among the comparable places, ``n_sim`` times; without, the exact binomial test (``null`` says)."""
    risk = grouped_risk(incidents)
    cnt = risk["count"].to_numpy(np.int64)
    if precision_m is None:
        precision_m = _study_precision(risk)
    A = float(study_area.area)
    N = int(cnt.sum())
    rx, ry, rw = risk["x"].to_numpy(float), risk["y"].to_numpy(float), risk["weight"].to_numpy(float)
    if N:
        # Near or not is a property of the place: the distinct places' tree asked around each type's
        # buildings (not every place asked for its nearest building: 2.3 s for five types at 10 M
        # incidents, 1.8 M places). The places, their weights and tree serve every type's relocation null.
        code, px, py = place_codes(rx, ry)
        pxy, pw, tree, leaves = place_tree(np.column_stack([px, py]),
                                           np.bincount(code, weights=rw, minlength=len(px)))
        # Each record's place in the tree's order.
        position = np.empty(len(px), np.int64)
        position[leaves] = np.arange(len(px))
        code = position[code]
    rows = []
    a = (1 - level) / 2
    for t, grp in buildings.groupby("type", sort=True):
        radii = sorted({float(r) for r in grp["radius_m"].iloc[0]})
        r = _rank_radius(radii, precision_m)
        note = ""
        if r is None:
            r = radii[-1]
            note = f"every radius is below the location precision (~{precision_m:.0f} m): approximate"
        elif r != radii[len(radii) // 2]:
            note = f"middle radius below the location precision (~{precision_m:.0f} m): {radius_label(r)} m used"
        gx, gy = grp["x"].to_numpy(float), grp["y"].to_numpy(float)
        discs = _discs(gx, gy, r)
        union = shapely.intersection(shapely.union_all(discs), study_area)
        scale = math.pi * r * r / float(shapely.area(discs[0]))
        a_near = min(float(union.area) * scale, A)
        a_else = A - a_near
        if N:
            near = np.zeros(len(pxy), bool)
            near[ball_neighbours(tree, np.column_stack([gx, gy]), r)[0]] = True
            is_near = near[code]
        else:
            is_near = np.zeros(0, bool)
        n_near = int(cnt[is_near].sum())
        w_near = float(rw[is_near].sum())
        n_else = N - n_near
        w_else = float(rw[~is_near].sum())
        rec = {"type": t, "buildings": len(grp), "radius_m": r, "area_km2_near": a_near / 1e6, "n_near": n_near,
               "weighted_near": w_near, "n_elsewhere": n_else, "rate_ratio": np.nan, "rr_low": np.nan,
               "rr_high": np.nan, "p_value": np.nan, "note": note}
        # The exposure near and elsewhere: their areas, or with coverage the weight each source would put
        # there spread evenly over the part of the study area it covers.
        e_near, e_else = (_expected_near(union, scale, study_area, risk, coverage) if N and coverage is not None
                          else (a_near, a_else))
        if N and a_near > 0 and a_else > 0 and e_near > 0 and e_else > 0:
            mean_near = w_near / n_near if n_near else rw.sum() / N
            mean_else = w_else / n_else if n_else else rw.sum() / N
            scale_w = mean_near / mean_else
            odds = e_else / e_near
            lo = beta_ppf(a, n_near, N - n_near + 1) if n_near > 0 else 0.0
            hi = beta_ppf(1 - a, n_near + 1, N - n_near) if n_near < N else 1.0
            with np.errstate(divide="ignore"):
                rec["rate_ratio"] = (w_near / e_near) / (w_else / e_else) if w_else > 0 else np.inf
                rec["rr_low"] = lo / (1 - lo) * odds * scale_w
                rec["rr_high"] = hi / (1 - hi) * odds * scale_w if hi < 1 else np.inf
            rho = 1.0 / scale_w  # H0: weighted rate ratio 1, i.e. count rate ratio = mean_else / mean_near
            p0 = rho * e_near / (rho * e_near + e_else)
            rec["p_value"] = binom_two_sided(n_near, N, p0)
            if null_sites is not None and len(null_sites) >= 20:
                # The places found above, with their weights: ``collapse`` of the records, not computed again.
                null = union_relocation_null(pxy, pw, np.asarray(null_sites, float), len(grp), r,
                                             n_sim, np.random.default_rng(seed + len(rows)), tree=tree)
                rec["p_value"] = float(two_sided_p(np.array([w_near]), null)[0])
        rec["null"] = (f"Monte Carlo relocation of {len(grp)} sites among {len(null_sites):,} comparable places, "
                       f"{n_sim:,} draws" if null_sites is not None and len(null_sites) >= 20
                       else "exact binomial against the study-area rate")
        rows.append(rec)
    return pd.DataFrame(rows, columns=TYPE_COLUMNS)


def category_counts(table: pd.DataFrame, incidents: pd.DataFrame, categories, radii, study_area,
                    coverage: gpd.GeoDataFrame | None = None, sites: np.ndarray | None = None,
                    n_sim: int = 1999, seed: int = 0) -> pd.DataFrame:
    """``table`` (buildings, with ``x``, ``y``) with, for each category that speaks to a building's risk on
    its own (exploitation concerns, missing episodes; ``-`` written ``_``) and radius R:
    ``n_<cat>_<R>`` (records within R), ``expected_<cat>_<R>`` (each recording source's rate of the
    category over the part of the study area it covers times the part of the catchment inside it, as
    ``coverage_expected``: no expectation where no source of them has data), ``rr_<cat>_<R>`` and
    ``q_<cat>_<R>`` (Benjamini-Hochberg across the buildings of each ``type`` with an expectation, of the
    upper p of the count: against Monte Carlo relocation among the ``sites`` inside those sources' coverage, ``n_sim``
    draws, ``upper_p``, as the buildings' own profiles (such records cluster: a flat Poisson rate called
    any place with a few of them significant); without ``sites``, the exact Poisson upper p)."""
    out = table.copy()
    if not len(out):
        return out
    bx, by = out["x"].to_numpy(float), out["y"].to_numpy(float)
    pts = np.column_stack([bx, by])
    radii = [float(r) for r in radii]
    # BH within each building type: the question is asked of a type's buildings (which of the children's
    # homes stand out), and one cluster of such records beside one of every key building in the area
    # is no evidence about that building.
    types = out["type"].astype(str).to_numpy() if "type" in out else np.zeros(len(out), dtype=str)
    families = [np.flatnonzero(types == t) for t in pd.unique(types)]
    for k, cat in enumerate(categories):
        sub = incidents.loc[text_in(incidents["category"], [cat]),
                            [c for c in ("x", "y", "source_id") if c in incidents]].reset_index(drop=True)
        xy = np.column_stack([sub["x"].to_numpy(float), sub["y"].to_numpy(float)])
        tree = cKDTree(xy) if len(sub) else None
        records = sub.assign(weight=1.0)
        region = _covered_region(study_area, coverage, records)
        null = None
        if sites is not None and len(sub):
            inside = np.asarray(sites, float)
            inside = inside[shapely.contains_xy(region, inside[:, 0], inside[:, 1])]
            if len(inside) >= 20:
                null = relocation_null(xy, np.ones(len(xy)), inside, radii, n_sim, np.random.default_rng([seed, 7, k]))
        for j, r in enumerate(radii):
            lab = f"{cat.replace('-', '_')}_{radius_label(r)}"
            n = np.array([len(ix) for ix in tree.query_ball_point(pts, r)]) if tree is not None \
                else np.zeros(len(out), dtype=int)
            expected = coverage_expected(bx, by, r, study_area, records, coverage)
            if expected is None:
                expected = len(sub) * catchment_areas(bx, by, r, study_area) / study_area.area \
                    if study_area.area > 0 else np.full(len(out), np.nan)
            ok = expected > 0
            with np.errstate(divide="ignore", invalid="ignore"):
                p = (np.where(ok, upper_p(n, null[:, j]), np.nan) if null is not None else
                     np.where(ok, poisson_upper_p(n, np.where(ok, expected, 1.0)), np.nan))
                out[f"n_{lab}"] = n
                out[f"expected_{lab}"] = expected
                out[f"rr_{lab}"] = np.where(ok, n / np.where(ok, expected, 1.0), np.nan)
                q = np.full(len(out), np.nan)
                for rows in families:
                    q[rows] = bh_qvalues(p[rows])
                out[f"q_{lab}"] = q
    return out


def _covered_region(study_area, coverage: gpd.GeoDataFrame | None, records: pd.DataFrame):
    """The part of the study area some source of ``records`` covers (a source without a ``coverage``
    row covers all of it)."""
    if coverage is None or not len(coverage) or "source_id" not in records:
        return study_area
    keys = weight_by_coverage(records, coverage)
    if not keys or b"" in keys:
        return study_area
    study = shapely.to_wkb(study_area)
    return shapely.union_all([_covered_part(study, k) for k in keys])
