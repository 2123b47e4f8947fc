"""End to end through the command line, on the bundled example, and every error path."""
from __future__ import annotations

import json
import subprocess
import sys

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest

from hotspots.cli import main
from tests.conftest import EXAMPLE


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "hotspots", *args], capture_output=True, text=True, cwd=cwd)


def test_demo_writes_every_output_and_exits_zero(demo_out):
    code, stdout, out = demo_out
    assert code == 0
    for name in ("map.html", "hotspots.gpkg", "cells.geojson", "regions.geojson", "areas.csv",
                 "rejects.csv", "manifest.json"):
        assert (out / name).is_file(), name
    assert f"map (partner tier): {out / 'map.html'}" in stdout
    assert set(pyogrio.list_layers(out / "hotspots.gpkg")[:, 0]) >= {"cells", "regions", "boundaries"}


def test_the_summary_tells_records_from_those_counted_as_risk(demo_out):
    """Stop and search and weight-0 records are analysed rows but not risk: the summary said "14,264
    incidents" where the briefing counts 11,584 as risk (statistics audit). Both, and the briefing's figure."""
    _, stdout, out = demo_out
    cells = gpd.read_file(out / "cells.geojson")
    brief = (out / "briefing.html").read_text(encoding="utf-8")
    line = next(l for l in stdout.splitlines() if "counted as risk) on" in l)
    records, risk = (int(v.replace(",", "")) for v in line.replace("(", " ").split()[0:3:2])
    assert risk == int(cells["n"].sum()) < records
    assert f"{risk:,} incidents counted as risk" in brief


def test_manifest_accounts_for_every_row_of_every_file(demo_out):
    _, _, out = demo_out
    m = json.loads((out / "manifest.json").read_text())
    assert {"inputs", "parameters", "weights", "versions", "outputs", "started_at", "duration_s"} <= set(m)
    assert len(m["inputs"]) == 24 + 42 + 24 + 5 + 4   # police files, five partner files, four building files
    for entry in m["inputs"]:
        assert entry["rows_read"] == entry["rows_loaded"] + entry["rows_filtered"] + entry["rows_rejected"]
        assert len(entry["sha256"]) == 64
    rejects = pd.read_csv(out / "rejects.csv")
    assert list(rejects.columns) == ["source_id", "file", "row", "reason", "columns"]
    assert len(rejects) == sum(e["rows_rejected"] for e in m["inputs"])
    for key in ("cell_size_m", "neighbour_distance_m", "fdr_alpha"):
        assert "how" in m["parameters"][key]
    assert m["parameters"]["cell_size_m"]["value"] == 150
    assert {o["path"] for o in m["outputs"]} >= {"map.html", "hotspots.gpkg", "areas.csv"}
    assert m["versions"]["python"].startswith("3.")
    # Enough to remake every layer (audit finding: the bandwidth was rounded to 0.1 m, the KDE then
    # differed by up to 0.23 %, and the public tier's cells were nowhere): the bandwidth unrounded,
    # and the public tier's own parameters beside the run's.
    assert m["parameters"]["bandwidth_m"]["value"] != round(m["parameters"]["bandwidth_m"]["value"], 1)
    assert m["parameters_public"]["cell_size_m"]["value"] == 400
    assert m["parameters_public"]["neighbour_distance_m"]["value"] == pytest.approx(400 * 2 ** 0.5)
    assert "bandwidth_m" not in m["parameters_public"] and "fdr_alpha" not in m["parameters_public"]


def test_cells_have_the_documented_columns_and_the_geojson_is_wgs84(demo_out):
    _, _, out = demo_out
    cells = gpd.read_file(out / "hotspots.gpkg", layer="cells")
    for col in ("cell_id", "n", "n_recorded_crime", "n_police_activity", "weighted", "gi_z", "gi_p", "gi_q",
                "gi_class", "areas", "region_id", "status", "covered_by", "support", "z_ed_assaults",
                "p_ed_assaults"):
        assert col in cells.columns, col
    assert cells.crs.to_epsg() == 27700
    analysed = cells["status"] == "analysed"
    assert set(cells.loc[analysed, "gi_class"].unique()) <= set(range(-3, 4))
    # Cells no risk source covers have no class (never 0, "not significant"), no z, no p.
    assert cells.loc[~analysed, ["gi_class", "gi_z", "gi_p"]].isna().all().all()
    assert (cells.loc[~analysed, "status"] == "no_data").all()
    web = gpd.read_file(out / "cells.geojson")
    assert web.crs.to_epsg() == 4326 and len(web) == len(cells)
    regions = gpd.read_file(out / "regions.geojson")
    for col in ("region_id", "cells", "n", "weighted", "peak_z", "areas", "cross_boundary"):
        assert col in regions.columns, col
    areas = pd.read_csv(out / "areas.csv")
    assert list(areas.columns) == ["layer", "area", "n", "weighted", "hot_cells", "regions",
                                   "cross_boundary_regions"]


def test_example_hotspots_cross_boundaries_and_each_rests_on_its_sources_evidence(example_result):
    regions = example_result.regions.set_index("region_id")
    cells = example_result.cells
    # The strongest region: the City's violence around Liverpool Street / Bishopsgate, which the
    # City's police, the emergency department and intelligence each find; it crosses a boundary.
    assert bool(regions.loc["R1", "cross_boundary"]) is True
    assert "City of London" in regions.loc["R1", "areas"].split(";")
    r1 = cells[cells["region_id"] == "R1"]
    assert {"city_police", "ed_assaults"} <= set(";".join(r1["support"]).split(";"))
    # The West End (Covent Garden / Leicester Square) is hot on the Met's own evidence (its cells
    # name met_police in `support`), within the Met's derived coverage, which the City's police
    # never covered; the four partner sources covering it see nothing unusual there, so under
    # the agreed weights their evidence outweighs it (weighted Stouffer), and it is no region.
    west = cells[(cells["cell_id"].isin(["C13_10", "C13_11", "C14_10"]))]
    assert west["support"].str.contains("met_police").all()
    assert not west["covered_by"].str.contains("city_police").any()
    assert (west["p_met_police"] < 1e-3).all() and (west["gi_z"] > 1).all() and (west["gi_class"] < 2).all()
    assert (regions["peak_z"] >= 3).all()
    # every region's cells are hot at 95 % or more, and its counts add up
    cells = example_result.cells
    for r in regions.reset_index().itertuples():
        members = cells[cells["region_id"] == r.region_id]
        assert len(members) == r.cells and (members["gi_class"] >= 2).all()
        assert members["weighted"].sum() == pytest.approx(r.weighted)


def test_stop_search_demographics_never_reach_any_output(demo_out):
    _, _, out = demo_out
    forbidden = ("Gender", "Age range", "ethnicity", "Officer-defined", "Self-defined")
    for path in out.iterdir():
        if path.suffix in (".csv", ".json", ".geojson", ".html"):
            text = path.read_text(encoding="utf-8", errors="replace")
            for word in forbidden:
                assert word not in text, (path.name, word)


def test_python_dash_m_and_help_work():
    r = run_cli("--help")
    assert r.returncode == 0 and "validate" in r.stdout
    for cmd in ("demo", "run", "validate", "schemas"):
        assert run_cli(cmd, "--help").returncode == 0


def test_usage_error_exits_two():
    assert run_cli("frobnicate").returncode == 2
    assert run_cli("run").returncode == 2


def test_schemas_lists_the_built_in_police_formats(capsys):
    assert main(["schemas"]) == 0
    out = capsys.readouterr().out
    for name in ("police_uk_street", "police_uk_api", "police_uk_stop_search"):
        assert name in out


def test_validate_prints_the_accounting_table_for_the_example(capsys):
    assert main(["validate", str(EXAMPLE / "partnership.toml")]) == 0
    out = capsys.readouterr().out
    assert "city_police" in out and "met_police" in out and "18,347" in out and "22,417" in out


def _write_config(tmp_path, body: str):
    path = tmp_path / "p.toml"
    path.write_text(body, encoding="utf-8")
    return path


SOURCE = f'''
[study]
start = "2018-01"
end = "2018-02"
[[sources]]
id = "city"
path = "{(EXAMPLE / 'data' / 'city_street').as_posix()}/2018-01-city-of-london-street.csv"
schema = "police_uk_street"
'''


@pytest.mark.parametrize("body, words", [
    ("[study\nstart=", ["p.toml", "not valid TOML"]),
    (SOURCE.replace("police_uk_street", "no_such_schema"), ["unknown schema 'no_such_schema'"]),
    (SOURCE.replace("2018-01-city", "1999-01-city"), ["'city'", "matches no file"]),
    (SOURCE.replace('start = "2018-01"', 'start = "2030-01"').replace('end = "2018-02"', 'end = "2030-02"'),
     ["no incident was loaded"]),
    (SOURCE.replace('start = "2018-01"', 'start = "January"'), ["[study] start", "January"]),
])
def test_user_errors_are_one_paragraph_with_exit_one_and_no_traceback(tmp_path, body, words):
    r = run_cli("run", str(_write_config(tmp_path, body)), "--out", str(tmp_path / "o"))
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("hotspots: error:")
    for w in words:
        assert w in r.stderr, (w, r.stderr)


def test_missing_column_names_file_and_column(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("Crime ID,Month,Longitude,Crime type\nx,2018-01,-0.1,Robbery\n")
    body = SOURCE.replace(f"{(EXAMPLE / 'data' / 'city_street').as_posix()}/2018-01-city-of-london-street.csv",
                          bad.as_posix())
    r = run_cli("run", str(_write_config(tmp_path, body)))
    assert r.returncode == 1
    assert "bad.csv" in r.stderr and "'Latitude'" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("--debug", "run", str(_write_config(tmp_path, body)))
    assert "Traceback" in r.stderr


def test_missing_config_file_is_a_user_error(tmp_path):
    r = run_cli("run", str(tmp_path / "nope.toml"))
    assert r.returncode == 1 and "nope.toml" in r.stderr and "does not exist" in r.stderr


def test_evaluate_writes_the_metric_table_and_the_curve(tmp_path, capsys):
    code = main(["evaluate", str(EXAMPLE / "partnership.toml"), "--train", "2018-12:2019-08",
                 "--test", "2019-09:2019-11", "--out", str(tmp_path)])
    assert code == 0
    table = pd.read_csv(tmp_path / "evaluation.csv")
    assert list(table.columns[:6]) == ["method", "coverage", "hit_rate", "pai", "pei", "rri"]
    assert set(table["method"]) == {"gi_star", "kde", "weighted_count", "previous_period", "random"}
    assert sorted(table["coverage"].unique()) == [0.01, 0.03, 0.05, 0.10]
    pai = table.set_index(["method", "coverage"])["pai"]
    # Crime concentrates: every count-based method beats random by far at 1 % of the area; Gi* (the
    # partners' combined evidence, weighed as agreed, not a volume forecast) beats random's 95 % range.
    for m in ("kde", "weighted_count", "previous_period"):
        assert pai[(m, 0.01)] > 10 > pai[("random", 0.01)]
    rand = table[table["method"] == "random"].set_index("coverage")
    assert 0.9 < rand.loc[0.01, "pai"] < 1.1 and rand.loc[0.01, "pai_high"] > 2
    assert pai[("gi_star", 0.01)] > rand.loc[0.01, "pai_high"]
    # PAI = hit rate / area fraction, exactly
    assert (table["pai"] - table["hit_rate"] / table["area_fraction"]).abs().max() < 1e-9
    assert (tmp_path / "coverage.png").stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "PAI      = (n / N) / (a / A)" in out and "RRI" in out


def test_evaluate_rejects_overlapping_periods(tmp_path):
    r = run_cli("evaluate", str(EXAMPLE / "partnership.toml"), "--train", "2019-01:2019-09",
                "--test", "2019-09:2019-11")
    assert r.returncode == 1 and "--train must end before --test" in r.stderr


def test_demo_cells_carry_kde_and_trend_and_clusters_are_written(demo_out):
    _, _, out = demo_out
    cells = gpd.read_file(out / "hotspots.gpkg", layer="cells")
    assert (cells["kde"] >= 0).all() and cells["kde"].max() > 0
    assert "trend_class" in cells.columns
    clusters = gpd.read_file(out / "hotspots.gpkg", layer="clusters")
    for col in ("cluster_id", "method", "n", "weighted", "p_value", "areas", "cross_boundary"):
        assert col in clusters.columns
    assert (clusters["p_value"] <= 0.05).sum() >= 1
    # The hottest KDE cell (a pooled surface of every source's weights: the West End's Met data)
    # is one its own source finds hot, though the combined evidence does not (see test above).
    top = cells.loc[cells["kde"].idxmax()]
    assert "met_police" in str(top["support"]).split(";")


def test_study_area_from_a_boundary_layer_and_a_misspelt_name(tmp_path):
    body = SOURCE + f'''
[[boundaries]]
id = "lad"
path = "{(EXAMPLE / 'data' / 'boundaries' / 'london-2021-lad22-gen20.shp').as_posix()}"
name_field = "LAD22NM"
'''
    body = body.replace('end = "2018-02"', 'end = "2018-02"\narea = "lad"\narea_names = ["City of London"]')
    out = tmp_path / "o"
    assert main(["run", str(_write_config(tmp_path, body)), "--out", str(out)]) == 0
    area = gpd.read_file(out / "hotspots.gpkg", layer="study_area").geometry.iloc[0]
    lad = gpd.read_file(EXAMPLE / "data" / "boundaries" / "london-2021-lad22-gen20.shp")
    city = lad.loc[lad["LAD22NM"] == "City of London"].geometry.iloc[0]
    assert abs(area.area - city.area) / city.area < 1e-6
    rejects = pd.read_csv(out / "rejects.csv")
    assert (rejects["reason"] == "outside study area").sum() > 0      # City police rows in other boroughs
    r = run_cli("run", str(_write_config(tmp_path, body.replace('"City of London"]', '"City of Londn"]'))))
    assert r.returncode == 1 and "did you mean City of London?" in r.stderr


def _example_copy(tmp_path, replace: dict) -> str:
    """The example config with ``replace`` applied, in tmp_path beside links to the example's data."""
    for name in ("data", "schemas"):
        (tmp_path / name).symlink_to(EXAMPLE / name, target_is_directory=True)
    text = (EXAMPLE / "partnership.toml").read_text()
    for a, b in replace.items():
        assert a in text, a
        text = text.replace(a, b)
    path = tmp_path / "p.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("replace, says", [
    ({'end = "2019-11"': 'end = "2018-06"'}, "at least 12 months"),
    ({'name_field = "LAD22NM"': 'name_field = "LAD_NAME"'}, "LAD_NAME"),
    ({'coverage = ["City of London"]': 'coverage = ["City of Londn"]'}, "City of Londn"),
    ({'start = "2017-12"': 'start = "2017-12"\narea = "lad"\narea_names = ["Camdn"]'}, "Camdn"),
    # The grid over the study area the data make (a hostile audit: validate passed, run refused).
    ({"cell_size_m = 150": "cell_size_m = 10", 'start = "2017-12"': 'start = "2017-12"\narea = "lad"'},
     "more than the limit of 4,000,000 cells"),        # 10 m cells over the whole of London
    ({"cell_size_m = 150": "cell_size_m = 150\nneighbour_distance_m = 4000"}, "is more than 20 cells"),
])
def test_validate_makes_every_check_run_makes_before_analysing(tmp_path, capsys, replace, says):
    assert main(["validate", _example_copy(tmp_path, replace)]) == 1
    said = capsys.readouterr()
    assert says in said.out + said.err and "internal error" not in said.out + said.err


def test_validate_loaded_counts_are_runs(demo_out, capsys):
    """Records held back by their handling code count as filtered in validate as in run."""
    manifest = json.loads((demo_out[2] / "manifest.json").read_text())
    run_loaded = sum(e["rows_loaded"] for e in manifest["inputs"] if e["source_id"] == "community_intel")
    assert main(["validate", str(EXAMPLE / "partnership.toml")]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("community_intel"))
    assert int(line.split()[3].replace(",", "")) == run_loaded


def test_the_command_exits_at_once_yet_leaves_a_profilers_data(tmp_path):
    """``hotspots`` skips the interpreter's teardown (cli.entry), but not when a profiler waits to write
    at exit: ``python -m cProfile -m hotspots`` still leaves its profile; the output is whole either way."""
    plain = run_cli("schemas")
    assert plain.returncode == 0 and "police_uk_street" in plain.stdout
    prof = tmp_path / "run.prof"
    out = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "hotspots", "schemas"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout == plain.stdout
    assert prof.stat().st_size > 1000


def test_a_librarys_warning_is_one_line_naming_the_library(monkeypatch, capsys):
    """A library's warnings (numpy's for the mean of nothing, raised in numpy's own files) reach the
    analyst as one line each naming the library, not Python's file:line form with a source line."""
    import numpy as np

    import hotspots.cli as cli

    def schemas(args):
        np.mean(np.array([]))
        return 0
    monkeypatch.setattr(cli, "cmd_schemas", schemas)
    assert main(["schemas"]) == 0
    assert capsys.readouterr().err == ("hotspots: warning from numpy: Mean of empty slice\n"
                                       "hotspots: warning from numpy: invalid value encountered in scalar divide\n")


def test_validate_writes_every_rejected_row_on_request_and_never_over_an_input(tmp_path, capsys):
    """A user audit: validate showed each source's top three reject reasons only; the rows were in run's
    rejects.csv alone. --rejects writes them as run does; an existing file that is not a rejects file (a
    partner's extract, the key buildings' list) is never overwritten, and is refused before anything is read."""
    cfg = EXAMPLE / "partnership.toml"
    out = tmp_path / "rejects.csv"
    assert main(["validate", str(cfg), "--rejects", str(out)]) == 0
    said = capsys.readouterr().out
    rejects = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(rejects.columns) == ["source_id", "file", "row", "reason", "columns"]
    assert f"\n{len(rejects):,} rejected rows written to {out}" in said
    table = {ln.split()[0]: ln.split()[1:] for ln in said.splitlines() if ln and not ln.startswith((" ", "\n"))}
    for sid, n in rejects["source_id"].value_counts().items():
        assert int(table[sid][-1].replace(",", "")) == n, sid          # each source's rejected column
    assert main(["validate", str(cfg), "--rejects", str(out)]) == 0          # its own file, replaced
    assert main(["validate", str(cfg), "--rejects", str(tmp_path / "no" / "r.csv")]) == 1
    assert "a folder that does not exist" in capsys.readouterr().err
    for partner in (p for p in (EXAMPLE / "data" / "partners").iterdir() if p.suffix == ".csv"):
        before = partner.read_bytes()                     # an extract, and the key buildings' list
        assert main(["validate", str(cfg), "--rejects", str(partner)]) == 1
        assert "--rejects names a file that exists and is not a rejects file" in capsys.readouterr().err
        assert partner.read_bytes() == before
