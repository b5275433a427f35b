"""Large problems: solve the whole, then re-solve groups of neighbouring routes as small problems.

On 1,000 stops one local-search descent of the whole takes seconds, so few improvement steps fit
in the time limit. Routes do not interact (no constraint spans two vehicles), so a group of a few
close routes with their stops and vehicles is a problem of its own: re-solved, it replaces the
group only if it serves the same stops at a lower cost.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from .matrix import MatrixCache, build_matrices
from .model import Plan, PlanCost, Problem, Route
from .search import SearchConfig

__all__ = ["can_decompose", "improve_by_route_groups"]


def can_decompose(problem: Problem) -> bool:
    """Only where a stop is one solver node (one drop, not split) and objectives are per route."""
    return not problem.split_oversized and all(len(s.drops) <= 1 for s in problem.stops)


# solve(problem, time_limit_s=..., seed=..., search=...) -> Plan: the planner hands itself in,
# so this module never imports it (no import circle)
Solve = Callable[..., Plan]


def improve_by_route_groups(
    problem: Problem,
    plan: Plan,
    *,
    solve: Solve,
    deadline: float,
    seed: int,
    config: SearchConfig,
    cache: MatrixCache | None = None,
) -> Plan:
    """Re-solve groups of `config.decompose_routes` close routes until `deadline` (perf_counter)
    with `solve`; a group's new routes replace the old ones only if all stops stay served and
    the cost drops."""
    dist, times = build_matrices(problem, cache)
    n_depots = len(problem.depots)
    row = {s.id: n_depots + i for i, s in enumerate(problem.stops)}
    stop_by_id = {s.id: s for s in problem.stops}
    vehicle_by_id = {v.id: v for v in problem.vehicles}
    sub_config = replace(config, decompose_threshold=None)
    rng = random.Random(seed)
    routes = {r.vehicle_id: r for r in plan.routes}
    order: list[str] = []
    while time.perf_counter() < deadline - 0.2 and len(routes) > 1:
        if not order:
            order = list(routes)
            rng.shuffle(order)
        seed_vehicle = order.pop()
        if seed_vehicle not in routes:
            continue
        group = _close_routes(routes, seed_vehicle, dist, row, config.decompose_routes)
        stops = [stop_by_id[s] for vid in group for s in routes[vid].stop_ids]
        keep = list(range(n_depots)) + [row[s.id] for s in stops]
        ix = np.ix_(keep, keep)
        sub = Problem(
            problem.depots,
            tuple(stops),
            tuple(vehicle_by_id[v] for v in group),
            distance_m=dist[ix],
            travel_s={p: t[ix] for p, t in times.items()},
            soft_windows=problem.soft_windows,
            lateness_cost_per_s=problem.lateness_cost_per_s,
        )
        budget = min(config.decompose_sub_s, deadline - time.perf_counter())
        if budget < 0.2:
            break
        old_cost = sum(_route_cost(routes[v], problem) for v in group)
        better = solve(sub, time_limit_s=budget, seed=rng.randrange(1 << 30), search=sub_config)
        if not better.unassigned and better.cost.total < old_cost:
            for v in group:
                del routes[v]
            routes.update({r.vehicle_id: r for r in better.routes})
    return _combine(plan, problem, routes)


def _close_routes(
    routes: dict[str, Route], seed_vehicle: str, dist: np.ndarray, row: dict[str, int], size: int
) -> list[str]:
    mine = [row[s] for s in routes[seed_vehicle].stop_ids]
    scored = []
    for vid, route in routes.items():
        if vid == seed_vehicle:
            continue
        theirs = [row[s] for s in route.stop_ids]
        scored.append((float(dist[np.ix_(mine, theirs)].mean()), vid))
    scored.sort()
    return [seed_vehicle] + [vid for _, vid in scored[: size - 1]]


def _route_cost(route: Route, problem: Problem) -> int:
    fixed = next(v.fixed_cost for v in problem.vehicles if v.id == route.vehicle_id)
    late = sum(v.lateness_s for v in route.visits) * problem.lateness_cost_per_s
    return route.distance_m + fixed + late


def _combine(plan: Plan, problem: Problem, routes: dict[str, Route]) -> Plan:
    order = {v.id: i for i, v in enumerate(problem.vehicles)}
    kept = tuple(sorted(routes.values(), key=lambda r: order[r.vehicle_id]))
    distance = sum(r.distance_m for r in kept)
    fixed = sum(v.fixed_cost for v in problem.vehicles if v.id in routes)
    late = sum(v.lateness_s for r in kept for v in r.visits)
    total = distance + fixed + late * problem.lateness_cost_per_s
    penalties = (plan.solver_objective or plan.cost.total) - plan.cost.total
    return replace(
        plan,
        routes=kept,
        cost=PlanCost(distance, len(kept), fixed, late, total),
        solver_objective=total + penalties,
    )
