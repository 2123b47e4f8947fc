"""Benchmarks: the real pipeline on synthetic partnerships, beside the floor measured in the same run.

For each size (default 10k, 100k, 1m) this script

1. generates the partnership (``benchmarks/generate.py``; ``--keep`` reuses data already
   generated with the same seed),
2. runs ``hotspots.pipeline.analyse`` + ``publish`` (as ``hotspots run`` does) in a fresh
   Python process, recording each stage's seconds (``Progress.times``), the peak resident
   memory (``ru_maxrss`` of that process, from ``wait4``, plus the high-water mark after
   each stage and a 20 ms RSS sampler per stage), the map's size and the machine's load,
3. runs the floor in another fresh process on the same files: pyarrow reading the same
   CSVs, pyproj reprojecting the same lon/lat points to EPSG:27700, numpy binning all
   points onto the pipeline's grid; the ratio pipeline / floor is reported,

then, once per run, compares Gi* with PySAL esda's ``G_Local`` on a 300 x 300 grid (time and
max |z difference|) and the grid KDE with scikit-learn's ``KernelDensity`` (1 M points;
scikit-learn is timed on a random subsample of the cell centres and extrapolated to all of
them), optionally profiles the largest size with cProfile, prints a table and writes
``benchmarks/RESULTS.md`` and ``benchmarks/out/results.json``.

Usage::

    python benchmarks/run.py [--sizes 10k,100k,1m] [--keep] [--seed 2024]
                             [--profile largest|none|SIZE] [--no-compare]

Targets (2 cores, ``SIZE_TARGETS``): 10 k end to end < 4 s; 1 M < 15 s and < 3 GB peak, within 5x
of the floor; 10 M < 120 s and < 4 GB; 30 M < 8 GB; map < 5 MB at any size; Gi* >= 100x faster
than esda with identical z; KDE >= 1000x faster than scikit-learn within 3 %.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
RESULTS_MD = HERE / "RESULTS.md"
sys.path.insert(0, str(HERE))

import generate  # noqa: E402  (benchmarks/generate.py)

TARGETS = {"map_mb": 5.0, "gi_speedup": 100.0, "gi_dz": 1e-9, "kde_speedup": 1000.0, "kde_rel_err": 0.03}
#: The brief's targets by size (2 cores): end to end seconds, peak GB of the process tree, analyse + publish
#: over the floor. The rerun that changes only the weights (< 5 s at 1 M) is measured by ``engines.py``.
SIZE_TARGETS = {"10k": {"e2e_s": 4.0}, "1m": {"e2e_s": 15.0, "peak_gb": 3.0, "floor_ratio": 5.0},
                "10m": {"e2e_s": 120.0, "peak_gb": 4.0}, "30m": {"peak_gb": 8.0}}
PAGE = os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------- helpers
def rss_now() -> int:
    """Resident set size of this process, bytes."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


def maxrss() -> int:
    """Peak RSS of this process so far, bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def tree_pss() -> int:
    """Memory of this process and every process it started (the load's worker pool, the forked
    clusters and building-type jobs), bytes: the sum of their proportional set sizes, so pages a fork
    shares with its parent are counted once. ``ru_maxrss`` is only the largest single process."""
    pids, total, k = [os.getpid()], 0, 0
    while k < len(pids):
        pid, k = pids[k], k + 1
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as fh:
                    pids += [int(c) for c in fh.read().split()]
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                total += next(int(line.split()[1]) * 1024 for line in fh if line.startswith("Pss:"))
        except (OSError, StopIteration):
            continue        # the process ended meanwhile
    return total


class RssSampler(threading.Thread):
    """Samples this process's RSS every ``interval`` s and the process tree's PSS every fifth sample
    (``tree_pss`` walks page tables); keeps the peak per current stage and the tree's overall peak."""

    def __init__(self, interval: float = 0.02):
        super().__init__(daemon=True)
        self.interval = interval
        self.stage = "startup"
        self.peaks: dict[str, int] = {}
        self.tree_peaks: dict[str, int] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        n = 0
        while not self._halt.is_set():
            r = rss_now()
            if r > self.peaks.get(self.stage, 0):
                self.peaks[self.stage] = r
            if n % 5 == 0:
                t = tree_pss()
                if t > self.tree_peaks.get(self.stage, 0):
                    self.tree_peaks[self.stage] = t
            n += 1
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as fh:
        vals = [int(v) for v in fh.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    total = sum(vals[:8])
    return total - idle, total


def median(values):
    v = sorted(values)
    return v[len(v) // 2] if len(v) % 2 else 0.5 * (v[len(v) // 2 - 1] + v[len(v) // 2])


def timeit(fn, repeat: int):
    """(median seconds, last result) of ``repeat`` calls."""
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return median(times), out


def run_child(args: list[str], log: Path, timeout: float, mem_limit_gb: float | None = None,
              command: list[str] | None = None, env: dict | None = None) -> dict:
    """Run ``python run.py --child ...`` (or ``command``) in a fresh process; wall, CPU, peak RSS and
    machine load."""
    log.parent.mkdir(parents=True, exist_ok=True)
    ncpu = os.cpu_count() or 1

    def limit():
        if mem_limit_gb:
            b = int(mem_limit_gb * 2 ** 30)
            resource.setrlimit(resource.RLIMIT_AS, (b, b))

    load_before = os.getloadavg()[0]
    busy0, total0 = cpu_jiffies()
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(command or [sys.executable, str(Path(__file__).resolve()), *args], stdout=fh,
                                stderr=subprocess.STDOUT, cwd=str(ROOT), preexec_fn=limit, env=env)
        status, ru = None, None
        deadline = t0 + timeout
        while True:
            pid, st, r = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status, ru = st, r
                break
            if time.perf_counter() > deadline:
                proc.kill()
                _, status, ru = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    busy1, total1 = cpu_jiffies()
    hz = os.sysconf("SC_CLK_TCK")
    child_cpu = ru.ru_utime + ru.ru_stime
    machine_busy_cpu_s = (busy1 - busy0) / hz
    others = max(0.0, machine_busy_cpu_s - child_cpu) / max(wall * ncpu, 1e-9)
    return {"returncode": proc.returncode, "wall_s": wall, "cpu_s": child_cpu, "maxrss_bytes": ru.ru_maxrss * 1024,
            "load1_before": load_before, "others_cpu_share": others, "log": str(log),
            "timed_out": wall >= timeout}


def run_cli(d: Path, timeout: float, mem_limit_gb: float | None) -> dict:
    """``hotspots run --fresh`` on the size's partnership in a fresh process, as the analyst runs it: every
    file read, the load cache written (to a folder of its own, emptied first)."""
    cache_dir = d / "cli-cache"
    shutil.rmtree(cache_dir, ignore_errors=True)
    return run_child([], d / "logs" / "cli.log", timeout, mem_limit_gb,
                     command=[sys.executable, "-m", "hotspots", "run", str(d / "partnership.toml"),
                              "--out", str(d / "result_cli"), "--fresh"],
                     env=dict(os.environ, HOTSPOTS_CACHE=str(cache_dir)))


def compile_package() -> None:
    """Write the package's bytecode, as an install leaves it: this machine sets PYTHONDONTWRITEBYTECODE, with
    which every fresh process compiled hotspots' own modules again (0.6 s of a 10 k run, measured)."""
    import compileall
    compileall.compile_dir(str(ROOT / "hotspots"), quiet=1)


def tail(path: str, n: int = 25) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


# --------------------------------------------------------------------------- children
def child_pipeline(config: Path, out: Path, result_json: Path, profile: Path | None) -> None:
    """analyse + publish as ``hotspots run`` does, timed per stage; writes ``result_json``."""
    sampler = RssSampler()
    sampler.start()
    rec: dict = {"config": str(config)}
    t = time.perf_counter()
    sampler.stage = "imports"
    import hotspots.background as background_mod
    import hotspots.publish.briefing as briefing_mod
    import hotspots.publish.exports as exports_mod
    import hotspots.publish.manifest as manifest_mod
    import hotspots.publish.map as map_mod
    from hotspots.config import load_config
    from hotspots.pipeline import analyse, publish
    from hotspots.progress import Progress
    rec["import_s"] = time.perf_counter() - t

    rss_after: dict[str, int] = {}
    parts: dict[str, float] = {}

    class BenchProgress(Progress):
        """Progress that also tells the sampler the current stage and notes the RSS high-water mark."""

        def __init__(self):
            super().__init__(enabled=False)

        @contextmanager
        def step(self, name):
            sampler.stage = name
            with super().step(name):
                yield
            rss_after[name] = maxrss()
            sampler.stage = "between stages"

    def timed(mod, attr: str, label: str):
        orig = getattr(mod, attr, None)
        if orig is None:
            return

        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return orig(*a, **k)
            finally:
                parts[label] = parts.get(label, 0.0) + time.perf_counter() - t0
        setattr(mod, attr, wrapper)

    timed(exports_mod, "write_layers", "GeoPackage + GeoJSON layers")
    timed(exports_mod, "write_csv", "CSV tables")
    timed(map_mod, "build_map", "HTML map")
    timed(briefing_mod, "build_briefing", "briefing (HTML)")
    timed(manifest_mod, "write_manifest", "manifest (incl. sha256 of outputs)")
    # The GIS layers are written in a forked process (``pipeline._gis_layers``): what this process
    # spends on them is its wait for that process, after the maps and briefings.
    job_result = background_mod.Job.result

    def waited(job):
        t0 = time.perf_counter()
        try:
            return job_result(job)
        finally:
            if job.what == "GIS layers":
                label = "waiting for the GIS layers (second core)"
                parts[label] = parts.get(label, 0.0) + time.perf_counter() - t0
    background_mod.Job.result = waited

    progress = BenchProgress()
    prof = None
    if profile:
        import cProfile
        prof = cProfile.Profile()
    t = time.perf_counter()
    with progress.step("read config"):
        cfg = load_config(config)
    if prof:
        prof.enable()
    t_an = time.perf_counter()
    try:
        result = analyse(cfg, progress)
        rec["analyse_s"] = time.perf_counter() - t_an
        t_pub = time.perf_counter()
        with progress.step("publish"):
            paths = publish(result, out)
        rec["publish_s"] = time.perf_counter() - t_pub
        with progress.step("summary (CLI table)"):
            result.ledger.summary(result.accounting)
    except BaseException as exc:
        # A failed run still says how far it got, how long it took and how much memory it held.
        sampler.stop()
        done = dict(progress.times)
        rec.update({"error": f"{type(exc).__name__}: {exc}"[:500], "failed_in_stage": sampler.stage,
                    "stages": done, "seconds_until_failure": time.perf_counter() - t,
                    "rss_after_stage_mb": {k: v / 2 ** 20 for k, v in rss_after.items()},
                    "rss_peak_in_stage_mb": {k: v / 2 ** 20 for k, v in sampler.peaks.items()},
                    "maxrss_mb": maxrss() / 2 ** 20})
        result_json.write_text(json.dumps(rec, indent=2, default=str))
        raise
    if prof:
        prof.disable()
    rec["pipeline_s"] = time.perf_counter() - t
    sampler.stop()
    rec["stages"] = dict(progress.times)
    rec["publish_parts"] = parts
    rec["rss_after_stage_mb"] = {k: v / 2 ** 20 for k, v in rss_after.items()}
    rec["rss_peak_in_stage_mb"] = {k: v / 2 ** 20 for k, v in sampler.peaks.items()}
    rec["tree_pss_peak_in_stage_mb"] = {k: v / 2 ** 20 for k, v in sampler.tree_peaks.items()}
    rec["tree_pss_peak_mb"] = max(sampler.tree_peaks.values(), default=0) / 2 ** 20
    rec["maxrss_mb"] = maxrss() / 2 ** 20
    acc = result.accounting
    rec["rows_read"] = int(acc["rows_read"].sum())
    rec["rows_rejected"] = int(acc["rows_rejected"].sum())
    rec["rows_filtered"] = int(acc["rows_filtered"].sum())
    rec["incidents"] = int(len(result.incidents))
    g = result.grid
    rec["grid"] = {"x0": g.x0, "y0": g.y0, "cell": g.cell, "nx": g.nx, "ny": g.ny, "cells": int(g.n),
                   "kind": type(g).__name__}
    rec["hot_cells"] = int((result.cells["gi_class"] >= 2).sum())
    rec["regions"] = int(len(result.regions))
    maps = {k: Path(v) for k, v in paths.items() if k.startswith("map_")}
    rec["map_bytes"] = {k[4:]: p.stat().st_size for k, p in maps.items()}
    rec["outputs_bytes"] = sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file())
    rec["parameters"] = {k: v.get("value") if isinstance(v, dict) else v for k, v in result.parameters.items()}
    if prof:
        import io
        import pstats
        prof.dump_stats(str(profile))
        buf = io.StringIO()
        st = pstats.Stats(prof, stream=buf)
        st.sort_stats("tottime").print_stats(30)
        st.sort_stats("cumulative").print_stats(r"hotspots/", 45)
        st.sort_stats("tottime").print_callers(12)
        profile.with_suffix(".txt").write_text(buf.getvalue())
        rec["profile_top"] = profile_top(st)
    result_json.write_text(json.dumps(rec, indent=2, default=str))


def profile_top(stats, n: int = 15) -> dict:
    """The top functions by own time, and the package's functions by cumulative time (exact, from
    cProfile; which package function a library hot spot is reached from is in ``profile.txt``'s
    callers listing)."""
    rows = []
    for (file, line, func), (cc, nc, tt, ct, callers) in stats.stats.items():
        rows.append({"where": f"{_short(file)}:{line}({func})", "calls": nc, "tottime": tt, "cumtime": ct,
                     "package": "/hotspots/" in file})
    own = sorted(rows, key=lambda r: -r["tottime"])[:n]
    pkg = sorted((r for r in rows if r["package"]), key=lambda r: -r["cumtime"])[:n * 2]
    return {"tottime": own, "package_cumtime": pkg}


def _short(file: str) -> str:
    for key in ("/site-packages/", "/work/main/"):
        if key in file:
            return file.split(key, 1)[1]
    return file


def child_floor(config: Path, pipeline_json: Path, result_json: Path) -> None:
    """The floor on the pipeline's own files: pyarrow read, pyproj reproject, numpy binning."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    from pyproj import Transformer

    from hotspots.config import load_config
    from hotspots.schema import source_schema

    cfg = load_config(config)
    grid = json.loads(pipeline_json.read_text())["grid"]
    jobs = []
    for src in cfg.sources:
        schema = source_schema(src.schema, cfg.base)
        loc = schema["location"]
        crs = loc.get("crs", "EPSG:4326" if loc["kind"] == "lonlat" else "EPSG:27700")
        for f in src.files(cfg.base):
            jobs.append((f, loc["x"], loc["y"], crs))

    def column(table, name):
        col = table.column(name)
        if not pa.types.is_floating(col.type):
            col = pc.cast(col, pa.float64(), safe=False) if not pa.types.is_string(col.type) else \
                pc.cast(pc.if_else(pc.equal(col, ""), None, col), pa.float64())
        return col.to_numpy()

    t = time.perf_counter()
    lonlat, en, rows, nbytes = [], [], 0, 0
    for f, xc, yc, crs in jobs:
        table = pacsv.read_csv(f)
        rows += table.num_rows
        nbytes += f.stat().st_size
        xy = (column(table, xc), column(table, yc))
        (lonlat if crs == "EPSG:4326" else en).append(xy)
    t_read = time.perf_counter() - t

    lon = np.concatenate([a for a, _ in lonlat]) if lonlat else np.empty(0)
    lat = np.concatenate([b for _, b in lonlat]) if lonlat else np.empty(0)
    t = time.perf_counter()
    tr = Transformer.from_crs("EPSG:4326", "EPSG:27700", always_xy=True)
    bx, by = tr.transform(lon, lat)
    t_proj = time.perf_counter() - t

    x = np.concatenate([bx] + [a for a, _ in en])
    y = np.concatenate([by] + [b for _, b in en])
    t = time.perf_counter()
    x0, y0, cell, nx, ny = grid["x0"], grid["y0"], grid["cell"], grid["nx"], grid["ny"]
    col = np.floor((x - x0) / cell)
    row = np.floor((y - y0) / cell)
    ok = (col >= 0) & (col < nx) & (row >= 0) & (row < ny)     # NaN compares False
    counts = np.bincount((row[ok] * nx + col[ok]).astype(np.int64), minlength=nx * ny)
    t_bin = time.perf_counter() - t
    rec = {"files": len(jobs), "rows": rows, "bytes": nbytes, "read_s": t_read, "reproject_s": t_proj,
           "reproject_points": int(lon.size), "bin_s": t_bin, "binned_points": int(ok.sum()),
           "binned_total": int(counts.sum()), "floor_s": t_read + t_proj + t_bin, "maxrss_mb": maxrss() / 2 ** 20}
    result_json.write_text(json.dumps(rec, indent=2))


def child_gistar(result_json: Path, side: int = 300, seed: int = 1) -> None:
    """Gi* (hotspots) against esda.G_Local(star=True, transform='B', permutations=0) on one grid."""
    import numpy as np
    import scipy.sparse as sp

    from hotspots.detect.gistar import gi_star, hotspot_gistar, neighbour_matrix

    rng = np.random.default_rng(seed)
    cell = 100.0
    rows, cols = np.divmod(np.arange(side * side), side)
    lam = np.full(side * side, 0.4)
    for _ in range(25):                                   # a few hotspots over a background
        cr, cc, s = rng.uniform(0, side, 2).tolist() + [rng.uniform(2, 10)]
        lam += rng.uniform(2, 8) * np.exp(-((rows - cr) ** 2 + (cols - cc) ** 2) / (2 * s * s))
    values = rng.poisson(lam) + 0.3 * rng.poisson(lam / 3)   # weighted counts: 1.0 and 0.3 weights
    dist = cell * math.sqrt(2)
    t_nm, w = timeit(lambda: neighbour_matrix(cols, rows, cell, dist), 5)
    t_gi, z = timeit(lambda: gi_star(values, w), 21)
    t_perm, _ = timeit(lambda: hotspot_gistar(values, w, 0.05, inference="permutation", seed=0), 3)
    rec = {"grid": f"{side} x {side}", "cells": side * side, "neighbour_distance_m": dist, "neighbours": int(w.nnz),
           "neighbour_matrix_s": t_nm, "gi_star_s": t_gi, "hotspot_gistar_permutation_s": t_perm}
    try:
        import esda
        import libpysal
        n = side * side
        t = time.perf_counter()
        W = libpysal.weights.WSP(sp.csr_matrix(w - sp.eye(n))).to_W(silence_warnings=True)
        rec["esda_weights_build_s"] = time.perf_counter() - t
        t_esda, g = timeit(lambda: esda.G_Local(values, W, transform="B", star=True, permutations=0), 3)
        dz = np.abs(np.asarray(g.Zs) - z)
        rec.update({"esda_s": t_esda, "esda_version": esda.__version__, "max_abs_dz": float(np.nanmax(dz)),
                    "speedup_vs_gi_star": t_esda / t_gi, "speedup_vs_matrix_plus_gi_star": t_esda / (t_gi + t_nm)})
    except ImportError as exc:
        rec["esda_error"] = f"esda not installed ({exc})"
    result_json.write_text(json.dumps(rec, indent=2))


def child_kde(result_json: Path, n_points: int, queries: int, seed: int) -> None:
    """Grid KDE (hotspots) against scikit-learn's KernelDensity (Gaussian kernel, exact tree)."""
    import numpy as np
    rec: dict = {}
    try:
        from hotspots.detect.kde import kde_grid
    except ImportError as exc:
        rec["error"] = f"hotspots.detect.kde.kde_grid not available ({exc})"
        result_json.write_text(json.dumps(rec, indent=2))
        return
    geo = generate.make_geography(seed)
    rng = np.random.default_rng([seed, 5])
    x, y, _, _ = generate.sample_points(rng, geo, n_points, generate.source_mix(rng, 0.5, 0.25, 0.6))
    x, y, _ = generate.snap(geo, x, y)
    w = rng.choice([1.0, 0.8, 0.3], size=n_points, p=[0.7, 0.2, 0.1])
    cell, nx, ny, h = 50.0, 300, 300, 200.0
    x0, y0 = generate.X0, generate.Y0 - 1_000.0
    t = time.perf_counter()
    dens = kde_grid(x, y, w, x0, y0, cell, nx, ny, h, kernel="gaussian")
    t_first = time.perf_counter() - t
    t_ours, dens = timeit(lambda: kde_grid(x, y, w, x0, y0, cell, nx, ny, h, kernel="gaussian"), 3)
    t_quartic, _ = timeit(lambda: kde_grid(x, y, w, x0, y0, cell, nx, ny, h * 2, kernel="quartic"), 3)
    rec.update({"points": n_points, "grid": f"{nx} x {ny}", "cell_m": cell, "kernel": "gaussian",
                "bandwidth_m": h, "ours_first_call_s": t_first, "ours_s": t_ours,
                "ours_quartic_400m_s": t_quartic})
    try:
        from sklearn import __version__ as skv
        from sklearn.neighbors import KernelDensity
    except ImportError as exc:
        rec["sklearn_error"] = str(exc)
        result_json.write_text(json.dumps(rec, indent=2))
        return
    cy, cx = np.divmod(np.arange(nx * ny), nx)
    cxm, cym = x0 + (cx + 0.5) * cell, y0 + (cy + 0.5) * cell
    flat = dens.ravel()
    uniform = rng.choice(nx * ny, size=queries, replace=False)
    dense_cells = np.nonzero(flat >= 0.01 * flat.max())[0]
    dense = rng.choice(dense_cells, size=min(queries // 3, len(dense_cells)), replace=False)
    X = np.column_stack([x, y])
    t = time.perf_counter()
    kd = KernelDensity(kernel="gaussian", bandwidth=h).fit(X, sample_weight=w)
    t_fit = time.perf_counter() - t
    t = time.perf_counter()
    s_uni = kd.score_samples(np.column_stack([cxm[uniform], cym[uniform]]))
    t_uni = time.perf_counter() - t
    s_dense = kd.score_samples(np.column_stack([cxm[dense], cym[dense]]))
    sk = np.exp(np.concatenate([s_uni, s_dense])) * w.sum() * 1e6       # weighted incidents per km^2
    ours = flat[np.concatenate([uniform, dense])]
    big = sk >= 0.01 * flat.max()
    rel = np.abs(ours[big] - sk[big]) / sk[big]
    t_sk = t_fit + t_uni * (nx * ny) / queries
    rec.update({"sklearn_version": skv, "sklearn_fit_s": t_fit, "sklearn_queries_timed": int(queries),
                "sklearn_query_s": t_uni, "sklearn_extrapolated_s": t_sk, "compared_cells": int(big.sum()),
                "max_rel_err": float(rel.max()) if rel.size else float("nan"),
                "median_rel_err": float(np.median(rel)) if rel.size else float("nan"),
                "speedup": t_sk / t_ours})
    result_json.write_text(json.dumps(rec, indent=2))


# --------------------------------------------------------------------------- report
def fmt_s(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}"


def machine_info() -> dict:
    from importlib import metadata
    mem = ""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2 ** 20:.1f} GiB"
    except OSError:
        pass
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    pkgs = {}
    for name in ("hotspots", "numpy", "pandas", "pyarrow", "pyproj", "shapely", "geopandas", "pyogrio", "scipy",
                 "scikit-learn", "folium", "esda", "libpysal"):
        try:
            pkgs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pkgs[name] = "-"
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    except OSError:
        nproc = str(os.cpu_count())
    return {"nproc": nproc, "cpu": cpu, "memory": mem, "python": platform.python_version(),
            "platform": platform.platform(), "packages": pkgs,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def build_table(runs: dict) -> list[list[str]]:
    """Rows of the results table (first column: metric; one column per size)."""
    sizes = list(runs)
    stage_names: list[str] = []
    part_names: list[str] = []
    for r in runs.values():
        for k in r.get("pipeline", {}).get("stages", {}):
            if k not in stage_names:
                stage_names.append(k)
        for k in r.get("pipeline", {}).get("publish_parts", {}):
            if k not in part_names:
                part_names.append(k)
    rows = [["", *sizes]]

    def add(label, fn):
        vals = []
        for s in sizes:
            try:
                v = fn(runs[s])
            except (KeyError, TypeError, ZeroDivisionError):
                v = ""
            vals.append(v if isinstance(v, str) else fmt_s(v))
        rows.append([label, *vals])

    def add_int(label, fn):
        vals = []
        for s in sizes:
            try:
                vals.append(f"{fn(runs[s]):,}")
            except (KeyError, TypeError):
                vals.append("")
        rows.append([label, *vals])

    add_int("rows read (all sources)", lambda r: r["pipeline"]["rows_read"])
    add_int("incidents analysed", lambda r: r["pipeline"]["incidents"])
    add_int("rows rejected / filtered", lambda r: r["pipeline"]["rows_rejected"] + r["pipeline"]["rows_filtered"])
    add_int("grid cells analysed", lambda r: r["pipeline"]["grid"]["cells"])
    add("imports (s)", lambda r: r["pipeline"]["import_s"])
    for k in stage_names:
        add(f"stage: {k} (s)", lambda r, k=k: r["pipeline"]["stages"].get(k))
        if k == "publish":
            for p in part_names:
                add(f"  publish: {p} (s)", lambda r, p=p: r["pipeline"]["publish_parts"].get(p))
    add("**analyse + publish (s)**", lambda r: r["pipeline"]["pipeline_s"])
    add("**end to end, `hotspots run --fresh` (s)**", lambda r: r["cli"]["wall_s"])
    add("end to end, the instrumented process above (s)", lambda r: r["child"]["wall_s"])
    add("CPU time / wall", lambda r: f"{r['child']['cpu_s'] / r['child']['wall_s']:.2f}")
    add("**peak RSS (MB)**", lambda r: f"{r['child']['maxrss_bytes'] / 2 ** 20:,.0f}")
    add("**peak memory of the process tree, PSS (MB)**", lambda r: f"{r['pipeline'].get('tree_pss_peak_mb', 0):,.0f}")
    add("peak reached in stage", lambda r: peak_stage(r["pipeline"]))
    add("floor: pyarrow read CSVs (s)", lambda r: r["floor"]["read_s"])
    add("floor: pyproj 4326->27700 (s)", lambda r: r["floor"]["reproject_s"])
    add("floor: numpy binning (s)", lambda r: r["floor"]["bin_s"])
    add("**floor total (s)**", lambda r: r["floor"]["floor_s"])
    add("**ratio analyse+publish / floor**", lambda r: f"{r['pipeline']['pipeline_s'] / r['floor']['floor_s']:.1f}x")
    add("ratio load stage / (read + reproject)", lambda r: f"{r['pipeline']['stages']['load sources'] / (r['floor']['read_s'] + r['floor']['reproject_s']):.1f}x")
    add("**map.html (MB)**", lambda r: f"{r['pipeline']['map_bytes'].get('partner', 0) / 1e6:.2f}")
    add("all outputs (MB)", lambda r: f"{r['pipeline']['outputs_bytes'] / 1e6:.1f}")
    add("input CSVs (MB)", lambda r: f"{r['floor']['bytes'] / 1e6:.1f}")
    add("other jobs' CPU share during run", lambda r: f"{100 * r['child']['others_cpu_share']:.0f} %")
    add("load average (1 min) before", lambda r: f"{r['child']['load1_before']:.2f}")
    return rows


# How the time splits (issue 13): stage names of ``Progress`` in each part ("trends", "clusters" and
# "building types": waiting for the second core).
SPLIT = {"load": ("load sources",), "aggregate": ("study area and grid", "weight"),
         "analyse": ("detect hotspots", "density and trends", "attribute to boundaries", "profile key buildings",
                     "weighting sensitivity", "trends", "clusters", "building types"),
         "publish": ("publish", "summary (CLI table)")}
SCALE_START, SCALE_END = "<!-- scale:start -->", "<!-- scale:end -->"


def scale_table(runs: dict) -> list[list[str]]:
    """Rows of the scale table: peak memory (whole run, per incident, per stage) and the time split."""
    sizes = list(runs)
    rows = [["", *sizes]]

    def add(label, fn):
        vals = []
        for s in sizes:
            try:
                vals.append(fn(runs[s]))
            except (KeyError, TypeError, ZeroDivisionError):
                vals.append("")
        rows.append([label, *vals])

    add("run started (UTC)", lambda r: r["at"])
    add("incidents analysed", lambda r: f"{r['pipeline']['incidents']:,}")
    add("other jobs' CPU share during run", lambda r: f"{100 * r['child']['others_cpu_share']:.0f} %")
    add("load average (1 min) before", lambda r: f"{r['child']['load1_before']:.2f}")
    add("**end to end, process wall (s)**", lambda r: fmt_s(r["child"]["wall_s"]))
    add("CPU time (s)", lambda r: fmt_s(r["child"]["cpu_s"]))
    for part, names in SPLIT.items():
        add(f"time: {part} (s)", lambda r, names=names: fmt_s(sum(r["pipeline"]["stages"].get(k, 0.0) for k in names)))
    add("**peak RSS (MB)**", lambda r: f"{r['child']['maxrss_bytes'] / 2 ** 20:,.0f}")
    add("**peak memory of the process tree, PSS (MB)**", lambda r: f"{r['pipeline'].get('tree_pss_peak_mb', 0):,.0f}")
    add("peak RSS per incident (bytes)", lambda r: f"{r['child']['maxrss_bytes'] / r['pipeline']['incidents']:,.0f}")
    add("peak reached in stage", lambda r: peak_stage(r["pipeline"]))
    add("map.html (MB)", lambda r: f"{r['pipeline']['map_bytes'].get('partner', 0) / 1e6:.2f}")
    stages = []
    for r in runs.values():
        for k in r["pipeline"].get("rss_peak_in_stage_mb", {}):
            if k not in stages and k not in ("startup", "imports", "read config", "between stages"):
                stages.append(k)
    for k in stages:
        add(f"RSS peak in stage: {k} (MB)", lambda r, k=k: f"{r['pipeline']['rss_peak_in_stage_mb'][k]:,.0f}")
    return rows


def write_scale(runs: dict, machine: dict) -> None:
    """Keep each size's record in ``out/<size>/run.json`` and rewrite the scale block of RESULTS.md from
    every size recorded there (sizes run at different times keep their own date and load)."""
    for label, rec in runs.items():
        if "pipeline" in rec:
            (OUT / label / "run.json").write_text(json.dumps({**rec, "at": machine["date"]}, indent=2, default=str))
    recorded = {}
    for path in OUT.glob("*/run.json"):
        try:
            recorded[path.parent.name] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    order = sorted(recorded, key=generate.parse_size)
    block = (f"{SCALE_START}\n## Scale: peak memory and the time split (issue 13)\n\n"
             "Written by `benchmarks/run.py --scale` from every size recorded in `out/<size>/run.json` (each run "
             "on its own date and machine load). `analyse` + `publish` in a fresh process, the files read "
             "afresh (no cache). Time split: load = `load sources`; aggregate = `study area and grid` + "
             "`weight` (the clip, the schema, the cell of each incident, its weight); analyse = Gi*, KDE, "
             "clusters, trends, boundaries, buildings, sensitivity; publish = every output file. RSS peaks per "
             "stage come from a 20 ms sampler; the whole run's peak is `ru_maxrss` (the largest single "
             "process) and, for the process tree (the pipeline, its load workers and forked jobs), the peak "
             "sum of their PSS sampled every 100 ms.\n\n"
             f"{md_table(scale_table({s: recorded[s] for s in order}))}\n{SCALE_END}")
    old = RESULTS_MD.read_text() if RESULTS_MD.exists() else "# Benchmark results\n"
    if SCALE_START in old:
        new = re.sub(re.escape(SCALE_START) + r".*?" + re.escape(SCALE_END), lambda _: block, old, flags=re.S)
    else:
        new = old.replace("## Analysis", block + "\n\n## Analysis", 1) if "## Analysis" in old else old + "\n" + block + "\n"
    RESULTS_MD.write_text(new)


def peak_stage(p: dict) -> str:
    """The stage during which the process's high-water mark (ru_maxrss) reached its final value."""
    after = p.get("rss_after_stage_mb", {})
    if not after:
        return ""
    top = max(after.values())
    return next(k for k, v in after.items() if v >= top - 1e-6)


def md_table(rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join(["---"] + ["---:"] * (len(rows[0]) - 1)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out)


def text_table(rows: list[list[str]]) -> str:
    clean = [[c.replace("**", "") for c in r] for r in rows]
    widths = [max(len(r[i]) for r in clean) for i in range(len(clean[0]))]
    return "\n".join("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r))
                     for r in clean)


def verdicts(runs: dict, compare: dict) -> list[str]:
    """One line per target: met or missed, by how much, and the measured cause."""
    lines = []
    sizes = [s for s in runs if "pipeline" in runs[s]]
    for size in sizes:
        r, want = runs[size], SIZE_TARGETS.get(size, {})
        p, f, c = r["pipeline"], r["floor"], r["child"]
        if "e2e_s" in want:
            # The command as the analyst runs it where it was run (not the instrumented child: its sampler
            # thread reads every process's memory 50 times a second).
            e2e, limit = r.get("cli", c)["wall_s"], want["e2e_s"]
            top = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(p["stages"].items(), key=lambda kv: -kv[1])[:3])
            lines.append(f"- End to end at {size}: {e2e:.1f} s against < {limit:g} s: "
                         + ("**met**." if e2e < limit else f"**missed** by {e2e - limit:.1f} s "
                            f"({e2e / limit:.1f}x the target). Largest stages: {top}."))
        if "peak_gb" in want:
            # The larger of the biggest single process and the whole tree (the forked jobs' own pages).
            gb, limit = max(c["maxrss_bytes"], p.get("tree_pss_peak_mb", 0) * 2 ** 20) / 2 ** 30, want["peak_gb"]
            lines.append(f"- Peak memory at {size} (process tree): {gb:.2f} GB against < {limit:g} GB: "
                         + ("**met**." if gb < limit else f"**missed** by {gb - limit:.2f} GB; "
                            f"the high-water mark is reached in '{peak_stage(p)}'."))
        if "floor_ratio" in want:
            ratio, limit = p["pipeline_s"] / f["floor_s"], want["floor_ratio"]
            lines.append(f"- Within {limit:g}x of the floor at {size}: {ratio:.1f}x "
                         f"(analyse+publish {p['pipeline_s']:.1f} s, floor {f['floor_s']:.2f} s): "
                         + ("**met**." if ratio <= limit else f"**missed** ({ratio / limit:.1f}x over the allowed "
                            f"ratio; the pipeline would need to take <= {limit * f['floor_s']:.1f} s)."))
    if sizes and not any(s in SIZE_TARGETS for s in sizes):
        lines.append(f"- No size with a target was run (targets at {', '.join(SIZE_TARGETS)}).")
    maps = {s: runs[s]["pipeline"]["map_bytes"].get("partner", 0) / 1e6 for s in sizes}
    if maps:
        worst = max(maps, key=maps.get)
        ok = maps[worst] < TARGETS["map_mb"]
        lines.append(f"- Map size: largest {maps[worst]:.2f} MB (at {worst}) against < {TARGETS['map_mb']:g} MB: "
                     + ("**met**." if ok else "**missed**."))
    g = compare.get("gistar", {})
    if "speedup_vs_gi_star" in g:
        ok = g["speedup_vs_gi_star"] >= TARGETS["gi_speedup"] and g["max_abs_dz"] <= TARGETS["gi_dz"]
        lines.append(f"- Gi* vs esda.G_Local on {g['grid']} cells: {g['speedup_vs_gi_star']:,.0f}x faster "
                     f"({g['gi_star_s'] * 1e3:.1f} ms vs {g['esda_s']:.2f} s; {g['speedup_vs_matrix_plus_gi_star']:,.0f}x "
                     f"counting the neighbour matrix too), max |dz| {g['max_abs_dz']:.1e}: "
                     + ("**met**." if ok else "**missed**."))
    k = compare.get("kde", {})
    if "speedup" in k:
        ok = k["speedup"] >= TARGETS["kde_speedup"] and k["max_rel_err"] <= TARGETS["kde_rel_err"]
        lines.append(f"- KDE vs scikit-learn KernelDensity ({k['points']:,} points, {k['grid']} grid, Gaussian "
                     f"{k['bandwidth_m']:g} m): {k['speedup']:,.0f}x faster ({k['ours_s']:.3f} s vs "
                     f"{k['sklearn_extrapolated_s']:,.0f} s extrapolated from {k['sklearn_queries_timed']} timed cell "
                     f"centres), max relative error {100 * k['max_rel_err']:.2f} % over {k['compared_cells']} cells "
                     f"with density >= 1 % of the maximum: " + ("**met**." if ok else "**missed**."))
    elif k.get("error"):
        lines.append(f"- KDE: not measured: {k['error']}.")
    return lines


def compare_md(compare: dict) -> str:
    out = []
    g = compare.get("gistar")
    if g:
        out.append("### Gi* against PySAL esda\n")
        out.append(f"Grid {g['grid']} ({g['cells']:,} cells), binary weights within {g['neighbour_distance_m']:.0f} m "
                   f"(queen ring of 100 m cells, self included), weighted Poisson counts.\n")
        rows = [["", "seconds"],
                ["hotspots `neighbour_matrix`", fmt_s(g["neighbour_matrix_s"])],
                ["hotspots `gi_star` (z)", f"{g['gi_star_s']:.4f}"],
                ["hotspots `hotspot_gistar` (z, permutation p, BH q, classes; pipeline default)",
                 fmt_s(g["hotspot_gistar_permutation_s"])]]
        if "esda_s" in g:
            rows += [["libpysal `W` from the same matrix (not counted)", fmt_s(g["esda_weights_build_s"])],
                     [f"esda {g['esda_version']} `G_Local(star=True, transform='B', permutations=0)`", fmt_s(g["esda_s"])],
                     ["speed-up, `gi_star` vs esda", f"{g['speedup_vs_gi_star']:,.0f}x"],
                     ["max abs z difference", f"{g['max_abs_dz']:.1e}"]]
        out.append(md_table(rows) + "\n")
    k = compare.get("kde")
    if k and "ours_s" in k:
        out.append("### KDE against scikit-learn\n")
        out.append(f"{k['points']:,} snapped points with weights 1 / 0.8 / 0.3, grid {k['grid']} of {k['cell_m']:g} m "
                   f"cells, Gaussian kernel sigma {k['bandwidth_m']:g} m (scikit-learn has no quartic kernel). "
                   "scikit-learn (`KernelDensity`, default exact tree search) was fitted on all points but evaluated "
                   f"on {k.get('sklearn_queries_timed', 0)} random cell centres only; its time for the whole grid is "
                   "extrapolated linearly from those (fit time + per-centre time x cells). The error is measured on "
                   "those centres plus a sample of dense ones, where the density is >= 1 % of the maximum.\n")
        rows = [["", "value"], ["hotspots `kde_grid` first call (s)", fmt_s(k["ours_first_call_s"])],
                ["hotspots `kde_grid` median of 3 (s)", fmt_s(k["ours_s"])],
                ["hotspots `kde_grid` quartic 400 m (s)", fmt_s(k["ours_quartic_400m_s"])]]
        if "sklearn_fit_s" in k:
            rows += [[f"scikit-learn {k['sklearn_version']} fit (s)", fmt_s(k["sklearn_fit_s"])],
                     [f"scikit-learn score_samples, {k['sklearn_queries_timed']} centres (s)", fmt_s(k["sklearn_query_s"])],
                     ["scikit-learn, whole grid, extrapolated (s)", fmt_s(k["sklearn_extrapolated_s"])],
                     ["speed-up", f"{k['speedup']:,.0f}x"],
                     ["max / median relative error", f"{100 * k['max_rel_err']:.2f} % / {100 * k['median_rel_err']:.3f} %"]]
        out.append(md_table(rows) + "\n")
    return "\n".join(out)


def profile_md(prof: dict, size: str) -> str:
    if not prof:
        return ""
    out = [f"### Profile at {size} (cProfile, a separate run; profiling slows Python-heavy code)\n",
           "Own time (tottime), top functions:\n"]
    rows = [["function", "calls", "own s", "cumulative s"]]
    rows += [[f"`{r['where']}`", f"{r['calls']:,}", fmt_s(r["tottime"]), fmt_s(r["cumtime"])]
             for r in prof["tottime"][:12]]
    out.append(md_table(rows) + "\n")
    out.append("Package functions by cumulative time:\n")
    rows = [["function", "calls", "cumulative s"]]
    rows += [[f"`{r['where']}`", f"{r['calls']:,}", fmt_s(r["cumtime"])] for r in prof["package_cumtime"][:20]]
    out.append(md_table(rows) + "\n")
    return "\n".join(out)


ANALYSIS_START, ANALYSIS_END = "<!-- analysis:start -->", "<!-- analysis:end -->"
# The load-engine figures of benchmarks/engines.py (reuse, both cores, Dask), kept as they are.
ENGINES_START, ENGINES_END = "<!-- engines:start -->", "<!-- engines:end -->"


def write_results(runs: dict, compare: dict, machine: dict, args, profile: dict | None, profile_size: str) -> str:
    old = RESULTS_MD.read_text() if RESULTS_MD.exists() else ""
    m = re.search(re.escape(ANALYSIS_START) + r"(.*?)" + re.escape(ANALYSIS_END), old, re.S)
    analysis = m.group(1).strip() if m else ("_Written by hand after a run: where the time goes and what to do "
                                             "about it. `run.py` keeps this block when it rewrites the file._")
    e = re.search(re.escape(ENGINES_START) + r".*?" + re.escape(ENGINES_END), old, re.S)
    engines = e.group(0) + "\n\n" if e else ""
    sc = re.search(re.escape(SCALE_START) + r".*?" + re.escape(SCALE_END), old, re.S)
    engines += sc.group(0) + "\n\n" if sc else ""
    pk = ", ".join(f"{k} {v}" for k, v in machine["packages"].items())
    loads = "; ".join(f"{s}: {100 * r['child']['others_cpu_share']:.0f} % of the CPUs busy with other jobs, "
                      f"load average {r['child']['load1_before']:.2f} before"
                      for s, r in runs.items() if "child" in r)
    md = f"""# Benchmark results

Written by `benchmarks/run.py` (`make benchmark`); the data are synthetic partnerships from
`benchmarks/generate.py` (seed {args.seed}): police.uk street CSVs (WGS84, 48 monthly files of
two forces), police.uk stop and search (WGS84), a council log in easting/northing (BNG) and graded
community reports (WGS84), 24 months, clustered around inner London, snapped to ~8,300 points.

**Machine**: {machine['nproc']} CPUs ({machine['cpu']}), {machine['memory']} RAM, Python {machine['python']},
{machine['platform']}. **Date**: {machine['date']}.
**Packages**: {pk}.
**Load**: the machine is shared with other jobs; each size was run once. {loads}.

## Pipeline against the floor

`analyse` + `publish` (+ the CLI's accounting table) in a fresh process per size; stage
seconds from `Progress.times`; peak RSS is the child's `ru_maxrss` (its largest single process); the
process tree's peak adds the PSS of its worker pool and forked jobs (`tree_pss`). The end-to-end targets are
taken on `hotspots run --fresh` itself, another fresh process with nothing timing it (every file read, the load
cache written). The package's bytecode is compiled first, as an install leaves it. The floor is measured in the
same run on the same files: pyarrow reading every source CSV (multithreaded), pyproj
reprojecting every lon/lat point to EPSG:27700, numpy binning every point onto the pipeline's grid.

{md_table(build_table(runs))}

## Targets

{chr(10).join(verdicts(runs, compare))}

## Comparisons

{compare_md(compare)}
{profile_md(profile, profile_size) if profile else ''}
{engines}## Analysis

{ANALYSIS_START}
{analysis}
{ANALYSIS_END}
"""
    RESULTS_MD.write_text(md)
    return md


# --------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Benchmark the hotspots pipeline against the floor (see module docstring).")
    ap.add_argument("--sizes", default="10k,100k,1m", help="comma-separated sizes (10k, 100k, 1m, 10m, ...)")
    ap.add_argument("--keep", action="store_true", help="reuse data already generated with the same seed")
    ap.add_argument("--seed", type=int, default=generate.DEFAULT_SEED)
    ap.add_argument("--profile", default="largest",
                    help="cProfile one extra pipeline run at this size ('largest', 'none' or a size)")
    ap.add_argument("--no-compare", action="store_true", help="skip the Gi*/esda and KDE/scikit-learn comparisons")
    ap.add_argument("--kde-points", type=int, default=1_000_000)
    ap.add_argument("--kde-queries", type=int, default=40, help="cell centres scikit-learn is timed on")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds allowed per child process")
    ap.add_argument("--mem-limit-gb", type=float, default=None, help="address-space limit for each child")
    ap.add_argument("--no-results", action="store_true", help="do not rewrite benchmarks/RESULTS.md")
    ap.add_argument("--scale", action="store_true",
                    help="record each size in out/<size>/run.json and rewrite only the scale block of RESULTS.md "
                         "(peak memory per size and stage, the time split), e.g. --sizes 1m,5m,10m --scale")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--pipeline-json", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--profile-path", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child == "pipeline":
        child_pipeline(args.config, args.out, args.json, args.profile_path)
        return 0
    if args.child == "floor":
        child_floor(args.config, args.pipeline_json, args.json)
        return 0
    if args.child == "gistar":
        child_gistar(args.json)
        return 0
    if args.child == "kde":
        child_kde(args.json, args.kde_points, args.kde_queries, args.seed)
        return 0

    sizes = [generate.size_label(generate.parse_size(s)) for s in args.sizes.split(",") if s.strip()]
    compile_package()
    machine = machine_info()
    print(f"machine: {machine['nproc']} CPUs, {machine['memory']}, Python {machine['python']}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    runs: dict[str, dict] = {}
    failed = False
    for label in sizes:
        n = generate.parse_size(label)
        d = OUT / label
        rec: dict = {}
        if args.keep and generate.is_current(OUT, n, args.seed):
            print(f"[{label}] reusing generated data in {d}", flush=True)
        else:
            t = time.perf_counter()
            generate.generate(n, OUT, args.seed, quiet=True)
            rec["generate_s"] = time.perf_counter() - t
            print(f"[{label}] generated in {rec['generate_s']:.1f} s", flush=True)
        pj, fj = d / "pipeline.json", d / "floor.json"
        for j in (pj, fj):
            j.unlink(missing_ok=True)
        print(f"[{label}] pipeline ...", end=" ", flush=True)
        child = run_child(["--child", "pipeline", "--config", str(d / "partnership.toml"), "--out", str(d / "result"),
                           "--json", str(pj)], d / "logs" / "pipeline.log", args.timeout, args.mem_limit_gb)
        if child["returncode"] != 0 or not pj.exists():
            part = json.loads(pj.read_text()) if pj.exists() else {}
            where = (f" in stage '{part.get('failed_in_stage')}' after {part.get('seconds_until_failure', 0):.0f} s "
                     f"({part.get('error', '')})" if part else "")
            print(f"FAILED (exit {child['returncode']}){where}; wall {child['wall_s']:.0f} s, peak RSS "
                  f"{child['maxrss_bytes'] / 2 ** 30:.1f} GB; stages done: {part.get('stages', {})}; "
                  f"log {child['log']}:\n{tail(child['log'], 6)}", flush=True)
            rec["child"], rec["failed"] = child, part
            runs[label] = rec
            failed = True
            continue
        rec["child"], rec["pipeline"] = child, json.loads(pj.read_text())
        print(f"{child['wall_s']:.1f} s, peak {child['maxrss_bytes'] / 2 ** 20:,.0f} MB", flush=True)
        if not args.scale:
            # What the analyst waits for: the command itself, with no sampler thread or timers in it.
            print(f"[{label}] hotspots run --fresh ...", end=" ", flush=True)
            rec["cli"] = run_cli(d, args.timeout, args.mem_limit_gb)
            print(f"{rec['cli']['wall_s']:.1f} s (exit {rec['cli']['returncode']})", flush=True)
            failed |= rec["cli"]["returncode"] != 0
        print(f"[{label}] floor ...", end=" ", flush=True)
        fchild = run_child(["--child", "floor", "--config", str(d / "partnership.toml"), "--pipeline-json", str(pj),
                            "--json", str(fj)], d / "logs" / "floor.log", args.timeout, args.mem_limit_gb)
        if fchild["returncode"] == 0 and fj.exists():
            rec["floor"] = json.loads(fj.read_text())
            rec["floor_child"] = fchild
            print(f"{rec['floor']['floor_s']:.2f} s", flush=True)
        else:
            print(f"FAILED; log {fchild['log']}:\n{tail(fchild['log'])}", flush=True)
            failed = True
        runs[label] = rec

    compare: dict = {}
    if not args.no_compare:
        for name, extra in (("gistar", []), ("kde", ["--kde-points", str(args.kde_points),
                                                     "--kde-queries", str(args.kde_queries),
                                                     "--seed", str(args.seed)])):
            j = OUT / f"compare_{name}.json"
            j.unlink(missing_ok=True)
            print(f"[compare] {name} ...", end=" ", flush=True)
            c = run_child(["--child", name, "--json", str(j), *extra], OUT / "logs" / f"compare_{name}.log",
                          args.timeout)
            if c["returncode"] == 0 and j.exists():
                compare[name] = json.loads(j.read_text())
                compare[name]["child"] = c
                print(f"done in {c['wall_s']:.1f} s", flush=True)
            else:
                print(f"FAILED; log {c['log']}:\n{tail(c['log'])}", flush=True)

    profile, profile_size = None, ""
    ok_sizes = [s for s in sizes if "pipeline" in runs.get(s, {})]
    if args.profile != "none" and ok_sizes:
        profile_size = max(ok_sizes, key=generate.parse_size) if args.profile == "largest" else \
            generate.size_label(generate.parse_size(args.profile))
        d = OUT / profile_size
        if (d / "partnership.toml").exists():
            print(f"[profile] {profile_size} under cProfile ...", end=" ", flush=True)
            pj = d / "pipeline_profiled.json"
            c = run_child(["--child", "pipeline", "--config", str(d / "partnership.toml"), "--out",
                           str(d / "result_profiled"), "--json", str(pj), "--profile-path", str(d / "profile.prof")],
                          d / "logs" / "profile.log", args.timeout, args.mem_limit_gb)
            if c["returncode"] == 0 and pj.exists():
                profile = json.loads(pj.read_text()).get("profile_top")
                print(f"{c['wall_s']:.1f} s; full listing in {d / 'profile.txt'}", flush=True)
            else:
                print(f"FAILED; log {c['log']}", flush=True)

    table = build_table({s: r for s, r in runs.items() if "pipeline" in r and "floor" in r})
    print()
    if len(table[0]) > 1:
        print(text_table(table))
    print()
    for line in verdicts({s: r for s, r in runs.items() if "pipeline" in r and "floor" in r}, compare):
        print(line.replace("**", ""))
    if profile:
        print(f"\nprofile at {profile_size}, top own time:")
        for r in profile["tottime"][:8]:
            print(f"  {r['tottime']:8.2f} s  {r['calls']:>10,}  {r['where']}")
    raw = OUT / ("results.json" if not args.no_results else f"results-{'-'.join(sizes)}.json")
    raw.write_text(json.dumps({"machine": machine, "runs": runs, "compare": compare, "profile": profile,
                               "profile_size": profile_size}, indent=2, default=str))
    if args.scale and ok_sizes:
        write_scale({s: r for s, r in runs.items() if "pipeline" in r}, machine)
        print(f"\nwrote the scale block of {RESULTS_MD}")
    elif not args.no_results and ok_sizes:
        write_results({s: r for s, r in runs.items() if "pipeline" in r and "floor" in r}, compare, machine, args,
                      profile, profile_size)
        print(f"\nwrote {RESULTS_MD}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
