"""``manifest.json``: what was read, decided and written, for audit.

Keys (the contract): ``inputs`` (one per source file: source_id, path, sha256,
rows_read, rows_loaded, rows_filtered, rows_rejected), ``parameters`` (each
with its value and how it was chosen), ``weights``, ``versions``, ``outputs``
(path, sha256, tier), ``started_at``, ``duration_s``; plus ``study``,
``sources`` (legal basis and sharing agreement), ``summary``, and
``written_by`` (tool, version and kind of run: ``shared``, ``agency:<id>`` or
``evaluation``), which tells a later run that the folder is hotspots' own and
may be replaced (``hotspots.publish.outdir``).
"""
from __future__ import annotations

import json
import platform
import time
from importlib import metadata
from pathlib import Path

from hotspots.load.ledger import sha256
from hotspots.publish.outdir import signature

KEY_PACKAGES = ("numpy", "pandas", "scipy", "shapely", "pyproj", "pyogrio", "geopandas",
                "scikit-learn", "folium", "xstatic-leaflet")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("hotspots", *KEY_PACKAGES):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_manifest(path: Path, *, inputs: list[dict], parameters: dict, weights: dict,
                   outputs: list[tuple[Path, str]], started_at: str, started: float,
                   extra: dict, kind: str = "shared") -> Path:
    """Write ``manifest.json`` at ``path``; output paths are recorded relative to its folder."""
    out_dir = path.parent
    manifest = {
        "written_by": signature(kind),
        "started_at": started_at,
        "inputs": inputs,
        "parameters": parameters,
        "weights": weights,
        "versions": versions(),
        "outputs": [{"path": str(p.relative_to(out_dir)), "sha256": sha256(p), "tier": tier}
                    for p, tier in outputs],
        **extra,
    }
    manifest["duration_s"] = round(time.perf_counter() - started, 3)
    path.write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
    return path
