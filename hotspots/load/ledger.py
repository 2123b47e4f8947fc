"""Row accounting: every input row is loaded, filtered out by the config, or rejected.

The ledger is filled by the load stage (and by the study-area clip). It gives
the per-file table that ``run`` and ``validate`` print and that
``manifest.json`` records, and ``rejects.csv`` (never whole rows: only
source, file, row, reason and the columns at fault).
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hotspots.frames import first_rows, per_distinct, row_groups

REJECT_COLUMNS = ["source_id", "file", "row", "reason", "columns"]


def _pair_counts(source: pd.Series, path: pd.Series, files: pd.DataFrame) -> np.ndarray:
    """The rows of each of ``files``' (source_id, path) pairs among the pairs ``source``, ``path``: each
    column's values numbered (a category's by its codes), the pairs counted by number (pandas' groupby
    over the two columns took 1.0 s at 10 M incidents; this 0.2 s)."""
    (cs, us), (cf, uf) = _numbered(source), _numbered(path)
    # Numbers shifted by one: a missing value (-1) counts in row or column 0, which no file looks up.
    width = len(uf) + 1
    pair = (cs.astype(np.intp) + 1) * width
    pair += cf
    pair += 1
    counts = np.bincount(pair, minlength=(len(us) + 1) * width)
    fs = pd.Index(us).get_indexer(files["source_id"]) + 1
    ff = pd.Index(uf).get_indexer(files["path"]) + 1
    return np.where((fs > 0) & (ff > 0), counts[fs * width + ff], 0).astype(int)


def _numbered(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Each value's number (-1: missing) and the values numbered: a category column's codes and categories."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy(), values.cat.categories
    codes, uniques = pd.factorize(values)
    return codes, pd.Index(uniques)


class HotspotsWarning(UserWarning):
    """Something about the input the analyst should know that does not stop the run."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Ledger:
    files: list[dict] = field(default_factory=list)       # source_id, path, sha256, rows_read
    _rejects: list[pd.DataFrame] = field(default_factory=list)
    _rejects_table: tuple | None = field(default=None, repr=False)    # (parts put together, the table)
    _filtered: list[pd.DataFrame] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # source_id -> message when it failed whole
    _notes: list[pd.DataFrame] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)     # source_id, file, message

    @classmethod
    def restored(cls, files: list[dict], rejects: pd.DataFrame, filtered: pd.DataFrame,
                 notes: pd.DataFrame) -> "Ledger":
        """The ledger whose ``files``, ``rejects``, ``filtered`` and ``notes`` these are (the cache's whole
        load); its warnings are entered again with ``warn``, which shows them."""
        ledger = cls(files=list(files))
        for parts, table in ((ledger._rejects, rejects), (ledger._filtered, filtered), (ledger._notes, notes)):
            if len(table):
                parts.append(table)
        return ledger

    def add_file(self, source_id: str, path: Path, rows_read: int, sha: str | None = None) -> int:
        """Register a file (``sha``: its sha256 when already computed); returns its index (used in incident ids)."""
        self.files.append({"source_id": source_id, "path": str(path), "sha256": sha or sha256(path),
                           "rows_read": int(rows_read)})
        return len(self.files) - 1

    def incident_ids(self, table: pd.DataFrame) -> pd.Series:
        """Each row's incident id, ``<source_id>:<file index>:<row>``, from its ``source_id``, ``_file``
        and ``_row`` (the file index is ``add_file``'s). Made only where an id is read (the record a
        duplicate or a linked record points to): the pipeline holds no id a row (250 MB at 10 M incidents)."""
        index: dict[tuple[str, str], int] = {}
        for k, f in enumerate(self.files):
            index.setdefault((f["source_id"], f["path"]), k)
        pair = row_groups([table["source_id"], table["_file"]])
        first = first_rows(pair)
        sources, files = table["source_id"].iloc[first].astype(str), table["_file"].iloc[first].astype(str)
        prefix = np.array([f"{s}:{index[(s, str(Path(f)))]}:" for s, f in zip(sources, files)], dtype=object)
        return pd.Series(prefix[pair], index=table.index, dtype="str") + \
            pd.Series(table["_row"].to_numpy(), index=table.index).astype(str)

    def warn(self, source_id: str, path: str, message: str) -> None:
        """Record something the analyst should know that is not an error (a file with a header
        and no data rows), and show it once as a ``HotspotsWarning``."""
        self.warnings.append({"source_id": source_id, "file": path, "message": message})
        warnings.warn(f"source '{source_id}', file {path}: {message}", HotspotsWarning, stacklevel=2)

    # Each file's rows are kept as a table only when there are some (most files of a run have no
    # rejects, filtered rows or notes: 74 files, three tables each, were 0.1 s of the 10 k benchmark).
    def reject(self, source_id: str, path: str, rows, reasons, columns) -> None:
        if not len(rows):
            return
        self._rejects.append(pd.DataFrame({"source_id": source_id, "file": path, "row": rows,
                                           "reason": reasons, "columns": columns}))

    def filter(self, source_id: str, path: str, rows, reasons) -> None:
        if not len(rows):
            return
        self._filtered.append(pd.DataFrame({"source_id": source_id, "file": path, "row": rows,
                                            "reason": reasons}))

    def note(self, source_id: str, path: str, rows, notes, columns) -> None:
        """Record rows that were loaded after a correction (a swapped longitude and latitude put
        back, an arrival time used for a blank assault date). Notes do not change the accounting."""
        if not len(rows):
            return
        self._notes.append(pd.DataFrame({"source_id": source_id, "file": path, "row": rows,
                                         "note": notes, "columns": columns}))

    @property
    def notes(self) -> pd.DataFrame:
        """``source_id``, ``file``, ``row``, ``note``, ``columns`` of every corrected row that was loaded."""
        parts = [n for n in self._notes if len(n)]
        if not parts:
            return pd.DataFrame(columns=["source_id", "file", "row", "note", "columns"])
        return pd.concat(parts, ignore_index=True).sort_values(["source_id", "file", "row"],
                                                               kind="stable").reset_index(drop=True)

    @property
    def rejects(self) -> pd.DataFrame:
        """``source_id``, ``file``, ``row``, ``reason``, ``columns`` of every rejected row, in that order. Put
        together once until the next reject (the accounting, the summary and rejects.csv read it: 420,000
        rows at 10 M incidents); each caller gets its own shallow copy (copy on write: its changes stay its)."""
        if not self._rejects:
            return pd.DataFrame(columns=REJECT_COLUMNS)
        if self._rejects_table is None or self._rejects_table[0] != len(self._rejects):
            df = pd.concat([r for r in self._rejects if len(r)] or [pd.DataFrame(columns=REJECT_COLUMNS)],
                           ignore_index=True)
            self._rejects_table = (len(self._rejects),
                                   df.sort_values(["source_id", "file", "row"], kind="stable").reset_index(drop=True))
        return self._rejects_table[1].copy(deep=False)

    @property
    def filtered(self) -> pd.DataFrame:
        cols = ["source_id", "file", "row", "reason"]
        parts = [f for f in self._filtered if len(f)]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)

    def accounting(self, incidents: pd.DataFrame) -> pd.DataFrame:
        """One row per file: rows_read, rows_loaded, rows_filtered, rows_rejected (read = the other three)."""
        files = pd.DataFrame(self.files, columns=["source_id", "path", "sha256", "rows_read"])
        # Counted by source and file together: two sources may read the same file.
        for name, table, path in (("rows_loaded", incidents, "_file"), ("rows_filtered", self.filtered, "file"),
                                  ("rows_rejected", self.rejects, "file")):
            files[name] = _pair_counts(table["source_id"], table[path], files) if len(table) else 0
        return files

    @staticmethod
    def unaccounted(acc: pd.DataFrame) -> pd.DataFrame:
        """The rows of ``accounting`` whose file's rows do not add up (read != loaded + filtered + rejected)."""
        return acc[acc["rows_read"] != acc[["rows_loaded", "rows_filtered", "rows_rejected"]].sum(axis=1)]

    def summary(self, acc: pd.DataFrame, top: int = 3) -> pd.DataFrame:
        """Per source, from ``accounting``: files, read, loaded, filtered, rejected, top reject reasons,
        top filter reasons.

        A source that failed before any of its files was counted (``failures``) has a row of zeros:
        every source of the config appears in the table."""
        counts = ["rows_read", "rows_loaded", "rows_filtered", "rows_rejected"]
        per = acc.groupby("source_id", sort=False)[counts].sum()
        per.insert(0, "files", acc.groupby("source_id", sort=False).size())
        failed = [sid for sid in self.failures if sid not in per.index]
        if failed:
            zeros = pd.DataFrame(0, index=pd.Index(failed, name="source_id"), columns=["files", *counts])
            per = pd.concat([per, zeros]) if len(per) else zeros
        per = per.astype(int)
        tops = _top_reasons(self.rejects, top)
        per["top_reject_reasons"] = [tops.get(s, "") for s in per.index]
        # Filtered rows are the config's choice, but 12,567 of the City's 18,347 rows went with no word of
        # why (the categories filter, the study period, a handling code): their reasons are listed too.
        tops = _top_reasons(self.filtered, top)
        per["top_filter_reasons"] = [tops.get(s, "") for s in per.index]
        return per.reset_index()


def _top_reasons(table: pd.DataFrame, top: int) -> dict[str, str]:
    """Per source of ``table`` (rejects or filtered rows), its ``top`` reasons with their counts,
    "reason (n); ...". Reasons quoting a value (none in the load stage now) are grouped by their stem,
    worked out once per distinct reason (a duplicate's names its first: 80,000 of 420,000 at 10 M
    incidents), by pandas' vectorised replace."""
    stem = per_distinct(table["reason"], lambda reasons: reasons.str.replace(r" '.*'$", "", regex=True)
                        .str.replace(r"^duplicate of .*$", "duplicate", regex=True))
    return {sid: "; ".join(f"{r} ({n})" for r, n in grp.value_counts().head(top).items())
            for sid, grp in stem.groupby(table["source_id"])}
