"""A wave's crates as the warehouse, the stations and the drivers read them: each crate with its
point, station, contents per member bag, and where it rides in the published plan (van route,
stop, load number; truck, station stop, truck load number). Reads only; crates are packed by
`waves.crates`, their routes written on publish by `loading`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session, aliased

from fulfilment.core.models import (
    GridStation,
    Leader,
    Member,
    Order,
    OrderLine,
    Product,
    TempZone,
    Wave,
)
from fulfilment.core.privacy import mask_name
from fulfilment.waves.crates import Crate, CrateItem, ensure_crates, qr_payload
from fulfilment.waves.picklists import bag_numbers

from .loading import CrateLoad
from .plans import PlanRoute, RoutePlan, find_published_plan


@dataclass(frozen=True, slots=True)
class BagLine:
    order_line_id: int
    sku: str
    product_name: str
    quantity: int  # units of the line in this crate


@dataclass(frozen=True, slots=True)
class BagInCrate:
    """One member's bag (an order), or the part of it in this crate."""

    order_id: int
    bag_no: int  # the short bag number of the point's orders (picklists.bag_numbers)
    member_masked: str  # 李*: never the full name, never the pickup code
    lines: tuple[BagLine, ...]


@dataclass(frozen=True, slots=True)
class CrateView:
    """A crate as printed and scanned. Route fields are None without a published plan, or when
    the plan leaves the crate's point (or its station) unassigned."""

    id: int
    code: str
    qr: str  # what its label's QR code carries
    wave_id: int
    seq: int  # n
    of_n: int  # N
    zone: TempZone
    oversize: bool
    volume_ml: int
    capacity_ml: int
    leader_id: int
    leader_code: str
    leader_masked: str
    pickup_name: str
    address: str
    station_id: int
    station_code: str
    station_name: str
    plan_id: int | None
    plan_version: int | None
    route_id: int | None  # the van to the pickup point
    vehicle_code: str | None
    stop_no: int | None
    load_seq: int | None  # on the van: the reverse of its stop order
    trunk_route_id: int | None  # the truck from the warehouse to the station
    trunk_vehicle_code: str | None
    trunk_stop_no: int | None
    trunk_load_seq: int | None  # on the truck: the reverse of its stop order
    contents: tuple[BagInCrate, ...]


def crates_of_wave(
    session: Session,
    wave_id: int,
    station: int | None = None,
    leader: int | None = None,
    *,
    contents: bool = True,
) -> list[CrateView]:
    """The wave's crates (of one station's or one leader's points, by id, if given), in code
    order: leader, zone, n. A wave cut off before crates were records is packed first."""
    wave = session.get(Wave, wave_id)
    if wave is None:
        return []
    ensure_crates(session, wave)
    plan = find_published_plan(session, wave_id=wave_id)
    query = _crates_query(plan).where(Crate.wave_id == wave_id)
    if station is not None:
        query = query.where(Crate.station_id == station)
    if leader is not None:
        query = query.where(Crate.leader_id == leader)
    return _views(session, wave_id, plan, query, contents=contents)


def crates_of_route(session: Session, route_id: int, *, contents: bool = False) -> list[CrateView]:
    """The crates riding one route of the published plan (a truck or a van), in its load
    order: the first to go in first."""
    route = session.get(PlanRoute, route_id)
    if route is None:
        return []
    plan = session.get(RoutePlan, route.plan_id)
    assert plan is not None
    query = _crates_query(plan).where(
        or_(CrateLoad.route_id == route_id, CrateLoad.trunk_route_id == route_id)
    )
    views = _views(session, plan.wave_id, plan, query, contents=contents)
    trunk = any(v.trunk_route_id == route_id for v in views)
    return sorted(views, key=lambda v: (v.trunk_load_seq if trunk else v.load_seq) or 0)


def find_crate_view(session: Session, crate_id: int) -> CrateView | None:
    crate = session.get(Crate, crate_id)
    if crate is None:
        return None
    plan = find_published_plan(session, wave_id=crate.wave_id)
    views = _views(
        session,
        crate.wave_id,
        plan,
        _crates_query(plan).where(Crate.id == crate_id),
        contents=False,
    )
    return views[0] if views else None


_van = aliased(PlanRoute)
_truck = aliased(PlanRoute)


def _crates_query(plan: RoutePlan | None) -> Select:
    plan_id = plan.id if plan is not None else -1
    return (
        select(
            Crate,
            Leader.code,
            Leader.name,
            Leader.pickup_name,
            Leader.address,
            GridStation.code,
            GridStation.name,
            CrateLoad,
            _van.vehicle_code,
            _truck.vehicle_code,
        )
        .join(Leader, Leader.id == Crate.leader_id)
        .join(GridStation, GridStation.id == Crate.station_id)
        .outerjoin(CrateLoad, and_(CrateLoad.crate_id == Crate.id, CrateLoad.plan_id == plan_id))
        .outerjoin(_van, _van.id == CrateLoad.route_id)
        .outerjoin(_truck, _truck.id == CrateLoad.trunk_route_id)
        .order_by(Leader.code, Crate.zone, Crate.seq)
    )


def _views(
    session: Session,
    wave_id: int,
    plan: RoutePlan | None,
    query: Select,
    *,
    contents: bool,
) -> list[CrateView]:
    rows = session.execute(query).all()
    bags: dict[int, tuple[BagInCrate, ...]] = {}
    if contents and rows:
        bags = _contents(session, wave_id, [r[0].id for r in rows])
    out = []
    for crate, lcode, lname, pname, address, scode, sname, load, van, truck in rows:
        out.append(
            CrateView(
                id=crate.id,
                code=crate.code,
                qr=qr_payload(crate.id),
                wave_id=crate.wave_id,
                seq=crate.seq,
                of_n=crate.of_n,
                zone=crate.zone,
                oversize=crate.oversize,
                volume_ml=crate.volume_ml,
                capacity_ml=crate.capacity_ml,
                leader_id=crate.leader_id,
                leader_code=lcode,
                leader_masked=mask_name(lname),
                pickup_name=pname,
                address=address,
                station_id=crate.station_id,
                station_code=scode,
                station_name=sname,
                plan_id=plan.id if plan is not None else None,
                plan_version=plan.version if plan is not None else None,
                route_id=load.route_id if load else None,
                vehicle_code=van,
                stop_no=load.stop_no if load else None,
                load_seq=load.load_seq if load else None,
                trunk_route_id=load.trunk_route_id if load else None,
                trunk_vehicle_code=truck,
                trunk_stop_no=load.trunk_stop_no if load else None,
                trunk_load_seq=load.trunk_load_seq if load else None,
                contents=bags.get(crate.id, ()),
            )
        )
    return out


def _contents(
    session: Session, wave_id: int, crate_ids: list[int]
) -> dict[int, tuple[BagInCrate, ...]]:
    """What each crate holds, per member bag, in bag number order."""
    rows: list[Any] = []
    for chunk in range(0, len(crate_ids), 5000):
        rows += session.execute(
            select(
                CrateItem.crate_id,
                CrateItem.order_id,
                CrateItem.order_line_id,
                CrateItem.quantity,
                Order.leader_id,
                Member.name,
                Product.sku,
                Product.name,
            )
            .join(Order, Order.id == CrateItem.order_id)
            .join(Member, Member.id == Order.member_id)
            .join(OrderLine, OrderLine.id == CrateItem.order_line_id)
            .join(Product, Product.id == OrderLine.product_id)
            .where(CrateItem.crate_id.in_(crate_ids[chunk : chunk + 5000]))
        ).all()
    numbers = bag_numbers(session, wave_id=wave_id, leader_ids=sorted({r[4] for r in rows}))
    grouped: dict[int, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    names: dict[int, str] = {}
    for crate_id, order_id, line_id, qty, _, member, sku, pname in rows:
        grouped[crate_id][order_id].append(BagLine(line_id, sku, pname, qty))
        names[order_id] = member
    return {
        crate_id: tuple(
            BagInCrate(
                order_id,
                numbers.get(order_id, 0),
                mask_name(names[order_id]),
                tuple(sorted(lines, key=lambda b: b.order_line_id)),
            )
            for order_id, lines in sorted(by_order.items(), key=lambda kv: numbers.get(kv[0], 0))
        )
        for crate_id, by_order in grouped.items()
    }
