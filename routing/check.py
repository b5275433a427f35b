"""The independent re-check: a `Plan` against the whole `Problem`, recomputed from the matrices.

Shares nothing with the engines or with how their routes are read back: it looks only at the
problem, its matrices (depots, then stops) and the plan's routes, visits and costs. Every plan an
engine returns passes through here before it can be returned; one that fails is discarded.
"""

from __future__ import annotations

import numpy as np

from .model import UNREACHABLE, Load, Plan, Problem, Route, TempZone, Vehicle

__all__ = ["recheck"]


def recheck(
    problem: Problem, plan: Plan, dist: np.ndarray, times: dict[str, np.ndarray]
) -> list[str]:
    """Every rule the plan breaks, in words (empty: it passes). Checked: each (stop, zone) drop
    on one route or unassigned (never both, never neither), delivered amounts add up, zones,
    each capacity dimension, windows, travel times, shifts, maximum duration, breaks, roads that
    exist, and the cost recomputed from the matrices."""
    problems: list[str] = []
    vehicles = {v.id: v for v in problem.vehicles}
    stops = {s.id: s for s in problem.stops}
    n_depots = len(problem.depots)
    row = {s.id: n_depots + i for i, s in enumerate(problem.stops)}
    depot_row = {d.id: i for i, d in enumerate(problem.depots)}
    delivered: dict[str, Load] = {}
    where: dict[tuple[str, TempZone], int] = {}
    total_dist = total_fixed = total_late = 0
    used: set[str] = set()
    for route in plan.routes:
        vehicle = vehicles.get(route.vehicle_id)
        if vehicle is None:
            problems.append(f"route of unknown vehicle {route.vehicle_id}")
            continue
        if route.vehicle_id in used:
            problems.append(f"{route.vehicle_id}: two routes")
        used.add(route.vehicle_id)
        unknown = [v.stop_id for v in route.visits if v.stop_id not in stops]
        if unknown:
            problems.append(f"{route.vehicle_id}: unknown stops {unknown[:3]}")
            continue
        d, late = _route(
            problem, route, vehicle, dist, times[vehicle.profile], row, depot_row, problems
        )
        total_dist += d
        total_late += late
        total_fixed += vehicle.fixed_cost
        for visit in route.visits:
            delivered[visit.stop_id] = delivered.get(visit.stop_id, Load()) + visit.delivered
            for zone in visit.zones:
                where[(visit.stop_id, zone)] = where.get((visit.stop_id, zone), 0) + 1
    for u in plan.unassigned:
        if u.stop_id not in stops:
            problems.append(f"unassigned unknown stop {u.stop_id}")
            continue
        delivered[u.stop_id] = delivered.get(u.stop_id, Load()) + u.demand
        zone = u.zone if u.zone is not None else TempZone.AMBIENT
        where[(u.stop_id, zone)] = where.get((u.stop_id, zone), 0) + 1
    for stop in problem.stops:
        expected = [TempZone(z) for z, load in stop.drops.items() if not load.is_zero()]
        for zone in expected or [TempZone.AMBIENT]:
            n = where.get((stop.id, zone), 0)
            if n == 0:
                problems.append(f"{stop.id}/{zone}: neither routed nor unassigned")
            elif n > 1 and not problem.split_oversized:
                problems.append(f"{stop.id}/{zone}: appears {n} times")
        if delivered.get(stop.id, Load()) != stop.demand:
            problems.append(
                f"{stop.id}: delivered plus unassigned "
                f"{delivered.get(stop.id, Load())} is not its demand {stop.demand}"
            )
    total = total_dist + total_fixed + total_late * problem.lateness_cost_per_s
    got = (
        plan.cost.distance_m,
        plan.cost.fixed_cost,
        plan.cost.lateness_s,
        plan.cost.total,
        plan.cost.vehicles_used,
    )
    want = (total_dist, total_fixed, total_late, total, len(plan.routes))
    if got != want:
        problems.append(
            f"reported cost (distance, fixed, lateness, total, vehicles) {got} != recomputed {want}"
        )
    return problems


def _route(
    problem: Problem,
    route: Route,
    vehicle: Vehicle,
    dist: np.ndarray,
    travel: np.ndarray,
    row: dict[str, int],
    depot_row: dict[str, int],
    problems: list[str],
) -> tuple[int, int]:
    """Checks one route; returns its recomputed distance and lateness."""
    name = route.vehicle_id
    stops = {s.id: s for s in problem.stops}
    path = (
        [depot_row[vehicle.start_depot]]
        + [row[v.stop_id] for v in route.visits]
        + [depot_row[vehicle.end]]
    )
    distance = 0
    for a, b in zip(path, path[1:], strict=False):
        if dist[a, b] >= UNREACHABLE or travel[a, b] >= UNREACHABLE:
            problems.append(f"{name}: no road from row {a} to row {b}")
        distance += int(dist[a, b])
    if distance != route.distance_m:
        problems.append(f"{name}: distance {route.distance_m} != recomputed {distance}")
    # load: everything is on board at the start, each visit drops its part
    total = Load()
    for visit in route.visits:
        total = total + visit.delivered
        if not set(visit.zones) <= vehicle.zones:
            problems.append(
                f"{name}: carries {', '.join(visit.zones)} to {visit.stop_id}, "
                f"equipped for {', '.join(sorted(vehicle.zones))} only"
            )
    if not total.fits_in(vehicle.capacity):
        problems.append(f"{name}: load {_load(total)} exceeds capacity {_load(vehicle.capacity)}")
    if route.load_at_start != total:
        problems.append(f"{name}: load at start {route.load_at_start} != delivered {total}")
    # time: service starts inside a window, after the drive from the previous stop
    late = 0
    gaps: list[tuple[int, int, int]] = []  # (free from, free until, drive) for the break
    prev_row, prev_departure = path[0], route.start_s
    if not vehicle.shift_start_s <= route.start_s:
        problems.append(f"{name}: starts at {route.start_s} before its shift")
    for visit in route.visits:
        stop = stops[visit.stop_id]
        here = row[visit.stop_id]
        drive = 0 if here == prev_row else int(travel[prev_row, here])
        if visit.arrival_s < prev_departure + drive:
            problems.append(
                f"{name}: at {visit.stop_id} at {visit.arrival_s}, "
                f"cannot be there before {prev_departure + drive}"
            )
        gaps.append((prev_departure, visit.arrival_s, drive))
        if visit.departure_s != visit.arrival_s + stop.service_s:
            problems.append(f"{name}: {visit.stop_id} service is not {stop.service_s} s")
        if stop.windows:
            inside = any(w.open_s <= visit.arrival_s <= w.close_s for w in stop.windows)
            if problem.soft_windows:
                last_close = max(w.close_s for w in stop.windows)
                lateness = max(0, visit.arrival_s - last_close)
                if not inside and lateness == 0:
                    problems.append(
                        f"{name}: {visit.stop_id} served at {visit.arrival_s}, outside its windows"
                    )
                if visit.lateness_s != lateness:
                    problems.append(
                        f"{name}: {visit.stop_id} lateness {visit.lateness_s} != {lateness}"
                    )
                late += lateness
            elif not inside:
                windows = ", ".join(f"{_hm(w.open_s)}-{_hm(w.close_s)}" for w in stop.windows)
                problems.append(
                    f"{name}: {visit.stop_id} served at {_hm(visit.arrival_s)} "
                    f"({visit.arrival_s} s), outside its window {windows}"
                )
        prev_row, prev_departure = here, visit.departure_s
    back = int(travel[prev_row, path[-1]])
    if route.end_s < prev_departure + back:
        problems.append(f"{name}: back at {route.end_s}, cannot be before {prev_departure + back}")
    gaps.append((prev_departure, route.end_s, back))
    if route.end_s > vehicle.shift_end_s:
        problems.append(
            f"{name}: back at {_hm(route.end_s)} ({route.end_s} s) after its shift ends "
            f"({_hm(vehicle.shift_end_s)})"
        )
    if route.duration_s != route.end_s - route.start_s:
        problems.append(f"{name}: duration {route.duration_s} != end - start")
    if vehicle.max_duration_s is not None and route.end_s - route.start_s > vehicle.max_duration_s:
        problems.append(
            f"{name}: {route.end_s - route.start_s} s on the road, more than "
            f"{vehicle.max_duration_s}"
        )
    if vehicle.break_ is not None and not _break_fits(vehicle, route, gaps):
        problems.append(f"{name}: no room for the driver's break")
    return distance, late


def _break_fits(vehicle: Vehicle, route: Route, gaps: list[tuple[int, int, int]]) -> bool:
    """The break fits before the route, after it, or in the slack of one leg."""
    brk = vehicle.break_
    assert brk is not None
    if brk.earliest_start_s + brk.duration_s <= route.start_s or brk.latest_start_s >= route.end_s:
        return True
    for free_from, free_until, drive in gaps:
        begin = max(free_from, brk.earliest_start_s)
        if (
            begin <= brk.latest_start_s
            and free_until - free_from >= drive + brk.duration_s
            and begin + brk.duration_s <= free_until
        ):
            return True
    return False


def _load(load: Load) -> str:
    return f"{load.weight_g / 1000:g} kg, {load.volume_ml / 1000:g} L, {load.crates} crates"


def _hm(seconds: int) -> str:
    """Seconds of the planner's day as a clock (hh:mm); beyond a day, +1 day and so on."""
    days, rest = divmod(int(seconds), 86400)
    clock = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}"
    return clock if days == 0 else f"{clock} +{days}d"
