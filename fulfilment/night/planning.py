"""From a cut-off wave to stored routes: the routing problems of both echelons, solved and stored.

`routing/` gets plain data only. `build_network` reads a wave into the trunk problem (warehouse →
stations) and one last-mile problem per station; `solve_wave` hands them to
`routing.plan_two_echelons` (the trunk first, then each station from what the trunk brings it)
on a `Runner` (a local process pool, or RQ workers on Redis: see workers.py) and stores every
part as it comes, once, keyed by plan version and station.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

import routing
from fulfilment.catalogue.fleet import Vehicle, VehicleKind, list_vehicles, routing_vehicle
from fulfilment.core.db import session_scope
from fulfilment.core.errors import InvalidInput
from fulfilment.core.models import (
    GridStation,
    Leader,
    PickLevel,
    PickLine,
    Region,
    TempZone,
    Warehouse,
    Wave,
)
from fulfilment.waves.crates import DEFAULT_CRATE_VOLUME_ML, crate_counts, ensure_crates
from routing import Runner  # the night's runners (workers.py) implement routing's protocol

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
    """How a wave is planned. Time limits are per problem, given to the runner as they are."""

    time_limit_s: float = 3.0  # each station's last mile
    trunk_time_limit_s: float = 10.0
    # one crate (周转箱) holds this much: a wave not packed yet is packed with it when planned
    crate_volume_ml: int = DEFAULT_CRATE_VOLUME_ML
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
    # station code -> its leaders' stops and its vans, in full (the trunk decides what is routed)
    last_mile: dict[str, routing.Problem]
    options: PlanningOptions = field(default_factory=PlanningOptions)


def build_network(
    session: Session, *, wave: Wave, options: PlanningOptions = PlanningOptions()
) -> WaveNetwork:
    """The routing problems' inputs of a cut-off wave: weight and volume from its leader pick
    lines, crates from its crate records (packed now if the wave has none yet)."""
    ensure_wave_cut_off(wave)
    ensure_crates(session, wave, crate_volume_ml=options.crate_volume_ml)
    crates = crate_counts(session, wave_id=wave.id)
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
        n = crates.get((int(leader_id or 0), TempZone(str(pick_zone))), 0)
        drops.setdefault(int(leader_id or 0), {})[routing.TempZone(str(pick_zone))] = routing.Load(
            int(weight), int(volume), n
        )
    leaders = {
        ld.id: ld for ld in session.scalars(select(Leader).where(Leader.id.in_(list(drops))))
    }
    stations = {
        s.id: s
        for s in session.scalars(select(GridStation).where(GridStation.region_id == region.id))
    }
    warehouses = list(
        session.scalars(
            select(Warehouse).where(Warehouse.region_id == region.id).order_by(Warehouse.code)
        )
    )
    if not warehouses:
        raise InvalidInput(f"region {region.code}", "warehouse", "the region has no warehouse")
    if len(warehouses) > 1:  # the trunk is planned from one depot; refused, never guessed
        raise InvalidInput(
            f"region {region.code}",
            "warehouse",
            f"the region has {len(warehouses)} warehouses "
            f"({', '.join(w.code for w in warehouses)}); the night plans the trunk from one: "
            "give each warehouse a region of its own",
        )
    warehouse = warehouses[0]

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
    last_mile = {
        code: routing.Problem(
            depots=(routing.Depot(code, routing.LatLon(by_code[code].lat, by_code[code].lon)),),
            stops=tuple(stops),
            vehicles=vans.get(code, ()),
        )
        for code, stops in sorted(leader_stops.items())
    }
    return WaveNetwork(
        wave_id=wave.id,
        day_start_at=start,
        trunk=trunk,
        stations={s.code: s.id for s in stations.values()},
        leaders={ld.code: ld.id for ld in leaders.values()},
        station_of_leader={ld.code: stations[ld.station_id].code for ld in leaders.values()},
        last_mile=last_mile,
        options=options,
    )


def _vehicle(v: Vehicle, depot: str, secs: Callable[[time], int]) -> routing.Vehicle:
    return routing_vehicle(v, depot_id=depot, seconds=secs)


# ---------------------------------------------------------------------------------------------
# Solving


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
    guard: Callable[[Session], None] | None = None,
) -> int:
    """Plan the wave's two echelons (`routing.plan_two_echelons` on `runner`, the trunk and each
    station with their fixed limits from `options`) and store every part of a new plan version,
    or of `plan_id`, an unfinished plan: only its missing parts are solved, the stations from
    its stored trunk. Each part is stored as soon as it is planned, in its own transaction,
    once. `guard(session)` runs in each part's transaction before it is stored (the night checks
    its claim there: a process that lost it raises and stores nothing more). The runner sees
    each problem under database ids (`trunk`, `s<station id>`; the tag is the plan id), never
    under names. Returns the plan's id; the caller finishes the plan (`plans.finish_plan`) in its
    own transaction."""
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
        stored = session.get(RoutePlan, plan_id)
        assert stored is not None
        done = set(stored_parts(session, stored))
        trunk_plan = load_plan(session, stored).trunk if TRUNK_PART in done else None
    if on_plan_started is not None:
        on_plan_started(plan_id)

    def store(key: str, result: routing.Plan) -> None:
        with session_scope(sessions) as s:
            if guard is not None:
                guard(s)
            store_part(
                s,
                plan=s.get(RoutePlan, plan_id),  # type: ignore[arg-type]
                part=TRUNK_PART if key == routing.TRUNK_KEY else key,
                result=result,
                stations=network.stations,
                leaders=network.leaders,
                now=now(),
            )

    routing.plan_two_echelons(
        network.trunk,
        network.last_mile,
        trunk_time_limit_s=options.trunk_time_limit_s,
        station_time_limit_s=options.time_limit_s,
        handling_s=options.handling_s,
        seed=options.seed,
        runner=_ByDatabaseIds(runner, network.stations),
        trunk_plan=trunk_plan,
        done=done - {TRUNK_PART},
        on_part=store,
        tag=f"{plan_id}",
    )
    return plan_id


@dataclass(frozen=True)
class _ByDatabaseIds:
    """A runner that hands the problems on under database ids: `trunk` for the trunk and
    `s<station id>` for a station (queue job ids are built from them, and names may be any
    Unicode: `浦东1` and `闵行1` must not become one job), and yields them back under the
    planner's keys."""

    runner: Runner
    stations: dict[str, int]  # station code -> id

    def solve(self, problems, *, time_limit_s: float, seed: int, tag: str = ""):
        ids = {
            key: "trunk" if key == routing.TRUNK_KEY else f"s{self.stations[key]}"
            for key in problems
        }
        keys = {v: k for k, v in ids.items()}
        yield from (
            (keys[key], plan)
            for key, plan in self.runner.solve(
                {ids[k]: p for k, p in problems.items()},
                time_limit_s=time_limit_s,
                seed=seed,
                tag=tag,
            )
        )
