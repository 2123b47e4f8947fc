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


def test_a_scheduler_from_the_config_or_the_option_writes_the_one_process_outputs(tmp_path, client):
    """``[engine] scheduler`` and ``--scheduler`` load on the cluster and write what one process
    writes; the option overrides the config both ways (``none``: one process; an address: that
    cluster), and a scheduler that does not answer is a clear error. One partnership for every case:
    three runs, not two per case."""
    config = small_partnership(tmp_path / "p")
    text = config.read_text(encoding="utf-8")

    def engine(address: str) -> None:
        config.write_text(text + f'\n[engine]\nscheduler = "{address}"\n', encoding="utf-8")

    def run(*args):
        with get_task_stream(client) as stream:
            code, out = _run("run", config, "--fresh", *args)
        assert code == 0, out
        on_cluster = any("load_files" in str(t["key"]) for t in stream.data)
        return out, comparable_outputs(config.parent / "output"), on_cluster

    engine(client.scheduler.address)
    text_here, here, on_cluster = run("--scheduler", "none")
    assert not on_cluster                                   # ``none`` overrides the config: one process
    text_there, there, on_cluster = run()
    assert on_cluster                                       # the config's scheduler loaded the files
    assert_same_outputs(here, there)
    assert text_there == text_here
    engine("tcp://127.0.0.1:9")                             # nothing listens there
    text_there, there, on_cluster = run("--scheduler", client.scheduler.address)
    assert on_cluster                                       # the option overrides the config
    assert_same_outputs(here, there)
    assert text_there == text_here
    code, out = _run("run", config)
    assert code == 1 and "no Dask scheduler answered" in out


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
