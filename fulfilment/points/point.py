"""A pickup point (自提点) and its wave: the wave it is working on, the goods expected, its bags,
orders and members. Reads only, under everything else of the area: `arrivals` (到货确认) and
`pickups` (核销) make the changes; `day` composes the Today page from all three.

The pickup tables live here, though only `pickups` writes them: arrivals must know which
orders were collected (short units never go on a bag already handed over), and so must the
member scope below, and `pickups` already sits on `arrivals`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import ForeignKey, String, exists, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from fulfilment.core.errors import NotFound
from fulfilment.core.models import (
    Base,
    Leader,
    LineStatus,
    Member,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    Region,
    TempZone,
    Wave,
    WaveStatus,
    utcnow,
)
from fulfilment.waves import picklists
from fulfilment.waves.cycle import local_time


class Pickup(Base):
    """An order handed to its member: who verified it, and when. One per order, ever."""

    __tablename__ = "pickup"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    leader_id: Mapped[int] = mapped_column(ForeignKey("leader.id"), index=True)
    verified_at: Mapped[datetime]
    verified_by: Mapped[int] = mapped_column(ForeignKey("user.id"))
    # The code as typed or scanned is not stored: it is the member's secret.
    method: Mapped[str] = mapped_column(String(16), default="typed")


class PickupLine(Base):
    """What was handed over on one order line (less than ordered where it arrived short)."""

    __tablename__ = "pickup_line"

    id: Mapped[int] = mapped_column(primary_key=True)
    pickup_id: Mapped[int] = mapped_column(ForeignKey("pickup.id"), index=True)
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_line.id"), index=True)
    quantity: Mapped[int]


@dataclass(frozen=True, slots=True)
class ExpectedRow:
    product_id: int
    sku: str
    name: str
    zone: TempZone
    quantity: int
    weight_g: int
    bags: int  # order lines the quantity is packed for


@dataclass(frozen=True, slots=True)
class ZoneTotal:
    zone: TempZone
    skus: int
    units: int
    weight_g: int


def current_wave(
    session: Session, leader: Leader, *, now: datetime | None = None, region: Region | None = None
) -> Wave | None:
    """The cut-off wave a point is working on: the first delivering today or later, else the
    last (`region`: the leader's, when the caller has it)."""
    today = local_time(region or leader_region(session, leader), now or utcnow()).date()
    base = select(Wave).where(Wave.region_id == leader.region_id, Wave.status == WaveStatus.CUT_OFF)
    upcoming = session.scalar(
        base.where(Wave.delivery_date >= today).order_by(Wave.delivery_date).limit(1)
    )
    if upcoming is not None:
        return upcoming
    return session.scalar(base.order_by(Wave.delivery_date.desc()).limit(1))


def leader_region(session: Session, leader: Leader) -> Region:
    region = session.get(Region, leader.region_id)
    assert region is not None  # a foreign key
    return region


def list_expected(session: Session, *, wave: Wave, leader: Leader) -> list[ExpectedRow]:
    """The point's sorting list for the wave (按团长分拣): SKU totals by zone, in picking order.

    The same sums as the wave's leader-level pick lines (active lines of placed orders), read
    through the point's own orders: a few dozen rows by index instead of the wave's level.
    """
    rows = session.execute(
        select(
            Product.id,
            Product.sku,
            Product.name,
            Product.zone,
            func.sum(OrderLine.quantity),
            func.sum(OrderLine.quantity * Product.weight_g),
            func.count(),
        )
        .select_from(Order)
        .join(OrderLine, OrderLine.order_id == Order.id)
        .join(Product, Product.id == OrderLine.product_id)
        .where(
            Order.leader_id == leader.id,
            Order.wave_id == wave.id,
            Order.status == OrderStatus.PLACED,
            OrderLine.status == LineStatus.ACTIVE,
        )
        .group_by(Product.id, Product.sku, Product.name, Product.zone, Product.bin_code)
        .order_by(Product.zone, Product.bin_code, Product.sku)
    )
    return [ExpectedRow(*r) for r in rows]


def zone_totals(rows: list[ExpectedRow]) -> list[ZoneTotal]:
    acc: dict[TempZone, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in rows:
        acc[r.zone][0] += 1
        acc[r.zone][1] += r.quantity
        acc[r.zone][2] += r.weight_g
    return [ZoneTotal(z, *acc[z]) for z in TempZone if z in acc]


def bag_numbers(session: Session, *, wave_id: int, leader_id: int) -> dict[int, int]:
    """The short bag numbers of one point's orders in a wave (see picklists.bag_numbers)."""
    return picklists.bag_numbers(session, wave_id=wave_id, leader_ids=[leader_id])


def get_point_order(session: Session, *, leader: Leader, order_id: int) -> Order:
    """One of the point's orders; another point's order is not found (never forbidden)."""
    order = session.get(Order, order_id)
    if order is None or order.leader_id != leader.id:
        raise NotFound(f"order {order_id} does not exist")
    return order


def lock_point(session: Session, leader: Leader) -> None:
    """Serialise the changes at one point for the rest of the transaction: arrival
    confirmations and corrections (which put short units on bags not yet collected) and pickups
    (which hand a bag over less its short units) take the leader's row in turn. `FOR NO KEY
    UPDATE` lets orders keep being placed for the point (their foreign key takes a key-share
    lock); SQLite serialises writers anyway."""
    session.execute(select(Leader.id).where(Leader.id == leader.id).with_for_update(key_share=True))


def get_point_member(session: Session, *, leader: Leader, member_id: int) -> Member:
    """A member with a live order at this point: placed (not cancelled) and not yet collected,
    whichever wave. Where the member first ordered (`member.leader_id`) does not matter: a
    member who moved is the new point's as soon as an order waits there, and stops being the
    old point's once nothing of theirs waits there. Anyone else is not found (never forbidden).
    """
    waiting = exists().where(
        Order.member_id == member_id,
        Order.leader_id == leader.id,
        Order.status == OrderStatus.PLACED,
        ~exists().where(Pickup.order_id == Order.id),
    )
    member = session.get(Member, member_id)
    if member is None or not session.scalar(select(waiting)):
        raise NotFound(f"member {member_id} does not exist")
    return member


def local_today(session: Session, leader: Leader, now: datetime | None = None) -> date:
    return local_time(leader_region(session, leader), now or utcnow()).date()
