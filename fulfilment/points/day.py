"""A point's day (the Today page): its wave, the goods expected, the published arrival time and
its members' orders with their state. Reads only; it sits on arrivals and pickups, not under."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfilment.core.models import (
    Leader,
    LineStatus,
    Member,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    Wave,
)
from fulfilment.core.privacy import mask_name, mask_phone
from fulfilment.night.plans import find_published_eta

from .pickups import Pickup
from .point import ExpectedRow, ZoneTotal, bag_numbers, current_wave, list_expected, zone_totals


@dataclass(frozen=True, slots=True)
class OrderRow:
    order_id: int
    bag_no: int
    member_id: int
    member: str  # masked name
    phone: str  # masked phone
    lines: tuple[tuple[str, str, int], ...]  # (sku, product name, quantity)
    total_cents: int
    state: str  # placed / collected / cancelled / cancelled_for_refund
    placed_at: datetime


@dataclass
class PointDay:
    """A point's delivery for one wave: the goods by zone, the sorting list and the orders."""

    leader: Leader
    wave: Wave | None
    eta: datetime | None = None
    expected: list[ExpectedRow] = field(default_factory=list)
    zones: list[ZoneTotal] = field(default_factory=list)
    orders: list[OrderRow] = field(default_factory=list)


def list_point_orders(session: Session, *, wave: Wave, leader: Leader) -> list[OrderRow]:
    """Every order of the point in the wave with its state; names and phones masked."""
    bags = bag_numbers(session, wave_id=wave.id, leader_id=leader.id)
    collected = set(
        session.scalars(
            select(Pickup.order_id)
            .join(Order, Order.id == Pickup.order_id)
            .where(Order.wave_id == wave.id, Order.leader_id == leader.id)
        )
    )
    orders = session.execute(
        select(Order, Member)
        .join(Member, Member.id == Order.member_id)
        .where(Order.wave_id == wave.id, Order.leader_id == leader.id)
        .order_by(Order.id)
    ).all()
    lines: dict[int, list[tuple[str, str, int]]] = defaultdict(list)
    for order_id, sku, name, qty in session.execute(
        select(OrderLine.order_id, Product.sku, Product.name, OrderLine.quantity)
        .join(Product, Product.id == OrderLine.product_id)
        .join(Order, Order.id == OrderLine.order_id)
        .where(
            Order.wave_id == wave.id,
            Order.leader_id == leader.id,
            OrderLine.status == LineStatus.ACTIVE,
        )
        .order_by(OrderLine.id)
    ):
        lines[order_id].append((sku, name, qty))
    out = []
    for order, member in orders:
        state = order.status.value
        if order.status == OrderStatus.PLACED and order.id in collected:
            state = "collected"
        out.append(
            OrderRow(
                order.id,
                bags[order.id],
                member.id,
                mask_name(member.name),
                mask_phone(member.phone),
                tuple(lines[order.id]),
                order.total_cents,
                state,
                order.placed_at,
            )
        )
    return out


def point_day(
    session: Session, *, leader: Leader, wave: Wave | None = None, now: datetime | None = None
) -> PointDay:
    """The Today page's content for one point."""
    wave = wave or current_wave(session, leader, now=now)
    day = PointDay(leader=leader, wave=wave)
    if wave is None:
        return day
    day.eta = find_published_eta(session, leader_id=leader.id, wave_id=wave.id)
    day.expected = list_expected(session, wave=wave, leader=leader)
    day.zones = zone_totals(day.expected)
    day.orders = list_point_orders(session, wave=wave, leader=leader)
    return day
