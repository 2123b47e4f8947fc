"""The briefing's charts as inline SVG: a region's small map and its monthly bars.

Each function takes plain arrays (coordinates in EPSG:27700 metres, counts) and
returns one ``<svg>`` element to put in the page as it is: vector, so a printed
briefing stays sharp, and each bar carries its figure as a ``<title>`` (shown on
hover, read by screen readers). Every text from data (street, building and
source names) goes through ``esc``; no colour or number comes from a file
unchecked (colours are chosen here, numbers are formatted from floats).

Written here rather than drawn by matplotlib: matplotlib took 6 s of the 10 k run
for 21 regions' two charts (its text layout and PNG encoding), these take a few
milliseconds each. The colours come from ``palette``, the ticks from ``ticks``: no matplotlib in a run.
"""
from __future__ import annotations

import math

import numpy as np
import shapely

from hotspots.publish.escape import esc

MAP_SIZE = (420.0, 330.0)        # the largest the map may be, in CSS pixels; the region sets its shape
BAR_SIZE = (460.0, 200.0)        # the monthly chart
BAR_MARGIN = (40.0, 8.0, 8.0, 22.0)   # left, right, top, bottom: room for the axes' labels
HATCHED = "#999"
CELL_EDGE = "#888"
HALO = 'stroke="#fff" stroke-width="3" stroke-opacity="0.8" paint-order="stroke"'   # labels legible on any fill


def _svg(width: float, height: float, body: str, label: str) -> str:
    return (f'<svg class=chart width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.1f} {height:.1f}" '
            f'role="img" aria-label="{esc(label)}" font-family="sans-serif">{body}</svg>')


def _path(geoms, px) -> str:
    """SVG path data of the exterior rings of ``geoms`` (polygons or multipolygons), one closed subpath
    a ring, placed by ``px`` (metres to pixels)."""
    xy, ring = shapely.get_coordinates(shapely.get_exterior_ring(shapely.get_parts(geoms)), return_index=True)
    x, y = px(xy[:, 0], xy[:, 1])
    pts = [f"{a:.1f} {b:.1f}" for a, b in zip(x, y)]
    bounds = [*np.flatnonzero(np.r_[True, ring[1:] != ring[:-1]]), len(pts)] if len(pts) else [0]
    return "".join("M" + "L".join(pts[a:b]) + "Z" for a, b in zip(bounds[:-1], bounds[1:]))


def _fit(x: float, text: str, width: float) -> float:
    """The centre of a label near ``x`` that keeps it inside the map (the SVG cuts off what passes its
    edge), from its width at about 0.6 of the font size (11 px) a character."""
    half = min(0.6 * 11 * len(str(text)) / 2 + 2, width / 2)
    return min(max(float(x), half), width - half)


def region_map(view: tuple[float, float, float, float], cells: np.ndarray, colours: np.ndarray,
               outline, labels: list[tuple[float, float, str]] = (),
               buildings: list[tuple[float, float, str]] = ()) -> str:
    """A map of one box: ``cells`` (shapely polygons) filled with ``colours`` (one per cell, ``#rrggbb``),
    the ``outline`` geometry's rings in black, ``labels`` (x, y, text: street names) in italics and
    ``buildings`` (x, y, name) as dots with bold names. ``view`` is (minx, miny, maxx, maxy) in metres;
    what falls outside it is cut off. North is up and a metre is the same length both ways."""
    minx, miny, maxx, maxy = view
    scale = min(MAP_SIZE[0] / max(maxx - minx, 1e-9), MAP_SIZE[1] / max(maxy - miny, 1e-9))
    width, height = (maxx - minx) * scale, (maxy - miny) * scale

    def px(x, y):
        return (np.asarray(x, float) - minx) * scale, (maxy - np.asarray(y, float)) * scale

    body = [f'<rect width="{width:.1f}" height="{height:.1f}" fill="#fff"/>']
    cells, colours = np.asarray(cells, dtype=object), np.asarray(colours, dtype=object)
    # One path per colour, a ring per cell: a few elements rather than one per cell.
    for colour in dict.fromkeys(colours):
        body.append(f'<path d="{_path(cells[colours == colour], px)}" fill="{colour}" stroke="{CELL_EDGE}" '
                    'stroke-width="0.4"/>')
    outline = _path(outline, px)
    if outline:
        body.append(f'<path d="{outline}" fill="none" stroke="#111" stroke-width="2"/>')
    for lx, ly, text in labels:
        x, y = px(lx, ly)
        body.append(f'<text x="{_fit(x, text, width):.1f}" y="{y:.1f}" font-size="11" font-style="italic" '
                    f'fill="#333" text-anchor="middle" {HALO}>{esc(text)}</text>')
    for bx, by, name in buildings:
        x, y = px(bx, by)
        body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="#222"><title>{esc(name)}</title></circle>')
    for bx, by, name in buildings[:6]:
        x, y = px(bx, by)
        body.append(f'<text x="{_fit(x, name, width):.1f}" y="{y - 6:.1f}" font-size="11" font-weight="bold" '
                    f'text-anchor="middle" {HALO}>{esc(name)}</text>')
    body.append(f'<rect width="{width:.1f}" height="{height:.1f}" fill="none" stroke="#000" stroke-width="1"/>')
    return _svg(width, height, "".join(body), "Map of the region: hot and cold cells, the region's outline, "
                                              "streets and key buildings")


def ticks(top: float, most: int = 5) -> np.ndarray:
    """Round counts from 0 to ``top`` for an axis: steps of 1, 2 or 5 times a power of ten, whole numbers,
    the smallest giving at most ``most`` steps up to ``top`` (the ticks matplotlib's MaxNLocator gives with
    nbins=most, steps 1, 2, 5, 10, integer and 2 ticks at least: the same on 40,000 tops, tested)."""
    top = max(float(top), 1.0)
    scale = 10.0 ** math.floor(math.log10(top / most))
    steps = [s * scale for s in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20)]
    steps = [s for s in steps if s < 1 or abs(s - round(s)) < 0.001]
    first = next(k for k, s in enumerate(steps) if s >= top / most)
    for step in steps[:first + 1][::-1]:        # the smallest step large enough, smaller if it gives one tick
        step = max(1.0, step)
        n = math.floor(top / step + 1e-9) + 1
        if n >= 2:
            break
    return np.arange(n) * step


def monthly_bars(months: list[str], series: dict[str, np.ndarray], colours: dict[str, str],
                 hidden: np.ndarray | None = None, note: str = "", label: str = "Incidents per month") -> str:
    """Bars of counts per month (or per period: ``months`` are the bars' labels), stacked in the order of
    ``series`` (name -> one count per bar), each bar a rectangle with its label, name and count as its
    title. ``hidden`` (one flag per bar) draws a hatched box of height 4 where a count is withheld, its
    title ``note``. Labels: about eight. ``label`` names the chart for screen readers."""
    left, right, top_m, bottom_m = BAR_MARGIN
    width, height = BAR_SIZE
    n = len(months)
    stacked = np.zeros(n)
    for values in series.values():
        stacked = stacked + np.asarray(values, float)
    hidden = np.zeros(n, bool) if hidden is None else np.asarray(hidden, bool)
    top = max(stacked.max(initial=0), 4 if hidden.any() else 0)
    y_max = top * 1.05 if top > 0 else 1.0
    # As matplotlib's bars: width 0.8 of a month, 5 % of the span as margin either side.
    x0 = -0.4 - 0.05 * (n - 0.2)
    x1 = n - 0.6 + 0.05 * (n - 0.2)
    plot_w, plot_h = width - left - right, height - top_m - bottom_m

    def sx(v):
        return left + (np.asarray(v, float) - x0) / (x1 - x0) * plot_w

    def sy(v):
        return top_m + plot_h - np.asarray(v, float) / y_max * plot_h

    body = [f'<rect x="{left:.1f}" y="{top_m:.1f}" width="{plot_w:.1f}" height="{plot_h:.1f}" fill="#fff"/>']
    for t in ticks(y_max):
        y = float(sy(t))
        body.append(f'<line x1="{left:.1f}" x2="{left + plot_w:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e4e4"/>'
                    f'<text x="{left - 3:.1f}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{int(t):,}</text>')
    bar_w = 0.8 / (x1 - x0) * plot_w
    bottom = np.zeros(n)
    for name, values in series.items():
        values = np.asarray(values, float)
        for k in np.flatnonzero(values > 0):
            y_top, y_bottom = float(sy(bottom[k] + values[k])), float(sy(bottom[k]))
            body.append(f'<rect x="{float(sx(k - 0.4)):.1f}" y="{y_top:.1f}" width="{bar_w:.1f}" '
                        f'height="{y_bottom - y_top:.1f}" fill="{colours[name]}"><title>{esc(months[k])}: '
                        f'{esc(name)} {int(values[k]):,}</title></rect>')
        bottom += values
    for k in np.flatnonzero(hidden):
        y_top, y_bottom = float(sy(4)), float(sy(0))
        body.append(f'<rect x="{float(sx(k - 0.4)):.1f}" y="{y_top:.1f}" width="{bar_w:.1f}" '
                    f'height="{y_bottom - y_top:.1f}" fill="url(#hatch)" stroke="{HATCHED}" stroke-width="0.8">'
                    f'<title>{esc(months[k])}: {esc(note)}</title></rect>')
    step = max(1, n // 8)
    for k in range(0, n, step):
        body.append(f'<text x="{float(sx(k)):.1f}" y="{top_m + plot_h + 15:.1f}" font-size="11" '
                    f'text-anchor="middle">{esc(months[k])}</text>')
    body.append(f'<rect x="{left:.1f}" y="{top_m:.1f}" width="{plot_w:.1f}" height="{plot_h:.1f}" fill="none" '
                f'stroke="#000" stroke-width="0.8"/>')
    return _svg(width, height, "".join(body), label)


def legend(colours: dict[str, str]) -> str:
    """An HTML legend of the series' colours (names escaped)."""
    return "<p class=legend>" + "".join(
        f'<span><i style="background:{c}"></i>{esc(name)}</span>' for name, c in colours.items()) + "</p>"


# The hatching of withheld months, defined once in the page for every chart to use.
PATTERNS = ('<svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>'
            f'<pattern id="hatch" width="5" height="5" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
            f'<line x1="0" y1="0" x2="0" y2="5" stroke="{HATCHED}" stroke-width="1.2"/></pattern></defs></svg>')
