"""Read and check a partnership's TOML config.

Paths in the config are relative to the config file. Every problem is a
``UserError`` naming the config file and the key at fault.
"""
from __future__ import annotations

import glob
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hotspots.errors import UserError
from hotspots.schema import EVIDENCE_CLASSES, TAXONOMY

TIERS = ("partner", "public")


@dataclass
class Source:
    """One [[sources]] entry: a partner's extract and how to read it."""
    id: str
    path: str
    schema: str
    evidence: str | None = None
    weight: float = 1.0
    categories: list[str] | None = None
    coverage: list[str] | None = None
    legal_basis: str = ""
    sharing_agreement: str = ""
    handling: str = ""
    handling_conditions: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def files(self, base: Path) -> list[Path]:
        """The files this source's path or glob names, sorted."""
        pattern = str(base / self.path)
        return sorted(Path(p) for p in glob.glob(pattern))


@dataclass
class Boundary:
    """One [[boundaries]] layer: any vector file geopandas reads, any CRS."""
    id: str
    path: str
    name_field: str
    layer: str | None = None


@dataclass
class KeyBuildings:
    """One [[key_buildings]] layer."""
    id: str
    path: str
    schema: str
    type: str | None = None
    radius_m: list[float] = field(default_factory=lambda: [100.0, 250.0, 500.0])
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Config:
    """A whole run's configuration, with paths resolved against ``base``."""
    path: Path
    base: Path
    name: str
    start: pd.Timestamp
    end: pd.Timestamp          # exclusive upper bound (start of the month/day after `end`)
    end_label: str
    start_label: str
    area: str | None
    area_names: list[str] | None
    sources: list[Source]
    boundaries: list[Boundary]
    key_buildings: list[KeyBuildings]
    weights: dict[str, Any]
    analysis: dict[str, Any]
    outputs: dict[str, Any]
    attribution: list[str]
    raw: dict[str, Any]

    def resolve(self, rel: str) -> Path:
        return (self.base / rel).resolve()

    @property
    def tiers(self) -> list[str]:
        return list(self.outputs.get("tiers", ["partner"]))


def _period(value: Any, key: str, path: Path, end: bool) -> tuple[pd.Timestamp, str]:
    """Parse a month ("2018-01") or date ("2018-01-15"); for an end, return the exclusive bound."""
    text = str(value).strip()
    try:
        if not re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", text):
            raise ValueError(text)
        if len(text) == 7:
            ts = pd.Timestamp(text + "-01")
            return (ts + pd.offsets.MonthBegin(1) if end else ts), text
        ts = pd.Timestamp(text)
        return (ts + pd.Timedelta(days=1) if end else ts), text
    except (ValueError, TypeError):
        raise UserError(f"[study] {key} = '{text}' is not a month (YYYY-MM) or date (YYYY-MM-DD).",
                        file=str(path)) from None


def _require(table: dict, key: str, where: str, path: Path, kind: type | tuple = str):
    if key not in table:
        raise UserError(f"{where} is missing the key '{key}'.", file=str(path))
    value = table[key]
    if not isinstance(value, kind):
        raise UserError(f"{where} key '{key}' should be {getattr(kind, '__name__', kind)}, "
                        f"got {value!r}.", file=str(path))
    return value


def _as_list(value: Any) -> list | None:
    if value is None:
        return None
    return [value] if isinstance(value, (str, int, float)) else list(value)


def load_config(path: str | Path) -> Config:
    """Read ``path`` and return a checked ``Config``."""
    path = Path(path)
    if not path.is_file():
        raise UserError("the config file does not exist.", file=str(path),
                        hint="Give the path to a .toml file, e.g. hotspots run partnership.toml.")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"the config is not valid TOML ({exc}).", file=str(path)) from None
    except UnicodeDecodeError:
        raise UserError("the config is not UTF-8 text.", file=str(path)) from None
    base = path.resolve().parent
    study = raw.get("study", {})
    if not isinstance(study, dict):
        raise UserError("[study] should be a table.", file=str(path))
    start, start_label = _period(_require(study, "start", "[study]", path, (str,)), "start", path, False)
    end, end_label = _period(_require(study, "end", "[study]", path, (str,)), "end", path, True)
    if end <= start:
        raise UserError(f"[study] end ({end_label}) is before start ({start_label}).", file=str(path))

    sources = []
    seen = set()
    for k, s in enumerate(raw.get("sources", []), start=1):
        where = f"[[sources]] number {k}"
        sid = _require(s, "id", where, path)
        if sid in seen:
            raise UserError(f"{where}: the id '{sid}' is used twice.", file=str(path))
        seen.add(sid)
        where = f"[[sources]] '{sid}'"
        evidence = s.get("evidence")
        if evidence is not None and evidence not in EVIDENCE_CLASSES:
            raise UserError(f"{where}: evidence '{evidence}' is not one of "
                            f"{', '.join(EVIDENCE_CLASSES)}.", file=str(path))
        cats = _as_list(s.get("categories"))
        for c in cats or []:
            if c not in TAXONOMY:
                raise UserError(f"{where}: category '{c}' is not in the common taxonomy "
                                f"({', '.join(sorted(TAXONOMY))}).", file=str(path))
        known = {"id", "path", "schema", "evidence", "weight", "categories", "coverage",
                 "legal_basis", "sharing_agreement", "handling", "handling_conditions"}
        sources.append(Source(
            id=sid, path=_require(s, "path", where, path), schema=_require(s, "schema", where, path),
            evidence=evidence, weight=float(s.get("weight", 1.0)), categories=cats,
            coverage=_as_list(s.get("coverage")), legal_basis=str(s.get("legal_basis", "")),
            sharing_agreement=str(s.get("sharing_agreement", "")), handling=str(s.get("handling", "")),
            handling_conditions=str(s.get("handling_conditions", "")),
            options={k2: v for k2, v in s.items() if k2 not in known}))
    if not sources:
        raise UserError("the config has no [[sources]].", file=str(path),
                        hint="Add at least one [[sources]] table with id, path and schema.")

    boundaries = []
    for k, b in enumerate(raw.get("boundaries", []), start=1):
        where = f"[[boundaries]] number {k}"
        boundaries.append(Boundary(id=_require(b, "id", where, path), path=_require(b, "path", where, path),
                                   name_field=_require(b, "name_field", where, path), layer=b.get("layer")))
    buildings = []
    for k, b in enumerate(raw.get("key_buildings", []), start=1):
        where = f"[[key_buildings]] number {k}"
        radius = _as_list(b.get("radius_m", [100, 250, 500]))
        known = {"id", "path", "schema", "type", "radius_m"}
        buildings.append(KeyBuildings(
            id=_require(b, "id", where, path), path=_require(b, "path", where, path),
            schema=_require(b, "schema", where, path), type=b.get("type"),
            radius_m=[float(r) for r in radius],
            options={k2: v for k2, v in b.items() if k2 not in known}))

    area = study.get("area")
    if area is not None and area not in {b.id for b in boundaries}:
        raise UserError(f"[study] area = '{area}' names no [[boundaries]] id "
                        f"(have: {', '.join(b.id for b in boundaries) or 'none'}).", file=str(path))
    outputs = raw.get("outputs", {})
    for t in outputs.get("tiers", ["partner"]):
        if t not in TIERS:
            raise UserError(f"[outputs] tiers: '{t}' is not one of {', '.join(TIERS)}.", file=str(path))
    analysis = raw.get("analysis", {})
    for key in ("cell_size_m", "neighbour_distance_m", "bandwidth_m", "fdr_alpha"):
        if key in analysis and not (isinstance(analysis[key], (int, float)) and analysis[key] > 0):
            raise UserError(f"[analysis] {key} should be a positive number, got {analysis[key]!r}.",
                            file=str(path))
    return Config(
        path=path.resolve(), base=base, name=str(study.get("name", path.stem)),
        start=start, end=end, start_label=start_label, end_label=end_label,
        area=area, area_names=_as_list(study.get("area_names")), sources=sources,
        boundaries=boundaries, key_buildings=buildings, weights=raw.get("weights", {}),
        analysis=analysis, outputs=outputs,
        attribution=_as_list(raw.get("attribution", [])) or [], raw=raw)
