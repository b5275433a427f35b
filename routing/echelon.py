"""Two echelons: trunk routes warehouse -> grid stations, then last mile per station.

The trunk problem's stops are the stations (their ids are the keys of `last_mile`); a station
whose demand exceeds a truck is split over several trucks. A station's last-mile vehicles start
no earlier than the latest trunk arrival there plus the handling time (goods must be unloaded
and sorted before they leave). The stations' last-mile problems are independent and are solved
in parallel worker processes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace

from .model import (
    Engine,
    Plan,
    PlanCost,
    PlanStatus,
    Problem,
    RoutingInputError,
    Unassigned,
    UnassignedReason,
    expand_drops,
)
from .parallel import solve_many
from .planner import plan_routes

__all__ = ["DEFAULT_HANDLING_S", "TwoEchelonPlan", "plan_two_echelons"]

DEFAULT_HANDLING_S = 30 * 60
# without `trunk_time_limit_s`, the trunk's share of the whole budget
TRUNK_SHARE = 0.3


@dataclass(frozen=True, slots=True)
class TwoEchelonPlan:
    trunk: Plan
    last_mile: dict[str, Plan]         # station id -> its plan
    ready_s: dict[str, int | None]     # station id -> earliest last-mile departure (None: unsupplied)


def plan_two_echelons(trunk: Problem, last_mile: Mapping[str, Problem], *, time_limit_s: float,
                      handling_s: int = DEFAULT_HANDLING_S, workers: int = 2,
                      seed: int = 0, trunk_time_limit_s: float | None = None) -> TwoEchelonPlan:
    """Plan the trunk, then every station's last mile from the time its goods are ready.

    `time_limit_s` is the whole call's budget; the trunk gets `trunk_time_limit_s` of it (by
    default `TRUNK_SHARE`), the stations share the rest on `workers` processes.
    """
    t_end = time.time() + time_limit_s
    station_ids = {s.id for s in trunk.stops}
    unknown = set(last_mile) - station_ids
    if unknown:
        raise RoutingInputError(f"last-mile problem for unknown station(s) {sorted(unknown)}",
                                record="trunk", field="stops")
    if not trunk.split_oversized:
        trunk = replace(trunk, split_oversized=True)
    trunk_s = min(trunk_time_limit_s or TRUNK_SHARE * time_limit_s, 0.9 * time_limit_s)
    trunk_plan = plan_routes(trunk, time_limit_s=trunk_s, seed=seed)

    arrivals: dict[str, int] = {}
    for route in trunk_plan.routes:
        for visit in route.visits:
            arrivals[visit.stop_id] = max(arrivals.get(visit.stop_id, 0), visit.arrival_s)

    ready: dict[str, int | None] = {}
    to_solve: dict[str, Problem] = {}
    plans: dict[str, Plan] = {}
    for station, problem in last_mile.items():
        if station not in arrivals:
            ready[station] = None
            plans[station] = _unsupplied(problem)
            continue
        ready[station] = arrivals[station] + handling_s
        to_solve[station] = _starting_at(problem, ready[station])  # type: ignore[arg-type]
    plans.update(solve_many(to_solve, time_limit_s=max(0.1, t_end - time.time()), workers=workers,
                            seed=seed))
    # a partly supplied station is planned in full: the trunk plan's unassigned say what is short
    return TwoEchelonPlan(trunk_plan, plans, ready)


def _starting_at(problem: Problem, ready_s: int) -> Problem:
    vehicles = tuple(
        replace(v, shift_start_s=max(v.shift_start_s, ready_s),
                shift_end_s=max(v.shift_end_s, max(v.shift_start_s, ready_s)))
        for v in problem.vehicles)
    return replace(problem, vehicles=vehicles)


def _unsupplied(problem: Problem) -> Plan:
    unassigned = tuple(Unassigned(problem.stops[d.stop_index].id, d.zone,
                                  UnassignedReason.STATION_NOT_SUPPLIED, d.load)
                       for d in expand_drops(problem))
    return Plan((), unassigned, PlanCost(0, 0, 0, 0, 0), PlanStatus.PARTIAL, None, 0.0,
                engine=Engine.NONE, engine_status="station not supplied")
