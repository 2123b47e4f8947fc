"""Tables put together and filtered column by column (hotspots.frames) give what pandas gives."""
from __future__ import annotations

import numpy as np
import pandas as pd

from hotspots.frames import concat_by_column, take_by_column, text_codes, text_values


def _parts():
    a = pd.DataFrame({"x": [1.0, 2.0], "name": ["a", "b"], "when": pd.to_datetime(["2020-01-01", "2020-02-01"]),
                      "kind": pd.Categorical(["street", "exact"])})
    b = pd.DataFrame({"x": [3.0], "name": ["c"], "when": pd.to_datetime(["2020-03-01"]),
                      "kind": pd.Categorical(["postcode"]), "role": ["victim"]})
    return a, b


def test_concat_by_column_equals_pandas_and_unites_categories():
    expected = pd.concat(list(_parts()), ignore_index=True)
    got = concat_by_column(list(_parts()))
    assert list(got.columns) == list(expected.columns)
    for col in ("x", "name", "when"):
        pd.testing.assert_series_equal(got[col], expected[col])
    # pandas turns categories that differ into text; here they stay categories, with the same values.
    assert isinstance(got["kind"].dtype, pd.CategoricalDtype)
    assert got["kind"].astype(str).tolist() == ["street", "exact", "postcode"]
    assert got["role"].isna().tolist() == [True, True, False] and got["role"].iloc[2] == "victim"


def test_concat_by_column_unites_categories_as_union_categoricals():
    """Categories in the order they first appear, missing values and parts without the column missing,
    a part whose categories are all unused: as pandas' union_categoricals gives them."""
    from pandas.api.types import union_categoricals
    cats = [pd.Categorical(["b", None, "a", "b"]), None, pd.Categorical([None, None], categories=["z"]),
            pd.Categorical(["c", "a"], categories=["c", "a", "d"])]
    parts = [pd.DataFrame({"n": np.arange(4)}) if c is None else pd.DataFrame({"n": np.arange(len(c)), "k": c})
             for c in cats]
    got = concat_by_column(parts)["k"]
    want = union_categoricals([c if c is not None else pd.Categorical([None] * 4, categories=pd.Index([], dtype="str"))
                               for c in cats])
    assert list(got.cat.categories) == list(want.categories) == ["a", "b", "z", "c", "d"]
    assert got.cat.codes.tolist() == list(want.codes)
    assert got.isna().tolist() == [False, True, False, False, True, True, True, True, True, True, False, False]
    # one type in every part, numpy or not: joined as pd.concat joins them
    parts = [pd.DataFrame({"i": pd.array([1, None], dtype="Int64"), "s": ["x", "y"], "b": [True, False]}),
             pd.DataFrame({"i": pd.array([3], dtype="Int64"), "s": ["z"], "b": [True]})]
    want = pd.concat([p.copy() for p in parts], ignore_index=True)
    pd.testing.assert_frame_equal(concat_by_column(parts), want)


def test_concat_by_column_lets_its_parts_go():
    import gc
    import weakref
    parts = list(_parts())
    gone = [weakref.ref(p) for p in parts]
    concat_by_column(parts)
    gc.collect()
    assert parts == [] and all(ref() is None for ref in gone)


def test_take_by_column_equals_a_boolean_filter():
    frame = pd.concat(list(_parts()), ignore_index=True)
    mask = np.array([True, False, True])
    expected = frame[mask]
    pd.testing.assert_frame_equal(take_by_column(frame.copy(), mask), expected)


def test_text_codes_of_categories_equal_factorized_text():
    values = ["victim", None, "suspect", "victim", ""]
    cat = pd.Series(values, dtype="category").cat.add_categories(["witness"])     # "witness": no row has it
    codes, names = text_codes(cat)
    assert [names[c] for c in codes] == ["victim", "", "suspect", "victim", ""]
    assert sorted(names) == ["", "suspect", "victim"]
    plain_codes, plain_names = text_codes(pd.Series(values))
    assert [plain_names[c] for c in plain_codes] == [names[c] for c in codes]


def test_text_values_are_the_values_present_without_a_python_object_a_row():
    values = ["victim", None, "suspect", "victim"]
    cat = pd.Series(values, dtype="category").cat.add_categories(["witness"])     # "witness": no row has it
    assert text_values(cat) == {"victim", "suspect"} == text_values(pd.Series(values))
    assert text_values(cat.iloc[0:0]) == set()
    # 2 M rows of categories: their codes are read (2 MB), not a Python object per row (16 MB and more).
    big = pd.Series(pd.Categorical.from_codes(np.arange(2_000_000) % 3, ["a", "b", "c", "d"]))
    got, peak = _peak_bytes(lambda: text_values(big))
    assert got == {"a", "b", "c"}
    assert peak < 6_000_000
    _, peak_set = _peak_bytes(lambda: set(big))
    assert peak_set > 3 * peak


def _peak_bytes(fn):
    """The most bytes traced (numpy reports its buffers to tracemalloc) while ``fn`` runs, above the start."""
    import tracemalloc
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        out = fn()
        return out, tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


def test_taking_rows_and_putting_files_together_hold_one_copy_not_two():
    # Six 8 MB columns. Column by column, the table is held about once (its columns go as they are copied);
    # building the frame from the new columns with pandas' default copy held it twice (1.9x).
    rng = np.random.default_rng(0)
    n, cols = 1_000_000, "abcdef"
    table = 8 * n * len(cols)
    frame = pd.DataFrame({c: rng.random(n) for c in cols}, copy=False)
    mask = rng.random(n) < 0.9
    want = frame[mask]
    out, peak = _peak_bytes(lambda: take_by_column(frame, mask))
    pd.testing.assert_frame_equal(out, want)
    assert peak < 1.4 * table, peak / table
    parts = [pd.DataFrame({c: rng.random(n // 4) for c in cols}, copy=False) for _ in range(4)]
    want = pd.concat(parts, ignore_index=True)
    out, peak = _peak_bytes(lambda: concat_by_column(parts))
    pd.testing.assert_frame_equal(out, want)
    assert peak < 1.4 * table, peak / table


def test_used_categories_equals_pandas_remove_unused_categories():
    """Categories kept in their order, missing values kept, the codes' width as pandas gives it
    (a piece of a file's table, ``hotspots.load._map_group``)."""
    from hotspots.frames import used_categories
    rng = np.random.default_rng(3)
    names = [f"c{k:03d}" for k in range(300)]         # more than 127: 16-bit codes
    for used, ordered in ((names[::7], False), (names[:120], True), (names, False), ([], False)):
        values = [used[i] for i in rng.integers(0, len(used), 500)] if used else []
        cells = [None if k % 11 == 0 else v for k, v in enumerate(values)]
        col = pd.Series(pd.Categorical(cells, categories=names[::-1], ordered=ordered), index=np.arange(len(cells)) + 5)
        got, want = used_categories(col), col.cat.remove_unused_categories()
        pd.testing.assert_series_equal(got, want)
        assert got.cat.codes.dtype == want.cat.codes.dtype
        assert list(got.cat.categories) == list(want.cat.categories)
        # Sorted too (``hotspots.load.finish``): as pandas' reorder_categories(sorted(...)).
        got = used_categories(col, sort=True)
        want = want.cat.reorder_categories(pd.Index(sorted(want.cat.categories), dtype=want.cat.categories.dtype))
        pd.testing.assert_series_equal(got, want)
        assert got.cat.codes.dtype == want.cat.codes.dtype and got.tolist() == col.tolist()


def test_text_category_of_python_strings_equals_pandas():
    """A column of Python strings (``locate``'s) made categories as ``astype(str).astype("category")``
    makes them: sorted text categories, missing values as ""."""
    from hotspots.load import text_category
    for cells in (["exact", "area", "street", "exact", ""], ["b", None, "a", np.nan, "b"], [],
                  ["Zed", "zed", "Ähre", "a b", "a"]):
        col = pd.Series(np.array(cells, dtype=object), index=np.arange(len(cells)) * 2, name="location_precision")
        got, want = text_category(col), col.fillna("").astype(str).astype("category")
        pd.testing.assert_series_equal(got, want)
        assert got.cat.categories.dtype == want.cat.categories.dtype
        assert got.cat.codes.dtype == want.cat.codes.dtype


def test_map_few_equals_series_map():
    from hotspots.load.readers import map_few
    table = {"burglary": "burglary", "robbery": "robbery", "": "blank"}
    for col in (pd.Series(["robbery", "burglary", "other", "", "robbery"]),
                pd.Series(["robbery", None, "x"], dtype="str", index=[9, 4, 1]),
                pd.Series(np.array(["robbery", "burglary", None], dtype=object)),
                pd.Series([], dtype="str")):
        for mapping in (table, {"robbery": 3, "burglary": 1}):
            pd.testing.assert_series_equal(map_few(col, mapping), col.map(mapping))


def test_ledger_counts_loaded_rows_per_file_as_pandas_groupby(tmp_path):
    """The rows loaded of each (source, file) pair, counted by codes: as pandas' groupby reindexed on the
    files, for categories and for text, with two sources reading one file, a file none of whose rows
    stayed, a path no file has and missing values (counted nowhere)."""
    from hotspots.load.ledger import Ledger
    paths = []
    for k in range(3):
        paths.append(tmp_path / f"f{k}.csv")
        paths[-1].write_text("a\n1\n")
    ledger = Ledger()
    for sid, k in (("police", 0), ("police", 1), ("council", 1), ("council", 2)):
        ledger.add_file(sid, paths[k], rows_read=10)
    rng = np.random.default_rng(3)
    n = 5_000
    source = rng.choice(["police", "council", "youth", None], n, p=[0.5, 0.3, 0.1, 0.1])
    path = rng.choice([str(paths[0]), str(paths[1]), "elsewhere.csv", None], n, p=[0.4, 0.4, 0.1, 0.1])
    for as_category in (False, True):
        frame = pd.DataFrame({"source_id": source, "_file": path})
        if as_category:
            frame = frame.astype("category")
        got = ledger.accounting(frame)["rows_loaded"].to_numpy()
        want = frame.groupby(["source_id", "_file"], observed=True).size().reindex(
            pd.MultiIndex.from_frame(pd.DataFrame(ledger.files)[["source_id", "path"]])).fillna(0).astype(int)
        assert got.tolist() == want.tolist()
        by_hand = [int(((source == sid) & (path == str(paths[k]))).sum())
                   for sid, k in (("police", 0), ("police", 1), ("council", 1), ("council", 2))]
        assert got.tolist() == by_hand and by_hand[3] == 0 and min(by_hand[:3]) > 0


def test_ledger_rejects_are_put_together_again_after_a_reject_and_stems_match_pandas(tmp_path):
    """The rejects table, kept between calls, is made again when a file's rejects arrive, and a caller's
    change to its copy does not reach the next caller; the summary's reasons grouped by stem (a quoted
    value cut, "duplicate of ..." as "duplicate") as pandas' regex replace over every row gives them."""
    from hotspots.load.ledger import Ledger
    ledger = Ledger()
    ledger.reject("police", "b.csv", [3, 1], ["no date", "bad easting '9x'"], ["Month", "Easting"])
    first = ledger.rejects
    first["reason"] = "changed"
    assert ledger.rejects["reason"].tolist() == ["bad easting '9x'", "no date"]
    ledger.reject("police", "a.csv", [2, 5, 7], ["duplicate of police:0:1", "bad easting '1y'", "no date"],
                  ["", "Easting", "Month"])
    ledger.reject("council", "c.csv", [1], ["duplicate of council:0:9"], [""])
    rej = ledger.rejects
    assert rej[["file", "row"]].values.tolist() == [["c.csv", 1], ["a.csv", 2], ["a.csv", 5], ["a.csv", 7],
                                                   ["b.csv", 1], ["b.csv", 3]]
    acc = pd.DataFrame({"source_id": ["police", "council"], "path": ["a.csv", "c.csv"], "sha256": "",
                        "rows_read": [10, 5], "rows_loaded": [7, 4], "rows_filtered": 0, "rows_rejected": [3, 1]})
    got = ledger.summary(acc).set_index("source_id")["top_reject_reasons"].to_dict()
    stem = rej["reason"].str.replace(r" '.*'$", "", regex=True).str.replace(r"^duplicate of .*$", "duplicate",
                                                                             regex=True)
    want = {sid: "; ".join(f"{r} ({n})" for r, n in grp.value_counts().head(3).items())
            for sid, grp in stem.groupby(rej["source_id"])}
    assert got == want and got["police"].startswith("bad easting (2)") and got["council"] == "duplicate (1)"


def test_row_groups_number_the_rows_combinations_as_factorize_of_their_tuples():
    from hotspots.frames import first_rows, row_groups
    rng = np.random.default_rng(4)
    n = 5_000
    keys = [pd.Series(rng.choice(["a", "b", "c", "d"], n), dtype="str"), rng.integers(0, 7, n).astype(float),
            rng.normal(size=n).round(1)]
    want = pd.factorize(pd.Series(list(zip(*[np.asarray(k) for k in keys]))))[0]
    assert np.array_equal(row_groups(keys), want)
    # Enough keys that their numbers would overflow 62 bits: renumbered on the way, the same groups.
    many = [rng.integers(0, 50_000, n) for _ in range(6)]
    want = pd.factorize(pd.Series(list(zip(*many))))[0]
    got = row_groups(many)
    assert np.array_equal(got, want)
    assert np.array_equal(first_rows(got), np.unique(want, return_index=True)[1])
    assert len(row_groups([])) == 0 and len(first_rows(np.zeros(0, np.int64))) == 0


def test_group_medians_are_numpys_median_of_each_groups_repeated_values():
    from hotspots.frames import group_medians
    rng = np.random.default_rng(4)
    for trial in range(200):
        n_groups = int(rng.integers(1, 6))
        m = int(rng.integers(0, 30))
        group = rng.integers(0, n_groups, m)
        values = rng.choice([5.0, 20.0, 20.0, 100.0, 250.0, 0.3], m) + (trial % 2) * rng.random(m)
        counts = rng.integers(1, 5, m)
        got = group_medians(group, values, counts, n_groups)
        for g in range(n_groups):
            mine = group == g
            want = np.median(np.repeat(values[mine], counts[mine])) if mine.any() else np.nan
            assert np.array_equal(got[g], want, equal_nan=True), (trial, g)     # the same bits
    assert np.isnan(group_medians(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64), 2)).all()


def test_ledger_summary_gives_each_sources_top_filter_reasons():
    """Filtered rows say why, as rejects do: the demo's City of London Police extract lost 12,567 of 18,347
    rows to its categories filter with only 'filtered 12,567' printed."""
    from hotspots.load.ledger import Ledger
    ledger = Ledger()
    ledger.filter("police", "a.csv", [1, 2, 4], ["category not selected"] * 3)
    ledger.filter("police", "b.csv", [1], ["outside study period"])
    ledger.filter("intel", "c.csv", [3], ["handling code C without conditions recorded in the config"])
    acc = pd.DataFrame({"source_id": ["police", "police", "intel", "ed"], "path": ["a.csv", "b.csv", "c.csv", "d.csv"],
                        "sha256": "", "rows_read": [5, 2, 4, 3], "rows_loaded": [2, 1, 3, 3],
                        "rows_filtered": [3, 1, 1, 0], "rows_rejected": 0})
    got = ledger.summary(acc).set_index("source_id")["top_filter_reasons"].to_dict()
    assert got == {"police": "category not selected (3); outside study period (1)",
                   "intel": "handling code C without conditions recorded in the config (1)", "ed": ""}
