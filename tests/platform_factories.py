"""Factories for the order API: a second city beside make_world's, and API clients."""

from __future__ import annotations

from datetime import time, timedelta

from factories import DELIVERY, World
from sqlalchemy.orm import Session

from fulfilment.core.models import Deal, GridStation, Leader, Region, Warehouse
from fulfilment.platforms.clients import ApiClient, create_api_client


def add_city(session: Session, world: World, *, code: str = "BJ", days: int = 3) -> Region:
    """Another region (Beijing, same cutoff) with leaders <code>-L1, <code>-L2 and the same SKUs."""
    region = Region(
        code=code,
        name="Beijing",
        tz="Asia/Shanghai",
        cutoff_time=time(23, 0),
        delivery_offset_days=1,
        lat=39.90,
        lon=116.40,
        radius_km=80,
    )
    session.add(region)
    session.flush()
    wh = Warehouse(region_id=region.id, code=f"{code}-WH", name="WH", lat=39.95, lon=116.3)
    session.add(wh)
    session.flush()
    station = GridStation(
        region_id=region.id, warehouse_id=wh.id, code=f"{code}-GS", name="GS", lat=39.9, lon=116.4
    )
    session.add(station)
    session.flush()
    for i in (1, 2):
        session.add(
            Leader(
                region_id=region.id,
                station_id=station.id,
                code=f"{code}-L{i}",
                name=f"Leader {i}",
                phone="13900000000",
                pickup_name=f"Point {i}",
                lat=39.9,
                lon=116.4 + 0.001 * i,
            )
        )
    for offset in range(days):
        for product in world.products.values():
            session.add(
                Deal(
                    region_id=region.id,
                    product_id=product.id,
                    delivery_date=DELIVERY + timedelta(days=offset),
                    base_price_cents=900,
                    stock_cap=None,
                )
            )
    session.flush()
    return region


def make_client(
    session: Session, *, name: str = "shop-a", region: str = "SH"
) -> tuple[ApiClient, str]:
    """An API client of the region and its Bearer token."""
    return create_api_client(session, name=name, region_code=region)
