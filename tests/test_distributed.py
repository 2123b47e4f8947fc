"""Dask: loading on a cluster and many configs across it give the one-process outputs.

One LocalCluster of two worker processes serves the module; ``run-many --scheduler
local`` starts its own. Outputs are compared byte for byte apart from timestamps,
run times and folium's random element ids (``tests.test_cache.comparable_outputs``).
"""
from __future__ import annotations

import shutil

import pytest

pytest.importorskip("dask.distributed")

from dask.distributed import Client, LocalCluster, get_task_stream  # noqa: E402

from hotspots.config import load_config  # noqa: E402
from hotspots.load import LoadOptions, load_sources  # noqa: E402
from tests.test_cache import _run, assert_same_load, assert_same_outputs, comparable_outputs, \
    small_partnership  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=50)
    with Client(cluster) as c:
        yield c
    cluster.close()


def test_files_loaded_on_the_cluster_give_the_same_incidents_and_ledger(tmp_path, client):
    cfg = load_config(small_partnership(tmp_path / "p"))
    here = load_sources(cfg, options=LoadOptions(processes=1))
    with get_task_stream(client) as stream:
        there = load_sources(cfg, options=LoadOptions(client=client))
    assert_same_load(here, there)
    ran = [t for t in stream.data if "load_files" in str(t["key"])]
    n_files = sum(len(s.files(cfg.base)) for s in cfg.sources)
    # Every file was loaded on a worker (the same incidents and ledger), in batches of a source's files
    # (hotspots.load.batches: at most a quarter of a worker's share of the bytes each), by both workers.
    assert len(cfg.sources) <= len(ran) < n_files
    assert len({t["worker"] for t in ran}) == 2


def test_run_with_a_scheduler_writes_the_one_process_outputs(tmp_path, client):
    config = small_partnership(tmp_path / "p")
    code, text_here = _run("run", config, "--fresh")
    assert code == 0
    here = comparable_outputs(config.parent / "output")
    code, text_there = _run("run", config, "--fresh", "--scheduler", client.scheduler.address)
    assert code == 0
    assert_same_outputs(here, comparable_outputs(config.parent / "output"))
    assert text_there == text_here


def test_the_config_engine_scheduler_loads_on_the_cluster_as_the_option_does(tmp_path, client):
    config = small_partnership(tmp_path / "p")
    code, text_here = _run("run", config, "--fresh")
    assert code == 0
    here = comparable_outputs(config.parent / "output")
    config.write_text(config.read_text(encoding="utf-8") +
                      f'\n[engine]\nscheduler = "{client.scheduler.address}"\n', encoding="utf-8")
    with get_task_stream(client) as stream:
        code, text_there = _run("run", config, "--fresh")
    assert code == 0, text_there
    assert any("load_files" in str(t["key"]) for t in stream.data)     # the files were loaded on the cluster
    assert_same_outputs(here, comparable_outputs(config.parent / "output"))
    assert text_there == text_here


def test_scheduler_none_on_the_command_line_overrides_the_config_engine_scheduler(tmp_path):
    config = small_partnership(tmp_path / "p")
    config.write_text(config.read_text(encoding="utf-8") + '\n[engine]\nscheduler = "tcp://127.0.0.1:9"\n',
                      encoding="utf-8")
    code, text = _run("run", config, "--scheduler", "none")
    assert code == 0, text
    code, text = _run("run", config)
    assert code == 1 and "no Dask scheduler answered" in text


def test_run_many_on_a_local_cluster_writes_each_config_as_run_does(tmp_path):
    configs = [small_partnership(tmp_path / name) for name in ("north", "south")]
    # The second partnership differs: a later study start, so its outputs are its own.
    text = configs[1].read_text(encoding="utf-8").replace('start = "2017-12"', 'start = "2018-01"')
    configs[1].write_text(text, encoding="utf-8")
    expected = []
    for config in configs:
        assert _run("run", config)[0] == 0
        expected.append(comparable_outputs(config.parent / "output"))
        shutil.rmtree(config.parent / "output")
    assert expected[0] != expected[1]
    code, text = _run("run-many", *configs, "--scheduler", "local")
    assert code == 0, text
    assert "2 of 2 configs done" in text
    for config, want in zip(configs, expected):
        assert f"==> {config}: done" in text
        assert_same_outputs(want, comparable_outputs(config.parent / "output"))


def test_run_many_reports_a_failing_config_and_exits_one(tmp_path, client):
    good = small_partnership(tmp_path / "good")
    bad = tmp_path / "bad" / "partnership.toml"
    bad.parent.mkdir()
    bad.write_text('[study]\nstart = "2018-01"\nend = "2018-02"\n[[sources]]\nid = "x"\npath = "none/*.csv"\n'
                   'schema = "police_uk_street"\n', encoding="utf-8")
    code, text = _run("run-many", good, bad, "--scheduler", client.scheduler.address)
    assert code == 1
    assert f"==> {bad}: FAILED" in text and "hotspots: error:" in text
    assert "1 of 2 configs done, 1 failed." in text
    assert (good.parent / "output" / "map.html").is_file()


def test_run_many_refuses_two_configs_writing_one_folder(tmp_path):
    config = small_partnership(tmp_path / "p")
    twin = config.with_name("twin.toml")
    twin.write_text(config.read_text(encoding="utf-8"), encoding="utf-8")
    code, text = _run("run-many", config, twin, "--scheduler", "local")
    assert code == 1 and "would both write" in text
