"""The one rendering path for text from data into HTML: escaped text, JSON in scripts, never template source.

Every string that comes from an input (area names, building names and types,
source ids, the study name, legal basis, attribution, categories) reaches the
map as data, through these helpers and nothing else:

- ``esc(value)``: text for HTML (element content or a quoted attribute). Besides
  ``& < > " '`` it turns into character references the characters that mean
  something to the layers Folium puts text through: ``$`` and backtick
  (JavaScript template literals, where Folium places popups and tooltips),
  backslash (an escape in a template literal: ``\\2`` is a syntax error),
  ``{`` and ``}`` (Jinja2 syntax, should text ever reach a template again), and
  the Unicode line and paragraph separators.
- ``js_json(value)``: a value as a JavaScript literal inside ``<script>``: JSON
  with ``<``, ``>``, ``&``, ``'`` and the separators as ``\\u`` escapes, so no
  text can close the script or open a comment, and no Jinja2 opener (branca
  renders a MacroElement's script output a second time, as a template).
- ``HtmlBlock(html)``: a branca element that puts already-escaped HTML into
  the page as the *value* of a template variable. ``folium.Element(text)``
  treats its argument as Jinja2 template source, which ran code from data
  (issue 9): never use it for anything built from data.
- ``SafePopup(html)`` and ``SafeTooltip(text)``: a layer's popup and tooltip,
  their content JSON-encoded in the script (Folium's ``Popup`` and ``Tooltip``
  put theirs into JavaScript template literals).

GeoJSON layers carry their text as escaped feature properties (``tojson`` in
Folium's templates) and show it with ``GeoJsonPopup`` / ``GeoJsonTooltip``.
The cell layers (``map_controls.CellLayer``) carry theirs unescaped through
``js_json`` and show it with ``textContent``.
"""
from __future__ import annotations

import html
import json
import re

from branca.element import Element, MacroElement
from jinja2 import Template

_ENTITIES = str.maketrans({"$": "&#36;", "`": "&#96;", "\\": "&#92;", "{": "&#123;", "}": "&#125;",
                           "\u2028": "&#8232;", "\u2029": "&#8233;"})
_JS = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "'": "\\u0027",
                     "\u2028": "\\u2028", "\u2029": "\\u2029"})


def esc(value) -> str:
    """``value`` as inert HTML text (see the module docstring for what is escaped)."""
    return html.escape(str(value), quote=True).translate(_ENTITIES)


def short(value, limit: int = 80) -> str:
    """``value`` as text of at most ``limit`` characters (an ellipsis where cut): for layer names and
    labels, where a partner's 3,000-character name would cover the map."""
    text = str(value)
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


# Branca renders a MacroElement's script, then parses the result again as a Jinja2 template: data in
# it must hold no Jinja2 opener. In JSON a "{" followed by "{", "%" or "#" can only be inside a string
# (a structural brace is followed by '"' or '}'), where the escape \u007b means the same character.
_JINJA_OPENER = re.compile(r"\{(?=[{%#])")


def js_json(value) -> str:
    """``value`` as a JSON literal that is safe inside an inline ``<script>`` (and inside a template
    that branca renders a second time)."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False).translate(_JS)
    return _JINJA_OPENER.sub(r"\\u007b", text)


_LAST_NEWLINE = re.compile(r"(\r\n|\r|\n)\Z")


class HtmlBlock(Element):
    """Already-escaped HTML placed in the page as data (a template variable, not template source)."""

    _template = Template("{{ this.markup }}")

    def __init__(self, markup: str):
        super().__init__()
        self._name = "HtmlBlock"
        self.markup = markup


class _Rendered(Element):
    """Markup a template has already rendered, placed in the page as it is (less one line break at the
    end, which a second pass through Jinja would have taken off)."""

    def __init__(self, markup: str):
        super().__init__()
        self._name = "Rendered"
        self.markup = _LAST_NEWLINE.sub("", markup, count=1)

    def render(self, **kwargs) -> str:
        return self.markup


def _render_macros_once(self, **kwargs) -> None:
    """``MacroElement.render`` that puts each macro's output (header, html, script) into the figure as
    text. branca's own wraps that output in ``Element(text)``, which compiles it as a Jinja template and
    renders it a second time: a second pass over text that holds data, and 0.4 s (10 k incidents) to
    0.9 s (1 M) of compiling megabytes of GeoJSON."""
    figure = self.get_root()
    macros = self._template.module.__dict__
    for part in ("header", "html", "script"):
        if macros.get(part) is not None:
            getattr(figure, part).add_child(_Rendered(macros[part](self, kwargs)), name=self.get_name())
    for element in self._children.values():
        element.render(**kwargs)


def render_once(figure) -> str:
    """``figure.render()``, each element's template rendered once (``_render_macros_once``); the same
    page as branca's two passes when no text from data holds template syntax, which ``esc`` and
    ``js_json`` already make sure of."""
    saved = MacroElement.render
    MacroElement.render = _render_macros_once
    try:
        return figure.render()
    finally:
        MacroElement.render = saved


class SafePopup(MacroElement):
    """A popup for its parent layer whose content is escaped HTML carried as a JSON string.

    Folium's ``Popup`` puts its HTML into a JavaScript template literal, where
    ``${...}`` runs and a backslash can break the script; here the content is
    data, set with ``innerHTML`` from a JSON-encoded string.
    """

    _template = Template("""
{% macro script(this, kwargs) %}
(function () {
  var div = document.createElement("div");
  div.innerHTML = {{ this.markup }};
  {{ this._parent.get_name() }}.bindPopup(div, {{ this.options }});
})();
{% endmacro %}
""")

    def __init__(self, markup: str, max_width: int = 380):
        super().__init__()
        self._name = "SafePopup"
        self.markup = js_json(markup)
        self.options = js_json({"maxWidth": max_width})


class SafeTooltip(MacroElement):
    """A tooltip for its parent layer: the text escaped, carried as a JSON string."""

    _template = Template("""
{% macro script(this, kwargs) %}
{{ this._parent.get_name() }}.bindTooltip({{ this.text }}, {"sticky": true});
{% endmacro %}
""")

    def __init__(self, text: str):
        super().__init__()
        self._name = "SafeTooltip"
        self.text = js_json(esc(text))
