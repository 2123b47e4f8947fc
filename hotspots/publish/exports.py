"""Write the GIS and table outputs: GeoPackage, GeoJSON, CSV.

Input: the ``Result`` layers of the pipeline. Output files, as the brief's
table: ``hotspots.gpkg`` (layers cells, regions, clusters, buildings,
boundaries in EPSG:27700), ``cells.geojson`` / ``regions.geojson`` /
``clusters.geojson`` (EPSG:4326), ``areas.csv``, ``rejects.csv``.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import pandas as pd


def _gis_ready(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Columns typed for GIS readers: booleans as integers 0/1 would lose meaning, so keep bool;
    object columns as text."""
    out = gdf.copy()
    for c in out.columns:
        if c != out.geometry.name and out[c].dtype == object:
            out[c] = out[c].astype(str)
    return out


def write_layers(layers: dict[str, gpd.GeoDataFrame], out: Path, web: tuple[str, ...]) -> list[Path]:
    """Write each layer to ``hotspots.gpkg`` and the ``web`` ones also as GeoJSON in EPSG:4326."""
    written = []
    gpkg = out / "hotspots.gpkg"
    if gpkg.exists():
        gpkg.unlink()
    for name, gdf in layers.items():
        gdf = _gis_ready(gdf)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            gdf.to_file(gpkg, layer=name, driver="GPKG")
        if name in web:
            path = out / f"{name}.geojson"
            gdf.to_crs("EPSG:4326").to_file(path, driver="GeoJSON")
            written.append(path)
    written.insert(0, gpkg)
    return written


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False)
    return path
