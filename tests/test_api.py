"""The Python API: hotspots.run / hotspots.publish / hotspots.read_config on the bundled example."""
from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest

import hotspots
from hotspots.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "examples" / "london_city_fringe" / "partnership.toml"
LAYERS = ("incidents", "cells", "regions", "clusters", "buildings", "boundaries")


@pytest.fixture(scope="module")
def result():
    return hotspots.run(CONFIG)


def test_every_layer_is_a_geodataframe_in_british_national_grid(result):
    for name in LAYERS:
        layer = getattr(result, name)
        assert isinstance(layer, gpd.GeoDataFrame), name
        assert layer.crs is not None and layer.crs.to_epsg() == 27700, name
        assert len(layer) > 0, name
    inc = result.incidents
    # One point per incident, at its x and y (metres), in the study area's part of London.
    assert len(inc) == len(result.pipeline.incidents)
    assert np.allclose(inc.geometry.x, inc["x"]) and np.allclose(inc.geometry.y, inc["y"])
    assert inc.geometry.x.between(525_000, 540_000).all() and inc.geometry.y.between(175_000, 190_000).all()
    assert (inc.geom_type == "Point").all() and (result.buildings.geom_type == "Point").all()
    assert np.allclose(result.buildings.geometry.x, result.buildings["x"])
    assert (result.cells.geom_type.isin(["Polygon", "MultiPolygon"])).all()
    assert {"cell_id", "n", "weighted", "gi_z", "gi_p", "gi_q", "gi_class"} <= set(result.cells.columns)
    assert len(result.hot_cells()) == int((result.cells["gi_class"] >= 2).sum()) > 0
    assert "incidents" in repr(result)


def test_publish_returns_every_path_it_wrote(result, tmp_path):
    out = tmp_path / "out"
    paths = hotspots.publish(result, out)
    on_disk = {p for p in out.rglob("*") if p.is_file()}
    assert set(paths) == on_disk                     # every file written, and only those
    assert len(paths) == len(set(paths)) >= 12
    names = {p.relative_to(out).as_posix() for p in paths}
    assert {"map.html", "map-public.html", "hotspots.gpkg", "cells.geojson", "regions.geojson",
            "clusters.geojson", "buildings.csv", "areas.csv", "rejects.csv", "briefing.html",
            "briefing-public.html", "manifest.json"} <= names
    listed = {o["path"] for o in json.loads((out / "manifest.json").read_text(encoding="utf-8"))["outputs"]}
    assert listed | {"manifest.json"} == names
    assert result.paths == paths


def test_run_with_out_publishes_too(tmp_path):
    out = tmp_path / "run"
    res = hotspots.run(str(CONFIG), out=out)
    assert (out / "map.html").is_file() and out / "manifest.json" in res.paths
    assert all(p.is_file() for p in res.paths)


def test_a_changed_weight_changes_the_hot_cells_and_the_same_dict_gives_the_same_run(result):
    cfg = hotspots.read_config(CONFIG)
    assert cfg.base == CONFIG.parent
    same = hotspots.run(cfg)                         # relative paths resolve beside the config
    assert len(same.incidents) == len(result.incidents)
    # (no-data cells carry no z: NaN in both runs)
    assert np.array_equal(same.cells["gi_z"].to_numpy(), result.cells["gi_z"].to_numpy(), equal_nan=True)
    cfg["weights"]["community_report"] = 0.0
    cfg["weights"]["intelligence"] = 0.0
    other = hotspots.run(cfg)
    assert cfg["weights"]["community_report"] == 0.0 and hotspots.read_config(CONFIG)["weights"]["community_report"] == 0.3
    assert other.weights != result.weights
    # Intelligence and community reports no longer count: the weighted total drops by their share.
    soft = result.incidents["evidence"].isin(["community_report", "intelligence"])
    assert soft.sum() > 100
    assert other.cells["weighted"].sum() < result.cells["weighted"].sum() - 0.9 * result.incidents.loc[soft, "weight"].sum()
    hot_a = set(result.hot_cells()["cell_id"])
    hot_b = set(other.hot_cells()["cell_id"])
    assert hot_a != hot_b                            # the comparison the README shows


def test_bad_config_arguments_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="config path or a dict"):
        hotspots.run(42)
    with pytest.raises(UserError, match="does not exist"):
        hotspots.run(tmp_path / "missing.toml")
    with pytest.raises(UserError, match="not a source id"):
        hotspots.run(CONFIG, agency="nobody")
    bad = hotspots.read_config(CONFIG)
    bad["analysis"]["cel_size_m"] = 300
    with pytest.raises(UserError, match="cell_size_m"):
        hotspots.run(bad)
    assert not list(CONFIG.parent.glob(".hotspots-config-*"))     # the dict's temporary file is gone


def test_read_config_refuses_a_config_nested_too_deep(tmp_path):
    # As load_config (hostile audit): a RecursionError from tomllib was the Python API's to raise.
    import pytest

    import hotspots
    from hotspots.errors import UserError
    (tmp_path / "deep.toml").write_text("x = " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    with pytest.raises(UserError, match="too deep"):
        hotspots.read_config(tmp_path / "deep.toml")
