"""Running on a ``dask.distributed`` cluster: one partnership's files, or many partnerships.

- ``hotspots run CONFIG --scheduler ADDRESS|local``: the load stage's per-file work
  (read, map to the common schema, locate, filter: ``hotspots.load.load_files``, a batch
  of one source's files a task) runs on the cluster's workers (``run_on_cluster``); this
  process keeps the ledger, the cache and everything after loading, so the outputs are
  those of a one-process run.
- ``hotspots run-many CONFIG... --scheduler ADDRESS|local``: each config is one task
  (``run_config``: the whole of ``hotspots run``) on a worker; its output folder is
  the one ``hotspots run`` would use (``output/`` beside the config).

``local`` starts a ``LocalCluster`` on this machine (one single-threaded worker
process per core). Any other address is an existing scheduler
(``tcp://host:8786``). Every worker needs hotspots installed (the same version)
and read access to the data at the same paths; for ``run-many`` also write access
to each config's folder (a shared filesystem). See the README, "Running on a
Dask cluster".
"""
from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path
from typing import Callable, Iterator

from hotspots.errors import UserError


def _dask():
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise UserError("--scheduler needs dask.distributed, which is not installed here.",
                        hint="pip install 'dask[distributed]'") from None
    return Client, LocalCluster


@contextlib.contextmanager
def connect(address: str, workers: int | None = None) -> Iterator[object]:
    """A ``Client`` to the scheduler at ``address``, or to a new ``LocalCluster`` when ``local``
    (``workers`` single-threaded processes, default one per core); closed on exit."""
    Client, LocalCluster = _dask()
    if address == "local":
        n = workers or os.cpu_count() or 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # dashboard and port notices are not for the analyst
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=50)
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    try:
        client = Client(address, timeout="20s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise UserError(f"--scheduler {address}: no Dask scheduler answered ({exc}).",
                        hint="Start one with 'dask scheduler' and workers with 'dask worker ADDRESS' "
                             "(README: Running on a Dask cluster), or use --scheduler local.") from None
    with client:
        yield client


def run_on_cluster(client, fn: Callable, jobs: list, shared=None) -> list:
    """``fn(job, shared)`` for every job on the cluster's workers; results in job order.

    ``shared`` (the geocoder) is sent once to every worker, not once per job."""
    if shared is not None:
        shared = client.scatter(shared, broadcast=True, hash=False)
    futures = client.map(fn, jobs, [shared] * len(jobs), pure=False)
    return client.gather(futures)


def run_config(config: str, fresh: bool = False) -> dict:
    """``hotspots run CONFIG`` in this process (a worker), its printed output captured.

    Returns ``config``, ``code`` (0, or 1 after a user error), ``stdout`` and ``stderr``
    (the error and hotspots' warnings as the CLI prints them)."""
    import argparse

    from hotspots import cli
    from hotspots.load.ledger import HotspotsWarning

    out, err = io.StringIO(), io.StringIO()
    # On a worker the files load in this process: never the config's [engine] scheduler again.
    args = argparse.Namespace(config=config, out=None, agency=None, pdf=False, fresh=fresh, scheduler="none",
                              debug=False)
    code = 0
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out):
        warnings.simplefilter("always", HotspotsWarning)
        try:
            code = cli.cmd_run(args)
        except UserError as exc:
            code = 1
            print(f"hotspots: error: {exc}", file=err)
    for w in caught:
        if issubclass(w.category, HotspotsWarning):
            print(f"hotspots: warning: {w.message}", file=err)
    return {"config": config, "code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


def run_many(client, configs: list[Path], fresh: bool = False) -> Iterator[dict]:
    """Each config as one task (``run_config``) on the cluster; yields each result as it finishes."""
    from dask.distributed import as_completed

    futures = [client.submit(run_config, str(Path(c).resolve()), fresh, pure=False) for c in configs]
    for future in as_completed(futures):
        try:
            yield future.result()
        except Exception as exc:  # a crash on a worker still names its config
            cfg = configs[futures.index(future)]
            yield {"config": str(cfg), "code": 1, "stdout": "",
                   "stderr": f"hotspots: internal error on a worker ({type(exc).__name__}: {exc})\n"}
