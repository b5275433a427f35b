"""`plan_routes`: a Problem becomes an OR-Tools model, the search runs, the solution becomes a Plan.

Solver nodes are the depots, then one node per (stop, zone) drop, so each zone may ride on a
different vehicle; drops of one stop share its location and, back to back, one service time.
Every drop is optional with a penalty larger than anything serving it can cost, so a small fleet
gives unassigned stops, never an exception. Why a drop is unassigned is decided on the drop alone
(`reasons.py`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from ortools.constraint_solver import pywrapcp, routing_enums_pb2

from .decompose import can_decompose, improve_by_route_groups
from .matrix import MatrixCache, build_matrices
from .model import (
    UNREACHABLE,
    Load,
    Plan,
    PlanCost,
    Problem,
    Route,
    RoutingInputError,
    Stop,
    TempZone,
    Unassigned,
    UnassignedReason,
    Visit,
)
from .search import DEFAULT_SEARCH, SearchConfig, search_parameters

__all__ = ["Drop", "plan_routes"]

_STATUS = routing_enums_pb2.RoutingSearchStatus.DESCRIPTOR.enum_types_by_name["Value"]


@dataclass(frozen=True, slots=True)
class Drop:
    """One solver node: a stop's load in one zone (or a part of it, when split)."""

    stop_index: int
    zone: TempZone
    load: Load


@dataclass
class _Model:
    """Everything plan_routes builds before the search, kept to read the solution back."""

    problem: Problem
    drops: list[Drop]
    candidates: list[int]          # drop numbers given to the solver
    rejected: dict[int, UnassignedReason]
    node_row: np.ndarray           # solver node -> matrix row
    dist: np.ndarray               # over solver nodes
    times: dict[str, np.ndarray]   # per profile, over solver nodes, travel only
    service: np.ndarray            # per solver node
    penalty: int
    same_stop: np.ndarray          # [i, j]: both nodes are drops of one stop


def plan_routes(problem: Problem, *, time_limit_s: float, seed: int = 0,
                search: SearchConfig | None = None, solution_limit: int | None = None,
                locked: Mapping[str, str] | None = None,
                initial_routes: Mapping[str, Sequence[str]] | None = None,
                cache: MatrixCache | None = None) -> Plan:
    """Routes for every vehicle, and every stop that could not be served with its reason.

    `locked` keeps a stop on one vehicle (stop id -> vehicle id); `initial_routes` (vehicle id ->
    stop ids in order, e.g. from a previous plan) is where the search starts. `seed` seeds the
    solver's random generator (ruin-and-recreate); with a time limit, results still depend on how
    much work fits in it.
    """
    t0 = time.perf_counter()
    config = search or DEFAULT_SEARCH
    if (config.decompose_threshold is not None and len(problem.stops) >= config.decompose_threshold
            and not locked and not initial_routes and solution_limit is None
            and can_decompose(problem)):
        whole = plan_routes(problem, time_limit_s=time_limit_s * config.decompose_first,
                            seed=seed, search=replace(config, decompose_threshold=None),
                            cache=cache)
        better = improve_by_route_groups(problem, whole, deadline=t0 + time_limit_s, seed=seed,
                                         config=config, cache=cache)
        return replace(better, solve_s=time.perf_counter() - t0)
    dist_rows, time_rows = build_matrices(problem, cache)
    m = _build(problem, dist_rows, time_rows)
    n_vehicles = len(problem.vehicles)
    if not m.candidates or n_vehicles == 0:
        return _empty_plan(m, "ROUTING_SUCCESS" if not m.candidates else "NO_VEHICLES", t0)

    n_nodes = len(problem.depots) + len(m.candidates)
    depot_of = {d.id: i for i, d in enumerate(problem.depots)}
    starts = [depot_of[v.start_depot] for v in problem.vehicles]
    ends = [depot_of[v.end] for v in problem.vehicles]
    manager = pywrapcp.RoutingIndexManager(n_nodes, n_vehicles, starts, ends)
    routing = pywrapcp.RoutingModel(manager)
    routing.solver().ReSeed(seed)  # ruin-and-recreate draws from the solver's generator

    dist_cb = routing.RegisterTransitMatrix(m.dist.tolist())
    routing.SetArcCostEvaluatorOfAllVehicles(dist_cb)

    time_dim = _add_time(routing, manager, m) if _time_can_bind(m) else None
    _add_capacities(routing, manager, m)
    drops_of_stop = _add_drops(routing, manager, m, locked or {})
    for v, vehicle in enumerate(problem.vehicles):
        if vehicle.fixed_cost:
            routing.SetFixedCostOfVehicle(int(vehicle.fixed_cost), v)

    # the limit covers the whole call: matrices and model building come out of it
    search_s = max(0.05, time_limit_s - (time.perf_counter() - t0))
    params = search_parameters(config, time_limit_s=search_s, num_nodes=n_nodes,
                               solution_limit=solution_limit)
    first: list[float] = []
    first_complete: list[float] = []

    def on_solution() -> None:
        now = time.perf_counter() - t0
        if not first:
            first.append(now)
        if not first_complete and all(routing.NextVar(i).Value() != i for i in drop_indices):
            first_complete.append(now)

    drop_indices = [manager.NodeToIndex(n) for n in range(len(problem.depots), n_nodes)]
    routing.AddAtSolutionCallback(on_solution)
    solution = None
    if initial_routes:
        start = _read_routes(routing, manager, m, drops_of_stop, initial_routes)
        if start is not None:
            solution = routing.SolveFromAssignmentWithParameters(start, params)
    if solution is None:
        if config.iterated_local_search is not None:
            solution = routing.SolveWithIteratedLocalSearch(params)
        else:
            solution = routing.SolveWithParameters(params)
    if solution is None:  # the construction failed: start from nothing served, then improve
        params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.ALL_UNPERFORMED
        remaining = max(0.1, time_limit_s - (time.perf_counter() - t0))
        params.time_limit.FromNanoseconds(int(remaining * 1e9))
        solution = routing.SolveWithParameters(params)
    status = _STATUS.values_by_number[routing.status()].name
    if solution is not None and status == "ROUTING_NOT_SOLVED":
        # SolveWithIteratedLocalSearch returns a solution without setting the model's status
        status = "ROUTING_SUCCESS"
    if solution is None:
        return _empty_plan(m, status, t0)
    return _read_plan(routing, manager, solution, time_dim, m, status,
                      first[0] if first else None, time.perf_counter() - t0,
                      first_complete[0] if first_complete else None)


# ---------------------------------------------------------------------------------------------
# Building the model


def expand_drops(problem: Problem) -> list[Drop]:
    """One drop per (stop, zone) with a non-zero load; oversized ones split if the problem says so.

    A stop with no drops at all still gets one empty ambient drop: it is a visit to make.
    """
    biggest: dict[TempZone, Load] = {}
    for z in TempZone:
        caps = [v.capacity.as_tuple() for v in problem.vehicles if z in v.zones]
        if caps:
            biggest[z] = Load(*(max(c[i] for c in caps) for i in range(3)))
    drops: list[Drop] = []
    for i, stop in enumerate(problem.stops):
        items = [(TempZone(z), load) for z, load in stop.drops.items() if not load.is_zero()]
        if not items:
            items = [(TempZone.AMBIENT, Load())]
        for zone, load in items:
            cap = biggest.get(zone)
            if problem.split_oversized and cap is not None and not load.fits_in(cap):
                drops.extend(Drop(i, zone, part) for part in _split(load, cap))
            else:
                drops.append(Drop(i, zone, load))
    return drops


def _split(load: Load, cap: Load) -> list[Load]:
    parts = 1
    for need, have in zip(load.as_tuple(), cap.as_tuple(), strict=True):
        if need > 0:
            if have <= 0:
                return [load]
            parts = max(parts, -(-need // have))
    out = []
    for k in range(parts):
        out.append(Load(*((x * (k + 1)) // parts - (x * k) // parts for x in load.as_tuple())))
    return out


def _build(problem: Problem, dist_rows: np.ndarray, time_rows: dict[str, np.ndarray]) -> _Model:
    from .reasons import reason_on_its_own, vehicle_classes

    n_depots = len(problem.depots)
    drops = expand_drops(problem)
    rejected: dict[int, UnassignedReason] = {}
    candidates: list[int] = []
    classes = vehicle_classes(problem.vehicles)
    for k, drop in enumerate(drops):
        reason = reason_on_its_own(problem, drop, dist_rows, time_rows, classes)
        if reason is None:
            candidates.append(k)
        else:
            rejected[k] = reason
    rows = np.array(list(range(n_depots)) + [n_depots + drops[k].stop_index for k in candidates],
                    dtype=np.int64)
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
    service = np.array([0] * n_depots + [problem.stops[drops[k].stop_index].service_s
                                         for k in candidates], dtype=np.int64)
    reachable = dist[~unreachable]
    max_arc = int(reachable.max()) if reachable.size else 0
    max_fixed = max((v.fixed_cost for v in problem.vehicles), default=0)
    horizon = max((v.shift_end_s for v in problem.vehicles), default=0)
    late = problem.lateness_cost_per_s * horizon if problem.soft_windows else 0
    penalty = 10 * (2 * max_arc + int(max_fixed) + late) + 1000
    return _Model(problem, drops, candidates, rejected, rows, dist, times, service, penalty,
                  same_stop)


def _time_can_bind(m: _Model) -> bool:
    """False when no route could ever break a window, shift or break rule (e.g. plain CVRP):
    the time dimension is then left out, which makes the search much faster on large instances,
    and times are read back by adding up the route's transits."""
    problem = m.problem
    if problem.soft_windows or any(v.break_ or v.max_duration_s is not None
                                   for v in problem.vehicles):
        return True
    if any(problem.stops[m.drops[k].stop_index].windows for k in m.candidates):
        return True
    worst_route = 0
    for t in m.times.values():
        reach = np.where(t >= UNREACHABLE, 0, t)
        worst_route = max(worst_route, int(reach.max(axis=1).sum() + m.service.sum()))
    shortest_shift = min(v.shift_end_s - v.shift_start_s for v in problem.vehicles)
    return worst_route > shortest_shift


def _add_time(routing, manager, m: _Model):
    problem = m.problem
    horizon = max(v.shift_end_s for v in problem.vehicles)
    callbacks: dict[str, int] = {}
    for profile, t in m.times.items():
        with_service = t + m.service[:, None]  # service at the from-node, then the drive
        with_service[t >= UNREACHABLE] = UNREACHABLE
        with_service[m.same_stop] = 0  # the stop's last drop carries its one service time
        np.fill_diagonal(with_service, 0)
        callbacks[profile] = routing.RegisterTransitMatrix(with_service.tolist())
    evaluators = [callbacks[v.profile] for v in problem.vehicles]
    routing.AddDimensionWithVehicleTransits(evaluators, horizon, horizon, False, "time")
    dim = routing.GetDimensionOrDie("time")
    n_depots = len(problem.depots)
    for node in range(n_depots, len(m.node_row)):
        stop = problem.stops[m.drops[m.candidates[node - n_depots]].stop_index]
        if not stop.windows:
            continue
        idx = manager.NodeToIndex(node)
        cumul = dim.CumulVar(idx)
        ws = sorted(stop.windows, key=lambda w: w.open_s)
        last_close = ws[-1].close_s
        if problem.soft_windows:
            cumul.SetRange(ws[0].open_s, horizon)
            dim.SetCumulVarSoftUpperBound(idx, last_close, problem.lateness_cost_per_s)
        else:
            cumul.SetRange(ws[0].open_s, last_close)
        for a, b in zip(ws, ws[1:], strict=False):
            cumul.RemoveInterval(a.close_s + 1, b.open_s - 1)
    solver = routing.solver()
    visit = [0] * routing.Size()
    for idx in range(routing.Size()):
        if not routing.IsEnd(idx):
            visit[idx] = int(m.service[manager.IndexToNode(idx)])
    for v, vehicle in enumerate(problem.vehicles):
        start, end = dim.CumulVar(routing.Start(v)), dim.CumulVar(routing.End(v))
        start.SetRange(vehicle.shift_start_s, vehicle.shift_end_s)
        end.SetRange(vehicle.shift_start_s, vehicle.shift_end_s)
        if vehicle.max_duration_s is not None:
            dim.SetSpanUpperBoundForVehicle(int(vehicle.max_duration_s), v)
        if vehicle.break_ is not None:
            brk = vehicle.break_
            interval = solver.FixedDurationIntervalVar(brk.earliest_start_s, brk.latest_start_s,
                                                       brk.duration_s, False, f"break {vehicle.id}")
            dim.SetBreakIntervalsOfVehicle([interval], v, visit)
    # come back as early as possible, then leave as late as that allows: no idle time on the road
    for v in range(len(problem.vehicles)):
        routing.AddVariableMinimizedByFinalizer(dim.CumulVar(routing.End(v)))
    for v in range(len(problem.vehicles)):
        routing.AddVariableMaximizedByFinalizer(dim.CumulVar(routing.Start(v)))
    return dim


def _add_capacities(routing, manager, m: _Model) -> None:
    n_depots = len(m.problem.depots)
    for d, name in enumerate(Load.DIMENSIONS):
        demand = [0] * n_depots + [m.drops[k].load.as_tuple()[d] for k in m.candidates]
        if not any(demand):
            continue
        cb = routing.RegisterUnaryTransitVector(demand)
        caps = [int(v.capacity.as_tuple()[d]) for v in m.problem.vehicles]
        routing.AddDimensionWithVehicleCapacity(cb, 0, caps, True, name)


def _add_drops(routing, manager, m: _Model, locked: Mapping[str, str]) -> dict[str, list[int]]:
    """Disjunctions, zones and locks; returns stop id -> its drops' solver indices."""
    problem = m.problem
    vehicle_no = {v.id: i for i, v in enumerate(problem.vehicles)}
    for stop_id, vid in locked.items():
        if vid not in vehicle_no:
            raise RoutingInputError(f"locked to unknown vehicle {vid!r}", record=stop_id,
                                    field="locked")
    n_depots = len(problem.depots)
    by_zone = {z: [i for i, v in enumerate(problem.vehicles) if z in v.zones] for z in TempZone}
    drops_of_stop: dict[str, list[int]] = {}
    for node in range(n_depots, len(m.node_row)):
        drop = m.drops[m.candidates[node - n_depots]]
        stop = problem.stops[drop.stop_index]
        idx = manager.NodeToIndex(node)
        drops_of_stop.setdefault(stop.id, []).append(idx)
        routing.AddDisjunction([idx], m.penalty)
        allowed = by_zone[drop.zone]
        if stop.id in locked:
            allowed = [v for v in allowed if v == vehicle_no[locked[stop.id]]]
        if len(allowed) < len(problem.vehicles):
            # -1 is "not performed"; SetAllowedVehiclesForIndex's Span does not bind in Python
            routing.VehicleVar(idx).SetValues([-1, *allowed])
    return drops_of_stop


def _read_routes(routing, manager, m: _Model, drops_of_stop: dict[str, list[int]],
                 initial: Mapping[str, Sequence[str]]):
    vehicle_no = {v.id: i for i, v in enumerate(m.problem.vehicles)}
    routes: list[list[int]] = [[] for _ in m.problem.vehicles]
    used: set[int] = set()
    for vid, stop_ids in initial.items():
        if vid not in vehicle_no:
            continue
        for sid in stop_ids:
            for idx in drops_of_stop.get(sid, []):
                if idx not in used:
                    used.add(idx)
                    routes[vehicle_no[vid]].append(idx)
    return routing.ReadAssignmentFromRoutes(routes, True)


# ---------------------------------------------------------------------------------------------
# Reading the solution back


def _read_plan(routing, manager, solution, time_dim, m: _Model, status: str,
               first_s: float | None, solve_s: float, first_complete_s: float | None) -> Plan:
    problem = m.problem
    n_depots = len(problem.depots)
    routes: list[Route] = []
    served: set[int] = set()
    total_dist = total_fixed = total_late = 0
    for v, vehicle in enumerate(problem.vehicles):
        idx = routing.Start(v)
        if routing.IsEnd(solution.Value(routing.NextVar(idx))):
            continue
        if time_dim is not None:
            start_s = solution.Value(time_dim.CumulVar(idx))
        else:
            start_s = vehicle.shift_start_s
        t = start_s
        dist = 0
        nodes: list[tuple[int, int]] = []  # (solver node, service start)
        prev = manager.IndexToNode(idx)
        while not routing.IsEnd(idx):
            idx = solution.Value(routing.NextVar(idx))
            node = manager.IndexToNode(idx)
            dist += int(m.dist[prev, node])
            if time_dim is not None:
                t = solution.Value(time_dim.CumulVar(idx))
            elif not m.same_stop[prev, node]:  # no time dimension: add up the transits
                t += int(m.service[prev]) + int(m.times[vehicle.profile][prev, node])
            prev = node
            if not routing.IsEnd(idx):
                nodes.append((node, t))
        end_s = t
        visits = _merge_visits(m, nodes)
        served.update(m.candidates[node - n_depots] for node, _ in nodes)
        on_board = Load()
        for visit in visits:
            on_board = on_board + visit.delivered
        load_at_start = on_board
        final: list[Visit] = []
        for visit in visits:
            on_board = on_board - visit.delivered
            final.append(Visit(visit.stop_id, visit.zones, visit.delivered, visit.arrival_s,
                               visit.departure_s, on_board, visit.lateness_s))
        late = sum(vs.lateness_s for vs in final)
        total_dist += dist
        total_fixed += vehicle.fixed_cost
        total_late += late
        routes.append(Route(vehicle.id, start_s, end_s, tuple(final), dist, end_s - start_s,
                            load_at_start))
    unassigned = _unassigned(m, served)
    cost = PlanCost(distance_m=total_dist, vehicles_used=len(routes), fixed_cost=total_fixed,
                    lateness_s=total_late,
                    total=total_dist + total_fixed + total_late * problem.lateness_cost_per_s)
    return Plan(tuple(routes), unassigned, cost, status, first_s, solve_s, first_complete_s,
                solution.ObjectiveValue())


def _merge_visits(m: _Model, nodes: list[tuple[int, int]]) -> list[Visit]:
    """Consecutive drops of one stop become one visit (they share the stop's service time)."""
    problem = m.problem
    n_depots = len(problem.depots)
    out: list[Visit] = []
    for node, t in nodes:
        drop = m.drops[m.candidates[node - n_depots]]
        stop: Stop = problem.stops[drop.stop_index]
        departure = t + stop.service_s
        if out and out[-1].stop_id == stop.id:
            last = out[-1]
            zones = last.zones if drop.zone in last.zones else last.zones + (drop.zone,)
            # the shared service starts at the last drop's time (earlier ones may show slack)
            out[-1] = Visit(stop.id, zones, last.delivered + drop.load, t, departure, Load(),
                            max(last.lateness_s, _lateness(problem, stop, t)))
            continue
        out.append(Visit(stop.id, (drop.zone,), drop.load, t, departure, Load(),
                         _lateness(problem, stop, t)))
    return out


def _lateness(problem: Problem, stop: Stop, t: int) -> int:
    if problem.soft_windows and stop.windows:
        return max(0, t - max(w.close_s for w in stop.windows))
    return 0


def _unassigned(m: _Model, served: set[int]) -> tuple[Unassigned, ...]:
    out: list[Unassigned] = []
    seen: set[tuple[int, TempZone]] = set()
    for k, drop in enumerate(m.drops):
        if k in served:
            continue
        if (drop.stop_index, drop.zone) in seen:
            continue  # parts of one split drop are reported once
        seen.add((drop.stop_index, drop.zone))
        reason = m.rejected.get(k, UnassignedReason.FLEET_EXHAUSTED)
        demand = Load()
        for j, other in enumerate(m.drops):
            if j not in served and other.stop_index == drop.stop_index and other.zone == drop.zone:
                demand = demand + other.load
        out.append(Unassigned(m.problem.stops[drop.stop_index].id, drop.zone, reason, demand))
    return tuple(out)


def _empty_plan(m: _Model, status: str, t0: float) -> Plan:
    cost = PlanCost(0, 0, 0, 0, 0)
    return Plan((), _unassigned(m, set()), cost, status, None, time.perf_counter() - t0)
