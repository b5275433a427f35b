// The dispatcher's map: the plan's GeoJSON drawn with Leaflet; a click on a route (in the map or
// the table) highlights it. No inline script (the pages' Content-Security-Policy forbids it):
// everything the script needs is in data- attributes of #map.
(function () {
  "use strict";
  var el = document.getElementById("map");
  if (!el || !window.L) { return; }
  var map = null;
  // SVG for a plan of a few hundred features (each a DOM path: inspectable, crisp); a canvas
  // above that, where thousands of SVG paths take seconds to lay out.
  var CANVAS_ABOVE = 1000;
  function makeMap(features) {
    map = L.map(el, { preferCanvas: features > CANVAS_ABOVE, zoomSnap: 0.5 });
    el.dataset.renderer = features > CANVAS_ABOVE ? "canvas" : "svg";
    if (el.dataset.tiles) {
      L.tileLayer(el.dataset.tiles, { attribution: el.dataset.attribution || "", maxZoom: 19 }).addTo(map);
    }
  }
  document.querySelectorAll(".swatch[data-colour]").forEach(function (s) {
    s.style.background = s.dataset.colour;
  });
  var lines = {};
  var selected = null;
  function select(id) {
    if (selected !== null && lines[selected]) { lines[selected].setStyle({ weight: 3, opacity: 0.75 }); }
    document.querySelectorAll("#routes tr.on").forEach(function (r) { r.classList.remove("on"); });
    selected = id;
    if (lines[id]) { lines[id].setStyle({ weight: 7, opacity: 1 }).bringToFront(); }
    var row = document.querySelector('#routes tr[data-route="' + id + '"]');
    if (row) { row.classList.add("on"); }
  }
  var tz = el.dataset.tz;
  function clock(iso) {
    try {
      return new Date(iso).toLocaleTimeString([], { timeZone: tz, hour: "2-digit", minute: "2-digit" });
    } catch (e) { return iso; }
  }
  function text(s) { var d = document.createElement("div"); d.textContent = s == null ? "" : String(s); return d.innerHTML; }
  fetch(el.dataset.geojson, { credentials: "same-origin" })
    .then(function (r) { return r.json(); })
    .then(function (data) {
      makeMap(data.features.length);
      var layer = L.geoJSON(data, {
        style: function (f) {
          return { color: f.properties.colour || "#555", weight: 3, opacity: 0.75 };
        },
        pointToLayer: function (f, latlng) {
          var p = f.properties;
          if (p.kind === "unassigned") {
            return L.circleMarker(latlng, { radius: 7, color: "#b00020", weight: 2, fillColor: "#fff", fillOpacity: 1 });
          }
          return L.circleMarker(latlng, { radius: 5, color: p.colour, weight: 1, fillColor: p.colour, fillOpacity: 0.9 });
        },
        onEachFeature: function (f, lyr) {
          var p = f.properties;
          if (p.kind === "route") {
            lines[p.route] = lyr;
            lyr.on("click", function () { select(p.route); });
            lyr.bindTooltip(text(p.vehicle));
          } else if (p.kind === "stop") {
            lyr.bindPopup(text(p.vehicle) + " #" + p.seq + "<br>" + text(p.name) + " (" + text(p.stop) + ")<br>ETA " + text(clock(p.eta)));
            lyr.on("click", function () { select(p.route); });
          } else {
            lyr.bindPopup(text(el.dataset.unassignedLabel) + ": " + text(p.name) + " (" + text(p.stop) + ")<br>" + text(p.reason));
          }
        }
      }).addTo(map);
      var bounds = layer.getBounds();
      if (bounds.isValid()) { map.fitBounds(bounds, { padding: [20, 20] }); } else { map.setView([31.23, 121.47], 11); }
      el.dataset.featuresDrawn = String(layer.getLayers().length);
      el.dataset.routesDrawn = String(Object.keys(lines).length);
    });
  document.querySelectorAll("#routes tr[data-route]").forEach(function (row) {
    function pick() { select(Number(row.dataset.route)); }
    row.addEventListener("click", pick);
    row.addEventListener("keydown", function (e) { if (e.key === "Enter") { pick(); } });
  });
})();
