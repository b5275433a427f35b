// The map beside a site's form: tap to place the point (fills Latitude and Longitude), or type
// the coordinates and the marker follows. No tiles unless GROUPBUY_TILE_URL is set.
(function () {
  var el = document.getElementById("map");
  if (!el || !window.L) return;
  var lat = document.querySelector("input[name=lat]");
  var lon = document.querySelector("input[name=lon]");
  var points = JSON.parse(el.dataset.points || "[]");
  var map = L.map(el, { attributionControl: false });
  if (el.dataset.tiles) L.tileLayer(el.dataset.tiles, { maxZoom: 19 }).addTo(map);
  points.forEach(function (p) {
    L.circleMarker([p[0], p[1]], { radius: 5, color: "#555" }).bindTooltip(p[2]).addTo(map);
  });
  var marker = null;
  function here() {
    var a = parseFloat(lat.value), b = parseFloat(lon.value);
    return isFinite(a) && isFinite(b) && Math.abs(a) <= 90 && Math.abs(b) <= 180 ? [a, b] : null;
  }
  function place(at) {
    if (!at) return;
    if (marker) marker.setLatLng(at);
    else marker = L.marker(at).addTo(map);
  }
  var start = here() || (points.length ? [points[0][0], points[0][1]] : [31.23, 121.47]);
  map.setView(start, 12);
  place(here());
  map.on("click", function (e) {
    lat.value = e.latlng.lat.toFixed(6);
    lon.value = e.latlng.lng.toFixed(6);
    place([e.latlng.lat, e.latlng.lng]);
  });
  [lat, lon].forEach(function (input) {
    input.addEventListener("change", function () { place(here()); });
  });
})();
