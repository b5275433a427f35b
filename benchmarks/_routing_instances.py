"""Benchmark instances (Solomon VRPTW, X CVRP) in the sets' own integer conventions.

Solomon: distance and travel time floor(10·euclid), windows and service ×10, totals divided by 10.
X: TSPLIB EUC_2D, Euclidean rounded to the nearest integer; capacity only.
See ../shared/benchmarks/README.md.
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
    kind: str                 # "solomon" or "x"
    path: Path
    coords: np.ndarray        # (n+1, 2), depot first
    demand: np.ndarray        # (n+1,)
    capacity: int
    dist: np.ndarray          # (n+1, n+1) integers in the set's convention
    windows: np.ndarray | None  # (n+1, 2) integers (scaled), depot first
    service: np.ndarray       # (n+1,) integers (scaled)
    scale: int                # 10 for Solomon: report distance / scale
    num_vehicles: int
    bks: float | None
    bks_routes: int | None

    @property
    def customers(self) -> int:
        return len(self.demand) - 1


def load(path: Path) -> Instance:
    if path.suffix == ".txt":
        return _solomon(path)
    return _x(path)


def _solomon(path: Path) -> Instance:
    raw = vrplib.read_instance(str(path), instance_format="solomon")
    xy = np.asarray(raw["node_coord"], dtype=np.int64)
    d2 = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2)
    # floor(10·sqrt(d2)) exactly, with integer square roots (floats can land a hair below)
    dist = np.vectorize(lambda v: math.isqrt(100 * int(v)))(d2).astype(np.int64)
    bks, routes = _solomon_bks(path)
    return Instance(raw["name"], "solomon", path, xy, np.asarray(raw["demand"], dtype=np.int64),
                    int(raw["capacity"]), dist,
                    (np.asarray(raw["time_window"]) * 10).astype(np.int64),
                    (np.asarray(raw["service_time"]) * 10).astype(np.int64), 10,
                    int(raw["vehicles"]), bks, routes)


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


def _x(path: Path) -> Instance:
    raw = vrplib.read_instance(str(path))
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
    return Instance(raw["name"], "x", path, np.asarray(raw["node_coord"]),
                    np.asarray(raw["demand"], dtype=np.int64), int(raw["capacity"]), dist,
                    None, np.zeros(n + 1, dtype=np.int64), 1, vehicles, bks, routes)


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
        stops.append(Stop(str(c), None, {TempZone.AMBIENT: Load(int(inst.demand[c]), 0, 0)},
                          windows, int(inst.service[c])))
    vehicles = tuple(Vehicle(f"v{i + 1}", "depot", Load(inst.capacity, 0, 0),
                             shift_start_s=0, shift_end_s=horizon)
                     for i in range(inst.num_vehicles))
    return Problem((Depot("depot"),), tuple(stops), vehicles, distance_m=inst.dist,
                   travel_s=inst.dist)


def check(inst: Instance, routes: list[list[int]]) -> tuple[bool, str, float]:
    """Independent recheck from the instance data: every customer once, capacity, windows.

    Returns (feasible, first problem found, distance in the instance's units).
    """
    seen: dict[int, int] = {}
    total = 0
    problems: list[str] = []
    for r, route in enumerate(routes):
        load = int(sum(inst.demand[c] for c in route))
        if load > inst.capacity:
            problems.append(f"route {r + 1} load {load} > {inst.capacity}")
        t, prev = 0, 0
        for c in route:
            seen[c] = seen.get(c, 0) + 1
            total += int(inst.dist[prev, c])
            t += int(inst.service[prev]) + int(inst.dist[prev, c])
            if inst.windows is not None:
                t = max(t, int(inst.windows[c, 0]))
                if t > inst.windows[c, 1]:
                    problems.append(f"customer {c} served at {t} > {inst.windows[c, 1]}")
            prev = c
        total += int(inst.dist[prev, 0])
        t += int(inst.service[prev]) + int(inst.dist[prev, 0])
        if inst.windows is not None and t > inst.windows[0, 1]:
            problems.append(f"route {r + 1} back at {t} > {inst.windows[0, 1]}")
    missing = [c for c in range(1, inst.customers + 1) if c not in seen]
    twice = [c for c, k in seen.items() if k > 1 or not 1 <= c <= inst.customers]
    if missing:
        problems.append(f"{len(missing)} customers not served, e.g. {missing[:5]}")
    if twice:
        problems.append(f"customers served twice or unknown: {twice[:5]}")
    return not problems, "; ".join(problems[:3]), total / inst.scale


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
