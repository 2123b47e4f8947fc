"""The map's colour maps, the briefing's series colours and its axis ticks, written without matplotlib:
against matplotlib itself (installed for ``hotspots evaluate``), an independent reference."""
from __future__ import annotations

import numpy as np
import pytest

from hotspots.publish import palette
from hotspots.publish.charts import ticks
from hotspots.publish.map import EVIDENCE_CMAPS

mpl = pytest.importorskip("matplotlib")


@pytest.mark.parametrize("name", sorted({*EVIDENCE_CMAPS.values(), "YlOrRd", "OrRd", "PuBu"}))
def test_each_colour_map_gives_matplotlibs_colours(name):
    from matplotlib import colormaps
    from matplotlib.colors import to_hex
    x = np.r_[np.linspace(0, 1, 100_001), 0.999999, 1.0]
    got, want = palette.colours(name, x), colormaps[name](x)
    assert got.shape == want.shape and np.abs(got - want).max() < 1e-12
    assert [palette.to_hex(c) for c in want[::499]] == [to_hex(c) for c in want[::499]]


def test_the_series_colours_are_matplotlibs_tab10():
    from matplotlib import colormaps
    from matplotlib.colors import to_hex
    assert palette.TAB10 == [to_hex(c) for c in colormaps["tab10"].colors]


def test_axis_ticks_are_matplotlibs_max_n_locator_ticks():
    from matplotlib.ticker import MaxNLocator
    rng = np.random.default_rng(7)
    tops = [*range(0, 3001), *rng.uniform(0, 1e7, 3000), 0.4, 1.5, 9.99, 10.01, 99.9, 1e9 + 1]
    for top in tops:
        want = MaxNLocator(nbins=5, steps=[1, 2, 5, 10], integer=True, min_n_ticks=2).tick_values(0, max(top, 1))
        want = want[(want >= 0) & (want <= max(top, 1) + 1e-9)]
        assert np.array_equal(ticks(top), want), top
    assert list(ticks(0)) == [0, 1] and list(ticks(7)) == [0, 2, 4, 6] and list(ticks(1000)) == [0, 200, 400, 600, 800, 1000]
