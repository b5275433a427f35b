"""Small hand-made instances for the planner's tests: planar points, explicit integer matrices.

Imported by name (pytest puts this folder on sys.path); module names here carry `routing` so
they never collide with other test folders' modules."""

from __future__ import annotations

import math

from routing import Depot, Load, Problem, Stop, TempZone, TimeWindow, Vehicle


def planar_problem(depot_xy, stops, vehicles, *, speed=1, extra_depots=(), **options) -> Problem:
    """A Problem over points on a plane: distance = rounded-up Euclidean, time = distance / speed.

    `stops` is a list of (id, (x, y), drops or Load, windows, service_s) tuples (tail optional).
    """
    depots = (Depot("D"),) + tuple(Depot(d) for d, _ in extra_depots)
    points = [depot_xy] + [xy for _, xy in extra_depots]
    built = []
    for spec in stops:
        sid, xy, *rest = spec
        drops = rest[0] if rest else Load(1, 0, 0)
        if isinstance(drops, Load):
            drops = {TempZone.AMBIENT: drops}
        windows = tuple(TimeWindow(*w) for w in (rest[1] if len(rest) > 1 else ()))
        service = rest[2] if len(rest) > 2 else 0
        built.append(Stop(sid, None, drops, windows, service))
        points.append(xy)
    dist = [[math.ceil(math.dist(a, b)) for b in points] for a in points]
    travel = [[math.ceil(d / speed) for d in row] for row in dist]
    return Problem(
        depots, tuple(built), tuple(vehicles), distance_m=dist, travel_s=travel, **options
    )


VAN_CAPACITY = Load(100, 100, 100)


def van(vid: str, capacity: Load = VAN_CAPACITY, **kw) -> Vehicle:
    return Vehicle(vid, kw.pop("start_depot", "D"), capacity, **kw)


# Depot at the origin, stops on three corners of a 10x10 square and one edge: the optimum is 40.
SQUARE = [("a", (0, 10)), ("b", (10, 10)), ("c", (10, 0)), ("d", (5, 0))]
