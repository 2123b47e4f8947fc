"""The effect of the weighting agreement: hotspots under alternative weightings.

Input: weighted incidents on the grid (common schema + ``cell``), the weighting
table as applied, the Gi* neighbour matrix and the cells of the agreed run.
Output (``sensitivity.csv``): one row per scenario with ``scenario``,
``anecdotal_weight`` and ``intelligence_weight`` (community reports' and intelligence's
weights, each as a share of the recorded-crime weight), ``hot_cells``,
``regions``, ``jaccard_with_agreed`` (overlap of hot cells, |A & B| / |A | B|);
and (``sensitivity_regions.csv``) one row per agreed region with its evidence
mix and whether it survives without anecdotal sources (``depends_on_anecdotal``).

Scenarios: ``factual_only`` (community reports and intelligence weigh 0),
``as_agreed`` (the config's table), ``anecdotal_equal`` (they weigh as much as
recorded crime), each under the configured combination rule; then the agreed
weights under the other rule (``pooled``: one Gi* of the pooled weighted
counts, as ArcGIS; or ``sources`` when the config pools); ``high_risk_only``
(``high_risk_scenario``: the agreed weights and rule on the records their own
partner calls high risk only, ``hotspots.thresholds``). Under
``combine = "sources"`` a weighting scenario changes how much each source's
evidence counts, not the evidence itself (``hotspots.detect.combine``).
"""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from hotspots.detect.combine import ANECDOTAL
from hotspots.frames import small_codes

FACTUAL = ("recorded_crime", "health", "partner_record")


def scenario_tables(table: dict) -> dict[str, dict]:
    """The weighting tables of the three scenarios."""
    out = {}
    for name, value in (("factual_only", 0.0), ("as_agreed", None), ("anecdotal_equal", "equal")):
        t = copy.deepcopy(table)
        for ev in ANECDOTAL:
            if value == "equal":
                t["evidence"][ev] = t["evidence"].get("recorded_crime", 1.0)
            elif value is not None:
                t["evidence"][ev] = value
        out[name] = t
    return out


def weight_sensitivity(table: dict, touch, cells: pd.DataFrame, classify, records: dict[str, np.ndarray],
                       other_rules: dict[str, np.ndarray] | None = None
                       ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray]]:
    """Hot cells and regions under each scenario; returns (summary, regions, ``gi_class`` per scenario).

    ``classify(table)`` gives the ``gi_class`` per cell under a weighting table (the
    configured rule); ``other_rules`` maps a rule's name to its ``gi_class`` under the
    agreed weights. ``touch`` is the contiguity of cells (regions are its connected
    groups of hot cells). ``records``: the risk records per cell of factual and of anecdotal
    evidence (``evidence_records``), each region's ``n_factual`` and ``n_anecdotal``.
    """
    agreed_hot = np.nan_to_num(cells["gi_class"].to_numpy(float)) >= 2
    rows, classes = [], {}
    scenarios = [(name, t, None) for name, t in scenario_tables(table).items()]
    scenarios += [(name, table, cls) for name, cls in (other_rules or {}).items()]
    for name, t, cls in scenarios:
        if cls is None:
            cls = cells["gi_class"].to_numpy(float) if name == "as_agreed" else np.asarray(classify(t), float)
        classes[name] = cls
        rows.append(_scenario_row(name, anecdotal_shares(t), cls, agreed_hot, touch))
    factual_hot = np.nan_to_num(classes["factual_only"]) >= 2
    recs = []
    region = cells["region_id"].to_numpy()
    for rid in [r for r in pd.unique(region) if r]:
        idx = np.nonzero(region == rid)[0]
        recs.append({"region_id": rid, "cells": len(idx), "n_factual": int(records["factual"][idx].sum()),
                     "n_anecdotal": int(records["anecdotal"][idx].sum()),
                     "hot_cells_factual_only": int(factual_hot[idx].sum()),
                     "depends_on_anecdotal": bool(factual_hot[idx].sum() == 0)})
    regions = pd.DataFrame(recs, columns=["region_id", "cells", "n_factual", "n_anecdotal",
                                          "hot_cells_factual_only", "depends_on_anecdotal"])
    return pd.DataFrame(rows), regions, classes


def evidence_records(incidents: pd.DataFrame, n_cells: int) -> dict[str, np.ndarray]:
    """Per cell, the risk records (weight above zero, whatever their role: a partner's records of victims are
    its evidence too) of factual and of anecdotal evidence. Not the cells' ``n_<evidence>`` columns: those
    leave out records with a role and count linked duplicates (a statistics audit: a region made hot by
    missing-episode and youth-offending records read 4 factual records of its 80)."""
    codes, names = small_codes(incidents["evidence"])
    cell, risk = incidents["cell"].to_numpy(np.int64), incidents["weight"].to_numpy() > 0
    out = {}
    for kind, classes in (("factual", FACTUAL), ("anecdotal", ANECDOTAL)):
        mine = risk & np.isin(codes, [names.get_loc(e) for e in classes if e in names])
        out[kind] = np.bincount(cell[mine], minlength=n_cells)
    return out


def _count_regions(hot: np.ndarray, touch) -> int:
    """Number of contiguous groups of hot cells."""
    from scipy.sparse.csgraph import connected_components
    idx = np.nonzero(hot)[0]
    if not len(idx):
        return 0
    return int(connected_components(touch[idx][:, idx], directed=False)[0])


def anecdotal_shares(table: dict) -> dict[str, float]:
    """The weights of community reports (``anecdotal_weight``) and of intelligence (``intelligence_weight``) in
    ``table``, each as a share of recorded crime's: two columns, as partners often agree two weights (a
    statistics audit: 0.3 was printed as the anecdotal weight where intelligence weighed 0.5)."""
    crime = max(table["evidence"].get("recorded_crime", 1.0), 1e-12)
    return {"anecdotal_weight": round(table["evidence"].get("community_report", 0.0) / crime, 3),
            "intelligence_weight": round(table["evidence"].get("intelligence", 0.0) / crime, 3)}


def _scenario_row(name: str, shares: dict[str, float], cls: np.ndarray, agreed_hot: np.ndarray, touch) -> dict:
    """One row of sensitivity.csv: a scenario's weights (``anecdotal_shares``), hot and cold cells, regions and
    overlap with the agreed map."""
    hot = np.nan_to_num(cls) >= 2
    union = (hot | agreed_hot).sum()
    return {"scenario": name, **shares, "hot_cells": int(hot.sum()),
            "cold_cells": int((np.nan_to_num(cls) <= -2).sum()), "regions": _count_regions(hot, touch),
            "jaccard_with_agreed": round(float((hot & agreed_hot).sum() / union), 3) if union else 1.0}


def high_risk_scenario(incidents: pd.DataFrame, high_risk: np.ndarray, touch, cells: pd.DataFrame,
                       detect, table: dict) -> tuple[dict, np.ndarray]:
    """The ``high_risk_only`` scenario: the agreed weights, counting only the records their own partner
    calls high risk (``hotspots.thresholds.high_risk_mask``), classified by ``detect(weights)`` (the
    configured rule, ``pipeline.hotspot_grid``); returns (its sensitivity.csv row, its ``gi_class``)."""
    weights = np.where(high_risk, incidents["weight"].to_numpy(float), 0.0)
    cls = np.asarray(detect(weights), float)
    agreed_hot = np.nan_to_num(cells["gi_class"].to_numpy(float)) >= 2
    return _scenario_row("high_risk_only", anecdotal_shares(table), cls, agreed_hot, touch), cls
