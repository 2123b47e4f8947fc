"""Steps run on the second core (hotspots.pipeline.in_background) give what they give here."""
from __future__ import annotations

import os

import numpy as np
import pytest

from hotspots import pipeline
from hotspots.errors import UserError


def _die():
    os._exit(3)


def _draws(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=5)


def test_a_background_job_returns_what_it_returns_here():
    job = pipeline.in_background(_draws, 7)
    assert np.array_equal(pipeline.background_result(job, "draws"), _draws(7))


def test_a_background_job_killed_on_the_way_is_a_user_error_not_a_traceback():
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: background jobs run in this process")
    with pytest.raises(UserError, match="density clusters ended before it finished"):
        pipeline.background_result(pipeline.in_background(_die), "density clusters")
