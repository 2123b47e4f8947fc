"""Reusable normalised incidents (hotspots.load.cache) and loading on both cores.

A rerun with the same inputs reads no source file and writes the same outputs,
byte for byte apart from timestamps, run times and folium's random element ids;
a changed mapping or file is read again; ``--fresh`` reads everything; worker
processes give the same incidents and ledger as one process.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

import hotspots.load as load
from hotspots.cli import main
from hotspots.config import load_config
from hotspots.errors import UserError
from hotspots.load import LoadOptions, load_sources
from hotspots.load.spec import needs_geocoder, resolve_schema

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "london_city_fringe"

# What legitimately differs between two runs of the same inputs.
_VOLATILE = [
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?"), "TIME"),
    (re.compile(r"((runtime[_ ]s|duration_s)\"?:?\s*)[0-9.]+"), r"\1N"),     # run times
    (re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])"), "ID"),           # folium's element ids (uuid4 hex)
    (re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])"), "SHA"),          # hashes of outputs that carry those ids
    (re.compile(r"(\"seconds\"\s*:\s*)[0-9.e-]+"), r"\1N"),
]


def comparable_outputs(out: Path) -> dict[str, str]:
    """Every output file under ``out`` as text with the volatile parts masked (GeoPackages as
    their layers' rows, geometry as WKT), keyed by its path relative to ``out``."""
    import geopandas as gpd
    import pyogrio

    found = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = str(path.relative_to(out))
        if path.suffix == ".gpkg":
            parts = []
            for layer, _ in pyogrio.list_layers(path):
                df = gpd.read_file(path, layer=layer)
                flat = pd.DataFrame(df).assign(geometry=df.geometry.to_wkt()) if "geometry" in df else df
                parts.append(f"[{layer}]\n" + pd.DataFrame(flat).to_csv(index=False))
            text = "\n".join(parts)
        elif path.suffix in (".png", ".pdf"):
            text = path.read_bytes().hex()
        else:
            text = path.read_text(encoding="utf-8")
        for pattern, repl in _VOLATILE:
            text = pattern.sub(repl, text)
        found[rel] = text
    return found


def assert_same_outputs(a: dict[str, str], b: dict[str, str]) -> None:
    assert sorted(a) == sorted(b)
    differ = [k for k in a if a[k] != b[k]]
    assert not differ, f"outputs differ: {differ}"


def small_partnership(dest: Path) -> Path:
    """A copy of the example partnership with its first months of police files only (quicker),
    every partner source kept (geocoded by postcode, street and place). Returns the config."""
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns(".hotspots-cache", "output*"))
    for folder, keep in (("city_street", 5), ("met_api", 6), ("city_stop_search", 3)):
        for extra in sorted((dest / "data" / folder).iterdir())[keep:]:
            extra.unlink()
    return dest / "partnership.toml"


@pytest.fixture()
def partnership(tmp_path):
    """A small copy of the example partnership (its cache then lives in tmp_path, not in the repository)."""
    small_partnership(tmp_path / "p")
    return tmp_path / "p"


class Reads:
    """The source files read (by name), in this process and in worker processes forked from it."""

    def __init__(self, log: Path):
        self.log = log

    def __iter__(self):
        return iter(self.names())

    def names(self) -> list[str]:
        return self.log.read_text(encoding="utf-8").split() if self.log.exists() else []

    def __len__(self):
        return len(self.names())

    def __eq__(self, other):
        return self.names() == list(other)

    def __contains__(self, name):
        return name in self.names()

    def clear(self):
        self.log.unlink(missing_ok=True)


@pytest.fixture()
def reads(monkeypatch, tmp_path):
    """Counts the source files read, by file name (a log file: worker processes count too)."""
    counted = Reads(tmp_path / "reads.log")
    real = load.read_source

    def counting(path, *a, **k):
        with open(counted.log, "a", encoding="utf-8") as fh:
            fh.write(Path(path).name + "\n")
        return real(path, *a, **k)

    monkeypatch.setattr(load, "read_source", counting)
    return counted


def _run(*args) -> tuple[int, str]:
    buf, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
        code = main(list(map(str, args)))
    return code, buf.getvalue() + err.getvalue()


def _ledger(loaded):
    acc = loaded.ledger.accounting(loaded.incidents)
    return acc, loaded.ledger.rejects, loaded.ledger.filtered, loaded.ledger.notes


def assert_same_load(a, b) -> None:
    pd.testing.assert_frame_equal(a.incidents, b.incidents)
    for x, y in zip(_ledger(a), _ledger(b)):
        pd.testing.assert_frame_equal(x.reset_index(drop=True), y.reset_index(drop=True))
    assert a.geocoding == b.geocoding and a.linkage == b.linkage
    assert a.ledger.warnings == b.ledger.warnings
    pd.testing.assert_frame_equal(a.streets, b.streets)


def test_a_rerun_reads_no_file_and_writes_the_same_outputs(partnership, reads):
    config = partnership / "partnership.toml"
    n_files = sum(len(s.files(partnership)) for s in load_config(config).sources)
    code, first_text = _run("run", config)
    assert code == 0
    first = comparable_outputs(partnership / "output")
    assert len(reads) == n_files            # every source file read, once
    assert (partnership / ".hotspots-cache").is_dir()
    rejects_first = (partnership / "output" / "rejects.csv").read_bytes()

    reads.clear()
    code, second_text = _run("run", config)
    assert code == 0
    assert reads == []                      # nothing read, mapped or geocoded again
    assert_same_outputs(first, comparable_outputs(partnership / "output"))
    assert (partnership / "output" / "rejects.csv").read_bytes() == rejects_first
    assert second_text == first_text        # the accounting table and geocoding rates too



def test_the_cache_gives_back_the_same_incidents_and_ledger(partnership, reads):
    cfg = load_config(partnership / "partnership.toml")
    plain = load_sources(cfg)                                   # no cache at all
    assert not (partnership / ".hotspots-cache").exists()
    load_sources(cfg, options=LoadOptions.for_run())            # fills the cache
    reads.clear()
    again = load_sources(cfg, options=LoadOptions.for_run())
    assert reads == []
    assert_same_load(plain, again)
    assert len(plain.ledger.rejects) > 100 and len(plain.ledger.filtered) > 100   # the ledger is not trivial


def test_a_changed_mapping_or_file_is_read_again_and_only_that(partnership, reads):
    config = partnership / "partnership.toml"
    load_sources(load_config(config), options=LoadOptions.for_run())
    # A mapping edited: only that source's file is read again.
    mapping = partnership / "schemas" / "yos_referrals.json"
    spec = json.loads(mapping.read_text(encoding="utf-8"))
    spec["fields"]["severity"]["map"]["Green"] = 1
    mapping.write_text(json.dumps(spec), encoding="utf-8")
    # Read again in this process too (a notebook's second run): a schema file was read once a process, and
    # the second run used the first mapping with no word (hostile audit).
    reads.clear()
    loaded = load_sources(load_config(config), options=LoadOptions.for_run())
    assert reads.names() == ["yos_referrals.xlsx"]
    yos = loaded.incidents[loaded.incidents["source_id"] == "yos_referrals"]
    assert (yos["source_severity"] == "Green").any()
    assert set(yos.loc[yos["source_severity"] == "Green", "severity"]) == {1}
    # A file changed: that file alone (its rows counted anew).
    street = sorted((partnership / "data" / "city_street").glob("*-street.csv"))[0]
    lines = street.read_text(encoding="utf-8").splitlines(keepends=True)
    street.write_text("".join(lines[:-5]), encoding="utf-8")
    reads.clear()
    loaded = load_sources(load_config(config), options=LoadOptions.for_run())
    assert reads.names() == [street.name]
    acc = loaded.ledger.accounting(loaded.incidents)
    assert int(acc.loc[acc["path"] == str(street), "rows_read"].iloc[0]) == len(lines) - 1 - 5
    # The geocoder's inputs are part of the key of a geocoded source: a postcode file changed
    # reads the partner files located by postcode or free text again, no police file.
    cfg = load_config(config)
    geocoded = sorted(f.name for src in cfg.sources for f in src.files(cfg.base)
                      if needs_geocoder(resolve_schema(src.schema, cfg.base, src.options.get("mapping")))[0])
    assert "ed_istv_assaults.csv" in geocoded and "yos_referrals.xlsx" in geocoded
    postcodes = sorted((partnership / "data" / "postcodes").glob("*.csv"))[0]
    postcodes.write_text(postcodes.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    reads.clear()
    load_sources(cfg, options=LoadOptions.for_run())
    assert sorted(reads.names()) == geocoded
    # The study period is part of the key: a shorter study reads every file again.
    text = config.read_text(encoding="utf-8").replace('end = "2019-11"', 'end = "2019-10"')
    config.write_text(text, encoding="utf-8")
    reads.clear()
    load_sources(load_config(config), options=LoadOptions.for_run())
    assert street.name in reads and "ed_istv_assaults.csv" in reads


def test_fresh_reads_every_file_and_a_damaged_entry_is_read_again(partnership, reads):
    cfg = load_config(partnership / "partnership.toml")
    first = load_sources(cfg, options=LoadOptions.for_run())
    n = len(reads)
    reads.clear()
    load_sources(cfg, options=LoadOptions.for_run(fresh=True))
    assert len(reads) == n
    # One file's entry and the whole load's entry damaged: that file alone is read again.
    root = partnership / ".hotspots-cache"
    whole = list((root / "loads").rglob("incidents.parquet"))
    assert len(whole) == 1
    whole[0].write_bytes(b"not parquet")
    for parquet in root.rglob("incidents.parquet"):
        if "loads" not in parquet.parts:
            parquet.write_bytes(b"not parquet")
            break
    reads.clear()
    again = load_sources(cfg, options=LoadOptions.for_run())
    assert len(reads) == 1
    assert_same_load(first, again)


def test_a_rerun_that_changes_only_what_the_load_does_not_read_takes_the_whole_load_back(
        partnership, reads, monkeypatch):
    config = partnership / "partnership.toml"
    # A file with a header and no rows: its warning is shown again when the whole load is reused.
    street = sorted((partnership / "data" / "city_street").glob("*-street.csv"))[0]
    header = street.read_text(encoding="utf-8").splitlines(keepends=True)[0]
    (street.parent / "2018-03-empty-street.csv").write_text(header, encoding="utf-8")
    with pytest.warns(load.HotspotsWarning, match="no data rows"):
        plain = load_sources(load_config(config), options=LoadOptions(compact=True))  # no cache
    assert len(plain.ledger.warnings) == 1
    run = dataclasses.replace(LoadOptions.for_run(), compact=True)         # as the pipeline loads
    load_sources(load_config(config), options=run)                              # fills it
    reads.clear()
    entries = []
    real_get = load.cache.get
    monkeypatch.setattr(load.cache, "get", lambda root, key: entries.append(root.name) or real_get(root, key))
    # The weights, a source's weight and its coverage, the cell size: none of them is read by the load.
    text = config.read_text(encoding="utf-8")
    edited = (text.replace("community_report = 0.3", "community_report = 0.6")
              .replace("weight = 0.8\ncoverage", "weight = 0.4\ncoverage")
              .replace('coverage = ["City of London", "Camden", "Hackney", "Islington", "Tower Hamlets", '
                       '"Westminster"]\nhandling = "4"', 'coverage = ["City of London"]\nhandling = "4"'))
    assert edited.count("community_report = 0.6") == 1 and "weight = 0.4" in edited and edited != text
    config.write_text(edited, encoding="utf-8")
    with pytest.warns(load.HotspotsWarning, match="no data rows"):
        again = load_sources(load_config(config), options=run)
    assert reads == [] and entries == ["loads"]         # one entry read: the whole load's
    assert_same_load(plain, again)
    # [linkage] is read by the load: the whole load is made again, from the files' own entries (none read).
    config.write_text(edited.replace("distance_m = 50", "distance_m = 400"), encoding="utf-8")
    entries.clear()
    linked = load_sources(load_config(config), options=run)
    assert reads == [] and entries.count("loads") == 1 and len(entries) > 10
    assert linked.linkage["distance_m"] == 400 and linked.linkage["linked"] > plain.linkage["linked"]
    assert_same_load(load_sources(load_config(config), options=LoadOptions(compact=True)), linked)


def test_cache_folder_overlapping_the_output_or_a_source_is_refused(partnership, monkeypatch):
    config = partnership / "partnership.toml"
    monkeypatch.setenv("HOTSPOTS_CACHE", str(partnership / "output" / "cache"))
    code, text = _run("run", config)
    assert code == 1 and "and the cache folder" in text and "overlap" in text
    monkeypatch.setenv("HOTSPOTS_CACHE", str(partnership / "data" / "partners" / "cache"))
    text = config.read_text(encoding="utf-8").replace('path = "data/partners/ed_istv_assaults.csv"',
                                                      'path = "data/partners/**/*.csv"')
    config.write_text(text, encoding="utf-8")
    cfg = load_config(config)
    load_sources(cfg, only=["city_police"], options=LoadOptions.for_run())
    (partnership / "data" / "partners" / "cache" / "x.csv").write_text("a\n1\n", encoding="utf-8")
    from hotspots.errors import UserError
    with pytest.raises(UserError, match="reaches into the cache folder"):
        load_sources(cfg, options=LoadOptions.for_run())


@pytest.mark.parametrize("compact", [False, True])
def test_worker_processes_give_the_same_incidents_and_ledger(partnership, compact):
    # Compact (the pipeline's load), the workers send back no references; one process drops them later.
    cfg = load_config(partnership / "partnership.toml")
    one = load_sources(cfg, options=LoadOptions(processes=1, compact=compact))
    two = load_sources(cfg, options=LoadOptions(processes=2, compact=compact))
    assert_same_load(one, two)
    assert len(one.incidents) > 3_000 and one.geocoding["ed_assaults"]["street"] > 0
    assert ("source_ref" in two.incidents) is not compact


def test_the_cache_written_by_compact_workers_keeps_the_references(partnership, tmp_path):
    cfg = load_config(partnership / "partnership.toml")
    folder = tmp_path / "cache"
    load_sources(cfg, options=LoadOptions(processes=2, compact=True, write=True, cache=folder))
    reused = load_sources(cfg, options=LoadOptions(reuse=True, cache=folder, processes=1))
    assert_same_load(load_sources(cfg, options=LoadOptions(processes=1)), reused)
    assert (reused.incidents["source_ref"] != "").mean() > 0.5


def test_both_cores_are_used_only_when_the_files_pay_for_it(partnership, monkeypatch):
    used = []
    real = load.ProcessPoolExecutor

    def spy(*a, **k):
        used.append(k.get("max_workers"))
        return real(*a, **k)

    monkeypatch.setattr(load, "ProcessPoolExecutor", spy)
    monkeypatch.setattr(load.os, "cpu_count", lambda: 2)
    cfg = load_config(partnership / "partnership.toml")
    size = sum(f.stat().st_size for s in cfg.sources for f in s.files(cfg.base))
    monkeypatch.setattr(load, "PARALLEL_MIN_BYTES", size // 2)
    load_sources(cfg)                                  # enough to read: two processes
    assert used and used[0] == 2
    used.clear()
    monkeypatch.setattr(load, "PARALLEL_MIN_BYTES", size * 2)
    load_sources(cfg)           # many small files, few bytes: mapped in batches here (load.batches)
    assert used == []
    load_sources(cfg, only=["yos_referrals"], options=LoadOptions(processes=2))   # one file: no pool
    assert used == []


def test_files_mapped_in_batches_are_each_what_mapping_it_alone_gives(partnership, monkeypatch):
    """Batches (load.batches, load_files) against one file at a time: the same incidents, ledger,
    geocoding and street points, on real police.uk months (rejects, notes, duplicates across months)
    and the geocoded partner files."""
    cfg = load_config(partnership / "partnership.toml")
    batched = load_sources(cfg, options=LoadOptions(processes=1))
    monkeypatch.setattr(load, "BATCH_BYTES", 1)          # every file its own batch
    alone = load_sources(cfg, options=LoadOptions(processes=1))
    assert_same_load(batched, alone)
    assert len(batched.ledger.rejects) > 0 and len(batched.ledger.notes) > 0
    # File by file, each result as loading it alone gives it, in a batch of every street file of a source.
    plan = load._plan(cfg, next(s for s in cfg.sources if s.id == "city_police"))
    jobs = load._jobs(cfg, plan)
    assert len(jobs) >= 3
    together = load.load_files(jobs)
    assert len(load.batches(jobs)) == 1
    for job, res in zip(jobs, together):
        one = load.load_files([job])[0]
        assert res.rows_read == one.rows_read and res.geocoding == one.geocoding and res.error is None
        for name in ("incidents", "rejects", "filtered", "notes", "streets"):
            pd.testing.assert_frame_equal(getattr(res, name), getattr(one, name), obj=f"{name} of {job.path}")


def test_a_batch_that_fails_to_map_is_mapped_file_by_file_and_the_error_names_its_file(partnership,
                                                                                    monkeypatch):
    cfg = load_config(partnership / "partnership.toml")
    jobs = load._jobs(cfg, load._plan(cfg, next(s for s in cfg.sources if s.id == "city_police")))
    bad = Path(jobs[1].path)
    real = load.map_rows

    def failing(raw, schema, source_id, evidence, path, *a, **k):
        if (raw["Crime ID"] == "BOOM").any():
            raise UserError("a value this mapping cannot read.", file=path)
        return real(raw, schema, source_id, evidence, path, *a, **k)

    monkeypatch.setattr(load, "map_rows", failing)
    text = bad.read_text(encoding="utf-8").splitlines()
    head, first = text[0].split(","), text[1].split(",")
    first[head.index("Crime ID")] = "BOOM"
    bad.write_text("\n".join([text[0], ",".join(first), *text[2:]]) + "\n", encoding="utf-8")
    results = load.load_files(jobs)
    assert results[1].error is not None and results[1].stage == "map"
    assert str(bad) in str(results[1].error.file)
    assert all(r.error is None and len(r.incidents) for k, r in enumerate(results) if k != 1)


def test_a_table_stored_a_slice_at_a_time_comes_back_as_it_was(tmp_path, monkeypatch):
    import numpy as np
    monkeypatch.setattr(load.cache, "WRITE_ROWS", 3)      # 7 rows: three slices
    df = pd.DataFrame({
        "cat": pd.Categorical(list("xyxzxyx"), categories=["z", "y", "x", "unused"]),   # order and unused kept
        "text": pd.Series(list("abcdefg"), dtype="str"),
        "num": pd.array([1, None, 3, 4, 5, 6, 7], dtype="Int64"),
        "when": pd.to_datetime(["2020-01-01"] * 6 + ["2021-05-31"]).astype("datetime64[ns]"),
        "x": np.arange(7.0), "flag": [True, False] * 3 + [True]})
    tables = {name: df.iloc[:0] for name in load.cache.TABLES} | {"incidents": df}
    assert load.cache.put(tmp_path, "ab" + "0" * 62, {"n": 1}, tables)
    back = load.cache.get(tmp_path, "ab" + "0" * 62)
    pd.testing.assert_frame_equal(back["incidents"], df)
    assert list(back["incidents"]["cat"].cat.categories) == ["z", "y", "x", "unused"]
    assert back["meta"]["n"] == 1


def test_an_entry_whose_rows_do_not_add_up_or_will_not_parse_is_read_again(partnership, reads):
    """Hostile audit: a tampered entry published doubled counts with exit 0 (incidents duplicated), or
    stopped the run with an internal error (a dtype no run wrote, meta.json as a list). Each is now
    read again, and the load equals the first."""
    import pyarrow.parquet as pq
    cfg = load_config(partnership / "partnership.toml")
    first = load_sources(cfg, options=LoadOptions.for_run())
    root = partnership / ".hotspots-cache"
    whole = next((root / "loads").rglob("incidents.parquet"))
    files = [p for p in root.rglob("incidents.parquet") if "loads" not in p.parts]
    doubled = pq.read_table(whole)
    import pyarrow as pa
    pq.write_table(pa.concat_tables([doubled, doubled]), whole)             # every incident twice
    one = pq.read_table(files[0])
    pq.write_table(pa.concat_tables([one, one.slice(0, 1)]), files[0])       # one row twice
    meta = files[1].parent / "meta.json"
    meta.write_text(meta.read_text().replace('"rows_read": ', '"rows_read": 1000'))
    (files[2].parent / "meta.json").write_text("[1, 2, 3]")
    reads.clear()
    again = load_sources(cfg, options=LoadOptions.for_run())
    assert len(reads) == 3
    assert_same_load(first, again)


def test_a_file_that_changes_between_its_hash_and_its_read_stops_the_run_and_is_not_cached(
        partnership, monkeypatch):
    """Hostile audit: a partner's export landing mid-run was cached under the old content's hash and
    the manifest recorded a sha256 of data never analysed; every later run reused the wrong rows."""
    cfg = load_config(partnership / "partnership.toml")
    target = sorted(partnership.rglob("*street*.csv"))[0]
    real = load._fingerprint

    def then_changed(jobs):
        real(jobs)
        target.write_text(target.read_text(encoding="utf-8") + target.read_text(encoding="utf-8").splitlines()[1]
                          + "\n", encoding="utf-8")
    monkeypatch.setattr(load, "_fingerprint", then_changed)
    with pytest.raises(UserError) as err:
        load_sources(cfg, options=LoadOptions.for_run())
    assert "changed while it was being read" in str(err.value) and err.value.file == str(target)
    monkeypatch.setattr(load, "_fingerprint", real)
    # Nothing of the changed file was kept: the next run reads it (and every other file's rows add up).
    loaded = load_sources(cfg, options=LoadOptions.for_run())
    acc = loaded.ledger.accounting(loaded.incidents)
    assert (acc["rows_read"] == acc[["rows_loaded", "rows_filtered", "rows_rejected"]].sum(axis=1)).all()


def test_entries_written_on_the_second_core_are_all_there_when_the_run_is_done(partnership, reads, monkeypatch):
    """Files loaded in this process are stored by a forked process while the analysis goes on; the run
    waits for it, so a rerun with one file changed reads that file alone."""
    from hotspots.pipeline import analyse
    monkeypatch.setattr(load, "PARALLEL_MIN_BYTES", 10 ** 12)          # every file in this process
    cfg = load_config(partnership / "partnership.toml")
    n_files = sum(len(s.files(cfg.base)) for s in cfg.sources)
    started = []
    real = load.background.start
    monkeypatch.setattr(load.background, "start", lambda *a, **k: started.append(k["what"]) or real(*a, **k))
    analyse(cfg, load=LoadOptions.for_run(fresh=True))
    # One per round: the sources located by coordinates, then the geocoded ones.
    assert started.count("files' cache entries") == 2
    folder = partnership / ".hotspots-cache"
    entries = [p for p in folder.glob("??/*") if (p / "meta.json").is_file()]
    assert len(entries) == n_files
    street = sorted((partnership / "data" / "city_street").glob("*-street.csv"))[0]
    street.write_text(street.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    reads.clear()
    load_sources(load_config(partnership / "partnership.toml"), options=LoadOptions.for_run())
    assert reads.names() == [street.name]


def test_a_cache_folder_that_cannot_be_written_is_said_once_and_the_run_goes_on(partnership, monkeypatch):
    monkeypatch.setattr(load, "PARALLEL_MIN_BYTES", 10 ** 12)
    monkeypatch.setattr(load.cache, "put", lambda *a, **k: False)      # inherited by the forked writer
    cfg = load_config(partnership / "partnership.toml")
    with pytest.warns(load.HotspotsWarning, match="cannot be written") as caught:
        loaded = load_sources(cfg, options=LoadOptions.for_run(fresh=True))
    assert len([w for w in caught if "cannot be written" in str(w.message)]) == 1
    assert len(loaded.incidents) > 1000
