"""The benchmark's independent re-check: reads the instance file itself and checks routes on it.

Shares nothing with `_routing_instances.py` (which builds the `Problem` the planner sees): its own
parser for Solomon's text layout and for VRPLIB (CVRP and VRPTW), its own distance convention,
its own feasibility rules. If the reader mis-reads a file (say, drops the windows of a VRPLIB
VRPTW file), a plan built on that reading fails here instead of looking better than it is.

Conventions (../shared/benchmarks/README.md): Solomon and VRPTW in VRPLIB: distance and travel
time floor(10 * euclid), windows and service times * 10, totals / 10. CVRP (TSPLIB EUC_2D):
euclid rounded to the nearest integer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, getcontext
from pathlib import Path

__all__ = ["FileInstance", "below_bks", "read_file", "verify"]

getcontext().prec = 40


@dataclass(frozen=True)
class FileInstance:
    """What the file says, in its own units (customers numbered 1..n, depot 0)."""

    xy: list[tuple[float, float]]
    demand: list[int]
    capacity: int
    ready: list[float] | None  # None: no time windows (CVRP)
    due: list[float] | None
    service: list[float]
    vehicles: int | None
    timed: bool  # Solomon-style x10 truncated convention

    def dist(self, a: int, b: int) -> int:
        (xa, ya), (xb, yb) = self.xy[a], self.xy[b]
        d2 = Decimal(repr(xa - xb)) ** 2 + Decimal(repr(ya - yb)) ** 2
        if self.timed:  # floor(10 * sqrt(d2)) exactly, in decimal arithmetic
            return int((d2 * 100).sqrt().to_integral_value(rounding=ROUND_FLOOR))
        return int(math.floor(float(d2.sqrt()) + 0.5))

    @property
    def scale(self) -> int:
        return 10 if self.timed else 1


def read_file(path: Path) -> FileInstance:
    text = path.read_text()
    if path.suffix == ".txt":
        return _solomon_text(text)
    return _vrplib_text(text)


def _solomon_text(text: str) -> FileInstance:
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    vehicles = capacity = None
    rows: list[list[float]] = []
    for i, parts in enumerate(lines):
        if parts[0].upper() == "NUMBER" and vehicles is None:
            vehicles, capacity = int(lines[i + 1][0]), int(lines[i + 1][1])
        if len(parts) == 7 and all(_number(p) for p in parts):
            rows.append([float(p) for p in parts])
    if capacity is None:
        raise ValueError("no VEHICLE NUMBER/CAPACITY block")
    return FileInstance(
        [(r[1], r[2]) for r in rows],
        [int(r[3]) for r in rows],
        capacity,
        [r[4] * 10 for r in rows],
        [r[5] * 10 for r in rows],
        [r[6] * 10 for r in rows],
        vehicles,
        True,
    )


def _vrplib_text(text: str) -> FileInstance:
    head: dict[str, str] = {}
    sections: dict[str, list[list[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line == "EOF":
            continue
        if ":" in line and not line[0].isdigit() and not line.startswith("-"):
            key, value = line.split(":", 1)
            head[key.strip().upper()] = value.strip()
            current = None
        elif line.upper().endswith("_SECTION"):
            current = line.upper()
            sections[current] = []
        elif current is not None:
            sections[current].append(line.split())
    n = int(head["DIMENSION"])
    coords = {int(r[0]): (float(r[1]), float(r[2])) for r in sections["NODE_COORD_SECTION"]}
    demand = {int(r[0]): int(r[1]) for r in sections["DEMAND_SECTION"]}
    depots = [int(r[0]) for r in sections.get("DEPOT_SECTION", [["1"]]) if int(r[0]) >= 0]
    if depots != [1] and depots[:1] != [1]:
        raise ValueError("the depot must be node 1")
    ids = sorted(coords)
    timed = head.get("TYPE", "CVRP").upper() == "VRPTW" or "TIME_WINDOW_SECTION" in sections
    ready = due = None
    service = [0.0] * n
    if timed:
        tw = {int(r[0]): (float(r[1]), float(r[2])) for r in sections["TIME_WINDOW_SECTION"]}
        ready = [tw[i][0] * 10 for i in ids]
        due = [tw[i][1] * 10 for i in ids]
        if "SERVICE_TIME_SECTION" in sections:
            st = {int(r[0]): float(r[1]) for r in sections["SERVICE_TIME_SECTION"]}
            service = [st[i] * 10 for i in ids]
        elif "SERVICE_TIME" in head:
            service = [0.0] + [float(head["SERVICE_TIME"]) * 10] * (n - 1)
    vehicles = int(head["VEHICLES"]) if "VEHICLES" in head else None
    return FileInstance(
        [coords[i] for i in ids],
        [demand[i] for i in ids],
        int(head["CAPACITY"]),
        ready,
        due,
        service,
        vehicles,
        timed,
    )


def _number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def verify(path: Path, routes: list[list[int]]) -> tuple[bool, str, float]:
    """(feasible, what is wrong, distance in the file's units) of `routes` (customer numbers)."""
    f = read_file(path)
    n = len(f.demand) - 1
    wrong: list[str] = []
    count = [0] * (n + 1)
    total = 0
    for r, route in enumerate(routes):
        if any(not 1 <= c <= n for c in route):
            wrong.append(f"route {r + 1}: unknown customer")
            continue
        if sum(f.demand[c] for c in route) > f.capacity:
            wrong.append(f"route {r + 1}: over capacity")
        clock = 0.0
        prev = 0
        for c in route + [0]:
            count[c] += 1 if c else 0
            leg = f.dist(prev, c)
            total += leg
            clock += f.service[prev] + leg
            if f.ready is not None and f.due is not None:
                clock = max(clock, f.ready[c])
                if clock > f.due[c]:
                    wrong.append(
                        f"route {r + 1}: {'depot' if c == 0 else c} reached at "
                        f"{clock / 10:g} > due {f.due[c] / 10:g}"
                    )
            prev = c
    if f.vehicles is not None and len(routes) > f.vehicles:
        wrong.append(f"{len(routes)} routes > {f.vehicles} vehicles")
    missing = [c for c in range(1, n + 1) if count[c] == 0]
    twice = [c for c in range(1, n + 1) if count[c] > 1]
    if missing:
        wrong.append(f"{len(missing)} customers not served, e.g. {missing[:5]}")
    if twice:
        wrong.append(f"served more than once: {twice[:5]}")
    return not wrong, "; ".join(wrong[:3]), total / f.scale


def below_bks(cost: float, bks: float | None, scale: int) -> bool:
    """A cost below the best known by more than the convention's rounding cannot be true."""
    return bks is not None and cost < bks - 0.5 / scale
