"""The coordinate systems hotspots works in, and the one place pyproj's transformers between them are made.

Making a transformer takes pyproj about 50 ms (it searches PROJ's database): each pair is made once
per process, when first needed, not at import (``import hotspots`` reads its constants and stays quick).
"""
from __future__ import annotations

from functools import cache

BNG = "EPSG:27700"        # British National Grid: every analysis is in its metres
WGS84 = "EPSG:4326"       # longitude and latitude: police.uk files, the web map, GeoJSON


@cache
def transformer(source: str, target: str):
    """pyproj's ``Transformer`` from ``source`` to ``target``, x (longitude) first."""
    from pyproj import Transformer
    return Transformer.from_crs(source, target, always_xy=True)
