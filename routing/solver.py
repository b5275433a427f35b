"""The OR-Tools engine: a prepared problem becomes a RoutingModel, the search runs, routes come back.

Solver nodes are the depots, then one node per candidate (stop, zone) drop (`prepare.py`), so each
zone may ride on a different vehicle; drops of one stop share its location and, back to back, one
service time. Every drop is optional with a penalty larger than anything serving it can cost, so a
small fleet gives unassigned stops, never an exception. This engine expresses the whole model:
breaks, soft windows, locks and several windows.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
from ortools.constraint_solver import pywrapcp, routing_enums_pb2

from .model import UNREACHABLE, Engine, Load, Plan, TempZone
from .prepare import Prepared, build_plan, build_route, empty_plan
from .search import SearchConfig, search_parameters

__all__ = ["solve_ortools"]

_STATUS = routing_enums_pb2.RoutingSearchStatus.DESCRIPTOR.enum_types_by_name["Value"]


def solve_ortools(
    m: Prepared,
    *,
    t0: float,
    deadline: float,
    seed: int,
    config: SearchConfig,
    solution_limit: int | None = None,
    locked: Mapping[str, str] | None = None,
    start: Mapping[int, Sequence[int]] | None = None,
    cold_if_refused: bool = True,
) -> Plan:
    """Search until `deadline` (perf_counter); `start` (vehicle index -> drop numbers in order)
    is a warm start. Times in the plan count from `t0`, the caller's start. When OR-Tools refuses
    the start (cannot read it, or cannot search from it), it builds its own first plan, or with
    `cold_if_refused=False` returns no plan (status timed out, `engine_status` "start refused")."""
    problem = m.problem
    n_vehicles = len(problem.vehicles)
    n_nodes = m.n_depots + len(m.candidates)
    depot_of = {d.id: i for i, d in enumerate(problem.depots)}
    starts = [depot_of[v.start_depot] for v in problem.vehicles]
    ends = [depot_of[v.end] for v in problem.vehicles]
    manager = pywrapcp.RoutingIndexManager(n_nodes, n_vehicles, starts, ends)
    routing = pywrapcp.RoutingModel(manager)
    # Measured (OR-Tools 9.15): this does NOT reach ILS's ruin-and-recreate, which keeps its own
    # generator; under a solution limit, every seed gives the same plan (pinned by
    # test_ortools_seed_does_not_reach_ruin_and_recreate). It still seeds the solver's own
    # randomised choices, if a configuration uses any.
    routing.solver().ReSeed(seed)

    dist_cb = routing.RegisterTransitMatrix(m.dist.tolist())
    routing.SetArcCostEvaluatorOfAllVehicles(dist_cb)

    time_dim = _add_time(routing, manager, m) if _time_can_bind(m) else None
    _add_capacities(routing, manager, m)
    _add_drops(routing, manager, m, locked or {})
    for v, vehicle in enumerate(problem.vehicles):
        if vehicle.fixed_cost:
            routing.SetFixedCostOfVehicle(int(vehicle.fixed_cost), v)

    first: list[float] = []
    first_complete: list[float] = []
    drop_indices = [manager.NodeToIndex(n) for n in range(m.n_depots, n_nodes)]

    def on_solution() -> None:
        now = time.perf_counter() - t0
        if not first:
            first.append(now)
        if not first_complete and all(routing.NextVar(i).Value() != i for i in drop_indices):
            first_complete.append(now)

    routing.AddAtSolutionCallback(on_solution)
    solution = None
    warm = None
    if start:
        warm = _read_routes(routing, manager, m, start)
        if warm is None and not cold_if_refused:
            return empty_plan(
                m,
                engine=Engine.ORTOOLS,
                engine_status="start refused",
                solve_s=time.perf_counter() - t0,
                found=False,
            )
    # the limit is the caller's: matrices and model building came out of it
    search_s = max(0.05, deadline - time.perf_counter())
    if warm is not None:
        # ILS cannot start from an assignment: a warm start runs the warm metaheuristic (GLS)
        params = search_parameters(
            config,
            time_limit_s=search_s,
            num_nodes=n_nodes,
            solution_limit=solution_limit,
            warm_start=True,
        )
        solution = routing.SolveFromAssignmentWithParameters(warm, params)
    else:
        params = search_parameters(
            config, time_limit_s=search_s, num_nodes=n_nodes, solution_limit=solution_limit
        )
        if config.iterated_local_search is not None:
            solution = routing.SolveWithIteratedLocalSearch(params)
        else:
            solution = routing.SolveWithParameters(params)
    if solution is None and warm is not None and not cold_if_refused:
        # measured on city-1000: OR-Tools reads the routes, then fails to place the breaks
        return empty_plan(
            m,
            engine=Engine.ORTOOLS,
            engine_status="start refused",
            solve_s=time.perf_counter() - t0,
            found=False,
        )
    if solution is None:  # the construction failed: start from nothing served, then improve
        params = search_parameters(
            config,
            time_limit_s=max(0.1, deadline - time.perf_counter()),
            num_nodes=n_nodes,
            solution_limit=solution_limit,
            warm_start=True,
        )
        params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.ALL_UNPERFORMED
        solution = routing.SolveWithParameters(params)
    # the model's own status; SolveWithIteratedLocalSearch leaves ROUTING_NOT_SOLVED even when
    # it returns a solution, which is why Plan.status is decided from the plan, not from this
    engine_status = _STATUS.values_by_number[routing.status()].name
    if solution is None:
        return empty_plan(
            m,
            engine=Engine.ORTOOLS,
            engine_status=engine_status,
            solve_s=time.perf_counter() - t0,
            found=False,
        )
    return _read_plan(
        routing,
        manager,
        solution,
        time_dim,
        m,
        engine_status,
        first[0] if first else None,
        t0,
        first_complete[0] if first_complete else None,
    )


# ---------------------------------------------------------------------------------------------
# Building the model


def _time_can_bind(m: Prepared) -> bool:
    """False when no route could ever break a window, shift or break rule (e.g. plain CVRP):
    the time dimension is then left out, which makes the search much faster on large instances,
    and times are read back by adding up the route's transits."""
    problem = m.problem
    if problem.soft_windows or any(
        v.break_ or v.max_duration_s is not None for v in problem.vehicles
    ):
        return True
    if any(problem.stops[m.drops[k].stop_index].windows for k in m.candidates):
        return True
    worst_route = 0
    for t in m.times.values():
        reach = np.where(t >= UNREACHABLE, 0, t)
        worst_route = max(worst_route, int(reach.max(axis=1).sum() + m.service.sum()))
    shortest_shift = min(v.shift_end_s - v.shift_start_s for v in problem.vehicles)
    return worst_route > shortest_shift


def _add_time(routing, manager, m: Prepared):
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
            interval = solver.FixedDurationIntervalVar(
                brk.earliest_start_s,
                brk.latest_start_s,
                brk.duration_s,
                False,
                f"break {vehicle.id}",
            )
            dim.SetBreakIntervalsOfVehicle([interval], v, visit)
    # come back as early as possible, then leave as late as that allows: no idle time on the road
    for v in range(len(problem.vehicles)):
        routing.AddVariableMinimizedByFinalizer(dim.CumulVar(routing.End(v)))
    for v in range(len(problem.vehicles)):
        routing.AddVariableMaximizedByFinalizer(dim.CumulVar(routing.Start(v)))
    return dim


def _add_capacities(routing, manager, m: Prepared) -> None:
    n_depots = len(m.problem.depots)
    for d, name in enumerate(Load.DIMENSIONS):
        demand = [0] * n_depots + [m.drops[k].load.as_tuple()[d] for k in m.candidates]
        if not any(demand):
            continue
        cb = routing.RegisterUnaryTransitVector(demand)
        caps = [int(v.capacity.as_tuple()[d]) for v in m.problem.vehicles]
        routing.AddDimensionWithVehicleCapacity(cb, 0, caps, True, name)


def _add_drops(routing, manager, m: Prepared, locked: Mapping[str, str]) -> None:
    """Disjunctions, zones and locks (unknown ids were refused by `prepare`)."""
    problem = m.problem
    vehicle_no = {v.id: i for i, v in enumerate(problem.vehicles)}
    by_zone = {z: [i for i, v in enumerate(problem.vehicles) if z in v.zones] for z in TempZone}
    for node in range(m.n_depots, len(m.node_row)):
        drop = m.drops[m.candidates[node - m.n_depots]]
        stop = problem.stops[drop.stop_index]
        idx = manager.NodeToIndex(node)
        routing.AddDisjunction([idx], m.penalty)
        allowed = by_zone[drop.zone]
        if stop.id in locked:
            allowed = [v for v in allowed if v == vehicle_no[locked[stop.id]]]
        if len(allowed) < len(problem.vehicles):
            # -1 is "not performed"; SetAllowedVehiclesForIndex's Span does not bind in Python
            routing.VehicleVar(idx).SetValues([-1, *allowed])


def _read_routes(routing, manager, m: Prepared, start: Mapping[int, Sequence[int]]):
    """The warm start as an assignment, or None when OR-Tools refuses it (e.g. a lock moved)."""
    node_of = m.node_of()
    routes: list[list[int]] = [[] for _ in m.problem.vehicles]
    used: set[int] = set()
    for v, drops in start.items():
        for k in drops:
            if k in node_of and k not in used:
                used.add(k)
                routes[v].append(manager.NodeToIndex(node_of[k]))
    return routing.ReadAssignmentFromRoutes(routes, True)


# ---------------------------------------------------------------------------------------------
# Reading the solution back


def _read_plan(
    routing,
    manager,
    solution,
    time_dim,
    m: Prepared,
    engine_status: str,
    first_s: float | None,
    t0: float,
    first_complete_s: float | None,
) -> Plan:
    problem = m.problem
    routes = []
    served: set[int] = set()
    for v, vehicle in enumerate(problem.vehicles):
        idx = routing.Start(v)
        if routing.IsEnd(solution.Value(routing.NextVar(idx))):
            continue
        start_s = (
            solution.Value(time_dim.CumulVar(idx))
            if time_dim is not None
            else vehicle.shift_start_s
        )
        t = start_s
        nodes: list[tuple[int, int]] = []  # (solver node, service start)
        prev = manager.IndexToNode(idx)
        while not routing.IsEnd(idx):
            idx = solution.Value(routing.NextVar(idx))
            node = manager.IndexToNode(idx)
            if time_dim is not None:
                t = solution.Value(time_dim.CumulVar(idx))
            elif not m.same_stop[prev, node]:  # no time dimension: add up the transits
                t += int(m.service[prev]) + int(m.times[vehicle.profile][prev, node])
            prev = node
            if not routing.IsEnd(idx):
                nodes.append((node, t))
        served.update(m.candidates[node - m.n_depots] for node, _ in nodes)
        routes.append(build_route(m, v, nodes, start_s, t))
    return build_plan(
        m,
        routes,
        served,
        engine=Engine.ORTOOLS,
        engine_status=engine_status,
        first_s=first_s,
        solve_s=time.perf_counter() - t0,
        first_complete_s=first_complete_s,
        solver_objective=solution.ObjectiveValue(),
    )
