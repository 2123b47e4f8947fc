"""Steps run on the second core: a function in a forked process, its result collected later.

The pipeline starts the density clusters, the building types' simulations and the GIS layers'
writing this way while it goes on with the other stages (``hotspots.pipeline``). The process is forked
with its inputs already in memory: they are never copied through a pipe (at 10 M incidents the
clusters' points alone would be 250 MB pickled); only the result comes back. With one core,
inside a worker process (which may not start children) or off Linux (forking a process that has
loaded macOS system frameworks, as matplotlib does, is not safe), the function runs at once in
this process. The result is the same either way.
"""
from __future__ import annotations

import multiprocessing
import os
import sys

from hotspots.errors import UserError


class Job:
    """A function's result, computed here or in a forked process (``start``)."""

    def __init__(self, fn, args: tuple, what: str):
        self.what = what
        self._proc = None
        if (os.cpu_count() or 1) < 2 or multiprocessing.current_process().daemon or \
                not sys.platform.startswith("linux"):
            self._value = (True, fn(*args))
            return
        ctx = multiprocessing.get_context("fork")
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_child, args=(fn, args, send), daemon=True)
        self._proc.start()
        send.close()

    def done(self) -> bool:
        """Whether ``result`` would return at once (computed here, or the process has sent it)."""
        return self._proc is None or self._recv.poll()

    def result(self):
        """The function's result; its exception raised here; a process that died on the way (out of
        memory) is a UserError naming the step, not a traceback."""
        if self._proc is not None:
            try:
                self._value = self._recv.recv()
            except EOFError:
                self._value = None
            finally:
                self._recv.close()
                self._proc.join()
                self._proc = None
            if self._value is None:
                raise UserError(f"the process computing the {self.what} ended before it finished (out of memory?).",
                                hint="Free memory or run on a larger machine; a smaller study or fewer simulations "
                                     "([analysis] cluster_simulations, building_simulations) need less.")
        ok, value = self._value
        if not ok:
            raise value
        return value


def start(fn, *args, what: str) -> Job:
    """``fn(*args)`` on the second core; ``Job.result()`` waits for it. ``what`` names it in messages."""
    return Job(fn, args, what)


def _child(fn, args, send) -> None:
    try:
        out = (True, fn(*args))
    except BaseException as exc:  # every failure goes back to the parent, which raises it
        out = (False, exc)
    try:
        send.send(out)
    except Exception as exc:  # an exception or result that cannot be pickled: say what it was
        send.send((False, RuntimeError(f"{type(exc).__name__} sending the result back: {exc}")))
    send.close()
