"""The partnership's HTML map: Folium, self-contained, one file per audience tier.

Input: a pipeline ``Result``. Output: an HTML string that opens with no
network (assets inlined by ``offline.make_self_contained``). Layers:
boundaries with their names, Gi* cells by confidence, hotspot regions
(cross-boundary ones highlighted), a legend and a methods panel. Only
significant cells are drawn, so the file stays small at any data size.

Every string that comes from an input (area names, source ids, categories,
config text) goes through ``esc`` before it reaches Folium: Folium puts
popups, tooltips and layer names into the page as raw HTML and JavaScript.
"""
from __future__ import annotations

import json
from datetime import datetime

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import MacroElement
from jinja2 import Template

from hotspots.detect.spacetime import month_index
from hotspots.publish.map_buildings import buildings_layers, buildings_legend_html
from hotspots.publish.escape import esc
from hotspots.publish.offline import make_self_contained
from hotspots.tiers import RULES_TEXT, public_count, public_counts
from hotspots.weight import risk

WGS84 = "EPSG:4326"
GI_COLOURS = {3: "#b2182b", 2: "#ef8a62", 1: "#fddbc7", -1: "#d1e5f0", -2: "#67a9cf", -3: "#2166ac"}
GI_LABELS = {3: "Hot spot, 99 % confidence", 2: "Hot spot, 95 %", 1: "Hot spot, 90 %",
             -1: "Cold spot, 90 %", -2: "Cold spot, 95 %", -3: "Cold spot, 99 %"}
CROSS_COLOUR = "#7b3294"


def _web(gdf: gpd.GeoDataFrame, columns: list[str]) -> gpd.GeoDataFrame:
    """The columns a layer shows, escaped, in WGS84 with coordinates rounded to ~0.1 m."""
    out = gdf[columns + [gdf.geometry.name]].to_crs(WGS84)
    for c in columns:
        if out[c].dtype.kind in "OSUT" or str(out[c].dtype) in ("str", "string"):
            out[c] = out[c].map(esc)
    out = out.set_geometry(shapely.set_precision(out.geometry.values, 1e-6))
    return out


def _fmt(df: pd.DataFrame, col: str, digits: int) -> pd.Series:
    return df[col].map(lambda v: "" if pd.isna(v) else f"{v:.{digits}f}")


def _cells_layer(cells: gpd.GeoDataFrame, public: bool) -> folium.FeatureGroup:
    group = folium.FeatureGroup(name="Gi* hot and cold spots (cells)", show=True)
    sig = cells[cells["gi_class"].notna() & (cells["gi_class"] != 0)].copy()
    if not len(sig):
        return group
    sig["confidence"] = sig["gi_class"].map(GI_LABELS)
    sig["fill"] = sig["gi_class"].map(GI_COLOURS)
    if public:
        sig["incidents"] = public_counts(sig["n"])
        fields = ["cell_id", "confidence", "incidents", "areas", "region_id"]
        aliases = ["Cell", "Gi*", "Incidents", "Areas", "Region"]
    else:
        sig["incidents"] = sig["n"].map(lambda v: f"{int(v):,}")
        sig["weighted_txt"] = _fmt(sig, "weighted", 1)
        sig["z"] = _fmt(sig, "gi_z", 2)
        sig["q"] = sig["gi_q"].map(lambda v: f"{v:.2g}")
        sig["per_source"] = _per_source(sig)
        sig["support_txt"] = sig["support"].fillna("") if "support" in sig else ""
        fields = ["cell_id", "confidence", "incidents", "weighted_txt", "z", "q", "per_source", "support_txt",
                  "areas", "region_id"]
        aliases = ["Cell", "Gi*", "Incidents", "Weighted", "z", "q (FDR)", "Each source (z, p)",
                   "Made hot by", "Areas", "Region"]
    data = _web(sig, ["fill", *fields])
    folium.GeoJson(
        data, name="gi_cells",
        style_function=lambda f: {"fillColor": f["properties"]["fill"], "color": "#555555",
                                  "weight": 0.3, "fillOpacity": 0.75, "className": "hs-cell"},
        popup=folium.GeoJsonPopup(fields=fields, aliases=aliases),
    ).add_to(group)
    return group


def _per_source(cells: pd.DataFrame) -> pd.Series:
    """Each covering source's own evidence, in words: 'source z 2.1 p 0.004; ...'."""
    sids = [c[2:] for c in cells.columns if c.startswith("z_") and f"p_{c[2:]}" in cells.columns]

    def one(row) -> str:
        return "; ".join(f"{s} z {row['z_' + s]:.1f} p {row['p_' + s]:.2g}" for s in sids
                         if pd.notna(row["z_" + s]) and pd.notna(row["p_" + s]))
    return cells.apply(one, axis=1) if sids and len(cells) else pd.Series("", index=cells.index)


def _no_data_layer(cells: gpd.GeoDataFrame) -> folium.FeatureGroup | None:
    """Cells no risk source covers: drawn as no data, never as cold."""
    if "status" not in cells:
        return None
    gone = cells[cells["status"] == "no_data"]
    if not len(gone):
        return None
    group = folium.FeatureGroup(name="No data (no risk source covers these cells)", show=True)
    data = _web(gone.assign(label="No data: no risk source covers this cell"), ["cell_id", "label"])
    folium.GeoJson(data, name="no_data",
                   style_function=lambda f: {"fillColor": "#bdbdbd", "color": "#999999", "weight": 0.2,
                                             "fillOpacity": 0.35, "dashArray": "2 3", "className": "hs-nodata"},
                   tooltip=folium.GeoJsonTooltip(fields=["label"], labels=False)).add_to(group)
    return group


def _regions_layer(regions: gpd.GeoDataFrame, public: bool) -> folium.FeatureGroup:
    group = folium.FeatureGroup(name="Hotspot regions (purple: cross-boundary)", show=True)
    if not len(regions):
        return group
    reg = regions.copy()
    reg["crosses"] = np.where(reg["cross_boundary"], "yes", "no")
    if public:
        reg["incidents"] = public_counts(reg["n"])
        fields = ["region_id", "incidents", "areas", "crosses"]
        aliases = ["Region", "Incidents", "Areas", "Crosses a boundary"]
    else:
        reg["incidents"] = reg["n"].map(lambda v: f"{int(v):,}")
        reg["weighted_txt"] = _fmt(reg, "weighted", 1)
        reg["peak"] = _fmt(reg, "peak_z", 2)
        ev = [c for c in reg.columns if c.startswith("n_")]
        reg["evidence_mix"] = reg[ev].apply(lambda r: ", ".join(f"{c[2:]} {int(v):,}" for c, v in r.items() if v),
                                            axis=1) if ev else ""
        reg["support_txt"] = (reg["support"].fillna("") + np.where(reg["anecdotal_only"], " (anecdotal only)", "")
                              if "support" in reg else "")
        fields = ["region_id", "cells", "incidents", "weighted_txt", "peak", "evidence_mix", "support_txt", "areas",
                  "crosses"]
        aliases = ["Region", "Cells", "Incidents", "Weighted", "Peak z", "Evidence", "Made hot by", "Areas",
                   "Crosses a boundary"]
    data = _web(reg, fields)
    folium.GeoJson(
        data, name="regions",
        style_function=lambda f: {"fill": False, "color": CROSS_COLOUR if f["properties"]["crosses"] == "yes"
                                  else "#111111", "weight": 3.5 if f["properties"]["crosses"] == "yes" else 2,
                                  "dashArray": "6 4" if f["properties"]["crosses"] == "yes" else None,
                                  "className": "hs-region"},
        popup=folium.GeoJsonPopup(fields=fields, aliases=aliases),
    ).add_to(group)
    return group


def _lonlat_frame(lattice):
    """A lon/lat-aligned pixel frame over a square BNG lattice, and each pixel's lattice row/column.

    Images are resampled onto it (nearest lattice cell) so that they line up
    with the vector layers: the BNG grid is rotated about a degree from
    lon/lat in London, which would otherwise shift the image's edges.
    """
    from pyproj import Transformer
    to_wgs = Transformer.from_crs("EPSG:27700", WGS84, always_xy=True)
    to_bng = Transformer.from_crs(WGS84, "EPSG:27700", always_xy=True)
    xs = [lattice.x0, lattice.x0 + lattice.nx * lattice.cell]
    ys = [lattice.y0, lattice.y0 + lattice.ny * lattice.cell]
    corners = np.array([to_wgs.transform(x, y) for x in xs for y in ys])
    west, south = corners.min(axis=0)
    east, north = corners.max(axis=0)
    scale = max(1, min(4, 1600 // max(lattice.nx, lattice.ny)))  # pixels per lattice cell, bounded
    width, height = max(lattice.nx * scale, 1), max(lattice.ny * scale, 1)
    lon = west + (np.arange(width) + 0.5) * (east - west) / width
    lat = north - (np.arange(height) + 0.5) * (north - south) / height
    bx, by = to_bng.transform(*np.meshgrid(lon, lat))
    col = np.floor((bx - lattice.x0) / lattice.cell).astype(int)
    row = np.floor((by - lattice.y0) / lattice.cell).astype(int)
    ok = (col >= 0) & (col < lattice.nx) & (row >= 0) & (row < lattice.ny)
    return [[south, west], [north, east]], row, col, ok


def _png(values: np.ndarray, top: float, cmap: str) -> str:
    """A data-URI PNG of ``values`` (NaN transparent) on a square-root colour scale up to ``top``."""
    import base64
    import io

    from matplotlib import colormaps
    from matplotlib.image import imsave
    norm = np.sqrt(np.clip(np.nan_to_num(values) / top, 0, 1)) if top > 0 else np.zeros(values.shape)
    rgba = colormaps[cmap](norm)
    rgba[..., 3] = np.where(np.isfinite(values) & (norm > 0.05), 0.2 + 0.65 * norm, 0.0)
    buf = io.BytesIO()
    imsave(buf, rgba, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _cell_pixels(result, frame) -> np.ndarray:
    """For each pixel of ``frame``, the analysed cell it shows (-1 outside)."""
    _, row, col, ok = frame
    lattice = result.grid.raster()
    cx = lattice.x0 + (col + 0.5) * lattice.cell
    cy = lattice.y0 + (row + 0.5) * lattice.cell
    cells = np.full(row.shape, -1, dtype=np.int64)
    cells[ok] = result.grid.assign(cx[ok], cy[ok])
    return cells


def _kde_layer(result, frame) -> folium.FeatureGroup | None:
    """The KDE surface as one PNG image (a data URI): surfaces belong in images, not vectors."""
    surface = result.kde_surface
    if surface is None or not np.isfinite(surface).any():
        return None
    bounds, row, col, ok = frame
    values = np.full(row.shape, np.nan)
    values[ok] = surface[row[ok], col[ok]]
    group = folium.FeatureGroup(name="Kernel density surface", show=False)
    folium.raster_layers.ImageOverlay(_png(values, np.nanmax(values), "YlOrRd"), bounds=bounds,
                                      interactive=False, zindex=2).add_to(group)
    return group


def _evidence_layers(result, frame, pixels) -> list[folium.FeatureGroup]:
    """One image layer per evidence class: incidents per cell, each class on its own toggle."""
    bounds = frame[0]
    groups = []
    for col in sorted(c for c in result.cells.columns if c.startswith("n_")):
        counts = result.cells[col].to_numpy(float)
        if counts.sum() == 0:
            continue
        values = np.where(pixels >= 0, counts[np.clip(pixels, 0, None)], np.nan)
        values[values == 0] = np.nan
        group = folium.FeatureGroup(name=f"Evidence: {esc(col[2:].replace('_', ' '))}", show=False)
        folium.raster_layers.ImageOverlay(_png(values, counts.max(), "PuBu"), bounds=bounds, interactive=False,
                                          zindex=3).add_to(group)
        groups.append(group)
    return groups


class MonthSlider(MacroElement):
    """A month slider (with play) that swaps the image of a monthly-count overlay. Offline: plain JS."""
    _template = Template("""
{% macro script(this, kwargs) %}
(function () {
  var urls = {{ this.urls }}, labels = {{ this.labels }}, overlay = {{ this.overlay }};
  var box = L.control({position: "bottomright"});
  box.onAdd = function () {
    var div = L.DomUtil.create("div", "hs-panel hs-time");
    div.innerHTML = '<b>Incidents by month</b><br><button type="button" class="hs-play">Play</button> ' +
      '<input type="range" class="hs-month" min="0" max="' + (urls.length - 1) + '" value="' + (urls.length - 1) +
      '"> <span class="hs-month-label"></span>';
    L.DomEvent.disableClickPropagation(div);
    var input = div.querySelector(".hs-month"), label = div.querySelector(".hs-month-label");
    var show = function (i) { overlay.setUrl(urls[i]); label.textContent = labels[i]; input.value = i; };
    input.addEventListener("input", function () { show(+input.value); });
    var timer = null;
    div.querySelector(".hs-play").addEventListener("click", function () {
      if (timer) { clearInterval(timer); timer = null; return; }
      timer = setInterval(function () { show((+input.value + 1) % urls.length); }, 900);
    });
    show(urls.length - 1);
    return div;
  };
  box.addTo({{ this._parent.get_name() }});
})();
{% endmacro %}
""")

    def __init__(self, overlay, urls: list[str], labels: list[str]):
        super().__init__()
        self._name = "MonthSlider"
        self.overlay = overlay.get_name()
        self.urls = json.dumps(urls)
        self.labels = json.dumps([esc(t) for t in labels])


def _time_layer(result, frame, pixels, m) -> folium.FeatureGroup | None:
    """Incidents per cell for each month as images, switched by a slider (bounded size at any data volume)."""
    inc = risk(result.incidents)
    if not len(inc):
        return None
    months = pd.period_range(result.cfg.start, result.cfg.end - pd.Timedelta(seconds=1), freq="M")
    if len(months) < 2:
        return None
    idx = month_index(inc["occurred_from"], result.cfg.start)
    cube = np.zeros((result.grid.n, len(months)))
    np.add.at(cube, (inc["cell"].to_numpy(), idx), 1.0)
    top = cube.max()
    urls = []
    for t in range(len(months)):
        counts = cube[:, t]
        values = np.where(pixels >= 0, counts[np.clip(pixels, 0, None)], np.nan)
        values[values == 0] = np.nan
        urls.append(_png(values, top, "OrRd"))
    group = folium.FeatureGroup(name="Incidents by month (slider)", show=False)
    overlay = folium.raster_layers.ImageOverlay(urls[-1], bounds=frame[0], interactive=False, zindex=4)
    overlay.add_to(group)
    group.add_to(m)
    m.add_child(MonthSlider(overlay, urls, [p.strftime("%B %Y") for p in months]))
    return group


def _areas_panel(result, public: bool) -> str:
    """A collapsible table of the per-area summary (areas.csv)."""
    areas = result.areas
    if not len(areas):
        return ""
    fmt = public_count if public else (lambda v: f"{v:,.0f}")
    rows = "".join(f"<tr><td>{esc(r.area)}</td><td>{esc(fmt(r.n))}</td><td>{esc(fmt(r.hot_cells) if public else r.hot_cells)}</td>"
                   f"<td>{esc(fmt(r.regions) if public else r.regions)}</td>"
                   f"<td>{esc(fmt(r.cross_boundary_regions) if public else r.cross_boundary_regions)}</td></tr>"
                   for r in areas.itertuples())
    return (f'<div class="hs-panel hs-areas" id="hs-areas"><details><summary><b>Areas</b></summary>'
            f"<table><tr><th>Area</th><th>Incidents</th><th>Hot cells</th><th>Regions</th><th>Crossing</th></tr>"
            f"{rows}</table></details></div>")


def _clusters_layer(clusters: gpd.GeoDataFrame) -> folium.FeatureGroup:
    group = folium.FeatureGroup(name="Density clusters (p <= 0.05)", show=False)
    sig = clusters[clusters["p_value"] <= 0.05] if len(clusters) else clusters
    if not len(sig):
        return group
    sig = sig.copy()
    sig["weighted_txt"] = _fmt(sig, "weighted", 1)
    sig["p"] = sig["p_value"].map(lambda v: f"{v:.3f}")
    sig["crosses"] = np.where(sig["cross_boundary"], "yes", "no")
    data = _web(sig, ["cluster_id", "method", "n", "weighted_txt", "p", "areas", "crosses"])
    folium.GeoJson(
        data, name="clusters",
        style_function=lambda f: {"fillColor": "#1b9e77", "fillOpacity": 0.25, "color": "#1b9e77", "weight": 2,
                                  "className": "hs-cluster"},
        popup=folium.GeoJsonPopup(fields=["cluster_id", "method", "n", "weighted_txt", "p", "areas", "crosses"],
                                  aliases=["Cluster", "Method", "Incidents", "Weighted", "p (Monte Carlo)",
                                           "Areas", "Crosses a boundary"]),
    ).add_to(group)
    return group


TREND_COLOURS = {"new": "#fdae61", "consecutive": "#f46d43", "intensifying": "#a50026", "persistent": "#d73027",
                 "diminishing": "#fee090", "sporadic": "#f4a582", "oscillating": "#c2a5cf", "historical": "#bababa"}


def _trend_colour(label: str) -> str:
    kind = label.split(" ")[0]
    colour = TREND_COLOURS.get(kind, "#999999")
    if "cold" in label:  # the cold twins in blues
        colour = {"#fdae61": "#abd9e9", "#f46d43": "#74add1", "#a50026": "#313695", "#d73027": "#4575b4",
                  "#fee090": "#e0f3f8", "#f4a582": "#92c5de"}.get(colour, colour)
    return colour


def _trends_layer(cells: gpd.GeoDataFrame) -> folium.FeatureGroup:
    group = folium.FeatureGroup(name="Emerging hot spot trends (monthly)", show=False)
    if "trend_class" not in cells:
        return group
    sub = cells[cells["trend_class"] != "no pattern detected"].copy()
    if not len(sub):
        return group
    sub["trend_txt"] = _fmt(sub, "trend_z", 2)
    data = _web(sub, ["cell_id", "trend_class", "trend_txt", "n"])
    folium.GeoJson(
        data, name="trends",
        style_function=lambda f: {"fillColor": _trend_colour(f["properties"]["trend_class"]), "fillOpacity": 0.8,
                                  "color": "#444444", "weight": 0.4, "className": "hs-trend"},
        popup=folium.GeoJsonPopup(fields=["cell_id", "trend_class", "trend_txt", "n"],
                                  aliases=["Cell", "Trend class", "Mann-Kendall z", "Incidents"]),
    ).add_to(group)
    return group


def _factual_layer(cells: gpd.GeoDataFrame) -> folium.FeatureGroup | None:
    """Gi* hot spots when community reports and intelligence weigh nothing: the map's
    "factual only" against the agreed weighting (the agreed cells layer)."""
    if "gi_class_factual_only" not in cells:
        return None
    group = folium.FeatureGroup(name="Gi* hot spots: factual sources only", show=False)
    hot = cells[cells["gi_class_factual_only"] >= 2].copy()
    if len(hot):
        hot["confidence"] = hot["gi_class_factual_only"].map(GI_LABELS)
        hot["fill"] = hot["gi_class_factual_only"].map(GI_COLOURS)
        data = _web(hot, ["cell_id", "confidence", "fill"])
        folium.GeoJson(data, name="factual_cells",
                       style_function=lambda f: {"fillColor": f["properties"]["fill"], "color": "#222222",
                                                 "weight": 0.8, "fillOpacity": 0.6, "className": "hs-factual"},
                       popup=folium.GeoJsonPopup(fields=["cell_id", "confidence"],
                                                 aliases=["Cell", "Gi* (factual sources only)"])).add_to(group)
    return group


def _coverage_layer(coverage) -> folium.FeatureGroup | None:
    """Where a source's declared coverage stops: an edge of the data, not of the risk."""
    if coverage is None or not len(coverage):
        return None
    group = folium.FeatureGroup(name="Coverage edges of sources", show=True)
    data = _web(coverage.assign(label="Edge of " + coverage["source_id"] + "'s data (" + coverage["areas"] + ")"),
                ["label"])
    folium.GeoJson(data, name="coverage",
                   style_function=lambda f: {"fill": False, "color": "#e6550d", "weight": 2.5, "dashArray": "2 6",
                                             "className": "hs-coverage"},
                   tooltip=folium.GeoJsonTooltip(fields=["label"], labels=False)).add_to(group)
    return group


def _boundaries_layer(boundaries: gpd.GeoDataFrame, study_area) -> folium.FeatureGroup:
    group = folium.FeatureGroup(name="Boundaries (names)", show=True)
    near = boundaries[boundaries.intersects(study_area.buffer(500))]
    if not len(near):
        return group
    near = near.assign(geometry=near.geometry.simplify(5))
    data = _web(near, ["layer", "area"])
    folium.GeoJson(data, name="boundaries",
                   style_function=lambda f: {"fill": False, "color": "#333333", "weight": 1.5, "opacity": 0.8,
                                             "className": "hs-boundary"},
                   tooltip=folium.GeoJsonTooltip(fields=["area"], aliases=["Area"])).add_to(group)
    labels = near.assign(geometry=near.geometry.intersection(study_area.buffer(300)).representative_point())
    labels = labels[~labels.geometry.is_empty].to_crs(WGS84)
    for _, row in labels.iterrows():
        folium.Marker([row.geometry.y, row.geometry.x], icon=folium.DivIcon(
            html=f'<div class="hs-label">{esc(row["area"])}</div>', icon_size=(140, 16), icon_anchor=(70, 8)),
        ).add_to(group)
    return group


def _study_area_layer(area) -> folium.FeatureGroup:
    group = folium.FeatureGroup(name="Study area", show=True)
    gdf = gpd.GeoDataFrame(geometry=[area], crs="EPSG:27700").to_crs(WGS84)
    folium.GeoJson(gdf, name="study_area", interactive=False,
                   style_function=lambda f: {"fillColor": "#ffffff", "fillOpacity": 0.35, "color": "#888888",
                                             "weight": 1, "dashArray": "2 3"}).add_to(group)
    return group


def _swatch(colour: str, label: str, border: str = "1px solid #777") -> str:
    return f'<div><span class="hs-swatch" style="background:{colour};border:{border}"></span>{esc(label)}</div>'


def _legend(result, public: bool) -> str:
    rows = "".join(_swatch(GI_COLOURS[k], v) for k, v in GI_LABELS.items())
    if "status" in result.cells and (result.cells["status"] == "no_data").any():
        rows += _swatch("rgba(189,189,189,.5)", "No data: no risk source covers the cell", "1px dashed #999")
    rows += _swatch("none", "Hotspot region", "2px solid #111")
    rows += _swatch("none", "Region crossing a boundary", f"2px dashed {CROSS_COLOUR}")
    if not public:
        rows += _swatch("rgba(27,158,119,.3)", "Density cluster (p <= 0.05)", "2px solid #1b9e77")
        rows += ('<div class="hs-ramp"><span>KDE, counts: low</span><span class="hs-grad"></span>'
                 '<span>high (square-root scale)</span></div>')
        if result.coverage is not None and len(result.coverage):
            rows += _swatch("none", "Edge of a source's coverage", "2px dotted #e6550d")
    present = sorted(set(result.cells.get("trend_class", pd.Series(dtype=str))) - {"no pattern detected"})
    trends = "".join(_swatch(_trend_colour(t), t) for t in present)
    if trends:
        rows += f"<details><summary>Trend classes</summary>{trends}</details>"
    return f'<div class="hs-panel hs-legend" id="hs-legend"><b>Gi* (FDR-controlled)</b>{rows}</div>'


def _methods(result, public: bool) -> str:
    cfg, p = result.cfg, result.parameters
    acc = result.ledger.summary(result.accounting)
    count = public_count if public else (lambda v: f"{v:,}")
    evidence = {sid: ", ".join(sorted(map(str, ev))) for sid, ev in
                result.incidents.groupby("source_id")["evidence"].unique().items()}
    src = {s.id: s for s in cfg.sources}
    rows = "".join(
        f"<tr><td>{esc(r.source_id)}</td><td>{esc(src[r.source_id].schema)}</td>"
        f"<td>{esc(src[r.source_id].evidence or evidence.get(r.source_id, ''))}</td><td>{count(r.rows_read)}</td><td>{count(r.rows_loaded)}</td>"
        f"<td>{count(r.rows_filtered)}</td><td>{count(r.rows_rejected)}</td>"
        f"<td>{'' if public else esc(r.top_reject_reasons)}</td></tr>"
        for r in acc.itertuples())
    legal = "".join(f"<li>{esc(s.id)}: {esc(s.legal_basis or 'not recorded')}"
                    f"{'; sharing agreement ' + esc(s.sharing_agreement) if s.sharing_agreement else ''}</li>"
                    for s in cfg.sources)
    w = result.weights
    weights = ", ".join(f"{esc(k)} {v:g}" for k, v in w["evidence"].items())
    srcw = ", ".join(f"{esc(k)} {v:g}" for k, v in w["sources"].items())
    params = "".join(f"<li><b>{esc(k)}</b>: {esc(v['value'] if not isinstance(v['value'], float) else round(v['value'], 1))}"
                     f" ({esc(v['how'])})</li>" for k, v in p.items())
    attribution = "".join(f"<li>{esc(a)}</li>" for a in cfg.attribution)
    extra = result.extra or {}
    notes = []
    for sid, c in (extra.get("geocoding") or {}).items():
        asked = sum(c.values())
        located = asked - c.get("unmatched", 0)
        notes.append(f"{esc(sid)}: {count(located)} of {count(asked)} locations geocoded offline "
                     f"(postcode {count(c.get('postcode', 0))}, street {count(c.get('street', 0))}, "
                     f"place {count(c.get('place', 0))}); never given invented coordinates")
    for sid, f in (w.get("period_scale") or {}).items():
        notes.append(f"{esc(sid)} covers part of the study period only: its weights are scaled by {f:.2f}")
    link = extra.get("linkage") or {}
    if link:
        notes.append(f"{count(link.get('linked', 0))} records judged probable duplicates of another agency's record "
                     "(close in place and time, same kind of incident; never person to person) are counted once")
    for reason, n in (extra.get("held_back") or {}).items():
        notes.append(f"{count(n)} records held back from shared outputs: {esc(reason)}")
    notes_html = "<ul>" + "".join(f"<li>{n}</li>" for n in notes) + "</ul>" if notes else ""
    return f"""
<div class="hs-panel hs-methods" id="hs-methods"><details><summary><b>Methods and sources</b></summary>
<p><b>{esc(cfg.name)}</b>: incidents from {esc(cfg.start_label)} to {esc(cfg.end_label)}. Map made
{esc(datetime.now().strftime('%d %B %Y'))} by hotspots.</p>
<table><tr><th>Source</th><th>Schema</th><th>Evidence</th><th>Read</th><th>Loaded</th><th>Filtered</th>
<th>Rejected</th><th>Top reject reasons</th></tr>{rows}</table>
<p><b>Weights</b> (weight = source x evidence class x grade): evidence {weights}; sources {srcw}.
Stop and search and other police activity is context, not risk (weight 0); records about a person count
for victims only, never summed with suspects.</p>{notes_html}
<p><b>Method</b>: Getis-Ord Gi* on one seamless grid across all boundaries, the cell included in its own
neighbourhood, binary weights; p-values two-sided, Benjamini-Hochberg false discovery rate across cells;
classes as ArcGIS's Gi_Bin. Locations from police.uk are anonymised snap points and dates are month-only.
Coordinates reprojected with pyproj (about 2 m from the OS transformation).</p>
<ul>{params}</ul>
{_sensitivity_html(result) if not public else ""}
{_building_types_html(result) if not public else ""}
<p><b>This map's audience</b>: {esc(_audience(result, public))}</p>
<p><b>Legal basis</b></p><ul>{legal}</ul>
<p><b>Attribution</b></p><ul>{attribution}</ul>
</details></div>"""


def _time_note(result) -> str:
    """Why the building profiles have no hours, if they have none (set by the profile stage)."""
    return result.buildings.attrs.get("time_note", "") if result.buildings is not None else ""


def _building_types_html(result) -> str:
    types = result.building_types
    if types is None or not len(types):
        return ""
    rows = "".join(f"<tr><td>{esc(r.type)}</td><td>{r.buildings}</td><td>{r.radius_m:g} m</td><td>{r.n_near:,}</td>"
                   f"<td>{r.rate_ratio:.2f} ({r.rr_low:.2f}-{r.rr_high:.2f})</td><td>{r.p_value:.2g}</td></tr>"
                   for r in types.itertuples())
    note = _time_note(result)
    return ("<p><b>Risk by building type</b> (incidents within the radius of any building of the type, per km2, "
            "against elsewhere in the study area; in the manner of Risk Terrain Modeling):</p>"
            "<table><tr><th>Type</th><th>Buildings</th><th>Radius</th><th>Incidents near</th>"
            f"<th>Rate ratio (95 % CI)</th><th>p</th></tr>{rows}</table>"
            + (f"<p>{esc(note)}</p>" if note else ""))


def _audience(result, public: bool) -> str:
    agency = (result.extra or {}).get("agency")
    if agency:
        return (f"{agency}'s own run: it includes records whose handling code keeps them within that agency. "
                "Not for sharing.")
    return RULES_TEXT if public else "partner tier: the partnership's members only; do not publish."


def _sensitivity_html(result) -> str:
    sens = result.sensitivity
    if sens is None or not len(sens):
        return ""
    rows = "".join(f"<tr><td>{esc(r.scenario)}</td><td>{r.anecdotal_weight:g}</td><td>{r.hot_cells}</td>"
                   f"<td>{r.regions}</td><td>{r.jaccard_with_agreed:.2f}</td></tr>" for r in sens.itertuples())
    dep = result.sensitivity_regions
    dep = dep[dep["depends_on_anecdotal"]]["region_id"].tolist() if dep is not None and len(dep) else []
    note = (f"Regions that depend on anecdotal sources alone: {esc(', '.join(dep))}." if dep
            else "No region depends on anecdotal sources alone.")
    return (f"<p><b>Effect of the weights</b> (community reports and intelligence against recorded crime):</p>"
            f"<table><tr><th>Scenario</th><th>Anecdotal weight</th><th>Hot cells</th><th>Regions</th>"
            f"<th>Overlap with agreed (Jaccard)</th></tr>{rows}</table><p>{note}</p>")


CSS = """<style>
.hs-panel{position:absolute;z-index:1000;background:rgba(255,255,255,.94);padding:6px 9px;border-radius:4px;
 box-shadow:0 1px 5px rgba(0,0,0,.4);font:12px/1.35 sans-serif;}
.hs-legend{bottom:48px;left:10px;}
.hs-areas{top:10px;left:230px;max-height:40%;overflow:auto}.hs-areas table{border-collapse:collapse;font-size:11px}
.hs-areas td,.hs-areas th{border:1px solid #ccc;padding:1px 4px}
.hs-time{margin-bottom:8px}.hs-month{vertical-align:middle;width:150px}
.hs-methods{top:10px;left:54px;max-width:46%;max-height:80%;overflow:auto;}
.hs-methods table{border-collapse:collapse;font-size:11px}.hs-methods td,.hs-methods th{border:1px solid #ccc;padding:1px 4px}
.hs-swatch{display:inline-block;width:14px;height:11px;margin-right:5px;vertical-align:middle;border:1px solid #777}
.hs-label{font:bold 11px sans-serif;color:#333;text-align:center;text-shadow:0 0 3px #fff,0 0 3px #fff;white-space:nowrap}
.leaflet-container{background:#f2f2ef}
.hs-ramp{display:flex;align-items:center;gap:4px;margin-top:3px}.hs-grad{display:inline-block;width:70px;height:10px;background:linear-gradient(90deg,#ffffcc,#fd8d3c,#800026)}
</style>"""


def build_map(result, tier: str = "partner") -> str:
    """The self-contained HTML of the ``tier`` map for a pipeline ``Result`` (or its public view)."""
    public = tier == "public"
    area_wgs = gpd.GeoSeries([result.study_area], crs="EPSG:27700").to_crs(WGS84)
    minx, miny, maxx, maxy = area_wgs.total_bounds
    tiles = result.cfg.outputs.get("tiles")
    m = folium.Map(location=[(miny + maxy) / 2, (minx + maxx) / 2], zoom_start=14, tiles=None,
                   maxZoom=19, control_scale=not public)
    if tiles:
        folium.TileLayer(tiles=str(tiles), attr=esc(result.cfg.outputs.get("tiles_attribution", "Base map")),
                         name="Base map", max_zoom=19).add_to(m)
    m.fit_bounds([[miny, minx], [maxy, maxx]])
    _study_area_layer(result.study_area).add_to(m)
    _boundaries_layer(result.boundaries, result.study_area).add_to(m)
    if not public:
        frame = _lonlat_frame(result.grid.raster())
        kde = _kde_layer(result, frame)
        if kde is not None:
            kde.add_to(m)
        pixels = _cell_pixels(result, frame)
        for group in _evidence_layers(result, frame, pixels):
            group.add_to(m)
        _time_layer(result, frame, pixels, m)
    no_data = _no_data_layer(result.cells)
    if no_data is not None:
        no_data.add_to(m)
    _cells_layer(result.cells, public).add_to(m)
    if not public:
        for extra in (_factual_layer(result.cells), _trends_layer(result.cells), _clusters_layer(result.clusters),
                      _coverage_layer(result.coverage)):
            if extra is not None:
                extra.add_to(m)
    _regions_layer(result.regions, public).add_to(m)
    legends = _legend(result, public)
    if not public and result.buildings is not None and len(result.buildings):
        # The public tier shows no building profiles: each names a place and a count.
        for group in buildings_layers(result.buildings, _time_note(result)):
            group.add_to(m)
        legends += buildings_legend_html()
    folium.LayerControl(collapsed=False).add_to(m)
    root = m.get_root()
    root.header.add_child(folium.Element(CSS))
    root.html.add_child(folium.Element(legends + _methods(result, public) + _areas_panel(result, public)))
    root.title = esc(f"{result.cfg.name}: hotspots ({tier})")
    return make_self_contained(root.render())
