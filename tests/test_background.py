"""Steps run on the second core (hotspots.background) give what they give here."""
from __future__ import annotations

import os

import numpy as np
import pytest

from hotspots import background
from hotspots.errors import UserError


def _die():
    os._exit(3)


def _draws(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=5)


def test_a_background_job_returns_what_it_returns_here():
    job = background.start(_draws, 7, what="draws")
    assert np.array_equal(job.result(), _draws(7))


def test_a_background_job_killed_on_the_way_is_a_user_error_not_a_traceback():
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: background jobs run in this process")
    with pytest.raises(UserError, match="density clusters ended before it finished"):
        background.start(_die, what="density clusters").result()


def _fail():
    raise ValueError("bad input in the background")


def test_a_background_jobs_exception_is_raised_where_its_result_is_asked():
    with pytest.raises(ValueError, match="bad input in the background"):
        background.start(_fail, what="test").result()


def _wait_for(path: str) -> int:
    import time
    while not os.path.exists(path):
        time.sleep(0.01)
    return 5


def test_done_says_whether_the_result_is_ready(tmp_path):
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: background jobs run in this process")
    flag = tmp_path / "go"
    job = background.start(_wait_for, str(flag), what="test")
    assert not job.done()
    flag.write_text("")
    assert job.result() == 5 and job.done()


def _big(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64)


def test_a_finished_job_ends_its_process_before_its_result_is_asked():
    # A result far larger than a pipe holds (64 KB): the process must not wait to hand it over, or it
    # keeps its memory (and the pages it shares with this process) until the result is asked for.
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: background jobs run in this process")
    job = background.start(_big, 1_000_000, what="test")
    pid = job.pid
    import time
    deadline = time.monotonic() + 60
    while not job.done() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.done()
    assert not os.path.exists(f"/proc/{pid}")        # ended and reaped, its result not yet read
    assert np.array_equal(job.result(), _big(1_000_000))
    assert job.pid is None


def _unpicklable():
    return lambda: 1


def test_a_result_that_cannot_be_sent_back_says_so():
    with pytest.raises((RuntimeError, AttributeError, TypeError), match="sending the result back|pickle|lambda"):
        background.start(_unpicklable, what="test").result()


def test_without_a_writable_temporary_folder_the_job_runs_here(monkeypatch):
    import tempfile

    def refuse(*a, **k):
        raise PermissionError("read-only")
    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    job = background.start(_draws, 3, what="draws")
    assert job.pid is None and job.done()
    assert np.array_equal(job.result(), _draws(3))


def test_a_job_started_nice_runs_at_that_lower_priority():
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: background jobs run in this process")
    base = os.nice(0)
    assert background.start(os.nice, 0, what="priority", nice=5).result() == min(base + 5, 19)
    assert background.start(os.nice, 0, what="priority").result() == base
