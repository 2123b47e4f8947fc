"""The map's own controls, in plain JavaScript (offline): each takes its data as JSON, never as code.

- ``ZoomLabels(map, items, css_class)``: text labels (street and building
  names) that appear once the map is zoomed in far enough, inside the layer
  they are added to (so its toggle hides them too). ``items`` are
  ``[lat, lon, text, zoom]``; the text is set with ``textContent``.
- ``WhereToAct(map, entries)``: the "where to act" panel: a ranked list of
  places, each entry ``{"group", "title", "detail", "bounds"}``; a click zooms
  the map to ``bounds`` (``[[south, west], [north, east]]``).
- ``LegendSwitch(map, pairs)``: shows each legend only while one of its layers
  is on the map; ``pairs`` are ``(element id, [layers])``.
- ``MonthSlider(overlay, urls, labels)``: a month slider (with play) that swaps
  the image of a monthly-count overlay.
- ``BuildingMarkers(markers, styles)``: the key buildings of one layer, each a
  circle marker (``at``) or a cell's square (``bounds``) with the Leaflet path
  options ``styles[style]``, its name as tooltip and its ``profile`` as popup.
- ``CellLayer(data)``: grid cells (hot and cold spots, trends) made from compact
  data, corners shared between cells and properties as columns, each popup's
  text set with ``textContent``.

Text reaches the page only through ``js_json`` and ``textContent``.
"""
from __future__ import annotations

from branca.element import MacroElement
from jinja2 import Template

from hotspots.publish.escape import js_json


class ZoomLabels(MacroElement):
    """Labels shown from their zoom on, inside the parent layer (see the module docstring)."""

    _template = Template("""
{% macro script(this, kwargs) %}
(function () {
  var map = {{ this.map }}, group = {{ this._parent.get_name() }}, items = {{ this.items }};
  var markers = items.map(function (it) {
    var el = document.createElement("div");
    el.className = {{ this.css_class }};
    el.textContent = it[2];
    return [it[3], L.marker([it[0], it[1]], {icon: L.divIcon({html: el, className: "hs-label-icon", iconSize: null}),
                                           interactive: false, keyboard: false})];
  });
  function update() {
    var z = map.getZoom();
    markers.forEach(function (m) {
      if (z >= m[0]) { if (!group.hasLayer(m[1])) group.addLayer(m[1]); }
      else if (group.hasLayer(m[1])) group.removeLayer(m[1]);
    });
  }
  map.on("zoomend", update);
  update();
})();
{% endmacro %}
""")

    def __init__(self, map_name: str, items: list, css_class: str):
        super().__init__()
        self._name = "ZoomLabels"
        self.map = map_name
        self.items = js_json(items)     # [lat, lon, text, zoom from which it shows]
        self.css_class = js_json(css_class)


class WhereToAct(MacroElement):
    """The ranked list of places to act on, each entry zooming the map to its place."""

    _template = Template("""
{% macro script(this, kwargs) %}
(function () {
  var map = {{ this.map }}, entries = {{ this.entries }};
  var box = L.control({position: "topright"});
  box.onAdd = function () {
    var div = L.DomUtil.create("div", "hs-panel hs-act");
    div.id = "hs-act";
    var details = document.createElement("details");
    details.open = true;
    var summary = document.createElement("summary");
    summary.innerHTML = "<b>Where to act</b>";
    details.appendChild(summary);
    var group = null, list = null;
    entries.forEach(function (e, i) {
      if (e.group !== group) {
        group = e.group;
        var head = document.createElement("div");
        head.className = "hs-act-group";
        head.textContent = group;
        details.appendChild(head);
        list = document.createElement("ol");
        details.appendChild(list);
      }
      var li = document.createElement("li");
      li.className = "hs-act-entry";
      li.setAttribute("data-index", i);
      var title = document.createElement("b");
      title.textContent = e.title;
      li.appendChild(title);
      var detail = document.createElement("div");
      detail.className = "hs-act-detail";
      detail.textContent = e.detail;
      li.appendChild(detail);
      li.addEventListener("click", function () { map.fitBounds(e.bounds, {maxZoom: 17, padding: [30, 30]}); });
      list.appendChild(li);
    });
    div.appendChild(details);
    L.DomEvent.disableClickPropagation(div);
    L.DomEvent.disableScrollPropagation(div);
    return div;
  };
  box.addTo(map);
})();
{% endmacro %}
""")

    def __init__(self, map_name: str, entries: list[dict]):
        super().__init__()
        self._name = "WhereToAct"
        self.map = map_name
        self.entries = js_json(entries)


class LegendSwitch(MacroElement):
    """Show each legend element only while at least one of its layers is on the map."""

    _template = Template("""
{% macro script(this, kwargs) %}
(function () {
  var map = {{ this.map }};
  var pairs = [{% for id, layers in this.pairs %}[{{ id }}, [{{ layers|join(", ") }}]]{% if not loop.last %}, {% endif %}{% endfor %}];
  function update() {
    pairs.forEach(function (p) {
      var el = document.getElementById(p[0]);
      if (!el) return;
      var on = p[1].some(function (layer) { return map.hasLayer(layer); });
      el.style.display = on ? "" : "none";
    });
  }
  map.on("overlayadd overlayremove layeradd layerremove", update);
  update();
})();
{% endmacro %}
""")

    def __init__(self, map_name: str, pairs: list[tuple[str, list]]):
        super().__init__()
        self._name = "LegendSwitch"
        self.map = map_name
        # Element ids are JSON strings; layers are the JavaScript names Folium gave them.
        self.pairs = [(js_json(eid), [layer.get_name() for layer in layers]) for eid, layers in pairs if layers]


class MonthSlider(MacroElement):
    """A month slider (with play) that swaps the image of a monthly-count overlay."""

    _template = Template("""
{% macro script(this, kwargs) %}
(function () {
  var urls = {{ this.urls }}, labels = {{ this.labels }}, overlay = {{ this.overlay }};
  var box = L.control({position: "bottomright"});
  box.onAdd = function () {
    var div = L.DomUtil.create("div", "hs-panel hs-time");
    div.id = "hs-time";
    div.innerHTML = '<b>Incidents by month</b><br><button type="button" class="hs-play">Play</button> ' +
      '<input type="range" class="hs-month" min="0" max="' + (urls.length - 1) + '" value="' + (urls.length - 1) +
      '"> <span class="hs-month-label"></span>';
    L.DomEvent.disableClickPropagation(div);
    var input = div.querySelector(".hs-month"), label = div.querySelector(".hs-month-label");
    var show = function (i) { overlay.setUrl(urls[i]); label.textContent = labels[i]; input.value = i; };
    input.addEventListener("input", function () { show(+input.value); });
    var timer = null;
    div.querySelector(".hs-play").addEventListener("click", function () {
      if (timer) { clearInterval(timer); timer = null; return; }
      timer = setInterval(function () { show((+input.value + 1) % urls.length); }, 900);
    });
    show(urls.length - 1);
    return div;
  };
  box.addTo({{ this._parent.get_name() }});
})();
{% endmacro %}
""")

    def __init__(self, overlay, urls: list[str], labels: list[str]):
        super().__init__()
        self._name = "MonthSlider"
        self.overlay = overlay.get_name()
        self.urls = js_json(urls)
        self.labels = js_json([str(t) for t in labels])   # shown with textContent


class BuildingMarkers(MacroElement):
    """The key buildings of the parent layer, made in the browser from JSON (see the module docstring).

    One element per layer, not a Folium marker, popup and tooltip per building: branca compiles each
    element's script output as a template again, which for the 391 buildings of the 10 k benchmark
    was 0.25 s of the map's 1.2 s. Each building carries its profile as text
    (``map_buildings.profile_text``) and the name of its style; the popup is laid out here, as
    ``<div class="hs-building">`` with the title, the radius table and the lines, every text set with
    ``textContent``. Sent as escaped HTML with the path options in full, a building took 1.9 kB.
    """

    _template = Template("""
{% macro script(this, kwargs) %}
(function () {
  var group = {{ this._parent.get_name() }}, styles = {{ this.styles }};
  function add(parent, tag, text) {
    var el = document.createElement(tag);
    if (text !== undefined) el.textContent = text;
    parent.appendChild(el);
    return el;
  }
  function text(parent, value) { parent.appendChild(document.createTextNode(value)); }
  function profile(p) {
    var div = document.createElement("div");
    div.className = "hs-building";
    add(div, "b", p.title); add(div, "br");
    text(div, p.kind); add(div, "br");
    text(div, "Risk: "); add(div, "b", p.risk); text(div, " \u00b7 " + p.rank);
    var table = add(div, "table"), head = table.insertRow();
    ["Radius", "n", "Weighted", "Expected", "RR (95 % Poisson CI)", "q"].forEach(function (h) { add(head, "th", h); });
    p.rows.forEach(function (r) { var tr = table.insertRow(); r.forEach(function (v) { add(tr, "td", v); }); });
    p.lines.forEach(function (l) { text(div, l[0] + ": " + l[1]); add(div, "br"); });
    if (p.note) add(div, "i", p.note);
    return div;
  }
  {{ this.markers }}.forEach(function (b) {
    var options = styles[b.style];
    var layer = b.bounds ? L.rectangle(b.bounds, options) : L.circleMarker(b.at, options);
    var tip = document.createElement("span");
    tip.textContent = b.profile.title;
    layer.bindTooltip(tip, {"sticky": true});
    layer.bindPopup(profile(b.profile), {"maxWidth": 380});
    group.addLayer(layer);
  });
})();
{% endmacro %}
""")

    def __init__(self, markers: list[dict], styles: dict):
        super().__init__()
        self._name = "BuildingMarkers"
        self.markers = js_json(markers)
        self.styles = js_json(styles)


class CellLayer(MacroElement):
    """Grid cells of the parent layer, made in the browser from compact JSON (``map.compact_cells``).

    A GeoJSON feature per cell, each with its own closed ring of coordinate pairs and its property names
    repeated, came to about 540 bytes a cell: the 10 M benchmark's 6,226 significant cells were 3.4 MB
    of its 7.2 MB map. Here each corner is sent once (cells share them) as integer millionths of a
    degree, each a difference from the one before; each cell names its corners; each property is one
    column (a column of few distinct values as those values and a code per cell). The layer made from
    them is the same: a ``L.geoJson`` of the same features and properties, styled per cell by a key, and
    popups whose text is set with ``textContent``.
    """

    _template = Template("""
{% macro script(this, kwargs) %}
(function () {
  var d = {{ this.data }};
  function column(c) {
    if (Array.isArray(c)) return c;
    if (!c.parts) return c.k.map(function (k) { return c.v[k]; });
    var parts = c.parts.map(column);
    return parts[0].map(function (_, i) { return parts.map(function (p) { return p[i]; }).filter(Boolean).join(c.join); });
  }
  function sums(deltas) { var s = 0; return deltas.map(function (v) { s += v; return s / 1e6; }); }
  var lon = sums(d.lon), lat = sums(d.lat), cols = d.columns.map(column), keys = column(d.style);
  var features = [];
  for (var i = 0; i < keys.length; i++) {
    var ring = [], props = {};
    for (var j = 0; j < d.corners; j++) { var v = d.rings[i * d.corners + j]; ring.push([lon[v], lat[v]]); }
    ring.push(ring[0]);
    d.fields.forEach(function (f, j) { props[f] = cols[j][i]; });
    features.push({type: "Feature", properties: props, geometry: {type: "Polygon", coordinates: [ring]},
                   hsStyle: keys[i]});
  }
  function popup(layer) {
    var table = document.createElement("table"), p = layer.feature.properties;
    d.fields.forEach(function (f, j) {
      var row = table.insertRow(), th = document.createElement("th");
      th.textContent = d.aliases[j];
      row.appendChild(th);
      row.insertCell().textContent = p[f] === null ? "" : String(p[f]);
    });
    var div = document.createElement("div");
    div.appendChild(table);
    return div;
  }
  L.geoJson({type: "FeatureCollection", features: features}, {
    style: function (f) { return d.styles[f.hsStyle]; },
    onEachFeature: function (f, layer) { layer.bindPopup(popup, {className: "foliumpopup"}); }
  }).addTo({{ this._parent.get_name() }});
})();
{% endmacro %}
""")

    def __init__(self, data: dict):
        super().__init__()
        self._name = "CellLayer"
        self.data = js_json(data)
