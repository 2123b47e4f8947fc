"""Self-contained Folium maps: no external references, and they work with the network cut off."""

from __future__ import annotations

import base64
import struct
import zlib

import folium
import pytest
from folium.plugins import HeatMap, MarkerCluster

from browser import chromium_available, open_offline
from hotspots.publish.offline import external_references, make_self_contained

needs_chromium = pytest.mark.skipif(
    not chromium_available(), reason="/usr/bin/chromium not installed (apt-get install -y chromium)"
)

AREA_COLOURS = {"Ward A": "#e41a1c", "Ward B": "#377eb8"}


def _png_data_uri(width: int = 2, height: int = 2) -> str:
    """A tiny opaque red RGB PNG, built by hand so the test needs no imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _square(name: str, lon: float, lat: float, size: float = 0.01) -> dict:
    ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]
    return {
        "type": "Feature",
        "properties": {"name": name},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


def build_map() -> folium.Map:
    # With tiles=None folium 0.20 drops `max_zoom` (it only goes to the tile layer), and
    # MarkerCluster then throws "Map has no maxZoom specified": pass Leaflet's option directly.
    m = folium.Map(location=[51.5, -0.1], zoom_start=13, tiles=None, maxZoom=18)
    areas = {
        "type": "FeatureCollection",
        "features": [_square("Ward A", -0.14, 51.49), _square("Ward B", -0.12, 51.49)],
    }
    folium.GeoJson(
        areas,
        name="Areas",
        style_function=lambda f: {"fillColor": AREA_COLOURS[f["properties"]["name"]], "color": "#333"},
        popup=folium.GeoJsonPopup(fields=["name"]),
    ).add_to(m)
    folium.CircleMarker([51.51, -0.06], radius=8, popup="Venue", name="Venue").add_to(m)
    cluster = MarkerCluster(name="Incidents").add_to(m)
    for i in range(3):
        folium.Marker([51.515 + i * 1e-4, -0.1], icon=folium.DivIcon(html="<b>x</b>")).add_to(cluster)
    folium.Marker([51.505, -0.08]).add_to(m)  # default icon: must still find its images
    folium.raster_layers.ImageOverlay(
        _png_data_uri(), bounds=[[51.505, -0.16], [51.51, -0.15]], name="Overlay"
    ).add_to(m)
    folium.LayerControl().add_to(m)
    return m


@pytest.fixture(scope="module")
def map_html() -> str:
    return make_self_contained(build_map().get_root().render())


@pytest.fixture
def offline_page(map_html, tmp_path):
    path = tmp_path / "map.html"
    path.write_text(map_html, encoding="utf-8")
    with open_offline(path) as (page, errors, blocked):
        page.wait_for_selector("path.leaflet-interactive")
        yield page, errors, blocked
        assert errors == []
        assert blocked == []


def drawn_paths(page) -> int:
    return page.locator("path.leaflet-interactive").count()


# --- pure HTML checks -------------------------------------------------------


def test_map_has_no_external_references(map_html):
    raw = build_map().get_root().render()
    assert external_references(raw), "folium output should reference CDNs before processing"
    assert external_references(map_html) == []
    assert "bootstrap" not in map_html.lower() and "awesome-markers" not in map_html.lower()
    assert "</script" not in map_html.lower().replace("</script>", "")
    assert 150_000 < len(map_html.encode()) < 600_000


def test_folium_shipped_plugin_is_inlined():
    m = folium.Map(tiles=None, maxZoom=18)
    HeatMap([[51.5, -0.1, 1.0]]).add_to(m)
    html = make_self_contained(m.get_root().render())
    assert external_references(html) == []
    assert "simpleheat" in html


@pytest.mark.parametrize(
    "tag",
    [
        '<script src="https://example.org/unknown.js"></script>',
        '<link rel="stylesheet" href="//example.org/unknown.css"/>',
        '<img src="https://example.org/unknown.png">',
    ],
)
def test_unknown_external_reference_raises(tag):
    m = folium.Map(tiles=None, maxZoom=18)
    html = m.get_root().render().replace("</head>", tag + "\n</head>")
    with pytest.raises(ValueError, match="example.org/unknown"):
        make_self_contained(html)


def test_external_references_ignores_tile_templates_in_js():
    html = (
        '<html><head><link rel="stylesheet" href="https://a.example/x.css">'
        '<style>.x{background:url("//b.example/y.png")}</style></head>'
        '<body><div style="background: url(http://c.example/z.png)"></div>'
        '<a href="https://d.example/">link</a><img src="data:image/png;base64,AA==">'
        '<script>L.tileLayer("https://tile.example/{z}/{x}/{y}.png")</script></body></html>'
    )
    assert external_references(html) == [
        "https://a.example/x.css",
        "//b.example/y.png",
        "http://c.example/z.png",
    ]


# --- headless Chromium, network blocked ------------------------------------


@needs_chromium
def test_map_renders_offline(offline_page):
    page, _, _ = offline_page
    assert page.evaluate("typeof window.L") == "object"
    assert drawn_paths(page) == 3  # two polygons + one circle marker
    assert page.locator(".marker-cluster").count() == 1
    assert page.evaluate(
        "[...document.querySelectorAll('img.leaflet-marker-icon, img.leaflet-image-layer')]"
        ".map(i => i.complete && i.naturalWidth > 0)"
    ) == [True, True]


@needs_chromium
def test_layer_control_toggles_layer(offline_page):
    page, _, _ = offline_page
    assert drawn_paths(page) == 3
    page.hover(".leaflet-control-layers")
    checkbox = page.locator(".leaflet-control-layers-overlays label", has_text="Areas").locator("input")
    checkbox.click()
    assert drawn_paths(page) == 1
    checkbox.click()
    assert drawn_paths(page) == 3


@needs_chromium
def test_clicking_polygon_opens_popup(offline_page):
    page, _, _ = offline_page
    page.locator(f'path.leaflet-interactive[fill="{AREA_COLOURS["Ward B"]}"]').click()
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for()
    assert "Ward B" in popup.inner_text()
