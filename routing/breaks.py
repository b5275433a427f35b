"""Driver breaks through PyVRP: solve a break-relaxed copy, fit each break, let OR-Tools finish.

PyVRP cannot express a break, and on large problems OR-Tools' construction does not finish (city-1000:
1,692 drops, no first plan in 20 s). So: `relax_breaks` reserves every break's time instead (its
duration off the vehicle's maximum duration and off the end of its shift); PyVRP solves that copy;
`fit_breaks` places each break in its route as `check.recheck` reads it (before the route, after it,
or in the slack of one leg, starting within its window), and takes out the stops that keep it from
fitting; OR-Tools then starts from those routes, puts back what was taken out and improves.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from .model import Engine, Load, Plan, Problem, Vehicle
from .prepare import Prepared, build_plan, build_route, drops_of, prepare, transit
from .pyvrp_engine import required_try_until, search_routes
from .search import SearchConfig
from .solver import solve_ortools

__all__ = [
    "ORTOOLS_WARM_MAX_DROPS",
    "PYVRP_SHARE",
    "fit_breaks",
    "plan_with_breaks",
    "relax_breaks",
]

# PyVRP's share of the time left after the matrices, when OR-Tools follows (measured on city-200
# at 20 s, docs/routing.md "Driver breaks": 0.3 / 0.5 / 0.7 / 0.9 gave 991 / 1,003-1,010 / 986 /
# 985 thousand after OR-Tools, and PyVRP's own part improves with its share)
PYVRP_SHARE = 0.9
# OR-Tools starts from the fitted routes only below this many candidate drops: on city-1000
# (1,692) reading the routes with the breaks took 3.5-4.5 s and it then failed to search from them
# (city-200, 345 drops: read at once, 1-2 % cheaper in 2-14 s); above it, PyVRP runs to the end
ORTOOLS_WARM_MAX_DROPS = 1000
# what fitting the breaks, inserting what it took out and the re-check need after PyVRP stops
_FINISH_S = 0.5
# OR-Tools is not started with less than this left, plus this per drop: building its model and
# reading the routes with breaks took ~0.2 s for 345 drops and ~5 s for 1,692 (loaded machine)
_ORTOOLS_MIN_S = 0.5
_ORTOOLS_PER_DROP_S = 0.003

# places tried per drop left off, cheapest first: each try simulates the route once per leg
_INSERT_TRIES = 50

# one (stop, zone) drop number per entry, in visiting order, per vehicle index
DropRoutes = Mapping[int, Sequence[int]]


def relax_breaks(problem: Problem) -> Problem:
    """The problem without breaks, each break's time reserved instead: a vehicle with a break
    loses its duration from its maximum duration and from the end of its shift."""
    return replace(problem, vehicles=tuple(_relaxed(v) for v in problem.vehicles))


def _relaxed(v: Vehicle) -> Vehicle:
    if v.break_ is None:
        return v
    pause = v.break_.duration_s
    longest = None if v.max_duration_s is None else max(0, v.max_duration_s - pause)
    return replace(
        v,
        break_=None,
        max_duration_s=longest,
        shift_end_s=max(v.shift_start_s, v.shift_end_s - pause),
    )


def plan_with_breaks(
    p: Prepared,
    *,
    t0: float,
    deadline: float,
    seed: int,
    config: SearchConfig,
    keep: Callable[[Plan], Plan | None],
    start: DropRoutes | None = None,
    pyvrp_share: float | None = None,
) -> bool:
    """PyVRP on the break-relaxed problem, each break fitted and what that took out inserted
    again where it fits (`fit_breaks`), then, below `ORTOOLS_WARM_MAX_DROPS`, OR-Tools from those
    routes for the last `1 - pyvrp_share` of the time, until `deadline` (perf_counter). Every
    plan goes to `keep` (the planner's re-check): the first feasible PyVRP solution, fitted as
    soon as PyVRP finds it (the call's first plan), PyVRP's best, fitted, and OR-Tools' plan.
    False when PyVRP found no feasible plan by `required_try_until` (or the fleet cannot hold
    everything): the caller has the rest of the time."""
    relaxed = prepare(relax_breaks(p.problem), p.dist_rows, p.time_rows)
    if not relaxed.candidates:  # every drop needs the time the breaks' reservation takes
        return False
    share = PYVRP_SHARE if pyvrp_share is None else pyvrp_share
    warm_start = len(p.candidates) < ORTOOLS_WARM_MAX_DROPS

    def first_feasible(routes: dict[int, list[int]]) -> None:
        keep(
            fit_breaks(
                p,
                routes,
                t0=t0,
                deadline=deadline,
                status="first feasible PyVRP plan, breaks fitted",
            )
        )

    now = time.perf_counter()
    pyvrp_end = now + share * (deadline - now) if warm_start else deadline - _FINISH_S
    give_up_at = required_try_until(t0, deadline, len(relaxed.candidates))
    found = search_routes(
        relaxed,
        give_up_at=give_up_at,
        deadline=pyvrp_end,
        seed=seed,
        start=start,
        on_first_feasible=first_feasible,
    )
    if found is None:
        return False
    routes, status = found
    fitted = fit_breaks(
        p, routes, t0=t0, deadline=deadline, status=f"PyVRP {status}, breaks fitted"
    )
    keep(fitted)
    needs = _ORTOOLS_MIN_S + _ORTOOLS_PER_DROP_S * len(p.candidates)
    if not warm_start or deadline - time.perf_counter() < needs:
        return True
    ot = solve_ortools(
        p,
        t0=t0,
        deadline=deadline,
        seed=seed,
        config=config,
        start=drops_of(p, fitted),
        cold_if_refused=False,
    )
    keep(replace(ot, engine=Engine.PYVRP_RELAXED_ORTOOLS))
    return True


# ---------------------------------------------------------------------------------------------
# Fitting the breaks


def fit_breaks(
    p: Prepared, routes: DropRoutes, *, t0: float, status: str, deadline: float | None = None
) -> Plan:
    """A plan of the whole problem from routes of drop numbers (vehicle index -> drops): every
    route scheduled with its vehicle's break where `check.recheck` accepts it; where it fits
    nowhere, stops are taken out (`_fit_route`); then every candidate drop left off a route is
    inserted where it fits best (`_insert_left`, until `deadline`), and what is still left comes
    back unassigned with its reason. Routes of vehicles without a break are scheduled the same
    way (from the relaxed problem, they fit as they are)."""
    node_of = p.node_of()
    kept = {
        v: _fit_route(p, v, [node_of[k] for k in drops if k in node_of])
        for v, drops in routes.items()
    }
    _insert_left(p, kept, deadline)
    out = []
    served: set[int] = set()
    for v in sorted(kept):
        nodes = kept[v]
        timed = _schedule_with_break(p, v, nodes) if nodes else None
        if timed is None:
            continue
        times, start_s, end_s = timed
        served.update(p.candidates[n - p.n_depots] for n in nodes)
        out.append(build_route(p, v, list(zip(nodes, times, strict=True)), start_s, end_s))
    first = time.perf_counter() - t0
    return build_plan(
        p,
        out,
        served,
        engine=Engine.PYVRP_RELAXED,
        engine_status=status,
        first_s=first,
        solve_s=first,
        first_complete_s=first if len(served) == len(p.candidates) else None,
    )


def _insert_left(p: Prepared, routes: dict[int, list[int]], deadline: float | None) -> None:
    """Each candidate drop on no route, in turn, goes where it adds the least distance (plus the
    fixed cost of a vehicle not used yet) among the places where its zone, the capacity and the
    schedule with the break allow it (the `_INSERT_TRIES` cheapest places are tried); drops with
    no such place stay left."""
    problem = p.problem
    on_route = {n for nodes in routes.values() for n in nodes}
    left = [n for n in p.node_of().values() if n not in on_route]
    for node in left:
        if deadline is not None and time.perf_counter() > deadline - _FINISH_S / 2:
            return
        drop = p.drops[p.candidates[node - p.n_depots]]
        options: list[tuple[int, int, int]] = []  # (added cost, vehicle, position)
        for v, vehicle in enumerate(problem.vehicles):
            nodes = routes.get(v, [])
            if drop.zone not in vehicle.zones or not (_load(p, nodes) + drop.load).fits_in(
                vehicle.capacity
            ):
                continue
            first, last = _depot_nodes(p, v)
            path = [first, *nodes, last]
            fixed = 0 if nodes else vehicle.fixed_cost
            for i in range(len(path) - 1):
                a, b = path[i], path[i + 1]
                added = int(p.dist[a, node]) + int(p.dist[node, b]) - int(p.dist[a, b])
                options.append((added + fixed, v, i))
        for _, v, i in sorted(options)[:_INSERT_TRIES]:
            nodes = routes.get(v, [])
            trial = nodes[:i] + [node] + nodes[i:]
            if _schedule_with_break(p, v, trial) is not None:
                routes[v] = trial
                break


def _load(p: Prepared, nodes: list[int]) -> Load:
    total = Load()
    for n in nodes:
        total = total + p.drops[p.candidates[n - p.n_depots]].load
    return total


Schedule = tuple[list[int], int, int]  # service starts, start, end


def _fit_route(p: Prepared, v: int, nodes: list[int]) -> list[int]:
    """The route's nodes that keep: while the break fits nowhere, one stop (all its consecutive
    drops) is taken out -- the one whose removal lets it fit, losing the fewest drops and then
    saving the most distance; if no single removal does, the stop with a window served nearest
    to the middle of the break's window."""
    while nodes and _schedule_with_break(p, v, nodes) is None:
        groups = _stop_groups(p, nodes)
        best: tuple[int, int, int] | None = None  # (drops lost, -distance saved, group)
        for g, (a, b) in enumerate(groups):
            if _schedule_with_break(p, v, nodes[:a] + nodes[b:]) is not None:
                score = (b - a, -_saving(p, v, nodes, a, b), g)
                best = score if best is None or score < best else best
        g = best[2] if best is not None else _nearest_to_break(p, v, nodes, groups)
        a, b = groups[g]
        nodes = nodes[:a] + nodes[b:]
    return nodes


def _stop_groups(p: Prepared, nodes: list[int]) -> list[tuple[int, int]]:
    """[a, b) index ranges of consecutive drops of one stop (one visit)."""
    groups: list[tuple[int, int]] = []
    for i, n in enumerate(nodes):
        if groups and p.same_stop[nodes[i - 1], n]:
            groups[-1] = (groups[-1][0], i + 1)
        else:
            groups.append((i, i + 1))
    return groups


def _saving(p: Prepared, v: int, nodes: list[int], a: int, b: int) -> int:
    """Distance saved by taking nodes[a:b] out of the route."""
    first, last = _depot_nodes(p, v)
    path = [first, *nodes, last]
    before, after = path[a], path[b + 1]
    kept = int(p.dist[before, after])
    cut = sum(int(p.dist[x, y]) for x, y in zip(path[a : b + 1], path[a + 1 : b + 2], strict=True))
    return cut - kept


def _nearest_to_break(p: Prepared, v: int, nodes: list[int], groups: list[tuple[int, int]]) -> int:
    """The group to give up when no single removal lets the break fit: among stops with a
    window (those are what pin the route around the break), the one served nearest to the
    middle of the break's window in the schedule without the break."""
    vehicle = p.problem.vehicles[v]
    brk = vehicle.break_
    middle = 0 if brk is None else (brk.earliest_start_s + brk.latest_start_s) // 2
    timed = _schedule(p, v, nodes, vehicle.shift_start_s, None)
    times = timed[0] if timed is not None else [middle] * len(nodes)

    def key(g: int) -> tuple[bool, int]:
        a, _ = groups[g]
        windowed = bool(_stop(p, nodes[a]).windows)
        return (not windowed, abs(times[a] - middle))

    return min(range(len(groups)), key=key)


def _schedule_with_break(p: Prepared, v: int, nodes: list[int]) -> Schedule | None:
    """A schedule of the route that leaves its vehicle's break room (no break: any feasible
    schedule), the shortest on the road for that; None when there is none."""
    vehicle = p.problem.vehicles[v]
    brk = vehicle.break_
    if brk is None:
        return _latest_start(p, v, nodes, vehicle.shift_start_s, None)
    # no break on the road: the route ends before the break may start, or starts after it
    ahead = _latest_start(p, v, nodes, vehicle.shift_start_s, None)
    if ahead is not None and ahead[2] <= brk.latest_start_s:
        return ahead
    later = _latest_start(
        p, v, nodes, max(vehicle.shift_start_s, brk.earliest_start_s + brk.duration_s), None
    )
    if later is not None:
        return later
    for leg in range(len(nodes) + 1):
        timed = _latest_start(p, v, nodes, vehicle.shift_start_s, leg)
        if timed is not None:
            return timed
    return None


def _latest_start(
    p: Prepared, v: int, nodes: list[int], earliest: int, leg: int | None
) -> Schedule | None:
    """The schedule starting no earlier than `earliest` that comes back first and, for that, leaves
    latest (the least time on the road); None when it breaks a window, the shift or the maximum
    duration. Times only grow with the start, so the latest start keeping the earliest return is
    found by bisection."""
    vehicle = p.problem.vehicles[v]
    first = _schedule(p, v, nodes, earliest, leg)
    if first is None or first[1] > vehicle.shift_end_s:
        return None
    back = first[1]
    lo, hi = earliest, back
    while lo < hi:
        mid = (lo + hi + 1) // 2
        timed = _schedule(p, v, nodes, mid, leg)
        if timed is not None and timed[1] == back:
            lo = mid
        else:
            hi = mid - 1
    best = _schedule(p, v, nodes, lo, leg)
    assert best is not None
    times, end = best
    if vehicle.max_duration_s is not None and end - lo > vehicle.max_duration_s:
        return None
    return times, lo, end


def _schedule(
    p: Prepared, v: int, nodes: list[int], start_s: int, leg: int | None
) -> tuple[list[int], int] | None:
    """Earliest service starts leaving the depot at `start_s`, the break taken on leg `leg` (0:
    depot to the first node, len(nodes): the last node back; None: not on the road), waiting for
    the first window not yet closed, and the time back; None when a window closes first or the
    break's latest start passes before its leg (a leg between two drops of one stop holds none)."""
    vehicle = p.problem.vehicles[v]
    first, last = _depot_nodes(p, v)
    prev, t = first, start_s  # t: service start at prev (the start, at the depot)
    out: list[int] = []
    for i, node in enumerate([*nodes, last]):
        if i == leg:
            brk = vehicle.break_
            if brk is None or p.same_stop[prev, node]:
                return None
            begin = max(t + int(p.service[prev]), brk.earliest_start_s)
            if begin > brk.latest_start_s:
                return None
            t = (
                begin
                + brk.duration_s
                - int(p.service[prev])
                + transit(p, vehicle.profile, prev, node)
            )
        else:
            t = t + transit(p, vehicle.profile, prev, node)
        if i == len(nodes):
            return out, t
        windows = _stop(p, node).windows
        if windows:
            open_ = [w for w in sorted(windows, key=lambda w: w.open_s) if w.close_s >= t]
            if not open_:
                return None
            t = max(t, open_[0].open_s)
        out.append(t)
        prev = node
    raise AssertionError("unreachable")  # the loop returns at the end depot


def _depot_nodes(p: Prepared, v: int) -> tuple[int, int]:
    vehicle = p.problem.vehicles[v]
    depot_node = {d.id: i for i, d in enumerate(p.problem.depots)}
    return depot_node[vehicle.start_depot], depot_node[vehicle.end]


def _stop(p: Prepared, node: int):
    return p.problem.stops[p.drops[p.candidates[node - p.n_depots]].stop_index]
