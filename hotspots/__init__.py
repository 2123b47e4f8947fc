"""hotspots: multi-agency violence hotspot analysis for community safety partnerships.

The pipeline reads top to bottom (see ``hotspots.pipeline``): load, weight,
detect, profile, attribute, evaluate, publish.

The Python API, for notebooks::

    import hotspots
    result = hotspots.run("partnership.toml")          # analyse; nothing written
    result.cells[result.cells["gi_class"] >= 2]        # hot cells, a GeoDataFrame in EPSG:27700
    paths = hotspots.publish(result, "output")         # every path written

    cfg = hotspots.read_config("partnership.toml")     # the TOML as a dict
    cfg["weights"]["community_report"] = 0.0
    other = hotspots.run(cfg)                          # paths still resolve beside partnership.toml

Heavy modules are imported when a function is called, so that ``import hotspots`` and the
command line stay quick.
"""
from __future__ import annotations

import copy
import importlib
import os
import tempfile
import types
from pathlib import Path
from typing import Any

__version__ = "0.1.0"
__all__ = ["run", "publish", "read_config", "Result", "__version__"]

from hotspots.crs import BNG  # noqa: E402  (the package's coordinate system, for notebooks)


class ConfigDict(dict):
    """A config read by ``read_config``: the TOML as a dict, and ``base``, the folder its relative paths
    are relative to (kept by ``copy.deepcopy``)."""
    base: Path


def read_config(path: str | Path) -> ConfigDict:
    """The config file at ``path`` as a dict to change and pass to ``run`` (its ``base`` is the file's folder)."""
    import tomllib

    from hotspots.errors import UserError
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))     # a BOM (Notepad) is no TOML error
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"the config cannot be read ({exc}).", file=str(path)) from None
    except RecursionError:      # as load_config: tomllib parses nested arrays by recursion
        raise UserError("the config nests arrays or tables too deep to read.", file=str(path)) from None
    out = ConfigDict(data)
    out.base = path.resolve().parent
    return out


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if hasattr(v, "isoformat"):
        return v.isoformat()
    raise TypeError(f"a config value of type {type(v).__name__} cannot be written as TOML")


def _toml_key(k: str) -> str:
    import re
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _toml_value(k)


def _toml(data: dict) -> str:
    """``data`` as TOML: top-level scalars, tables, arrays of tables (one level, as the config has)."""
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in data.items()
             if not isinstance(v, dict) and not (isinstance(v, list) and v and all(isinstance(x, dict) for x in v))]
    for k, v in data.items():
        if isinstance(v, dict):
            lines.append(f"\n[{_toml_key(k)}]")
            lines += [f"{_toml_key(a)} = {_toml_value(b)}" for a, b in v.items()]
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for item in v:
                lines.append(f"\n[[{_toml_key(k)}]]")
                lines += [f"{_toml_key(a)} = {_toml_value(b)}" for a, b in item.items()]
    return "\n".join(lines) + "\n"


def _load(config, base):
    """A checked ``Config`` from a path or a dict (a dict is checked as the same TOML would be)."""
    from hotspots.config import load_config
    from hotspots.errors import UserError

    if isinstance(config, (str, os.PathLike)):
        return load_config(config)
    if not isinstance(config, dict):
        raise UserError(f"hotspots.run takes a config path or a dict, not {type(config).__name__}.")
    folder = Path(base if base is not None else getattr(config, "base", None) or Path.cwd()).resolve()
    # load_config reads a file; written beside the paths it names so that they resolve, removed at once.
    fd, name = tempfile.mkstemp(prefix=".hotspots-config-", suffix=".toml", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(_toml(config))
        cfg = load_config(name)
    finally:
        os.unlink(name)
    import dataclasses
    return dataclasses.replace(cfg, path=folder / "(config given as a dict)")


def _bng(frame, geometry: bool = True):
    """A layer as a GeoDataFrame in EPSG:27700: points from ``x``/``y`` where it has no geometry."""
    import geopandas as gpd
    import pandas as pd

    if frame is None:
        return gpd.GeoDataFrame({"geometry": gpd.GeoSeries([], crs=BNG)}, geometry="geometry", crs=BNG)
    if isinstance(frame, gpd.GeoDataFrame):
        if frame.crs is None:
            return frame.set_crs(BNG)
        return frame if frame.crs.to_epsg() == 27700 else frame.to_crs(BNG)
    frame = pd.DataFrame(frame)
    pts = gpd.points_from_xy(pd.to_numeric(frame["x"], errors="coerce"), pd.to_numeric(frame["y"], errors="coerce"),
                             crs=BNG)
    return gpd.GeoDataFrame(frame, geometry=pts, crs=BNG)


class Result:
    """One run, for notebooks. Every layer is a GeoDataFrame in EPSG:27700 (British National Grid metres):

    - ``incidents``: the common incident schema (``data_schemas/common.schema.json``: source_id,
      evidence, category, severity, occurred_from/to, date_precision, x, y, location_precision,
      weight, ...) plus ``cell``, one point per incident analysed;
    - ``cells``: the grid (cell_id, n, n_<evidence>, weighted, kde, gi_z, gi_p, gi_q, gi_class,
      trend, ...), one polygon per cell;
    - ``regions``: hotspot regions (contiguous hot cells) with their areas and streets;
    - ``clusters``: density cluster polygons with counts and significance;
    - ``buildings``: one point per key building with its counts, relative risk and profile
      (empty when the config has no key buildings);
    - ``boundaries``: the boundary areas.

    Also ``areas`` (per boundary area), ``accounting`` (rows read / loaded / filtered / rejected
    per file), ``rejects``, ``parameters`` (each value with how it was chosen), ``weights``,
    ``config`` (the checked ``hotspots.config.Config``) and ``paths`` (what ``publish`` wrote).
    ``pipeline`` is the pipeline's own ``hotspots.pipeline.Result``, which ``publish`` writes.
    """

    def __init__(self, pipeline_result):
        r = pipeline_result
        self.pipeline = r
        self.config = r.cfg
        # The pipeline holds its few-valued text columns as categories (hotspots.load.COMPACT); the
        # layer handed to Python users keeps the common schema's text columns.
        self.incidents = _bng(r.incidents.astype({c: str for c in r.incidents.columns
                                                   if r.incidents[c].dtype == "category"}))
        self.cells = _bng(r.cells)
        self.regions = _bng(r.regions)
        self.clusters = _bng(r.clusters)
        self.buildings = _bng(r.buildings)
        self.boundaries = _bng(r.boundaries)
        self.areas = r.areas
        self.accounting = r.accounting
        self.rejects = r.ledger.rejects
        self.parameters = r.parameters
        self.weights = r.weights
        self.paths: list[Path] = []

    def hot_cells(self, confidence: int = 2):
        """The cells hot at ``confidence`` or above (``gi_class``: 3 = 99 %, 2 = 95 %, 1 = 90 %, FDR-controlled)."""
        return self.cells[self.cells["gi_class"] >= confidence]

    def __repr__(self) -> str:
        return (f"<hotspots.Result '{self.config.name}': {len(self.incidents):,} incidents, {len(self.cells):,} cells, "
                f"{len(self.hot_cells()):,} hot (95 %+), {len(self.regions):,} regions, "
                f"{len(self.buildings):,} buildings>")


def run(config, out: str | Path | None = None, *, base: str | Path | None = None, agency: str | None = None,
        pdf: bool = False) -> Result:
    """Run the pipeline on ``config`` and return its ``Result``; with ``out``, also publish into that folder.

    ``config`` is a path to a partnership TOML file, or a dict of the same tables (as
    ``read_config`` gives, e.g. with a weight changed); a dict's relative paths resolve against
    ``base`` (default: the folder of the file ``read_config`` read, else the current folder).
    ``agency`` (a source id) makes it that agency's own run, as ``hotspots run --agency``.
    With ``out`` the folder is checked before anything is read and ``Result.paths`` lists every
    file written (as ``publish``). Errors are ``hotspots.errors.UserError`` with the file, row
    and column where they apply.
    """
    from hotspots.errors import UserError
    from hotspots.pipeline import analyse
    from hotspots.publish import outdir

    cfg = _load(copy.deepcopy(config) if isinstance(config, dict) else config, base)
    if agency and agency not in {s.id for s in cfg.sources}:
        raise UserError(f"agency '{agency}' is not a source id of the config "
                        f"({', '.join(s.id for s in cfg.sources)}).", file=str(cfg.path))
    if out is None:
        return Result(analyse(cfg, agency=agency))
    kind = f"agency:{agency}" if agency else "shared"
    outdir.check(Path(out), cfg, kind)
    with outdir.locked(Path(out)):
        result = Result(analyse(cfg, agency=agency))
        _publish(result, out, pdf=pdf)
    return result


def _publish(result, out: str | Path, pdf: bool = False) -> list[Path]:
    """Write every output of ``result`` (a ``Result``, or the pipeline's own) into ``out``, whole or not at all
    (the folder is replaced; a folder hotspots did not write is refused). Returns every path written:
    the maps, briefings, GeoPackage, GeoJSON and CSV files of each tier, ``rejects.csv`` and
    ``manifest.json`` (which lists the others with their checksums), in the manifest's order."""
    import json

    from hotspots.pipeline import publish as write

    r = result.pipeline if isinstance(result, Result) else result
    named = write(r, Path(out), pdf=pdf)
    folder = Path(named["out"])
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    paths = [folder / o["path"] for o in manifest["outputs"]]
    paths.append(folder / "manifest.json")
    if isinstance(result, Result):
        result.paths = paths
    return paths


class _CallablePackage(types.ModuleType):
    """``hotspots.publish`` is both the package of output writers (``hotspots.publish.map``, ...) and the
    API function ``hotspots.publish(result, out)``: importing a submodule sets the package as the
    attribute ``publish`` of ``hotspots``, so the package itself is made callable."""

    def __call__(self, result, out: str | Path, pdf: bool = False) -> list[Path]:
        return _publish(result, out, pdf=pdf)


_CallablePackage.__call__.__doc__ = _publish.__doc__
publish = importlib.import_module("hotspots.publish")
publish.__class__ = _CallablePackage
