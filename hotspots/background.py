"""Steps run on the second core: a function in a forked process, its result collected later.

The pipeline starts the density clusters, the building types' simulations and the GIS layers'
writing this way while it goes on with the other stages (``hotspots.pipeline``). The process is forked
with its inputs already in memory: they are never copied through a pipe (at 10 M incidents the
clusters' points alone would be 250 MB pickled); only the result comes back, through a temporary
file, so that the process ends as soon as it is done. With one core, inside a worker process (which
may not start children) or off Linux (forking a process that has loaded macOS system frameworks, as
matplotlib does, is not safe), the function runs at once in this process. The result is the same
either way.
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
import tempfile

from hotspots.errors import UserError
from hotspots.frames import release_freed_memory


class Job:
    """A function's result, computed here or in a forked process (``start``)."""

    def __init__(self, fn, args: tuple, what: str, nice: int = 0):
        self.what = what
        self._proc = None
        if (os.cpu_count() or 1) < 2 or multiprocessing.current_process().daemon or \
                not sys.platform.startswith("linux"):
            self._value = (True, fn(*args))
            return
        # Memory this process has freed but still holds goes back first: the child would share those
        # pages, and this process's next allocations, reusing them, would copy each one.
        release_freed_memory()
        ctx = multiprocessing.get_context("fork")
        # The result comes back through a temporary file, not a pipe: a finished process would wait
        # on a full pipe until the result is asked for, holding the pages it shares with this process
        # (those this process has freed since) and its own: at 30 M incidents the clusters' process
        # waited so, 2.2 GB, for the whole of the buildings' stages.
        try:
            self._file = tempfile.TemporaryFile(prefix="hotspots-job-")
        except OSError:         # no writable temporary folder: computed here, as with one core
            self._value = (True, fn(*args))
            return
        self._proc = ctx.Process(target=_child, args=(fn, args, self._file.fileno(), nice), daemon=True)
        self._proc.start()

    def done(self) -> bool:
        """Whether ``result`` would return at once (computed here, or the process has ended)."""
        return self._proc is None or not self._proc.is_alive()

    @property
    def pid(self) -> int | None:
        """The process computing the result, while there is one."""
        return self._proc.pid if self._proc is not None else None

    def result(self):
        """The function's result; its exception raised here; a process that died on the way (out of
        memory) is a UserError naming the step, not a traceback."""
        if self._proc is not None:
            self._proc.join()
            ended, self._proc = self._proc.exitcode, None
            with self._file:
                self._file.seek(0)
                try:
                    self._value = pickle.load(self._file) if ended == 0 else None
                except (EOFError, pickle.UnpicklingError):
                    self._value = None
            if self._value is None:
                raise UserError(f"the process computing the {self.what} ended before it finished (out of memory?).",
                                hint="Free memory or run on a larger machine; a smaller study or fewer simulations "
                                     "([analysis] cluster_simulations, building_simulations) need less.")
        ok, value = self._value
        if not ok:
            raise value
        return value


def start(fn, *args, what: str, nice: int = 0) -> Job:
    """``fn(*args)`` on the second core; ``Job.result()`` waits for it. ``what`` names it in messages.
    ``nice`` > 0: a step nothing waits for soon, run at that lower priority (``os.nice``) so that the
    steps the run waits for take the cores first."""
    return Job(fn, args, what, nice)


def _child(fn, args, fd: int, nice: int = 0) -> None:
    if nice:
        os.nice(nice)
    try:
        out = (True, fn(*args))
    except BaseException as exc:  # every failure goes back to the parent, which raises it
        out = (False, exc)
    try:
        data = pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # an exception or result that cannot be pickled: say what it was
        data = pickle.dumps((False, RuntimeError(f"{type(exc).__name__} sending the result back: {exc}")))
    with os.fdopen(fd, "wb", closefd=False) as fh:
        fh.write(data)
