"""The pipeline, top to bottom: load, weight, detect, attribute, publish.

``analyse(cfg)`` runs the stages and returns a ``Result`` holding every layer;
``publish(result, out)`` writes the outputs. The CLI only parses arguments
and calls these two; each stage lives in its own module.
"""
from __future__ import annotations

import dataclasses
import functools
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely

from hotspots import attribute, background, governance, grid as gridmod, weight
from hotspots import sensitive, thresholds
from hotspots.config import Config
from hotspots.crs import BNG
from hotspots.detect.clusters import collapse_points, find_clusters
from hotspots.detect.counts import hotspot_count
from hotspots import coverage as covermod
from hotspots.detect import combine as combmod
from hotspots.detect.inference import DEFAULT_DRAWS, merged_places, reusing_tables
from hotspots.detect.kde import choose_bandwidth, kde_grid
from hotspots.detect.spacetime import emerging_classes, emerging_classes_by_source, month_index, space_time_cube
from hotspots.errors import UserError
from hotspots.frames import release_freed_memory, take_by_column, text_codes
from hotspots.load import IDENTIFIERS, LoadOptions, finish, load_sources
from hotspots.load.buildings import load_buildings
from hotspots.load.ledger import Ledger
from hotspots.profile import (category_counts, comparable_places, grouped_risk, options_from_config,
                              profile_buildings, type_profile)
from hotspots.progress import Progress
from hotspots.sensitivity import evidence_records, high_risk_scenario, weight_sensitivity
from hotspots.tiers import (PUBLIC, check_public, disclose, factual_mask, near_sensitive, public_accounting,
                            public_coverage)


@dataclass
class Result:
    """Everything one run produced. Layers are GeoDataFrames in EPSG:27700."""
    cfg: Config
    incidents: pd.DataFrame          # common schema less ``IDENTIFIERS``, + ``cell``
    ledger: Ledger
    accounting: pd.DataFrame         # one row per input file
    study_area: shapely.Geometry
    grid: gridmod.Grid
    cells: gpd.GeoDataFrame
    regions: gpd.GeoDataFrame
    clusters: gpd.GeoDataFrame
    boundaries: gpd.GeoDataFrame
    areas: pd.DataFrame
    parameters: dict
    weights: dict
    started_at: str
    started: float
    neighbours: object = None        # the sparse Gi* neighbour matrix over the analysed cells
    kde_surface: np.ndarray | None = None   # (ny, nx) KDE, NaN outside the study area
    coverage: gpd.GeoDataFrame | None = None        # source_id, geometry: where a source declares its data stops
    sensitivity: pd.DataFrame | None = None         # sensitivity.csv
    sensitivity_regions: pd.DataFrame | None = None
    buildings: pd.DataFrame | None = None           # buildings.csv: one row per key building
    building_types: pd.DataFrame | None = None      # building_types.csv
    building_accounting: pd.DataFrame | None = None  # rows per building file
    streets: pd.DataFrame | None = None             # street-name labels (attribute.street_labels)
    thresholds: pd.DataFrame | None = None          # thresholds.csv: each partner's levels (hotspots.thresholds)
    sensitive_sites: np.ndarray | None = None       # true x, y of sensitive buildings (never written out)
    extra: dict = field(default_factory=dict)


def _param(value, how: str) -> dict:
    return {"value": value, "how": how}


def choose_study_area(cfg: Config, incidents: pd.DataFrame, boundaries: gpd.GeoDataFrame,
                      ledger: Ledger) -> tuple[shapely.Geometry, float, dict, np.ndarray]:
    """The study area, the cell size, how each was chosen, and which incidents stay (a boolean
    mask: the table is filtered once, by the caller); strays become rejects."""
    params = {}
    x, y = incidents["x"].to_numpy(float), incidents["y"].to_numpy(float)
    stays = np.ones(len(incidents), dtype=bool)
    if cfg.area:
        area = attribute.study_area_from_layer(boundaries, cfg.area, cfg.area_names, str(cfg.path))
        params["study_area"] = _param(cfg.area, "union of boundary layer '%s'%s" % (
            cfg.area, f" areas {', '.join(cfg.area_names)}" if cfg.area_names else ""))
    else:
        keep, rule = gridmod.drop_strays(x, y)
        _reject(incidents, ~keep, "outside study area (stray point far from the rest)", ledger)
        stays &= keep
        x, y = x[keep], y[keep]
        area = shapely.box(x.min(), y.min(), x.max(), y.max())
        params["study_area"] = _param("derived", "derived from the data: " + rule +
                                      "; the area is the cells holding incidents, closed by two cells (gaps joined, no empty rim) "
                                      "and holes filled, "
                                      "keeping patches with at least 1 % of the incidents")
    if "cell_size_m" in cfg.analysis:
        cell = float(cfg.analysis["cell_size_m"])
        params["cell_size_m"] = _param(cell, "set in the config")
    else:
        cell, how = gridmod.choose_cell_size(area)
        params["cell_size_m"] = _param(cell, how)
    if not cfg.area:
        area, keep = gridmod.derived_area(x, y, cell)
        isolated = stays.copy()
        isolated[stays] = ~keep
        _reject(incidents, isolated, "outside study area (isolated from the main body of the data)", ledger)
        stays &= ~isolated
        _check_strays(cfg, incidents, stays)
    return area, cell, params, stays


def _rows_per_source(incidents: pd.DataFrame, mask: np.ndarray) -> tuple[dict[str, int], dict[str, int]]:
    """Each source's loaded rows and those of them where ``mask`` holds, counted on the source codes (not
    a string a row: 30 M of them)."""
    codes, names = text_codes(incidents["source_id"])
    return (dict(zip(names, np.bincount(codes, minlength=len(names)).tolist())),
            dict(zip(names, np.bincount(codes[mask], minlength=len(names)).tolist())))


def _check_strays(cfg: Config, incidents: pd.DataFrame, stays: np.ndarray) -> None:
    """Fail a source whose rows the derived study area left out as strays beyond its ``max_reject_share``, as
    ``load.check_losses`` fails one losing them to one reject reason: a partner's whole extract placed in
    another city (another coordinate system, another area's file) was dropped with exit 0."""
    from hotspots.load import MAX_REJECT_SHARE, lost_too_many
    read, lost = _rows_per_source(incidents, ~stays)
    for src in cfg.sources:
        n, gone = read.get(src.id, 0), lost.get(src.id, 0)
        if not lost_too_many(gone, n, float(src.options.get("max_reject_share", MAX_REJECT_SHARE))):
            continue
        raise UserError(f"source '{src.id}' lost {gone:,} of its {n:,} loaded rows ({gone / n:.0%}) as "
                        "strays far from the rest of the data, outside the study area derived from it: its "
                        "places may be in another coordinate system, or the extract of another area.",
                        file=str(cfg.path),
                        hint=f"Check the location in its mapping (columns, crs) and the file, declare [study] area, "
                             f"or accept the loss with max_reject_share = {min(1.0, round(gone / n + 0.05, 2))} "
                             "in the source's [[sources]] entry.")


def _check_outside(cfg: Config, incidents: pd.DataFrame, inside: np.ndarray) -> None:
    """Fail a source none of whose loaded rows lies inside the declared study area (``[study] area``): area_names
    that leave out the only borough a partner covers, or its places in another coordinate system, and the run
    went on without it, exit 0. Some rows outside are expected (a force's data over the edge); all is not.
    ``max_reject_share = 1.0`` on the source accepts it."""
    from hotspots.load import MAX_REJECT_SHARE
    read, kept = _rows_per_source(incidents, inside)
    for src in cfg.sources:
        n = read.get(src.id, 0)
        if not n or kept.get(src.id, 0) or float(src.options.get("max_reject_share", MAX_REJECT_SHARE)) >= 1:
            continue
        raise UserError(f"source '{src.id}': none of its {n:,} loaded rows lies inside the study area "
                        f"([study] area = '{cfg.area}'{', area_names' if cfg.area_names else ''}).",
                        file=str(cfg.path),
                        hint="Check [study] area_names and the source's places (its mapping's columns and crs), or "
                             "accept the loss with max_reject_share = 1.0 in the source's [[sources]] entry.")


def _reject(incidents: pd.DataFrame, mask: np.ndarray, reason: str, ledger: Ledger) -> None:
    gone = incidents[np.asarray(mask)]
    for (sid, path), grp in gone.groupby(["source_id", "_file"], sort=False):
        ledger.reject(sid, path, grp["_row"].to_numpy(), reason, "coordinates")


def analyse(cfg: Config, progress: Progress | None = None, agency: str | None = None,
            load: LoadOptions | None = None, pending: list | None = None) -> Result:
    """Run load, weight, detect, profile and attribute on ``cfg``; see ``Result``.

    With ``agency`` (a source id) the run is that agency's own: its records
    that may not be shared are used too, and the outputs say so. ``load``
    (``hotspots.load.LoadOptions``): reuse of normalised incidents, worker
    processes or a Dask cluster for the load stage; the result is the same.
    ``pending``: a list the run adds to what is still being written on the
    second core (the files' cache entries, at low priority: a function that
    waits for them), for the caller to call once it has published; without,
    ``analyse`` waits for it before it returns.
    """
    progress = progress or Progress(enabled=False)
    if agency is None and "public" in cfg.tiers:
        check_public(cfg)       # before any file is read, not after the whole analysis
    started = time.perf_counter()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")

    with progress.step("load sources"):
        # Few-valued text as categories from each file on (hotspots.load.compact): the table stays small.
        # The files' cache entries are written on the second core as the analysis starts (waited for at its end).
        loaded = load_sources(cfg, options=dataclasses.replace(load or LoadOptions(), compact=True,
                                                               wait_for_cache=False))
        release_freed_memory()      # the files' tables, as they were put together
        boundaries = attribute.read_boundaries(cfg)
    ledger = loaded.ledger
    # Handling codes: records that may not leave their agency are held back (filtered, with the reason).
    incidents, held = governance.split_shared(loaded.incidents, cfg, ledger, agency=agency, consume=True)
    loaded.incidents = None     # from here the table is held once, by ``incidents``
    release_freed_memory()      # the columns taken from it
    if not len(incidents):
        raise UserError("no incident was loaded from any source for the study period "
                        f"{cfg.start_label} to {cfg.end_label}: nothing to analyse.", file=str(cfg.path),
                        hint="Run 'hotspots validate' on the config to see each source's rejects.")

    with progress.step("study area and grid"):
        area, cell, params, stays = choose_study_area(cfg, incidents, boundaries, ledger)
        shape = str(cfg.analysis.get("cell_shape", "square"))   # enumerated values: config.config_rules()
        params["cell_shape"] = _param(shape, "set in the config" if "cell_shape" in cfg.analysis else "default")
        grid = gridmod.build_grid(area, cell, shape)
        x, y = incidents["x"].to_numpy(), incidents["y"].to_numpy()
        cell_no = np.full(len(incidents), -1, dtype=np.int64)
        cell_no[stays] = grid.assign(x[stays], y[stays])
        inside = np.zeros(len(incidents), dtype=bool)
        inside[stays] = gridmod.in_area(grid, area, x[stays], y[stays]) & (cell_no[stays] >= 0)
        _reject(incidents, stays & ~inside, "outside study area", ledger)
        if cfg.area:
            _check_outside(cfg, incidents, inside)
        # One filter of the whole table for the three reasons above, not one copy each, column by column.
        incidents = take_by_column(incidents, inside)
        if not len(incidents):
            raise UserError("no incident lies inside the study area.", file=str(cfg.path))
        accounting = ledger.accounting(incidents)
        short = Ledger.unaccounted(accounting)
        if len(short):
            f = short.iloc[0]
            raise UserError(f"the rows of this file do not add up: {f.rows_read:,} read, {f.rows_loaded:,} loaded, "
                            f"{f.rows_filtered:,} filtered and {f.rows_rejected:,} rejected; nothing is published "
                            "with rows unaccounted for.", file=str(f.path),
                            hint="Run again with --fresh (a damaged .hotspots-cache entry?).")
        incidents = finish(incidents, ledger)
        # The per-record identifiers have done their work (duplicates, linkage) and no stage reads
        # them (hotspots.load.IDENTIFIERS): empty here, as the compact load holds neither ids nor
        # source references a row (72 of the table's 140 bytes a row at 10 M incidents).
        for col in IDENTIFIERS:
            del incidents[col]
        incidents["cell"] = cell_no[inside]
        release_freed_memory()
        # Which boundary areas each cell lies in needs only the grid and the boundaries: the second core
        # finds them while this one weighs and tests (0.5 s of a small partnership's run).
        areas_job = background.start(attribute.cell_areas, grid.boxes(), boundaries, what="cells' boundary areas")

    with progress.step("weight"):
        table = weight.weight_table(cfg)
        incidents = weight.apply_weights(incidents, table)
    clusters_job = _start_clusters(cfg, incidents, area)

    with progress.step("detect hotspots"):
        dist = float(cfg.analysis.get("neighbour_distance_m", grid.touch_distance))
        params["neighbour_distance_m"] = _param(dist, "set in the config" if "neighbour_distance_m" in cfg.analysis
                                                else "the ring of touching cells: the 8 around a square (cell x sqrt 2)"
                                                if grid.shape == "square" else
                                                "the ring of touching cells: the 6 around a hexagon (cell spacing)")
        alpha = float(cfg.analysis.get("fdr_alpha", 0.05))
        params["fdr_alpha"] = _param(alpha, "set in the config" if "fdr_alpha" in cfg.analysis else "default 0.05")
        inference = str(cfg.analysis.get("gi_inference", "permutation"))
        seed = int(cfg.analysis.get("seed", 0))
        draws = int(cfg.analysis.get("permutations", DEFAULT_DRAWS))
        params["gi_inference"] = _param(inference, f"conditional permutation as esda (the cell held out, its "
                                        f"neighbours drawn without replacement from the other cells), {draws:,} "
                                        f"draws per neighbourhood size, seed {seed}"
                                        if inference == "permutation" else "normal approximation, as ArcGIS")
        combine = str(cfg.analysis.get("combine", "sources"))
        coverage = covermod.source_coverage(cfg, boundaries, incidents, grid, area)
        params["coverage"] = _param(covermod.describe(coverage), "per source: declared areas, a polygon file, or "
                                    "derived from its records (hotspots/coverage.py); a cell is covered when more "
                                    "than half of it lies inside")
        # Which evidence class each risk source's records carry: read once, for every weighting below.
        risk_evidence = weight.risk(incidents, ["source_id", "evidence"])
        sweights = source_weights(risk_evidence, table)
        params["combine"] = _param(combine, (
            "each risk source's Gi* within its own coverage, combined per cell by weighted Stouffer with weights "
            + ", ".join(f"{k} {v:g}" for k, v in sweights.items()) + " (source x evidence weight), then BH"
            if combine == "sources" else "one Gi* of the pooled weighted counts over the covered cells (as ArcGIS)")
            + ("; set in the config" if "combine" in cfg.analysis else "; default"))
        cells, w, evidence = hotspot_grid(incidents, grid, dist, alpha, inference, seed, coverage, area, combine,
                                          sweights, draws, return_evidence=True)

    with progress.step("density and trends"):
        kde_surface = _kde(cfg, incidents, grid, cells, params)
        trends_job = _start_trends(cfg, incidents, grid, cells, w, alpha, seed, params,
                                   (coverage, area, sweights) if combine == "sources" else None)

    with progress.step("attribute to boundaries"):
        cells, regions, areas = attribute_cells(cells, grid, boundaries, areas_job.result(), incidents)
        evidence_of = evidence_classes(risk_evidence)
        regions = combmod.region_support(regions, cells, evidence_of)
        cells["outside_coverage_of"] = attribute.cells_outside_coverage(cells.geometry.values, coverage)

    with progress.step("profile key buildings"):
        buildings, types_job, building_acc = _profile(cfg, incidents, area, regions, ledger, params,
                                                      cells["status"].to_numpy() == "analysed", grid, coverage)
        streets = attribute.street_labels(loaded.streets, area)
        regions = attribute.name_regions(regions, streets, buildings)
        # Sensitive sites shown only by their cell lose name and place from here on (hotspots.sensitive).
        sites = (buildings.loc[sensitive.sensitive_mask(buildings), ["x", "y"]].to_numpy(float)
                 if buildings is not None else None)
        buildings = sensitive.partner_buildings(buildings, grid)

    with progress.step("weighting sensitivity"):
        def classify(t: dict) -> np.ndarray:
            if combine == "sources":
                return combmod.combine(evidence, source_weights(risk_evidence, t), grid.n, alpha)["gi_class"]
            return hotspot_grid(weight.apply_weights(incidents, t), grid, dist, alpha, inference, seed, coverage,
                                area, "pooled", None, draws)[0]["gi_class"]
        other = "pooled" if combine == "sources" else "sources"
        other_cls = hotspot_grid(incidents, grid, dist, alpha, inference, seed, coverage, area, other, sweights,
                                 draws)[0]["gi_class"].to_numpy(float)
        sens, sens_regions, classes = weight_sensitivity(table, grid.neighbours(grid.touch_distance), cells,
                                                         classify, evidence_records(incidents, grid.n),
                                                         {other: other_cls})
        cells["gi_class_factual_only"] = classes["factual_only"]
        cells["gi_class_anecdotal_equal"] = classes["anecdotal_equal"]
        # Whose own evidence makes a cell hot does not depend on the weights: a cell whose only support
        # is anecdotal is labelled so on any weighting's map.
        cells["anecdotal_only"] = combmod.anecdotal_only(cells.get("support", pd.Series("", index=cells.index)),
                                                         evidence_of)
        # Each partner's own "high risk": the levels side by side, and hotspots of those records only.
        threshold_table = thresholds.threshold_table(cfg, incidents)
        row, high_cls = high_risk_scenario(
            incidents, thresholds.high_risk_mask(cfg, incidents), grid.neighbours(grid.touch_distance), cells,
            detect=lambda wts: hotspot_grid(incidents.assign(weight=wts), grid, dist, alpha, inference, seed, coverage,
                                            area, combine, sweights, draws)[0]["gi_class"].to_numpy(float),
            table=table)
        sens = pd.concat([sens, pd.DataFrame([row])], ignore_index=True)
        cells["gi_class_high_risk"] = high_cls

    with progress.step("trends"):
        _import_publishing_while(trends_job[0])
        _finish_trends(trends_job, cells)

    with progress.step("clusters"):
        _import_publishing_while(clusters_job)
        clusters = finish_clusters(clusters_job, params)
        clusters["areas"], clusters["cross_boundary"] = attribute.polygon_areas(clusters.geometry.values, boundaries)

    with progress.step("building types"):
        # Collected last: the stages above ran while the second core drew them (at 10 M incidents the
        # wait for them right after the buildings' profiles was 4-5 s).
        _import_publishing_while(types_job)
        building_types = types_job.result() if types_job is not None else None
    if pending is None:
        loaded.cache_written()
    else:
        pending.append(loaded.cache_written)

    return Result(cfg=cfg, incidents=incidents, ledger=ledger, accounting=accounting, study_area=area,
                  grid=grid, cells=cells, regions=regions, clusters=clusters, boundaries=boundaries, areas=areas,
                  parameters=params, weights=table, started_at=started_at, started=started,
                  neighbours=w, kde_surface=kde_surface, coverage=coverage,
                  sensitivity=sens, sensitivity_regions=sens_regions, buildings=buildings,
                  building_types=building_types, building_accounting=building_acc, streets=streets,
                  thresholds=threshold_table, sensitive_sites=sites,
                  extra={"geocoding": loaded.geocoding, "linkage": loaded.linkage,
                         "held_back": governance.restriction(held, cfg).value_counts().to_dict() if len(held) else {},
                         "roles": governance.role_counts(incidents).to_dict(orient="records"),
                         "corrections": {k: int(v) for k, v in ledger.notes["note"].value_counts().items()},
                         "agency": agency or ""})


def hotspot_grid(incidents: pd.DataFrame, grid: gridmod.Grid, dist: float, alpha: float, inference: str,
                 seed: int, coverage: gpd.GeoDataFrame | None = None, area=None, combine: str = "sources",
                 source_weights: dict[str, float] | None = None, draws: int = DEFAULT_DRAWS,
                 return_evidence: bool = False):
    """Counts and Gi* on ``grid`` for incidents carrying their ``cell``; returns (cells, neighbour matrix).

    ``combine="sources"`` (the default): each risk source tested within its ``coverage``,
    combined by ``source_weights`` (``hotspots.detect.combine``); ``"pooled"``: one Gi* of
    the weighted counts over the covered cells. Without ``coverage`` every source covers the
    whole ``area`` (or grid). With ``return_evidence`` also returns the per-source evidence.
    """
    counts = hotspot_count(incidents, grid.n)
    rows, cols = grid.rows_cols
    w = grid.neighbours(dist)
    sids = covermod.risk_sources(incidents)
    shares = covermod.cell_shares(grid, area, coverage, sids)
    cell, wt = incidents["cell"].to_numpy(np.int64), incidents["weight"].to_numpy(float)
    # A partly covered cell is compared by its density, count / covered share: only the source's
    # records inside its coverage count there, on the footprint of the share (audit finding: 24 of
    # a City cell's 27 City police records lay outside the City, a density 9 times too high).
    # Summed a chunk of rows at a time: the same to round-off; one chunk, the same bits.
    values = {sid: np.zeros(grid.n) for sid in sids}
    for chunk in covermod.risk_rows_inside(incidents, sids, shares, coverage):
        for sid, mine in zip(sids, chunk):
            values[sid] += np.bincount(cell[mine], weights=wt[mine], minlength=grid.n)
    evidence = None
    if combine == "pooled":
        stats = combmod.pooled(counts["weighted"].to_numpy(), covermod.covered(shares).any(axis=1), w, alpha,
                               inference, draws, seed)
        stats.insert(1, "covered_by", combmod.joined(sids, list(covermod.covered(shares).T), grid.n))
    else:
        evidence = combmod.source_table(values, dict(zip(sids, shares.T)), w, inference, draws, seed, covermod.MOST)
        weights = {sid: (source_weights or {}).get(sid, 1.0) for sid in sids}
        stats = combmod.combine(evidence, weights, grid.n, alpha)
    cells = pd.concat([counts, stats.set_index(counts.index)], axis=1)
    prefix = "C" if grid.shape == "square" else "H"
    cells.insert(0, "cell_id", [f"{prefix}{r}_{c}" for r, c in zip(rows, cols)])
    out = gpd.GeoDataFrame(cells, geometry=grid.boxes(), crs=BNG)
    return (out, w, evidence) if return_evidence else (out, w)


def evidence_classes(incidents: pd.DataFrame) -> dict[str, str]:
    """Each source's evidence class: the commonest among its records."""
    ev = incidents.groupby("source_id", sort=False, observed=True)["evidence"].agg(lambda v: v.mode().iat[0])
    return {str(sid): str(e) for sid, e in ev.items()}


def source_weights(incidents: pd.DataFrame, table: dict) -> dict[str, float]:
    """The partnership's weight of each source's evidence: source weight x its evidence class's weight
    (grades weigh records within a source; the period scale takes no part)."""
    return {sid: float(table["sources"].get(sid, 1.0)) * float(table["evidence"].get(e, 0.0))
            for sid, e in evidence_classes(incidents).items()}


def attribute_cells(cells: gpd.GeoDataFrame, grid: gridmod.Grid, boundaries: gpd.GeoDataFrame,
                    found: tuple | None = None, incidents: pd.DataFrame | None = None):
    """Areas per cell, hotspot regions and the per-area summary; returns (cells, regions, areas).
    ``found``: ``attribute.cell_areas`` of the cells, when already computed; ``incidents`` (``x``, ``y``,
    ``weight``, ``cell`` on this grid): the summary counts the incidents located in each area."""
    areas_txt, pairs, overlap = found if found is not None else attribute.cell_areas(cells.geometry.values, boundaries)
    cells["areas"] = areas_txt
    regions, region_of = attribute.hotspot_regions(cells, grid, pairs)
    cells["region_id"] = region_of
    located = attribute.located_counts(incidents, overlap, boundaries) if incidents is not None else None
    areas = attribute.area_summary(cells, overlap, regions, boundaries, located)
    if located is not None:
        # The risk incidents of each layer in none of its areas (the study area reaches past the boundaries
        # read): said in the manifest, or areas.csv's totals fall short with no word (a statistics audit: 122
        # of the example's records, 100-112 m from the nearest area).
        w = incidents["weight"].to_numpy(float)
        n_all, w_all = int((w > 0).sum()), float(w[w > 0].sum())
        layer = boundaries["layer"].to_numpy()
        areas.attrs["outside_every_area"] = {
            str(lay): {"n": int(round(n_all - located[0][layer == lay].sum())),
                       "weighted": round(w_all - float(located[1][layer == lay].sum()), 2)}
            for lay in pd.unique(layer)}
    return cells, regions, areas


def public_view(result: Result) -> Result:
    """The public tier's layers: the incidents on cells of at least 400 m, less the partner records
    near sensitive sites; hotspots backed by at least one factual source's own evidence; the mix of
    evidence and roles, and ``support``, only for published hotspots; ``covered_by`` naming declared
    coverage only; no clusters (their outlines follow points), no KDE surface. Numbers are
    suppressed and rounded when shown (``tiers``)."""
    check_public(result.cfg)
    # At least a 400 m square's area: a hexagon 400 m across its flats holds 13 % less (a disclosure audit),
    # one of the same area is 400 x sqrt(2 / sqrt 3) = 429.8 m across.
    least = PUBLIC["min_cell_m"] * (np.sqrt(2 / np.sqrt(3)) if result.grid.shape == "hexagon" else 1.0)
    cell = max(least, result.grid.cell)
    grid = gridmod.build_grid(result.study_area, cell, result.grid.shape)
    # What the counts and Gi* read of each incident, not a copy of every column.
    inc = result.incidents[[c for c in ("x", "y", "weight", "source_id", "evidence", "role", "category")
                            if c in result.incidents]]
    # Around a sensitive site, partner records are its profile: the public tier leaves them out.
    near = near_sensitive(inc, result.sensitive_sites)
    incidents = result.incidents[~near] if near.any() else result.incidents
    inc_all, inc = inc, (inc[~near] if near.any() else inc)
    inc = inc.assign(cell=grid.assign(inc["x"].to_numpy(), inc["y"].to_numpy()))
    inc = inc[inc["cell"] >= 0]
    p = result.parameters
    alpha = p["fdr_alpha"]["value"]

    def detect(records: pd.DataFrame):
        return hotspot_grid(records, grid, grid.touch_distance, alpha, p["gi_inference"]["value"],
                            int(result.cfg.analysis.get("seed", 0)), result.coverage, result.study_area,
                            str(result.cfg.analysis.get("combine", "sources")),
                            source_weights(weight.risk(records, ["source_id", "evidence"]), result.weights),
                            int(result.cfg.analysis.get("permutations", DEFAULT_DRAWS)))
    # The second detection below tests the same cells with the same seed: its tables are the first's.
    with reusing_tables():
        cells, w = detect(inc)
        # The same cells with the anecdotal sources weighing nothing (the factual_only scenario), and the
        # records of the restricted categories (sexual offences, domestic abuse) too: a cell is published hot
        # only where it is hot there too (below). A domestic-abuse source alone made a public hotspot (a
        # disclosure audit): that category's own layer, in effect.
        restricted = (inc["category"].astype(str).isin(PUBLIC["restricted_categories"]).to_numpy()
                      if "category" in inc else np.zeros(len(inc), bool))
        anecdotal = inc["evidence"].astype(str).isin(combmod.ANECDOTAL).to_numpy()
        factual_cls = detect(inc.assign(weight=np.where(anecdotal | restricted, 0.0, inc["weight"].to_numpy(float)))
                             )[0]["gi_class"].fillna(0).to_numpy()
        if near.any():
            whole = inc_all.assign(cell=grid.assign(inc_all["x"].to_numpy(), inc_all["y"].to_numpy()))
            kept_cls = detect(whole[whole["cell"] >= 0])[0]["gi_class"].fillna(0).to_numpy()
    if near.any():
        # With their partner records left out, the cells around a sensitive site, and those whose Gi*
        # neighbourhood reaches them, could read as cold for want of data (a cold patch where partners
        # work would also point at the site): there a cell is shown cold only when it is cold with the
        # records kept too, so the class says nothing the records left out decide.
        zone = shapely.union_all(shapely.buffer(shapely.points(result.sensitive_sites),
                                                PUBLIC["sensitive_exclusion_m"] + grid.touch_distance))
        touched = shapely.intersects(cells.geometry.values, zone)
        cls = cells["gi_class"].fillna(0).to_numpy()
        shown = np.where(np.sign(cls) == np.sign(kept_cls), np.sign(cls) * np.minimum(abs(cls), abs(kept_cls)), 0)
        cold = touched & (cls < 0)
        cells.loc[cold, "gi_class"] = shown[cold]
    # Cell by cell, as for regions below: a cell is published hot only when it is hot on the factual
    # sources alone too (hostile audit: two 400 m cells of the example were drawn hot, one at 99 %, on
    # community reports and intelligence, inside a region that factual sources support; a first rule, some
    # factual source significant on its own, hid cells the factual sources together make hot and kept
    # some they do not, a review found). Only factual sources are named in ``support``: which intelligence
    # points at a place is not public; nor is a source that holds records of a restricted category (its
    # name says where they are: "marac_domestic_abuse").
    evidence_of = evidence_classes(inc)
    unbacked = (cells["gi_class"].fillna(0).to_numpy() > 0) & (factual_cls <= 0)
    cells.loc[unbacked, "gi_class"] = 0
    if "support" in cells:
        unnamed = set(inc.loc[restricted, "source_id"].astype(str))
        factual = [[s for s in str(v).split(";") if evidence_of.get(s, "") in PUBLIC["factual_evidence"]
                    and s not in unnamed] for v in cells["support"].fillna("")]
    # Which sources cover a cell is published for coverages a source declared only: one derived from
    # a source's own records would say where a small source's few records lie.
    if "covered_by" in cells and result.coverage is not None:
        declared = set(public_coverage(result.coverage)["source_id"].astype(str))
        cells["covered_by"] = [";".join(s for s in str(v).split(";") if s in declared)
                               for v in cells["covered_by"].fillna("")]
    cells, regions, areas = attribute_cells(cells, grid, result.boundaries, incidents=inc)
    # The outline a public map draws: the boundary areas when the study is made of them, otherwise the
    # public cells (an outline at the partner cell size would trace where single incidents lie).
    area = result.study_area if result.cfg.area else shapely.union_all(grid.boxes())
    # A hotspot that only anecdotal or intelligence sources support is not published: judged by whose
    # own evidence makes it hot (``support``), and by its records (a 400 m cell takes in a few factual
    # records beside an anecdotal cluster, so counts alone would let it through).
    regions = combmod.region_support(regions, cells, evidence_of)
    keep = factual_mask(regions) & ~regions["anecdotal_only"].to_numpy(bool)
    anecdotal_only = regions.loc[~keep, "region_id"]
    regions = regions[keep].drop(columns=["support", "anecdotal_only"]).reset_index(drop=True)
    cells.loc[cells["region_id"].isin(anecdotal_only), "gi_class"] = 0
    cells.loc[cells["region_id"].isin(anecdotal_only), "region_id"] = ""
    # Which sources' own evidence is high, and the mix of evidence and roles, are said only of the
    # hotspots published: elsewhere they would place an anecdotal-only concentration, or one partner's.
    outside = cells["region_id"].fillna("").to_numpy() == ""
    if "support" in cells:
        cells["support"] = [";".join(f) for f in factual]
        cells.loc[outside, "support"] = ""
    mix = [c for c in cells.columns if c.startswith("role_") or (c.startswith("n_") and c != "n")]
    cells.loc[outside, mix] = np.nan
    # Named by streets only: a key-building layer may be sensitive, and street names are public.
    regions = attribute.name_regions(regions, result.streets)
    params = dict(p)
    params["cell_size_m"] = _param(cell, f"public tier: at least {PUBLIC['min_cell_m']:g} m" + (
        f" square's area (hexagons {least:.1f} m across the flats)" if grid.shape == "hexagon" else ""))
    params["neighbour_distance_m"] = _param(grid.touch_distance, "the ring of touching cells")
    for key in [k for k in params if k.startswith("clusters_") or k in ("bandwidth_m", "kde_kernel", "space_time")]:
        params.pop(key)
    empty = result.clusters.iloc[0:0]
    # No row of a sensitive layer, in any form, and no partner's own grading table.
    types = result.building_types
    if types is not None and result.buildings is not None and "type" in types:
        hidden = set(result.buildings.loc[sensitive.sensitive_mask(result.buildings), "type"].astype(str))
        types = types[~types["type"].astype(str).isin(hidden)].reset_index(drop=True)
    return dataclasses.replace(result, incidents=incidents, grid=grid, cells=cells, regions=regions, areas=areas,
                               accounting=public_accounting(result.accounting, result.ledger.filtered),
                               clusters=empty,
                               study_area=area, kde_surface=None, neighbours=w, parameters=params,
                               buildings=sensitive.public_buildings(result.buildings), building_types=types,
                               thresholds=None,
                               extra={**result.extra, "tier": "public",
                                      "withheld_anecdotal_only_regions": int(len(anecdotal_only)),
                                      "withheld_anecdotal_only_cells": int(unbacked.sum())})


def _profile(cfg: Config, incidents: pd.DataFrame, area, regions: gpd.GeoDataFrame, ledger: Ledger,
             params: dict, analysed: np.ndarray | None = None, grid: gridmod.Grid | None = None,
             coverage: gpd.GeoDataFrame | None = None
             ) -> tuple[pd.DataFrame | None, background.Job | None, pd.DataFrame | None]:
    """Key buildings: load them and profile the risk around each (``hotspots.profile``), against
    comparable places: the police.uk snap points and key buildings in the cells some risk source covers.
    Expected counts are each risk source's rate over the area it covers (``coverage``).
    Returns the buildings' table, the job computing the building types' table (on the second core:
    ``result()`` waits for it) and the buildings' accounting."""
    if not cfg.key_buildings:
        return None, None, None
    buildings, accounting = load_buildings(cfg, ledger, area)
    # A site shown only by its cell is profiled at the cell's centre: counts around its true place would
    # give that place back (sensitive.at_cell_centres).
    buildings = sensitive.at_cell_centres(buildings, grid)
    radii = sorted({r for kb in cfg.key_buildings for r in kb.radius_m})
    options = {**options_from_config(cfg), "trend_exclude_sources": tuple(weight.period_scales(cfg))}
    kind = str(cfg.analysis.get("building_null", "random_places"))
    n_sim, seed = int(cfg.analysis.get("building_simulations", 1999)), int(cfg.analysis.get("seed", 0))
    sites = comparable_places(incidents, buildings[["x", "y"]].to_numpy(float), grid, analysed, kind, seed=seed)
    label = ("random places in the covered area" if kind == "random_places"
             else "police.uk snap points and key buildings in the covered area")
    # A source's records outside its own coverage are left out, as in its Gi*: its expected count spreads its
    # rate over its coverage only, so such a record would count where nothing expects it (a statistics audit:
    # 424 of the example's City police records lay outside the City; Aldgate East's relative risk at 250 m
    # read 1.49 on them, 0.65 without).
    risk = grouped_risk(incidents, keep=covermod.in_own_coverage(incidents, grid, coverage))
    # The building types' Monte Carlo on the second core while the buildings are profiled here.
    types_job = background.start(type_profile, buildings, risk, area, sites, n_sim, seed, coverage,
                                 what="building types")
    table, _ = profile_buildings(buildings, risk, area, regions, radii, cfg.start, cfg.end, options,
                                 null_sites=sites, n_sim=n_sim, seed=seed, null_label=label, with_types=False,
                                 coverage=coverage)
    params["building_expected"] = _param("each risk source's weighted rate over the area it covers x the part "
                                         "of the catchment it covers, summed over the sources",
                                         "a source is expected only where it has data: no data is not low risk")
    params["building_null"] = _param(table["null"].iat[0] if len(table) else label,
                                     ("set in the config" if "building_null" in cfg.analysis else "default") +
                                     ": crime counts are overdispersed, so each building is compared with places "
                                     "like it (covered cells: some risk source covers them), not a flat rate; "
                                     "BH per radius across buildings; building types likewise (two-sided)")
    # Which layers are sensitive travels with each building; exploitation concerns and missing
    # episodes are counted around each building on their own.
    flags = buildings[["building_id", "sensitive", "sensitive_display"]].drop_duplicates("building_id")
    attrs = table.attrs
    table = table.merge(flags, on="building_id", how="left")
    table["sensitive"] = table["sensitive"].fillna(False).astype(bool)
    table["sensitive_display"] = table["sensitive_display"].fillna("")
    table = category_counts(table, incidents, [c for c in ("exploitation", "missing-episode")
                                               if (incidents["category"] == c).any()], radii, area,
                            coverage, sites, n_sim, seed)
    table.attrs = attrs
    given = any("radius_m" in entry for entry in cfg.raw.get("key_buildings", []))
    params["building_radii_m"] = _param(radii, "set in the config" if given else "default 100, 250 and 500 m")
    note = table.attrs.get("time_note", "")   # set by profile_buildings: why there are no hours, if none
    params["building_time_profile"] = _param(note or "hour of day and day of week from minute-precision sources",
                                             "only sources whose dates carry a time of day contribute")
    return table, types_job, accounting


def _kde(cfg: Config, incidents: pd.DataFrame, grid: gridmod.Grid, cells: gpd.GeoDataFrame,
         params: dict) -> np.ndarray:
    """Weighted KDE at the cell centres (``kde`` column); returns the (ny, nx) surface, NaN outside."""
    kernel = str(cfg.analysis.get("kde_kernel", "quartic"))
    # The risk incidents at one place as one point of their summed weight: the density is linear in the
    # weights, the bandwidth rule reads weighted moments and a weighted median, so both are the same to
    # round-off, from a few places, not millions of rows (police.uk records share snap points).
    wt = incidents["weight"].to_numpy()
    places, w = merged_places(incidents["x"].to_numpy(), incidents["y"].to_numpy(), wt, wt > 0)
    x, y = places[:, 0], places[:, 1]
    if "bandwidth_m" in cfg.analysis:
        bw, how = float(cfg.analysis["bandwidth_m"]), "set in the config"
        if bw < grid.cell:
            how += f" (warning: smaller than the {grid.cell:g} m cell: the surface will be spiky)"
    else:
        # Every record at one place: the rule's own fallback, said of the records, not of one place.
        bw, how = (choose_bandwidth(x, y, w, grid.cell) if len(x) > 1 else
                   choose_bandwidth(*(weight.risk(incidents, ["x", "y", "weight"])[c] for c in ("x", "y", "weight")),
                                    grid.cell))
    params["bandwidth_m"] = _param(float(bw), how)      # unrounded: the surface can be remade from it
    params["kde_kernel"] = _param(kernel, "set in the config" if "kde_kernel" in cfg.analysis
                                  else "default quartic (as ArcGIS Kernel Density and CrimeStat)")
    raster = grid.raster()
    surface = kde_grid(x, y, w, raster.x0, raster.y0, raster.cell, raster.nx, raster.ny, bw, kernel, distinct=True)
    cx, cy = grid.centres()
    cells["kde"] = raster.sample(surface, cx, cy)
    # Outside the study area the surface is not drawn.
    jj, ii = np.mgrid[0:raster.ny, 0:raster.nx]
    inside = grid.assign(raster.x0 + (ii.ravel() + 0.5) * raster.cell, raster.y0 + (jj.ravel() + 0.5) * raster.cell)
    return np.where(inside.reshape(surface.shape) >= 0, surface, np.nan)


def _start_clusters(cfg: Config, incidents: pd.DataFrame, area):
    """Start the density clusters on the second core: they need only the risk points and the places
    incidents were recorded, and their simulations are the longest single step (10 s at 1 M incidents),
    so the other stages run meanwhile. ``finish_clusters`` collects them. One core, or inside a
    worker process: run here. The result is the same either way (same seed, same inputs)."""
    return background.start(_clusters, cfg, incidents, area, what="density clusters")


def _import_publishing_while(job) -> None:
    """While ``job`` (a step on the second core) is still running, import the modules ``publish``
    imports: folium (its templates compile at import), the map and briefing, PIL, scipy.ndimage (0.7 s
    that would otherwise come after the wait; at 1 M incidents the wait for the clusters was 1.5-2 s)."""
    if job is None or job.done():
        return
    import PIL.Image  # noqa: F401
    import scipy.ndimage  # noqa: F401

    import hotspots.publish.briefing  # noqa: F401
    import hotspots.publish.map  # noqa: F401


def finish_clusters(job, params: dict) -> gpd.GeoDataFrame:
    """The clusters ``_start_clusters`` started; their parameters go into ``params`` and their
    warnings are raised here, as if they had run in this process."""
    clusters, used, caught = job.result()
    params.update(used)
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return clusters


def _clusters(cfg: Config, incidents: pd.DataFrame, area):
    """Density clusters (DBSCAN, and HDBSCAN when configured) as polygons with Monte Carlo p-values;
    returns (clusters, their parameters, the warnings raised)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        params: dict = {}
        # The background for random labelling: every distinct place an incident of any source was
        # recorded at (police.uk snap points, geocoded places), context layers included. By hashing
        # the coordinates, not drop_duplicates on a copy of the two columns (its order does not
        # matter: find_clusters sorts the places).
        places, _ = merged_places(incidents["x"].to_numpy(), incidents["y"].to_numpy())
        clusters = _find_clusters(cfg, incidents, places, area, params)
    return clusters, params, caught


def _find_clusters(cfg: Config, incidents: pd.DataFrame, places: np.ndarray, area, params: dict) -> gpd.GeoDataFrame:
    methods = cfg.analysis.get("clusters", ["dbscan"])
    methods = [methods] if isinstance(methods, str) else list(methods)
    # The risk incidents are read where they are (a chunk at a time), not copied: 0.7 GB at 30 M.
    risk = weight.is_risk(incidents)
    # Counted by hashing the places (collapsing them, with their weights, counts, evidence mix and the
    # sort that numbers them, costs more: at 10 M, 2.5 s for the count alone), collapsed once below.
    locations = len(merged_places(incidents["x"].to_numpy(), incidents["y"].to_numpy(), keep=risk)[0])
    if "cluster_simulations" in cfg.analysis:
        n_sim, sim_how = int(cfg.analysis["cluster_simulations"]), "set in the config"
    else:
        # Each simulation reruns DBSCAN on every distinct location (0.13 s at 200,000 measured):
        # fewer simulations on large data, still enough to resolve p <= 0.05.
        n_sim = 199 if locations <= 20_000 else 39 if locations <= 100_000 else 19
        sim_how = (f"{n_sim} simulations for {locations:,} distinct locations (199 up to 20,000, 39 up to "
                   f"100,000, 19 beyond; the smallest p is 1/(n+1))")
    params["cluster_simulations"] = _param(n_sim, sim_how)
    if locations > 200_000:
        # DBSCAN's neighbour pairs grow with the square of the local density (std::bad_alloc at
        # 10 M incidents): snap to a 25 m lattice first, which bounds them by area, not by rows.
        params["cluster_lattice_m"] = _param(25.0, f"{locations:,} distinct locations: snapped to a 25 m lattice "
                                                   "before clustering (police.uk snap points are coarser)")
    seed = int(cfg.analysis.get("seed", 0))
    snap = 25.0 if "cluster_lattice_m" in params else None
    if snap:
        places = np.unique((np.floor(places / snap) + 0.5) * snap, axis=0)
    # Collapsed once for every method: the locations, their weight, count and evidence mix.
    locs = collapse_points(incidents, keep=risk, snap=snap)
    parts = []
    for method in methods:
        found, used = find_clusters(locs, area, method=method, eps_m=cfg.analysis.get("cluster_eps_m"),
                                    min_weight=cfg.analysis.get("cluster_min_weight"), n_sim=n_sim, seed=seed,
                                    background_xy=places)
        params[f"clusters_{method}"] = _param({k: v for k, v in used.items() if not k.endswith("_how")},
                                              "; ".join(str(v) for k, v in used.items() if k.endswith("_how")))
        parts.append(found)
    clusters = pd.concat(parts, ignore_index=True) if parts else gpd.GeoDataFrame(geometry=[], crs=BNG)
    n_cols = [c for c in clusters.columns if c.startswith("n_")]
    clusters[n_cols] = clusters[n_cols].fillna(0).astype(int)
    return gpd.GeoDataFrame(clusters, geometry="geometry", crs=BNG)


def _start_trends(cfg: Config, incidents: pd.DataFrame, grid: gridmod.Grid, cells: pd.DataFrame, w, alpha: float,
                  seed: int, params: dict, by_source: tuple | None = None):
    """Start the emerging hot spot classes per cell from monthly Gi* on the second core (their
    permutations, 1 s of a small partnership's run, need only the cells x months cubes, ``trend_cubes``);
    ``_finish_trends`` collects them. The result is the same either way (same cubes, same seed).
    With ``by_source`` ((coverage, study area, source weights), as ``combine = "sources"``) each source
    has its own cube on the cells it covers, combined month by month (``emerging_classes_by_source``)."""
    idx, cubes, partial, n_periods = trend_cubes(cfg, incidents, grid, cells, by_source and by_source[:2])
    sub = sp.csr_matrix(w)[idx][:, idx]
    if by_source is not None:
        sweights = by_source[2]
        job = background.start(functools.partial(emerging_classes_by_source, seed=seed), cubes, sub,
                               {sid: sweights.get(sid, 0.0) for sid in cubes}, alpha, what="trends")
        how = ("monthly Gi* of each source on the cells it covers (randomisation p), combined per cell and month "
               "by weighted Stouffer as the map, BH per month, Mann-Kendall trend of each cell's combined Z, "
               "classes after ArcGIS Pro's Emerging Hot Spot Analysis; no trend where no source covers")
    else:
        job = background.start(functools.partial(emerging_classes, inference="permutation", seed=seed), cubes, sub,
                               alpha, what="trends")
        how = ("monthly Gi* (randomisation p, BH per month) over the cells its sources cover, Mann-Kendall trend of "
               "each cell's z, classes after ArcGIS Pro's Emerging Hot Spot Analysis; no trend where no source covers")
    _trend_how(params, how, partial, n_periods)
    return job, idx


def trend_cubes(cfg: Config, incidents: pd.DataFrame, grid: gridmod.Grid, cells: pd.DataFrame,
                by_source: tuple | None = None) -> tuple[np.ndarray, dict | np.ndarray, list[str], int]:
    """The trends' weighted counts per cell and month, over the cells some source of them covers (``idx``,
    grid cell numbers): (idx, cubes, the sources left out as covering part of the period, months). With
    ``by_source`` ((coverage, study area)) a (covered, cube) pair per source: its records inside its
    coverage, by density on its covered cells (as the map's Gi*); without, one pooled (len(idx), months) cube."""
    # The risk rows a chunk at a time (``chunk_rows``), not a copy of their six columns (with the codes and
    # months made of them, 65 bytes a row: 1.9 GB at 30 M incidents, the run's peak): each cube is the sum
    # of its chunks' (the same to round-off; one chunk, the same bits).
    # A source covering part of the period only would read as a trend where it starts or stops.
    partial = sorted(weight.period_scales(cfg))
    used = set(covermod.risk_sources(incidents)) - set(partial)
    n_periods = int(month_index(pd.Series([cfg.end - pd.Timedelta(seconds=1)]), cfg.start)[0]) + 1
    # Only the cells some source of the cube covers (as for the map's Gi*): a cell no source covers has
    # no trend, and takes no part in any month's mean, variance or BH (audit finding: 327 of the
    # example's 468 cells with no record in any month had a trend p <= 0.05).
    covered = np.array([bool(used & set(str(v).split(";"))) for v in cells["covered_by"].fillna("")], dtype=bool)
    idx = np.nonzero(covered)[0]
    at = np.full(grid.n, -1, dtype=np.int64)
    at[idx] = np.arange(len(idx))
    cell_of, wt, when = incidents["cell"].to_numpy(np.int64), incidents["weight"].to_numpy(float), incidents["occurred_from"]
    months = when.to_numpy() if isinstance(when.dtype, np.dtype) else None     # a view (naive datetimes)

    def add(cube: np.ndarray, rows: np.ndarray) -> None:
        """``rows``' weights into ``cube`` by cell among ``idx`` (rows in other cells left out) and month."""
        cell = at[cell_of[rows]]
        rows, cell = rows[cell >= 0], cell[cell >= 0]
        period = month_index(months[rows] if months is not None else when.iloc[rows], cfg.start)
        cube += space_time_cube(cell, period, wt[rows], len(idx), n_periods)

    sids = sorted(used)
    if by_source is None:
        cube = np.zeros((len(idx), n_periods))
        for chunk in covermod.risk_rows_inside(incidents, sids, np.ones((grid.n, len(sids))), None):
            # Every source's rows of the chunk in row order, as one table's (the pooled cube sums them alike).
            add(cube, np.sort(np.concatenate([np.zeros(0, np.int64), *chunk])))
        return idx, cube, partial, n_periods
    coverage, area = by_source
    shares = covermod.cell_shares(grid, area, coverage, sids)
    sums = {sid: np.zeros((len(idx), n_periods)) for sid in sids}
    for chunk in covermod.risk_rows_inside(incidents, sids, shares, coverage):
        for sid, rows in zip(sids, chunk):
            add(sums[sid], rows)
    shares = shares[idx]
    return idx, {sid: (covermod.covered(shares[:, j]), sums[sid] / np.maximum(shares[:, j], 1e-9)[:, None])
                 for j, sid in enumerate(sids)}, partial, n_periods


def _trend_how(params: dict, how: str, partial: list, n_periods: int) -> None:
    """Record how the trends were made (``space_time``), with the sources left out and a short series said."""
    if partial:
        how += f"; sources covering part of the period only are left out ({', '.join(partial)})"
    if n_periods < 10:
        how += f"; only {n_periods} months: fewer than the 10 steps the trend test needs, treat classes with caution"
    params["space_time"] = _param(f"{n_periods} monthly steps", how)


def _finish_trends(started, cells: gpd.GeoDataFrame) -> None:
    """``trend_class``, ``trend_z``, ``trend_p`` of each cell from ``_start_trends``'s job, after ``kde``: empty
    (None, NaN) where no source of the trends covers the cell."""
    job, idx = started
    classes = job.result()
    at = cells.columns.get_loc("kde") + 1
    for k, col in enumerate(("trend_class", "trend_z", "trend_p")):
        values = np.full(len(cells), None, dtype=object) if k == 0 else np.full(len(cells), np.nan)
        values[idx] = classes[col].to_numpy()
        cells.insert(at + k, col, values)


def publish(result: Result, out: Path, pdf: bool = False) -> dict[str, Path]:
    """Write every output of ``result`` into ``out``, whole or not at all; returns the paths by name.

    The outputs are written into a temporary folder beside ``out`` and swapped in when all are
    written, under a lock (``hotspots.publish.outdir``): files of an earlier run never survive,
    and a folder hotspots did not write, or that overlaps an input, is refused (``UserError``).
    """
    from hotspots.publish import outdir

    agency = result.extra.get("agency")
    kind = f"agency:{agency}" if agency else "shared"
    out = Path(out)
    outdir.check(out, result.cfg, kind)
    with outdir.writing(out, kind) as tmp:
        paths = _publish_into(result, tmp, kind, pdf)
    # The files now live in ``out``: report their final paths, as the caller spelled ``out``.
    paths = {key: out / Path(p).relative_to(tmp) for key, p in paths.items()}
    paths["out"] = out
    return paths


def _publish_into(result: Result, out: Path, kind: str, pdf: bool = False) -> dict[str, Path]:
    """Write every output of ``result`` into the (temporary, empty) folder ``out``."""
    from hotspots.publish.briefing import build_briefing, print_pdf
    from hotspots.publish.exports import write_csv
    from hotspots.publish.manifest import write_manifest
    from hotspots.publish.map import build_map
    from hotspots.publish.where import forget_region_records

    # An agency's own run holds records that may not leave it: never a public map.
    tiers = ["partner"] if result.extra.get("agency") else result.cfg.tiers
    views = {tier: (result if tier == "partner" else public_view(result)) for tier in tiers}
    # The GIS layers (GeoPackage, GeoJSON: 2 s at 10 k incidents, 3 s at 1 M) are written on the second
    # core while the maps and briefings are made here.
    side = background.start(_gis_layers, views, out, what="GIS layers")
    written = [(write_csv(result.ledger.rejects, out / "rejects.csv"), "analyst")]
    # A run configured for the public tier only writes no partner-tier table (they carry the
    # profiles of sensitive sites, per-source evidence and anecdotal-only places).
    tables = []
    if "partner" in tiers:
        if result.buildings is not None:
            tables.append((write_csv(result.buildings, out / "buildings.csv"), "partner"))
            tables.append((write_csv(result.building_types, out / "building_types.csv"), "partner"))
        tables.append((write_csv(result.sensitivity, out / "sensitivity.csv"), "partner"))
        tables.append((write_csv(result.sensitivity_regions, out / "sensitivity_regions.csv"), "partner"))
        if result.thresholds is not None:
            tables.append((write_csv(result.thresholds, out / "thresholds.csv"), "partner"))
    paths, maps = {}, {}
    for tier, view in views.items():
        maps[tier] = out / ("map.html" if tier == "partner" else f"map-{tier}.html")
        maps[tier].write_text(build_map(view, tier), encoding="utf-8")
    html = {tier: build_briefing(view, tier) for tier, view in views.items()}
    forget_region_records(result)       # the records both found for the partner view (hotspots.publish.where)
    layers = side.result()
    written += [(p, "partner") for p in layers.get("partner", [])] + tables
    for tier, view in views.items():
        written.append((maps[tier], tier))
        paths[f"map_{tier}"] = maps[tier]
        brief = out / ("briefing.html" if tier == "partner" else f"briefing-{tier}.html")
        brief.write_text(html[tier], encoding="utf-8")
        written.append((brief, tier))
        paths[f"briefing_{tier}"] = brief
        if pdf:
            written.append((print_pdf(brief, brief.with_suffix(".pdf")), tier))
            paths[f"briefing_pdf_{tier}"] = brief.with_suffix(".pdf")
        if tier == "public":
            written += [(p, "public") for p in layers["public"]]
    inputs = result.accounting.to_dict(orient="records")
    if result.building_accounting is not None:
        inputs += result.building_accounting.to_dict(orient="records")
    summary = {
        "incidents": int(len(result.incidents)),
        "cells": int(result.grid.n),
        "hot_cells": int((result.cells["gi_class"] >= 2).sum()),
        "regions": int(len(result.regions)),
        "cross_boundary_regions": int(result.regions["cross_boundary"].sum()) if len(result.regions) else 0,
        # Per boundary layer, the risk incidents in none of its areas: areas.csv does not count them.
        "risk_incidents_outside_every_area": result.areas.attrs.get("outside_every_area", {}),
    }
    extra = {"study": {"name": result.cfg.name, "start": result.cfg.start_label, "end": result.cfg.end_label,
                       "config": str(result.cfg.path)},
             "sources": [{"source_id": s.id, "schema": s.schema, "evidence": s.evidence, "legal_basis": s.legal_basis,
                          "sharing_agreement": s.sharing_agreement, "handling": s.handling} for s in result.cfg.sources],
             "summary": summary, **result.extra}
    # Each other tier's parameters where they differ from the run's (the public tier's 400 m cells and
    # their neighbourhood; the methods it leaves out are absent from it), so its layers can be rerun too.
    for tier, view in views.items():
        if view is not result:
            extra[f"parameters_{tier}"] = {k: v for k, v in view.parameters.items() if result.parameters.get(k) != v}
    agency = result.extra.get("agency")
    if agency:      # an agency's own run: its outputs are that agency's, not the partnership's (an audit)
        written = [(path, f"agency:{agency}" if tier == "partner" else tier) for path, tier in written]
    paths["manifest"] = write_manifest(out / "manifest.json", inputs=inputs, parameters=result.parameters,
                                       weights=result.weights, outputs=written, started_at=result.started_at,
                                       started=result.started, extra=extra, kind=kind)
    paths["out"] = out
    return paths


def _gis_layers(views: dict[str, Result], out: Path) -> dict[str, list[Path]]:
    """Each tier's GIS layers written into ``out`` (``_write_tables``; the public tier's into ``out/public``),
    by tier: the part of publishing done on the second core."""
    return {tier: _write_tables(view, out if tier == "partner" else out / tier, public=tier == "public")
            for tier, view in views.items()}


def _write_tables(view: Result, out: Path, public: bool) -> list[Path]:
    """The GIS layers and areas.csv of one tier (public: suppressed and rounded counts, no clusters)."""
    from hotspots.publish.exports import write_csv, write_layers
    out.mkdir(parents=True, exist_ok=True)
    cells = view.cells.copy()
    cells["gi_class"] = cells["gi_class"].astype("Int8")   # empty where no_data
    regions, areas = view.regions.copy(), view.areas.copy()
    layers = {"cells": cells, "regions": regions}
    if public:
        # Counts as numbers, rounded, empty where suppressed (``tiers.disclose``). No z, p or q (per
        # source neither): with the neighbourhoods known, the z-scores of all cells are a linear
        # system that gives the counts back.
        cells = layers["cells"] = disclose(cells.drop(columns=["gi_z", "gi_p", "gi_q", *[
            c for c in cells.columns if c.startswith(("z_", "p_"))]]))
        layers["regions"] = disclose(regions.drop(columns=["peak_z"]))
        areas = disclose(areas)
    else:
        layers["clusters"] = view.clusters
        if view.buildings is not None:
            layers["buildings"] = gpd.GeoDataFrame(view.buildings, crs=BNG, geometry=gpd.points_from_xy(
                view.buildings["x"], view.buildings["y"]))
    layers["boundaries"] = view.boundaries
    layers["study_area"] = gpd.GeoDataFrame({"name": [view.cfg.name]}, geometry=[view.study_area], crs=BNG)
    written = write_layers(layers, out, web=("cells", "regions", "clusters"))
    written.append(write_csv(areas, out / "areas.csv"))
    return written


def evaluate_holdout(cfg: Config, train: tuple[pd.Timestamp, pd.Timestamp],
                     test: tuple[pd.Timestamp, pd.Timestamp], out: Path,
                     progress: Progress | None = None) -> pd.DataFrame:
    """Fit on the training months, score on the test months (``hotspots evaluate``).

    Each method ranks the cells by a score computed from the training
    incidents only, on a study area, grid and KDE bandwidth fitted on the
    training months only: ``gi_star`` (the Gi* z as configured; 0 where no
    data), ``kde``, ``weighted_count``, ``previous_period`` (the naive
    baseline: counts in the last training months, as many as the test has) and
    ``random`` (the mean of 1,000 random rankings, with its 95 % range in
    ``hit_rate_low``/``_high``, ``pai_low``/``_high``). The test incidents (risk
    layers, weight > 0), loaded apart, are then counted in the cells each
    method selects (those outside the training study area are not counted).
    Writes ``evaluation.csv``, ``coverage.png`` and ``manifest.json`` to ``out``,
    whole or not at all, as ``publish`` does (``hotspots.publish.outdir``).
    """
    from hotspots.evaluate import evaluate_methods, plot_coverage, random_baseline
    from hotspots.publish import outdir
    from hotspots.publish.exports import write_csv
    from hotspots.publish.manifest import write_manifest

    (train_start, train_end), (test_start, test_end) = train, test
    if not (train_start < train_end <= test_start < test_end):
        raise UserError("--train must end before --test starts, each with its start before its end.",
                        file=str(cfg.path))
    out = outdir.check(out, cfg, "evaluation")
    # Everything fitted (study area, grid, bandwidth, Gi*) sees the training months only; the
    # test months are loaded apart and only counted, on the training grid.
    # The evaluation publishes no map: the public tier's window rule is not the training months'.
    training = dataclasses.replace(cfg, start=train_start, end=train_end, outputs={**cfg.outputs, "tiers": ["partner"]},
                                   start_label=str(train_start.date()), end_label=str(train_end.date()))
    testing = dataclasses.replace(cfg, start=test_start, end=test_end,
                                  start_label=str(test_start.date()), end_label=str(test_end.date()))
    result = analyse(training, progress)
    tr = weight.risk(result.incidents)
    loaded = load_sources(testing)
    test_inc, _ = governance.split_shared(loaded.incidents, testing, loaded.ledger)
    test_accounting = loaded.ledger.accounting(test_inc)
    if len(test_inc):
        test_inc = weight.risk(weight.apply_weights(finish(test_inc), weight.weight_table(testing)))
    g = result.grid
    test_cell = g.assign(test_inc["x"].to_numpy(float), test_inc["y"].to_numpy(float)) if len(test_inc) else \
        np.zeros(0, dtype=np.int64)
    test_cell = test_cell[test_cell >= 0]
    if not len(tr) or not len(test_cell):
        raise UserError(f"no incident in the {'training' if not len(tr) else 'test'} months "
                        "inside the study area.", file=str(cfg.path))
    n = g.n
    when = tr["occurred_from"]
    cell = tr["cell"].to_numpy()
    weights = tr["weight"].to_numpy()
    train_w = np.bincount(cell, weights=weights, minlength=n)
    train_n = np.bincount(cell, minlength=n).astype(float)
    test_n = np.bincount(test_cell, minlength=n).astype(float)
    test_months = (test_end.to_period("M") - test_start.to_period("M")).n
    recent_start = max(train_start, train_end - pd.DateOffset(months=test_months))
    recent = (when >= recent_start).to_numpy()
    seed = int(cfg.analysis.get("seed", 0))
    scores = {
        "gi_star": np.nan_to_num(result.cells["gi_z"].to_numpy(float), nan=0.0),
        "kde": result.cells["kde"].to_numpy(float),
        "weighted_count": train_w,
        "previous_period": np.bincount(cell[recent], weights=weights[recent], minlength=n),
    }
    cell_area = shapely.area(shapely.intersection(g.boxes(), result.study_area))
    table = evaluate_methods(scores, test_n, train_n, cell_area, seed=seed)
    table = pd.concat([table, random_baseline(test_n, train_n, cell_area, seed=seed)], ignore_index=True)
    periods = {"train": f"{train_start:%Y-%m}..{(train_end - pd.Timedelta(days=1)):%Y-%m}",
               "test": f"{test_start:%Y-%m}..{(test_end - pd.Timedelta(days=1)):%Y-%m}"}
    with outdir.writing(out, "evaluation") as tmp:
        written = [(write_csv(table, tmp / "evaluation.csv"), "partner")]
        plot_coverage(scores, test_n, cell_area, tmp / "coverage.png", seed=seed,
                      title=f"{cfg.name}: trained {periods['train']}, tested {periods['test']}")
        written.append((tmp / "coverage.png", "partner"))
        inputs = ([{**r, "period": "train"} for r in result.accounting.to_dict(orient="records")] +
                  [{**r, "period": "test"} for r in test_accounting.to_dict(orient="records")])
        write_manifest(tmp / "manifest.json", inputs=inputs,
                       parameters=result.parameters, weights=result.weights, outputs=written,
                       started_at=result.started_at, started=result.started, kind="evaluation",
                       extra={"study": {"name": cfg.name, "config": str(cfg.path)}, "evaluation": periods})
    return table
