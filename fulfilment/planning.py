"""From a cut-off wave to stored routes: the routing problems of both echelons, solved and stored.

`routing/` gets plain data only. The trunk (warehouse → stations) is solved first; each station's
last mile is then built from what the trunk actually brings there: its vans leave no earlier than
the last trunk arrival plus the handling time, and the drops of a partly supplied station that
did not arrive come back unassigned (`station_not_supplied`) instead of being routed. The
stations' problems are independent jobs for a `Runner` (a local process pool, or RQ workers on
Redis: see workers.py); every result is stored once, keyed by plan version and station.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

import routing

from .db import session_scope
from .errors import InvalidInput
from .fleet import Vehicle, VehicleKind, list_vehicles, routing_vehicle
from .models import GridStation, Leader, PickLevel, PickLine, Region, Warehouse, Wave
from .plans import (
    TRUNK_PART,
    RoutePlan,
    ensure_wave_cut_off,
    load_plan,
    start_plan,
    store_part,
    stored_parts,
)


@dataclass(frozen=True, slots=True)
class PlanningOptions:
    """How a wave is planned. Time limits are per problem (each station, and the trunk)."""

    time_limit_s: float = 3.0
    trunk_time_limit_s: float = 10.0
    crate_volume_ml: int = 40_000  # one crate (周转箱) holds this much; crates = ceil(volume / it)
    service_s: int = 300  # at a pickup point
    station_service_s: int = 900  # unloading a trunk truck at a station
    handling_s: int = routing.DEFAULT_HANDLING_S  # unload and sort before the vans leave
    seed: int = 0


def day_start(region: Region, delivery_date: date) -> datetime:
    """Local midnight of the delivery date, in UTC: second 0 of the planner's day."""
    return datetime.combine(delivery_date, time(0), tzinfo=ZoneInfo(region.tz)).astimezone(UTC)


def seconds_since_midnight(region: Region, delivery_date: date, clock: time) -> int:
    """A wall-clock time of the delivery day as seconds since local midnight, DST-correct (on a
    spring-forward day 08:00 is 7 hours after midnight)."""
    zone = ZoneInfo(region.tz)
    local = datetime.combine(delivery_date, clock, tzinfo=zone).astimezone(UTC)
    return int((local - day_start(region, delivery_date)).total_seconds())


@dataclass(frozen=True)
class WaveNetwork:
    """Everything needed to plan a wave, as plain data (picklable for worker processes)."""

    wave_id: int
    day_start_at: datetime
    trunk: routing.Problem
    stations: dict[str, int]  # station code -> id
    leaders: dict[str, int]  # leader code -> id
    station_of_leader: dict[str, str]
    leader_stops: dict[str, list[routing.Stop]]  # station code -> its leaders' stops
    station_points: dict[str, routing.LatLon]
    vans: dict[str, tuple[routing.Vehicle, ...]]  # station code -> its last-mile vehicles
    options: PlanningOptions = field(default_factory=PlanningOptions)


def build_network(
    session: Session, *, wave: Wave, options: PlanningOptions = PlanningOptions()
) -> WaveNetwork:
    """The routing problems' inputs of a cut-off wave, read from its leader pick lines."""
    ensure_wave_cut_off(wave)
    region = session.get(Region, wave.region_id)
    assert region is not None
    day = wave.delivery_date
    start = day_start(region, day)

    def secs(clock: time) -> int:
        return seconds_since_midnight(region, day, clock)

    demand = session.execute(
        select(
            PickLine.leader_id,
            PickLine.zone,
            func.sum(PickLine.weight_g),
            func.sum(PickLine.volume_ml),
        )
        .where(PickLine.wave_id == wave.id, PickLine.level == PickLevel.LEADER)
        .group_by(PickLine.leader_id, PickLine.zone)
    ).all()
    drops: dict[int, dict[routing.TempZone, routing.Load]] = {}
    for leader_id, pick_zone, weight, volume in demand:
        crates = max(1, math.ceil(int(volume) / options.crate_volume_ml))
        drops.setdefault(int(leader_id or 0), {})[routing.TempZone(str(pick_zone))] = routing.Load(
            int(weight), int(volume), crates
        )
    leaders = {
        ld.id: ld for ld in session.scalars(select(Leader).where(Leader.id.in_(list(drops))))
    }
    stations = {
        s.id: s
        for s in session.scalars(select(GridStation).where(GridStation.region_id == region.id))
    }
    warehouse = session.scalars(select(Warehouse).where(Warehouse.region_id == region.id)).first()
    if warehouse is None:
        raise InvalidInput(f"region {region.code}", "warehouse", "the region has no warehouse")

    leader_stops: dict[str, list[routing.Stop]] = {}
    station_drops: dict[str, dict[routing.TempZone, routing.Load]] = {}
    for leader_id in sorted(drops, key=lambda i: leaders[i].code):
        leader = leaders[leader_id]
        station = stations[leader.station_id]
        stop = routing.Stop(
            id=leader.code,
            location=routing.LatLon(leader.lat, leader.lon),
            drops=drops[leader_id],
            windows=(routing.TimeWindow(secs(leader.window_open), secs(leader.window_close)),),
            service_s=options.service_s,
        )
        leader_stops.setdefault(station.code, []).append(stop)
        totals = station_drops.setdefault(station.code, {})
        for zone, load in drops[leader_id].items():
            totals[zone] = totals.get(zone, routing.Load()) + load

    vehicles = list_vehicles(session, region=region)
    by_code = {s.code: s for s in stations.values()}
    trucks = tuple(
        _vehicle(v, warehouse.code, secs) for v in vehicles if v.kind == VehicleKind.TRUNK
    )
    vans: dict[str, tuple[routing.Vehicle, ...]] = {}
    for v in vehicles:
        if v.kind == VehicleKind.LAST_MILE and v.station_id in stations:
            code = stations[v.station_id].code
            vans[code] = vans.get(code, ()) + (_vehicle(v, code, secs),)
    trunk = routing.Problem(
        depots=(routing.Depot(warehouse.code, routing.LatLon(warehouse.lat, warehouse.lon)),),
        stops=tuple(
            routing.Stop(
                id=code,
                location=routing.LatLon(by_code[code].lat, by_code[code].lon),
                drops=station_drops[code],
                service_s=options.station_service_s,
            )
            for code in sorted(station_drops)
        ),
        vehicles=trucks,
        split_oversized=True,
    )
    return WaveNetwork(
        wave_id=wave.id,
        day_start_at=start,
        trunk=trunk,
        stations={s.code: s.id for s in stations.values()},
        leaders={ld.code: ld.id for ld in leaders.values()},
        station_of_leader={ld.code: stations[ld.station_id].code for ld in leaders.values()},
        leader_stops=leader_stops,
        station_points={s.code: routing.LatLon(s.lat, s.lon) for s in stations.values()},
        vans=vans,
        options=options,
    )


def _vehicle(v: Vehicle, depot: str, secs: Callable[[time], int]) -> routing.Vehicle:
    return routing_vehicle(v, depot_id=depot, seconds=secs)


@dataclass(frozen=True)
class StationJob:
    """A station's last mile: the problem to solve (None: nothing to route there) and the drops
    already known to be unassigned because the trunk does not bring them."""

    station: str
    problem: routing.Problem | None
    not_supplied: tuple[routing.Unassigned, ...]


def last_mile_jobs(network: WaveNetwork, trunk_plan: routing.Plan) -> dict[str, StationJob]:
    """Each station's last mile from what the trunk plan brings it.

    Ready time: the latest trunk arrival at the station plus the handling time. Per zone, when
    part of the station's goods is not delivered, leaders are left out of that zone (the largest
    drops first, so that as few leaders as possible go without) until what is left fits what
    arrives; their drops come back unassigned as `station_not_supplied`."""
    arrivals: dict[str, int] = {}
    for route in trunk_plan.routes:
        for visit in route.visits:
            arrivals[visit.stop_id] = max(arrivals.get(visit.stop_id, 0), visit.departure_s)
    short: dict[tuple[str, routing.TempZone], routing.Load] = {}
    for u in trunk_plan.unassigned:
        if u.zone is not None:
            key = (u.stop_id, routing.TempZone(u.zone))
            short[key] = short.get(key, routing.Load()) + u.demand
        else:  # the whole station: every zone it asked for
            for stop in network.trunk.stops:
                if stop.id == u.stop_id:
                    for zone, load in stop.drops.items():
                        short[(u.stop_id, zone)] = load
    jobs: dict[str, StationJob] = {}
    for station, stops in sorted(network.leader_stops.items()):
        missing: list[routing.Unassigned] = []
        kept = {s.id: dict(s.drops) for s in stops}
        for zone in routing.TempZone:
            gap = short.get((station, zone))
            if gap is None or gap.is_zero():
                continue
            if station not in arrivals:
                gap = routing.Load(10**15, 10**15, 10**15)  # nothing arrives at all
            removed = routing.Load()
            for stop in sorted(stops, key=lambda s: (-_size(s.drops.get(zone)), s.id)):
                if _covers(removed, gap):
                    break
                if zone not in kept[stop.id]:
                    continue
                load = kept[stop.id].pop(zone)
                removed = removed + load
                missing.append(
                    routing.Unassigned(
                        stop.id, zone, routing.UnassignedReason.STATION_NOT_SUPPLIED, load
                    )
                )
        served = [replace(s, drops=kept[s.id]) for s in stops if kept[s.id]]
        problem = None
        if served and station in arrivals:
            ready = arrivals[station] + network.options.handling_s
            vans = tuple(
                replace(
                    v,
                    shift_start_s=max(v.shift_start_s, ready),
                    shift_end_s=max(v.shift_end_s, ready),
                )
                for v in network.vans.get(station, ())
            )
            problem = routing.Problem(
                depots=(routing.Depot(station, network.station_points[station]),),
                stops=tuple(served),
                vehicles=vans,
            )
        elif served:  # the station is on no trunk route: none of it arrives
            missing += [
                routing.Unassigned(s.id, zone, routing.UnassignedReason.STATION_NOT_SUPPLIED, load)
                for s in served
                for zone, load in s.drops.items()
            ]
        jobs[station] = StationJob(station, problem, tuple(missing))
    return jobs


def _size(load: routing.Load | None) -> int:
    return 0 if load is None else load.volume_ml + load.weight_g


def _covers(removed: routing.Load, gap: routing.Load) -> bool:
    return all(r >= g for r, g in zip(removed.as_tuple(), gap.as_tuple(), strict=True))


def unsolved_plan(unassigned: tuple[routing.Unassigned, ...], why: str) -> routing.Plan:
    """A part nothing was searched for: nothing to plan (solved), or every drop unassigned."""
    status = routing.PlanStatus.INFEASIBLE_INPUT if unassigned else routing.PlanStatus.SOLVED
    return routing.Plan(
        (), unassigned, routing.PlanCost(0, 0, 0, 0, 0), status, None, 0.0, engine_status=why
    )


# ---------------------------------------------------------------------------------------------
# Solving


class Runner(Protocol):
    """Solves independent problems somewhere (a local pool, or queue workers)."""

    def solve(
        self, problems: Mapping[str, routing.Problem], *, time_limit_s: float, seed: int, tag: str
    ) -> Iterator[tuple[str, routing.Plan]]: ...


def solve_wave(
    sessions: sessionmaker[Session],
    *,
    wave_id: int,
    runner: Runner,
    options: PlanningOptions = PlanningOptions(),
    now: Callable[[], datetime],
    actor: str = "system",
    plan_id: int | None = None,
    on_plan_started: Callable[[int], None] | None = None,
) -> int:
    """Solve the wave's trunk and last-mile problems and store every part of a new plan version
    (or of `plan_id`, an unfinished plan: only its missing parts are solved). Each part is
    stored in its own transaction, once. Returns the plan's id; the caller finishes the plan
    (`plans.finish_plan`) in its own transaction."""
    with session_scope(sessions) as session:
        wave = session.get(Wave, wave_id)
        assert wave is not None
        network = build_network(session, wave=wave, options=options)
        if plan_id is None:
            plan = start_plan(
                session,
                wave=wave,
                day_start_at=network.day_start_at,
                time_limit_s=options.time_limit_s,
                now=now(),
                actor=actor,
                seed=options.seed,
            )
            plan_id = plan.id
        done = set(stored_parts(session, session.get(RoutePlan, plan_id)))  # type: ignore[arg-type]
    if on_plan_started is not None:
        on_plan_started(plan_id)

    def store(part: str, result: routing.Plan) -> None:
        with session_scope(sessions) as s:
            store_part(
                s,
                plan=s.get(RoutePlan, plan_id),  # type: ignore[arg-type]
                part=part,
                result=result,
                stations=network.stations,
                leaders=network.leaders,
                now=now(),
            )

    if TRUNK_PART not in done:
        if network.trunk.stops and network.trunk.vehicles:
            for _, result in runner.solve(
                {TRUNK_PART: network.trunk},
                time_limit_s=options.trunk_time_limit_s,
                seed=options.seed,
                tag=f"{plan_id}",
            ):
                store(TRUNK_PART, result)
        elif not network.trunk.stops:
            store(TRUNK_PART, unsolved_plan((), "NOTHING_TO_PLAN"))
        else:
            store(TRUNK_PART, _no_vehicles(network.trunk))
    with session_scope(sessions) as session:
        trunk_plan = load_plan(session, session.get(RoutePlan, plan_id)).trunk  # type: ignore[arg-type]
    assert trunk_plan is not None
    jobs = last_mile_jobs(network, trunk_plan)
    problems: dict[str, routing.Problem] = {}
    for station, job in jobs.items():
        if station in done:
            continue
        if job.problem is None:
            store(station, unsolved_plan(job.not_supplied, "STATION_NOT_SUPPLIED"))
        elif not job.problem.vehicles:
            store(station, _no_vehicles(job.problem, job.not_supplied))
        else:
            problems[station] = job.problem
    for station, result in runner.solve(
        problems, time_limit_s=options.time_limit_s, seed=options.seed, tag=f"{plan_id}"
    ):
        not_supplied = jobs[station].not_supplied
        status = result.status
        if not_supplied and status == routing.PlanStatus.SOLVED:
            status = routing.PlanStatus.PARTIAL  # what the trunk left out is unassigned here
        store(
            station,
            replace(result, unassigned=result.unassigned + not_supplied, status=status),
        )
    return plan_id


def _no_vehicles(
    problem: routing.Problem, extra: tuple[routing.Unassigned, ...] = ()
) -> routing.Plan:
    """No vehicle at all is based there: every drop is unassigned (no vehicle for its zone)."""
    missing = tuple(
        routing.Unassigned(s.id, zone, routing.UnassignedReason.NO_VEHICLE_FOR_ZONE, load)
        for s in problem.stops
        for zone, load in s.drops.items()
    )
    return unsolved_plan(missing + extra, "NO_VEHICLES")
