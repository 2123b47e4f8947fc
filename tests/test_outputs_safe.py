"""The output folder is written whole or not at all, never over inputs or someone else's files (issue 9).

``hotspots.publish.outdir``: the overlap check against every input path and glob, the up-front check of
``--out``, the lock, the temporary folder and the swap; ``write_csv``: formula cells neutralised. The
whole pipeline runs once per session (``example_result``); these tests publish it again and again.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hotspots.cli import main
from hotspots.errors import UserError
from hotspots.load.ledger import HotspotsWarning
from hotspots.pipeline import publish
from hotspots.publish import outdir
from hotspots.publish.exports import neutralise_formulas, write_csv
from tests.conftest import EXAMPLE, ROOT


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_manifest_matches(folder: Path) -> dict:
    """Every output the manifest lists is there with its checksum, and nothing else is in the folder."""
    m = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    listed = {o["path"]: o["sha256"] for o in m["outputs"]}
    for path, sha in listed.items():
        assert digest(folder / path) == sha, path
    assert set(snapshot(folder)) == set(listed) | {"manifest.json"}
    return m


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


def partner_only(result):
    cfg = dataclasses.replace(result.cfg, outputs={**result.cfg.outputs, "tiers": ["partner"]})
    return dataclasses.replace(result, cfg=cfg)


def as_agency(result, source_id="community_intel"):
    return dataclasses.replace(result, extra={**result.extra, "agency": source_id})


def write_config(folder: Path, source_path: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data" / "city").mkdir(parents=True, exist_ok=True)
    (folder / "data" / "city" / "2018-01-city-of-london-street.csv").write_text(
        "Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,Crime type,"
        "Last outcome category,Context\n", encoding="utf-8")
    cfg = folder / "partnership.toml"
    cfg.write_text(textwrap.dedent(f"""\
        [study]
        start = "2018-01"
        end = "2018-12"
        [[sources]]
        id = "city_police"
        path = "{source_path}"
        schema = "police_uk_street"
        evidence = "recorded_crime"
        """), encoding="utf-8")
    return cfg


@pytest.fixture(scope="module")
def published(example_result, tmp_path_factory):
    """The example published through the Python API into a fresh folder: (paths, folder)."""
    out = tmp_path_factory.mktemp("published") / "out"
    return publish(example_result, out), out


# ----------------------------------------------------------------------------- overlap with inputs
def test_a_glob_that_would_read_the_default_output_folder_is_refused_before_anything_is_read(tmp_path, capsys):
    cfg = write_config(tmp_path / "p", "*/*/*.csv")
    assert main(["run", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "'*/*/*.csv'" in err and "[[sources]] 'city_police' path" in err
    assert "overlaps the inputs" in err and "read it back as input" in err
    assert not (tmp_path / "p" / "output").exists()
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["data", "partnership.toml"]


def test_out_inside_a_folder_a_glob_reaches_is_refused_and_a_narrow_glob_is_not(tmp_path):
    from hotspots.config import load_config
    cfg = load_config(write_config(tmp_path / "p", "data/*/*.csv"))
    with pytest.raises(UserError, match=r"'data/\*/\*\.csv' would match .*output/rejects\.csv"):
        outdir.check(tmp_path / "p" / "data" / "output", cfg)
    narrow = load_config(write_config(tmp_path / "q", "data/*/*-street.csv"))
    assert outdir.check(tmp_path / "q" / "data" / "output", narrow) == (tmp_path / "q" / "data" / "output").resolve()
    assert outdir.check(tmp_path / "p" / "output", cfg) == (tmp_path / "p" / "output").resolve()


def test_out_pointing_at_the_input_folder_is_refused_and_the_folder_left_as_it_was(capsys):
    folder = EXAMPLE / "data" / "city_street"
    before = snapshot(folder)
    assert main(["run", str(EXAMPLE / "partnership.toml"), "--out", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "overlaps the inputs" in err and "'data/city_street/*-street.csv'" in err
    assert snapshot(folder) == before
    assert not list(folder.parent.glob(".city_street.*"))


def test_out_containing_the_config_or_a_boundary_is_refused(tmp_path):
    from hotspots.config import load_config
    cfg = load_config(EXAMPLE / "partnership.toml")
    with pytest.raises(UserError, match="the config file"):
        outdir.check(EXAMPLE.parent, cfg)
    with pytest.raises(UserError, match=r"\[\[boundaries\]\] 'lad' path"):
        outdir.check(EXAMPLE / "data" / "boundaries", cfg)


def test_every_file_a_run_writes_is_known_to_the_overlap_check(published):
    _, out = published
    assert set(snapshot(out)) <= set(outdir.OUTPUT_FILES)


# ----------------------------------------------------------------------------- --out checked up front
def test_out_an_existing_file_is_refused_before_the_analysis(tmp_path, capsys):
    target = tmp_path / "not-a-folder.txt"
    target.write_text("mine", encoding="utf-8")
    started = time.perf_counter()
    assert main(["run", str(EXAMPLE / "partnership.toml"), "--out", str(target)]) == 1
    err = capsys.readouterr().err
    assert f"the output folder {target} is an existing file, not a folder" in err
    assert time.perf_counter() - started < 10          # the analysis takes far longer
    assert target.read_text(encoding="utf-8") == "mine"


def test_out_that_cannot_be_created_is_refused_before_the_analysis(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    assert main(["run", str(EXAMPLE / "partnership.toml"), "--out", str(blocker / "sub" / "out")]) == 1
    assert f"cannot be created: {blocker} is a file" in capsys.readouterr().err


def test_out_in_a_folder_that_cannot_be_written_is_refused_before_the_analysis(tmp_path, capsys):
    if os.name != "nt" and os.geteuid() != 0:
        parent = tmp_path / "read-only"
        parent.mkdir()
        parent.chmod(0o500)
    elif Path("/proc/self").is_dir():
        parent = Path("/proc")          # root writes anywhere else
    else:
        pytest.skip("no folder this user cannot write to")
    try:
        started = time.perf_counter()
        assert main(["run", str(EXAMPLE / "partnership.toml"), "--out", str(parent / "out")]) == 1
        assert f"cannot be written: creating a folder in {parent} failed" in capsys.readouterr().err
        assert time.perf_counter() - started < 10
    finally:
        if parent != Path("/proc"):
            parent.chmod(0o700)


# ----------------------------------------------------------------------------- whole or not at all
def test_publish_writes_through_a_temporary_folder_and_leaves_nothing_beside(published):
    paths, out = published
    assert paths["out"] == out
    assert paths["map_partner"] == out / "map.html" and paths["map_partner"].is_file()
    assert paths["manifest"] == out / "manifest.json" and paths["map_public"] == out / "map-public.html"
    m = assert_manifest_matches(out)
    assert m["written_by"]["tool"] == "hotspots" and m["written_by"]["run"] == "shared"
    assert leftovers(out) == []


def test_a_partner_only_rerun_removes_the_previous_public_map_and_tables(example_result, published, tmp_path):
    _, first = published
    assert (first / "map-public.html").is_file() and (first / "public" / "areas.csv").is_file()
    out = tmp_path / "out"
    publish(example_result, out)
    assert (out / "map-public.html").is_file()
    (out / "notes-from-an-earlier-version.txt").write_text("stale", encoding="utf-8")
    # The folder is replaced whole; a file the run did not write goes with it, and the run says so.
    with pytest.warns(HotspotsWarning, match=r"1 file\(s\) in .* that the previous run did not write were removed "
                                             r"with its outputs: notes-from-an-earlier-version.txt"):
        publish(partner_only(example_result), out)
    assert not (out / "map-public.html").exists() and not (out / "public").exists()
    assert not (out / "notes-from-an-earlier-version.txt").exists()
    m = assert_manifest_matches(out)
    assert {o["tier"] for o in m["outputs"]} == {"partner", "analyst"}
    assert leftovers(out) == []


def test_an_unrelated_non_empty_folder_is_refused_and_left_intact(example_result, tmp_path, capsys):
    mine = tmp_path / "my documents"
    mine.mkdir()
    (mine / "budget.xlsx").write_bytes(b"precious")
    (mine / "sub").mkdir()
    (mine / "sub" / "notes.txt").write_text("also precious", encoding="utf-8")
    before = snapshot(mine)
    with pytest.raises(UserError, match="holds files that hotspots did not write"):
        publish(example_result, mine)
    assert main(["run", str(EXAMPLE / "partnership.toml"), "--out", str(mine)]) == 1
    assert "hotspots did not write" in capsys.readouterr().err
    assert snapshot(mine) == before and leftovers(mine) == []
    # A manifest.json that hotspots did not write does not make the folder replaceable.
    (mine / "manifest.json").write_text('{"outputs": []}', encoding="utf-8")
    with pytest.raises(UserError, match="hotspots did not write"):
        outdir.check(mine, None)


@pytest.mark.parametrize("where", ["a map", "the manifest"])
def test_a_crash_while_publishing_leaves_the_previous_output_whole(example_result, published, tmp_path,
                                                                   monkeypatch, where):
    out = tmp_path / "out"
    publish(partner_only(example_result), out)
    before = snapshot(out)

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash while publishing")
    if where == "a map":
        monkeypatch.setattr("hotspots.publish.map.build_map", crash)      # after the tables are written
    else:
        monkeypatch.setattr("hotspots.publish.manifest.write_manifest", crash)   # after every other file
    with pytest.raises(RuntimeError, match="simulated crash"):
        publish(example_result, out)
    assert snapshot(out) == before
    assert_manifest_matches(out)
    assert leftovers(out) == []           # the temporary folder is gone, and the lock


KILLED_WRITER = """
import sys, time
from pathlib import Path
from hotspots.publish import outdir
out = Path(sys.argv[1])
with outdir.writing(out) as tmp:
    (tmp / "map.html").write_text("new", encoding="utf-8")
    print("writing", flush=True)
    time.sleep(60)
"""


def test_kill_9_while_writing_leaves_the_previous_output_and_the_next_run_cleans_up(example_result, tmp_path):
    out = tmp_path / "out"
    publish(partner_only(example_result), out)
    before = snapshot(out)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(out)], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)
    assert proc.stdout.readline().strip() == "writing"
    assert outdir.lock_path(out).is_file()
    with pytest.raises(UserError, match=f"another hotspots run \\(process {proc.pid}"):
        publish(example_result, out)          # the second run while the first holds the folder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert snapshot(out) == before
    assert_manifest_matches(out)
    assert any(".hotspots-tmp-" in n for n in leftovers(out))   # the dead run's half-written folder
    publish(example_result, out)                                    # stale lock taken over, leftovers removed
    assert (out / "map-public.html").is_file()
    assert_manifest_matches(out)
    assert leftovers(out) == []


# ----------------------------------------------------------------------------- the lock
def test_a_held_lock_gives_a_clear_error_and_a_stale_one_is_taken_over(example_result, tmp_path, capsys):
    out = tmp_path / "out"
    lock = outdir.lock_path(out)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(f"{holder.pid} {os.uname().nodename}\n", encoding="utf-8")
        assert main(["run", str(EXAMPLE / "partnership.toml"), "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert f"another hotspots run (process {holder.pid}" in err and "two runs cannot write one folder" in err
        assert str(lock) in err
        with pytest.raises(UserError, match="another hotspots run"):
            publish(example_result, out)
        assert not out.exists() and lock.read_text(encoding="utf-8").split()[0] == str(holder.pid)
    finally:
        holder.kill()
        holder.wait()
    publish(partner_only(example_result), out)       # its process is dead: the lock is stale
    assert (out / "map.html").is_file() and not lock.exists()


# ----------------------------------------------------------------------------- agency runs
def test_an_agency_run_defaults_to_its_own_folder(example_result, tmp_path, monkeypatch, capsys):
    import hotspots.pipeline
    own_run = as_agency(example_result)
    monkeypatch.setattr(hotspots.pipeline, "analyse", lambda cfg, progress=None, agency=None, **load: own_run)
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--agency", "community_intel"]) == 0
    own = tmp_path / "hotspots-demo-agency-community_intel"
    assert (own / "map.html").is_file() and not (own / "map-public.html").exists()
    assert not (tmp_path / "hotspots-demo").exists()
    assert json.loads((own / "manifest.json").read_text(encoding="utf-8"))["written_by"]["run"] == \
        "agency:community_intel"
    from hotspots.cli import default_out_folder
    assert default_out_folder(EXAMPLE / "output", "community_intel") == EXAMPLE / "output-agency-community_intel"
    assert default_out_folder(EXAMPLE / "output", "../../etc") == EXAMPLE / "output-agency-_.._etc"
    assert default_out_folder(EXAMPLE / "output", None) == EXAMPLE / "output"


def test_agency_and_shared_runs_never_replace_one_another(example_result, published, tmp_path):
    _, shared = published
    before = snapshot(shared)
    with pytest.raises(UserError, match="holds the outputs of a shared run"):
        publish(as_agency(example_result), shared)
    assert snapshot(shared) == before
    own = tmp_path / "agency"
    publish(as_agency(example_result), own)
    with pytest.raises(UserError, match="agency 'community_intel''s own run"):
        publish(example_result, own)
    with pytest.raises(UserError, match="agency 'community_intel''s own run"):
        publish(as_agency(example_result, "ed_assaults"), own)
    publish(as_agency(example_result), own)           # the same agency's rerun replaces its own folder
    assert_manifest_matches(own)


# ----------------------------------------------------------------------------- formula injection
HOSTILE = ["=HYPERLINK(\"http://x\",\"y\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(1)", "\t=1", "\r=1"]


def test_write_csv_neutralises_formula_text_and_keeps_negative_numbers_numeric(tmp_path):
    df = pd.DataFrame({"name": HOSTILE + ["plain", None], "z": [-1.5, 2.0, -3.25, 0.0, -0.1, 1.0, -7.0, np.nan],
                       "n": np.arange(-4, 4), "flag": [True, False] * 4,
                       "kind": pd.Categorical(["=a", "b"] * 3 + [None, "@c"]), "-neg": ["x"] * 8,
                       "mixed": pd.Series([1, "=x", 2.5, None, "+y", "z", -3, "@"], dtype=object)})
    assert isinstance(df["name"].dtype, pd.StringDtype)      # pandas' text dtype, tested by column
    path = write_csv(df, tmp_path / "t.csv")
    back = pd.read_csv(path, keep_default_na=False)
    assert list(back["name"][:6]) == ["'" + s for s in HOSTILE]
    assert list(back["name"][6:]) == ["plain", ""]
    back = pd.read_csv(path)
    assert back["z"].dtype == float and back["z"].iloc[0] == -1.5 and back["z"].iloc[2] == -3.25
    assert back["n"].dtype == np.int64 and back["n"].min() == -4
    assert list(back["kind"][:2]) == ["'=a", "b"] and "'-neg" in back.columns
    assert back["kind"].fillna("").tolist()[6:] == ["", "'@c"]
    assert back["mixed"].fillna("").astype(str).tolist() == ["1", "'=x", "2.5", "", "'+y", "z", "-3", "'@"]
    assert df["name"].iloc[0] == HOSTILE[0]            # the caller's frame is not changed
    plain = pd.DataFrame({"a": ["x", "y"], "b": [-1.0, 2.0]})
    assert neutralise_formulas(plain) is plain


def test_text_and_integer_tables_are_written_byte_for_byte_as_pandas_writes_them(tmp_path):
    """Tables of text and integers (rejects.csv) are written by Arrow's string functions: the same bytes
    as pandas' csv writer, for cells with commas, quotes, carriage returns, line feeds, tabs, spaces,
    non-ASCII text, empty and missing cells, categories, nullable integers and hostile column names;
    any other table (a float column, one column) is still pandas'."""
    from hotspots.publish.exports import _text_csv
    rng = np.random.default_rng(11)
    alphabet = list('ab ,"\r\n\t=+-@\'é中;') + ["", "\r\n", '""']
    words = ["".join(rng.choice(alphabet, rng.integers(0, 6))) for _ in range(400)]
    n = 2_000
    df = pd.DataFrame({"source_id": pd.Categorical(rng.choice(["police", "ed, east", 'say "hi"', None], n)),
                       "file": rng.choice(words, n), "row": rng.integers(-5, 10**9, n),
                       "reason": pd.Series(rng.choice(words + [None], n), dtype="str"),
                       "columns": pd.Series(rng.choice(words + [None], n), dtype=object),
                       "count": pd.array(rng.choice([1, 2, None], n), dtype="Int64"),
                       'we"ird,\r\nname': rng.choice(words, n)})
    for frame in (df, df.iloc[:0], df.iloc[:1]):
        want, got = tmp_path / "pandas.csv", tmp_path / "ours.csv"
        neutralise_formulas(frame).to_csv(want, index=False, lineterminator="\r\n")
        write_csv(frame, got)
        assert _text_csv(neutralise_formulas(frame)) is not None
        assert got.read_bytes() == want.read_bytes()
    assert _text_csv(df.assign(z=0.5)) is None and _text_csv(df[["file"]]) is None
    assert _text_csv(df.assign(mixed=pd.Series([1, "x"] * (n // 2), dtype=object))) is None
    assert _text_csv(df.assign(raw=pd.Series([b"x", "y"] * (n // 2), dtype=object))) is None


def test_areas_and_buildings_csv_neutralise_hostile_names(example_result, tmp_path):
    areas = example_result.areas.copy()
    areas.loc[0, "area"] = HOSTILE[0]
    buildings = example_result.buildings.copy()
    buildings.loc[buildings.index[:4], "name"] = HOSTILE[:4]
    buildings.loc[buildings.index[0], "type"] = "@type"
    result = dataclasses.replace(partner_only(example_result), areas=areas, buildings=buildings)
    out = tmp_path / "out"
    publish(result, out)
    a = pd.read_csv(out / "areas.csv")
    assert a.loc[0, "area"] == "'" + HOSTILE[0]
    b = pd.read_csv(out / "buildings.csv")
    assert list(b["name"][:4]) == ["'" + s for s in HOSTILE[:4]] and b.loc[0, "type"] == "'@type"
    for col in ("x", "y") + tuple(c for c in b.columns if c.startswith(("rr_", "expected_"))):
        assert pd.api.types.is_numeric_dtype(b[col]), col
    assert len(b) == len(buildings)
    raw = (out / "areas.csv").read_text(encoding="utf-8")
    assert "\n=" not in raw and ",=" not in raw and "\"=" not in raw


# ----------------------------------------------------------------------------- the swap itself
def fake_output(tmp: Path, text: str) -> None:
    (tmp / "map.html").write_text(text, encoding="utf-8")
    (tmp / "manifest.json").write_text(json.dumps({"written_by": outdir.signature("shared")}), encoding="utf-8")


def test_the_two_rename_swap_where_no_atomic_exchange_exists_replaces_the_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(outdir, "_exchange", lambda a, b: False)
    out = tmp_path / "out"
    for text in ("first", "second"):
        with outdir.writing(out) as tmp:
            fake_output(tmp, text)
    assert (out / "map.html").read_text(encoding="utf-8") == "second"
    assert leftovers(out) == []


def test_a_swap_that_fails_leaves_the_previous_folder_and_says_so(tmp_path, monkeypatch):
    out = tmp_path / "out"
    with outdir.writing(out) as tmp:
        fake_output(tmp, "first")
    monkeypatch.setattr(outdir, "_exchange", lambda a, b: False)
    real_rename, calls = os.rename, []

    def rename(a, b):
        calls.append((a, b))
        if len(calls) == 2:      # the new folder into place
            raise PermissionError(13, "Permission denied")
        return real_rename(a, b)
    monkeypatch.setattr(outdir.os, "rename", rename)
    with pytest.raises(UserError, match="could not replace the output folder .* it is left as it was"):
        with outdir.writing(out) as tmp:
            fake_output(tmp, "second")
    assert (out / "map.html").read_text(encoding="utf-8") == "first"
    assert leftovers(out) == []


@pytest.mark.parametrize("exchange", [True, False])
def test_previous_outputs_that_cannot_be_deleted_are_named_not_left_hidden_in_silence(tmp_path, monkeypatch,
                                                                                     exchange):
    """A previous output the system will not delete (a file held open, a read-only mount: simulated, as
    root deletes anything) stayed as a hidden folder beside the new one with no word. The run says
    which folder holds it; the new outputs are in place all the same."""
    out = tmp_path / "out"
    with outdir.writing(out) as tmp:
        fake_output(tmp, "first")
    if not exchange:
        monkeypatch.setattr(outdir, "_exchange", lambda a, b: False)
    monkeypatch.setattr(outdir.shutil, "rmtree", lambda path, ignore_errors=False: None)
    with pytest.warns(HotspotsWarning, match=r"could not all be deleted .* hidden folder .*\.out\.hotspots-") as got:
        with outdir.writing(out) as tmp:
            fake_output(tmp, "second")
    assert (out / "map.html").read_text(encoding="utf-8") == "second"
    left = leftovers(out)
    assert len(left) == 1 and left[0] in str(got[0].message)
    assert (tmp_path / left[0] / "map.html").read_text(encoding="utf-8") == "first"
