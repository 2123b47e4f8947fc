"""Governance: which records may leave the agency that recorded them, and keeping roles apart.

Handling codes decide where a record may go (College of Policing APP):

- 3x5x2 ``P``: may be shared with the partnership;
- 3x5x2 ``C``: only with its conditions recorded on its [[sources]] entry in the config
  (``handling_conditions = "..."``, the partnership's record that the conditions are met for
  this analysis). Otherwise it is used in its originating agency's outputs only. Conditions
  written on a record ("Police and YOS only") restrict it, they do not release it: shared with
  the whole partnership and the public they would be broken (a disclosure audit);
- legacy 5x5x5 handling ``1``-``3`` may be shared; ``4`` and ``5`` never leave
  the originating agency;
- a graded record (an intelligence grade but no handling code, neither its
  own nor its source's) is kept to its agency: no code, no sharing.
- ungraded records without a handling code (open police data, health and
  partner records shared under the partnership's agreement) may be shared;
- any other code (``CONFIDENTIAL``, ``Code 5``, ``4.0``: a value outside the
  defined sets of ``hotspots.schema.HANDLING_CODES``) is kept to its agency.
  Sharing is an allow-list: only the codes above that may be shared are, never
  by default. (A source's own ``handling`` outside the sets fails the config.)

A source's ``handling`` in the config is both the code of its records that carry none and a
limit on all of them: a record is shared only when its own code and its source's both allow it
(a source set to ``4`` never leaves its agency, whatever its rows say; a disclosure audit found 51
of such a source's 65 records in the shared outputs).

The originating agency of a record is its source (``source_id``). An
agency-only run (``agency=<source_id>``) uses that source's records whatever
their code, plus every other source's shareable records.

Roles (victim / suspect / witness / unknown) concern people: ``role_counts``
counts each role apart, and ``role_layers`` splits incidents by role so that no
layer ever sums victims and suspects.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from hotspots.frames import take_by_column, text_codes, text_in
from hotspots.load.ledger import Ledger
from hotspots.weight import lookup

REASON_C = "handling code C without conditions recorded in the config: originating agency only"
REASON_5X5X5 = "5x5x5 handling code 4 or 5: originating agency only"
REASON_NONE = "graded record without a handling code: originating agency only"
REASON_UNKNOWN = "unknown handling code: originating agency only"
SHAREABLE_CODES = ("P", "1", "2", "3")   # shared as they are; C only with its conditions recorded
# ``restriction``'s answers, by code: shared, unknown code, C without conditions, 5x5x5 4 or 5, graded without a code.
SHARED, UNKNOWN, C, FIVE, BLANK = range(5)
REASONS = ["", REASON_UNKNOWN, REASON_C, REASON_5X5X5, REASON_NONE]
ROLES = ("victim", "suspect", "witness", "unknown")


def _kinds(code: np.ndarray) -> np.ndarray:
    """``restriction``'s answer for each handling code (upper case, stripped), C as if without conditions."""
    # An allow-list: a record is shared only when its code says it may be; anything else stays.
    return np.select([np.isin(code, SHAREABLE_CODES), code == "C", np.isin(code, ["4", "5"]), code == ""],
                     [SHARED, C, FIVE, BLANK], UNKNOWN).astype(np.int8)


def restriction(incidents: pd.DataFrame, cfg) -> pd.Series:
    """Why each record may not be shared ("" where it may); see the module docstring. Categories:
    each distinct handling code and grade is read once, and the answer is a code a row (a string a
    row was 5 GB at 23 M records)."""
    def column(name: str) -> pd.Series:     # "" where the column is missing (made only then)
        return incidents[name] if name in incidents else pd.Series("", index=incidents.index)

    codes, values = text_codes(column("handling"))
    kind = _kinds(values.str.strip().str.upper().to_numpy(object))[codes]
    # The source's own code, a limit on each of its records: none without a code, and C released by
    # conditions recorded in the config.
    released = {s.id for s in cfg.sources if str(s.handling_conditions).strip()}
    limit = {}
    for s in cfg.sources:
        k = int(_kinds(np.array([str(s.handling).strip().upper()], dtype=object))[0])
        limit[s.id] = float(SHARED if k == BLANK or (k == C and s.id in released) else k)
    source_kind = lookup(incidents["source_id"], limit, float(SHARED)).astype(np.int8)
    in_released = lookup(incidents["source_id"], dict.fromkeys(released, 1.0), 0.0) > 0
    graded = np.zeros(len(incidents), bool)
    for col in ("grade_source", "grade_intel"):
        gcodes, gvalues = text_codes(column(col))
        graded |= np.asarray(gvalues != "")[gcodes]
    why = np.where(kind == C, np.where(in_released, SHARED, C), kind)
    why = np.where(kind == BLANK, np.where(graded, BLANK, SHARED), why)
    why = np.where(why == SHARED, source_kind, why).astype(np.int8)
    return pd.Series(pd.Categorical.from_codes(why, categories=REASONS), index=incidents.index,
                     name="restriction").cat.remove_unused_categories()


def shareable(incidents: pd.DataFrame, cfg, agency: str | None = None) -> pd.Series:
    """Boolean mask: True where a record may be used in the outputs being made.

    For shared outputs (``agency`` None) only records whose handling allows
    sharing; for an agency's own outputs also that agency's restricted records.
    """
    ok = restriction(incidents, cfg) == ""
    if agency is not None:
        ok |= incidents["source_id"] == agency
    return ok


def split_shared(incidents: pd.DataFrame, cfg, ledger: Ledger, agency: str | None = None,
                 consume: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept, held back): the records the outputs may use, and the rest.

    Call it right after loading (the incidents still carry ``_file`` and
    ``_row``): every record held back is counted in the ledger as filtered, with
    its reason, so the row accounting still balances. With ``consume`` the kept
    records are taken column by column and ``incidents`` is emptied (the caller
    lets it go): the table is not held twice.
    """
    ok = shareable(incidents, cfg, agency)
    held = incidents[~ok]
    if len(held):
        why = restriction(held, cfg)
        for (sid, path), grp in held.groupby(["source_id", "_file"], sort=False):
            ledger.filter(sid, path, grp["_row"].to_numpy(), why[grp.index].to_numpy())
    if ok.all():
        return incidents, held
    return (take_by_column(incidents, ok.to_numpy()) if consume else incidents[ok.to_numpy()]), held


def role_counts(incidents: pd.DataFrame) -> pd.DataFrame:
    """Records per source and role (``source_id``, ``role``, ``n``) for the records that concern a
    person: each role counted apart, never summed."""
    person = incidents[~text_in(incidents["role"], [""])]
    if not len(person):
        return pd.DataFrame(columns=["source_id", "role", "n"])
    out = person.groupby(["source_id", "role"]).size().rename("n").reset_index()
    return out.sort_values(["source_id", "role"], kind="stable").reset_index(drop=True)


def role_layers(incidents: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Incidents split by role: ``""`` (records about places or incidents, no person) and one table
    per role present. A layer never mixes two roles."""
    role = incidents["role"].fillna("").astype(str)
    return {r: incidents[role == r] for r in np.unique(role)}
