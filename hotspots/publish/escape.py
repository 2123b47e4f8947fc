"""Escaping of every input-derived string before it reaches HTML.

Folium renders popups, tooltips, layer names and element HTML as raw HTML and
JavaScript; template literals also run ``${...}``. One function, used by every
map module.
"""
import html


def esc(value) -> str:
    """Escape text for HTML, and neutralise ``$`` and backticks (template-literal payloads)."""
    return html.escape(str(value), quote=True).replace("$", "&#36;").replace("`", "&#96;")
