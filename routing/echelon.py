"""Two echelons: trunk routes warehouse -> grid stations, then the last mile of each station.

The trunk problem's stops are the stations (their ids are the keys of `last_mile`); a station
whose demand exceeds a truck is split over several trucks. What the trunk plan brings a station
decides its last mile (`station_jobs`): its vans leave no earlier than the last truck leaves it
plus the handling time, and where part of a zone's goods does not arrive, leaders are taken out
of that zone until the rest fits what arrives (`station_not_supplied`). The problems are solved
by a `Runner`: by default a local process pool (`PoolRunner`); the night passes its own (a pool,
or RQ workers on Redis).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from .model import (
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
)
from .parallel import PoolRunner

__all__ = [
    "DEFAULT_HANDLING_S",
    "TRUNK_KEY",
    "Runner",
    "StationJob",
    "TwoEchelonPlan",
    "plan_two_echelons",
    "station_jobs",
]

DEFAULT_HANDLING_S = 30 * 60
# without `trunk_time_limit_s`, the trunk's share of the whole budget
TRUNK_SHARE = 0.3
# the trunk's key among the parts a runner solves and `on_part` receives (no station may use it)
TRUNK_KEY = "trunk"


@dataclass(frozen=True, slots=True)
class TwoEchelonPlan:
    """The trunk's plan, the stations planned in the call, and every station's ready time."""

    trunk: Plan
    last_mile: dict[str, Plan]  # station id -> its plan (stations planned in this call)
    ready_s: dict[str, int | None]  # station id -> earliest last-mile departure (None: unsupplied)


# ---------------------------------------------------------------------------------------------
# Where the problems are solved


class Runner(Protocol):
    """Solves independent problems somewhere (a local pool, queue workers) and yields each
    (key, plan) as it finishes. `time_limit_s` is each problem's limit; `tag` names the call
    (the night's plan version: queue jobs of a restarted caller are found again by it)."""

    def solve(
        self, problems: Mapping[str, Problem], *, time_limit_s: float, seed: int, tag: str
    ) -> Iterator[tuple[str, Plan]]: ...


# ---------------------------------------------------------------------------------------------
# What the trunk brings each station


@dataclass(frozen=True, slots=True)
class StationJob:
    """A station's last mile as the trunk plan supplies it."""

    station: str
    problem: Problem | None  # what to route, vans from `ready_s`; None: nothing
    not_supplied: tuple[Unassigned, ...]  # drops the trunk does not bring (station_not_supplied)
    ready_s: int | None  # earliest van departure; None: no truck comes


def station_jobs(
    trunk: Problem,
    trunk_plan: Plan,
    last_mile: Mapping[str, Problem],
    *,
    handling_s: int = DEFAULT_HANDLING_S,
) -> dict[str, StationJob]:
    """Each station's last mile from what `trunk_plan` brings it.

    Ready time: the latest trunk departure from the station (its goods unloaded) plus
    `handling_s`; the vans' shifts start no earlier. A station on no trunk route gets nothing:
    every drop is `station_not_supplied`. Per zone, when the trunk plan leaves part of a
    station's goods unassigned, leaders are taken out of that zone (the largest drops first, so
    that as few leaders as possible go without) until what is taken out covers what is missing;
    their drops are `station_not_supplied` and the rest is routed. Nothing is lost: every drop
    of `last_mile` is in the job's problem or in its `not_supplied`.
    """
    departures: dict[str, int] = {}
    for route in trunk_plan.routes:
        for visit in route.visits:
            departures[visit.stop_id] = max(departures.get(visit.stop_id, 0), visit.departure_s)
    short = _shortfalls(trunk, trunk_plan)
    jobs: dict[str, StationJob] = {}
    for station in sorted(last_mile):
        problem = last_mile[station]
        if station not in departures:
            nothing = _every_drop(problem.stops, UnassignedReason.STATION_NOT_SUPPLIED)
            jobs[station] = StationJob(station, None, nothing, None)
            continue
        kept, missing = _leave_out(problem.stops, short.get(station, {}))
        served = [replace(s, drops=kept[s.id]) for s in problem.stops if kept[s.id] or not s.drops]
        ready = departures[station] + handling_s
        trimmed = _starting_at(_with_stops(problem, served), ready) if served else None
        jobs[station] = StationJob(station, trimmed, tuple(missing), ready)
    return jobs


def _shortfalls(trunk: Problem, trunk_plan: Plan) -> dict[str, dict[TempZone, Load]]:
    """Station -> zone -> what of it the trunk plan does not deliver."""
    drops_of = {s.id: s.drops for s in trunk.stops}
    short: dict[str, dict[TempZone, Load]] = {}
    for u in trunk_plan.unassigned:
        zones = short.setdefault(u.stop_id, {})
        if u.zone is not None:
            zone = TempZone(u.zone)
            zones[zone] = zones.get(zone, Load()) + u.demand
        else:  # the whole station: every zone it asked for
            for z, load in drops_of.get(u.stop_id, {}).items():
                zones[TempZone(z)] = load
    return short


def _leave_out(
    stops: Sequence[Stop], gaps: Mapping[TempZone, Load]
) -> tuple[dict[str, dict[TempZone, Load]], list[Unassigned]]:
    """Per short zone, leaders' drops taken out (largest first) until they cover the gap."""
    kept = {s.id: dict(s.drops) for s in stops}
    missing: list[Unassigned] = []
    for zone in TempZone:
        gap = gaps.get(zone)
        if gap is None or gap.is_zero():
            continue
        removed = Load()
        for stop in sorted(stops, key=lambda s: (-_size(s.drops.get(zone)), s.id)):
            if _covers(removed, gap):
                break
            if zone not in kept[stop.id]:
                continue
            load = kept[stop.id].pop(zone)
            removed = removed + load
            missing.append(Unassigned(stop.id, zone, UnassignedReason.STATION_NOT_SUPPLIED, load))
    return kept, missing


def _size(load: Load | None) -> int:
    return 0 if load is None else load.volume_ml + load.weight_g


def _covers(removed: Load, gap: Load) -> bool:
    return all(r >= g for r, g in zip(removed.as_tuple(), gap.as_tuple(), strict=True))


def _every_drop(stops: Sequence[Stop], why: UnassignedReason) -> tuple[Unassigned, ...]:
    """Every drop of the stops unassigned for `why` (a stop with no drops: as a whole)."""
    out: list[Unassigned] = []
    for stop in stops:
        out += [Unassigned(stop.id, TempZone(z), why, load) for z, load in stop.drops.items()]
        if not stop.drops:
            out.append(Unassigned(stop.id, None, why))
    return tuple(out)


def _with_stops(problem: Problem, stops: Sequence[Stop]) -> Problem:
    """The problem over `stops` (a subset of its own, drops possibly fewer); explicit matrices
    keep the rows and columns of the depots and of the stops kept."""
    if len(stops) == len(problem.stops) and all(
        a.drops == b.drops for a, b in zip(stops, problem.stops, strict=True)
    ):
        return problem
    if not problem.has_matrices:
        return replace(problem, stops=tuple(stops))
    index = {s.id: i for i, s in enumerate(problem.stops)}
    depots = len(problem.depots)
    nodes = list(range(depots)) + [depots + index[s.id] for s in stops]

    def keep(m: Any) -> Any:
        return m[nodes][:, nodes]

    travel = problem.travel_s
    travel = (
        {k: keep(v) for k, v in travel.items()} if isinstance(travel, Mapping) else keep(travel)
    )
    return replace(
        problem, stops=tuple(stops), distance_m=keep(problem.distance_m), travel_s=travel
    )


def _starting_at(problem: Problem, ready_s: int) -> Problem:
    vehicles = tuple(
        replace(
            v, shift_start_s=max(v.shift_start_s, ready_s), shift_end_s=max(v.shift_end_s, ready_s)
        )
        for v in problem.vehicles
    )
    return replace(problem, vehicles=vehicles)


# ---------------------------------------------------------------------------------------------
# Both echelons


def plan_two_echelons(
    trunk: Problem,
    last_mile: Mapping[str, Problem],
    *,
    time_limit_s: float | None = None,
    handling_s: int = DEFAULT_HANDLING_S,
    seed: int = 0,
    runner: Runner | None = None,
    workers: int = 2,
    trunk_time_limit_s: float | None = None,
    station_time_limit_s: float | None = None,
    trunk_plan: Plan | None = None,
    done: Collection[str] = (),
    on_part: Callable[[str, Plan], None] | None = None,
    tag: str = "",
) -> TwoEchelonPlan:
    """Plan the trunk, then every station's last mile from what the trunk brings it.

    The trunk is solved first (`split_oversized`), then `station_jobs` turns its plan into one
    problem per station (vans from the last truck's departure plus `handling_s`, only what
    arrives); the stations are solved by `runner` (default: `PoolRunner(workers)`). A station's
    plan carries the engine's unassigned and the drops the trunk does not bring
    (`station_not_supplied`; a plan that was `SOLVED` becomes `PARTIAL`). A station with nothing
    arriving has every drop `station_not_supplied`; a station with goods but no vehicle has them
    `no_vehicle_for_zone`; neither is searched.

    Budgets. With `time_limit_s`, it is the whole call's wall-clock budget: the trunk gets
    `trunk_time_limit_s` of it (default `TRUNK_SHARE`, never more than 90 %), and the stations
    share what is left after the trunk, in rounds of `workers` (how many problems the runner
    solves at once), each at most `station_time_limit_s` when given. Without `time_limit_s`,
    both per-part limits are required and are given to the runner as they are (the night:
    8 s for the trunk and 1.5 s for each station in its benchmark); the call then takes what
    the runner needs for them.

    Resuming. `trunk_plan`, when given, is used instead of solving the trunk (it must be a plan
    of `trunk`); stations in `done` are neither solved nor returned. `on_part(key, plan)` is
    called once for each part as soon as it is planned, the trunk first (key `TRUNK_KEY`), so
    that a caller can store every part on its own. `tag` goes to the runner.
    """
    t_end = None if time_limit_s is None else time.time() + time_limit_s
    _check_input(trunk, last_mile, time_limit_s, trunk_time_limit_s, station_time_limit_s)
    runner = runner if runner is not None else PoolRunner(workers)
    report = on_part if on_part is not None else _ignore
    if trunk_plan is None:
        if not trunk.split_oversized:
            trunk = replace(trunk, split_oversized=True)
        limit = _trunk_limit(time_limit_s, trunk_time_limit_s)
        trunk_plan = _solve_trunk(trunk, runner, limit, seed, tag)
        report(TRUNK_KEY, trunk_plan)
    jobs = station_jobs(trunk, trunk_plan, last_mile, handling_s=handling_s)
    plans: dict[str, Plan] = {}
    to_solve: dict[str, Problem] = {}
    for station, job in jobs.items():
        if station in done:
            continue
        if job.problem is not None and job.problem.vehicles:
            to_solve[station] = job.problem
            continue
        plans[station] = _unsearched_station(job)
        report(station, plans[station])
    if to_solve:
        limit = _station_limit(t_end, len(to_solve), workers, station_time_limit_s)
        for station, result in runner.solve(to_solve, time_limit_s=limit, seed=seed, tag=tag):
            plans[station] = _with_not_supplied(result, jobs[station].not_supplied)
            report(station, plans[station])
    return TwoEchelonPlan(trunk_plan, plans, {s: j.ready_s for s, j in jobs.items()})


def _ignore(key: str, plan: Plan) -> None:
    pass


def _check_input(
    trunk: Problem,
    last_mile: Mapping[str, Problem],
    time_limit_s: float | None,
    trunk_time_limit_s: float | None,
    station_time_limit_s: float | None,
) -> None:
    unknown = set(last_mile) - {s.id for s in trunk.stops}
    if unknown:
        raise RoutingInputError(
            f"last-mile problem for unknown station(s) {sorted(unknown)}",
            record="trunk",
            field="stops",
        )
    if TRUNK_KEY in last_mile:
        raise RoutingInputError(
            f"a station may not be called {TRUNK_KEY!r} (the trunk's key)",
            record=TRUNK_KEY,
            field="id",
        )
    if time_limit_s is None and (trunk_time_limit_s is None or station_time_limit_s is None):
        raise RoutingInputError(
            "give time_limit_s, or both trunk_time_limit_s and station_time_limit_s",
            record="plan_two_echelons",
            field="time_limit_s",
        )


def _trunk_limit(time_limit_s: float | None, trunk_time_limit_s: float | None) -> float:
    if time_limit_s is None:
        assert trunk_time_limit_s is not None
        return trunk_time_limit_s
    wanted = trunk_time_limit_s if trunk_time_limit_s is not None else TRUNK_SHARE * time_limit_s
    return min(wanted, 0.9 * time_limit_s)


def _station_limit(
    t_end: float | None, stations: int, workers: int, station_time_limit_s: float | None
) -> float:
    """Each station's limit: the fixed one, or a round's share of what is left (capped by it)."""
    if t_end is None:
        assert station_time_limit_s is not None
        return station_time_limit_s
    rounds = math.ceil(stations / max(1, workers))
    share = max(0.1, (t_end - time.time()) / rounds)
    return share if station_time_limit_s is None else min(share, station_time_limit_s)


def _solve_trunk(trunk: Problem, runner: Runner, limit: float, seed: int, tag: str) -> Plan:
    if not trunk.stops:
        return _unsearched((), "NOTHING_TO_PLAN")
    if not trunk.vehicles:
        return _no_vehicles(trunk)
    plans = dict(runner.solve({TRUNK_KEY: trunk}, time_limit_s=limit, seed=seed, tag=tag))
    return plans[TRUNK_KEY]


def _unsearched_station(job: StationJob) -> Plan:
    """A station nothing is searched for: nothing arrives, nothing to route, or no vehicle."""
    if job.problem is not None:
        return _no_vehicles(job.problem, job.not_supplied)
    if job.not_supplied:
        return _unsearched(job.not_supplied, "STATION_NOT_SUPPLIED")
    return _unsearched((), "NOTHING_TO_PLAN")


def _with_not_supplied(result: Plan, not_supplied: tuple[Unassigned, ...]) -> Plan:
    """The engine's plan with what the trunk left out added to its unassigned."""
    if not not_supplied:
        return result
    status = PlanStatus.PARTIAL if result.status == PlanStatus.SOLVED else result.status
    return replace(result, unassigned=result.unassigned + not_supplied, status=status)


def _no_vehicles(problem: Problem, extra: tuple[Unassigned, ...] = ()) -> Plan:
    """No vehicle at all is based there: every drop is unassigned (no vehicle for its zone)."""
    missing = _every_drop(problem.stops, UnassignedReason.NO_VEHICLE_FOR_ZONE)
    return _unsearched(missing + extra, "NO_VEHICLES")


def _unsearched(unassigned: tuple[Unassigned, ...], why: str) -> Plan:
    """A part nothing was searched for: nothing to plan (solved), or every drop unassigned."""
    status = PlanStatus.INFEASIBLE_INPUT if unassigned else PlanStatus.SOLVED
    return Plan((), unassigned, PlanCost(0, 0, 0, 0, 0), status, None, 0.0, engine_status=why)
