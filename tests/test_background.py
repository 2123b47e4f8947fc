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
