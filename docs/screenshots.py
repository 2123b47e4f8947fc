"""Retake the README's screenshots from a demo run: ``python docs/screenshots.py hotspots-demo``.

Opens each map in headless Chromium with the network blocked (``tests/browser.py``), and prints the
partner briefing to PDF and its second page to PNG (needs poppler's ``pdftoppm``)."""
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.browser import open_offline  # noqa: E402

DOCS = ROOT / "docs"


def view(page, lat: float, lon: float, zoom: int) -> None:
    page.evaluate(f"() => {{ const m = Object.values(window).find(v => v instanceof L.Map); "
                  f"m.setView([{lat}, {lon}], {zoom}, {{animate: false}}); }}")
    page.wait_for_timeout(500)


def main(out: Path) -> None:
    with open_offline(out / "map.html") as (page, errors, blocked):
        page.set_viewport_size({"width": 1400, "height": 900})
        page.wait_for_timeout(800)
        page.screenshot(path=str(DOCS / "demo-map.png"))
        view(page, 51.5170, -0.0790, 16)   # region R1, Liverpool Street
        page.screenshot(path=str(DOCS / "demo-map-streets.png"))
        assert errors == [] and blocked == [], (errors, blocked)
    with open_offline(out / "map-public.html") as (page, errors, blocked):
        page.set_viewport_size({"width": 1400, "height": 900})
        page.wait_for_timeout(800)
        page.screenshot(path=str(DOCS / "demo-map-public.png"))
        assert errors == [] and blocked == [], (errors, blocked)
    with tempfile.TemporaryDirectory() as tmp, open_offline(out / "briefing.html") as (page, errors, blocked):
        pdf = Path(tmp) / "briefing.pdf"
        pdf.write_bytes(page.pdf(format="A4"))
        subprocess.run(["pdftoppm", "-r", "80", "-png", "-f", "2", "-l", "2", "-singlefile", str(pdf),
                        str(DOCS / "briefing-page")], check=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
