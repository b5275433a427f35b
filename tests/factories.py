"""Small factories for test data: a region with a station, leaders, products and deals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.orm import Session

from fulfilment.core.models import (
    Deal,
    GridStation,
    Leader,
    PriceTier,
    Product,
    Region,
    TempZone,
    Warehouse,
)
from fulfilment.waves.cycle import cutoff_for_delivery

DELIVERY = date(2026, 3, 10)  # delivered on the 10th: the cutoff is 23:00 Shanghai time on the 9th


@dataclass
class World:
    region: Region
    station: GridStation
    leaders: list[Leader]
    products: dict[str, Product]
    deals: dict[str, Deal]

    @property
    def cutoff(self) -> datetime:
        return cutoff_for_delivery(self.region, DELIVERY)

    def before_cutoff(self, minutes: int = 60) -> datetime:
        return self.cutoff - timedelta(minutes=minutes)

    def after_cutoff(self, minutes: int = 1) -> datetime:
        return self.cutoff + timedelta(minutes=minutes)


def make_world(
    session: Session,
    *,
    leaders: int = 3,
    stock_cap: int | None = None,
    min_group: int | None = None,
    tiers: list[tuple[int, int]] | None = None,
    days: int = 3,
    tz: str = "Asia/Shanghai",
    stations: int = 1,
) -> World:
    """A region (cutoff 23:00, next-day delivery) with deals for DELIVERY and the days after."""
    region = Region(
        code="SH",
        name="Shanghai",
        tz=tz,
        cutoff_time=time(23, 0),
        delivery_offset_days=1,
        lat=31.23,
        lon=121.47,
        radius_km=80,
    )
    session.add(region)
    session.flush()
    wh = Warehouse(region_id=region.id, code="WH1", name="Warehouse", lat=31.35, lon=121.30)
    session.add(wh)
    session.flush()
    station_rows = []
    for s in range(stations):
        st = GridStation(
            region_id=region.id,
            warehouse_id=wh.id,
            code=f"GS{s + 1}",
            name=f"Station {s + 1}",
            lat=31.20 + 0.01 * s,
            lon=121.45,
        )
        session.add(st)
        station_rows.append(st)
    session.flush()
    people = []
    for i in range(leaders):
        leader = Leader(
            region_id=region.id,
            station_id=station_rows[i % stations].id,
            code=f"L{i + 1}",
            name=f"Leader {i + 1}",
            phone=f"1380000{i:04d}",
            pickup_name=f"Point {i + 1}",
            lat=31.21 + 0.001 * i,
            lon=121.46,
        )
        session.add(leader)
        people.append(leader)
    products = {
        "APPLE": Product(
            sku="APPLE",
            name="Apples 1kg",
            weight_g=1000,
            volume_ml=1500,
            zone=TempZone.AMBIENT,
            bin_code="A-01-1",
        ),
        "MILK": Product(
            sku="MILK",
            name="Milk 1L",
            weight_g=1050,
            volume_ml=1000,
            zone=TempZone.CHILLED,
            bin_code="B-02-1",
        ),
        "PRAWN": Product(
            sku="PRAWN",
            name="Frozen prawns",
            weight_g=500,
            volume_ml=700,
            zone=TempZone.FROZEN,
            bin_code="C-01-3",
        ),
    }
    session.add_all(products.values())
    session.flush()
    deals: dict[str, Deal] = {}
    for offset in range(days):
        day = DELIVERY + timedelta(days=offset)
        for sku, product in products.items():
            deal = Deal(
                region_id=region.id,
                product_id=product.id,
                delivery_date=day,
                base_price_cents=1000,
                stock_cap=stock_cap,
                min_group_members=min_group,
            )
            deal.tiers = [PriceTier(min_qty=q, price_cents=p) for q, p in (tiers or [])]
            session.add(deal)
            if offset == 0:
                deals[sku] = deal
    session.flush()
    return World(region, station_rows[0], people, products, deals)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)
