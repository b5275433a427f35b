"""A plan exactly as a person arranged it: the stops of each vehicle in the order given, timed and
loaded as the engines would, and re-checked. The dispatcher's manual move uses it: the plan is
what was asked for, and the rules it breaks (capacity, window, zone, shift) are listed in words,
never silently repaired.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

from .check import recheck
from .matrix import MatrixCache, build_matrices
from .model import Engine, Plan, Problem, RoutingInputError
from .prepare import build_plan, build_route, prepare, schedule

__all__ = ["evaluate"]


def evaluate(
    problem: Problem,
    sequences: Mapping[str, Sequence[str]],
    *,
    start_s: Mapping[str, int] | None = None,
    cache: MatrixCache | None = None,
) -> tuple[Plan, list[str]]:
    """The plan of `sequences` (vehicle id -> stop ids in order) and the rules it breaks.

    A stop listed on one vehicle is served whole by it (every zone of it); a stop listed on
    several (its zones split, as the planner splits them) gives each the drops of the zones that
    vehicle carries; a stop no vehicle lists is unassigned. A vehicle leaves at `start_s[vehicle]` when given (e.g. the
    time it left in the plan this one was made from), else at the start of its shift, and waits
    where it is early. An empty result list means the plan passes the independent re-check."""
    t0 = time.perf_counter()
    vehicles = {v.id: i for i, v in enumerate(problem.vehicles)}
    stops = {s.id for s in problem.stops}
    listings: dict[str, int] = {}
    for vid, sids in sequences.items():
        if vid not in vehicles:
            raise RoutingInputError("unknown vehicle", record=vid, field="vehicle")
        if len(set(sids)) != len(sids):
            raise RoutingInputError("stop listed twice on one vehicle", record=vid, field="stop")
        for sid in sids:
            if sid not in stops:
                raise RoutingInputError("stop is not in the problem", record=sid, field="stop")
            listings[sid] = listings.get(sid, 0) + 1
    dist_rows, time_rows = build_matrices(problem, cache)
    prep = prepare(problem, dist_rows, time_rows)
    node_of = prep.node_of()
    drops_of_stop: dict[str, list[int]] = {}
    for k in prep.candidates:
        drops_of_stop.setdefault(problem.stops[prep.drops[k].stop_index].id, []).append(k)
    routes = []
    served: set[int] = set()
    for vid in sorted(sequences, key=lambda v: vehicles[v]):
        v = vehicles[vid]
        zones = problem.vehicles[v].zones
        # a stop listed on one vehicle is served whole by it (a zone it lacks is a broken rule);
        # a stop split over several (one per zone) gives each the drops of the zones it carries
        drops: list[int] = []
        for sid in sequences[vid]:
            for k in drops_of_stop.get(sid, []):
                if k not in served and (listings[sid] == 1 or prep.drops[k].zone in zones):
                    drops.append(k)
                    served.add(k)
        if not drops:
            continue
        nodes = [node_of[k] for k in drops]
        begin = (start_s or {}).get(vid, problem.vehicles[v].shift_start_s)
        times, end = schedule(prep, v, nodes, begin)
        routes.append(build_route(prep, v, list(zip(nodes, times, strict=True)), begin, end))
    plan = build_plan(
        prep,
        routes,
        served,
        engine=Engine.NONE,
        engine_status="arranged by hand",
        first_s=None,
        solve_s=time.perf_counter() - t0,
    )
    broken = recheck(problem, plan, dist_rows, time_rows)
    return replace(plan, rechecked=not broken), broken
