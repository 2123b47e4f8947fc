"""The printable briefing: self-contained, one section per region and top building, public rules kept."""
from __future__ import annotations

import re

import pytest

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
    import json
    manifest = json.loads((demo_out[2] / "manifest.json").read_text())
    read: dict[str, int] = {}
    for entry in manifest["inputs"]:                                     # one entry per file
        read[entry["source_id"]] = read.get(entry["source_id"], 0) + entry["rows_read"]
    for sid in ("city_police", "met_police", "ed_assaults", "yos_referrals", "community_intel"):
        assert f"<td>{sid}</td><td>{read[sid]:,}</td>" in html, sid
    assert html.count("data:image/png;base64,") >= 2 * len(regions)      # a map and a chart per region


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
