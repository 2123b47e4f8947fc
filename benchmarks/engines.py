"""Benchmarks of the load stage's engines (issue 13): reuse, both cores, Dask workers, run-many.

On a generated partnership (``benchmarks/generate.py``, default 1 M incidents) this script
times, in one process after one warm-up read of every file (so the OS file cache is warm
for all of them):

- ``load_sources`` in one process with no cache (the path before issue 13);
- in a pool of 2 worker processes;
- writing the cache (first run) and reusing it (rerun with the same inputs);
- on a Dask ``LocalCluster`` of 1 and 2 single-threaded worker processes (the cluster's
  start-up timed apart), every file loaded on the workers;

and checks that each gives the same incidents and ledger as one process. Then, each in a
fresh process as a user runs them: ``hotspots run --fresh``, a rerun (reuse), and a rerun
after a change to the weights only (reuse); and ``--run-many N`` copies of the 10 k
partnership one after another (``hotspots run`` each) against ``hotspots run-many
--scheduler local`` (2 workers).

The figures go to ``benchmarks/RESULTS.md`` between ``<!-- engines:start -->`` and
``<!-- engines:end -->`` (``run.py`` keeps that block) and to ``benchmarks/out/engines.json``.

Usage::

    python benchmarks/engines.py [--size 1m] [--run-many 4] [--keep] [--no-e2e] [--no-results]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
RESULTS_MD = HERE / "RESULTS.md"
START, END = "<!-- engines:start -->", "<!-- engines:end -->"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import generate  # noqa: E402


def load_avg() -> float:
    return os.getloadavg()[0]


def timed(fn):
    t = time.perf_counter()
    value = fn()
    return time.perf_counter() - t, value


def children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


def measured(out: dict, name: str, fn, client=None):
    """Wall seconds of ``fn()``, and the CPU seconds of this process and of its workers (the pool's
    processes, or the Dask workers): on a shared machine the wall time says more about the other jobs
    than about hotspots, the CPU seconds do not."""
    def workers_cpu():
        if client is None:
            return children_cpu()
        got = client.run(lambda: sum(__import__("psutil").Process().cpu_times()[:2]))
        return sum(got.values())

    w0, c0 = workers_cpu(), time.process_time()
    wall, value = timed(fn)
    out[f"{name}_s"], out[f"{name}_cpu_s"] = wall, time.process_time() - c0
    out[f"{name}_workers_cpu_s"] = workers_cpu() - w0
    return value


def same(a, b) -> bool:
    import pandas as pd
    try:
        pd.testing.assert_frame_equal(a.incidents, b.incidents)
        for x, y in ((a.ledger.rejects, b.ledger.rejects), (a.ledger.filtered, b.ledger.filtered),
                     (a.ledger.accounting(a.incidents), b.ledger.accounting(b.incidents))):
            pd.testing.assert_frame_equal(x.reset_index(drop=True), y.reset_index(drop=True))
        return a.geocoding == b.geocoding
    except AssertionError:
        return False


def bench_load(config: Path) -> dict:
    from dask.distributed import Client, LocalCluster

    from hotspots.config import load_config
    from hotspots.load import LoadOptions, load_sources

    cfg = load_config(config)
    files = [f for s in cfg.sources for f in s.files(cfg.base)]
    for f in files:                                    # warm the OS file cache for every variant
        f.read_bytes()
    out = {"files": len(files), "bytes": sum(f.stat().st_size for f in files), "load_avg_before": load_avg()}
    base = measured(out, "one_process", lambda: load_sources(cfg, options=LoadOptions(processes=1)))
    out["rows"] = int(base.ledger.accounting(base.incidents)["rows_read"].sum())
    two = measured(out, "two_processes", lambda: load_sources(cfg, options=LoadOptions(processes=2)))
    out["two_processes_same"] = same(base, two)
    cache = Path(tempfile.mkdtemp(prefix="hotspots-bench-cache-"))
    try:
        cold = measured(out, "cache_write", lambda: load_sources(cfg, options=LoadOptions(write=True, cache=cache)))
        out["cache_write_same"] = same(base, cold)
        out["cache_mb"] = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()) / 1e6
        warm = measured(out, "reuse", lambda: load_sources(cfg, options=LoadOptions(reuse=True, write=True,
                                                                                      cache=cache)))
        out["reuse_same"] = same(base, warm)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    for n in (1, 2):
        t0 = time.perf_counter()
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=50)
        client = Client(cluster)
        out[f"dask{n}_startup_s"] = time.perf_counter() - t0
        try:
            got = measured(out, f"dask{n}", lambda: load_sources(cfg, options=LoadOptions(client=client)), client)
            out[f"dask{n}_same"] = same(base, got)
        finally:
            client.close()
            cluster.close()
    out["load_avg_after"] = load_avg()
    return out


CPU_LOG: dict[float, float] = {}


def cli(*args, env=None) -> float:
    """Wall seconds of one ``hotspots`` command in a fresh process; its CPU seconds (with its
    worker processes) are kept in ``CPU_LOG`` under the wall time."""
    t, c = time.perf_counter(), children_cpu()
    subprocess.run([sys.executable, "-m", "hotspots", *map(str, args)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    wall = time.perf_counter() - t
    CPU_LOG[wall] = children_cpu() - c
    return wall


def bench_e2e(config: Path) -> dict:
    """Whole runs as the analyst runs them, each in a fresh process (imports included)."""
    work = Path(tempfile.mkdtemp(prefix="hotspots-bench-e2e-"))
    env = dict(os.environ, HOTSPOTS_CACHE=str(work / "cache"))
    try:
        out = {"load_avg_before": load_avg()}
        out["fresh_s"] = cli("run", config, "--out", work / "o1", "--fresh", env=env)
        out["fresh_cpu_s"] = CPU_LOG[out["fresh_s"]]
        out["rerun_s"] = cli("run", config, "--out", work / "o2", env=env)
        out["rerun_cpu_s"] = CPU_LOG[out["rerun_s"]]
        text = config.read_text(encoding="utf-8")
        changed = config.with_name("partnership-weights.toml")
        new = re.sub(r"(?m)^community_report\s*=\s*[0-9.]+", "community_report = 0.1", text)
        if new == text:
            new = text.replace("[weights]", "[weights]\ncommunity_report = 0.1", 1)
        changed.write_text(new, encoding="utf-8")
        try:
            out["weights_rerun_s"] = cli("run", changed, "--out", work / "o3", env=env)
            out["weights_rerun_cpu_s"] = CPU_LOG[out["weights_rerun_s"]]
        finally:
            changed.unlink()
        out["load_avg_after"] = load_avg()
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_run_many(n: int, seed: int) -> dict:
    """``n`` copies of the 10 k partnership: one after another, then run-many on 2 local workers."""
    if not generate.is_current(OUT, 10_000, seed):
        generate.generate(10_000, OUT, seed, quiet=True)
    configs = []
    for k in range(n):
        dest = OUT / f"runmany-{k + 1}"          # beside out/10k: the schemas' relative path holds
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(OUT / "10k", dest)
        configs.append(dest / "partnership.toml")
    env = dict(os.environ, HOTSPOTS_CACHE="off")
    out = {"configs": n, "load_avg_before": load_avg()}
    walls = [cli("run", c, env=env) for c in configs]
    out["one_after_another_s"], out["one_after_another_cpu_s"] = sum(walls), sum(CPU_LOG[w] for w in walls)
    out["run_many_s"] = cli("run-many", *configs, "--scheduler", "local", env=env)
    out["load_avg_after"] = load_avg()
    return out


def fmt(v, unit="s") -> str:
    return f"{v:.2f} {unit}" if isinstance(v, float) else str(v)


def markdown(r: dict) -> str:
    ld, size = r["load"], r["size"]
    yes = lambda k: "identical" if ld[k] else "**DIFFERENT**"  # noqa: E731
    rows = [
        ("one process, no cache (as before issue 13)", "one_process", "reference", 1),
        ("2 worker processes (`ProcessPoolExecutor`)", "two_processes", yes("two_processes_same"), 2),
        ("first run, writing the cache", "cache_write", yes("cache_write_same"), 2),
        ("rerun, reusing the cache", "reuse", yes("reuse_same"), 2),
        (f"Dask LocalCluster, 1 worker (+{ld['dask1_startup_s']:.1f} s start-up)", "dask1", yes("dask1_same"), 1),
        (f"Dask LocalCluster, 2 workers (+{ld['dask2_startup_s']:.1f} s start-up)", "dask2", yes("dask2_same"), 2),
    ]
    lines = [f"## Load stage: reuse, both cores, Dask ({size})", "",
             f"Written by `benchmarks/engines.py` on {r['date']} ({r['nproc']} CPUs, shared: load average "
             f"{ld['load_avg_before']:.1f} before, {ld['load_avg_after']:.1f} after). `load_sources` on the "
             f"generated {size} partnership: {ld['files']} files, {ld['bytes'] / 1e6:.0f} MB, "
             f"{ld['rows']:,} rows; OS file cache warm. \"Same\" compares the incidents table, rejects, "
             "filtered rows, per-file accounting and geocoding counts with the one-process load.", "",
             "The machine was shared (see the load averages): wall seconds mostly measure the other jobs. "
             "The CPU seconds of this process (the serial part: hashing, cache reads, the ledger, "
             "merging and linking duplicates) and of the workers do not; \"idle estimate\" is this "
             "process's CPU plus the workers' CPU shared over the workers, the wall time to expect on "
             "an idle machine with that many cores.", "",
             "| load stage | wall s | CPU s, this process | CPU s, workers | idle estimate s | same result |",
             "|---|---:|---:|---:|---:|---|"]
    for label, key, verdict, n in rows:
        cpu, wcpu = ld[f"{key}_cpu_s"], ld[f"{key}_workers_cpu_s"]
        lines.append(f"| {label} | {ld[key + '_s']:.2f} | {cpu:.2f} | {wcpu:.2f} | {cpu + wcpu / n:.2f} | {verdict} |")
    lines.append(f"\nCache on disk: {ld['cache_mb']:.0f} MB of Parquet for {ld['bytes'] / 1e6:.0f} MB of input.")
    if "e2e" in r:
        e = r["e2e"]
        lines += ["", f"Whole runs (`hotspots run`, a fresh process each, imports included; load average "
                  f"{e['load_avg_before']:.1f} before, {e['load_avg_after']:.1f} after):", "",
                  "| run | wall s | CPU s |", "|---|---:|---:|",
                  f"| `--fresh` (every file read) | {e['fresh_s']:.1f} | {e['fresh_cpu_s']:.1f} |",
                  f"| rerun, same inputs (cache reused) | {e['rerun_s']:.1f} | {e['rerun_cpu_s']:.1f} |",
                  f"| rerun after a change to the weights only (cache reused) | {e['weights_rerun_s']:.1f} | "
                  f"{e['weights_rerun_cpu_s']:.1f} |"]
    if "run_many" in r:
        m = r["run_many"]
        lines += ["", f"{m['configs']} copies of the 10 k partnership (cache off; load average "
                  f"{m['load_avg_before']:.1f} before, {m['load_avg_after']:.1f} after):", "",
                  "| how | seconds | per config |", "|---|---:|---:|",
                  f"| `hotspots run` one after another (CPU {m['one_after_another_cpu_s']:.1f} s) | "
                  f"{m['one_after_another_s']:.1f} | {m['one_after_another_s'] / m['configs']:.1f} |",
                  f"| `hotspots run-many --scheduler local` (2 workers, start-up included) | {m['run_many_s']:.1f} | "
                  f"{m['run_many_s'] / m['configs']:.1f} |"]
    return "\n".join(lines)


def write_results(block: str) -> None:
    old = RESULTS_MD.read_text(encoding="utf-8") if RESULTS_MD.exists() else ""
    new = f"{START}\n{block}\n{END}"
    if START in old and END in old:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: new, old, flags=re.S)
    elif "\n## Analysis" in old:
        text = old.replace("\n## Analysis", f"\n{new}\n\n## Analysis", 1)
    else:
        text = old + f"\n{new}\n"
    RESULTS_MD.write_text(text, encoding="utf-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Benchmark the load stage's engines (see the module docstring).")
    ap.add_argument("--size", default="1m")
    ap.add_argument("--seed", type=int, default=generate.DEFAULT_SEED)
    ap.add_argument("--keep", action="store_true", help="reuse data already generated with the same seed")
    ap.add_argument("--run-many", type=int, default=4, help="partnerships for run-many (0: skip)")
    ap.add_argument("--no-e2e", action="store_true", help="skip the whole runs")
    ap.add_argument("--no-results", action="store_true", help="do not rewrite benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    n = generate.parse_size(args.size)
    label = generate.size_label(n)
    if not (args.keep and generate.is_current(OUT, n, args.seed)):
        generate.generate(n, OUT, args.seed)
    config = OUT / label / "partnership.toml"
    r = {"size": label, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "nproc": os.cpu_count()}
    r["load"] = bench_load(config)
    print(json.dumps(r["load"], indent=1))
    if not args.no_e2e:
        r["e2e"] = bench_e2e(config)
        print(json.dumps(r["e2e"], indent=1))
    if args.run_many:
        r["run_many"] = bench_run_many(args.run_many, args.seed)
        print(json.dumps(r["run_many"], indent=1))
    (OUT / "engines.json").write_text(json.dumps(r, indent=1), encoding="utf-8")
    md = markdown(r)
    print(md)
    if not args.no_results:
        write_results(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
