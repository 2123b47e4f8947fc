"""Make Folium HTML maps self-contained so they open with no network at all.

Folium pulls Leaflet, jQuery, Bootstrap, Font Awesome and plugin code from
public CDNs. Police and council networks often block CDNs, or have no
internet at all, and a map that depends on them shows up as a blank page.
This module inlines the JavaScript and CSS from installed Python packages
(the XStatic packages and Folium's own ``templates`` folder), turns CSS
images into ``data:`` URIs and drops the Bootstrap / Font Awesome /
awesome-markers assets we never use (our maps use CircleMarker and DivIcon).
Anything it cannot resolve raises ``ValueError``: we never ship a map that
silently needs a network.
"""

from __future__ import annotations

import base64
import mimetypes
import re
from functools import cache
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import xstatic.pkg.jquery
import xstatic.pkg.leaflet
import xstatic.pkg.leaflet_markercluster

__all__ = ["make_self_contained", "external_references"]

_EXTERNAL = re.compile(r"^\s*(?:https?:)?//", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*(['"]?)(.*?)\1\s*\)""", re.IGNORECASE)
_SOURCE_MAP = re.compile(r"^\s*(?://|/\*)# sourceMappingURL=.*$", re.MULTILINE)
# Folium defaults we do not need (Bootstrap, Font Awesome, awesome-markers).
_DROPPED = re.compile(r"bootstrap|fontawesome|font-awesome|awesome-markers|awesome\.rotate", re.I)
_JQUERY = re.compile(r"jquery(?:-\d+(?:\.\d+)*)?(?:\.min)?\.js", re.IGNORECASE)
_LEAFLET_DIR = Path(xstatic.pkg.leaflet.BASE_DIR)


def _is_external(url: str) -> bool:
    return bool(_EXTERNAL.match(url))


@cache
def _asset_index() -> dict[str, Path]:
    """Map a file name (as found at the end of a CDN URL) to a local file."""
    folders = [
        Path(xstatic.pkg.leaflet.BASE_DIR),
        Path(xstatic.pkg.leaflet_markercluster.BASE_DIR),
        Path(str(resources.files("folium") / "templates")),
    ]
    index = {
        path.name: path
        for folder in folders
        for path in sorted(folder.iterdir())
        if path.suffix in (".js", ".css")
    }
    index["jquery.min.js"] = Path(xstatic.pkg.jquery.BASE_DIR) / "jquery.min.js"
    return index


def _resolve(url: str) -> Path | None:
    """Local file for a CDN URL, or None when the URL is unknown."""
    name = url.split("?", 1)[0].split("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    if _JQUERY.fullmatch(name):
        name = "jquery.min.js"
    return _asset_index().get(name)


def _data_uri(path: Path) -> str:
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _inline_css(path: Path) -> str:
    def embed(match: re.Match) -> str:
        target = match.group(2)
        if target.startswith(("data:", "#")) or _is_external(target):
            return match.group(0)  # external ones are reported by the final guard
        image = path.parent / target.split("?", 1)[0].split("#", 1)[0]
        if not image.is_file():
            raise ValueError(f"{path.name} refers to {target!r}, not found in {path.parent}")
        return f'url("{_data_uri(image)}")'

    css = _CSS_URL.sub(embed, _SOURCE_MAP.sub("", path.read_text(encoding="utf-8")))
    return "<style>\n" + re.sub(r"</(style)", r"<\\/\1", css, flags=re.I) + "\n</style>"


def _default_icon_js() -> str:
    """Point L.Icon.Default at data URIs: its CSS-based path detection fails once inlined."""
    images = _LEAFLET_DIR / "images"
    return (
        'L.Icon.Default.imagePath = "";\n'
        "L.Icon.Default.mergeOptions({"
        f'iconUrl: "{_data_uri(images / "marker-icon.png")}", '
        f'iconRetinaUrl: "{_data_uri(images / "marker-icon-2x.png")}", '
        f'shadowUrl: "{_data_uri(images / "marker-shadow.png")}"}});'
    )


def _inline_js(path: Path) -> str:
    js = _SOURCE_MAP.sub("", path.read_text(encoding="utf-8"))
    if path == _LEAFLET_DIR / "leaflet.js":
        js += "\n" + _default_icon_js()
    return "<script>\n" + re.sub(r"</(script)", r"<\\/\1", js, flags=re.I) + "\n</script>"


class _Scanner(HTMLParser):
    """Collect tags with their character offsets, plus CSS text, outside of scripts."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=False)
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", html)]
        self.tags: list[tuple[int, int, str, dict[str, str]]] = []  # (start, end, tag, attrs)
        self.css: list[str] = []
        self._in_style = False
        self.feed(html)
        self.close()

    def _offset(self) -> int:
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def handle_starttag(self, tag, attrs):
        start = self._offset()
        end = start + len(self.get_starttag_text())
        self.tags.append((start, end, tag, {k: v or "" for k, v in attrs}))
        self._in_style = tag == "style"

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag):
        start = self._offset()
        self.tags.append((start, start, "/" + tag, {}))
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.css.append(data)


def external_references(html: str) -> list[str]:
    """Return every http(s) or protocol-relative URL the page would load.

    Looks at ``src``/``href`` attributes in the markup and at CSS ``url(...)``
    in ``<style>`` blocks and ``style`` attributes. JavaScript is not scanned,
    so a user-configured tile URL template in ``L.tileLayer("https://...")``
    is allowed. ``<a>``/``<area>`` links are navigation, not loads, and are
    ignored. An empty list means the page needs no network.
    """
    scanner = _Scanner(html)
    found = []
    for _, _, tag, attrs in scanner.tags:
        for name, value in attrs.items():
            if name in ("src", "xlink:href") or (name == "href" and tag not in ("a", "area")):
                found.append(value)
        scanner.css.append(attrs.get("style", ""))
    found += [m.group(2) for css in scanner.css for m in _CSS_URL.finditer(css)]
    return [url.strip() for url in found if _is_external(url)]


def make_self_contained(html: str) -> str:
    """Return ``html`` (as rendered by Folium) with every external asset inlined.

    ``<script src>`` and ``<link rel="stylesheet">`` pointing at a CDN are
    replaced with inline ``<script>``/``<style>`` built from the installed
    XStatic packages and Folium's ``templates`` folder; CSS images become
    ``data:`` URIs. Bootstrap, Font Awesome and awesome-markers are dropped.
    Raises ``ValueError`` naming the URL(s) if anything external is left.
    """
    tags = _Scanner(html).tags
    edits: list[tuple[int, int, str]] = []
    for i, (start, end, tag, attrs) in enumerate(tags):
        if tag == "script" and _is_external(attrs.get("src", "")):
            url = attrs["src"]
            close = next(t for t in tags[i + 1 :] if t[2] == "/script")
            end = html.index(">", close[0]) + 1
        elif tag == "link" and _is_external(attrs.get("href", "")):
            url = attrs["href"]
            if "stylesheet" not in attrs.get("rel", "").lower().split():
                raise ValueError(f"Cannot make map self-contained: external <link> {url}")
        else:
            continue
        if _DROPPED.search(url):
            edits.append((start, end, ""))
            continue
        path = _resolve(url)
        if path is None or path.suffix != (".js" if tag == "script" else ".css"):
            raise ValueError(f"Cannot make map self-contained: no local copy of {url}")
        edits.append((start, end, _inline_js(path) if tag == "script" else _inline_css(path)))

    for start, end, text in reversed(edits):
        html = html[:start] + text + html[end:]
    remaining = external_references(html)
    if remaining:
        raise ValueError(f"Cannot make map self-contained: external references {remaining}")
    return html
