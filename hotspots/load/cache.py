"""Reusable normalised incidents: each source file, once loaded, kept for the next run.

A file read, mapped to the common schema, located and filtered by the config is
stored under a key made of everything that decides the result:

- the file's sha256 (its content, not its name: a renamed copy is reused, an
  edited file is read again);
- the effective schema (built in or the partnership's, with its ``mapping``);
- the source's id, evidence class, categories and handling code, and the
  study period (the filters applied while loading);
- for a source whose locations are geocoded, a fingerprint of the geocoder's
  inputs (``geocoder_fingerprint``: the postcode files' hashes, the streets of
  the police sources, the key-building and place layers and [geocoding]);
- the code that loads (a hash of ``hotspots/load/*.py``, ``hotspots/schema.py``,
  ``hotspots/frames.py`` and ``data_schemas/``) and the versions of pandas, numpy
  and pyproj.

An entry is a folder ``<cache>/<key[:2]>/<key>/`` of Parquet tables (pyarrow;
never pickle, so a cache folder cannot carry code): ``incidents.parquet`` (the
file's loaded rows, common schema plus the loader's ``_`` columns),
``rejects.parquet`` (``_row``, ``reason``, ``columns``), ``filtered.parquet``
(``_row``, ``reason``), ``notes.parquet`` (``_row``, ``note``, ``columns``),
``streets.parquet`` (``name``, ``x``, ``y``: the file's named snap points), and
``meta.json`` (rows read, the empty-file warning, geocoding match counts, the
column dtypes). The row ledger therefore comes back from the cache exactly as
the first run wrote it. An entry is written into a temporary folder and renamed
into place, so a crash never leaves half an entry.

The whole load is kept too, in ``<cache>/loads/<key[:2]>/<key>/``: the same
five tables for every file put together (duplicates merged, cross-agency links
made) and, in ``meta.json``, the ledger's files and warnings, the geocoding
counts and the linkage summary. Its key is every file's key in order, each
source's loss limit, the geocoder's inputs and [linkage]
(``hotspots.load._load_key``); a rerun that changes only what the load does not
read (weights, the cell size, outputs) reads that one entry.

Where: ``.hotspots-cache/`` beside the config by default (a hidden folder: no
``*`` or ``**`` source glob reaches it, and it is never inside an output folder,
which hotspots replaces whole), or the folder named by the ``HOTSPOTS_CACHE``
environment variable (``off`` disables it). The cache holds the partners'
normalised records (never whole input rows: the common schema's fields only),
so it needs the same protection as the input data beside it. Deleting it is
always safe: the next run reads the files again.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

FORMAT = 1
FOLDER = ".hotspots-cache"
TABLES = ("incidents", "rejects", "filtered", "notes", "streets")
# The subfolder of whole loads (see the module docstring): one entry to read, not one per file (the
# 10 k benchmark's 74 files: 1.8 s of reading Parquet tables).
LOADS = "loads"


def cache_dir(config_base: Path) -> Path | None:
    """The cache folder of a config in ``config_base`` (see the module docstring); None when disabled."""
    env = os.environ.get("HOTSPOTS_CACHE", "").strip()
    if env.lower() in ("off", "0", "no", "false"):
        return None
    return Path(env).expanduser().resolve() if env else Path(config_base).resolve() / FOLDER


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A hash of the code and data that decide how a file is loaded, and the libraries' versions."""
    import numpy
    import pyproj

    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256(f"format {FORMAT}; pandas {pd.__version__}; numpy {numpy.__version__}; "
                       f"pyproj {pyproj.__version__}".encode())
    schemas = root / "data_schemas"
    if not schemas.is_dir():
        schemas = root.parent / "data_schemas"
    files = (sorted((root / "load").glob("*.py")) + [root / "schema.py", root / "frames.py"]
             + sorted(schemas.rglob("*.json")))
    for path in files:
        if path.is_file():
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def make_key(parts: dict) -> str:
    """The cache key of one file's load: sha256 of ``parts`` (JSON, sorted keys) and the code fingerprint."""
    text = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=True)
    return hashlib.sha256((code_fingerprint() + "\n" + text).encode()).hexdigest()


def frame_fingerprint(frames: list[pd.DataFrame]) -> str:
    """A hash of the contents of ``frames`` (values and column names, not the index)."""
    h = hashlib.sha256()
    for df in frames:
        h.update(json.dumps(list(map(str, df.columns))).encode())
        if len(df):
            h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()


def _entry(root: Path, key: str) -> Path:
    return root / key[:2] / key


def get(root: Path | None, key: str) -> dict | None:
    """The stored result of ``key`` (``meta`` plus each of ``TABLES`` as a DataFrame), or None.

    A damaged entry (unreadable Parquet or JSON) counts as absent: the file is read again."""
    if root is None:
        return None
    folder = _entry(root, key)
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        out = {"meta": meta}
        for name in TABLES:
            # Converted column by column, each Arrow column let go once converted (``self_destruct``):
            # 10 M incidents read back peak at 1.77 GB for a table of 0.88 GB.
            df = _one_chunk(pq.read_table(folder / f"{name}.parquet")).to_pandas(split_blocks=True,
                                                                                 self_destruct=True)
            out[name] = _restore(df, meta["dtypes"][name], meta["index"][name])
        return out
    except Exception:   # noqa: BLE001  any damage (a dtype or a JSON shape no run wrote): read the files again
        return None


def put(root: Path | None, key: str, meta: dict, tables: dict[str, pd.DataFrame]) -> bool:
    """Store one file's result; False (and nothing left behind) when the folder cannot be written."""
    if root is None:
        return False
    folder = _entry(root, key)
    if (folder / "meta.json").is_file():
        return True
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:8]}-{uuid.uuid4().hex[:6]}-", dir=folder.parent))
    except OSError:
        return False
    try:
        meta = dict(meta, dtypes={}, index={})
        for name in TABLES:
            df = tables[name]
            meta["dtypes"][name] = {str(c): str(t) for c, t in df.dtypes.items()}
            meta["index"][name] = [int(v) for v in df.index] if not isinstance(df.index, pd.RangeIndex) else None
            _write(df.reset_index(drop=True), tmp / f"{name}.parquet")
        # Insertion order kept: the geocoding counts print in the order they were counted.
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        try:
            os.rename(tmp, folder)
        except OSError:          # another run stored the same entry first: theirs is as good
            shutil.rmtree(tmp, ignore_errors=True)
        return True
    except (OSError, ValueError, TypeError, pa.ArrowException):
        shutil.rmtree(tmp, ignore_errors=True)
        return False


# Rows converted to Arrow at a time when a table is stored: a whole load's table (``LOADS``) is
# written a slice at a time, not copied whole into Arrow first (10 M incidents: about 1 GB).
WRITE_ROWS = 1 << 20


def _write(df: pd.DataFrame, path: Path) -> None:
    first = pa.Table.from_pandas(df.iloc[:WRITE_ROWS], preserve_index=False)
    if len(df) <= WRITE_ROWS:
        pq.write_table(first, path)
        return
    with pq.ParquetWriter(path, first.schema) as writer:     # every slice converted as the first was
        writer.write_table(first)
        del first
        for start in range(WRITE_ROWS, len(df), WRITE_ROWS):
            writer.write_table(pa.Table.from_pandas(df.iloc[start:start + WRITE_ROWS], schema=writer.schema,
                                                    preserve_index=False))


def _one_chunk(table: pa.Table) -> pa.Table:
    """Text columns of several row groups (``WRITE_ROWS``) as one array each, as pandas keeps text in
    Arrow: 10 M incidents read back, the study-area clip's peak 2,971 MB in pieces, 2,821 MB so (one
    run each; read afresh, 2,535 MB). One column at a time: only one column is held twice."""
    for i, field in enumerate(table.schema):
        column = table.column(i)
        if column.num_chunks > 1 and (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
            table = table.set_column(i, field, pa.chunked_array([column.combine_chunks()]))
    return table


def _restore(df: pd.DataFrame, dtypes: dict[str, str], index: list[int] | None) -> pd.DataFrame:
    """Each column back to the dtype it was written with (Parquet widens object to str, ns to us, ...)."""
    for col, dtype in dtypes.items():
        if str(df[col].dtype) != dtype:
            df[col] = df[col].astype(object if dtype == "object" else dtype)
    if index is not None:
        df.index = pd.Index(index, dtype="int64")
    return df
