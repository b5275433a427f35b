"""The dispatcher's reading of a wave's plans: the versions, the routes with their loads, the plan
as GeoJSON for the map, and the night's figures (KPIs). Reads only; a page composes them.

Stops are placed at their leader's or station's coordinates; a route is drawn from its depot (the
warehouse for the trunk, its station for the last mile) through its stops and back.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fulfilment.catalogue.fleet import Vehicle
from fulfilment.core.errors import NotFound
from fulfilment.core.models import (
    GridStation,
    Leader,
    OrderStatus,
    PickLevel,
    PickLine,
    Warehouse,
    Wave,
)
from fulfilment.core.models import Order as OrderRow
from fulfilment.waves.crates import crate_counts

from .loading import CrateLoad
from .plans import Echelon, PlanRoute, PlanStatus, PlanStop, PlanUnassigned, RoutePlan

# Route colours: distinct on a plain background and for the common colour blindnesses
# (Okabe-Ito first, then Tableau 10), repeated when there are more routes.
PALETTE = (
    "#0072b2",
    "#e69f00",
    "#009e73",
    "#d55e00",
    "#cc79a7",
    "#56b4e9",
    "#8c564b",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def list_plan_versions(session: Session, *, wave: Wave) -> list[RoutePlan]:
    """Every version of the wave's routes, newest first (those still planning included)."""
    return plan_versions_by_wave(session, wave_ids=[wave.id]).get(wave.id, [])


def plan_versions_by_wave(session: Session, *, wave_ids: list[int]) -> dict[int, list[RoutePlan]]:
    """The versions of several waves in one query: wave id -> its versions, newest first."""
    out: dict[int, list[RoutePlan]] = {wave_id: [] for wave_id in wave_ids}
    for plan in session.scalars(
        select(RoutePlan)
        .where(RoutePlan.wave_id.in_(wave_ids))
        .order_by(RoutePlan.wave_id, RoutePlan.version.desc())
    ):
        out[plan.wave_id].append(plan)
    return out


def get_wave_plan(session: Session, *, wave: Wave, plan_id: int) -> RoutePlan:
    """One version of this wave's routes; another wave's plan is not found."""
    plan = session.get(RoutePlan, plan_id)
    if plan is None or plan.wave_id != wave.id:
        raise NotFound(f"plan {plan_id} does not exist")
    return plan


def shown_plan(plans: list[RoutePlan]) -> RoutePlan | None:
    """The version a dispatcher sees first: the published one, else the newest readable one."""
    for plan in plans:
        if plan.status == PlanStatus.PUBLISHED:
            return plan
    return next((p for p in plans if p.status != PlanStatus.PLANNING), None)


@dataclass(frozen=True, slots=True)
class RouteRow:
    """One route of a plan as the route table shows it."""

    route_id: int
    vehicle: str
    echelon: Echelon
    station_id: int | None  # the last mile's station; None for the trunk
    station: str  # its code; "" for the trunk
    colour: str
    stops: int
    load_weight_pct: int  # of the vehicle's capacity, at the start of the route
    load_volume_pct: int
    load_crates_pct: int
    distance_m: int
    duration_s: int
    start_at: datetime
    first_eta: datetime | None
    last_eta: datetime | None
    crates: int | None = None  # the crates it carries (a published version's; None: not given)


def _pct(part: int, whole: int) -> int:
    return round(100 * part / whole) if whole else 0


def list_route_rows(session: Session, *, plan: RoutePlan) -> list[RouteRow]:
    """The plan's routes, trunk first, then by station and vehicle, each with its colour."""
    # rows, not ORM objects: a plan of the 2,000-leader demo has 300 routes
    routes = session.execute(
        select(
            PlanRoute.id,
            PlanRoute.vehicle_code,
            PlanRoute.echelon,
            PlanRoute.station_id,
            PlanRoute.start_weight_g,
            PlanRoute.start_volume_ml,
            PlanRoute.start_crates,
            PlanRoute.distance_m,
            PlanRoute.duration_s,
            PlanRoute.start_at,
        )
        .where(PlanRoute.plan_id == plan.id)
        .order_by(PlanRoute.echelon.desc(), PlanRoute.station_id, PlanRoute.vehicle_code)
    ).all()
    stations = dict(session.execute(select(GridStation.id, GridStation.code)).all())
    wave_region = select(Wave.region_id).where(Wave.id == plan.wave_id).scalar_subquery()
    vehicles = {
        v.code: v
        for v in session.execute(
            select(
                Vehicle.code,
                Vehicle.capacity_weight_g,
                Vehicle.capacity_volume_ml,
                Vehicle.capacity_crates,
            ).where(Vehicle.region_id == wave_region)
        )
    }
    etas = {
        route_id: (first, last, n)
        for route_id, first, last, n in session.execute(
            select(
                PlanStop.route_id,
                func.min(PlanStop.arrival_at),
                func.max(PlanStop.arrival_at),
                func.count(),
            )
            .where(PlanStop.route_id.in_([r.id for r in routes]))
            .group_by(PlanStop.route_id)
        )
    }
    carried: dict[int, int] = {}
    for column in (CrateLoad.route_id, CrateLoad.trunk_route_id):  # vans, then trucks
        for route_id, n in session.execute(
            select(column, func.count())
            .where(CrateLoad.plan_id == plan.id, column.is_not(None))
            .group_by(column)
        ):
            carried[int(route_id or 0)] = int(n)
    rows = []
    for i, route in enumerate(routes):
        vehicle = vehicles.get(route.vehicle_code)
        first, last, n = etas.get(route.id, (None, None, 0))
        rows.append(
            RouteRow(
                route_id=route.id,
                vehicle=route.vehicle_code,
                echelon=route.echelon,
                station_id=route.station_id,
                station=stations.get(route.station_id, "") if route.station_id else "",
                colour=PALETTE[i % len(PALETTE)],
                stops=n,
                load_weight_pct=_pct(
                    route.start_weight_g, vehicle.capacity_weight_g if vehicle else 0
                ),
                load_volume_pct=_pct(
                    route.start_volume_ml, vehicle.capacity_volume_ml if vehicle else 0
                ),
                load_crates_pct=_pct(route.start_crates, vehicle.capacity_crates if vehicle else 0),
                distance_m=route.distance_m,
                duration_s=route.duration_s,
                start_at=route.start_at,
                first_eta=first,
                last_eta=last,
                crates=carried.get(route.id) if carried else None,
            )
        )
    return rows


def _places(session: Session, wave: Wave) -> dict[tuple[str, int], tuple[float, float, str]]:
    """(kind, id) -> (lat, lon, name) of the region's warehouse, stations and leaders."""
    out: dict[tuple[str, int], tuple[float, float, str]] = {}
    for kind, model in (("warehouse", Warehouse), ("station", GridStation)):
        for id_, lat, lon, name in session.execute(
            select(model.id, model.lat, model.lon, model.name).where(
                model.region_id == wave.region_id
            )
        ):
            out[(kind, id_)] = (lat, lon, name)
    for id_, lat, lon, name in session.execute(
        select(Leader.id, Leader.lat, Leader.lon, Leader.pickup_name).where(
            Leader.region_id == wave.region_id
        )
    ):
        out[("leader", id_)] = (lat, lon, name)
    return out


def _point(lat: float, lon: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}  # GeoJSON is longitude first


def plan_geojson(session: Session, *, plan: RoutePlan) -> dict[str, Any]:
    """The plan as a GeoJSON FeatureCollection (RFC 7946, WGS 84): each route a LineString (depot →
    stops → depot) with its vehicle, echelon and colour; each stop a Point with its route, sequence
    and ETA (UTC, ISO 8601); each unassigned stop a Point with its reason."""
    wave = session.get(Wave, plan.wave_id)
    assert wave is not None  # a foreign key
    places = _places(session, wave)
    warehouse = next((v for (k, _), v in places.items() if k == "warehouse"), None)
    features: list[dict[str, Any]] = []
    rows = {r.route_id: r for r in list_route_rows(session, plan=plan)}
    stops_of: dict[int, list[Any]] = defaultdict(list)
    for stop in session.execute(  # rows, not ORM objects: a plan holds thousands of stops
        select(
            PlanStop.route_id,
            PlanStop.seq,
            PlanStop.leader_id,
            PlanStop.station_id,
            PlanStop.stop_code,
            PlanStop.arrival_at,
            PlanStop.lateness_s,
        )
        .join(PlanRoute, PlanRoute.id == PlanStop.route_id)
        .where(PlanRoute.plan_id == plan.id)
        .order_by(PlanStop.route_id, PlanStop.seq)
    ):
        stops_of[stop.route_id].append(stop)

    def place_of(leader_id: int | None, station_id: int | None):
        if leader_id is not None:
            return places.get(("leader", leader_id))
        return places.get(("station", station_id or 0))

    for route_id, row in rows.items():
        depot = (
            warehouse
            if row.echelon == Echelon.TRUNK
            else places.get(("station", row.station_id or 0))
        )
        line = []
        if depot is not None:
            line.append([depot[1], depot[0]])
        for stop in stops_of[route_id]:
            where = place_of(stop.leader_id, stop.station_id)
            if where is None:
                continue
            line.append([where[1], where[0]])
            features.append(
                {
                    "type": "Feature",
                    "geometry": _point(where[0], where[1]),
                    "properties": {
                        "kind": "stop",
                        "route": route_id,
                        "vehicle": row.vehicle,
                        "echelon": row.echelon.value,
                        "colour": row.colour,
                        "seq": stop.seq,
                        "stop": stop.stop_code,
                        "name": where[2],
                        "eta": stop.arrival_at.isoformat(),
                        "late_s": stop.lateness_s,
                    },
                }
            )
        if depot is not None:
            line.append([depot[1], depot[0]])
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": line},
                "properties": {
                    "kind": "route",
                    "route": route_id,
                    "vehicle": row.vehicle,
                    "echelon": row.echelon.value,
                    "station": row.station,
                    "colour": row.colour,
                    "stops": row.stops,
                },
            }
        )
    for miss in session.scalars(
        select(PlanUnassigned)
        .where(PlanUnassigned.plan_id == plan.id)
        .order_by(PlanUnassigned.echelon.desc(), PlanUnassigned.stop_code)
    ):
        where = place_of(miss.leader_id, miss.station_id)
        if where is None:
            continue
        features.append(
            {
                "type": "Feature",
                "geometry": _point(where[0], where[1]),
                "properties": {
                    "kind": "unassigned",
                    "echelon": miss.echelon.value,
                    "stop": miss.stop_code,
                    "name": where[2],
                    "zone": miss.zone,
                    "reason": miss.reason,
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


@dataclass(frozen=True, slots=True)
class WaveFigures:
    """The night's figures for one wave and, where there is one, one of its plan versions."""

    orders: int
    lines: int
    crates: dict[str, int]  # per temperature zone: the wave's crate records, as the planner counts
    vehicles_used: int
    fleet: int
    distance_m: int
    vehicle_cost_cents: int  # the day cost of the vehicles used
    vehicle_cost_per_order_cents: int | None
    unassigned: dict[str, int]  # reason -> (stop, zone) pairs


def wave_figures(
    session: Session,
    *,
    wave: Wave,
    plan: RoutePlan | None,
) -> WaveFigures:
    """Orders and lines of the wave (placed, not cancelled), crates per zone, and the plan's
    vehicles, distance, vehicle cost (the vehicles' day cost, in cents) and unassigned stops by
    reason."""
    orders = (
        session.scalar(
            select(func.count())
            .select_from(OrderRow)
            .where(OrderRow.wave_id == wave.id, OrderRow.status == OrderStatus.PLACED)
        )
        or 0
    )
    lines = (
        session.scalar(
            select(func.coalesce(func.sum(PickLine.order_lines), 0)).where(
                PickLine.wave_id == wave.id, PickLine.level == PickLevel.WAREHOUSE
            )
        )
        or 0
    )
    crates: Counter[str] = Counter()
    for (_, zone), n in crate_counts(session, wave_id=wave.id).items():
        crates[str(zone)] += n
    fleet = (
        session.scalar(
            select(func.count())
            .select_from(Vehicle)
            .where(Vehicle.region_id == wave.region_id, Vehicle.active.is_(True))
        )
        or 0
    )
    unassigned: Counter[str] = Counter()
    if plan is not None:
        for reason, n in session.execute(
            select(PlanUnassigned.reason, func.count())
            .where(PlanUnassigned.plan_id == plan.id)
            .group_by(PlanUnassigned.reason)
        ):
            unassigned[reason] = n
    cost = plan.fixed_cost if plan else 0
    return WaveFigures(
        orders=orders,
        lines=int(lines),
        crates=dict(sorted(crates.items())),
        vehicles_used=plan.vehicles_used if plan else 0,
        fleet=fleet,
        distance_m=plan.distance_m if plan else 0,
        vehicle_cost_cents=cost,
        vehicle_cost_per_order_cents=round(cost / orders) if plan and orders else None,
        unassigned=dict(sorted(unassigned.items())),
    )
