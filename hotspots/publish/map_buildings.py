"""Key buildings on the partnership map: one layer per building type, markers coloured by risk band.

``buildings_layers(table, time_note)`` takes the buildings table of
``hotspots.profile.profile_buildings`` and returns one ``folium.FeatureGroup``
per building type. Each building is a Leaflet circle marker (no ``folium.Icon``,
which would need Bootstrap and Font Awesome), made in the browser from JSON
(``map_controls.BuildingMarkers``), with a tooltip (its name) and a popup
profile (``profile_text``): counts, weighted counts, expected counts and relative risk with
its 95 % interval per radius, the q-value, rank, hotspot region, trend, peak
hours (or why there are none) and the location-precision note. A sensitive site shown only by its
cell (``cell_id`` set by ``hotspots.sensitive.partner_buildings``) is drawn as that cell's square,
named "A sensitive site in this cell", with no label.
``buildings_legend_html()`` is the legend of the risk bands.

Risk band, at the building's rank radius (``rank_radius_m``; the middle
radius when the building is unranked):
- high: rr lower bound > 1 and q <= 0.05;
- elevated: rr > 1;
- not elevated: otherwise;
- no profile: no relative risk (no incidents in the study area).

Every string goes through ``hotspots.publish.escape``: the profiles are text carried as
JSON (``js_json``) that the browser sets with ``textContent``; layer names are escaped.
"""
from __future__ import annotations

import folium
import numpy as np
import pandas as pd

from folium.vector_layers import path_options

from hotspots.crs import BNG, WGS84, transformer
from hotspots.publish.escape import esc, short
from hotspots.publish.map_controls import BuildingMarkers, ZoomLabels

BANDS = {
    "high": ("#b2182b", "High: relative risk above 1 with confidence (interval above 1, q <= 0.05)"),
    "elevated": ("#f4a582", "Elevated: more incidents than expected, not significant"),
    "not elevated": ("#4393c3", "Not elevated: as expected or fewer"),
    "no profile": ("#999999", "No profile"),
}
Q_LEVEL = 0.05


def _radii(table: pd.DataFrame) -> list[str]:
    """Radius labels present in the table, in increasing order ("100", "250", ...)."""
    labs = [c[len("rr_low_"):] for c in table.columns if c.startswith("rr_low_")]
    return sorted(labs, key=float)


def _rank_label(row: pd.Series, labs: list[str]) -> str:
    r = row.get("rank_radius_m")
    if r is not None and pd.notna(r):
        return str(int(round(float(r))))
    return labs[len(labs) // 2]


def risk_band(row: pd.Series, labs: list[str]) -> str:
    """The building's risk band (see the module docstring)."""
    lab = _rank_label(row, labs)
    rr, low, q = row.get(f"rr_{lab}"), row.get(f"rr_low_{lab}"), row.get(f"q_{lab}")
    if rr is None or pd.isna(rr):
        return "no profile"
    if pd.notna(low) and low > 1 and pd.notna(q) and q <= Q_LEVEL:
        return "high"
    return "elevated" if rr > 1 else "not elevated"


def _num(v, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)) or pd.isna(v):
        return "–"
    return f"{v:.{digits}f}"


def _q(v) -> str:
    if v is None or pd.isna(v):
        return "–"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def _text(value, default: str = "") -> str:
    """A table value as text: ``default`` when missing (None, NaN or empty)."""
    missing = value is None or (pd.api.types.is_scalar(value) and pd.isna(value))
    return default if missing or str(value) == "" else str(value)


def profile_text(row: pd.Series, labs: list[str], time_note: str) -> dict:
    """The popup profile of one building as text (the browser lays it out, ``BuildingMarkers``):
    ``title``, ``kind``, ``risk`` (its band), ``rank``, ``rows`` (a row of the radius table per radius:
    radius, n, weighted, expected, RR with its 95 % interval, q), ``lines`` (label and value) and ``note``
    (how precise the locations are)."""
    rows = [[f"{lab} m", f"{int(row[f'n_{lab}'])}", _num(row[f"weighted_{lab}"]), _num(row[f"expected_{lab}"]),
             f"{_num(row[f'rr_{lab}'], 2)} ({_num(row[f'rr_low_{lab}'], 2)}–{_num(row[f'rr_high_{lab}'], 2)})",
             _q(row[f"q_{lab}"])] for lab in labs]
    rank = row.get("rank")
    rank_txt = f"{int(rank)}" if rank is not None and pd.notna(rank) else "not ranked"
    tp = row.get("trend_p")
    trend = _text(row.get("trend"), "–") + (f" (p = {tp:.3f})" if tp is not None and pd.notna(tp) else "")
    peak = _text(row.get("peak_hours"))
    note = _text(row.get("time_note"), time_note)
    if peak:
        hours = f"{peak} h"
        share = row.get("after_school_share")
        if share is not None and pd.notna(share):
            hours += f"; after school {share:.0%}"
    else:
        hours = note or "no time profile"
    lines = [["Hotspot region", _text(row.get("region_id"), "none")], ["Trend", trend], ["Peak hours", hours]]
    weekly = _text(row.get("weekday_profile"))
    if weekly:
        lines.append(["Weekdays", weekly])
    hol, hol_p = row.get("holiday_ratio"), row.get("holiday_p")
    if hol is not None and pd.notna(hol) and hol_p is not None and pd.notna(hol_p):
        lines.append(["School holidays", f"{hol:.2f} x the term-time rate (p = {hol_p:.3f})"])
    subtype = _text(row.get("subtype"))
    return {"title": _text(row["name"]), "kind": _text(row["type"]) + (f" · {subtype}" if subtype else ""),
            "risk": risk_band(row, labs), "rank": f"rank {rank_txt} (at {_rank_label(row, labs)} m)",
            "rows": rows, "lines": lines, "note": _text(row.get("precision_note"))}


def buildings_layers(buildings_table: pd.DataFrame, time_note: str = "", map_name: str | None = None
                     ) -> list[folium.FeatureGroup]:
    """One FeatureGroup per building type, named "Key buildings: <type>" (escaped); with ``map_name``
    (the Folium map's JavaScript name) each building's name is also a label from zoom 16 on."""
    if buildings_table is None or not len(buildings_table):
        return []
    labs = _radii(buildings_table)
    to_wgs = transformer(BNG, WGS84)
    lon, lat = to_wgs.transform(buildings_table["x"].to_numpy(float), buildings_table["y"].to_numpy(float))
    # Leaflet path options per band, named once: the same for every building of a band.
    styles = {}
    for band, (colour, _) in BANDS.items():
        styles[band] = path_options(radius=6, color="#222222", weight=1, fill=True, fill_color=colour,
                                    fill_opacity=0.9, class_name=f"hs-building-{band.replace(' ', '-')}")
        styles["sensitive " + band] = path_options(line=True, color="#222222", weight=2, dash_array="4 3", fill=True,
                                                   fill_color=colour, fill_opacity=0.45,
                                                   class_name="hs-sensitive-cell")
    groups = []
    types = buildings_table["type"].astype(str)
    rows = buildings_table.to_dict("records")     # a row as a dict, not a Series per building: 0.1 s at 400
    for t in sorted(types.unique()):
        group = folium.FeatureGroup(name=esc(short(f"Buildings · Key buildings: {t}")), show=True)
        labels, markers = [], []
        for k in np.nonzero((types == t).to_numpy())[0]:
            row = rows[k]
            profile = profile_text(row, labs, time_note)
            where = [round(float(lat[k]), 6), round(float(lon[k]), 6)]
            size = row.get("cell_size_m")
            if row.get("cell_id") and size is not None and pd.notna(size):
                # A sensitive site shown only by its cell (hotspots.sensitive): the cell's square, no label.
                h = float(size) / 2
                lo_lon, lo_lat = to_wgs.transform(float(row["x"]) - h, float(row["y"]) - h)
                hi_lon, hi_lat = to_wgs.transform(float(row["x"]) + h, float(row["y"]) + h)
                markers.append({"profile": profile, "bounds": [[lo_lat, lo_lon], [hi_lat, hi_lon]],
                                "style": "sensitive " + profile["risk"]})
                continue
            markers.append({"profile": profile, "at": where, "style": profile["risk"]})
            labels.append([where[0] - 0.00012, where[1], short(row["name"], 60), LABEL_ZOOM])
        group.add_child(BuildingMarkers(markers, styles))
        if map_name:
            group.add_child(ZoomLabels(map_name, labels, "hs-building-label"))
        groups.append(group)
    return groups


LABEL_ZOOM = 16   # building and street names appear from this zoom on (about 1:8,000)


def buildings_legend_html(sensitive: bool = False) -> str:
    """The legend of the building risk bands (a block of the map's legend panel); with ``sensitive`` (some
    site is shown only by its cell), what the dashed squares are (a user audit: nothing said so)."""
    rows = "".join(f'<div><span class="hs-swatch" style="background:{c};border-radius:50%"></span>{esc(label)}</div>'
                   for c, label in BANDS.values())
    if sensitive:
        rows += ('<div><span class="hs-swatch" style="border:2px dashed #222222"></span>A protected site (a '
                 'children\'s home, ...) shown by its grid cell only, coloured by its band</div>')
    return f'<b>Key buildings (relative risk at the rank radius)</b>{rows}'
