"""Attribute: which boundary areas each cell and hotspot spans.

``read_boundaries`` loads every [[boundaries]] layer (any vector format, any
CRS) into one GeoDataFrame in EPSG:27700 with columns ``layer``, ``area``,
``geometry``. ``cell_areas`` gives each analysed cell the names of the areas it
overlaps (``areas``, ';'-separated, all layers). ``hotspot_regions`` groups
contiguous hot cells (``gi_class >= 2``, cells sharing an edge or corner) into regions with
columns ``region_id``, ``cells``, ``n``, ``weighted``, ``peak_z``, ``areas``,
``cross_boundary`` and ``n_<evidence>``. ``area_summary`` is ``areas.csv``.
"""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from hotspots.config import Config
from hotspots.coverage import require_areas
from hotspots.crs import BNG
from hotspots.detect.counts import count_columns
from hotspots.errors import UserError
from hotspots.frames import first_rows, group_medians, row_groups
from hotspots.grid import Grid
from hotspots.sensitive import names_places

MIN_OVERLAP = 0.01  # a cell "touches" an area when at least 1 % of the cell lies in it


def read_boundaries(cfg: Config) -> gpd.GeoDataFrame:
    """All boundary layers of the config, reprojected to British National Grid."""
    parts = []
    for b in cfg.boundaries:
        path = cfg.resolve(b.path)
        if not path.exists():
            raise UserError("the boundary file does not exist.", file=str(path))
        try:
            if not b.layer:
                # A GeoPackage of several layers (wards and districts, or a run's own hotspots.gpkg): its first
                # layer was read, said only by pyogrio's raw warning. Which one is the analyst's to say.
                import pyogrio
                names = [str(n) for n in pyogrio.list_layers(path)[:, 0]]
                if len(names) > 1:
                    raise UserError(f"boundary layer '{b.id}': the file has {len(names)} layers "
                                    f"({', '.join(repr(n) for n in names[:8])}{', ...' if len(names) > 8 else ''}).",
                                    file=str(path), hint=f"Name the one to use with layer = \"{names[0]}\" (or "
                                                         f"another) in the [[boundaries]] entry '{b.id}'.")
            gdf = gpd.read_file(path, layer=b.layer) if b.layer else gpd.read_file(path)
        except UserError:
            raise
        except Exception as exc:  # pyogrio raises several types for unreadable files
            raise UserError(f"the boundary file cannot be read ({exc}).", file=str(path)) from None
        if b.name_field not in gdf.columns:
            raise UserError(f"boundary layer '{b.id}' has no name field '{b.name_field}' "
                            f"(fields: {', '.join(c for c in gdf.columns if c != 'geometry')}).",
                            file=str(path), column=b.name_field)
        if gdf.crs is None:
            raise UserError(f"boundary layer '{b.id}' has no coordinate reference system (.prj missing?).",
                            file=str(path))
        # An area without a name cannot be reported or picked by area_names, and a null among
        # the names stopped the run later with an internal error where the names are sorted.
        names = gdf[b.name_field].astype(str).str.strip()
        unnamed = np.flatnonzero((gdf[b.name_field].isna() | (names == "")).to_numpy())
        if len(unnamed):
            verb = "has" if len(unnamed) == 1 else "have"
            raise UserError(f"boundary layer '{b.id}': {len(unnamed):,} of its {len(gdf):,} features {verb} no "
                            f"name in field '{b.name_field}' (feature {unnamed[0] + 1} is the first). "
                            f"Give every area a name, or drop the unnamed features from the layer.",
                            file=str(path), column=b.name_field)
        # An area with no shape holds no cell and no incident: areas.csv would report it as none, which
        # is not what it is.
        shapeless = np.flatnonzero((gdf.geometry.isna() | gdf.geometry.is_empty).to_numpy())
        if len(shapeless):
            verb = "has" if len(shapeless) == 1 else "have"
            raise UserError(f"boundary layer '{b.id}': {len(shapeless):,} of its {len(gdf):,} features {verb} no "
                            f"geometry (feature {shapeless[0] + 1}, '{names.iloc[shapeless[0]]}', is the first). "
                            "Give every area its shape, or drop the features without one from the layer.",
                            file=str(path))
        gdf = gdf.to_crs(BNG)
        gdf["geometry"] = shapely.make_valid(gdf.geometry.values)
        require_areas(gdf.geometry, f"boundary layer '{b.id}'", path, names)
        parts.append(gpd.GeoDataFrame({"layer": b.id, "area": names,
                                       "geometry": gdf.geometry.values}, crs=BNG))
    if not parts:
        return gpd.GeoDataFrame({"layer": [], "area": []}, geometry=[], crs=BNG)
    return pd.concat(parts, ignore_index=True)


def study_area_from_layer(boundaries: gpd.GeoDataFrame, layer: str, names: list[str] | None,
                          cfg_path: str) -> shapely.Geometry:
    """The union of a boundary layer's areas (or only those named)."""
    sel = boundaries[boundaries["layer"] == layer]
    if names:
        missing = sorted(set(names) - set(sel["area"]))
        if missing:
            import difflib
            near = [m for name in missing for m in difflib.get_close_matches(name, list(sel["area"]), n=1)]
            hint = f"did you mean {', '.join(near)}?" if near else f"it has e.g. {', '.join(sorted(sel['area'])[:8])}"
            raise UserError(f"[study] area_names: {', '.join(missing)} not found in boundary layer '{layer}' "
                            f"({hint}).", file=cfg_path)
        sel = sel[sel["area"].isin(names)]
    return shapely.union_all(sel.geometry.values)


def overlaps(geoms: np.ndarray, boundaries: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (geometry, boundary area) pair that intersect: their indices and the share of the geometry
    inside the area."""
    if not len(boundaries) or not len(geoms):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    areas = boundaries.geometry.values
    tree = shapely.STRtree(areas)
    gi, bi = tree.query(geoms, predicate="intersects")
    share = np.ones(len(gi))
    if len(gi):
        # A geometry wholly inside an area (most cells of a grid) holds all of it: no clipping. The
        # prepared area tells (4x faster than the tree's "within", which prepares the cells instead).
        shapely.prepare(areas)
        cut = ~shapely.contains(areas[bi], geoms[gi])
        share[cut] = shapely.area(shapely.intersection(geoms[gi[cut]], areas[bi[cut]])) / \
            np.maximum(shapely.area(geoms[gi[cut]]), 1e-9)
    return gi, bi, share


def _touching(overlap: tuple, n: int, boundaries: gpd.GeoDataFrame, min_share: float) -> list[list[str]]:
    """For each of ``n`` geometries, the (layer, area) keys of the boundary areas holding >= min_share of
    it; ``overlap`` is ``overlaps(geometries, boundaries)``."""
    out: list[list[str]] = [[] for _ in range(n)]
    layers = boundaries["layer"].to_numpy()
    names = boundaries["area"].to_numpy()
    for g, b, s in zip(*overlap):
        if s >= min_share:
            out[g].append((layers[b], names[b]))
    return [sorted(set(v)) for v in out]


def _names(pairs: list[tuple[str, str]]) -> str:
    return ";".join(dict.fromkeys(name for _, name in pairs))


def _crosses(pairs: list[tuple[str, str]]) -> bool:
    layers = [layer for layer, _ in pairs]
    return any(layers.count(layer) >= 2 for layer in set(layers))


def cell_areas(boxes: np.ndarray, boundaries: gpd.GeoDataFrame) -> tuple[list[str], list[list], tuple]:
    """``areas`` text per cell, the (layer, area) pairs behind it, and the ``overlaps`` they come from."""
    overlap = overlaps(boxes, boundaries)
    pairs = _touching(overlap, len(boxes), boundaries, MIN_OVERLAP)
    return [_names(p) for p in pairs], pairs, overlap


def cells_outside_coverage(boxes: np.ndarray, coverage: gpd.GeoDataFrame) -> list[str]:
    """Per cell, the sources whose declared coverage does not reach it (';'-separated).

    A hot spot that stops where a source's coverage stops may be an edge of
    the data, not of the risk: the map draws these edges.
    """
    out = [[] for _ in range(len(boxes))]
    for rec in coverage.itertuples():
        shapely.prepare(rec.geometry)
        reached = shapely.intersects(rec.geometry, boxes)
        for i in np.nonzero(~reached)[0]:
            out[i].append(rec.source_id)
    return [";".join(v) for v in out]


def polygon_areas(geoms: np.ndarray, boundaries: gpd.GeoDataFrame) -> tuple[list[str], list[bool]]:
    """For polygons such as clusters: the areas each overlaps and whether it crosses a boundary."""
    geoms = np.asarray(geoms)
    pairs = _touching(overlaps(geoms, boundaries), len(geoms), boundaries, MIN_OVERLAP)
    return [_names(p) for p in pairs], [_crosses(p) for p in pairs]


def hotspot_regions(cells: gpd.GeoDataFrame, grid: Grid, cell_pairs: list[list]) -> tuple[gpd.GeoDataFrame, np.ndarray]:
    """Contiguous cells with ``gi_class >= 2`` as regions; returns (regions, region_id per cell)."""
    from scipy.sparse.csgraph import connected_components
    hot = cells["gi_class"].to_numpy() >= 2
    # Contiguous = sharing an edge or a corner (queen for squares, the six for hexagons).
    touch = grid.neighbours(grid.touch_distance)
    hot_idx = np.nonzero(hot)[0]
    _, comp = connected_components(touch[hot_idx][:, hot_idx], directed=False)
    lab = np.zeros(len(cells), dtype=np.int64)
    lab[hot_idx] = comp + 1
    count = int(comp.max() + 1) if len(comp) else 0
    # Number regions by descending weighted count so R1 is the strongest.
    order = []
    for k in range(1, count + 1):
        members = np.nonzero(lab == k)[0]
        order.append((-cells["weighted"].to_numpy()[members].sum(), k))
    rename = {k: f"R{i + 1}" for i, (_, k) in enumerate(sorted(order))}
    region_of = np.array([rename.get(v, "") for v in lab], dtype=object)
    ev_cols = count_columns(cells)   # per evidence class, and per person role apart
    recs = []
    for k in sorted(rename, key=lambda k: int(rename[k][1:])):
        members = np.nonzero(lab == k)[0]
        sub = cells.iloc[members]
        pairs = sorted({p for m in members for p in cell_pairs[m]})
        rec = {"region_id": rename[k], "cells": len(members), "n": int(sub["n"].sum()),
               "weighted": float(sub["weighted"].sum()), "peak_z": float(sub["gi_z"].max()),
               "areas": _names(pairs), "cross_boundary": _crosses(pairs)}
        rec.update({c: int(sub[c].sum()) for c in ev_cols})
        rec["geometry"] = shapely.union_all(sub.geometry.values)
        recs.append(rec)
    cols_out = ["region_id", "cells", "n", "weighted", "peak_z", "areas", "cross_boundary", *ev_cols, "geometry"]
    regions = gpd.GeoDataFrame(pd.DataFrame(recs, columns=cols_out), geometry="geometry", crs=BNG)
    return regions, region_of


def located_counts(incidents: pd.DataFrame, overlap: tuple, boundaries: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per boundary area (rows of ``boundaries``), the risk incidents located in it and their summed weight.

    ``incidents`` carry ``x``, ``y``, ``weight`` and ``cell``; ``overlap`` is ``overlaps(cells, boundaries)``.
    A cell wholly inside an area gives it all its incidents; only the incidents of cells an area covers in
    part are tested against its polygon (a few per cent of them), so this costs little beyond the cells."""
    n = np.zeros(len(boundaries))
    wsum = np.zeros(len(boundaries))
    ci, bi, share = (np.asarray(a) for a in overlap)
    if not len(ci) or not len(incidents):
        return n, wsum
    w = incidents["weight"].to_numpy(float)
    risk = w > 0
    cell = incidents["cell"].to_numpy(np.int64)[risk]
    x, y, w = incidents["x"].to_numpy(float)[risk], incidents["y"].to_numpy(float)[risk], w[risk]
    n_cells = int(max(cell.max(initial=-1), ci.max(initial=-1))) + 1
    per_n = np.bincount(cell, minlength=n_cells).astype(float)
    per_w = np.bincount(cell, weights=w, minlength=n_cells)
    whole = share >= 1.0 - 1e-9
    np.add.at(n, bi[whole], per_n[ci[whole]])
    np.add.at(wsum, bi[whole], per_w[ci[whole]])
    part_c, part_b = ci[~whole], bi[~whole]
    if len(part_c):
        # Each incident of a partly covered cell against each area covering part of its cell.
        from hotspots.detect.inference import run_indices
        order = np.argsort(cell, kind="stable")
        starts = np.searchsorted(cell[order], np.arange(n_cells))
        k = per_n.astype(np.int64)[part_c]
        rec = order[run_indices(starts[part_c], k)]
        area = np.repeat(part_b, k)
        geoms = boundaries.geometry.values
        shapely.prepare(geoms)
        inside = shapely.intersects_xy(geoms[area], x[rec], y[rec])
        np.add.at(n, area[inside], 1.0)
        np.add.at(wsum, area[inside], w[rec[inside]])
    return n, wsum


def area_summary(cells: gpd.GeoDataFrame, overlap: tuple, regions: gpd.GeoDataFrame,
                 boundaries: gpd.GeoDataFrame, located: tuple | None = None) -> pd.DataFrame:
    """``areas.csv``: per boundary area, the incidents and hot cells it holds and the regions touching it.

    ``n`` and ``weighted`` are the risk incidents located in the area (``located``:
    ``located_counts``), each counted once per layer. Without ``located`` they are each cell's shared
    out by the share of its area in each area (``overlap``: ``overlaps(cells, boundaries)``), which the
    statistics audit found 32 % off for a borough (Tower Hamlets 584.7 against 444 located).
    A cell on a boundary counts in each area it touches for ``hot_cells`` and ``regions``.
    """
    recs = {}
    keys = list(zip(boundaries["layer"], boundaries["area"]))
    for key in keys:
        recs[key] = {"layer": key[0], "area": key[1], "n": 0.0, "weighted": 0.0, "hot_cells": 0,
                     "regions": set(), "cross_boundary_regions": set()}
    ci, bi, share = overlap
    if len(ci):
        n = cells["n"].to_numpy(float)
        wsum = cells["weighted"].to_numpy(float)
        hot = cells["gi_class"].to_numpy() >= 2
        reg = cells["region_id"].to_numpy()
        cross = dict(zip(regions["region_id"], regions["cross_boundary"]))
        for c, b, s in zip(ci, bi, share):
            if s < MIN_OVERLAP:
                continue
            r = recs[keys[b]]
            r["n"] += n[c] * s
            r["weighted"] += wsum[c] * s
            r["hot_cells"] += int(hot[c])
            if reg[c]:
                r["regions"].add(reg[c])
                if cross.get(reg[c]):
                    r["cross_boundary_regions"].add(reg[c])
    if located is not None:
        for r in recs.values():
            r["n"], r["weighted"] = 0.0, 0.0
        for key, n_in, w_in in zip(keys, *located):      # an area in several rows: its parts summed
            recs[key]["n"] += float(n_in)
            recs[key]["weighted"] += float(w_in)
    rows = []
    for r in recs.values():
        rows.append({**r, "n": round(r["n"], 1), "weighted": round(r["weighted"], 2),
                     "regions": len(r["regions"]), "cross_boundary_regions": len(r["cross_boundary_regions"])})
    cols = ["layer", "area", "n", "weighted", "hot_cells", "regions", "cross_boundary_regions"]
    out = pd.DataFrame(rows, columns=cols)
    # Areas the study area does not reach are left out.
    touched = out["n"].gt(0) | out["hot_cells"].gt(0) | out["regions"].gt(0)
    return out[touched].sort_values(["layer", "weighted"], ascending=[True, False]).reset_index(drop=True)


def street_labels(points: pd.DataFrame, area, spacing: float = 400.0) -> pd.DataFrame:
    """Street-name labels from named snap points (``name``, ``x``, ``y``, and ``n``, the records at each,
    when ``hotspots.load.geocode.collapse_streets`` has counted them; ``Loaded.streets``).

    One label per street and ``spacing``-metre square that holds its points, at their median: a
    long road is named along its length, a short street once. Only labels inside ``area``.
    Returns ``name``, ``x``, ``y``, ``n`` (snap points behind the label), most points first.
    """
    cols = ["name", "x", "y", "n"]
    if points is None or not len(points):
        return pd.DataFrame(columns=cols)
    # police.uk capitalises after an apostrophe and within numerals ("Alderman'S Walk", "William Iv
    # Street", "(lu Station)"): written as a street sign would.
    # Each distinct name once (a name recurs at every record of a snap point).
    codes, uniq = pd.factorize(points["name"].astype(str))
    fixed = (pd.Series(uniq).str.replace(r"'S\b", "'s", regex=True)
             .str.replace(r"\b(Ii|Iii|Iv|Vi|Vii|Viii|Ix)\b", lambda m: m.group(0).upper(), regex=True)
             .str.replace(r"\((lu|nr|dlr|lo)\b", lambda m: "(" + m.group(1).upper(), regex=True)
             .str.replace(r"\((london)\)", "(London)", regex=True))
    fcode, fnames = pd.factorize(fixed)
    x, y = points["x"].to_numpy(float), points["y"].to_numpy(float)
    counts = points["n"].to_numpy(np.int64) if "n" in points else np.ones(len(points), np.int64)
    # Groups numbered in order of first appearance (as a groupby without sorting), each point weighted
    # by its records: the same medians and counts as the points one row a record.
    group = row_groups([fcode[codes], np.floor(x / spacing), np.floor(y / spacing)])
    first = first_rows(group)
    k = len(first)
    out = pd.DataFrame({"name": pd.Series(np.asarray(fnames, dtype=object)[fcode[codes[first]]], dtype="str"),
                        "x": group_medians(group, x, counts, k), "y": group_medians(group, y, counts, k),
                        "n": np.bincount(group, weights=counts, minlength=k).astype(np.int64)})
    shapely.prepare(area)
    out = out[shapely.intersects_xy(area, out["x"].to_numpy(), out["y"].to_numpy())]
    return out.sort_values(["n", "name"], ascending=[False, True], kind="stable").reset_index(drop=True)


def name_regions(regions: gpd.GeoDataFrame, streets: pd.DataFrame, buildings: pd.DataFrame | None = None,
                 places: int = 2) -> gpd.GeoDataFrame:
    """Give each region a ``rank`` (1 = strongest, the order of R1, R2, ...) and a ``name`` in words:
    up to ``places`` key buildings (best ranked first) and streets (most snap points first) inside
    it, then its areas: "Leicester Square, Charing Cross Road: Westminster / Camden". Buildings of a
    sensitive layer name no region unless the layer's display is "exact"."""
    out = regions.copy()
    out["rank"] = out["region_id"].str[1:].astype(int) if len(out) else pd.Series(dtype=int)
    names = []
    for reg in out.itertuples():
        geom = reg.geometry
        shapely.prepare(geom)
        found: list[str] = []
        if buildings is not None and len(buildings):
            # A sensitive site shown only by its cell never names a place (hotspots.sensitive).
            inside = buildings[shapely.intersects_xy(geom, buildings["x"].to_numpy(float),
                                                     buildings["y"].to_numpy(float)) & names_places(buildings)]
            if "rank" in inside:
                inside = inside.sort_values("rank", na_position="last", kind="stable")
            found += [str(n) for n in inside["name"]]
        if streets is not None and len(streets):
            on = streets[shapely.intersects_xy(geom, streets["x"].to_numpy(float), streets["y"].to_numpy(float))]
            found += [str(n) for n in on["name"]]
        chosen = list(dict.fromkeys(found))[:places]
        areas = str(reg.areas).replace(";", " / ")
        names.append(f"{', '.join(chosen)}: {areas}" if chosen else areas)
    out["name"] = names
    return out
