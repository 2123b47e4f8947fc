"""Tables held once: a large table put together or filtered one column at a time.

At millions of incidents a table of strings is gigabytes; ``pd.concat(parts)`` or
``frame[mask]`` holds the source and the result in full at once (twice the table at
the peak). These build the same table column by column and let each source column go
as soon as it is copied, so the peak is the table plus one column. Both empty their
input, which the caller must own (no other reference may expect its columns or frames).
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def concat_by_column(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """``pd.concat(parts, ignore_index=True)``: the same columns (in the same order), dtypes and values.
    Empties the list ``parts``: with no other reference to its frames, each of their columns goes as
    soon as it is copied."""
    columns = list(dict.fromkeys(c for p in parts for c in p.columns))
    if not columns:
        return pd.concat(parts, ignore_index=True)
    lengths = [len(p) for p in parts]
    # Each part as its columns, and the frames let go: deleting a column from a frame costs about as
    # much as copying a small one (0.9 s for the 10 k benchmark's 74 files, column by column).
    held = [{c: p[c] for c in p.columns} for p in parts]
    parts.clear()
    out = {}
    for col in columns:
        have = [h[col] for h in held if col in h]
        if all(isinstance(c.dtype, pd.CategoricalDtype) for c in have):
            # Categories of every part united (pd.concat would turn categories that differ into strings).
            out[col] = _union_categories([h[col].array if col in h else None for h in held], lengths)
        elif len(have) == len(held) and all(c.dtype == have[0].dtype for c in have):
            # One type: its arrays joined as pd.concat joins them, without its checks of each part.
            dtype = have[0].dtype
            out[col] = pd.Series(np.concatenate([c.to_numpy() for c in have]) if isinstance(dtype, np.dtype)
                                 else type(have[0].array)._concat_same_type([c.array for c in have]), dtype=dtype)
        elif len(have) == len(held):
            out[col] = pd.concat(have, ignore_index=True)   # columns, not one-column frames
        else:
            out[col] = pd.concat([h[col].to_frame() if col in h else pd.DataFrame(index=pd.RangeIndex(n))
                                  for h, n in zip(held, lengths)], ignore_index=True)[col]
        for h in held:       # each source column goes as soon as it is copied
            h.pop(col, None)
    return pd.DataFrame(out, copy=False)      # the columns are new: not copied a second time


def _union_categories(parts: list, lengths: list[int]) -> pd.Series:
    """``union_categoricals`` of the parts (None: a part without the column, all missing): categories
    in the order they first appear, each part's codes mapped onto them and joined. With the joins of
    ``concat_by_column``, the 10 k benchmark's 74 files are put together in 0.16 s instead of 0.40 s
    (1 M: 0.24 s instead of 0.41 s), pandas checking each part."""
    seen: dict = {}
    names = [None if cat is None else cat.categories.tolist() for cat in parts]
    for values in names:
        for v in values or ():
            seen.setdefault(v, len(seen))
    codes = []
    for cat, values, n in zip(parts, names, lengths):
        if cat is None:
            codes.append(np.full(n, -1, dtype=np.int64))
            continue
        # Each category's place among all, and -1 (missing) kept as -1 by the last entry.
        where = np.fromiter((seen[v] for v in values), dtype=np.int64, count=len(values))
        codes.append(np.append(where, -1)[cat.codes])
    values = pd.Index(list(seen), dtype=next((c.categories.dtype for c in parts if c is not None), "str"))
    joined = np.concatenate(codes) if codes else np.zeros(0, dtype=np.int64)
    return pd.Series(pd.Categorical.from_codes(joined, dtype=pd.CategoricalDtype(values)))


def used_categories(column: pd.Series, sort: bool = False) -> pd.Series:
    """``column.cat.remove_unused_categories()`` (the categories used, in their order) by counting codes,
    not by pandas' sort of them (the 1 M load's pieces of files: 0.46 s -> 0.16 s). ``sort``: the
    categories used sorted too, as ``reorder_categories(sorted(...))``, in the same pass over the codes."""
    cat = column.array
    codes = cat.codes
    used = np.bincount(codes.astype(np.intp) + 1, minlength=len(cat.categories) + 1)[1:] > 0
    kept = cat.categories[used]
    order = sorted(range(len(kept)), key=kept.__getitem__) if sort else list(range(len(kept)))
    if used.all() and order == list(range(len(kept))):
        return column
    # Each old code's new one, -1 (missing) first: one gather recodes every row.
    remap = np.full(len(cat.categories) + 1, -1, dtype=np.int64)
    remap[1:][used] = np.argsort(order)
    new = remap[codes.astype(np.intp) + 1].astype(codes.dtype)
    dtype = pd.CategoricalDtype(kept[order], ordered=cat.ordered)
    return pd.Series(pd.Categorical.from_codes(new, dtype=dtype, validate=False), index=column.index,
                     name=column.name)


def per_distinct(values: pd.Series, fn) -> pd.Series:
    """``fn`` worked out on each distinct value of ``values`` once (a missing one too), then spread over
    the rows by its code: ``fn`` takes the distinct values as a Series of ``values``' dtype and returns
    one value for each. For columns of few distinct values (a file's crime types, the rejects' reasons)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    done = fn(pd.Series(uniques, dtype=values.dtype))
    return pd.Series(done.array.take(codes), index=values.index, name=values.name)


def row_groups(keys) -> np.ndarray:
    """Each row's group among the combinations of ``keys`` (arrays, Series or Categoricals of one length;
    a missing value is a value), numbered in order of first appearance, as
    ``pd.factorize`` of the rows' tuples numbers them. Each key's numbers (a category's codes) are
    combined into one integer, renumbered only when the next key could overflow it: one key's numbers
    held at a time, not a MultiIndex of tuples (0.27 s -> 0.04 s for 130,000 named snap points) nor
    pandas' groupby over a copy of the rows (1.2 GB passing through at 10 M incidents). ``keys`` may be
    a generator, so that each key is made only when it is used."""
    group, bound = None, 1
    for values in keys:
        if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
            cat = values.array if isinstance(values, pd.Series) else values
            code, size = cat.codes.astype(np.int64) + 1, len(cat.categories) + 1
        else:
            code, uniques = pd.factorize(values, use_na_sentinel=False)
            size = len(uniques)
        if group is None:
            group, bound = code.astype(np.int64, copy=False), size
            continue
        if bound * size >= 2 ** 62:
            group, found = pd.factorize(group)
            bound = len(found)
        group *= size
        group += code
        bound *= size
        del code
    return pd.factorize(group)[0] if group is not None else np.zeros(0, np.int64)


def first_rows(group: np.ndarray) -> np.ndarray:
    """The first row of each group numbered in order of first appearance (``row_groups``): where the
    running maximum rises."""
    if not len(group):
        return np.zeros(0, np.int64)
    seen = np.maximum.accumulate(group)
    return np.flatnonzero(np.r_[True, seen[1:] > seen[:-1]])


def group_medians(group: np.ndarray, values: np.ndarray, counts: np.ndarray, n_groups: int) -> np.ndarray:
    """Each group's median of ``values``, each repeated ``counts`` times: what pandas' groupby median,
    or ``np.median`` of the repeated values, gives (the middle value; the mean of the two middle ones for
    an even count), without the repeat. NaN for a group of no records. ``group``: 0 .. n_groups - 1."""
    order = np.lexsort((values, group))
    g, v, c = group[order], values[order], counts[order]
    total = np.bincount(g, weights=c, minlength=n_groups).astype(np.int64)
    before = np.cumsum(total) - total              # records of the groups before each group
    ends = np.cumsum(c)                            # records up to and including each sorted row

    def at(k: np.ndarray) -> np.ndarray:           # the value of each group's k-th record (0-based)
        return v[np.minimum(np.searchsorted(ends, before + k, side="right"), max(len(v) - 1, 0))] \
            if len(v) else np.full(len(k), np.nan)

    with np.errstate(invalid="ignore"):
        return np.where(total > 0, (at((total - 1) // 2) + at(total // 2)) / 2, np.nan)


def take_by_column(frame: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    """``frame[mask]`` (a boolean mask over the rows): the same index, columns, dtypes and values.
    Empties ``frame`` unless every row is kept."""
    mask = np.asarray(mask, dtype=bool)
    if mask.all():
        return frame.copy(deep=False)
    index = frame.index[mask]
    out = {}
    for col in list(frame.columns):
        out[col] = frame[col].array[mask]
        del frame[col]
    return pd.DataFrame(out, index=index, copy=False)   # new columns: pandas would copy them all again


def text_codes(series: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """``pd.factorize`` of a text column with missing values as "": (codes, the values present). A
    column of categories is factorized on its codes (no string a row)."""
    codes, values = pd.factorize(series)
    values = pd.Index(np.asarray(values, dtype=object).astype(str), dtype=object)
    if (codes < 0).any():
        if "" not in values:
            values = values.append(pd.Index([""], dtype=object))
        codes = np.where(codes < 0, values.get_loc(""), codes)
    return codes, values


CHUNK_ROWS = 1 << 21      # rows a step that works a chunk at a time reads at once (``chunk_rows``)


def chunk_rows(n: int, size: int | None = None):
    """Slices of ``size`` (``CHUNK_ROWS``) rows covering ``range(n)``: a step over millions of rows that works
    a chunk at a time holds a chunk's arrays, not a copy of the rows' columns."""
    size = size or CHUNK_ROWS
    return (slice(k0, min(n, k0 + size)) for k0 in range(0, n, size))


def small_codes(series: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """``text_codes`` without a code made for each row where the column is of categories: its own codes
    (one or two bytes a row, missing values the code of ""), and its categories as text. Read a slice
    of the codes at a time, they cost nothing; ``text_codes`` makes 8 bytes a row."""
    if not isinstance(series.dtype, pd.CategoricalDtype):
        return text_codes(series)
    values = pd.Index(np.asarray(series.cat.categories, dtype=object).astype(str), dtype=object)
    codes = series.cat.codes.to_numpy()
    if (codes < 0).any():
        if "" not in values:
            values = values.append(pd.Index([""], dtype=object))
        codes = np.where(codes < 0, values.get_loc(""), codes).astype(np.min_scalar_type(len(values)))
    return codes, values


def text_values(series: pd.Series) -> set[str]:
    """The values present in a text column, as strings (missing values left out). A column of categories
    is read on its codes: ``set(series)`` makes a Python object a row (1.1 GB passing through at 10 M
    incidents, the load's peak)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        used = np.zeros(len(series.cat.categories) + 1, dtype=bool)
        used[series.cat.codes.to_numpy()] = True        # a missing value (code -1) marks the last place
        return {str(v) for v in series.cat.categories[used[:-1]]}
    return {str(v) for v in pd.unique(series.dropna())}


def text_in(series: pd.Series, values) -> np.ndarray:
    """``series.fillna("").astype(str).isin(values)`` as an array, on ``text_codes`` (no string a row for a
    column of categories: 10 M incidents, 0.3-0.9 s a call as strings)."""
    codes, present = text_codes(series)
    return np.isin(codes, np.flatnonzero(present.isin([str(v) for v in values])))


def release_freed_memory() -> None:
    """Give memory freed by the load (file tables, their copies while put together) back to the
    system: glibc and Arrow keep freed pages for later use, so a process holding 1.3 GB of table at
    10 M incidents stayed at 4.6 GB resident. Does nothing where malloc_trim does not exist."""
    import ctypes

    import pyarrow as pa
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
