"""Why a drop cannot be served, decided on the drop alone (DESIGN.md, rule 6).

The checks run in a fixed order; a drop that passes them all but is still left out of the plan is
`fleet_exhausted`. The planner runs them before the search too, so hopeless drops never enter it.
"""

from __future__ import annotations

import numpy as np

from .model import UNREACHABLE, Drop, Problem, TimeWindow, UnassignedReason, Vehicle

__all__ = ["reason_on_its_own", "reason_when_locked", "vehicle_classes"]


def vehicle_classes(vehicles: tuple[Vehicle, ...]) -> list[Vehicle]:
    """One vehicle per group that the checks below cannot tell apart (a fleet of 1,000 is few)."""
    seen: dict[tuple, Vehicle] = {}
    for v in vehicles:
        key = (
            v.zones,
            v.capacity,
            v.start_depot,
            v.end,
            v.profile,
            v.shift_start_s,
            v.shift_end_s,
            v.max_duration_s,
        )
        seen.setdefault(key, v)
    return list(seen.values())


def reason_on_its_own(
    problem: Problem,
    drop: Drop,
    dist: np.ndarray,
    times: dict[str, np.ndarray],
    vehicles: list[Vehicle] | None = None,
) -> UnassignedReason | None:
    """The first check the drop fails, or None when some vehicle could serve it on its own.

    `vehicles` may be one representative per class of identical vehicles (see `vehicle_classes`).
    """
    with_zone = [v for v in (vehicles or problem.vehicles) if drop.zone in v.zones]
    if not with_zone:
        return UnassignedReason.NO_VEHICLE_FOR_ZONE
    fitting = [v for v in with_zone if drop.load.fits_in(v.capacity)]
    if not fitting:
        return UnassignedReason.DEMAND_EXCEEDS_EVERY_VEHICLE
    depot_row = {d.id: i for i, d in enumerate(problem.depots)}
    row = len(problem.depots) + drop.stop_index
    reachable = [
        v
        for v in fitting
        if dist[depot_row[v.start_depot], row] < UNREACHABLE
        and dist[row, depot_row[v.end]] < UNREACHABLE
        and times[v.profile][depot_row[v.start_depot], row] < UNREACHABLE
        and times[v.profile][row, depot_row[v.end]] < UNREACHABLE
    ]
    if not reachable:
        return UnassignedReason.UNREACHABLE_LOCATION
    stop = problem.stops[drop.stop_index]
    if problem.soft_windows:
        return None
    for v in reachable:
        there = int(times[v.profile][depot_row[v.start_depot], row])
        back = int(times[v.profile][row, depot_row[v.end]])
        if _direct_trip_fits(v, there, back, stop.service_s, stop.windows):
            return None
    return UnassignedReason.WINDOW_UNREACHABLE


def reason_when_locked(
    problem: Problem, drop: Drop, vehicle: Vehicle, dist: np.ndarray, times: dict[str, np.ndarray]
) -> UnassignedReason | None:
    """`LOCKED_VEHICLE_UNFIT` when the vehicle the drop's stop is locked to could not serve it on
    its own (zone, capacity, reach, shift and windows), although another vehicle could."""
    if reason_on_its_own(problem, drop, dist, times, [vehicle]) is None:
        return None
    return UnassignedReason.LOCKED_VEHICLE_UNFIT


def _direct_trip_fits(
    v: Vehicle, there: int, back: int, service: int, windows: tuple[TimeWindow, ...]
) -> bool:
    """Depot -> stop -> depot alone, leaving as early as the shift allows, waiting if early."""
    if v.max_duration_s is not None and there + service + back > v.max_duration_s:
        return False
    options = windows or (TimeWindow(0, v.shift_end_s),)
    for w in options:
        begin = max(v.shift_start_s + there, w.open_s)
        if begin <= w.close_s and begin + service + back <= v.shift_end_s:
            return True
    return False
