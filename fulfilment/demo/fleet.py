"""The demo city's fleet, sized from the wave's demand."""

from __future__ import annotations

import math
from datetime import time

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fulfilment.catalogue.fleet import Vehicle, VehicleKind
from fulfilment.core.models import GridStation, Leader, Order, OrderLine, Product, Region, Warehouse

TRUCK = {"weight_kg": 12000, "volume_l": 45000, "crates": 900}  # a 9.6 m truck, partly cold


VAN = {"weight_kg": 1500, "volume_l": 8000, "crates": 160}  # a light van (面包车)


SLACK = 1.3  # capacity over demand: room for windows, and a spare


def add_demo_fleet(session: Session, *, region: Region, wave_id: int) -> int:
    """A realistic fleet for the demo city, sized from the wave's demand: refrigerated and ambient
    trucks at the warehouse, and at every station enough vans (every other one with a
    chilled/frozen box) to carry its leaders' goods with 30 % to spare.

    So the default demo routes every stop, and a large demo leaves the planner real choices
    (which vans, which trucks, cold or not). Returns the vehicles added."""
    warehouse = session.scalars(select(Warehouse).where(Warehouse.region_id == region.id)).first()
    stations = list(
        session.scalars(
            select(GridStation).where(GridStation.region_id == region.id).order_by(GridStation.code)
        )
    )
    if warehouse is None or not stations:
        return 0
    demand = dict(
        session.execute(
            select(Leader.station_id, func.sum(OrderLine.quantity * Product.weight_g))
            .select_from(OrderLine)
            .join(Order, Order.id == OrderLine.order_id)
            .join(Leader, Leader.id == Order.leader_id)
            .join(Product, Product.id == OrderLine.product_id)
            .where(Order.wave_id == wave_id)
            .group_by(Leader.station_id)
        ).all()
    )
    total_kg = sum(int(w or 0) for w in demand.values()) / 1000
    rows: list[dict] = []
    trucks = max(2, math.ceil(total_kg * SLACK / TRUCK["weight_kg"]) + 1)
    for i in range(trucks):
        cold = i % 2 == 0
        rows.append(
            dict(
                code=f"{region.code}-T{i + 1:02d}",
                region_id=region.id,
                kind=VehicleKind.TRUNK,
                warehouse_id=warehouse.id,
                station_id=None,
                capacity_weight_g=TRUCK["weight_kg"] * 1000,
                capacity_volume_ml=TRUCK["volume_l"] * 1000,
                capacity_crates=TRUCK["crates"],
                zones="ambient,chilled,frozen" if cold else "ambient",
                shift_start=time(3, 0),
                shift_end=time(9, 0),
                max_duration_s=6 * 3600,
                speed_kmh=35.0,
                profile="truck",
                fixed_cost_cents=80000 if cold else 60000,
            )
        )
    for station in stations:
        kg = int(demand.get(station.id) or 0) / 1000
        vans = max(2, math.ceil(kg * SLACK / VAN["weight_kg"]) + 1)
        for j in range(vans):
            cold = j % 2 == 0
            rows.append(
                dict(
                    code=f"{station.code}-V{j + 1:02d}",
                    region_id=region.id,
                    kind=VehicleKind.LAST_MILE,
                    warehouse_id=None,
                    station_id=station.id,
                    capacity_weight_g=VAN["weight_kg"] * 1000,
                    capacity_volume_ml=VAN["volume_l"] * 1000,
                    capacity_crates=VAN["crates"],
                    zones="ambient,chilled,frozen" if cold else "ambient",
                    shift_start=time(5, 30),
                    shift_end=time(13, 0),
                    max_duration_s=7 * 3600,
                    speed_kmh=25.0,
                    profile="van",
                    fixed_cost_cents=25000 if cold else 20000,
                )
            )
    session.add_all(Vehicle(**row) for row in rows)
    session.flush()
    return len(rows)
