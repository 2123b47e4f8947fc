"""The colours of the map's images and legends and of the briefing's series, without matplotlib.

The sequential colour maps are ColorBrewer's 9-class schemes, as branca (folium's own dependency) holds
them, spread linearly over 256 colours: matplotlib builds its maps of the same names so, and gives the
same colours (tested against it). Importing matplotlib for them cost 0.12 s of every run.
"""
from __future__ import annotations

from functools import cache

import numpy as np

#: The briefing's series colours: Tableau's ten (matplotlib's "tab10", D3's category10).
TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
         "#bcbd22", "#17becf"]

N = 256


@cache
def _table(name: str) -> np.ndarray:
    """The ``N`` RGBA colours (0-1) of ColorBrewer's 9-class ``name``, linear between its classes."""
    import branca.colormap
    anchors = np.array(getattr(branca.colormap.linear, f"{name}_09").colors, dtype=float)
    at = np.linspace(0, 1, len(anchors))
    grid = np.linspace(0, 1, N)
    return np.stack([np.interp(grid, at, anchors[:, k]) for k in range(4)], axis=-1)


def colours(name: str, values) -> np.ndarray:
    """RGBA (0-1, an extra last axis) of ``values`` in [0, 1] on the colour map ``name``, as a
    matplotlib colour map gives them: ``N`` steps, each value taking the step it falls in."""
    x = np.asarray(values, dtype=float)
    index = np.clip((x * N).astype(int), 0, N - 1)
    return _table(name)[index]


def to_hex(rgba) -> str:
    """``#rrggbb`` of an RGB(A) colour (0-1), rounded as matplotlib's ``to_hex``."""
    return "#" + "".join(f"{int(round(float(v) * 255)):02x}" for v in list(rgba)[:3])
