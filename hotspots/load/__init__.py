"""Load: every partner's extract into the common incident schema.

``load_sources(config)`` reads every file of every source with its schema
from ``data_schemas/`` (or the partnership's own mapping, ``spec``), maps it
(``mapping``: fields, ``dates``, ``location`` with offline ``geocode``),
filters it by the config's period and categories, merges records published
twice (``dedupe``) and flags probable duplicates of one incident across
agencies (``linkage``). It returns a ``Loaded``:

- ``incidents``: common-schema columns plus ``duplicate_of`` (see
  ``linkage``), the bookkeeping columns ``_file`` and ``_row`` (kept until the
  study-area clip so that late rejects still name their row);
- ``ledger``: accounts for every input row (loaded, filtered, rejected) and
  notes corrections;
- ``geocoding``: per source whose locations are geocoded, the number of rows
  matched at each level: ``{"postcode", "street", "place", "unmatched"}`` (over
  every row the geocoder was asked about, whatever else was wrong with it);
- ``linkage``: what ``linkage.link_duplicates`` did (``linked``, thresholds).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
import stat
import warnings
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from hotspots import background
from hotspots.config import Config, Source
from hotspots.errors import UserError
from hotspots.frames import concat_by_column, release_freed_memory, used_categories
from hotspots.load.dedupe import DEDUPE_KEYS, dedupe_keys, duplicates
from hotspots.load import cache
from hotspots.load.dates import TIME_UNREAD
from hotspots.load.geocode import (Geocoder, build_geocoder, collapse_streets, geocoding_options, match_counts,
                                   postcode_files)
from hotspots.load.ledger import HotspotsWarning, Ledger, sha256
from hotspots.load.linkage import link_duplicates, linkage_options
from hotspots.load.personal import personal_header
from hotspots.load.mapping import check_columns, map_rows, street_points_from, street_source
from hotspots.load.readers import read_source, schema_columns
from hotspots.load.spec import needs_geocoder, resolve_schema
from hotspots.schema import TAXONOMY, empty_incidents, enforce

# Columns outside the common schema that ``finish`` keeps: bookkeeping about
# incidents (never about people), which later stages read.
ANNOTATIONS = ("duplicate_of",)
# Common-schema fields unique to a record, read only while loading (duplicates, cross-agency linkage).
IDENTIFIERS = ("incident_id", "source_ref")
# Common-schema text fields with few distinct values, held as categories once analysed (``finish``).
COMPACT = ("source_id", "evidence", "category", "source_category", "source_severity", "date_precision",
           "location_precision", "role", "grade_source", "grade_intel", "handling")


@dataclass
class Loaded:
    incidents: pd.DataFrame
    ledger: Ledger
    geocoding: dict[str, dict[str, int]] = field(default_factory=dict)
    linkage: dict = field(default_factory=dict)
    # Named snap points of the sources that publish street names (police.uk "On or near ..."): public
    # place names, for the map's street labels and region names. Each distinct point once, with ``n``,
    # its records (``geocode.collapse_streets``): ``name``, ``x``, ``y``, ``n``.
    streets: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["name", "x", "y", "n"]))
    # Waits for the files' cache entries, written on the second core while the run goes on (``_run_jobs``),
    # and warns once if they could not be: the run calls it when it is done.
    cache_written: Callable[[], None] = lambda: None


def with_subcategories(categories: list[str]) -> set[str]:
    """The categories and every taxonomy category whose ``parent`` is one of them."""
    chosen = set(categories)
    return chosen | {c for c, v in TAXONOMY.items() if v.get("parent") in chosen}


@dataclass
class _Plan:
    src: Source
    schema: dict | None = None
    files: list = field(default_factory=list)
    error: UserError | None = None


def _plan(cfg: Config, src: Source) -> _Plan:
    plan = _Plan(src)
    try:
        mapping = src.options.get("mapping")
        plan.schema = resolve_schema(src.schema, cfg.base, str(mapping) if mapping else None)
        plan.files = src.files(cfg.base)
        if not plan.files:
            raise UserError(f"[[sources]] '{src.id}': path '{src.path}' matches no file.",
                            file=str(cfg.path), hint=f"Paths are relative to the config's folder ({cfg.base}).")
    except UserError as exc:
        plan.error = exc
    return plan


@dataclass
class LoadOptions:
    """How ``load_sources`` runs; every choice gives the same incidents and ledger.

    - ``reuse``: take a file's normalised incidents and ledger entries from the
      cache when its key matches (``hotspots.load.cache``); ``fresh`` reads every
      file again (and refreshes the cache). ``cache`` is the folder (default:
      ``cache.cache_dir`` of the config); ``write`` stores what was read.
    - ``processes``: worker processes for the files to read (None: both cores when
      there are several files and at least ``PARALLEL_MIN_BYTES`` to read; 1: this
      process only). Files are mapped in batches (``batches``, ``load_files``).
    - ``client``: a ``dask.distributed.Client``; the files are read on its workers
      (``hotspots.distributed``), which need the package and read access to the data.
    - ``compact``: keep the few-valued text columns (``COMPACT``) as categories, as the
      pipeline does from each file on; off, they are strings (one value a row, and
      ``value_counts`` of a subset names only the values it has).
    - ``wait_for_cache``: off, files loaded in this process are still being stored in the cache (on
      the second core, at low priority) when ``load_sources`` returns, and ``Loaded.cache_written``
      waits for them: the pipeline calls it when its analysis is done (``hotspots run``: once it has
      published).
    """
    reuse: bool = False
    write: bool = False
    cache: Path | None = None
    processes: int | None = None
    client: object | None = None
    compact: bool = False
    wait_for_cache: bool = True

    @classmethod
    def for_run(cls, fresh: bool = False, client=None) -> "LoadOptions":
        """What ``hotspots run`` uses: reuse unless ``fresh``, write the cache, both cores."""
        return cls(reuse=not fresh, write=True, client=client)


# Below this many bytes of files to read, starting worker processes costs more than it saves. Many
# small files do not pay for them either once they are mapped in batches (``load_files``): the 10 k
# benchmark's 74 files (2 MB) load in 1.7 s in one process, 2.0-2.2 s in two.
PARALLEL_MIN_BYTES = 8_000_000
# The most bytes of files whose cache entries a forked process writes while the run goes on (``_run_jobs``).
DEFERRED_WRITE_BYTES = 400_000_000
# The priority of that forked writer (``os.nice``): below the analysis' own steps on the second core.
NICE_WRITER = 10
# The most bytes of files one ``load_files`` call maps as one table.
BATCH_BYTES = 32_000_000


@dataclass
class FileJob:
    """One file of one source to load: everything ``load_files`` needs, picklable for a worker."""
    source_id: str
    path: str
    schema: dict
    evidence: str | None
    fixed_evidence: bool
    selected: frozenset | None
    start: pd.Timestamp
    end: pd.Timestamp
    handling: str
    street: bool            # the schema names streets: keep the file's snap points
    geocoded: bool          # the schema's locations need the geocoder
    sha256: str = ""
    key: str = ""
    size: int = 0
    mtime_ns: int = 0       # the file's time stamp when it was hashed (``changed_since_hashed``)
    window: str = "study period"    # what start and end bound: the study's, or a source's ``period`` within it


@dataclass
class FileResult:
    """What loading one file gave: the ledger's entries and the loaded rows (see ``load_files``).

    ``stage`` says how far the file got when ``error`` is set: "read" (nothing to
    account), "check" (the header did not match: only its street points exist) or
    "map" (counted in the ledger, then failed)."""
    rows_read: int = 0
    incidents: pd.DataFrame | None = None
    rejects: pd.DataFrame | None = None        # _row, reason, columns
    filtered: pd.DataFrame | None = None       # _row, reason
    notes: pd.DataFrame | None = None          # _row, note, columns
    streets: pd.DataFrame | None = None        # name, x, y (None: the schema names no streets)
    geocoding: dict | None = None              # match level -> rows (None: not geocoded)
    warning: str | None = None
    error: UserError | None = None
    stage: str = ""
    cached: bool = False


def load_files(jobs: list[FileJob], geocoder: Geocoder | None = None) -> list[FileResult]:
    """Read files, map them to the common schema, locate and filter them (no ledger, no cache);
    one ``FileResult`` per job, in order.

    Runs anywhere (this process, a worker process, a Dask worker): the results are
    pure data. Each ``incidents`` holds the file's kept rows with ``_file`` left
    blank: ``load_sources`` fills it in file order (and makes the incident ids,
    ``Ledger.incident_ids``, where they are read).

    Consecutive files of one source whose tables have the same columns are mapped as one
    table: mapping costs about 0.1 s a file however small the file (pandas' cost per call,
    30 to 40 calls a field: 7.1 s of the 10 k benchmark's 74 files in one process), and every
    step of it works row by row, so each file's share is what mapping it alone gives (tested).
    A group that fails to map is mapped again file by file, so that the error names its file.
    """
    results: list[FileResult] = []
    ready: list[tuple[int, pd.DataFrame, list[str]]] = []
    for k, job in enumerate(jobs):
        res, raw, header = _read_checked(job)
        results.append(res)
        if raw is not None:
            ready.append((k, raw, header))
    i = 0
    while i < len(ready):
        j, first = i + 1, jobs[ready[i][0]]
        while (j < len(ready) and list(ready[j][1].columns) == list(ready[i][1].columns)
               and _same_mapping(jobs[ready[j][0]], first)):
            j += 1
        group, i = ready[i:j], j
        if len(group) > 1:
            try:
                _map_group([jobs[k] for k, _, _ in group], [results[k] for k, _, _ in group],
                           [raw for _, raw, _ in group], geocoder)
                continue
            except UserError:
                pass        # file by file below: the error then names the file it is in
        for k, raw, header in group:
            try:
                parts = _map(raw, jobs[k], geocoder, header)
            except UserError as exc:
                results[k].error, results[k].stage = exc, "map"
                parts = {"where": None}
            if jobs[k].street and results[k].streets is None:
                results[k].streets = street_points_from(raw, jobs[k].schema, where=parts["where"])
            if results[k].error is None:
                _fill(results[k], jobs[k], parts)
    return results


def _same_mapping(a: FileJob, b: FileJob) -> bool:
    """Whether two files are mapped alike (one source, one schema, one period and selection)."""
    return (a.source_id, a.evidence, a.fixed_evidence, a.selected, a.start, a.end, a.handling, a.geocoded) == \
        (b.source_id, b.evidence, b.fixed_evidence, b.selected, b.start, b.end, b.handling, b.geocoded) \
        and a.schema == b.schema


def _read_checked(job: FileJob) -> tuple[FileResult, pd.DataFrame | None, list[str] | None]:
    """Read one file and check its header: (its result so far, its rows or None, its header)."""
    schema, path = job.schema, Path(job.path)
    res = FileResult()
    used = schema_columns(schema)
    try:
        raw, header, noticed = read_source(path, schema["reader"], keep=used | set(street_source(schema).values()))
    except UserError as exc:
        res.error, res.stage = exc, "read"
        return res, None, None
    try:
        # A file whose header the mapping does not recognise fails before it is counted:
        # never "0 rows read" for a file of the wrong shape.
        check_columns(raw, schema, str(path), header)
    except UserError as exc:
        if noticed:     # which sheet of a workbook was read, when it may not be the one meant
            exc = UserError(f"{exc.message} ({noticed})", file=exc.file, row=exc.row, column=exc.column,
                            hint=exc.hint)
        res.error, res.stage = exc, "check"
        if job.street:      # its snap points still name streets (``load_files`` finds the others')
            res.streets = street_points_from(raw, schema)
        return res, None, None
    res.rows_read = len(raw)
    notes = ([] if len(raw) else ["the file has no data rows."]) + ([noticed] if noticed else [])
    # A column the mapping reads whose header names the person, not the place or the incident (a date of
    # birth mapped as the date, a patient's home postcode as the place: an onboarding audit found both
    # loaded with no word). Said, not refused: a header can mislead.
    personal = [f"'{c}' ({why})" for c in dict.fromkeys(header) if c in used and (why := personal_header(c))]
    if personal:
        notes.append(f"the mapping reads {', '.join(personal)}, whose header names personal data: hotspots maps "
                     "incidents and places, not people; check that the mapping reads the incident's own column.")
    # Two columns of one name (a partner's "Date" reported and "Date" of the incident): the first is read,
    # which is said, never chosen silently (hostile audit).
    twice = sorted({c for c in header if c in used and header.count(c) > 1})
    if twice:
        notes.append(f"the header names {', '.join(repr(c) for c in twice)} more than once: the first "
                     "column of each name is read.")
    res.warning = " ".join(notes)
    return res, raw, header


def _fill(res: FileResult, job: FileJob, parts: dict) -> None:
    res.incidents, res.rejects, res.filtered, res.notes = (parts[k] for k in ("incidents", "rejects", "filtered",
                                                                           "notes"))
    unread = res.notes[res.notes["note"] == TIME_UNREAD]
    if len(unread):     # loaded, a day wide: said, or a column of '2:30 PM' lost every hour with no word
        said = (f"{len(unread):,} rows' time (column {unread['columns'].iat[0]}) is not a time the mapping reads "
                f"(row {unread['_row'].iat[0]} is the first): each is taken as the whole day. Add its format to "
                "the mapping's date time_formats, or blank the cell.")
        res.warning = f"{res.warning} {said}" if res.warning else said
    if len(parts["geocoded"]) or job.geocoded:
        res.geocoding = match_counts(parts["geocoded"])


def _map_group(jobs: list[FileJob], results: list[FileResult], raws: list[pd.DataFrame],
               geocoder: Geocoder | None) -> None:
    """Map files with the same columns as one table (``load_files``), then split each table by file:
    ``_row`` is numbered through the whole table for the mapping, then given back per file. The
    files' snap points (``street_points_from``) are found here too, in one pass."""
    sizes = [len(r) for r in raws]
    owner = np.repeat(np.arange(len(raws)), sizes)
    local = np.concatenate([r["_row"].to_numpy() for r in raws])
    whole = pd.concat(raws, ignore_index=True)
    whole["_row"] = np.arange(1, len(whole) + 1)
    parts = _map(whole, jobs[0], geocoder, None)
    if jobs[0].street:
        points = street_points_from(whole, jobs[0].schema, keep_index=True, where=parts["where"])
        at = np.searchsorted(owner[points.index.to_numpy()], np.arange(len(raws) + 1))
        for f, res in enumerate(results):
            res.streets = points.iloc[at[f]:at[f + 1]].reset_index(drop=True)
    del parts["where"]
    bounds = np.arange(len(raws) + 1)
    split: dict[str, list] = {}
    for name, table in parts.items():
        # Every table keeps the rows in their order, so each file's rows are one run of them.
        g = table.index.to_numpy() if name == "geocoded" else table["_row"].to_numpy() - 1
        at = np.searchsorted(owner[g], bounds)
        pieces = []
        for f in range(len(raws)):
            piece = table.iloc[at[f]:at[f + 1]]
            if name == "geocoded":
                pieces.append(piece.set_axis(local[piece.index.to_numpy()] - 1))
                continue
            piece = piece.copy()
            piece["_row"] = local[piece["_row"].to_numpy() - 1]
            if name == "incidents":
                # As mapped alone: indexed as the file's rows, categories only of the file's values.
                piece.index = pd.Index(piece["_row"].to_numpy() - 1)
                for col in COMPACT:
                    if col in piece and isinstance(piece[col].dtype, pd.CategoricalDtype):
                        piece[col] = used_categories(piece[col])
            else:
                piece = piece.reset_index(drop=True)
            pieces.append(piece)
        split[name] = pieces
    for f, (job, res) in enumerate(zip(jobs, results)):
        _fill(res, job, {name: pieces[f] for name, pieces in split.items()})


def _map(raw: pd.DataFrame, job: FileJob, geocoder: Geocoder | None, header: list[str] | None) -> dict:
    """Map rows to the common schema, filter them by the study period and the source's categories,
    and give each its handling code and dedupe keys: ``incidents``, ``rejects``, ``filtered``,
    ``notes``, ``geocoded`` (the match level of each row the geocoder was asked about) and ``where``
    (every row's ``x``, ``y`` when no geocoder took part: ``street_points_from`` locates them alike)."""
    schema = job.schema
    m = map_rows(raw, schema, job.source_id, job.evidence, job.path, geocoder,
                 fixed_evidence=job.fixed_evidence, header=header)
    mapped = m.incidents
    # Filters chosen by the config: the study period, then the source's categories.
    out_period = ((mapped["occurred_to"] < job.start) | (mapped["occurred_from"] >= job.end)).to_numpy()
    drop = (out_period | ~mapped["category"].isin(job.selected).to_numpy()) if job.selected else out_period
    rows = mapped["_row"].to_numpy()
    filtered = pd.DataFrame({"_row": rows[drop], "reason": np.where(
        out_period[drop], f"outside {job.window}", "category not selected").astype(object)})
    # A note is of a loaded row: those filtered out take theirs with them.
    notes = m.notes[~m.notes["_row"].isin(rows[drop])]
    mapped = mapped[~drop]
    # Filled in by load_sources (the file's path); here it keeps its place.
    mapped["_file"] = ""
    # A blank handling code takes the source's (the config's) code; the source's code also limits the
    # records that carry their own (``hotspots.governance``).
    own = mapped["handling"].fillna("").astype(str) if "handling" in mapped else pd.Series("", index=mapped.index)
    mapped["handling"] = own.where(own != "", job.handling)
    dd = schema.get("dedupe", {})
    scope = dd.get("scope")
    if "column" in dd:
        ref = mapped["_dedupe_ref"]
    else:
        ref = mapped.get("source_ref", pd.Series("", index=mapped.index)).fillna("")
    mapped["_dedupe_a"], mapped["_dedupe_b"] = dedupe_keys((scope + ":" + ref).where(ref != "", "") if scope else None,
                                                         len(mapped))
    return {"incidents": compact(mapped.drop(columns=[c for c in ("_dedupe_ref",) if c in mapped])),
            "rejects": m.rejects, "filtered": filtered, "notes": notes, "geocoded": m.geocoded,
            "where": None if job.geocoded else m.where}


def compact(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its few-valued text columns (``COMPACT``) as categories, missing values as ""
    (as the schema has them): one byte a row instead of a string from each file on, so that the files
    put together (their categories united, ``hotspots.frames``) and every copy of the table stay small."""
    for col in COMPACT:
        if col in frame and not isinstance(frame[col].dtype, pd.CategoricalDtype):
            frame[col] = text_category(frame[col])
    return frame


def text_category(values: pd.Series) -> pd.Series:
    """``values.fillna("").astype(str).astype("category")``: text categories, sorted. A column of Python
    strings (``locate``'s) is coded as it is, not made Arrow strings first (a million rows: 0.15 s -> 0.04 s)."""
    if values.dtype != object:
        return values.fillna("").astype(str).astype("category")
    cells = values.to_numpy(object)
    missing = pd.isna(cells)
    cells = np.where(missing, "", cells) if missing.any() else cells
    codes, found = pd.factorize(cells)
    if not all(isinstance(v, str) for v in found):
        return values.fillna("").astype(str).astype("category")
    order = np.argsort(found.astype(str), kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    categories = pd.Index(found[order].astype(str), dtype="str")
    return pd.Series(pd.Categorical.from_codes(rank[codes], categories=categories, validate=False),
                     index=values.index, name=values.name)


_EMPTY = {"rejects": ["_row", "reason", "columns"], "filtered": ["_row", "reason"],
          "notes": ["_row", "note", "columns"], "streets": ["name", "x", "y"]}


def changed_since_hashed(job: FileJob) -> bool:
    """Whether the file's size or time stamp differ from when it was hashed: what was read may then not be
    what the checksum (the cache key, the manifest's sha256) describes (hostile audit: a partner's export
    landing mid-run was cached under the old content's hash, and every later run reused it)."""
    if not job.mtime_ns:
        return False
    try:
        st = Path(job.path).stat()
    except OSError:
        return True
    return (st.st_size, st.st_mtime_ns) != (job.size, job.mtime_ns)


def adds_up(hit: dict) -> bool:
    """Whether a stored file's rows account for the file: loaded + filtered + rejected = read, each row
    once. An entry that does not (damaged, or edited by hand) is read again, not trusted."""
    rows = [hit[name]["_row"] for name in ("incidents", "rejects", "filtered") if "_row" in hit[name]]
    if len(rows) != 3:
        return False
    total = sum(len(r) for r in rows)
    return total == int(hit["meta"]["rows_read"]) and not pd.concat(rows, ignore_index=True).duplicated().any()


def _from_cache(hit: dict) -> FileResult:
    meta = hit["meta"]
    return FileResult(rows_read=meta["rows_read"], incidents=hit["incidents"], rejects=hit["rejects"],
                      filtered=hit["filtered"], notes=hit["notes"],
                      streets=hit["streets"] if meta["has_streets"] else None, geocoding=meta["geocoding"],
                      warning=meta["warning"], cached=True)


def _store(options: LoadOptions, job: FileJob, res: FileResult) -> bool:
    """Keep one file's result in the cache (when the run writes it); False when the folder cannot be
    written. Runs where the result is: a worker process stores its own batches' files."""
    if (not options.write or options.cache is None or res.error is not None or not job.sha256
            or changed_since_hashed(job)):
        return True
    meta = {"rows_read": res.rows_read, "warning": res.warning, "geocoding": res.geocoding,
            "has_streets": res.streets is not None, "source_id": job.source_id, "sha256": job.sha256}
    tables = {"incidents": res.incidents}
    for name, cols in _EMPTY.items():
        df = getattr(res, name)
        tables[name] = df if df is not None else pd.DataFrame(columns=cols)
    return cache.put(options.cache, job.key, meta, tables)


def _run_jobs(jobs: list[FileJob], geocoder: Geocoder | None, options: LoadOptions,
              writing: list) -> list[FileResult]:
    """``load_files`` over ``jobs`` in batches (``batches``) in this process, a process pool or a
    Dask cluster; results in job order. Up to ``DEFERRED_WRITE_BYTES`` of files, a forked process
    writes their cache entries (a ``background.Job`` added to ``writing``, which
    ``Loaded.cache_written`` waits for); beyond, or on a Dask cluster, they are written where they
    were loaded."""
    if not jobs:
        return []
    n = options.processes
    if n is None:
        big = sum(j.size for j in jobs) >= PARALLEL_MIN_BYTES
        n = min(len(jobs), os.cpu_count() or 1) if big and len(jobs) > 1 else 1
    workers = len(options.client.scheduler_info().get("workers", {})) if options.client is not None else n
    groups = batches(jobs, max(1, workers))
    stored: list[bool] = []         # the entries written by worker processes
    here, defer = True, False       # whether the results are in this process; written later, forked
    if options.client is not None:
        from hotspots.distributed import run_on_cluster
        done = run_on_cluster(options.client, load_files, [[jobs[i] for i in g] for g in groups], geocoder)
    else:
        # Up to DEFERRED_WRITE_BYTES of files, their cache entries are written by a forked process while
        # the run goes on (the analysis leaves the second core idle for a while): a thread writing them
        # held the GIL for half of it (the 10 k benchmark's 74 small files: 0.6 s of its run), worker
        # processes writing them finished the load later (1.3 s of a 1 M run). Beyond, each worker
        # writes its own files: the forked process would hold every file's rows until it is done.
        here = min(n, len(groups)) <= 1 or multiprocessing.current_process().daemon
        defer = options.write and options.cache is not None and sum(j.size for j in jobs) <= DEFERRED_WRITE_BYTES
        if here:
            done = [load_files([jobs[i] for i in g], geocoder) for g in groups]
        else:
            # The largest batches first, so that no worker is left with a big one at the end.
            order = sorted(range(len(groups)), key=lambda b: -sum(jobs[i].size for i in groups[b]))
            ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
            # Deferred, the workers send back the whole rows, references too, for the entries to keep them.
            worker_options = dataclasses.replace(options, write=False, compact=False) if defer else options
            with ProcessPoolExecutor(max_workers=min(n, len(groups)), mp_context=ctx, initializer=_set_worker,
                                     initargs=(geocoder, worker_options)) as pool:
                got = list(pool.map(_load_in_worker, [[jobs[i] for i in groups[b]] for b in order]))
            done = [None] * len(groups)
            for b, (res, ok) in zip(order, got):
                done[b] = res
                stored += ok
    pairs = [(jobs[i], r) for g, res in zip(groups, done) for i, r in zip(g, res)]
    if defer:
        writing.append(background.start(_store_each, options, pairs, what="files' cache entries", nice=NICE_WRITER))
    elif here:
        stored = _store_each(options, pairs)
    _written(options, stored)
    out: list[FileResult] = [None] * len(jobs)      # type: ignore[list-item]
    for g, res in zip(groups, done):
        for i, r in zip(g, res):
            out[i] = r
    return out


def _store_each(options: LoadOptions, pairs: list[tuple[FileJob, FileResult]]) -> list[bool]:
    return [_store(options, job, res) for job, res in pairs]


def _written(options: LoadOptions, stored: list[bool]) -> None:
    """Whether every file's entry was written (``stored``, a flag a file); for a read-only folder, a
    warning once, and no more writing."""
    if not all(stored) and options.write:
        options.write = False        # a read-only folder: say so once and carry on without the cache
        warnings.warn(f"the cache folder {options.cache} cannot be written: normalised incidents are not "
                      "kept for the next run (set HOTSPOTS_CACHE to a writable folder).", HotspotsWarning,
                      stacklevel=4)


def batches(jobs: list[FileJob], workers: int = 1) -> list[list[int]]:
    """The jobs (their indices) in runs of one source's consecutive files, each run at most
    ``BATCH_BYTES`` and, with several workers, at most a quarter of one worker's share of the bytes,
    so that the work still spreads: ``load_files`` maps a batch's files as one table."""
    total = sum(j.size for j in jobs)
    limit = min(BATCH_BYTES, max(1, total // (4 * workers))) if workers > 1 else BATCH_BYTES
    out: list[list[int]] = []
    size = 0
    for i, job in enumerate(jobs):
        if out and jobs[out[-1][-1]].source_id == job.source_id and size + job.size <= limit:
            out[-1].append(i)
            size += job.size
        else:
            out.append([i])
            size = job.size
    return out


_WORKER: dict = {}


def _set_worker(geocoder: Geocoder | None, options: LoadOptions) -> None:
    _WORKER.update(geocoder=geocoder, options=options)


# Columns of a file's incidents the compact load (the pipeline's) never reads once the file is in the
# cache: the source's references (the duplicate keys are hashed from them; ``_with_files`` drops them
# in one process). A police.uk reference is 64 characters: at 10 M incidents 0.5 GB fewer to send back
# from the workers and to hold until the files are put together.
NOT_SENT_BACK = ("source_ref",)


def _load_in_worker(jobs: list[FileJob]) -> tuple[list[FileResult], list[bool]]:
    options = _WORKER["options"]
    results = load_files(jobs, _WORKER["geocoder"])
    stored = [_store(options, job, res) for job, res in zip(jobs, results)]
    if options.compact:
        for res in results:
            if res.incidents is not None:
                res.incidents = res.incidents.drop(columns=[c for c in NOT_SENT_BACK if c in res.incidents])
    return results, stored


def _jobs(cfg: Config, plan: _Plan) -> list[FileJob]:
    src, schema = plan.src, plan.schema
    fields = schema.get("fields", {})
    evidence = src.evidence or schema.get("evidence")
    if not evidence and "evidence" not in fields:
        raise UserError(f"[[sources]] '{src.id}' needs an evidence class (schema '{schema['name']}' gives none).",
                        file=str(cfg.path))
    selected = frozenset(with_subcategories(src.categories)) if src.categories else None
    start, end, window = cfg.start, cfg.end, "study period"
    if src.options.get("period"):
        # The months the extract covers: a record outside them contradicts the declaration, and the pooled
        # rule scales the source by study / covered months (a period declared for 3 of 12 months over a
        # year's records weighed every record 4 times, with no word).
        first, last = (pd.Period(p.strip(), "M") for p in str(src.options["period"]).split(":"))
        start, end = max(start, first.start_time), min(end, (last + 1).start_time)
        window = "source period"
    return [FileJob(src.id, str(path), schema, evidence, src.evidence is not None, selected, start, end,
                    src.handling, "street" in street_source(schema), needs_geocoder(schema)[0], window=window)
            for path in plan.files]


def _key_parts(job: FileJob, geo_fingerprint: str | None) -> dict:
    return {"file": job.sha256, "schema": job.schema, "source": job.source_id, "evidence": job.evidence,
            "fixed_evidence": job.fixed_evidence, "categories": sorted(job.selected) if job.selected else None,
            "start": job.start.isoformat(), "end": job.end.isoformat(), "handling": job.handling,
            "geocoder": geo_fingerprint if job.geocoded else None}


def _key(job: FileJob, geo_fingerprint: str | None) -> str:
    return cache.make_key(_key_parts(job, geo_fingerprint))


def _geocoder_inputs(cfg: Config, need_postcodes: bool) -> dict:
    """What ``build_geocoder`` reads but the streets: [geocoding], the postcode files' hashes, and the
    key-building and place layers (their config entries and their files' hashes)."""
    import glob as globmod

    opts = geocoding_options(cfg)
    files = postcode_files(cfg)
    layers = [dataclasses.asdict(kb) for kb in cfg.key_buildings] if opts.get("key_buildings", True) else []
    layer_files = []
    for layer in [*layers, *opts.get("places", [])]:
        layer_files += sorted(globmod.glob(str(cfg.base / str(layer.get("path", "")))))
    return {"options": opts, "need_postcodes": need_postcodes, "layers": layers,
            "postcodes": [sha256(Path(f)) for f in files], "layer_files": [sha256(Path(f)) for f in layer_files]}


def geocoder_fingerprint(inputs: dict, street_tables: list[pd.DataFrame]) -> str:
    """A hash of everything ``build_geocoder`` reads: its ``_geocoder_inputs`` and the streets."""
    parts = {**inputs, "streets": cache.frame_fingerprint(street_tables)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _load_key(cfg: Config, plans: list[_Plan], jobs: dict[int, list[FileJob]], only, options: LoadOptions,
              geocoder: dict | None) -> str | None:
    """The key of the whole load's result (``cache.LOADS``), or None when it is not to be kept: a source
    failed before its files were read, or a file could not be hashed (the load reports these).

    Made of what decides the result beyond each file's own key: the files in order (their paths are in
    the ledger and the table), each source's loss limit (``check_losses``), the geocoder's inputs
    (``geocoder``, None without a geocoded source; its streets come from the police files, whose
    hashes are here), [linkage], ``only`` and ``compact``.
    A source's weight, coverage or high-risk levels are not: the load does not read them, so a rerun
    that changes only those takes the whole table back at once."""
    if any(p.error is not None for p in plans):     # a source without jobs is one with an error
        return None
    every = [job for k in sorted(jobs) for job in jobs[k]]
    if not every or any(not job.sha256 for job in every):
        return None
    try:
        link = linkage_options(cfg)
    except UserError:
        return None      # the load itself says what is wrong
    return cache.make_key({
        "whole load": True, "only": sorted(only) if only else None, "compact": options.compact,
        "sources": [{"id": p.src.id, "max_reject_share": p.src.options.get("max_reject_share")} for p in plans],
        "files": [{"path": job.path, **_key_parts(job, None)} for job in every],
        "geocoder": geocoder, "linkage": link})


def _store_load(options: LoadOptions, key: str, loaded: "Loaded") -> None:
    """Keep the whole load's result (``cache.LOADS``) for a rerun; nothing when it cannot be written."""
    ledger = loaded.ledger
    meta = {"files": ledger.files, "warnings": ledger.warnings, "geocoding": loaded.geocoding,
            "linkage": loaded.linkage}
    meta = json.loads(json.dumps(meta, default=lambda v: v.item() if isinstance(v, np.generic) else str(v)))
    cache.put(options.cache / cache.LOADS, key, meta, {
        "incidents": loaded.incidents, "rejects": ledger.rejects, "filtered": ledger.filtered,
        "notes": ledger.notes, "streets": loaded.streets})


def _stored_load(options: LoadOptions, key: str) -> "Loaded | None":
    """The whole load's result as ``_store_load`` kept it, its warnings shown again; None if absent."""
    hit = cache.get(options.cache / cache.LOADS, key)
    if hit is None:
        return None
    meta = hit["meta"]
    ledger = Ledger.restored(meta["files"], hit["rejects"], hit["filtered"], hit["notes"])
    # Every file's rows accounted for, or the entry is not trusted: the files are read again.
    if len(Ledger.unaccounted(ledger.accounting(hit["incidents"]))):
        return None
    for w in meta["warnings"]:
        ledger.warn(w["source_id"], w["file"], w["message"])
    return Loaded(hit["incidents"], ledger, meta["geocoding"], meta["linkage"], hit["streets"])


def _account(ledger: Ledger, job: FileJob, res: FileResult, frames: list, geocoding: dict,
             streets: list) -> None:
    """Enter one file's result in the ledger, in file order, as the one-process loader always did."""
    if res.error is not None and res.stage in ("read", "check"):
        raise res.error
    path = job.path
    if not res.cached and changed_since_hashed(job):
        raise UserError("the file changed while it was being read (its size or time stamp differ from when it "
                        "was hashed): its rows and the checksum the manifest records would not match.",
                        file=str(path), hint="Run again once the file is complete (an export still being written?).")
    if res.warning:
        ledger.warn(job.source_id, path, res.warning)
    ledger.add_file(job.source_id, Path(path), res.rows_read, sha=job.sha256 or None)
    if res.streets is not None:
        streets.append(collapse_streets(res.streets))
    if res.error is not None:
        raise res.error
    rej = res.rejects
    ledger.reject(job.source_id, path, rej["_row"], rej["reason"], rej["columns"])
    if res.geocoding is not None:
        total = geocoding.setdefault(job.source_id, dict.fromkeys(res.geocoding, 0))
        for k, v in res.geocoding.items():
            total[k] += v
    ledger.filter(job.source_id, path, res.filtered["_row"], res.filtered["reason"])
    notes = res.notes
    ledger.note(job.source_id, path, notes["_row"].to_numpy(), notes["note"].to_numpy(), notes["columns"].to_numpy())
    # ``_file`` is added once for all files after the concatenation (``_with_files``), as a category.
    mapped = res.incidents       # popped by the caller: this file's table is changed in place, not copied
    # No incident id a row (a blank one from an earlier version's cache goes too): ``Ledger.incident_ids``
    # makes them from source, file and row where they are read.
    for col in ("_file", "incident_id"):
        if col in mapped:
            del mapped[col]
    frames.append((mapped, str(path)))


def _with_files(frames: list[tuple[pd.DataFrame, str]], ledger: Ledger, drop: tuple = ()) -> pd.DataFrame:
    """The files' incidents in one table, records published twice merged (``dedupe``, found on
    the few columns it reads, so that each file's table is filtered before they are put together,
    not the whole table after), ``_file`` (each row's path) a category: one copy of each path, not
    one string per row (80 bytes a row at the benchmark's paths). The dedupe keys are not kept, nor
    ``drop`` (columns the caller does not need: each file's copy goes before they are put together).

    Empties ``frames``: from here each file's table is held once, and let go as soon as it is used."""
    parts = [f for f, _ in frames if len(f)]
    paths_of = [p for f, p in frames if len(f)]
    frames.clear()
    paths = list(dict.fromkeys(paths_of))
    lengths = [len(f) for f in parts]
    codes = np.repeat([paths.index(p) for p in paths_of], lengths)
    files = pd.Categorical.from_codes(codes, categories=pd.Index(paths, dtype="str"))
    # The few columns duplicates are found on, put together as the table is (source_id stays a category).
    keys = concat_by_column([f[[c for c in ("source_id", "_row", *DEDUPE_KEYS) if c in f]]
                             for f in parts])
    keys["_file"] = files
    dup = duplicates(keys, ledger)
    del keys
    if dup is not None:
        ends = np.cumsum(lengths)
        for k, end in enumerate(ends):      # one file at a time: its unfiltered table goes as the filtered one comes
            parts[k] = parts[k][~dup[end - lengths[k]:end]]
        files = files[~dup]
    for part in parts:
        for col in (*DEDUPE_KEYS, *drop):
            if col in part:
                del part[col]
    incidents = concat_by_column(parts)
    incidents["_file"] = files
    for col in COMPACT:     # a column some files lack is "" for their rows, as compact() writes it
        if col in incidents and incidents[col].isna().any():
            cat = incidents[col]
            incidents[col] = (cat if "" in cat.cat.categories else cat.cat.add_categories([""])).fillna("")
    return incidents


def _street_tables(plans: list[_Plan], results: dict[tuple[int, str], FileResult]) -> list[pd.DataFrame]:
    """The street points of every file of the sources that name streets, in config order, for the
    gazetteer: from the files already loaded, else read here (a street source that is itself geocoded)."""
    tables = []
    for k, p in enumerate(plans):
        if p.schema is None or "street" not in street_source(p.schema):
            continue
        for path in p.files:
            res = results.get((k, str(path)))
            if res is not None:
                if res.streets is not None:
                    tables.append(res.streets)
                continue
            try:
                tables.append(street_points_from(read_source(path, p.schema["reader"]).rows, p.schema))
            except UserError:
                continue     # the source reports its own failure when it is loaded
    return tables


MAX_REJECT_SHARE = 0.5     # default; [[sources]] max_reject_share overrides it
MIN_ROWS_FOR_LOSS_CHECK = 20


def check_losses(src: Source, ledger: Ledger, schema: dict) -> None:
    """Fail a source that lost more than ``max_reject_share`` of its rows to one reject reason (a wrong
    date format or column loses a whole partner, never silently): the message names the reason, its
    column and three example values as the file has them, for the analyst's terminal only."""
    share = float(src.options.get("max_reject_share", MAX_REJECT_SHARE))
    files = [f for f in ledger.files if f["source_id"] == src.id]
    read = sum(f["rows_read"] for f in files)
    rej = ledger.rejects
    rej = rej[rej["source_id"] == src.id]
    if not len(rej) or share >= 1:
        return
    reason, columns, n = main_reason(rej)
    if not lost_too_many(n, read, share):
        return
    examples = _example_values(rej[(rej["reason"] == reason) & (rej["columns"] == columns)], schema, columns)
    shown = "; ".join(repr(v[:40]) for v in examples) or "(values not available)"
    raise UserError(f"source '{src.id}' lost {n:,} of its {read:,} rows ({n / read:.0%}) to one reason: "
                    f"{reason} (column {columns}). Examples as the file has them: {shown}.",
                    hint=f"Fix the mapping (a date format, a column name), or accept the loss with "
                         f"max_reject_share = {min(1.0, round(n / read + 0.05, 2))} in the source's [[sources]] entry.")


def main_reason(rejects: pd.DataFrame) -> tuple[str, str, int]:
    """The commonest (reason, columns) of some rejects, and how many rows it took."""
    counts = rejects.groupby(["reason", "columns"]).size().sort_values(ascending=False)
    (reason, columns), n = counts.index[0], int(counts.iloc[0])
    return reason, columns, n


def lost_too_many(lost: int, read: int, share: float) -> bool:
    """Whether a source that lost ``lost`` of its ``read`` rows (to one reason) fails: more than ``share``
    of them (``max_reject_share``; 1 accepts any loss), but a small file only when it lost every row (a
    youth club's 7 rows, every date unread, passed validate with exit 0 and nothing loaded)."""
    return share < 1 and lost > share * read and not (read < MIN_ROWS_FOR_LOSS_CHECK and lost < read)


def _example_values(rejects: pd.DataFrame, schema: dict, columns: str) -> list[str]:
    """Up to three distinct values of the rejected rows' ``columns``, read again from their file."""
    out: list[str] = []
    cols = [c.strip() for c in str(columns).split(";") if c.strip()]
    for path, grp in rejects.groupby("file", sort=False):
        try:
            raw = read_source(Path(path), schema["reader"], keep=set(cols)).rows
        except (UserError, OSError, KeyError):
            continue
        rows = raw[raw["_row"].isin(grp["_row"] if "_row" in grp else grp["row"])]
        for c in cols:
            if c in rows.columns:
                for v in rows[c].astype(str):
                    if v not in out:
                        out.append(v)
                    if len(out) == 3:
                        return out
    return out


def _fingerprint(jobs: list[FileJob]) -> None:
    """Each job's file's sha256 and size (left unset when it cannot be read: read_source names the
    problem), on two threads: hashlib lets go of the GIL (the 10 M benchmark's 2 GB: 3.1 s on one)."""
    def one(job: FileJob) -> None:
        try:
            st = Path(job.path).stat()
            # Only regular files: hashing a pipe or /dev/zero matched by a glob would never end (hostile
            # audit); read_source then says what the path is.
            if stat.S_ISREG(st.st_mode):
                job.sha256, job.size, job.mtime_ns = sha256(Path(job.path)), st.st_size, st.st_mtime_ns
        except OSError:
            pass
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(one, jobs))


def load_sources(cfg: Config, only: list[str] | None = None, keep_going: bool = False,
                 options: LoadOptions | None = None) -> Loaded:
    """Load every source of ``cfg`` (or those in ``only``).

    With ``keep_going`` a source that fails as a whole (missing file, a file
    whose header the mapping does not recognise, an unreadable file, no postcode
    lookup) is recorded in ``ledger.failures`` instead of stopping the run;
    ``validate`` uses this to report every source. A file with a matching header
    and no data rows is not a failure: ``ledger.warnings`` notes it.

    ``options`` (``LoadOptions``): reuse of the cache, worker processes or a Dask
    cluster. Files are loaded in two rounds: first the sources located by
    coordinates (police.uk among them, whose street names feed the gazetteer),
    then the geocoded ones; the ledger is filled in config and file order, so
    every option gives the same incidents, ledger and ``rejects.csv``.
    """
    options = dataclasses.replace(options) if options is not None else LoadOptions()
    if options.cache is None and (options.reuse or options.write):
        options.cache = cache.cache_dir(cfg.base)
    ledger = Ledger()
    plans = [_plan(cfg, s) for s in cfg.sources if not only or s.id in only]
    if options.cache is not None:
        root = options.cache.resolve()
        for plan in plans:
            inside = [f for f in plan.files if root in Path(f).resolve().parents]
            if inside:
                raise UserError(f"[[sources]] '{plan.src.id}': path '{plan.src.path}' reaches into the cache "
                                f"folder {root} ({inside[0]}).", file=str(cfg.path),
                                hint="Make the glob narrower, or set HOTSPOTS_CACHE to a folder no source reads.")
    jobs: dict[int, list[FileJob]] = {}
    for k, plan in enumerate(plans):
        if plan.error is None:
            try:
                jobs[k] = _jobs(cfg, plan)
            except UserError as exc:
                plan.error = exc
    _fingerprint([job for js in jobs.values() for job in js])
    # What the geocoder reads but the streets, hashed once: for the whole load's key and the geocoded
    # files' keys (a national postcode file is a gigabyte).
    wanted = [p for k, p in enumerate(plans) if k in jobs and needs_geocoder(p.schema)[0]]
    need_postcodes = any(needs_geocoder(p.schema)[1] for p in wanted)
    geo_error, geo_inputs = None, None
    if wanted:
        try:
            geo_inputs = _geocoder_inputs(cfg, need_postcodes)
        except UserError as exc:
            geo_error = exc
    whole = (_load_key(cfg, plans, jobs, only, options, geo_inputs)
             if options.cache is not None and not keep_going and geo_error is None else None)
    if whole is not None and options.reuse:
        stored = _stored_load(options, whole)
        if stored is not None:
            return stored
    results: dict[tuple[int, str], FileResult] = {}
    writing: list = []      # the files' cache entries being written on the second core (``_run_jobs``)

    def run_round(batch: list[tuple[int, FileJob]], geocoder_needed=None) -> None:
        todo = []
        for k, job in batch:
            hit = cache.get(options.cache, job.key) if options.reuse and job.sha256 else None
            if hit is not None and adds_up(hit):
                results[(k, job.path)] = _from_cache(hit)
            else:
                todo.append((k, job))
        geocoder = geocoder_needed() if geocoder_needed and todo else None
        for (k, job), res in zip(todo, _run_jobs([j for _, j in todo], geocoder, options, writing)):
            results[(k, job.path)] = res

    # Round one: sources located without the geocoder.
    first = [(k, j) for k, js in jobs.items() for j in js if not j.geocoded]
    for _, job in first:
        job.key = _key(job, None)
    run_round(first)
    # The geocoder, when a source needs one, from the streets of the sources that name them.
    if wanted:
        street_tables = _street_tables(plans, results)
        fingerprint = geocoder_fingerprint(geo_inputs, street_tables) if geo_error is None else None
        built: list = []

        def geocoder_needed():
            if not built:
                built.append(build_geocoder(cfg, street_tables, need_postcodes))
            return built[0]

        second = [(k, j) for k, js in jobs.items() for j in js if j.geocoded]
        if geo_error is None:
            for _, job in second:
                job.key = _key(job, fingerprint)
            try:
                run_round(second, geocoder_needed)
            except UserError as exc:
                geo_error = exc

    frames, geocoding, streets = [], {}, []
    for k, plan in enumerate(plans):
        try:
            if plan.error is not None:
                raise plan.error
            if geo_error is not None and needs_geocoder(plan.schema)[0]:
                raise geo_error
            own: list[tuple[pd.DataFrame, str]] = []
            for job in jobs[k]:
                # Popped: each file's rows are held once, by ``own``, until they are concatenated.
                _account(ledger, job, results.pop((k, job.path)), own, geocoding, streets)
            check_losses(plan.src, ledger, plan.schema)
            frames += own
        except UserError as exc:
            if not keep_going:
                raise
            ledger.failures[plan.src.id] = str(exc)
    if any(len(f) for f, _ in frames):
        # What reading the files left freed but held (Arrow's and malloc's pools: 1.7 GB at 10 M incidents
        # read from the cache) goes back to the system before the files' tables are put together.
        release_freed_memory()
        # The pipeline reads no source reference once duplicates are merged (hotspots.load.IDENTIFIERS).
        incidents = _with_files(frames, ledger, drop=NOT_SENT_BACK if options.compact else ())
    else:
        incidents = empty_incidents().assign(_file=pd.Series(dtype=str), _row=pd.Series(dtype=int))
    incidents, linkage = link_duplicates(incidents, cfg, ids=ledger.incident_ids)
    streets = [s for s in streets if len(s)]
    if not options.compact:
        # Each record's id, where the pipeline's compact load holds none (``Ledger.incident_ids``).
        if "incident_id" not in incidents:
            incidents.insert(incidents.columns.get_loc("_file"), "incident_id", ledger.incident_ids(incidents))
        for col in COMPACT:
            if col in incidents and isinstance(incidents[col].dtype, pd.CategoricalDtype):
                incidents[col] = incidents[col].astype(str)
    loaded = Loaded(incidents, ledger, geocoding, linkage)
    if streets:
        loaded.streets = collapse_streets(pd.concat(streets, ignore_index=True))
    if whole is not None and options.write and len(incidents) and not ledger.failures:
        _store_load(options, whole, loaded)
    loaded.cache_written = lambda: _written(options, [ok for job in writing for ok in job.result()])
    if options.wait_for_cache:
        loaded.cache_written()
    return loaded


def finish(incidents: pd.DataFrame, ledger: Ledger | None = None) -> pd.DataFrame:
    """Drop the bookkeeping columns and enforce the common schema (the allow-list).

    The ``ANNOTATIONS`` present are kept after the schema's fields; a
    ``duplicate_of`` naming an incident no longer present (clipped or held back)
    is cleared, so that the record it pointed to is not counted zero times.
    A table without ``incident_id`` (the pipeline's compact load) needs the ``ledger``
    that made it: the ids named are made for the records they could be
    (``Ledger.incident_ids``), and ``incident_id`` is left empty.
    """
    with_ids = "incident_id" in incidents
    out = enforce(incidents, optional=() if with_ids else ("incident_id",)).reset_index(drop=True)
    for col in ANNOTATIONS:
        if col in incidents:
            values = incidents[col].fillna("").astype(str).reset_index(drop=True)
            named = values[values != ""].unique()
            # The few incidents named, looked up among all (not every incident's id hashed to look up
            # a few: 9.6 M ids, 93 s -> 1.4 s on Arrow strings); without ids, among the records whose
            # row number a named id ends with.
            if with_ids:
                ids = out["incident_id"]
            else:
                rows = np.array([int(v.rsplit(":", 1)[1]) for v in named], dtype=np.int64)
                ids = ledger.incident_ids(incidents[np.isin(incidents["_row"].to_numpy(), rows)])
            present = ids[ids.isin(named)].unique()
            out[col] = values.where(values.isin(present), "")
    # Columns of a few distinct values as categories: one byte a row instead of a string (about
    # 150 bytes an incident in all, in this table and in every copy a stage makes of its columns).
    for col in COMPACT:
        if col in out:
            # Categories of records clipped or held back go (none is counted as a zero), and the rest
            # sort as text, as a column of strings would (the files' categories come in file order).
            out[col] = used_categories(out[col].astype("category"), sort=True)
    return out
