"""Factories for the night's tests: vehicles, a controllable clock, a cut-off demo wave."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfilment.catalogue.fleet import Vehicle, VehicleKind
from fulfilment.core.models import GridStation, Region, Warehouse


@dataclass
class FakeClock:
    """A clock the test moves: `sleep` only advances it (and records what was asked)."""

    at: datetime
    slept: list[float] = field(default_factory=list)

    def now(self) -> datetime:
        return self.at

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.at += timedelta(seconds=seconds)

    def advance(self, **kwargs: float) -> None:
        self.at += timedelta(**kwargs)


def add_vehicle(
    session: Session,
    region: Region,
    *,
    code: str,
    kind: VehicleKind,
    home: Warehouse | GridStation,
    weight_kg: int = 1000,
    volume_l: int = 6000,
    crates: int = 200,
    zones: str = "ambient,chilled,frozen",
    shift: tuple[time, time] = (time(5, 0), time(14, 0)),
) -> Vehicle:
    vehicle = Vehicle(
        region_id=region.id,
        code=code,
        kind=kind,
        warehouse_id=home.id if isinstance(home, Warehouse) else None,
        station_id=home.id if isinstance(home, GridStation) else None,
        capacity_weight_g=weight_kg * 1000,
        capacity_volume_ml=volume_l * 1000,
        capacity_crates=crates,
        zones=zones,
        shift_start=shift[0],
        shift_end=shift[1],
        speed_kmh=30.0,
        profile="truck" if kind == VehicleKind.TRUNK else "van",
    )
    session.add(vehicle)
    session.flush()
    return vehicle


def add_small_fleet(session: Session, region: Region, **truck: object) -> None:
    """A truck at the warehouse (3:00–9:00) and a cold van and an ambient van per station."""
    warehouse = session.scalars(select(Warehouse).where(Warehouse.region_id == region.id)).one()
    add_vehicle(
        session,
        region,
        code="T1",
        kind=VehicleKind.TRUNK,
        home=warehouse,
        shift=(time(3, 0), time(9, 0)),
        **{"weight_kg": 5000, "volume_l": 30000, "crates": 600, **truck},  # type: ignore[arg-type]
    )
    for station in session.scalars(select(GridStation).where(GridStation.region_id == region.id)):
        add_vehicle(
            session, region, code=f"{station.code}-V1", kind=VehicleKind.LAST_MILE, home=station
        )
        add_vehicle(
            session,
            region,
            code=f"{station.code}-V2",
            kind=VehicleKind.LAST_MILE,
            home=station,
            zones="ambient",
        )


def add_published_stop(session: Session, *, wave, leader, arrival_at: datetime) -> None:
    """A published plan for the wave with one last-mile route that reaches `leader` at `arrival_at`."""
    from fulfilment.night.plans import Echelon, PlanPart, PlanRoute, PlanStatus, PlanStop, RoutePlan

    plan = RoutePlan(
        wave_id=wave.id,
        version=1,
        status=PlanStatus.PUBLISHED,
        created_at=arrival_at,
        created_by="test",
        published_at=arrival_at,
        published_by="test",
        day_start_at=arrival_at,
        time_limit_s=1.0,
    )
    session.add(plan)
    session.flush()
    part = PlanPart(
        plan_id=plan.id,
        part=leader.station.code,
        echelon=Echelon.LAST_MILE,
        station_id=leader.station_id,
        search_status="solved",
        distance_m=0,
        vehicles_used=1,
        fixed_cost=0,
        lateness_s=0,
        cost_total=0,
        solve_s=0.0,
        stored_at=arrival_at,
    )
    session.add(part)
    session.flush()
    route = PlanRoute(
        plan_id=plan.id,
        part_id=part.id,
        echelon=Echelon.LAST_MILE,
        station_id=leader.station_id,
        vehicle_code="VAN-1",
        start_at=arrival_at,
        end_at=arrival_at,
        distance_m=0,
        duration_s=0,
        start_weight_g=0,
        start_volume_ml=0,
        start_crates=0,
    )
    session.add(route)
    session.flush()
    session.add(
        PlanStop(
            route_id=route.id,
            seq=1,
            leader_id=leader.id,
            stop_code=leader.code,
            zones="ambient",
            arrival_at=arrival_at,
            departure_at=arrival_at,
            delivered_weight_g=0,
            delivered_volume_ml=0,
            delivered_crates=0,
            after_weight_g=0,
            after_volume_ml=0,
            after_crates=0,
        )
    )
    session.flush()
