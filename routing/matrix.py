"""Travel matrices: the embedded great-circle builder, an OSRM `table` client, and a cache.

All matrices are integer numpy arrays: metres and whole seconds, rounded up, so a plan that is
feasible in the solver's integers is feasible on the road. `UNREACHABLE` marks a missing road.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from geopy.distance import geodesic

from .model import UNREACHABLE, LatLon, Problem, RoutingInputError, Vehicle

__all__ = [
    "EARTH_RADIUS_M",
    "GreatCircleSource",
    "MatrixCache",
    "OsrmError",
    "OsrmTable",
    "build_matrices",
    "geodesic_m",
    "great_circle_matrix_m",
    "travel_time_matrix_s",
]

EARTH_RADIUS_M = 6_371_008.8  # mean radius: within ~0.5 % of the WGS84 geodesic at any latitude


def geodesic_m(a: LatLon, b: LatLon) -> float:
    """The WGS84 geodesic distance of two points (geopy), for single look-ups and checks."""
    return float(geodesic((a.lat, a.lon), (b.lat, b.lon)).meters)


def great_circle_matrix_m(points: Sequence[LatLon]) -> np.ndarray:
    """All-pairs haversine distance in metres (float), vectorised: 1,000 points in ~50 ms."""
    lat = np.radians(np.fromiter((p.lat for p in points), float, len(points)))
    lon = np.radians(np.fromiter((p.lon for p in points), float, len(points)))
    dlat = lat[:, None] - lat[None, :]
    dlon = lon[:, None] - lon[None, :]
    h = np.sin(dlat / 2) ** 2 + np.cos(lat)[:, None] * np.cos(lat)[None, :] * np.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def travel_time_matrix_s(distance_m: np.ndarray, speed_kmh: float) -> np.ndarray:
    """Seconds to drive each distance at `speed_kmh`, rounded up; unreachable stays unreachable."""
    t = np.ceil(distance_m.astype(float) / (speed_kmh / 3.6) - 1e-9).astype(np.int64)
    t[distance_m >= UNREACHABLE] = UNREACHABLE
    return t


class GreatCircleSource:
    """The default: great-circle distance × circuity, and a speed per vehicle profile."""

    def __init__(self, circuity: float = 1.3):
        self.circuity = circuity

    def key(self) -> str:
        return f"great-circle:{self.circuity}"

    def matrices(
        self, points: Sequence[LatLon], vehicles: Iterable[Vehicle]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        dist = np.ceil(great_circle_matrix_m(points) * self.circuity - 1e-9).astype(np.int64)
        speeds = _speed_per_profile(vehicles)
        return dist, {p: travel_time_matrix_s(dist, s) for p, s in speeds.items()}


def _speed_per_profile(vehicles: Iterable[Vehicle]) -> dict[str, float]:
    speeds: dict[str, float] = {}
    for v in vehicles:
        if speeds.setdefault(v.profile, v.speed_kmh) != v.speed_kmh:
            raise RoutingInputError(
                f"profile {v.profile!r} has two speeds ({speeds[v.profile]} and {v.speed_kmh})",
                record=v.id,
                field="speed_kmh",
            )
    return speeds


class OsrmError(RuntimeError):
    """The OSRM server answered with an error, or not at all."""


class OsrmTable:
    """A client of OSRM's `table` service: `GET /table/v1/{profile}/{lon,lat;...}`.

    `profiles` maps a vehicle profile to the OSRM profile that serves it (default: the same name);
    distances come from the first profile asked. Null entries (no route) become `UNREACHABLE`.
    Durations are rounded up to whole seconds, distances up to whole metres.
    """

    def __init__(
        self, base_url: str, *, profiles: dict[str, str] | None = None, timeout_s: float = 30.0
    ):
        self.base_url = base_url.rstrip("/")
        self.profiles = profiles or {}
        self.timeout_s = timeout_s

    def key(self) -> str:
        return f"osrm:{self.base_url}:{sorted(self.profiles.items())}"

    def table(
        self, points: Sequence[LatLon], profile: str = "driving"
    ) -> tuple[np.ndarray, np.ndarray]:
        """(distance_m, travel_s) for every ordered pair of points."""
        coords = ";".join(f"{p.lon:.6f},{p.lat:.6f}" for p in points)
        url = f"{self.base_url}/table/v1/{profile}/{coords}?annotations=duration,distance"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as resp:
                body = json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            try:
                body = json.loads(exc.read().decode("utf-8"))
            except Exception:
                raise OsrmError(f"OSRM HTTP {exc.code} for {profile}") from exc
        except (urllib.error.URLError, TimeoutError, ValueError) as exc:
            raise OsrmError(f"OSRM request failed: {exc}") from exc
        if body.get("code") != "Ok":
            raise OsrmError(f"OSRM {body.get('code')}: {body.get('message', '')}")
        n = len(points)
        return (
            _osrm_matrix(body.get("distances"), n, "distances"),
            _osrm_matrix(body.get("durations"), n, "durations"),
        )

    def matrices(
        self, points: Sequence[LatLon], vehicles: Iterable[Vehicle]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        times: dict[str, np.ndarray] = {}
        dist: np.ndarray | None = None
        for profile in dict.fromkeys(v.profile for v in vehicles):
            d, t = self.table(points, self.profiles.get(profile, profile))
            dist = d if dist is None else dist
            times[profile] = t
        if dist is None:  # no vehicles: distances still useful for reasons
            dist, _ = self.table(points, "driving")
        return dist, times


def _osrm_matrix(rows: object, n: int, name: str) -> np.ndarray:
    if (
        not isinstance(rows, list)
        or len(rows) != n
        or any(not isinstance(r, list) or len(r) != n for r in rows)
    ):
        raise OsrmError(f"OSRM answer has no {n}x{n} '{name}'")
    out = np.empty((n, n), dtype=np.int64)
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            out[i, j] = UNREACHABLE if v is None else min(UNREACHABLE, math.ceil(v - 1e-9))
    return out


class MatrixCache:
    """Matrices per wave: keyed by the location list, the source and the profiles.

    An in-memory LRU; with `directory`, also `.npz` files there that survive the process.
    """

    def __init__(self, maxsize: int = 16, directory: str | os.PathLike[str] | None = None):
        self.maxsize = maxsize
        self.directory = Path(directory) if directory is not None else None
        self._mem: OrderedDict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(points: Sequence[LatLon], source_key: str, vehicles: Iterable[Vehicle]) -> str:
        h = hashlib.sha256(source_key.encode())
        for p in points:
            h.update(f"{p.lat:.7f},{p.lon:.7f};".encode())
        h.update(repr(sorted(_speed_per_profile(vehicles).items())).encode())
        return h.hexdigest()

    def get_or_build(
        self, points: Sequence[LatLon], source, vehicles: Sequence[Vehicle]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        key = self.key(points, source.key(), vehicles)
        if key in self._mem:
            self.hits += 1
            self._mem.move_to_end(key)
            return self._mem[key]
        found = self._load(key)
        if found is None:
            self.misses += 1
            found = source.matrices(points, vehicles)
            self._store(key, found)
        else:
            self.hits += 1
        self._mem[key] = found
        while len(self._mem) > self.maxsize:
            self._mem.popitem(last=False)
        return found

    def _path(self, key: str) -> Path | None:
        return None if self.directory is None else self.directory / f"{key}.npz"

    def _load(self, key: str) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
        path = self._path(key)
        if path is None or not path.exists():
            return None
        with np.load(path) as data:
            times = {k[2:]: data[k] for k in data.files if k.startswith("t:")}
            return data["distance_m"], times

    def _store(self, key: str, value: tuple[np.ndarray, dict[str, np.ndarray]]) -> None:
        path = self._path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        arrays = {"distance_m": value[0], **{f"t:{k}": v for k, v in value[1].items()}}
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)


def build_matrices(
    problem: Problem, cache: MatrixCache | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(distance_m, {profile: travel_s}) over the problem's nodes (depots, then stops)."""
    if problem.has_matrices:
        t = problem.travel_s
        times = t if isinstance(t, dict) else {v.profile: t for v in problem.vehicles}
        return problem.distance_m, times
    source = problem.matrix_source or GreatCircleSource(problem.circuity)
    points = problem.node_points()
    if cache is not None:
        return cache.get_or_build(points, source, problem.vehicles)
    return source.matrices(points, problem.vehicles)
