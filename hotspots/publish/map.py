"""The partnership's HTML map: Folium, self-contained, one file per audience tier.

Input: a pipeline ``Result``. Output: an HTML string that opens with no
network (assets inlined by ``offline.make_self_contained``). Layers:
boundaries with their names, Gi* cells by confidence, hotspot regions
(cross-boundary ones highlighted), a legend and a methods panel. Only
significant cells are drawn, each layer of cells as compact data
(``compact_cells``, drawn by ``map_controls.CellLayer``), and past
``CELLS_BUDGET`` bytes the weakest Gi* cells as an image, so the file stays
small at any data size and grid.

Every string that comes from an input (area names, source ids, categories,
config text) goes through ``esc`` before it reaches Folium: Folium puts
popups, tooltips and layer names into the page as raw HTML and JavaScript.
The cell layers carry their text unescaped, as JSON data (``js_json``) that
the browser sets with ``textContent``.
"""
from __future__ import annotations

import base64
import functools
import io
import json
import re
from datetime import datetime

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from hotspots import config
from hotspots.crs import BNG, WGS84, transformer
from hotspots.detect.counts import count_columns
from hotspots.errors import UserError
from hotspots.detect.spacetime import month_index, trending
from hotspots.publish.map_buildings import LABEL_ZOOM, Q_LEVEL, buildings_layers, buildings_legend_html
from hotspots.publish.escape import HtmlBlock, esc, render_once, short
from hotspots.publish.map_controls import CellLayer, LegendSwitch, MonthSlider, WhereToAct, ZoomLabels
from hotspots.publish.where import INTERVAL_NOTE, MIX_LABEL, SUPPORT_LABEL, where_to_act
from hotspots.publish import palette
from hotspots.publish.offline import make_self_contained
from hotspots.tiers import RULES_TEXT, public_count, public_counts, public_coverage
from hotspots.weight import risk

GI_COLOURS = {3: "#b2182b", 2: "#ef8a62", 1: "#fddbc7", -1: "#d1e5f0", -2: "#67a9cf", -3: "#2166ac"}
GI_LABELS = {3: "Hot spot, 99 % confidence", 2: "Hot spot, 95 %", 1: "Hot spot, 90 %",
             -1: "Cold spot, 90 %", -2: "Cold spot, 95 %", -3: "Cold spot, 99 %"}
CROSS_COLOUR = "#7b3294"


def _web(gdf: gpd.GeoDataFrame, columns: list[str]) -> dict:
    """The columns a layer shows, escaped, in WGS84 with coordinates rounded to ~0.1 m: a GeoJSON
    FeatureCollection, each feature's id its row's index (as geopandas' ``__geo_interface__``).

    Geometries written as JSON by GEOS and read in one call, properties taken column by column: not
    row by row through ``__geo_interface__`` as folium does (the 1 M run's cells: 0.78 s -> 0.23 s)."""
    out = gdf[columns + [gdf.geometry.name]].to_crs(WGS84)
    values = []
    for c in columns:
        col = out[c].map(esc) if out[c].dtype.kind in "OSUT" or str(out[c].dtype) in ("str", "string") else out[c]
        values.append(col.astype(object).where(col.notna(), None).tolist())
    geoms = shapely.to_geojson(shapely.set_precision(out.geometry.values, 1e-6))
    shapes = json.loads("[" + ",".join(geoms) + "]")
    return {"type": "FeatureCollection", "features": [
        {"id": str(i), "type": "Feature", "properties": dict(zip(columns, row)), "geometry": g}
        for i, row, g in zip(out.index, zip(*values), shapes)]}


def _fmt(df: pd.DataFrame, col: str, digits: int) -> pd.Series:
    return df[col].map(lambda v: "" if pd.isna(v) else f"{v:.{digits}f}")


def _column(values: pd.Series):
    """One property of a ``CellLayer``: a list (None where missing), or, when it has fewer than half as
    many distinct values as cells, those values and a code per cell."""
    vals = values.astype(object).where(values.notna(), None)
    codes, distinct = pd.factorize(vals, use_na_sentinel=False)
    if 2 * len(distinct) >= len(vals):
        return vals.tolist()
    return {"v": [None if v is None or v != v else v for v in distinct], "k": codes.tolist()}


def _joined(parts: list[pd.Series], index: pd.Index):
    """A ``CellLayer`` property joined in the browser from ``parts`` (see ``compact_cells``)."""
    if not parts:
        return _column(pd.Series("", index=index))
    return {"join": "; ", "parts": [_column(p) for p in parts]}


def compact_cells(cells: gpd.GeoDataFrame, fields: list[str], aliases: list[str], style: pd.Series,
                  styles: dict, parts: dict[str, list[pd.Series]] | None = None) -> dict:
    """The data of a ``CellLayer``: the polygons of ``cells`` (in EPSG:27700, cells of one grid: every
    ring with the same number of corners), each with the text of ``fields`` (shown as ``aliases``) and the
    Leaflet path options ``styles[style]``. A field named in ``parts`` is those texts joined with '; '
    (the empty ones left out) in the browser: each part has few distinct values, their join has many.

    Corners are found shared by their position to 1 mm; each is sent once, in WGS84 rounded to 1e-6
    degrees (~0.1 m, as ``_web``), as integer millionths of a degree, each the difference from the one
    before (sorted by position, so that most differences are a few digits). Text is raw: the layer sets
    it with ``textContent`` and ``js_json`` makes it inert inside the script."""
    rings = shapely.get_exterior_ring(cells.geometry.values)
    xy, owner = shapely.get_coordinates(rings, return_index=True)
    per = np.bincount(owner, minlength=len(cells))
    if len(cells) and (per != per[0]).any():
        raise ValueError("compact_cells: every cell of a grid should have the same number of corners")
    corners = int(per[0]) - 1 if len(cells) else 0
    xy = xy.reshape(len(cells), corners + 1, 2)[:, :corners].reshape(-1, 2)
    _, first, which = np.unique(np.round(xy * 1000).astype(np.int64), axis=0, return_index=True,
                                return_inverse=True)
    lon, lat = transformer(BNG, WGS84).transform(xy[first, 0], xy[first, 1])
    micro = [np.round(np.asarray(v) * 1e6).astype(np.int64) for v in (lon, lat)]
    return {"corners": corners, "rings": which.ravel().tolist(),
            "lon": np.diff(micro[0], prepend=0).tolist(), "lat": np.diff(micro[1], prepend=0).tolist(),
            "fields": fields, "aliases": aliases,
            "columns": [_joined(parts[f], cells.index) if f in (parts or {}) else _column(cells[f]) for f in fields],
            "style": _column(style.astype(str)), "styles": styles}


# The most bytes the Gi* cells' shapes take in the page; beyond it, the weakest cells are drawn as an image
# of their classes, without popups. About 117 bytes a cell at 10 M incidents (its 6,226 cells: 0.73 MB), so
# some 17,000 cells as shapes; the rest of a 30 M map (images, buildings, assets) takes about 2 MB, 3 MB on
# 50 m cells.
CELLS_BUDGET = 2_000_000


def _cells_layer(cells: gpd.GeoDataFrame, public: bool, pixels_of) -> tuple[folium.FeatureGroup, str]:
    """The significant Gi* cells with their popups, and a note for the legend ("" unless some are drawn as an
    image: when their shapes would take more than ``CELLS_BUDGET`` bytes, the strongest are shapes, hot
    before cold, and the others an image of their classes on ``pixels_of()``'s frame)."""
    group = folium.FeatureGroup(name="Hotspots · Gi* hot and cold spots (cells)", show=True)
    sig = cells[cells["gi_class"].notna() & (cells["gi_class"] != 0)].copy()
    if not len(sig):
        return group, ""
    sig["confidence"] = sig["gi_class"].map(GI_LABELS)
    parts = {}
    if public:
        sig["incidents"] = public_counts(sig["n"])
        fields = ["cell_id", "confidence", "incidents", "areas", "region_id"]
        aliases = ["Cell", "Gi*", "Incidents", "Areas", "Region"]
    else:
        sig["incidents"] = sig["n"].map(lambda v: f"{int(v):,}")
        sig["weighted_txt"] = _fmt(sig, "weighted", 1)
        sig["z"] = _fmt(sig, "gi_z", 2)
        sig["q"] = sig["gi_q"].map(lambda v: f"{v:.2g}")
        parts = {"per_source": _per_source(sig)}
        sig["support_txt"] = sig["support"].fillna("") if "support" in sig else ""
        fields = ["cell_id", "confidence", "incidents", "weighted_txt", "z", "q", "per_source", "support_txt",
                  "areas", "region_id"]
        aliases = ["Cell", "Gi*", "Incidents", "Weighted", "z", "q (FDR)", "Each source (z, p)",
                   "Made hot by", "Areas", "Region"]
    styles = {str(k): {"fillColor": c, "color": "#555555", "weight": 0.3, "fillOpacity": 0.75, "className": "hs-cell"}
              for k, c in GI_COLOURS.items()}

    def layer(rows: gpd.GeoDataFrame) -> CellLayer:
        return CellLayer(compact_cells(rows, fields, aliases, rows["gi_class"].astype(int), styles,
                                       {f: [p.loc[rows.index] for p in ps] for f, ps in parts.items()}))

    def size(made: CellLayer) -> int:
        return len(made.data.encode())        # bytes: area names need not be ASCII

    shapes, note = layer(sig), ""
    full = size(shapes)
    if full > CELLS_BUDGET:
        cls = sig["gi_class"].to_numpy(float)
        strongest = np.lexsort((-np.abs(sig["gi_z"].to_numpy(float)), cls < 0, -np.abs(cls)))
        keep = len(sig) * CELLS_BUDGET // full
        while True:
            shapes = layer(sig.iloc[np.sort(strongest[:keep])])
            if keep == 0 or size(shapes) <= CELLS_BUDGET:
                break
            keep = keep * 9 // 10
        rest = sig.iloc[strongest[keep:]]
        frame, pixels = pixels_of()
        # By cell number (the cells' index, as ``pixels`` holds them).
        number = rest.index.to_numpy(int)
        classes = np.zeros(max(int(pixels.max()), int(number.max())) + 1, dtype=np.int64)
        classes[number] = rest["gi_class"].to_numpy(int)
        folium.raster_layers.ImageOverlay(_class_png(classes, pixels), bounds=frame[0], interactive=False,
                                          zindex=4).add_to(group)
        note = (f'<div class="hs-note">The {len(rest):,} weakest of the {len(sig):,} significant cells are drawn '
                "as an image, without popups, to keep the map small; every cell is in the outputs' cells "
                "table.</div>")
    shapes.add_to(group)
    return group, note


def _class_png(classes: np.ndarray, pixels: np.ndarray) -> str:
    """A data-URI PNG of each cell's Gi* class (``classes`` by cell number; 0: transparent) on the frame's
    ``pixels``, in the cells layer's colours and opacity."""
    palette = np.zeros((8, 4), dtype=np.uint8)          # index class + 3; 7: outside the grid
    for k, colour in GI_COLOURS.items():
        palette[k + 3] = [int(colour[i:i + 2], 16) for i in (1, 3, 5)] + [round(0.75 * 255)]
    index = np.where(pixels >= 0, classes[np.maximum(pixels, 0)] + 3, 7)
    return _png(index, palette)


def _per_source(cells: pd.DataFrame) -> list[pd.Series]:
    """Each covering source's own evidence in words, one series per source: 'source z 2.1 p 0.004' (empty
    where it does not cover the cell); the map joins them with '; '."""
    sids = [c[2:] for c in cells.columns if c.startswith("z_") and f"p_{c[2:]}" in cells.columns]
    # Column by column, not a row at a time (DataFrame.apply took 0.6 s for 2,600 cells).
    parts = []
    for s in sids:
        z, p = cells["z_" + s].to_numpy(float), cells["p_" + s].to_numpy(float)
        parts.append(pd.Series([f"{s} z {a:.1f} p {b:.2g}" if a == a and b == b else "" for a, b in zip(z, p)],
                               index=cells.index))
    return parts


def _regions_layer(regions: gpd.GeoDataFrame, public: bool) -> folium.FeatureGroup:
    group = folium.FeatureGroup(name="Hotspots · Hotspot regions (purple: cross-boundary)", show=True)
    if not len(regions):
        return group
    reg = regions.copy()
    reg["crosses"] = np.where(reg["cross_boundary"], "yes", "no")
    reg["name"] = reg["name"] if "name" in reg else reg["areas"]
    if public:
        reg["incidents"] = public_counts(reg["n"])
        fields = ["region_id", "name", "incidents", "areas", "crosses"]
        aliases = ["Region", "Place", "Incidents", "Areas", "Crosses a boundary"]
    else:
        reg["incidents"] = reg["n"].map(lambda v: f"{int(v):,}")
        reg["weighted_txt"] = _fmt(reg, "weighted", 1)
        reg["peak"] = _fmt(reg, "peak_z", 2)
        ev = count_columns(reg)
        reg["evidence_mix"] = reg[ev].apply(lambda r: ", ".join(f"{_count_label(c)} {int(v):,}" for c, v in r.items()
                                                                if v), axis=1) if ev else ""
        reg["support_txt"] = (reg["support"].fillna("") + np.where(reg["anecdotal_only"], " (anecdotal only)", "")
                              if "support" in reg else "")
        fields = ["region_id", "name", "cells", "incidents", "weighted_txt", "peak", "evidence_mix", "support_txt",
                  "areas", "crosses"]
        aliases = ["Region", "Place", "Cells", "Incidents (counted as risk)", "Weighted", "Peak z", MIX_LABEL,
                   SUPPORT_LABEL, "Areas", "Crosses a boundary"]
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


# The most pixels an image of the frame has (but 1.5 a lattice cell at least): the map holds some 36
# images (a month each, each evidence class, the density). At 4 pixels a cell, 10 M incidents on 50 m
# cells (80,256 cells) made 5.0 MB of images; the benchmark's 100 m grid (19,912 cells) keeps 4.
FRAME_PIXELS = 400_000


def _lonlat_frame(lattice):
    """A lon/lat-aligned pixel frame over a square BNG lattice, and each pixel's lattice row/column.

    Images are resampled onto it (nearest lattice cell) so that they line up
    with the vector layers: the BNG grid is rotated about a degree from
    lon/lat in London, which would otherwise shift the image's edges.
    """
    to_wgs, to_bng = transformer(BNG, WGS84), transformer(WGS84, BNG)
    xs = [lattice.x0, lattice.x0 + lattice.nx * lattice.cell]
    ys = [lattice.y0, lattice.y0 + lattice.ny * lattice.cell]
    corners = np.array([to_wgs.transform(x, y) for x in xs for y in ys])
    west, south = corners.min(axis=0)
    east, north = corners.max(axis=0)
    # Pixels per lattice cell, in steps of a half: up to 4 (so that the edges of cells line up with the vector
    # layers), fewer on a fine grid, to at most ~FRAME_PIXELS an image, and at least 1.5: the frame is tilted
    # against the BNG lattice (about a degree in London), so at 1 a pixel a cell some cells have no pixel
    # (16,055 of 321,024 on 25 m cells over 15 x 13 km).
    scale = max(1.5, np.floor(2 * min(4, 1600 / max(lattice.nx, lattice.ny),
                                       np.sqrt(FRAME_PIXELS / (lattice.nx * lattice.ny)))) / 2)
    width, height = int(np.ceil(lattice.nx * scale)), int(np.ceil(lattice.ny * scale))
    lon = west + (np.arange(width) + 0.5) * (east - west) / width
    lat = north - (np.arange(height) + 0.5) * (north - south) / height
    bx, by = _bng_of_pixels(to_bng, lon, lat, lattice.cell / scale)
    fcol, frow = (bx - lattice.x0) / lattice.cell, (by - lattice.y0) / lattice.cell
    col, row = np.floor(fcol).astype(int), np.floor(frow).astype(int)
    ok = (col >= 0) & (col < lattice.nx) & (row >= 0) & (row < lattice.ny)
    return [[south, west], [north, east]], row, col, ok, frow, fcol


# Pixels about every KNOT_M metres (every 16th at most) are projected, the others interpolated between
# them: pyproj took 0.14 s for every pixel of a 400,000-pixel frame, 0.13 s of a 10 k run. Over a few
# hundred metres the projection is all but linear: within a thousandth of a pixel (3 mm on a London frame
# of 23 m pixels; tested).
KNOT_M = 400.0


def _bng_of_pixels(to_bng, lon: np.ndarray, lat: np.ndarray, pixel_m: float) -> tuple[np.ndarray, np.ndarray]:
    """BNG x and y of every pixel centre of the lon/lat frame (``lon`` its columns, ``lat`` its rows, pixels
    about ``pixel_m`` metres): projected on a coarse lattice of pixels (``KNOT_M``, 16 pixels at most),
    bilinear between them."""
    step = int(min(16, max(1, KNOT_M // pixel_m)))

    def knots(n):
        return np.unique(np.r_[np.arange(0, n, step), n - 1])
    kr, kc = knots(len(lat)), knots(len(lon))
    coarse = to_bng.transform(*np.meshgrid(lon[kc], lat[kr]))

    def place(k, n):      # each pixel's knot interval and its fraction along it
        i = np.clip(np.searchsorted(k, np.arange(n), side="right") - 1, 0, max(len(k) - 2, 0))
        j = np.minimum(i + 1, len(k) - 1)
        t = (np.arange(n) - k[i]) / np.maximum(k[j] - k[i], 1)
        return i, j, t
    (r0, r1, tr), (c0, c1, tc) = place(kr, len(lat)), place(kc, len(lon))
    out = []
    for v in coarse:
        top = v[np.ix_(r0, c0)] * (1 - tc) + v[np.ix_(r0, c1)] * tc
        bottom = v[np.ix_(r1, c0)] * (1 - tc) + v[np.ix_(r1, c1)] * tc
        out.append(top * (1 - tr)[:, None] + bottom * tr[:, None])
    return out[0], out[1]


def _rgba(values: np.ndarray, top: float, cmap: str) -> np.ndarray:
    """The colours of ``values`` (NaN transparent) on a square-root colour scale up to ``top``, as RGBA bytes."""
    norm = np.sqrt(np.clip(np.nan_to_num(values) / top, 0, 1)) if top > 0 else np.zeros(values.shape)
    rgba = palette.colours(cmap, norm)
    rgba[..., 3] = np.where(np.isfinite(values) & (norm > 0.03), 0.35 + 0.55 * norm, 0.0)
    return (rgba * 255).astype(np.uint8)      # truncated, as matplotlib's imsave did


def _png(image: np.ndarray, palette: np.ndarray | None = None) -> str:
    """A data-URI PNG of an RGBA image, or of an image of indices into ``palette`` (at most 256 RGBA rows)."""
    from PIL import Image
    if palette is None:
        picture, options = Image.fromarray(image, "RGBA"), {}
    else:
        picture = Image.fromarray(image.astype(np.uint8), "P")
        picture.putpalette(palette[:, :3].tobytes(), rawmode="RGB")
        options = {"transparency": palette[:, 3].tobytes()}
    buf = io.BytesIO()
    picture.save(buf, format="png", **options)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _cell_png(counts: np.ndarray, pixels: np.ndarray, top: float, cmap: str) -> str:
    """A data-URI PNG of a count per cell on the frame's ``pixels`` (a count of 0, and outside the grid:
    transparent), on ``_rgba``'s colour scale.

    With at most 256 colours the PNG has a palette: the same pixels as RGBA in a quarter of the bytes to
    compress; as RGBA, the map's 29 images took 0.4 s of its 1.5 s at 10 k incidents. More distinct counts
    than that (at 10 M incidents) still make few colours (at most 161 in a month), so counts of one colour
    share its entry: the 24 monthly images 1.9 MB as RGBA, 0.85 MB with a palette, the same pixels. (The
    map's own images come through ``_count_png``, in at most ``COUNT_CLASSES`` levels.)
    """
    levels, level = np.unique(counts, return_inverse=True)
    # One colour per distinct count and, last, one for the pixels outside the grid (``pixels`` -1).
    colours = _rgba(np.append(np.where(levels > 0, levels, np.nan), np.nan), top, cmap)
    index = np.append(level, len(levels))
    if len(colours) > 256:
        colours, same = np.unique(colours, axis=0, return_inverse=True)
        index = same.ravel()[index]
    index = index[pixels]
    return _png(colours[index]) if len(colours) > 256 else _png(index, colours)


# The shades of the images of counts per cell (each month, each evidence class). With a shade per distinct
# count, the 24 months of 30 M incidents on 50 m cells took 92-94 kB each, in 9 classes about a third of
# that (0.59 MB for the 24 instead of 1.69 MB); the two largest evidence images 170 and 158 kB -> 20 and 9.
COUNT_CLASSES = 9


def _classed(values: np.ndarray, top: float, k: int) -> np.ndarray:
    """``values`` above 0 replaced by the middle of their class, of ``k`` classes of equal width in the
    square root of ``values / top`` (``_rgba``'s scale): class j covers (j-1)/k to j/k."""
    if top <= 0:
        return values
    j = np.ceil(k * np.sqrt(np.clip(values / top, 0, 1)))
    return np.where(values > 0, top * ((np.maximum(j, 1) - 0.5) / k) ** 2, 0.0)


def _count_png(counts: np.ndarray, pixels: np.ndarray, top: float, cmap: str) -> str:
    """A count per cell (``_cell_png``) in ``COUNT_CLASSES`` classes of the square root up to ``top``."""
    return _cell_png(_classed(counts, top, COUNT_CLASSES), pixels, top, cmap)


def _count_legend(title: str, what: str, cmap: str, top: float) -> str:
    """The legend of a ``_count_png`` image: ``title`` (escaped HTML), ``what`` is counted, its stepped ramp."""
    return (f"<b>{title}</b> ({what} per cell, in {COUNT_CLASSES} equal steps of the square root)"
            + _ramp(cmap, "1", f"{int(top):,}", COUNT_CLASSES))


def _cell_pixels(result, frame) -> np.ndarray:
    """For each pixel of ``frame``, the analysed cell it shows (-1 outside)."""
    _, row, col, ok = frame[:4]
    lattice = result.grid.raster()
    cx = lattice.x0 + (col + 0.5) * lattice.cell
    cy = lattice.y0 + (row + 0.5) * lattice.cell
    cells = np.full(row.shape, -1, dtype=np.int64)
    cells[ok] = result.grid.assign(cx[ok], cy[ok])
    return cells


def _ramp(cmap: str, low: str, high: str, steps: int | None = None) -> str:
    """A legend colour ramp of a colour map (``palette``, square-root scale), labelled at both ends; with
    ``steps``, that many bands of each class's colour (``_classed``)."""
    if steps:
        stops = ",".join(f"{palette.to_hex(palette.colours(cmap, (j + 0.5) / steps))} {100 * j / steps:.1f}% "
                         f"{100 * (j + 1) / steps:.1f}%" for j in range(steps))
    else:
        stops = ",".join(palette.to_hex(palette.colours(cmap, np.sqrt(t))) for t in np.linspace(0.03, 1, 6))
    return (f'<div class="hs-ramp"><span>{esc(low)}</span><span class="hs-grad" style="background:'
            f'linear-gradient(90deg,{stops})"></span><span>{esc(high)}</span></div>')


def _kde_layer(result, frame) -> tuple[folium.FeatureGroup, str] | None:
    """The KDE surface as one PNG image (a data URI; surfaces belong in images, not vectors), sampled
    bilinearly so that it reads as a surface, not as blocks of cells; and its legend."""
    from scipy.ndimage import map_coordinates
    surface = result.kde_surface
    if surface is None or not np.isfinite(surface).any():
        return None
    bounds, row, col, ok, frow, fcol = frame
    values = np.full(row.shape, np.nan)
    smooth = map_coordinates(np.nan_to_num(surface), [frow[ok] - 0.5, fcol[ok] - 0.5], order=1, mode="nearest")
    values[ok] = np.where(np.isfinite(surface[row[ok], col[ok]]), smooth, np.nan)
    group = folium.FeatureGroup(name="Density · Kernel density surface", show=False)
    folium.raster_layers.ImageOverlay(_png(_rgba(values, np.nanmax(values), "YlOrRd")), bounds=bounds,
                                      interactive=False, zindex=2).add_to(group)
    legend = ("<b>Kernel density</b> (weighted incidents per km², square-root scale)"
              + _ramp("YlOrRd", "low", f"{np.nanmax(surface):,.0f}"))   # kde_grid's units already
    return group, legend


ROLE_WORDS = {"victim": "victims", "suspect": "suspects", "witness": "witnesses", "unknown": "role unknown"}


def _count_label(column: str) -> str:
    """``n_health`` -> "health"; ``role_victim_partner_record`` -> "partner record (victims)"."""
    if column.startswith("role_"):
        role, _, evidence = column[len("role_"):].partition("_")
        return f"{evidence.replace('_', ' ')} ({ROLE_WORDS.get(role, role)})"
    return column[2:].replace("_", " ")


# One colour map per evidence class, so that health never looks like recorded crime.
EVIDENCE_CMAPS = {"recorded_crime": "Blues", "health": "Greens", "partner_record": "Purples",
                  "community_report": "Oranges", "intelligence": "Greys", "police_activity": "YlOrBr"}


def _evidence_layers(result, frame, pixels) -> list[tuple[folium.FeatureGroup, str]]:
    """One image layer per evidence class (and per person role apart): records per cell, each on its own
    toggle, in its own colours, with its legend."""
    bounds = frame[0]
    layers = []
    for col in sorted(count_columns(result.cells)):
        counts = result.cells[col].to_numpy(float)
        if counts.sum() == 0:
            continue
        evidence = col[2:] if col.startswith("n_") else col[len("role_"):].partition("_")[2]
        cmap = EVIDENCE_CMAPS.get(evidence, "PuBu")
        group = folium.FeatureGroup(name=f"Evidence · Evidence: {esc(_count_label(col))}", show=False)
        folium.raster_layers.ImageOverlay(_count_png(counts, pixels, counts.max(), cmap), bounds=bounds,
                                          interactive=False, zindex=3).add_to(group)
        legend = _count_legend(f"Evidence: {esc(_count_label(col))}", "records", cmap, counts.max())
        layers.append((group, legend))
    return layers


def _time_layer(result, frame, pixels, m) -> tuple[folium.FeatureGroup, str] | None:
    """Incidents per cell for each month as images, switched by a slider (bounded size at any data volume)."""
    inc = risk(result.incidents, ["occurred_from", "cell"])
    if not len(inc):
        return None
    months = pd.period_range(result.cfg.start, result.cfg.end - pd.Timedelta(seconds=1), freq="M")
    if len(months) < 2:
        return None
    idx = month_index(inc["occurred_from"], result.cfg.start)
    # Counted by bincount (``np.add.at``: 0.42 s at 10 M incidents); whole numbers, the same floats.
    cube = np.bincount(inc["cell"].to_numpy() * len(months) + idx,
                       minlength=result.grid.n * len(months)).reshape(result.grid.n, len(months)).astype(float)
    top = cube.max()
    urls = [_count_png(cube[:, t], pixels, top, "OrRd") for t in range(len(months))]
    group = folium.FeatureGroup(name="Density · Incidents by month (slider)", show=False)
    overlay = folium.raster_layers.ImageOverlay(urls[-1], bounds=frame[0], interactive=False, zindex=4)
    overlay.add_to(group)
    group.add_to(m)
    m.add_child(MonthSlider(overlay, urls, [p.strftime("%B %Y") for p in months]))
    legend = _count_legend("Incidents by month", "risk records", "OrRd", top)
    return group, legend


def _areas_panel(result, public: bool) -> str:
    """A collapsible table of the per-area summary (areas.csv)."""
    areas = result.areas
    if not len(areas):
        return ""
    # Incidents follow the public rule; hot cells and regions are places the map shows, not counts of records.
    fmt = public_count if public else (lambda v: f"{v:,.0f}")
    rows = "".join(f"<tr><td>{esc(r.area)}</td><td>{esc(fmt(r.n))}</td><td>{int(r.hot_cells):,}</td>"
                   f"<td>{int(r.regions):,}</td><td>{int(r.cross_boundary_regions):,}</td></tr>"
                   for r in areas.itertuples())
    return (f'<div class="hs-panel hs-areas" id="hs-areas"><details><summary><b>Areas</b></summary>'
            f"<table><tr><th>Area</th><th>Incidents</th><th>Hot cells</th><th>Regions</th><th>Crossing</th></tr>"
            f"{rows}</table></details></div>")


def _clusters_layer(clusters: gpd.GeoDataFrame) -> folium.FeatureGroup:
    group = folium.FeatureGroup(name="Hotspots · Density clusters (p <= 0.05)", show=False)
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
    sub = cells[trending(cells["trend_class"])].copy() if "trend_class" in cells else cells.iloc[:0]
    # A layer with nothing to draw says so in its name: a box that toggles nothing reads as broken.
    group = folium.FeatureGroup(name="Hotspots · Emerging hot spot trends (monthly)" +
                                ("" if len(sub) else ": no cell has a trend"), show=False)
    if not len(sub):
        return group
    sub["trend_txt"] = _fmt(sub, "trend_z", 2)
    sub["incidents"] = sub["n"].map(lambda v: f"{int(v):,}")
    styles = {label: {"fillColor": _trend_colour(label), "fillOpacity": 0.8, "color": "#444444", "weight": 0.4,
                      "className": "hs-trend"} for label in sub["trend_class"].unique()}
    CellLayer(compact_cells(sub, ["cell_id", "trend_class", "trend_txt", "incidents"],
                            ["Cell", "Trend class", "Mann-Kendall z", "Incidents"], sub["trend_class"], styles)
              ).add_to(group)
    return group


def _scenario_layer(cells: gpd.GeoDataFrame, column: str, name: str, alias: str, css: str,
                    outline: str) -> folium.FeatureGroup | None:
    """The hot spots (class 2 and 3 of ``column``) of another weighting, beside the agreed cells layer;
    each names the sources whose own evidence makes it hot, and says when they are all anecdotal (drawn
    with a thick outline)."""
    if column not in cells:
        return None
    group = folium.FeatureGroup(name=name, show=False)
    hot = cells[cells[column] >= 2].copy()
    if len(hot):
        hot["confidence"] = hot[column].map(GI_LABELS)
        support = hot["support"].fillna("").astype(str) if "support" in hot else pd.Series("", index=hot.index)
        anec = hot["anecdotal_only"].to_numpy(bool) if "anecdotal_only" in hot else np.zeros(len(hot), bool)
        hot["support_txt"] = np.where(anec, support.str.replace(";", ", ") + " (supported only by anecdotal sources)",
                                      support.str.replace(";", ", "))
        key = hot[column].astype(int).astype(str) + np.where(anec, " anecdotal only", "")
        styles = {f"{k}{a}": {"fillColor": GI_COLOURS[k], "color": outline, "weight": 3.0 if a else 1.0,
                              "fillOpacity": 0.6, "className": css}
                  for k in (2, 3) for a in ("", " anecdotal only")}
        CellLayer(compact_cells(hot, ["cell_id", "confidence", "support_txt"],
                                ["Cell", alias, "Supported by (each source's own evidence)"], key, styles)
                  ).add_to(group)
    return group


def _factual_layer(cells: gpd.GeoDataFrame) -> folium.FeatureGroup | None:
    """Gi* hot spots when community reports and intelligence weigh nothing ("factual only")."""
    return _scenario_layer(cells, "gi_class_factual_only", "Hotspots · Gi* hot spots: factual sources only",
                           "Gi* (factual sources only)", "hs-factual", "#222222")


def _anecdotal_equal_layer(cells: gpd.GeoDataFrame) -> folium.FeatureGroup | None:
    """Gi* hot spots when community reports and intelligence weigh as much as recorded crime; a cell
    that only anecdotal sources support has a thick outline and says so."""
    return _scenario_layer(cells, "gi_class_anecdotal_equal",
                           "Hotspots · Gi* hot spots: anecdotal reports counting as recorded crime",
                           "Gi* (anecdotal counting as recorded crime)", "hs-anecdotal-equal", "#7f2704")


def _high_risk_layer(cells: gpd.GeoDataFrame) -> folium.FeatureGroup | None:
    """Gi* hot spots of the records their own partner calls high risk (thresholds.csv), beside all records."""
    return _scenario_layer(cells, "gi_class_high_risk", "Hotspots · Gi* hot spots: high risk as each partner defines it",
                           "Gi* (each partner's high risk only)", "hs-high-risk", "#54278f")


def _thresholds_html(result) -> str:
    """Each partner's own levels side by side (thresholds.csv), flagged where a level has no stated meaning."""
    table = getattr(result, "thresholds", None)
    if table is None or not len(table):
        return ""
    def cell(v, fmt="{}"):
        return "" if v is None or (not isinstance(v, str) and pd.isna(v)) else esc(fmt.format(v))
    rows = "".join(
        f"<tr><td>{esc(r.source_id)}</td><td>{esc(r.level)}</td><td>{cell(r.common_severity)}</td>"
        f"<td>{esc(r.meaning)}</td><td>{'yes' if r.high_risk else ''}</td><td>{r.records:,}</td>"
        f"<td>{r.per_month:.1f}</td><td>{r.busiest_month}</td><td>{cell(r.source_high_risk_share, '{:.0%}')}</td>"
        f"<td>{esc(r.flag)}</td></tr>" for r in table.itertuples())
    return ("<p><b>\u201cHigh risk\u201d as each partner defines it</b> (thresholds.csv: each partner's own levels, "
            "the common 1-4 severity each maps to, records per month over the source's months, and the share the "
            "partner itself calls high risk):</p><table class=\"hs-thresholds\"><tr><th>Source</th><th>Level as written"
            "</th><th>Common severity</th><th>Meaning (the partner's words)</th><th>High risk</th><th>Records</th>"
            "<th>Per month</th><th>Busiest month</th><th>Partner's high-risk share</th><th>Flag</th></tr>"
            f"{rows}</table>")


def _coverage_layer(coverage, study_area) -> folium.FeatureGroup | None:
    """Where each source's coverage stops: an edge of the data, not of the risk. One outline per
    distinct extent, clipped to near the study area, naming every source that shares it."""
    if coverage is None or not len(coverage):
        return None
    near = study_area.buffer(1000)
    groups: dict[bytes, list] = {}
    for rec in coverage.itertuples():
        geom = shapely.normalize(shapely.set_precision(rec.geometry, 1.0))
        groups.setdefault(shapely.to_wkb(geom), [geom, []])[1].append(str(rec.source_id))
    recs = [{"label": f"Edge of the data of {', '.join(sorted(ids))}: beyond it, no data (not low risk)",
             "geometry": shapely.intersection(geom.boundary, near)} for geom, ids in groups.values()]
    data = gpd.GeoDataFrame(pd.DataFrame(recs), geometry="geometry", crs="EPSG:27700")
    data = data[~data.geometry.is_empty]
    if not len(data):
        return None
    group = folium.FeatureGroup(name="Context · Coverage edges of sources", show=True)
    folium.GeoJson(_web(data, ["label"]), name="coverage",
                   style_function=lambda f: {"fill": False, "color": "#e6550d", "weight": 2.5, "dashArray": "2 6",
                                             "className": "hs-coverage"},
                   tooltip=folium.GeoJsonTooltip(fields=["label"], labels=False)).add_to(group)
    return group


def _no_data_layer(cells: gpd.GeoDataFrame) -> folium.FeatureGroup | None:
    """Cells no risk source covers (``status`` no_data): grey and hatched, never drawn as cold."""
    if "status" not in cells:
        return None
    none = cells[cells["status"] == "no_data"]
    if not len(none):
        return None
    group = folium.FeatureGroup(name="Context · No data (no risk source covers the cell)", show=True)
    merged = gpd.GeoDataFrame({"label": ["No data: no risk source covers this place (not low risk)"]},
                              geometry=[shapely.union_all(none.geometry.values)], crs=cells.crs)
    folium.GeoJson(_web(merged, ["label"]), name="no_data",
                   style_function=lambda f: {"fillColor": "#9e9e9e", "fillOpacity": 0.35, "color": "#777777",
                                             "weight": 0.5, "dashArray": "3 3", "className": "hs-nodata"},
                   tooltip=folium.GeoJsonTooltip(fields=["label"], labels=False)).add_to(group)
    return group


def _boundaries_layer(boundaries: gpd.GeoDataFrame, study_area) -> folium.FeatureGroup:
    group = folium.FeatureGroup(name="Context · Boundaries (names)", show=True)
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
            html=f'<div class="hs-label">{esc(short(row["area"], 120))}</div>', icon_size=(140, 16), icon_anchor=(70, 8)),
        ).add_to(group)
    return group


def _streets_layer(streets, map_name: str) -> folium.FeatureGroup | None:
    """Street names (police.uk "On or near ..." at its snap points) as labels from zoom 16 on: with no
    base map, what lets a meeting say which street a hotspot is on."""
    if streets is None or not len(streets):
        return None
    lon, lat = transformer(BNG, WGS84).transform(
        streets["x"].to_numpy(float), streets["y"].to_numpy(float))
    # The busiest quarter of the street labels from zoom 16, the rest from 17: a readable density.
    busy = streets["n"].to_numpy() >= np.quantile(streets["n"].to_numpy(), 0.75)
    items = [[round(float(la), 6), round(float(lo), 6), short(name, 60), LABEL_ZOOM if b else LABEL_ZOOM + 1]
             for la, lo, name, b in zip(lat, lon, streets["name"], busy)]
    group = folium.FeatureGroup(name=f"Context · Street names (from zoom {LABEL_ZOOM})", show=True)
    group.add_child(ZoomLabels(map_name, items, "hs-street-label"))
    return group


def _study_area_layer(area) -> folium.FeatureGroup:
    group = folium.FeatureGroup(name="Context · Study area", show=True)
    gdf = gpd.GeoDataFrame(geometry=[area], crs="EPSG:27700").to_crs(WGS84)
    folium.GeoJson(gdf, name="study_area", interactive=False,
                   style_function=lambda f: {"fillColor": "#ffffff", "fillOpacity": 0.35, "color": "#888888",
                                             "weight": 1, "dashArray": "2 3"}).add_to(group)
    return group


def _swatch(colour: str, label: str, border: str = "1px solid #777") -> str:
    return f'<div><span class="hs-swatch" style="background:{colour};border:{border}"></span>{esc(label)}</div>'


def _gi_legend() -> str:
    """What hot, cold and not significant mean, in words."""
    rows = "".join(_swatch(GI_COLOURS[k], v) for k, v in GI_LABELS.items())
    return ("<b>Gi* hot and cold spots</b>" + rows +
            '<div class="hs-note">Hot: more incidents in and around the cell than across the study area, beyond '
            "what chance would give, after the false discovery rate correction over all cells (so a cell with a "
            "large z can still be not significant). Cold: fewer. No colour: not significant; cells outside "
            "a source's coverage say nothing about that source.</div>")


def _regions_legend() -> str:
    return ("<b>Hotspot regions</b>" + _swatch("none", "Hotspot region (joined hot cells)", "2px solid #111")
            + _swatch("none", "Region crossing a boundary", f"2px dashed {CROSS_COLOUR}"))


def _trends_legend(cells) -> str:
    classes = cells.get("trend_class", pd.Series(dtype=str))
    present = sorted(set(classes[trending(classes)]))
    return ("<b>Emerging hot spot trends</b>" + "".join(_swatch(_trend_colour(t), t) for t in present)) \
        if present else ""


def _legends_html(legends: list[tuple[str, str, list]]) -> str:
    """The legend panel: one block per legend, each shown only with its layers (``LegendSwitch``)."""
    blocks = "".join(f'<div class="hs-legend-block" id="{eid}">{html}</div>' for eid, html, _ in legends if html)
    return f'<div class="hs-panel hs-legend" id="hs-legend">{blocks}</div>'


# The parameters a public map states: those of the layers it shows. The rest (clusters, buildings,
# KDE, trends) describe layers the public map does not have, and their texts carry exact counts.
PUBLIC_PARAMETERS = ("study_area", "cell_size_m", "cell_shape", "neighbour_distance_m", "fdr_alpha", "gi_inference")


PARAMETER_NAMES = {
    "study_area": "Study area", "cell_size_m": "Cell size (m)", "cell_shape": "Cell shape",
    "neighbour_distance_m": "Neighbourhood distance (m)", "fdr_alpha": "False discovery rate",
    "gi_inference": "Gi* inference", "bandwidth_m": "KDE bandwidth (m)", "kde_kernel": "KDE kernel",
    "cluster_simulations": "Cluster simulations", "space_time": "Space-time trends",
    "building_radii_m": "Building radii (m)", "building_time_profile": "Building time profiles",
    "coverage": "Each source's coverage (how decided)", "combine": "Combination of the sources' evidence",
    "building_null": "Key buildings: null model", "building_expected": "Key buildings: expected counts",
}


def _param_text(value) -> str:
    """A parameter's value in words: numbers as given (0.05 stays 0.05), tables as "key value; ..."."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, dict):
        return "; ".join(f"{k.replace('_', ' ')} {_param_text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_param_text(v) for v in value)
    return str(value)


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
    roles = ", ".join(r if r else "no person (incidents and places)" for r in w.get("risk_roles", []))
    shown = {k: v for k, v in p.items() if not public or k in PUBLIC_PARAMETERS}
    params = "".join(f'<tr data-key="{esc(k)}"><td>{esc(PARAMETER_NAMES.get(k, k.replace("_", " ")))} '
                     f"<code>{esc(k)}</code></td><td class=hs-value>{esc(_param_text(v['value']))}</td>"
                     f"<td>{esc(v['how'])}</td></tr>" for k, v in shown.items())
    attribution = "".join(f"<li>{esc(a)}</li>" for a in cfg.attribution)
    extra = result.extra or {}
    notes = []
    for sid, c in (extra.get("geocoding") or {}).items():
        asked = sum(c.values())
        located = asked - c.get("unmatched", 0)
        notes.append(f"{esc(sid)}: {count(located)} of {count(asked)} locations geocoded offline "
                     f"(postcode {count(c.get('postcode', 0))}, street {count(c.get('street', 0))}, "
                     f"place {count(c.get('place', 0))}); never given invented coordinates")
    pooled = str(cfg.analysis.get("combine", "sources")) == "pooled"
    for sid, f in (w.get("period_scale") or {}).items():
        notes.append(f"{esc(sid)} covers part of the study period only: its weights are scaled by {f:.2f}" if pooled
                     else f"{esc(sid)} covers part of the study period only: its hot spots are tested on its own "
                          f"months, not scaled; its records weigh {f:.2f} each in the weighted counts, the kernel "
                          f"density, the key buildings' profiles and the pooled comparison in the sensitivity table")
    link = extra.get("linkage") or {}
    if link:
        notes.append(f"{count(link.get('linked', 0))} records judged probable duplicates of another agency's record "
                     "(close in place and time, same kind of incident; never person to person) are counted once")
    # How many restricted records exist is itself for the partnership only.
    for reason, n in ({} if public else (extra.get("held_back") or {})).items():
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
as risk in these roles only: {esc(roles)}; each role is counted apart on the map, never summed with another.</p>{notes_html}
<p><b>Method</b>: Getis-Ord Gi* on one seamless grid across all boundaries, the cell included in its own
neighbourhood, binary weights; p-values two-sided, Benjamini-Hochberg false discovery rate across cells;
classes as ArcGIS's Gi_Bin. Locations from police.uk are anonymised snap points and dates are month-only.
Coordinates reprojected with pyproj (about 2 m from the OS transformation).</p>
<p><b>Parameters</b> (as recorded in manifest.json):</p>
<table class="hs-params"><tr><th>Parameter</th><th>Value</th><th>How it was chosen</th></tr>{params}</table>
{_sensitivity_html(result) if not public else ""}
{_thresholds_html(result) if not public else ""}
{_building_types_html(result) if not public else ""}
<p><b>This map's audience</b>: {esc(_audience(result, public))}</p>
<p><b>Legal basis</b></p><ul>{legal}</ul>
<p><b>Attribution</b></p><ul>{attribution}</ul>
</details></div>"""


def _time_note(result) -> str:
    """Why the building profiles have no hours, if they have none (set by the profile stage)."""
    return result.buildings.attrs.get("time_note", "") if result.buildings is not None else ""


def _stands_out(p: float, ratio: float) -> str:
    """Whether a building type's two-sided test says it stands out: "higher" or "lower" risk, or "no"."""
    return ("higher" if ratio > 1 else "lower") if p <= Q_LEVEL else "no"


def _building_types_html(result) -> str:
    types = result.building_types
    if types is None or not len(types):
        return ""
    rows = "".join(f"<tr><td>{esc(r.type)}</td><td>{r.buildings}</td><td>{r.radius_m:g} m</td><td>{r.n_near:,}</td>"
                   f"<td>{r.rate_ratio:.2f} ({r.rr_low:.2f}-{r.rr_high:.2f})</td><td>{r.p_value:.2g}</td>"
                   f"<td>{_stands_out(r.p_value, r.rate_ratio)}</td></tr>"
                   for r in types.itertuples())
    note = _time_note(result)
    return ("<p><b>Risk by building type</b> (incidents within the radius of any building of the type, per km2, "
            "against elsewhere in the study area; in the manner of Risk Terrain Modeling):</p>"
            "<table><tr><th>Type</th><th>Buildings</th><th>Radius</th><th>Incidents near</th>"
            "<th>Rate ratio (95 % Poisson CI)</th><th>p (comparable places)</th>"
            f"<th>Stands out (p &le; {Q_LEVEL:g})</th></tr>"
            f"{rows}</table><p>{esc(INTERVAL_NOTE)}</p>"
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
    rows = "".join(f"<tr><td>{esc(r.scenario)}</td><td>{r.anecdotal_weight:g}</td><td>{r.intelligence_weight:g}</td>"
                   f"<td>{r.hot_cells}</td>"
                   f"<td>{r.regions}</td><td>{r.jaccard_with_agreed:.2f}</td></tr>" for r in sens.itertuples())
    dep = result.sensitivity_regions
    dep = dep[dep["depends_on_anecdotal"]]["region_id"].tolist() if dep is not None and len(dep) else []
    note = (f"Regions that depend on anecdotal sources alone: {esc(', '.join(dep))}." if dep
            else "No region depends on anecdotal sources alone.")
    return (f"<p><b>Effect of the weights</b> (community reports and intelligence against recorded crime):</p>"
            f"<table><tr><th>Scenario</th><th>Community reports' weight</th><th>Intelligence's weight</th>"
            f"<th>Hot cells</th><th>Regions</th>"
            f"<th>Overlap with agreed (Jaccard)</th></tr>{rows}</table><p>{note}</p>")


CSS = """<style>
.hs-panel{position:absolute;z-index:1000;background:rgba(255,255,255,.94);padding:6px 9px;border-radius:4px;
 box-shadow:0 1px 5px rgba(0,0,0,.4);font:12px/1.35 sans-serif;}
.hs-legend{bottom:48px;left:10px;max-width:330px;max-height:55%;overflow:auto}
.hs-legend-block+.hs-legend-block{margin-top:6px;border-top:1px solid #ddd;padding-top:4px}
.hs-note{font-size:11px;color:#444;max-width:300px;margin-top:2px}
.hs-areas{top:10px;left:230px;max-height:40%;overflow:auto}.hs-areas table{border-collapse:collapse;font-size:11px}
.hs-areas td,.hs-areas th{border:1px solid #ccc;padding:1px 4px}
.hs-act{position:relative;max-width:300px;max-height:60vh;overflow:auto}.hs-act ol{margin:2px 0 4px;padding-left:20px}
.hs-act-group{font-weight:bold;margin-top:4px;color:#333}.hs-act-entry{cursor:pointer;margin-bottom:3px}
.hs-act-entry:hover{background:#fff3c4}.hs-act-detail{font-size:11px;color:#444}
.hs-time{margin-bottom:8px}.hs-month{vertical-align:middle;width:150px}
.hs-methods{top:10px;left:54px;max-width:46%;max-height:80%;overflow:auto;z-index:1001}
.hs-methods table{border-collapse:collapse;font-size:11px}.hs-methods td,.hs-methods th{border:1px solid #ccc;padding:1px 4px}
.hs-swatch{display:inline-block;width:14px;height:11px;margin-right:5px;vertical-align:middle;border:1px solid #777}
.hs-label{font:bold 11px sans-serif;color:#333;text-align:center;text-shadow:0 0 3px #fff,0 0 3px #fff;white-space:nowrap}
.hs-label-icon{background:none;border:none}
.hs-building-label,.hs-street-label{transform:translate(-50%,0);white-space:nowrap;font:11px sans-serif;
 text-shadow:0 0 3px #fff,0 0 3px #fff,0 0 2px #fff;pointer-events:none}
.hs-building-label{color:#222;font-weight:bold}.hs-street-label{color:#555;font-style:italic}
.leaflet-container{background:#f2f2ef}
.hs-ramp{display:flex;align-items:center;gap:4px;margin-top:3px}.hs-grad{display:inline-block;width:90px;height:10px}
</style>"""


# A tile URL: http(s) or protocol-relative, Leaflet's placeholders only, nothing that could be markup.
TILE_URL = re.compile(config.TILE_URL)      # checked with the config; again here for callers who build a Config


def build_map(result, tier: str = "partner") -> str:
    """The self-contained HTML of the ``tier`` map for a pipeline ``Result`` (or its public view)."""
    public = tier == "public"
    area_wgs = gpd.GeoSeries([result.study_area], crs="EPSG:27700").to_crs(WGS84)
    minx, miny, maxx, maxy = area_wgs.total_bounds
    tiles = result.cfg.outputs.get("tiles")
    if tiles and not TILE_URL.fullmatch(str(tiles)):
        raise UserError(f"[outputs] tiles should be a tile URL such as https://tiles.example.org/{{z}}/{{x}}/{{y}}.png "
                        "(placeholders {s}, {z}, {x}, {y}, {r} only).", file=str(result.cfg.path))
    m = folium.Map(location=[(miny + maxy) / 2, (minx + maxx) / 2], zoom_start=14, tiles=None,
                   maxZoom=19, control_scale=not public)
    if tiles:
        folium.TileLayer(tiles=str(tiles), attr=esc(result.cfg.outputs.get("tiles_attribution", "Base map")),
                         name="Base map", max_zoom=19).add_to(m)
    m.fit_bounds([[miny, minx], [maxy, maxx]])
    legends: list[tuple[str, str, list]] = []     # (element id, legend HTML, the layers it belongs to)

    def add(layer, legend_id: str | None = None, legend: str = ""):
        if layer is None:
            return None
        layer.add_to(m)
        if legend_id:
            legends.append((legend_id, legend, [layer]))
        return layer

    add(_study_area_layer(result.study_area))
    add(_boundaries_layer(result.boundaries, result.study_area))
    add(_streets_layer(result.streets, m.get_name()))
    add(_no_data_layer(result.cells), "hs-legend-nodata",
        _swatch("rgba(158,158,158,.45)", "No data: no risk source covers the cell (not low risk)", "1px dashed #777"))
    coverage = _coverage_layer(public_coverage(result.coverage) if public else result.coverage, result.study_area)
    add(coverage, "hs-legend-coverage", _swatch("none", "Edge of a source's coverage: beyond it, that source "
                                                        "has no data (not low risk)", "2px dotted #e6550d"))
    @functools.cache
    def pixels_of():
        """The lon/lat frame of the images and the cell each of its pixels shows, made once when needed."""
        frame = _lonlat_frame(result.grid.raster())
        return frame, _cell_pixels(result, frame)

    if not public:
        frame, pixels = pixels_of()
        for made in (_kde_layer(result, frame),):
            if made is not None:
                add(made[0], "hs-legend-kde", made[1])
        for k, (group, legend) in enumerate(_evidence_layers(result, frame, pixels)):
            add(group, f"hs-legend-evidence-{k}", legend)
        timed = _time_layer(result, frame, pixels, m)
        if timed is not None:
            legends.append(("hs-time", "", [timed[0]]))                # the slider shows with its layer
            legends.append(("hs-legend-time", timed[1], [timed[0]]))
    cells, cells_note = _cells_layer(result.cells, public, pixels_of)
    add(cells)
    factual = None if public else add(_factual_layer(result.cells))
    anecdotal = None if public else add(_anecdotal_equal_layer(result.cells))
    high = None if public else add(_high_risk_layer(result.cells))
    legends.append(("hs-legend-gi", _gi_legend() + cells_note,
                    [g for g in (cells, factual, anecdotal, high) if g is not None]))
    if not public:
        add(_trends_layer(result.cells), "hs-legend-trends", _trends_legend(result.cells))
        add(_clusters_layer(result.clusters), "hs-legend-clusters",
            _swatch("rgba(27,158,119,.3)", "Density cluster (Monte Carlo p <= 0.05)", "2px solid #1b9e77"))
    add(_regions_layer(result.regions, public), "hs-legend-regions", _regions_legend())
    if not public and result.buildings is not None and len(result.buildings):
        # The public tier shows no building profiles: each names a place and a count.
        groups = buildings_layers(result.buildings, _time_note(result), m.get_name())
        for group in groups:
            group.add_to(m)
        by_cell = result.buildings["cell_id"] if "cell_id" in result.buildings else pd.Series([], dtype=str)
        legends.append(("hs-buildings-legend",
                        buildings_legend_html(bool(by_cell.fillna("").astype(str).ne("").any())), groups))
    folium.LayerControl(collapsed=True).add_to(m)
    WhereToAct(m.get_name(), where_to_act(result, public)).add_to(m)
    LegendSwitch(m.get_name(), [(eid, layers) for eid, _, layers in legends]).add_to(m)
    root = m.get_root()
    root.header.add_child(HtmlBlock(CSS))
    root.html.add_child(HtmlBlock(_legends_html(legends) + _methods(result, public) + _areas_panel(result, public)))
    root.title = esc(f"{result.cfg.name}: hotspots ({tier})")
    return make_self_contained(render_once(root))
