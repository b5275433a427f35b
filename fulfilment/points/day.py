"""A point's day (the Today page): its wave, the goods expected, the published arrival time and
its members' orders with their state. Reads only; it sits on arrivals and pickups, not under.

An order waits for pickup only once its goods are at the point: until the arrival is confirmed
it is `awaiting_arrival`, and once the receiving window has passed without a confirmation the
day says so (`window_passed`)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, exists, func, select
from sqlalchemy.orm import Session

from fulfilment.core.models import (
    Leader,
    LineStatus,
    Member,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    Region,
    Wave,
    utcnow,
)
from fulfilment.core.privacy import mask_name, mask_phone
from fulfilment.night.plans import find_published_eta
from fulfilment.waves.cycle import local_time

from .arrivals import Arrival, Shortage, find_arrival
from .pickups import Pickup, normalise_code
from .point import (
    ExpectedRow,
    ZoneTotal,
    current_wave,
    leader_region,
    list_expected,
    zone_totals,
)


@dataclass(frozen=True, slots=True)
class OrderRow:
    order_id: int
    bag_no: int
    member_id: int
    member: str  # masked name
    phone: str  # masked phone
    lines: tuple[tuple[str, str, int, int], ...]  # (sku, product name, quantity, units short)
    total_cents: int
    # awaiting_arrival / placed (waiting for pickup) / collected / cancelled / cancelled_for_refund
    state: str
    placed_at: datetime


@dataclass
class PointDay:
    """A point's delivery for one wave: the goods by zone, the sorting list and the orders."""

    leader: Leader
    wave: Wave | None
    arrival: Arrival | None = None
    window_passed: bool = False  # the receiving window is over and the arrival not confirmed
    eta: datetime | None = None
    expected: list[ExpectedRow] = field(default_factory=list)
    zones: list[ZoneTotal] = field(default_factory=list)
    orders: list[OrderRow] = field(default_factory=list)


def order_state(status: OrderStatus, *, collected: bool, arrived: bool) -> str:
    """What a leader reads about an order: a placed one is `collected` once handed over,
    `awaiting_arrival` until the point confirmed the goods, else `placed` (waiting for pickup);
    a cancelled one its status."""
    if status != OrderStatus.PLACED:
        return status.value
    if collected:
        return "collected"
    return "placed" if arrived else "awaiting_arrival"


def list_point_orders(
    session: Session, *, wave: Wave, leader: Leader, arrived: bool = True
) -> list[OrderRow]:
    """Every order of the point in the wave with its state and each line's units short; names
    and phones masked. Until the goods `arrived`, a placed order is `awaiting_arrival`.

    Two queries: the orders (with whether each was collected) and their active lines (with
    their units short). A bag's number is its order's rank among the point's orders in the
    wave, as the sorting lists print it (`picklists.bag_numbers`): the orders come in that order.
    """
    params = {"wave_id": wave.id, "leader_id": leader.id}
    orders = session.execute(_POINT_ORDERS, params).all()
    lines: dict[int, list[tuple[str, str, int, int]]] = defaultdict(list)
    for order_id, sku, name, qty, short in session.execute(_POINT_LINES, params):
        lines[order_id].append((sku, name, qty, short))
    out = []
    for bag_no, row in enumerate(orders, 1):
        order_id, status, total_cents, placed_at, member_id, name, phone, collected = row
        out.append(
            OrderRow(
                order_id,
                bag_no,
                member_id,
                mask_name(name),
                mask_phone(phone),
                tuple(lines[order_id]),
                total_cents,
                order_state(status, collected=collected, arrived=arrived),
                placed_at,
            )
        )
    return out


_OF_POINT = (Order.wave_id == bindparam("wave_id"), Order.leader_id == bindparam("leader_id"))
_POINT_ORDERS = (
    select(
        Order.id,
        Order.status,
        Order.total_cents,
        Order.placed_at,
        Member.id,
        Member.name,
        Member.phone,
        exists().where(Pickup.order_id == Order.id).label("collected"),
    )
    .join(Member, Member.id == Order.member_id)
    .where(*_OF_POINT)
    .order_by(Order.id)
)
_POINT_LINES = (
    select(
        OrderLine.order_id,
        Product.sku,
        Product.name,
        OrderLine.quantity,
        func.coalesce(
            select(func.sum(Shortage.quantity))
            .where(Shortage.order_line_id == OrderLine.id)
            .scalar_subquery(),
            0,
        ),
    )
    .join(Product, Product.id == OrderLine.product_id)
    .join(Order, Order.id == OrderLine.order_id)
    .where(*_OF_POINT, OrderLine.status == LineStatus.ACTIVE)
    .order_by(OrderLine.id)
)


def point_day(
    session: Session, *, leader: Leader, wave: Wave | None = None, now: datetime | None = None
) -> PointDay:
    """The Today page's content for one point."""
    region = leader_region(session, leader)  # read once, for the clock of every step below
    wave = wave or current_wave(session, leader, now=now, region=region)
    day = PointDay(leader=leader, wave=wave)
    if wave is None:
        return day
    day.arrival = find_arrival(session, wave=wave, leader=leader)
    day.window_passed = day.arrival is None and receiving_window_passed(
        session, leader=leader, wave=wave, now=now or utcnow(), region=region
    )
    day.eta = find_published_eta(session, leader_id=leader.id, wave_id=wave.id)
    day.expected = list_expected(session, wave=wave, leader=leader)
    day.zones = zone_totals(day.expected)
    day.orders = list_point_orders(
        session, wave=wave, leader=leader, arrived=day.arrival is not None
    )
    return day


def receiving_window_passed(
    session: Session, *, leader: Leader, wave: Wave, now: datetime, region: Region | None = None
) -> bool:
    """Whether the point's receiving window on the wave's delivery day is over, on the region's
    wall clock (`region`: the leader's, when the caller has it)."""
    local = local_time(region or leader_region(session, leader), now)
    return (local.date(), local.time()) > (wave.delivery_date, leader.window_close)


def search_orders(orders: list[OrderRow], query: str) -> list[OrderRow]:
    """The orders a leader's search names: digits are a bag number or a phone tail (the masked
    phone keeps its last four digits), anything else part of the masked name. Full-width
    characters read as ASCII; an empty query keeps every order."""
    query = normalise_code(query).casefold()
    if not query:
        return orders
    if query.isascii() and query.isdigit():
        return [o for o in orders if str(o.bag_no) == query or o.phone.endswith(query)]
    return [o for o in orders if query in o.member.casefold()]
