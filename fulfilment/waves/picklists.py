"""Reading the wave's pick lists: warehouse totals, per-station lists, per-leader sorting lists."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from fulfilment.core.models import (
    GridStation,
    Leader,
    LineStatus,
    Member,
    Order,
    OrderLine,
    OrderStatus,
    PickLevel,
    PickLine,
    Product,
    Wave,
)
from fulfilment.core.privacy import mask_name, mask_phone


@dataclass(frozen=True, slots=True)
class PickRow:
    sku: str
    name: str
    zone: str
    bin_code: str
    quantity: int
    weight_g: int
    volume_ml: int


@dataclass(frozen=True, slots=True)
class MemberLine:
    """One member's line on a sorting list. The bag is named by the order's short number and
    the masked member name: the pickup code is the member's secret and is never printed."""

    bag_no: int  # the order's short number at its point (see bag_numbers)
    member: str  # masked
    phone: str  # masked
    sku: str
    name: str
    quantity: int


@dataclass
class SortingList:
    """One leader's goods (按团长分拣) and the members they go to."""

    leader_code: str
    leader_name: str
    pickup_name: str
    station_code: str
    rows: list[PickRow] = field(default_factory=list)
    members: list[MemberLine] = field(default_factory=list)


def bag_numbers(session: Session, *, wave_id: int, leader_ids: list[int]) -> dict[int, int]:
    """A short number per order for its bag: its rank among its point's orders in the wave.

    Stable once the wave is cut off (orders are never deleted and a cut-off wave never changes);
    with the masked member name it names a bag without the pickup code. {order id: number}.
    """
    out: dict[int, int] = {}
    last, n = None, 0
    for leader_id, order_id in session.execute(
        select(Order.leader_id, Order.id)
        .where(Order.wave_id == wave_id, Order.leader_id.in_(leader_ids))
        .order_by(Order.leader_id, Order.id)
    ):
        n = n + 1 if leader_id == last else 1
        last = leader_id
        out[order_id] = n
    return out


def _picks(
    session: Session, wave: Wave, level: PickLevel, *conditions
) -> list[tuple[PickRow, Any]]:
    """The wave's pick lines of one level in walking order, each with its station and leader ids."""
    query = (
        select(
            Product.sku,
            Product.name,
            PickLine.zone,
            PickLine.bin_code,
            PickLine.quantity,
            PickLine.weight_g,
            PickLine.volume_ml,
            PickLine.station_id,
            PickLine.leader_id,
        )
        .join(Product, Product.id == PickLine.product_id)
        .where(PickLine.wave_id == wave.id, PickLine.level == level, *conditions)
        .order_by(PickLine.zone, PickLine.bin_code, Product.sku)
    )
    return [
        (PickRow(r.sku, r.name, r.zone.value, r.bin_code, r.quantity, r.weight_g, r.volume_ml), r)
        for r in session.execute(query)
    ]


def list_warehouse_picks(session: Session, wave: Wave) -> list[PickRow]:
    """SKU totals for the wave, by temperature zone and in bin order (the picking walk)."""
    return [row for row, _ in _picks(session, wave, PickLevel.WAREHOUSE)]


def list_station_picks(session: Session, wave: Wave) -> dict[str, list[PickRow]]:
    """Per grid station, in station-code order: what leaves the warehouse for it."""
    codes = dict(session.execute(select(GridStation.id, GridStation.code)).all())
    out: dict[str, list[PickRow]] = defaultdict(list)
    for row, ids in _picks(session, wave, PickLevel.STATION):
        out[codes[ids.station_id]].append(row)
    return dict(sorted(out.items()))


def _sorting_leaders(
    wave: Wave, station_code: str | None, leader_code: str | None
) -> Select[Leader, str]:
    """The leaders with goods in the wave (leader-level pick lines), by station and code."""
    query = (
        select(Leader, GridStation.code)
        .join(GridStation, GridStation.id == Leader.station_id)
        .where(
            Leader.region_id == wave.region_id,
            select(PickLine.id)
            .where(
                PickLine.wave_id == wave.id,
                PickLine.level == PickLevel.LEADER,
                PickLine.leader_id == Leader.id,
            )
            .exists(),
        )
    )
    if station_code:
        query = query.where(GridStation.code == station_code)
    if leader_code:
        query = query.where(Leader.code == leader_code)
    return query


def count_sorting_lists(
    session: Session, wave: Wave, *, station_code: str | None = None, leader_code: str | None = None
) -> int:
    """How many sorting lists (leaders with goods) the filter finds, counted in SQL."""
    leaders = _sorting_leaders(wave, station_code, leader_code).subquery()
    return session.scalar(select(func.count()).select_from(leaders)) or 0


def list_sorting_lists(
    session: Session,
    wave: Wave,
    *,
    station_code: str | None = None,
    leader_code: str | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> list[SortingList]:
    """Per leader: totals by SKU, and each member's lines by bag number (names and phones
    masked). offset and limit cut the page in SQL: only the page's leaders are read."""
    query = (
        _sorting_leaders(wave, station_code, leader_code)
        .order_by(GridStation.code, Leader.code)
        .offset(offset)
        .limit(limit)
    )
    lists = {
        leader.id: SortingList(leader.code, mask_name(leader.name), leader.pickup_name, code)
        for leader, code in session.execute(query)
    }
    if not lists:
        return []
    for row, ids in _picks(session, wave, PickLevel.LEADER, PickLine.leader_id.in_(list(lists))):
        lists[ids.leader_id].rows.append(row)
    bags = bag_numbers(session, wave_id=wave.id, leader_ids=list(lists))
    for m in session.execute(
        select(
            Order.leader_id,
            Order.id,
            Member.name,
            Member.phone,
            Product.sku,
            Product.name,
            OrderLine.quantity,
        )
        .join(Member, Member.id == Order.member_id)
        .join(OrderLine, OrderLine.order_id == Order.id)
        .join(Product, Product.id == OrderLine.product_id)
        .where(
            Order.wave_id == wave.id,
            Order.status == OrderStatus.PLACED,
            OrderLine.status == LineStatus.ACTIVE,
            Order.leader_id.in_(list(lists)),
        )
        .order_by(Order.leader_id, Order.id, Product.sku)
    ):
        leader_id, order_id, member_name, phone, sku, product_name, quantity = m
        lists[leader_id].members.append(
            MemberLine(
                bags[order_id],
                mask_name(member_name),
                mask_phone(phone),
                sku,
                product_name,
                quantity,
            )
        )
    return [s for s in lists.values() if s.rows]
