"""The pipeline, top to bottom: load, weight, detect, attribute, publish.

``analyse(cfg)`` runs the stages and returns a ``Result`` holding every layer;
``publish(result, out)`` writes the outputs. The CLI only parses arguments
and calls these two; each stage lives in its own module.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from hotspots import attribute, grid as gridmod, weight
from hotspots.config import Config
from hotspots.detect.counts import hotspot_count
from hotspots.detect.gistar import hotspot_gistar, neighbour_matrix
from hotspots.errors import UserError
from hotspots.load import finish, load_sources
from hotspots.load.ledger import Ledger
from hotspots.progress import Progress

BNG = "EPSG:27700"


@dataclass
class Result:
    """Everything one run produced. Layers are GeoDataFrames in EPSG:27700."""
    cfg: Config
    incidents: pd.DataFrame          # common schema + ``cell``
    ledger: Ledger
    accounting: pd.DataFrame         # one row per input file
    study_area: shapely.Geometry
    grid: gridmod.Grid
    cells: gpd.GeoDataFrame
    regions: gpd.GeoDataFrame
    boundaries: gpd.GeoDataFrame
    areas: pd.DataFrame
    parameters: dict
    weights: dict
    started_at: str
    started: float
    extra: dict = field(default_factory=dict)


def _param(value, how: str) -> dict:
    return {"value": value, "how": how}


def choose_study_area(cfg: Config, incidents: pd.DataFrame, boundaries: gpd.GeoDataFrame,
                      ledger: Ledger) -> tuple[shapely.Geometry, float, dict, pd.DataFrame]:
    """The study area, the cell size and how each was chosen; strays become rejects."""
    params = {}
    x, y = incidents["x"].to_numpy(float), incidents["y"].to_numpy(float)
    if cfg.area:
        area = attribute.study_area_from_layer(boundaries, cfg.area, cfg.area_names, str(cfg.path))
        params["study_area"] = _param(cfg.area, "union of boundary layer '%s'%s" % (
            cfg.area, f" areas {', '.join(cfg.area_names)}" if cfg.area_names else ""))
    else:
        keep, rule = gridmod.drop_strays(x, y)
        _reject(incidents, ~keep, "outside study area (stray point far from the rest)", ledger)
        incidents = incidents[keep]
        x, y = x[keep], y[keep]
        area = shapely.box(x.min(), y.min(), x.max(), y.max())
        params["study_area"] = _param("derived", "derived from the data: " + rule +
                                      "; the area is the cells holding incidents grown by two cells, holes filled, "
                                      "keeping patches with at least 1 % of the incidents")
    if "cell_size_m" in cfg.analysis:
        cell = float(cfg.analysis["cell_size_m"])
        params["cell_size_m"] = _param(cell, "set in the config")
    else:
        cell, how = gridmod.choose_cell_size(area)
        params["cell_size_m"] = _param(cell, how)
    if not cfg.area:
        area, keep = gridmod.derived_area(x, y, cell)
        _reject(incidents, ~keep, "outside study area (isolated from the main body of the data)", ledger)
        incidents = incidents[keep]
    return area, cell, params, incidents


def _reject(incidents: pd.DataFrame, mask: np.ndarray, reason: str, ledger: Ledger) -> None:
    gone = incidents[np.asarray(mask)]
    for (sid, path), grp in gone.groupby(["source_id", "_file"], sort=False):
        ledger.reject(sid, path, grp["_row"].to_numpy(), reason, "coordinates")


def analyse(cfg: Config, progress: Progress | None = None) -> Result:
    """Run load, weight, detect and attribute on ``cfg``; see ``Result``."""
    progress = progress or Progress(enabled=False)
    started = time.perf_counter()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")

    with progress.step("load sources"):
        loaded = load_sources(cfg)
        boundaries = attribute.read_boundaries(cfg)
    incidents, ledger = loaded.incidents, loaded.ledger
    if not len(incidents):
        raise UserError("no incident was loaded from any source for the study period "
                        f"{cfg.start_label} to {cfg.end_label}: nothing to analyse.", file=str(cfg.path),
                        hint="Run 'hotspots validate' on the config to see each source's rejects.")

    with progress.step("study area and grid"):
        area, cell, params, incidents = choose_study_area(cfg, incidents, boundaries, ledger)
        grid = gridmod.build_grid(area, cell)
        x, y = incidents["x"].to_numpy(), incidents["y"].to_numpy()
        cell_no = grid.assign(x, y)
        inside = gridmod.in_area(grid, area, x, y) & (cell_no >= 0)
        _reject(incidents, ~inside, "outside study area", ledger)
        incidents = incidents[inside]
        if not len(incidents):
            raise UserError("no incident lies inside the study area.", file=str(cfg.path))
        accounting = ledger.accounting(incidents)
        incidents = finish(incidents)
        incidents["cell"] = cell_no[inside]

    with progress.step("weight"):
        table = weight.weight_table(cfg)
        incidents = weight.apply_weights(incidents, table)

    with progress.step("detect hotspots"):
        dist = float(cfg.analysis.get("neighbour_distance_m", cell * np.sqrt(2)))
        params["neighbour_distance_m"] = _param(dist, "set in the config" if "neighbour_distance_m" in cfg.analysis
                                                else "queen ring: cell size x sqrt(2), the 8 surrounding cells")
        alpha = float(cfg.analysis.get("fdr_alpha", 0.05))
        params["fdr_alpha"] = _param(alpha, "set in the config" if "fdr_alpha" in cfg.analysis else "default 0.05")
        inference = str(cfg.analysis.get("gi_inference", "permutation"))
        if inference not in ("permutation", "normal"):
            raise UserError(f"[analysis] gi_inference = '{inference}' should be 'permutation' or 'normal'.",
                            file=str(cfg.path))
        seed = int(cfg.analysis.get("seed", 0))
        params["gi_inference"] = _param(inference, "randomisation null, 200,000 draws per neighbourhood size, "
                                        f"seed {seed} (the normal curve is anti-conservative on sparse counts)"
                                        if inference == "permutation" else "normal approximation, as ArcGIS")
        counts = hotspot_count(incidents, grid.n)
        rows, cols = grid.rows_cols
        w = neighbour_matrix(cols, rows, cell, dist)
        stats = hotspot_gistar(counts["weighted"].to_numpy(), w, alpha, inference=inference, seed=seed)
        cells = counts.assign(**stats)
        cells.insert(0, "cell_id", [f"C{r}_{c}" for r, c in zip(rows, cols)])
        cells = gpd.GeoDataFrame(cells, geometry=grid.boxes(), crs=BNG)

    with progress.step("attribute to boundaries"):
        areas_txt, pairs = attribute.cell_areas(cells.geometry.values, boundaries)
        cells["areas"] = areas_txt
        regions, region_of = attribute.hotspot_regions(cells, grid, pairs)
        cells["region_id"] = region_of
        areas = attribute.area_summary(cells, pairs, regions, boundaries)

    return Result(cfg=cfg, incidents=incidents, ledger=ledger, accounting=accounting, study_area=area,
                  grid=grid, cells=cells, regions=regions, boundaries=boundaries, areas=areas,
                  parameters=params, weights=table, started_at=started_at, started=started)


def publish(result: Result, out: Path) -> dict[str, Path]:
    """Write every output of ``result`` into ``out``; returns the paths by name."""
    from hotspots.publish.exports import write_csv, write_layers
    from hotspots.publish.manifest import write_manifest
    from hotspots.publish.map import build_map

    out.mkdir(parents=True, exist_ok=True)
    cells = result.cells.copy()
    cells["gi_class"] = cells["gi_class"].astype(int)
    layers = {"cells": cells, "regions": result.regions,
              "boundaries": result.boundaries,
              "study_area": gpd.GeoDataFrame({"name": [result.cfg.name]}, geometry=[result.study_area], crs=BNG)}
    written = [(p, "partner") for p in write_layers(layers, out, web=("cells", "regions"))]
    written.append((write_csv(result.areas, out / "areas.csv"), "partner"))
    written.append((write_csv(result.ledger.rejects, out / "rejects.csv"), "analyst"))
    paths = {}
    for tier in result.cfg.tiers:
        name = "map.html" if tier == "partner" else f"map-{tier}.html"
        path = out / name
        path.write_text(build_map(result, tier), encoding="utf-8")
        written.append((path, tier))
        paths[f"map_{tier}"] = path
    inputs = result.accounting.to_dict(orient="records")
    summary = {
        "incidents": int(len(result.incidents)),
        "cells": int(result.grid.n),
        "hot_cells": int((result.cells["gi_class"] >= 2).sum()),
        "regions": int(len(result.regions)),
        "cross_boundary_regions": int(result.regions["cross_boundary"].sum()) if len(result.regions) else 0,
    }
    extra = {"study": {"name": result.cfg.name, "start": result.cfg.start_label, "end": result.cfg.end_label,
                       "config": str(result.cfg.path)},
             "sources": [{"source_id": s.id, "schema": s.schema, "evidence": s.evidence, "legal_basis": s.legal_basis,
                          "sharing_agreement": s.sharing_agreement, "handling": s.handling} for s in result.cfg.sources],
             "summary": summary, **result.extra}
    paths["manifest"] = write_manifest(out / "manifest.json", inputs=inputs, parameters=result.parameters,
                                       weights=result.weights, outputs=written, started_at=result.started_at,
                                       started=result.started, extra=extra)
    paths["out"] = out
    return paths
