"""Benchmark instances (Solomon VRPTW, VRPLIB VRPTW, X CVRP) in the sets' own integer conventions.

Solomon, and VRPLIB files of `TYPE : VRPTW` (or with a TIME_WINDOW_SECTION): distance and travel
time floor(10·euclid), windows and service ×10, totals divided by 10. VRPLIB CVRP (X): TSPLIB
EUC_2D, Euclidean rounded to the nearest integer; capacity only.
See ../shared/benchmarks/README.md. The re-check (`_routing_check.py`) reads files on its own.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import vrplib

from routing import Depot, Load, Problem, Stop, TempZone, TimeWindow, Vehicle


@dataclass(frozen=True)
class Instance:
    name: str
    kind: str  # "solomon", "vrptw" (VRPLIB) or "x" (VRPLIB CVRP)
    path: Path
    coords: np.ndarray  # (n+1, 2), depot first
    demand: np.ndarray  # (n+1,)
    capacity: int
    dist: np.ndarray  # (n+1, n+1) integers in the set's convention
    windows: np.ndarray | None  # (n+1, 2) integers (scaled), depot first
    service: np.ndarray  # (n+1,) integers (scaled)
    scale: int  # 10 for Solomon: report distance / scale
    num_vehicles: int
    bks: float | None
    bks_routes: int | None

    @property
    def customers(self) -> int:
        return len(self.demand) - 1


def load(path: Path) -> Instance:
    if path.suffix == ".txt":
        return _solomon(path)
    raw = vrplib.read_instance(str(path))
    if str(raw.get("type", "")).upper() == "VRPTW" or "time_window" in raw:
        return _vrplib_vrptw(path, raw)
    return _x(path, raw)


def _truncated_x10(xy: np.ndarray) -> np.ndarray:
    """floor(10·euclid), exactly: integer square roots on integer coordinates (floats can land
    a hair below a whole number); coordinates with decimals go through 100·d² rounded first."""
    if np.all(xy == np.round(xy)):
        ixy = np.round(xy).astype(np.int64)
        d2 = ((ixy[:, None, :] - ixy[None, :, :]) ** 2).sum(axis=2)
        return np.vectorize(lambda v: math.isqrt(100 * int(v)))(d2).astype(np.int64)
    d = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2))
    return np.floor(10 * d + 1e-9).astype(np.int64)


def _solomon(path: Path) -> Instance:
    raw = vrplib.read_instance(str(path), instance_format="solomon")
    xy = np.asarray(raw["node_coord"], dtype=np.int64)
    dist = _truncated_x10(xy)
    bks, routes = _solomon_bks(path)
    return Instance(
        raw["name"],
        "solomon",
        path,
        xy,
        np.asarray(raw["demand"], dtype=np.int64),
        int(raw["capacity"]),
        dist,
        (np.asarray(raw["time_window"]) * 10).astype(np.int64),
        (np.asarray(raw["service_time"]) * 10).astype(np.int64),
        10,
        int(raw["vehicles"]),
        bks,
        routes,
    )


def _vrplib_vrptw(path: Path, raw: dict) -> Instance:
    """A VRPLIB VRPTW file, read as VRPTW: its windows and service times, Solomon's convention."""
    xy = np.asarray(raw["node_coord"], dtype=float)
    n = len(xy)
    depot = int(np.asarray(raw["depot"]).ravel()[0])
    if depot != 0:
        raise ValueError(f"{path}: depot must be the first node")
    windows = np.round(np.asarray(raw["time_window"], dtype=float) * 10).astype(np.int64)
    service = np.broadcast_to(np.asarray(raw.get("service_time", 0), dtype=float), (n,)).copy()
    if service.ndim == 1 and np.isscalar(raw.get("service_time", 0)):
        service[0] = 0  # a scalar SERVICE_TIME is the customers'; the depot serves nothing
    service = np.round(service * 10).astype(np.int64)
    vehicles = int(raw["vehicles"]) if "vehicles" in raw else n - 1
    bks = routes = None
    sol = path.with_suffix(".sol")
    if sol.exists():
        s = vrplib.read_solution(str(sol))
        bks, routes = float(s["cost"]), len(s["routes"])
        # out and back to every customer bounds any solution: above it, the file wrote ×10
        if bks > 2 * _truncated_x10(xy)[0].sum() / 10:
            bks /= 10
    return Instance(
        str(raw["name"]),
        "vrptw",
        path,
        xy,
        np.asarray(raw["demand"], dtype=np.int64),
        int(raw["capacity"]),
        _truncated_x10(xy),
        windows,
        service,
        10,
        vehicles,
        bks,
        routes,
    )


def _solomon_bks(path: Path) -> tuple[float | None, int | None]:
    table = path.parent / "bks.csv"
    if table.exists():
        with table.open() as f:
            for row in csv.DictReader(f):
                if row["instance"].upper() == path.stem.upper():
                    return float(row["distance"]), int(row["vehicles"])
    sol = path.with_suffix(".sol")
    if sol.exists():
        s = vrplib.read_solution(str(sol))
        return float(s["cost"]), len(s["routes"])
    return None, None


def _x(path: Path, raw: dict) -> Instance:
    dist = np.round(np.asarray(raw["edge_weight"])).astype(np.int64)
    depot = int(np.asarray(raw["depot"]).ravel()[0])
    if depot != 0:
        raise ValueError(f"{path}: depot must be the first node")
    n = len(raw["demand"]) - 1
    k = re.search(r"-k(\d+)", path.stem)
    # the BKS may use a few more routes than k (e.g. X-n101-k25 uses 26): leave room
    vehicles = math.ceil(1.15 * int(k.group(1))) + 2 if k else n
    bks = routes = None
    sol = path.with_suffix(".sol")
    if sol.exists():
        s = vrplib.read_solution(str(sol))
        bks, routes = float(s["cost"]), len(s["routes"])
    return Instance(
        raw["name"],
        "x",
        path,
        np.asarray(raw["node_coord"]),
        np.asarray(raw["demand"], dtype=np.int64),
        int(raw["capacity"]),
        dist,
        None,
        np.zeros(n + 1, dtype=np.int64),
        1,
        vehicles,
        bks,
        routes,
    )


def to_problem(inst: Instance) -> Problem:
    """The instance through the planner's public API, with explicit integer matrices.

    Stop ids are the customer numbers of the instance, so routes print in its own numbering.
    """
    horizon = int(inst.windows[0, 1]) if inst.windows is not None else 10**9
    stops = []
    for c in range(1, inst.customers + 1):
        windows = ()
        if inst.windows is not None:
            windows = (TimeWindow(int(inst.windows[c, 0]), int(inst.windows[c, 1])),)
        stops.append(
            Stop(
                str(c),
                None,
                {TempZone.AMBIENT: Load(int(inst.demand[c]), 0, 0)},
                windows,
                int(inst.service[c]),
            )
        )
    vehicles = tuple(
        Vehicle(
            f"v{i + 1}", "depot", Load(inst.capacity, 0, 0), shift_start_s=0, shift_end_s=horizon
        )
        for i in range(inst.num_vehicles)
    )
    return Problem(
        (Depot("depot"),), tuple(stops), vehicles, distance_m=inst.dist, travel_s=inst.dist
    )


def gap(cost: float | None, bks: float | None) -> float | None:
    if cost is None or not bks:
        return None
    return 100.0 * (cost - bks) / bks


def find(paths: list[str], default_root: Path) -> list[Path]:
    """Files, directories and globs; relative ones are tried as given, then under default_root."""
    out: list[Path] = []
    for item in paths:
        matches: list[Path] = []
        for base in (Path("."), default_root):
            p = base / item
            if p.is_dir():
                matches = sorted(q for q in p.iterdir() if q.suffix in (".txt", ".vrp"))
            elif any(ch in item for ch in "*?["):
                matches = sorted(q for q in base.glob(item) if q.suffix in (".txt", ".vrp"))
            elif p.exists():
                matches = [p]
            if matches:
                break
        if not matches:
            raise SystemExit(f"no instance found for {item!r}")
        out.extend(matches)
    return out
