"""Factories for the night's tests: vehicles, a controllable clock, a cut-off demo wave."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfilment.fleet import Vehicle, VehicleKind
from fulfilment.models import GridStation, Region, Warehouse


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
