"""The printable briefing: self-contained, one section per region and top building, public rules kept."""
from __future__ import annotations

import json
import re
from html import escape
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
import shapely

from hotspots.publish.offline import external_references
from tests.browser import chromium_available, open_offline

needs_chromium = pytest.mark.skipif(not chromium_available(), reason="Debian's chromium is not installed")


def test_briefing_has_a_section_per_region_and_top_building(demo_out, example_result):
    html = (demo_out[2] / "briefing.html").read_text(encoding="utf-8")
    assert external_references(html) == []
    regions = example_result.regions
    for reg in regions.itertuples():
        assert f"<h2>{reg.region_id} " in html
    top = example_result.buildings.sort_values("rank").head(5)
    for b in top.itertuples():
        assert f"<h3>{int(b.rank)}. " in html
    # the summary table's figures are the manifest's
    manifest = json.loads((demo_out[2] / "manifest.json").read_text())
    read: dict[str, int] = {}
    for entry in manifest["inputs"]:                                     # one entry per file
        read[entry["source_id"]] = read.get(entry["source_id"], 0) + entry["rows_read"]
    for sid in ("city_police", "met_police", "ed_assaults", "yos_referrals", "community_intel"):
        assert f"<td>{sid}</td><td>{read[sid]:,}</td>" in html, sid
    assert html.count("<svg class=chart") == 2 * len(regions)           # a map and a chart per region


def test_public_briefing_keeps_the_public_rules(demo_out, example_result):
    html = (demo_out[2] / "briefing-public.html").read_text(encoding="utf-8")
    text = re.sub(r"<[^>]+>|data:[^\"']+", " ", html)
    for name in example_result.buildings["name"].head(20):
        assert f"{name} (" not in text                                   # no building section or list
    assert "Key buildings with the highest relative risk" not in text
    # every count in the summary table follows the rule: 0, <8 or a multiple of 5 from 10
    table = html[html.index("<table"):html.index("</table>")]
    for cell in re.findall(r"<td>([\d,<]+)</td>", table):
        assert cell == "0" or cell == "&lt;8" or cell == "<8" or int(cell.replace(",", "")) % 5 == 0, cell


@needs_chromium
@pytest.mark.parametrize("name", ["briefing.html", "briefing-public.html"])
def test_briefing_opens_and_prints_to_pdf_with_no_console_error(demo_out, name, tmp_path):
    with open_offline(demo_out[2] / name) as (page, errors, blocked):
        page.wait_for_timeout(200)
        pdf = page.pdf(format="A4")
        assert errors == [] and blocked == []
    assert pdf[:4] == b"%PDF" and len(pdf) > 20_000
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert pages >= (3 if name == "briefing.html" else 2)


class _Svg(HTMLParser):
    """The charts of a page: for each <svg class=chart>, its paths (fill, d), rects (attributes and
    title) and texts, read back as a browser would (entities decoded)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.charts, self._open, self._text = [], None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg" and a.get("class") == "chart":
            self.charts.append({"label": a.get("aria-label"), "paths": [], "rects": [], "texts": [],
                                "circles": [], "tags": []})
        elif self.charts and (tag in ("script", "svg") or any(k.startswith("on") for k in a)):
            self.charts[-1]["tags"].append(tag)           # an element or handler no chart draws
        if not self.charts:
            return
        chart = self.charts[-1]
        if tag == "path":
            chart["paths"].append(a)
        elif tag in ("rect", "circle", "text"):
            a["title"] = ""
            chart[{"rect": "rects", "circle": "circles", "text": "texts"}[tag]].append(a)
            self._open = a
            self._text = tag == "text"
        elif tag == "title":
            self._text = False

    def handle_data(self, data):
        if self._open is not None:
            self._open["body" if self._text else "title"] = self._open.get(
                "body" if self._text else "title", "") + data

    def handle_endtag(self, tag):
        if tag in ("rect", "circle", "text"):
            self._open = None


def _charts(html: str) -> list[dict]:
    parser = _Svg()
    parser.feed(html)
    return parser.charts


def test_briefing_monthly_bars_are_each_sources_risk_incidents_in_the_region(demo_out, example_result):
    """Every bar of every region's monthly chart is the count, recounted here from the incidents, of one
    source's risk incidents (weight > 0) in that region's cells in that month; and the bars' heights are
    in proportion to their counts."""
    html = (demo_out[2] / "briefing.html").read_text(encoding="utf-8")
    charts = _charts(html)
    r = example_result
    inc = r.incidents[r.incidents["weight"].to_numpy() > 0]
    month = inc["occurred_from"].dt.strftime("%b %y")
    regions = r.regions.sort_values("rank")
    checked = 0
    for k, reg in enumerate(regions.itertuples()):
        bars = charts[2 * k + 1]
        assert bars["label"] == "Incidents per month"
        cells = np.flatnonzero((r.cells["region_id"] == reg.region_id).to_numpy())
        mine = inc[np.isin(inc["cell"].to_numpy(), cells)]
        expected = mine.groupby([month[mine.index], mine["source_id"].astype(str)]).size()
        got = {}
        for rect in bars["rects"]:
            m = re.fullmatch(r"(\w{3} \d{2}): (.+) ([\d,]+)", rect["title"])
            if m:
                got[(m[1], m[2])] = (int(m[3].replace(",", "")), float(rect["height"]))
        assert {key: n for key, (n, _) in got.items()} == expected.to_dict(), reg.region_id
        per_unit = {round(h / n, 1) for n, h in got.values()}
        assert max(per_unit) - min(per_unit) <= 0.15, per_unit      # one scale for every bar (0.1 px rounding)
        checked += len(got)
    assert checked > 50


def test_briefing_region_map_draws_the_cells_in_view_by_class(demo_out, example_result):
    """Each region's map has one ring per hot or cold cell touching its view (the region's box widened
    by 250 m), filled with that class's colour, and the region's outline in black."""
    from hotspots.publish.briefing import GI_COLOURS
    html = (demo_out[2] / "briefing.html").read_text(encoding="utf-8")
    charts = _charts(html)
    r = example_result
    classed = r.cells[r.cells["gi_class"].isin(list(GI_COLOURS))]
    for k, reg in enumerate(r.regions.sort_values("rank").itertuples()):
        drawn = charts[2 * k]
        assert drawn["label"].startswith("Map of the region")
        view = shapely.box(*reg.geometry.buffer(250).bounds)
        shown = classed[shapely.intersects(classed.geometry.values, view)]
        want = shown["gi_class"].map(GI_COLOURS).value_counts().to_dict()
        got = {p["fill"]: p["d"].count("M") for p in drawn["paths"] if p["fill"] != "none"}
        assert got == want, reg.region_id
        outline = [p for p in drawn["paths"] if p["fill"] == "none"]
        assert len(outline) == 1 and outline[0]["stroke"] == "#111"
        assert outline[0]["d"].count("M") == shapely.get_num_geometries(reg.geometry)
        assert float(drawn["rects"][0]["width"]) <= 420.5 and float(drawn["rects"][0]["height"]) <= 330.5


def test_public_briefing_bars_are_twelve_month_totals_rounded_or_hatched(demo_out):
    """The public chart counts windows of 12 months at least, as the public tier does (a bar a month was a
    one-month window: a disclosure audit): the example's 24 months are two bars, each a total rounded to 5
    (10 or more), or a hatched box saying it is fewer than 8, never its count; no source names."""
    html = (demo_out[2] / "briefing-public.html").read_text(encoding="utf-8")
    bars = [c for c in _charts(html) if c["label"] == "Incidents per 12 months or more"]
    assert bars and not [c for c in _charts(html) if c["label"] == "Incidents per month"]
    seen = set()
    for chart in bars:
        titled = [rect for rect in chart["rects"] if re.fullmatch(r"\w{3} \d{2} to \w{3} \d{2}: .+", rect["title"])]
        assert [t["title"].split(":")[0] for t in titled] == ["Dec 17 to Nov 18", "Dec 18 to Nov 19"]
        assert not [r for r in chart["rects"] if re.fullmatch(r"\w{3} \d{2}: .+", r["title"])]
        for rect in titled:
            text = rect["title"].split(": ", 1)[1]
            seen.add(text.split(" ")[0])
            if text == "fewer than 8, not shown":
                assert rect["fill"] == "url(#hatch)"
            else:
                name, n = text.rsplit(" ", 1)
                assert name == "incidents" and int(n.replace(",", "")) % 5 == 0 and int(n.replace(",", "")) >= 10
    assert "incidents" in seen
    assert "Incidents per 12 months or more" in html


def test_chart_text_from_data_stays_text():
    """Street, building and source names reach the SVG as escaped text: a name that closes the SVG and
    opens a script is read back as the same name, and no element is added."""
    from hotspots.publish import charts
    evil = '</text></svg><script>alert("x")</script><svg onload=alert(1)>&amp;'
    drawn = charts.region_map((0, 0, 1000, 800), np.array([shapely.box(100, 100, 200, 200)]), np.array(["#b2182b"]),
                              shapely.box(100, 100, 200, 200), [(150, 150, evil)], [(300, 300, evil)])
    bars = charts.monthly_bars(["Jan 22", "Feb 22"], {evil: np.array([3.0, 0.0])}, {evil: "#1f77b4"})
    legend = charts.legend({evil: "#1f77b4"})
    for page in (drawn, bars, legend):
        assert "<script" not in page and "<svg onload" not in page
        assert all(chart["tags"] == [] for chart in _charts(page))
    parsed = _charts(drawn)[0]
    assert [t["body"] for t in parsed["texts"]] == [evil, evil]
    assert parsed["circles"][0]["title"] == evil
    assert _charts(bars)[0]["rects"][1]["title"] == f"Jan 22: {evil} 3"
    assert "&lt;/text&gt;&lt;/svg&gt;&lt;script&gt;" in legend


def test_monthly_bars_scale_and_ticks():
    """Heights in proportion to counts, stacked in order; the axis' ticks are round counts from 0 within the
    axis; a month with no count draws no bar."""
    from hotspots.publish import charts
    svg = charts.monthly_bars(["Jan 22", "Feb 22", "Mar 22"], {"a": np.array([10.0, 0.0, 30.0]),
                                                               "b": np.array([5.0, 2.0, 0.0])},
                              {"a": "#111111", "b": "#222222"})
    chart = _charts(svg)[0]
    rects = [r for r in chart["rects"] if r["title"]]
    assert [r["title"] for r in rects] == ["Jan 22: a 10", "Mar 22: a 30", "Jan 22: b 5", "Feb 22: b 2"]
    h = {r["title"]: float(r["height"]) for r in rects}
    assert h["Mar 22: a 30"] == pytest.approx(3 * h["Jan 22: a 10"], abs=0.2)
    assert h["Jan 22: b 5"] == pytest.approx(2.5 * h["Feb 22: b 2"], abs=0.2)
    a, b = (next(r for r in rects if r["title"] == t) for t in ("Jan 22: a 10", "Jan 22: b 5"))
    assert float(b["y"]) + float(b["height"]) == pytest.approx(float(a["y"]), abs=0.15)   # b sits on a
    ticks = [int(t["body"].replace(",", "")) for t in chart["texts"] if t["body"].replace(",", "").isdigit()]
    assert ticks[0] == 0 and max(ticks) <= 30 * 1.05 and len(ticks) >= 3 and all(t % 5 == 0 for t in ticks)
    assert list(charts.ticks(0)) == [0, 1]


def test_withheld_months_are_hatched_boxes_with_no_count():
    """A month withheld from the public chart is a hatched box of height 4 titled with the note, never its
    count; the axis reaches a round tick above the tallest bar."""
    from hotspots.publish import charts
    svg = charts.monthly_bars(["Jan 22", "Feb 22", "Mar 22"], {"incidents": np.array([10.0, 0.0, 145.0])},
                              {"incidents": "#b2182b"}, hidden=np.array([False, True, False]),
                              note="fewer than 8, not shown")
    rects = [r for r in _charts(svg)[0]["rects"] if r["title"]]
    assert [r["title"] for r in rects] == ["Jan 22: incidents 10", "Mar 22: incidents 145",
                                           "Feb 22: fewer than 8, not shown"]
    hatched = rects[2]
    assert hatched["fill"] == "url(#hatch)" and 'id="hatch"' in charts.PATTERNS
    assert float(hatched["height"]) == pytest.approx(4 / 10 * float(rects[0]["height"]), abs=0.2)
    ticks = [int(t["body"]) for t in _charts(svg)[0]["texts"] if t["body"].isdigit()]
    assert ticks == [0, 50, 100, 150]


def test_each_regions_records_are_those_a_mask_of_its_cells_picks():
    from hotspots.publish.where import rows_by_region
    rng = np.random.default_rng(2)
    region_of_cell = np.array(["", "R1", "R2", "", "R1", "R3", "R2", ""] * 25, dtype=object)
    record_cell = rng.integers(-1, len(region_of_cell), 5000)
    rows = rows_by_region(record_cell, region_of_cell)
    for reg in ("R1", "R2", "R3"):
        members = region_of_cell == reg
        want = np.flatnonzero((record_cell >= 0) & members[np.clip(record_cell, 0, None)])
        assert rows[reg].tolist() == want.tolist() and len(want) > 300
    assert "R4" not in rows and rows_by_region(np.array([], dtype=np.int64), region_of_cell)["R1"].size == 0


def test_the_clock_of_every_record_is_pandas_hour_and_weekday():
    from hotspots.publish.where import clock
    rng = np.random.default_rng(5)
    when = pd.Series(pd.to_datetime(rng.integers(-2 * 10**9, 2 * 10**9, 3000), unit="s"))   # 1906 to 2033
    when[::97] = pd.NaT
    precision = pd.Series(pd.Categorical(rng.choice(["minute", "day", "month"], 3000)))
    hour, weekday, timed = clock(pd.DataFrame({"occurred_from": when, "date_precision": precision}))
    assert timed.tolist() == ((precision.astype(str) == "minute") & when.notna()).tolist()
    assert hour[timed].tolist() == when[timed].dt.hour.tolist() and (hour[~timed] == -1).all()
    assert weekday[timed].tolist() == when[timed].dt.day_of_week.tolist() and (weekday[~timed] == -1).all()
    assert (when[timed] < pd.Timestamp("1970-01-01")).sum() > 200        # before the epoch too


def test_region_records_keep_only_the_risk_records_inside_regions_with_their_clock(example_result):
    """What the partner map's list and briefing read: the risk records in some region's cells, in
    record order, their own values; each region's rows and peak hours as counted from every record."""
    from hotspots.publish.where import RECORD_COLUMNS, clock, forget_region_records, region_records
    r = example_result
    forget_region_records(r)
    records, rows, hour, weekday, timed = region_records(r)
    inc = r.incidents[r.incidents["weight"].to_numpy() > 0]
    region = r.cells["region_id"].fillna("").to_numpy()[inc["cell"].to_numpy()]
    inside = inc[region != ""]
    assert 0 < len(records) == len(inside) < len(inc)
    cols = [c for c in RECORD_COLUMNS if c in inc]
    pd.testing.assert_frame_equal(records, inside[cols])
    all_hour, all_weekday, all_timed = clock(inc)
    for reg in r.regions["region_id"]:
        mine = np.flatnonzero(region == reg)
        assert records.index[rows[reg]].tolist() == inc.index[mine].tolist()
        assert hour[rows[reg]].tolist() == all_hour[mine].tolist()
        assert weekday[rows[reg]].tolist() == all_weekday[mine].tolist()
        assert timed[rows[reg]].tolist() == all_timed[mine].tolist()
    assert sum(len(v) for v in rows.values()) == len(records) and any(timed)
    forget_region_records(r)


def test_building_expected_is_read_against_the_weighted_count_it_was_computed_for():
    """expected_R is in weighted incidents (the study-area weighted rate x catchment), and rr_R is
    weighted_R / expected_R. Leicester Square in the example: 248 records within 100 m, weighted 839.57
    (the Met's records scaled by 24/7), expected 32.68, relative risk 25.69 = 839.57 / 32.68, not
    248 / 32.68 = 7.59. Statistics audit: the briefing and the where-to-act panel set 248 against 32.7."""
    from types import SimpleNamespace

    from hotspots.publish.briefing import _building_section
    from hotspots.publish.where import _building_entries
    row = {"building_id": "stations:631", "name": "Leicester Square", "type": "station", "x": 529980.0,
           "y": 180824.0, "rank": 1, "region_id": "", "trend": "stable", "peak_hours": "", "rank_radius_m": 100.0,
           "precision_note": "", "time_note": ""}
    n, weighted, expected = 248, 839.5704, 32.68423354792117
    rr = weighted / expected                                     # 25.687: the ratio of the two weighted figures
    row.update({"n_100": n, "weighted_100": weighted, "expected_100": expected, "rr_100": rr,
                "rr_low_100": 22.59, "rr_high_100": 29.09, "q_100": 0.075})
    table = pd.DataFrame([row])
    result = SimpleNamespace(buildings=table)
    html = _building_section(result, table.iloc[0])
    cells = re.findall(r"<td>([^<]*)</td>", html[html.index("<th>Radius</th>"):])
    head = re.findall(r"<th>([^<]*)</th>", html[html.index("<th>Radius</th>"):])
    shown = dict(zip(head, cells))
    assert shown["Incidents"] == "248"
    assert float(shown["Weighted"].replace(",", "")) == pytest.approx(839.6)
    assert float(shown["Expected"].replace(",", "")) == pytest.approx(32.7)
    ratio = float(shown["Weighted"].replace(",", "")) / float(shown["Expected"].replace(",", ""))
    assert ratio == pytest.approx(float(shown["Relative risk (95 % Poisson CI)"].split()[0]), rel=0.01)
    detail = _building_entries(result)[0]["detail"]
    numbers = [float(v.replace(",", "")) for v in re.findall(r"\d[\d,]*\.?\d*", detail)]
    assert 839.6 in numbers and 32.7 in numbers and 25.69 in numbers
    assert "839.6 weighted incidents" in detail and "against 32.7 expected" in detail


def test_a_regions_incidents_and_its_evidence_mix_say_what_each_counts(demo_out, example_result):
    """A user audit: R1 read "Incidents 511" beside an evidence mix summing to 709 (stop and search, a
    context layer, and records linked as duplicates are in the mix, not in the incidents), and "Supported
    by" a source with no record inside the region. Both labels say what they count, in the briefing and
    the map's region popup."""
    from hotspots.detect.counts import count_columns
    from hotspots.publish.where import MIX_LABEL, SUPPORT_LABEL
    reg = example_result.regions.set_index("region_id").loc["R1"]
    assert reg[count_columns(example_result.regions)].sum() > reg["n"]       # the two count different things
    html = (demo_out[2] / "briefing.html").read_text(encoding="utf-8")
    assert "<th>Incidents (risk records)</th>" in html
    assert html.count(f"<th>{MIX_LABEL}</th>") == len(example_result.regions)
    assert f"<th>{SUPPORT_LABEL.replace(chr(39), '&#x27;')}</th>" in html
    page = (demo_out[2] / "map.html").read_text(encoding="utf-8")
    assert MIX_LABEL in page and "Incidents (counted as risk)" in page


def test_poisson_intervals_are_said_not_to_be_the_test(demo_out, example_result):
    """Statistics audit: the building types' "Rate ratio (95 % CI)" (care homes 0.42 (0.39-0.46), p 0.37) and
    the top buildings' intervals (Winton Primary 7.13 (6.07-8.32), q 0.76) read as significant where their
    own tests against comparable places are not. Both now say what the interval leaves out and which figure
    is the test; the map's building types say which stand out (p at most 0.05)."""
    from hotspots.publish.briefing import TOP_BUILDINGS
    from hotspots.publish.where import INTERVAL_NOTE
    html = (demo_out[2] / "briefing.html").read_text(encoding="utf-8")
    top = example_result.buildings[example_result.buildings["rank"].notna()].sort_values("rank").head(TOP_BUILDINGS)
    q = top[[c for c in top.columns if re.fullmatch(r"q_\d+", c)]].to_numpy(float)
    assert q.shape == (TOP_BUILDINGS, 3)
    standing = int((np.nan_to_num(q, nan=1.0) <= 0.05).any(axis=1).sum())
    assert html.count(escape(INTERVAL_NOTE)) == 1
    assert f"{standing} of these {TOP_BUILDINGS} buildings" in html and standing == 0
    page = (demo_out[2] / "map.html").read_text(encoding="utf-8")
    types = example_result.building_types
    assert "Stands out (p &le; 0.05)" in page and len(types) >= 4
    said = {}
    for r in types.itertuples():
        said[r.type] = ("higher" if r.rate_ratio > 1 else "lower") if r.p_value <= 0.05 else "no"
        cell = f"<td>{r.p_value:.2g}</td><td>{said[r.type]}</td>"
        assert cell in page or escape(cell) in page or json.dumps(cell)[1:-1] in page, r.type
    # The demo: stations higher, schools lower, care and children's homes not told apart from other places.
    assert said == {"care_home": "no", "childrens_home": "no", "school": "lower", "station": "higher"}
