"""The printable briefing: one self-contained HTML file per tier, for the strategic needs assessment.

``build_briefing(result, tier)`` takes a pipeline ``Result`` (the public view for
the public tier) and returns HTML laid out for A4: a summary (period, sources,
incidents, data quality and coverage in one table), one section per hotspot
region (a small map, monthly counts with the trend, an hour-by-weekday table
where the sources' times allow, the evidence mix, nearby key buildings), one per
top key building (partner tier), then methods and caveats. Charts are inline
SVG (``hotspots.publish.charts``); every text from data goes through ``esc``.

The public briefing follows the public tier's rules: counts suppressed and
rounded (``tiers.public_count``), no building sections and no points, regions as
the public view has them (no anecdotal-only place), no hour table (its counts
would be too small to publish), and a region's incidents counted over windows
of 12 months or more, not by month.

``print_pdf(html_path, pdf_path)`` prints a briefing with headless Chromium
when it is installed, and says clearly when it is not.
"""
from __future__ import annotations

import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from hotspots.detect.counts import count_columns
from hotspots.detect.spacetime import NO_PATTERN, month_index, trending
from hotspots.errors import UserError
from hotspots.publish import charts
from hotspots.publish.escape import esc
from hotspots.publish.palette import TAB10
from hotspots.publish.map_buildings import Q_LEVEL
from hotspots.publish.where import (INTERVAL_NOTE, MIX_LABEL, RECORD_COLUMNS, SUPPORT_LABEL, clock, peak_window,
                                    region_records, rows_by_region)
from hotspots.tiers import PUBLIC, RULES_TEXT, SUPPRESSED, public_count
from hotspots.weight import risk

TOP_BUILDINGS = 5
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
GI_COLOURS = {3: "#b2182b", 2: "#ef8a62", 1: "#fddbc7", -1: "#d1e5f0", -2: "#67a9cf", -3: "#2166ac"}


def _count(public: bool):
    return public_count if public else (lambda v: f"{int(v):,}")


def _labelled_points(points: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The x, y and name of each labelled point (streets, key buildings); empty arrays when there are none."""
    if points is None or not len(points):
        return np.empty(0), np.empty(0), np.empty(0, dtype=object)
    return points["x"].to_numpy(float), points["y"].to_numpy(float), points["name"].to_numpy(object)


def _within(points: tuple[np.ndarray, np.ndarray, np.ndarray], minx, miny, maxx, maxy) -> np.ndarray:
    """The positions of the labelled points inside the box, in their order."""
    x, y = points[0], points[1]
    return np.flatnonzero((x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy))


class _RegionCharts:
    """Each region's map and monthly chart (``hotspots.publish.charts``), and the risk incidents they are
    drawn from (``incidents``): what every region shares is found once, here."""

    def __init__(self, result, public: bool):
        self.public = public
        # The risk incidents (the columns the sections read), their regions and what the monthly chart and
        # the hour tables count, once, not per region: for the partner view as the map's list found them
        # (``region_records``); the public view's records are placed in its own grid's cells.
        if public:
            self.records = risk(result.incidents, [c for c in RECORD_COLUMNS if c in result.incidents])
            self.rows = rows_by_region(result.grid.assign(self.records["x"].to_numpy(), self.records["y"].to_numpy()),
                                       result.cells["region_id"].to_numpy())
            self.hour, weekday, self.timed = clock(self.records)
        else:
            self.records, self.rows, self.hour, weekday, self.timed = region_records(result)
        self.slot = weekday * 8 + self.hour // 3
        source = self.records["source_id"]
        if isinstance(source.dtype, pd.CategoricalDtype):       # grouped by it, pandas orders categories so
            self.source, self.source_names = source.cat.codes.to_numpy(np.int64), list(source.cat.categories)
        else:
            self.source, names = pd.factorize(source, sort=True)
            self.source_names = list(names)
        cells = result.cells
        shown = cells[cells["gi_class"].isin(list(GI_COLOURS))]
        self.cells = shown.geometry.values
        self.colours = np.array([GI_COLOURS[int(c)] for c in shown["gi_class"]], dtype=object)
        self.streets = _labelled_points(result.streets)
        self.buildings = _labelled_points(None if public else result.buildings)
        self.months = pd.period_range(result.cfg.start, result.cfg.end - pd.Timedelta(seconds=1), freq="M")
        dated = pd.to_datetime(self.records["occurred_from"])
        self.dated = dated.notna().to_numpy()
        self.month = np.full(len(dated), -1, dtype=np.int64)
        self.month[self.dated] = month_index(dated[self.dated], self.months[0].start_time)
        self.labels = [m.strftime("%b %y") for m in self.months]
        self.palette = list(TAB10)

    def rows_of(self, reg) -> np.ndarray:
        """The positions of the risk incidents inside a region's cells."""
        return self.rows.get(str(reg.region_id), np.empty(0, dtype=np.int64))

    def hours(self, rows: np.ndarray) -> tuple[str, str]:
        """The region's peak hours (``peak_window``) and its hour-by-weekday table."""
        timed = rows[self.timed[rows]]
        return peak_window(self.hour[timed]), _hour_table(self.slot[timed])

    def region_map(self, reg) -> str:
        """A small map of a region: its cells by Gi* class, the region outline, streets and buildings."""
        view = reg.geometry.buffer(250).bounds
        in_view = shapely.intersects(self.cells, shapely.box(*view))
        streets = [(self.streets[0][k], self.streets[1][k], self.streets[2][k])
                   for k in _within(self.streets, *view)[:8]]
        near = [(self.buildings[0][k], self.buildings[1][k], self.buildings[2][k])
                for k in _within(self.buildings, *view)]
        return ("<p class=caption>Hot cells (red), cold cells (blue), region outline (black)</p>"
                + charts.region_map(view, self.cells[in_view], self.colours[in_view], reg.geometry, streets, near))

    def monthly(self, rows: np.ndarray) -> str:
        """Incidents per month, stacked by source (a source covering part of the period shows as such, not
        as a trend); the public chart rounds each month's total and hatches the suppressed ones."""
        months, month = self.months, self.month[rows]
        inside = self.dated[rows] & (month >= 0) & (month < len(months))
        if self.public:
            # Windows of 12 months at least, as the public tier counts (a month's count is a one-month
            # window: a disclosure audit): 12-month blocks from the start, a shorter last one joined to
            # the block before it.
            values = np.bincount(month[inside], minlength=len(months)).astype(float)
            starts = list(range(0, len(months), PUBLIC["min_months"]))
            if len(starts) > 1 and len(months) - starts[-1] < PUBLIC["min_months"]:
                starts.pop()
            ends = starts[1:] + [len(months)]
            totals = np.array([values[a:b].sum() for a, b in zip(starts, ends)])
            labels = [f"{self.labels[a]} to {self.labels[b - 1]}" for a, b in zip(starts, ends)]
            shown = np.array([np.nan if public_count(v) == SUPPRESSED else float(public_count(v)) for v in totals])
            hidden = np.isnan(shown)
            return ("<p class=caption>Incidents per 12 months or more (rounded to 5; hatched: fewer than 8)</p>"
                    + charts.monthly_bars(labels, {"incidents": np.nan_to_num(shown)}, {"incidents": "#b2182b"},
                                          hidden=hidden, note="fewer than 8, not shown",
                                          label="Incidents per 12 months or more"))
        # A column for each source the region's dated records come from, in the sources' order.
        source = self.source[rows]
        present = np.unique(source[self.dated[rows] & (source >= 0)])
        inside &= source >= 0
        table = np.bincount(source[inside] * len(months) + month[inside],
                            minlength=len(self.source_names) * len(months)).reshape(-1, len(months))
        series = {str(self.source_names[k]): table[k].astype(float) for k in present}
        colours = {name: self.palette[k % len(self.palette)] for k, name in enumerate(series)}
        return ("<p class=caption>Incidents per month, by source</p>"
                + charts.monthly_bars(self.labels, series, colours) + charts.legend(colours))


def _hour_table(slots: np.ndarray) -> str:
    """The hour-by-weekday table of the records with a time of day; ``slots``: day of week x 8 + hour // 3."""
    if len(slots) < 10:
        return ("<p class=note>No hour-by-weekday table: fewer than 10 of this region's records carry a time of "
                "day (police.uk dates are month-only).</p>")
    table = np.bincount(slots, minlength=56).reshape(7, 8)
    head = "".join(f"<th>{3 * h:02d}-{3 * h + 3:02d}</th>" for h in range(8))
    top = table.max() or 1
    rows = "".join(f"<tr><th>{DAYS[d]}</th>" + "".join(
        f'<td style="background:rgba(178,24,43,{v / top * 0.8:.2f})">{v}</td>' for v in table[d]) + "</tr>"
        for d in range(7))
    return (f"<p>When ({len(slots):,} records with a time of day):</p>"
            f"<table class=hours><tr><th></th>{head}</tr>{rows}</table>")


def _region_section(result, reg, public: bool, drawn: _RegionCharts) -> str:
    count = _count(public)
    inc = drawn.rows_of(reg)
    peak, when = drawn.hours(inc)
    ev = [c for c in count_columns(result.regions) if getattr(reg, c, 0)]
    mix = ", ".join(f"{c[2:].replace('_', ' ') if c.startswith('n_') else c[5:].replace('_', ' ')} "
                    f"{count(getattr(reg, c))}" for c in ev) or "none"
    name = getattr(reg, "name", "") or reg.areas
    rows = [("Incidents (risk records)", count(reg.n)), ("Cells", f"{int(reg.cells):,}"),
            ("Areas", reg.areas.replace(";", ", ")), ("Crosses a boundary", "yes" if reg.cross_boundary else "no"),
            (MIX_LABEL, mix)]
    support = getattr(reg, "support", "")
    if isinstance(support, str) and support:
        rows.append((SUPPORT_LABEL, support.replace(";", ", ")))
    if not public:
        rows.insert(1, ("Weighted incidents", f"{reg.weighted:,.1f}"))
        rows.append(("Peak hours", peak or "no times of day in these records"))
        if "trend_class" in result.cells:
            trends = result.cells.loc[result.cells["region_id"] == reg.region_id, "trend_class"]
            trends = trends[trending(trends)]
            rows.append(("Trend (monthly Gi*, Mann-Kendall)", ", ".join(
                f"{t} ({n} cells)" for t, n in trends.value_counts().items()) or NO_PATTERN))
        if result.buildings is not None and len(result.buildings):
            b = result.buildings
            near = b[shapely.intersects_xy(reg.geometry.buffer(250), b["x"].to_numpy(float), b["y"].to_numpy(float))]
            near = near.sort_values("rank", na_position="last")
            rows.append(("Key buildings within 250 m", ", ".join(
                f"{n} ({t}{', rank ' + str(int(r)) if pd.notna(r) else ''})"
                for n, t, r in zip(near["name"], near["type"], near["rank"])) or "none"))
    table = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    hours = when if not public else ""
    return (f'<section class=page><h2>{esc(reg.region_id)} {esc(name)}</h2>'
            f'<div class=row><div>{drawn.region_map(reg)}</div><div><table class=facts>{table}</table>'
            f'</div></div><div class=row><div>{drawn.monthly(inc)}</div><div>{hours}</div></div>'
            f'</section>')


def _radius_labels(buildings: pd.DataFrame) -> list[str]:
    """The buildings' radii as their columns name them ("100", "250", ...), smallest first."""
    return sorted((c[len("rr_low_"):] for c in buildings.columns if c.startswith("rr_low_")), key=float)


def _building_section(result, b: pd.Series) -> str:
    labs = _radius_labels(result.buildings)
    rows = "".join(
        f"<tr><td>{lab} m</td><td>{int(b[f'n_{lab}']):,}</td><td>{b[f'weighted_{lab}']:,.1f}</td>"
        f"<td>{b[f'expected_{lab}']:,.1f}</td>"
        f"<td>{b[f'rr_{lab}']:.2f} ({b[f'rr_low_{lab}']:.2f}-{b[f'rr_high_{lab}']:.2f})</td>"
        f"<td>{b[f'q_{lab}']:.3g}</td></tr>" for lab in labs if pd.notna(b.get(f"rr_{lab}")))
    facts = [("Type", b["type"]), ("Rank", int(b["rank"])), ("Hotspot region", b.get("region_id") or "none"),
             ("Trend", b.get("trend") or "-"), ("Peak hours", b.get("peak_hours") or b.get("time_note")
                                                or "no times of day in these records")]
    if b.get("precision_note"):
        facts.append(("Locations", b["precision_note"]))
    return (f"<section class=keep><h3>{int(b['rank'])}. {esc(b['name'])}</h3><table class=facts>"
            + "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts) + "</table>"
            # Expected is in weighted incidents (the relative risk is weighted / expected): set beside the
            # weighted count, not the records (248 records at Leicester Square weigh 839.6 against 32.7).
            # The interval is the exact Poisson one: it does not allow for overdispersion, the q does.
            "<table><tr><th>Radius</th><th>Incidents</th><th>Weighted</th><th>Expected</th>"
            "<th>Relative risk (95 % Poisson CI)</th>"
            f"<th>q</th></tr>{rows}</table></section>")


def _summary(result, public: bool) -> str:
    count = _count(public)
    acc = result.ledger.summary(result.accounting)
    cov = {s.id: ", ".join(s.coverage) if s.coverage else "derived from the data" for s in result.cfg.sources}
    rows = "".join(
        f"<tr><td>{esc(r.source_id)}</td><td>{count(r.rows_read)}</td><td>{count(r.rows_loaded)}</td>"
        f"<td>{count(r.rows_filtered)}</td><td>{count(r.rows_rejected)}</td><td>{esc(cov.get(r.source_id, ''))}</td>"
        "</tr>" for r in acc.itertuples())
    n_regions = len(result.regions)
    hot = int((result.cells["gi_class"] >= 2).sum())
    geo = []
    for sid, c in (result.extra.get("geocoding") or {}).items():
        asked = sum(c.values())
        geo.append(f"{esc(sid)}: {count(asked - c.get('unmatched', 0))} of {count(asked)} free-text or postcode "
                   "locations placed offline")
    # An agency's own run holds records that may not leave it: its briefing says so, as its map does.
    agency = (result.extra or {}).get("agency")
    audience = (f"{agency}'s own run: it includes records whose handling code keeps them within that agency. "
                "Not for sharing" if agency else f"{'public' if public else 'partner'} tier")
    return (f"<section><h1>{esc(result.cfg.name)}</h1><p class=sub>Hotspot briefing, "
            f"{esc(result.cfg.start_label)} to {esc(result.cfg.end_label)} ({esc(audience)}). "
            f"Made {esc(datetime.now().strftime('%d %B %Y'))} by hotspots.</p>"
            f"<p>{count(int((result.incidents['weight'].to_numpy() > 0).sum()))} incidents counted as risk; {hot:,} cells hot at 95 % or more "
            f"after the false discovery rate correction, in {n_regions:,} hotspot region"
            f"{'s' if n_regions != 1 else ''}.</p>"
            "<h2>Sources, data quality and coverage</h2><table><tr><th>Source</th><th>Rows read</th><th>Loaded</th>"
            f"<th>Filtered</th><th>Rejected</th><th>Coverage</th></tr>{rows}</table>"
            + ("<ul>" + "".join(f"<li>{g}</li>" for g in geo) + "</ul>" if geo else "") + "</section>")


def _methods(result, public: bool) -> str:
    p = result.parameters
    shown = {k: v for k, v in p.items() if not public or k in ("cell_size_m", "neighbour_distance_m", "fdr_alpha",
                                                                "study_area", "cell_shape", "gi_inference")}
    rows = "".join(f"<tr><th>{esc(k.replace('_', ' '))}</th><td>{esc(_text(v['value']))}</td><td>{esc(v['how'])}</td>"
                   "</tr>" for k, v in shown.items())
    caveats = ["Police.uk locations are anonymised snap points and its dates are month-only: premises-level "
               "and time-of-day statements rest on partner records only.",
               "A cell outside a source's coverage says nothing about that source: no data is not low risk.",
               "Coordinates are reprojected with pyproj, about 2 m from the Ordnance Survey transformation.",
               "Hotspots describe where incidents were recorded, not why; they are a prompt for local knowledge."]
    if public:
        caveats.insert(0, RULES_TEXT)
    return ("<section class=page><h2>Methods and caveats</h2><p>Getis-Ord Gi* on one grid across all boundaries, "
            "the cell in its own neighbourhood, Benjamini-Hochberg false discovery rate across cells; regions "
            "are joined cells hot at 95 % or more.</p><table><tr><th>Parameter</th><th>Value</th><th>How chosen"
            f"</th></tr>{rows}</table><ul>" + "".join(f"<li>{esc(c)}</li>" for c in caveats) + "</ul>"
            "<p><b>Attribution</b></p><ul>" + "".join(f"<li>{esc(a)}</li>" for a in result.cfg.attribution)
            + "</ul></section>")


def _thresholds_section(result) -> str:
    """Each partner's own levels side by side (partner tier only: thresholds.csv, as the map's methods panel)."""
    from hotspots.publish.map import _thresholds_html
    table = _thresholds_html(result)
    return f"<section class=page><h2>Each partner's \u201chigh risk\u201d</h2>{table}</section>" if table else ""


def _text(value) -> str:
    from hotspots.publish.map import _param_text
    return _param_text(value)


CSS = """<style>
@page{size:A4;margin:14mm}*{print-color-adjust:exact;-webkit-print-color-adjust:exact}
body{font:10.5pt/1.4 sans-serif;color:#222;max-width:182mm;margin:auto}
h1{font-size:18pt;margin:0 0 2mm}h2{font-size:13pt;margin:5mm 0 2mm}h3{font-size:11pt;margin:4mm 0 1mm}
.sub{color:#555;margin-top:0}.note{color:#555;font-size:9pt}
table{border-collapse:collapse;font-size:9pt;margin:2mm 0}td,th{border:1px solid #ccc;padding:1px 4px;text-align:left;
vertical-align:top}table.facts th{width:38mm;background:#f4f4f4}table.hours td{text-align:right;min-width:7mm}
.row{display:flex;gap:4mm;align-items:flex-start}.row>div{flex:1;min-width:0}svg.chart{max-width:100%;height:auto}
.caption{font-size:8pt;margin:0 0 1mm}.legend{font-size:7.5pt;margin:1mm 0}.legend span{margin-right:3mm;white-space:nowrap}
.legend i{display:inline-block;width:8px;height:8px;margin-right:1mm}
section.page{break-before:page}section.keep{break-inside:avoid}
</style>"""


def build_briefing(result, tier: str = "partner") -> str:
    """The briefing of ``result`` for ``tier`` (see the module docstring)."""
    public = tier == "public"
    parts = [_summary(result, public)]
    regions = result.regions
    if regions is not None and len(regions):
        order = regions.sort_values("rank") if "rank" in regions else regions
        drawn = _RegionCharts(result, public)
        parts += [_region_section(result, reg, public, drawn) for reg in order.itertuples()]
    else:
        parts.append("<section><h2>Hotspot regions</h2><p>No cell is hot at 95 % or more.</p></section>")
    if not public and result.buildings is not None and len(result.buildings) and "rank" in result.buildings:
        top = result.buildings[result.buildings["rank"].notna()].sort_values("rank").head(TOP_BUILDINGS)
        if len(top):
            q = top[[f"q_{lab}" for lab in _radius_labels(top)]].to_numpy(float)     # all incidents
            standing = int((np.nan_to_num(q, nan=1.0) <= Q_LEVEL).any(axis=1).sum())
            parts.append('<section class=page><h2>Key buildings with the highest relative risk</h2>'
                         f"<p>Ranked by the lower end of the interval. {esc(INTERVAL_NOTE)} "
                         f"{standing} of these {len(top)} buildings {'has' if standing == 1 else 'have'} "
                         "a q at most 0.05 at some radius.</p>"
                         + "".join(_building_section(result, b) for _, b in top.iterrows()) + "</section>")
    if not public:
        parts.append(_thresholds_section(result))
    parts.append(_methods(result, public))
    agency = (result.extra or {}).get("agency")
    title = esc(f"{result.cfg.name}: briefing ({f'{agency} only, not for sharing' if agency else tier})")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>{CSS}</head>'
            f"<body>{charts.PATTERNS}{''.join(parts)}</body></html>")


def chromium() -> str | None:
    """The Chromium executable that prints briefings to PDF, if one is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def print_pdf(html: Path, pdf: Path) -> Path:
    """Print ``html`` to ``pdf`` with headless Chromium (A4, as laid out by the briefing's CSS)."""
    exe = chromium()
    if exe is None:
        raise UserError("--pdf needs Chromium to print the briefing (apt-get install chromium); the HTML "
                        f"briefing was written ({html.name}) and prints from any browser.")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-pdf-header-footer",
           f"--print-to-pdf={pdf}", html.resolve().as_uri()]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    except (subprocess.SubprocessError, OSError) as exc:
        raise UserError(f"Chromium could not print {html.name} to PDF ({type(exc).__name__}).") from None
    if not pdf.is_file():
        raise UserError(f"Chromium wrote no PDF for {html.name}.")
    return pdf
