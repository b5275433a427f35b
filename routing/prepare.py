"""What every engine shares: the drops to route, their matrices, and turning routes into a `Plan`.

`prepare` decides, drop by drop, what no vehicle (or not the locked one) could serve, and keeps the
rest as candidates over a matrix of *solver nodes* (depots, then one node per candidate drop).
`build_route` and `build_plan` turn engine routes (drop numbers, service start times) into `Route`s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .model import (
    UNREACHABLE,
    Drop,
    Engine,
    Load,
    Plan,
    PlanCost,
    PlanStatus,
    Problem,
    RoutingInputError,
    Stop,
    TempZone,
    Unassigned,
    UnassignedReason,
    Visit,
    expand_drops,
)
from .reasons import reason_on_its_own, reason_when_locked, vehicle_classes

__all__ = ["Prepared", "build_plan", "build_route", "empty_plan", "prepare", "status_of"]


@dataclass
class Prepared:
    """The problem as engines see it; kept to read their routes back."""

    problem: Problem
    dist_rows: np.ndarray  # over matrix rows (depots, then stops)
    time_rows: dict[str, np.ndarray]
    drops: list[Drop]
    candidates: list[int]  # drop numbers given to the engines
    rejected: dict[int, UnassignedReason]
    node_row: np.ndarray  # solver node -> matrix row
    dist: np.ndarray  # over solver nodes
    times: dict[str, np.ndarray]  # per profile, over solver nodes, travel only
    service: np.ndarray  # per solver node
    penalty: int  # for leaving a drop out: more than serving it can ever cost
    same_stop: np.ndarray  # [i, j]: both nodes are drops of one stop

    @property
    def n_depots(self) -> int:
        return len(self.problem.depots)

    def node_of(self) -> dict[int, int]:
        """Drop number -> solver node."""
        return {k: self.n_depots + i for i, k in enumerate(self.candidates)}


def prepare(
    problem: Problem,
    dist_rows: np.ndarray,
    time_rows: dict[str, np.ndarray],
    locked: Mapping[str, str] | None = None,
) -> Prepared:
    """Drops, the reasons of those no vehicle can serve, and the candidates' node matrices."""
    locked = locked or {}
    vehicle_by_id = {v.id: v for v in problem.vehicles}
    stop_ids = {s.id for s in problem.stops}
    for stop_id, vid in locked.items():
        if vid not in vehicle_by_id:
            raise RoutingInputError(
                f"locked to unknown vehicle {vid!r}", record=stop_id, field="locked"
            )
        if stop_id not in stop_ids:
            raise RoutingInputError(
                "locked stop is not in the problem", record=stop_id, field="locked"
            )
    n_depots = len(problem.depots)
    drops = expand_drops(problem)
    rejected: dict[int, UnassignedReason] = {}
    candidates: list[int] = []
    classes = vehicle_classes(problem.vehicles)
    for k, drop in enumerate(drops):
        reason = reason_on_its_own(problem, drop, dist_rows, time_rows, classes)
        stop_id = problem.stops[drop.stop_index].id
        if reason is None and stop_id in locked:
            reason = reason_when_locked(
                problem, drop, vehicle_by_id[locked[stop_id]], dist_rows, time_rows
            )
        if reason is None:
            candidates.append(k)
        else:
            rejected[k] = reason
    rows = np.array(
        list(range(n_depots)) + [n_depots + drops[k].stop_index for k in candidates], dtype=np.int64
    )
    ix = np.ix_(rows, rows)
    dist = dist_rows[ix].copy()
    unreachable = dist >= UNREACHABLE
    stop_of_node = np.array([-1] * n_depots + [drops[k].stop_index for k in candidates])
    same_stop = (stop_of_node[:, None] == stop_of_node[None, :]) & (stop_of_node[:, None] >= 0)
    times = {}
    for profile, t in time_rows.items():
        tt = t[ix].copy()
        tt[unreachable] = UNREACHABLE
        times[profile] = tt
    service = np.array(
        [0] * n_depots + [problem.stops[drops[k].stop_index].service_s for k in candidates],
        dtype=np.int64,
    )
    reachable = dist[~unreachable]
    max_arc = int(reachable.max()) if reachable.size else 0
    max_fixed = max((v.fixed_cost for v in problem.vehicles), default=0)
    horizon = max((v.shift_end_s for v in problem.vehicles), default=0)
    late = problem.lateness_cost_per_s * horizon if problem.soft_windows else 0
    penalty = 10 * (2 * max_arc + int(max_fixed) + late) + 1000
    return Prepared(
        problem,
        dist_rows,
        time_rows,
        drops,
        candidates,
        rejected,
        rows,
        dist,
        times,
        service,
        penalty,
        same_stop,
    )


# ---------------------------------------------------------------------------------------------
# Routes back into a Plan


def transit(p: Prepared, profile: str, a: int, b: int) -> int:
    """Solver-node transit as both engines model it: service at `a`, then the drive; 0 between
    two drops of one stop (the last of them carries the stop's one service time)."""
    if p.same_stop[a, b]:
        return 0
    return int(p.service[a]) + int(p.times[profile][a, b])


def schedule(
    p: Prepared,
    vehicle_index: int,
    nodes: Sequence[int],
    start_s: int,
    windows: Sequence[tuple[int, int] | None] | None = None,
) -> tuple[list[int], int]:
    """Earliest service starts along `nodes` leaving the depot at `start_s` (waiting when early),
    and the time back at the end depot. `windows[i]`, when given, is the window node i was routed
    for (PyVRP's copy of a stop per window); otherwise the first window not yet closed."""
    problem = p.problem
    vehicle = problem.vehicles[vehicle_index]
    depot_node = {d.id: i for i, d in enumerate(problem.depots)}
    prev = depot_node[vehicle.start_depot]
    t = start_s
    out: list[int] = []
    for i, node in enumerate(nodes):
        t = t + transit(p, vehicle.profile, prev, node)
        stop = problem.stops[p.drops[p.candidates[node - p.n_depots]].stop_index]
        chosen = windows[i] if windows is not None else None
        if chosen is not None:
            t = max(t, chosen[0])
        elif stop.windows and not problem.soft_windows:
            open_ = [w for w in sorted(stop.windows, key=lambda w: w.open_s) if w.close_s >= t]
            if open_:
                t = max(t, open_[0].open_s)
        elif stop.windows:
            t = max(t, min(w.open_s for w in stop.windows))
        out.append(t)
        prev = node
    end = t + transit(p, vehicle.profile, prev, depot_node[vehicle.end]) if nodes else start_s
    return out, end


def build_route(
    p: Prepared, vehicle_index: int, nodes: Sequence[tuple[int, int]], start_s: int, end_s: int
):
    """A `Route` from (solver node, service start) pairs; consecutive drops of a stop merge."""
    from .model import Route

    problem = p.problem
    vehicle = problem.vehicles[vehicle_index]
    depot_node = {d.id: i for i, d in enumerate(problem.depots)}
    path = [depot_node[vehicle.start_depot]] + [n for n, _ in nodes] + [depot_node[vehicle.end]]
    distance = sum(int(p.dist[a, b]) for a, b in zip(path, path[1:], strict=False))
    visits = _merge_visits(p, nodes)
    on_board = Load()
    for visit in visits:
        on_board = on_board + visit.delivered
    load_at_start = on_board
    final: list[Visit] = []
    for visit in visits:
        on_board = on_board - visit.delivered
        final.append(
            Visit(
                visit.stop_id,
                visit.zones,
                visit.delivered,
                visit.arrival_s,
                visit.departure_s,
                on_board,
                visit.lateness_s,
            )
        )
    return Route(vehicle.id, start_s, end_s, tuple(final), distance, end_s - start_s, load_at_start)


def drops_of(p: Prepared, plan: Plan) -> dict[int, list[int]]:
    """A plan's routes as vehicle index -> candidate drop numbers in order (a warm start, or
    routes to finish). Each visit takes, per zone it delivers, the stop's drops of that zone not
    taken yet: one, then more while they add up to no more than the visit delivered (a drop split
    over several vehicles is taken once, by the visits that carry its parts)."""
    vehicle_no = {v.id: i for i, v in enumerate(p.problem.vehicles)}
    stop_no = {s.id: i for i, s in enumerate(p.problem.stops)}
    pool: dict[tuple[int, TempZone], list[int]] = {}
    for k in p.candidates:
        pool.setdefault((p.drops[k].stop_index, p.drops[k].zone), []).append(k)
    out: dict[int, list[int]] = {}
    for route in plan.routes:
        seq: list[int] = []
        for visit in route.visits:
            taken = Load()
            for zone in visit.zones:
                left = pool.get((stop_no[visit.stop_id], zone), [])
                first = True
                while left and (first or (taken + p.drops[left[0]].load).fits_in(visit.delivered)):
                    k = left.pop(0)
                    seq.append(k)
                    taken = taken + p.drops[k].load
                    first = False
        out[vehicle_no[route.vehicle_id]] = seq
    return out


def _merge_visits(p: Prepared, nodes: Sequence[tuple[int, int]]) -> list[Visit]:
    """Consecutive drops of one stop become one visit (they share the stop's service time)."""
    problem = p.problem
    out: list[Visit] = []
    for node, t in nodes:
        drop = p.drops[p.candidates[node - p.n_depots]]
        stop: Stop = problem.stops[drop.stop_index]
        departure = t + stop.service_s
        if out and out[-1].stop_id == stop.id:
            last = out[-1]
            zones = last.zones if drop.zone in last.zones else last.zones + (drop.zone,)
            # the shared service starts at the last drop's time (earlier ones may show slack)
            out[-1] = Visit(
                stop.id,
                zones,
                last.delivered + drop.load,
                t,
                departure,
                Load(),
                max(last.lateness_s, _lateness(problem, stop, t)),
            )
            continue
        out.append(
            Visit(
                stop.id, (drop.zone,), drop.load, t, departure, Load(), _lateness(problem, stop, t)
            )
        )
    return out


def _lateness(problem: Problem, stop: Stop, t: int) -> int:
    if problem.soft_windows and stop.windows:
        return max(0, t - max(w.close_s for w in stop.windows))
    return 0


def build_plan(
    p: Prepared,
    routes,
    served: set[int],
    *,
    engine: Engine,
    engine_status: str,
    first_s: float | None,
    solve_s: float,
    first_complete_s: float | None = None,
    solver_objective: int | None = None,
) -> Plan:
    """A plan from its routes (in vehicle order) and the drop numbers they serve."""
    problem = p.problem
    fixed = {v.id: v.fixed_cost for v in problem.vehicles}
    total_dist = sum(r.distance_m for r in routes)
    total_fixed = sum(fixed[r.vehicle_id] for r in routes)
    total_late = sum(v.lateness_s for r in routes for v in r.visits)
    unassigned = unassigned_of(p, served)
    cost = PlanCost(
        distance_m=total_dist,
        vehicles_used=len(routes),
        fixed_cost=total_fixed,
        lateness_s=total_late,
        total=total_dist + total_fixed + total_late * problem.lateness_cost_per_s,
    )
    if solver_objective is None:
        solver_objective = cost.total + p.penalty * sum(1 for k in p.candidates if k not in served)
    return Plan(
        tuple(routes),
        unassigned,
        cost,
        status_of(p, unassigned, found=True),
        first_s,
        solve_s,
        first_complete_s,
        solver_objective,
        engine,
        engine_status,
    )


def unassigned_of(p: Prepared, served: set[int]) -> tuple[Unassigned, ...]:
    out: list[Unassigned] = []
    seen: set[tuple[int, TempZone]] = set()
    for k, drop in enumerate(p.drops):
        if k in served:
            continue
        if (drop.stop_index, drop.zone) in seen:
            continue  # parts of one split drop are reported once
        seen.add((drop.stop_index, drop.zone))
        reason = p.rejected.get(k, UnassignedReason.FLEET_EXHAUSTED)
        demand = Load()
        for j, other in enumerate(p.drops):
            if j not in served and other.stop_index == drop.stop_index and other.zone == drop.zone:
                demand = demand + other.load
        out.append(Unassigned(p.problem.stops[drop.stop_index].id, drop.zone, reason, demand))
    return tuple(out)


def status_of(p: Prepared, unassigned: tuple[Unassigned, ...], *, found: bool) -> PlanStatus:
    if p.drops and (not p.problem.vehicles or not p.candidates):
        return PlanStatus.INFEASIBLE_INPUT
    if not found:
        return PlanStatus.TIMED_OUT
    return PlanStatus.PARTIAL if unassigned else PlanStatus.SOLVED


def empty_plan(
    p: Prepared, *, engine: Engine, engine_status: str, solve_s: float, found: bool
) -> Plan:
    """No route at all: every drop unassigned with its reason."""
    unassigned = unassigned_of(p, set())
    return Plan(
        (),
        unassigned,
        PlanCost(0, 0, 0, 0, 0),
        status_of(p, unassigned, found=found),
        None,
        solve_s,
        None,
        None,
        engine,
        engine_status,
    )
