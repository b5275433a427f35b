"""A demo city from a seed: one region, a warehouse, grid stations, leaders, a catalogue and a day of orders.

Bulk inserts go through Core in a few executemany statements, so `--leaders 2000 --orders 100000`
builds in seconds. The same seed gives the same city and the same orders.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from fulfilment.core.audit import record_change
from fulfilment.core.models import (
    Deal,
    GridStation,
    Leader,
    Member,
    Order,
    OrderLine,
    PriceTier,
    Product,
    Region,
    TempZone,
    Warehouse,
    Wave,
    WaveStatus,
)
from fulfilment.waves.cycle import cutoff_for_delivery, delivery_date_for

from .fleet import add_demo_fleet

CENTRE = (31.2304, 121.4737)  # Shanghai, People's Square
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂"
NEIGHBOURHOODS = [
    "阳光花园",
    "锦绣苑",
    "翠湖天地",
    "梅陇新村",
    "长风小区",
    "康桥半岛",
    "绿地世纪城",
    "古北新区",
    "田林小区",
    "曹杨新村",
    "碧云社区",
    "联洋花园",
    "金桥新村",
    "万科城市花园",
]
CATALOGUE = [
    # sku, name, weight_g, volume_ml, zone, base price, tiers [(min_qty, price)], min group
    ("VEG-001", "上海青 500g", 500, 1500, TempZone.AMBIENT, 390, [(200, 350), (500, 320)], None),
    ("VEG-002", "西红柿 1kg", 1000, 1800, TempZone.AMBIENT, 690, [(300, 620)], None),
    ("VEG-003", "土豆 2.5kg", 2500, 3500, TempZone.AMBIENT, 990, [], None),
    (
        "FRU-001",
        "赣南脐橙 5kg",
        5000,
        9000,
        TempZone.AMBIENT,
        3990,
        [(100, 3590), (400, 3290)],
        None,
    ),
    ("FRU-002", "阳光玫瑰葡萄 1kg", 1000, 2000, TempZone.CHILLED, 2990, [(150, 2690)], 20),
    ("GRO-001", "东北大米 5kg", 5000, 6500, TempZone.AMBIENT, 3290, [], None),
    ("GRO-002", "鸡蛋 30枚", 1800, 4000, TempZone.AMBIENT, 1890, [(300, 1690)], None),
    ("GRO-003", "金龙鱼花生油 5L", 4600, 5200, TempZone.AMBIENT, 8990, [], None),
    ("DAI-001", "鲜牛奶 950ml", 1000, 1000, TempZone.CHILLED, 1390, [(200, 1190)], None),
    ("DAI-002", "酸奶 6杯装", 900, 1100, TempZone.CHILLED, 1590, [], None),
    ("MEA-001", "猪肋排 1kg", 1000, 1300, TempZone.CHILLED, 4590, [(100, 4190)], 30),
    ("MEA-002", "鸡胸肉 1kg", 1000, 1200, TempZone.CHILLED, 2290, [], None),
    ("FRZ-001", "速冻水饺 1kg", 1000, 1600, TempZone.FROZEN, 2590, [(200, 2290)], None),
    ("FRZ-002", "冷冻虾仁 500g", 500, 800, TempZone.FROZEN, 4990, [(80, 4490)], 40),
    ("FRZ-003", "冰淇淋 4支装", 400, 900, TempZone.FROZEN, 2990, [], 300),
    ("HOM-001", "抽纸 24包", 2400, 12000, TempZone.AMBIENT, 3990, [(200, 3590)], None),
]
# Who the warehouse buys each kind of goods from (the purchase list groups by supplier).
SUPPLIERS = {
    "VEG": "崇明蔬菜合作社",
    "FRU": "南汇果园",
    "GRO": "粮油批发中心",
    "DAI": "光明乳业",
    "MEA": "金锣肉业",
    "FRZ": "思念食品",
    "HOM": "维达纸业",
}
# Share of the day's orders placed in each local hour (an evening peak before the 23:00 cutoff).
HOURLY = [1, 0.5, 0.3, 0.2, 0.2, 0.3, 1, 2, 3, 3, 3, 3.5, 4, 3, 3, 3, 3.5, 4, 5, 7, 9, 10, 9, 5]


@dataclass(frozen=True, slots=True)
class DemoSummary:
    region_code: str
    delivery_date: date
    stations: int
    leaders: int
    members: int
    orders: int
    lines: int


def _offset(centre: tuple[float, float], km_north: float, km_east: float) -> tuple[float, float]:
    lat = centre[0] + km_north / 110.574
    lon = centre[1] + km_east / (111.320 * math.cos(math.radians(centre[0])))
    return round(lat, 6), round(lon, 6)


def _phone(rng: random.Random) -> str:
    return f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"


def build_demo(
    session: Session,
    *,
    seed: int = 7,
    leaders: int = 60,
    orders: int = 1500,
    stations: int | None = None,
    now: datetime | None = None,
    region_code: str = "SH",
) -> DemoSummary:
    """Build the demo city and one day of orders for the most recent cutoff before `now`."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    stations = stations or max(2, min(40, leaders // 50 + 2))

    region = Region(
        code=region_code,
        name="上海 Shanghai",
        tz="Asia/Shanghai",
        cutoff_time=time(23, 0),
        delivery_offset_days=1,
        lat=CENTRE[0],
        lon=CENTRE[1],
        radius_km=80,
    )
    session.add(region)
    session.flush()
    warehouse = Warehouse(
        region_id=region.id,
        code=f"{region_code}-WH1",
        name="嘉定中心仓",
        lat=_offset(CENTRE, 18, -20)[0],
        lon=_offset(CENTRE, 18, -20)[1],
    )
    session.add(warehouse)
    session.flush()

    station_rows: list[dict[str, Any]] = []
    for i in range(stations):
        angle = 2 * math.pi * i / stations
        ring = 6 + 6 * (i % 2)
        lat, lon = _offset(CENTRE, ring * math.sin(angle), ring * math.cos(angle))
        station_rows.append(
            {
                "region_id": region.id,
                "warehouse_id": warehouse.id,
                "code": f"{region_code}-GS{i + 1:02d}",
                "name": f"网格站 {i + 1:02d}",
                "lat": lat,
                "lon": lon,
            }
        )
    session.execute(insert(GridStation), station_rows)
    station_ids = session.scalars(
        select(GridStation.id).where(GridStation.region_id == region.id).order_by(GridStation.id)
    ).all()
    station_pos: dict[int, tuple[float, float]] = {
        sid: (row["lat"], row["lon"]) for sid, row in zip(station_ids, station_rows, strict=True)
    }

    leader_prefix = "" if region_code == "SH" else f"{region_code}-"  # codes are unique
    leader_rows = []
    for i in range(leaders):
        sid = station_ids[i % stations]
        lat, lon = _offset(station_pos[sid], rng.gauss(0, 1.6), rng.gauss(0, 1.6))
        hood = rng.choice(NEIGHBOURHOODS)
        opens = time(rng.choice([6, 7, 7, 8]), rng.choice([0, 30]))
        leader_rows.append(
            {
                "region_id": region.id,
                "station_id": sid,
                "code": f"{leader_prefix}L{i + 1:05d}",
                "name": rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN),
                "phone": _phone(rng),
                "pickup_name": f"{hood}{rng.randint(1, 40)}号楼",
                "address": f"{hood} {rng.randint(1, 300)}弄",
                "lat": lat,
                "lon": lon,
                "window_open": opens,
                "window_close": time(min(opens.hour + rng.choice([3, 4, 5]), 23), opens.minute),
                "active": True,
            }
        )
    session.execute(insert(Leader), leader_rows)
    leader_ids = session.scalars(
        select(Leader.id).where(Leader.region_id == region.id).order_by(Leader.id)
    ).all()

    known = set(session.scalars(select(Product.sku)))  # another demo region made them already
    products = [
        {
            "sku": sku,
            "name": name,
            "weight_g": w,
            "volume_ml": v,
            "zone": z.value,
            "bin_code": f"{'ABC'[i % 3]}-{i // 3 + 1:02d}-{i % 4 + 1}",
            "supplier": SUPPLIERS[sku.split("-")[0]],
        }
        for i, (sku, name, w, v, z, *_rest) in enumerate(CATALOGUE)
        if sku not in known
    ]
    if products:
        session.execute(insert(Product), products)
    product_ids = dict(session.execute(select(Product.sku, Product.id)).all())

    # One day of orders, placed in the 24 hours before the most recent cutoff.
    delivery = delivery_date_for(region, now) - timedelta(days=1)
    cutoff = cutoff_for_delivery(region, delivery)
    for day in (delivery, delivery + timedelta(days=1), delivery + timedelta(days=2)):
        _add_deals(session, region, day, product_ids)
    deal_ids = dict(
        session.execute(
            select(Deal.product_id, Deal.id).where(
                Deal.region_id == region.id, Deal.delivery_date == delivery
            )
        ).all()
    )
    base_price = {product_ids[c[0]]: c[5] for c in CATALOGUE}
    popularity = [rng.uniform(0.3, 3.0) for _ in CATALOGUE]

    wave_id = session.execute(
        insert(Wave)
        .values(
            region_id=region.id,
            delivery_date=delivery,
            status=WaveStatus.OPEN.value,
            cutoff_due_at=cutoff,
        )
        .returning(Wave.id)
    ).scalar_one()

    members_per_leader = max(3, round(orders / max(leaders, 1) * 0.6))
    member_rows = []
    for lid in leader_ids:
        for m in range(members_per_leader):
            member_rows.append(
                {
                    "region_id": region.id,
                    "leader_id": lid,
                    "external_id": f"M{lid:05d}-{m:03d}",
                    "name": rng.choice(SURNAMES) + rng.choice(GIVEN),
                    "phone": _phone(rng),
                }
            )
    session.execute(insert(Member), member_rows)
    member_ids = session.scalars(
        select(Member.id).where(Member.region_id == region.id).order_by(Member.id)
    ).all()

    hours = list(range(24))
    start = cutoff - timedelta(days=1)
    order_rows: list[dict[str, Any]] = []
    line_rows: list[dict[str, Any]] = []
    used_codes: set[tuple[int, str]] = set()
    for n in range(orders):
        mi = rng.randrange(len(member_ids))
        lid = leader_ids[mi // members_per_leader]
        hour = rng.choices(hours, weights=HOURLY)[0]  # local hour; the day runs 23:00 → 23:00
        placed = start + timedelta(hours=(hour - 23) % 24, seconds=rng.randrange(3600))
        code = f"{rng.randrange(10**8):08d}"
        while (lid, code) in used_codes:
            code = f"{rng.randrange(10**8):08d}"
        used_codes.add((lid, code))
        oid = n  # index into order_rows until the database gives the id
        picks = rng.sample(
            range(len(CATALOGUE)), k=min(len(CATALOGUE), rng.choices([1, 2, 3, 4], [4, 3, 2, 1])[0])
        )
        total = 0
        for ci in picks:
            if rng.random() > popularity[ci] / 3.0 + 0.2:
                continue
            pid = product_ids[CATALOGUE[ci][0]]
            qty = rng.choices([1, 2, 3], [8, 3, 1])[0]
            line_rows.append(
                {
                    "order_id": oid,
                    "deal_id": deal_ids[pid],
                    "product_id": pid,
                    "quantity": qty,
                    "unit_price_cents": base_price[pid],
                    "status": "active",
                }
            )
            total += qty * base_price[pid]
        if total == 0:
            pid = product_ids[CATALOGUE[picks[0]][0]]
            line_rows.append(
                {
                    "order_id": oid,
                    "deal_id": deal_ids[pid],
                    "product_id": pid,
                    "quantity": 1,
                    "unit_price_cents": base_price[pid],
                    "status": "active",
                }
            )
            total = base_price[pid]
        order_rows.append(
            {
                "region_id": region.id,
                "leader_id": lid,
                "member_id": member_ids[mi],
                "wave_id": wave_id,
                "placed_at": placed,
                "received_at": placed,
                "status": "placed",
                "late": False,
                "pickup_code": code,
                "idempotency_key": f"demo:{seed}:{n}",
                "source": "demo",
                "total_cents": total,
            }
        )
    _price_as_placed(order_rows, line_rows, {product_ids[c[0]]: (c[5], c[6]) for c in CATALOGUE})
    order_ids: list[int] = []
    for chunk in range(0, len(order_rows), 20_000):
        order_ids += session.scalars(
            insert(Order).returning(Order.id, sort_by_parameter_order=True),
            order_rows[chunk : chunk + 20_000],
        ).all()
    for row in line_rows:
        row["order_id"] = order_ids[row["order_id"]]
    for chunk in range(0, len(line_rows), 20_000):
        session.execute(insert(OrderLine), line_rows[chunk : chunk + 20_000])
    sold = (
        select(func.coalesce(func.sum(OrderLine.quantity), 0))
        .where(OrderLine.deal_id == Deal.id)
        .scalar_subquery()
    )
    session.execute(
        update(Deal)
        .where(Deal.region_id == region.id, Deal.delivery_date == delivery)
        .values(sold_qty=sold)
    )
    add_demo_fleet(session, region=region, wave_id=wave_id)
    record_change(
        session,
        actor="demo",
        action="demo.built",
        entity="region",
        entity_id=region.id,
        after={
            "seed": seed,
            "leaders": leaders,
            "orders": orders,
            "delivery_date": delivery.isoformat(),
        },
    )
    return DemoSummary(
        region_code, delivery, stations, leaders, len(member_rows), len(order_rows), len(line_rows)
    )


def _price_as_placed(
    order_rows: list[dict[str, Any]],
    line_rows: list[dict[str, Any]],
    pricing: dict[int, tuple[int, list[tuple[int, int]]]],
) -> None:
    """Each line pays the tier price shown when it was placed, as order intake does: walk the
    orders in time order and price each line at the deal's running total before it."""
    by_order: dict[int, list[dict[str, Any]]] = {}
    for line in line_rows:
        by_order.setdefault(line["order_id"], []).append(line)
    sold: dict[int, int] = {}
    for index in sorted(range(len(order_rows)), key=lambda i: order_rows[i]["placed_at"]):
        total = 0
        for line in by_order[index]:
            pid = line["product_id"]
            base, tiers = pricing[pid]
            before = sold.get(pid, 0)
            line["unit_price_cents"] = min([base] + [p for q, p in tiers if before >= q])
            sold[pid] = before + line["quantity"]
            total += line["unit_price_cents"] * line["quantity"]
        order_rows[index]["total_cents"] = total


def _add_deals(session: Session, region: Region, day: date, product_ids: dict[str, int]) -> None:
    for sku, _name, _w, _v, _z, price, tiers, min_group in CATALOGUE:
        deal = Deal(
            region_id=region.id,
            product_id=product_ids[sku],
            delivery_date=day,
            base_price_cents=price,
            stock_cap=None if sku != "FRU-002" else 100_000,
            min_group_members=min_group,
        )
        deal.tiers = [PriceTier(min_qty=q, price_cents=p) for q, p in tiers]
        session.add(deal)
    session.flush()
