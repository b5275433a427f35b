"""Matrices: the vectorised great-circle builder, the OSRM table client, the per-wave cache."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import numpy as np
import pytest

from routing import (
    UNREACHABLE,
    Depot,
    LatLon,
    Load,
    MatrixCache,
    OsrmError,
    OsrmTable,
    Problem,
    Stop,
    TempZone,
    UnassignedReason,
    Vehicle,
    build_matrices,
    geodesic_m,
    plan_routes,
)
from routing.matrix import GreatCircleSource, great_circle_matrix_m


def _points(n: int, seed: int = 0) -> list[LatLon]:
    rng = np.random.default_rng(seed)
    return [LatLon(31.0 + a, 121.0 + b) for a, b in rng.uniform(-0.3, 0.3, size=(n, 2))]


def test_great_circle_agrees_with_geodesic_within_half_a_percent():
    """The vectorised haversine stays within 0.5 % of geopy's WGS84 geodesic."""
    pts = _points(20)
    m = great_circle_matrix_m(pts)
    for i, j in [(0, 1), (3, 17), (5, 9)]:
        assert m[i, j] == pytest.approx(geodesic_m(pts[i], pts[j]), rel=0.005)


def test_thousand_point_matrix_is_rounded_up():
    """1,001 points (depot + 1,000 stops) build in whole units, rounded up, times from a speed
    per profile (its speed is measured in the benchmark, `--scaling`)."""
    pts = _points(1001)
    vehicles = [Vehicle("v", "d", Load(), speed_kmh=36.0, profile="van")]
    dist, times = GreatCircleSource(circuity=1.3).matrices(pts, vehicles)
    assert dist.dtype == np.int64 and dist.shape == (1001, 1001)
    raw = great_circle_matrix_m(pts[:2])[0, 1] * 1.3
    assert dist[0, 1] == math.ceil(raw)
    assert times["van"][0, 1] == math.ceil(dist[0, 1] / 10)


class _FakeOsrm(BaseHTTPRequestHandler):
    """Speaks OSRM's table API: /table/v1/{profile}/{lon,lat;...}?annotations=duration,distance.
    Point 2 is on an island: null durations/distances to and from it."""

    requests: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server naming)
        url = urlsplit(self.path)  # urlparse would cut the path at ";"
        type(self).requests.append(self.path)
        parts = url.path.split("/")
        if parts[1:3] != ["table", "v1"] or "annotations=duration,distance" not in url.query:
            return self._send(400, {"code": "InvalidUrl", "message": "bad"})
        coords = [tuple(map(float, c.split(","))) for c in parts[4].split(";")]
        n = len(coords)
        dur, dis = [], []
        for i, (lon1, lat1) in enumerate(coords):
            drow, srow = [], []
            for j, (lon2, lat2) in enumerate(coords):
                if (i == 2) != (j == 2):
                    drow.append(None)
                    srow.append(None)
                else:
                    d = 111_000 * math.hypot(lat1 - lat2, lon1 - lon2) + 0.4
                    srow.append(round(d, 1))
                    drow.append(round(d / 8.3, 1))
            dur.append(drow)
            dis.append(srow)
        self._send(
            200,
            {
                "code": "Ok",
                "durations": dur,
                "distances": dis,
                "sources": [{}] * n,
                "destinations": [{}] * n,
            },
        )

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def osrm_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOsrm)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    _FakeOsrm.requests = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_osrm_client_reads_table_and_marks_nulls_unreachable(osrm_url):
    """The client sends lon,lat pairs and both annotations; rounds up; null becomes UNREACHABLE."""
    pts = [LatLon(31.0, 121.0), LatLon(31.01, 121.0), LatLon(31.5, 121.5)]
    dist, dur = OsrmTable(osrm_url).table(pts, "driving")
    assert _FakeOsrm.requests[0].startswith("/table/v1/driving/121.000000,31.000000;")
    assert dist[0, 1] == math.ceil(round(1110 + 0.4, 1))
    assert dur[0, 1] == math.ceil(round((1110 + 0.4) / 8.3, 1))
    assert dist[0, 2] == UNREACHABLE and dur[2, 1] == UNREACHABLE


def test_planner_with_osrm_reports_the_island_as_unreachable(osrm_url):
    """A Problem with an OSRM matrix source routes the reachable stop and reports the island."""
    drops = {TempZone.AMBIENT: Load(1, 0, 0)}
    p = Problem(
        (Depot("wh", LatLon(31.0, 121.0)),),
        (Stop("near", LatLon(31.01, 121.0), drops), Stop("island", LatLon(31.02, 121.01), drops)),
        (Vehicle("v", "wh", Load(9, 9, 9), profile="car"),),
        matrix_source=OsrmTable(osrm_url, profiles={"car": "driving"}),
    )
    # island is node 2 in the fake server's numbering
    plan = plan_routes(p, time_limit_s=0.3)
    assert plan.routes[0].stop_ids == ["near"]
    assert [(u.stop_id, u.reason) for u in plan.unassigned] == [
        ("island", UnassignedReason.UNREACHABLE_LOCATION)
    ]


def test_osrm_error_code_raises():
    """A server that cannot be reached gives OsrmError, not a hang."""
    with pytest.raises(OsrmError):
        OsrmTable("http://127.0.0.1:9", timeout_s=1).table([LatLon(0, 0), LatLon(0, 1)])


def test_cache_builds_once_per_location_list(tmp_path):
    """The same wave's locations and profiles hit the cache, in memory and on disk."""
    pts = _points(5)
    stops = tuple(
        Stop(f"s{i}", p, {TempZone.AMBIENT: Load(1, 0, 0)}) for i, p in enumerate(pts[1:])
    )
    problem = Problem((Depot("d", pts[0]),), stops, (Vehicle("v", "d", Load(9, 9, 9)),))
    cache = MatrixCache(directory=tmp_path)
    first = build_matrices(problem, cache)
    second = build_matrices(problem, cache)
    assert (cache.misses, cache.hits) == (1, 1)
    assert second[0] is first[0]
    fresh = MatrixCache(directory=tmp_path)
    third = build_matrices(problem, fresh)
    assert (fresh.misses, fresh.hits) == (0, 1)
    np.testing.assert_array_equal(third[0], first[0])
    np.testing.assert_array_equal(third[1]["van"], first[1]["van"])
