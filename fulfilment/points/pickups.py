"""Pickup verification (核销): a member's code checked at the point, each order collected once.

One row per collected order (unique on the order): concurrent verifications of one code race to
insert it and exactly one wins; the others are told it was already collected. A line that
arrived short is collected for what arrived.

A code is read as a Chinese keyboard types it: full-width digits and spaces are normalised
(NFKC) before it is checked, here, so that every caller (the portal's form, an API) agrees.

A member who has no code at hand is found by the last four digits of their phone
(`list_by_phone_tail`): the point's members whose phone ends so and who have bags ready here,
masked; the staff check the member and hand over all of their ready bags
(`hand_over_member`), audited with the method `phone_tail`.

A code is unique per (point, wave), so orders of two waves at one point may share one: when more
than one live order at the point carries the typed code, the lookup asks which (CodeAmbiguous,
with the candidates) and nothing is handed over until the staff picks one. A code of another
point is refused exactly as a code nobody has (no oracle over the region's codes).
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fulfilment.commission.ledger import accrue_collected
from fulfilment.core.audit import record_change
from fulfilment.core.config import DEFAULT_AFTER_SALES_DAYS
from fulfilment.core.errors import FulfilmentError, InvalidInput
from fulfilment.core.models import (
    Leader,
    LineStatus,
    Member,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    Wave,
    WaveStatus,
    utcnow,
)
from fulfilment.core.privacy import mask_name, mask_phone
from fulfilment.events.models import EventType
from fulfilment.events.outbox import API_SCOPE_PREFIX, Event, emit, iso

from .point import Pickup, PickupLine  # the tables of this module, kept below arrivals


class Refusal(StrEnum):
    """Why a code cannot be verified; the view turns each into a clear message. A code of
    another point is a WRONG_CODE: telling it apart would reveal which codes exist elsewhere."""

    WRONG_CODE = "wrong_code"
    ALREADY_COLLECTED = "already_collected"
    CANCELLED = "cancelled"
    NOT_ARRIVED = "not_arrived"


class PickupRefused(FulfilmentError):
    """The code does not give an order to collect here; nothing was changed."""

    http_status = 409

    def __init__(self, reason: Refusal, *, collected_at: datetime | None = None) -> None:
        self.reason, self.collected_at = reason, collected_at
        super().__init__(f"pickup refused: {reason.value}")


@dataclass(frozen=True, slots=True)
class PickupCandidate:
    """An order a code names at this point, as shown before the staff confirms the handover."""

    order_id: int
    bag_no: int
    member_id: int
    member: str  # masked
    phone: str  # masked
    delivery_date: date
    lines: tuple[tuple[str, str, int, int], ...]  # (sku, name, ordered, to hand over)


class CodeAmbiguous(FulfilmentError):
    """More than one live order at the point carries the code: the staff must pick the member's
    own (by masked name and bag number) before anything is handed over."""

    http_status = 409

    def __init__(self, candidates: list[PickupCandidate]) -> None:
        self.candidates = candidates
        super().__init__(f"{len(candidates)} live orders at the point carry this code")


PHONE_TAIL_DIGITS = 4


def normalise_code(text: str) -> str:
    """A code or phone tail as typed: full-width digits (a Chinese keyboard) read as ASCII
    (NFKC), white space of any width dropped."""
    return "".join(unicodedata.normalize("NFKC", text).split())


def is_delivered(session: Session, *, wave: Wave, leader: Leader, today: date) -> bool:
    """Goods of a cut-off wave are at the point once it confirmed arrival or the day has come."""
    from .arrivals import find_arrival

    if wave.status != WaveStatus.CUT_OFF:
        return False
    return (
        wave.delivery_date <= today or find_arrival(session, wave=wave, leader=leader) is not None
    )


def _orders_with_code(session: Session, *, leader: Leader, code: str) -> list[Order]:
    return list(
        session.scalars(
            select(Order)
            .where(Order.leader_id == leader.id, Order.pickup_code == code)
            .order_by(Order.id)
        )
    )


def _collected(session: Session, order_ids: list[int]) -> dict[int, Pickup]:
    if not order_ids:
        return {}
    return {
        p.order_id: p for p in session.scalars(select(Pickup).where(Pickup.order_id.in_(order_ids)))
    }


def find_order_by_code(
    session: Session, *, leader: Leader, code: str, today: date, order_id: int | None = None
) -> Order:
    """The order a member's code names at this point, ready to hand over, else PickupRefused.

    Only the point's own orders are searched; a code of another point is a WRONG_CODE, like a
    code nobody has. When more than one live order here (placed, not collected, whichever wave)
    carries the code, raises CodeAmbiguous listing them, unless `order_id` picks one of them;
    an `order_id` the code does not name is a WRONG_CODE.
    """
    code = normalise_code(code)
    if not (code.isascii() and code.isdigit()):
        raise PickupRefused(Refusal.WRONG_CODE)
    orders = _orders_with_code(session, leader=leader, code=code)
    if order_id is not None:
        orders = [o for o in orders if o.id == order_id]
    if not orders:
        raise PickupRefused(Refusal.WRONG_CODE)
    done = _collected(session, [o.id for o in orders])
    live = [o for o in orders if o.status == OrderStatus.PLACED and o.id not in done]
    if len(live) > 1:
        raise CodeAmbiguous(describe(session, leader=leader, orders=live))
    if live:
        if is_delivered(session, wave=live[0].wave, leader=leader, today=today):
            return live[0]
        raise PickupRefused(Refusal.NOT_ARRIVED)
    if done:
        last = max(done.values(), key=lambda p: p.verified_at)
        raise PickupRefused(Refusal.ALREADY_COLLECTED, collected_at=last.verified_at)
    raise PickupRefused(Refusal.CANCELLED)


def _member_orders_ready(
    session: Session, *, leader: Leader, member_id: int, today: date
) -> list[Order]:
    orders = list(
        session.scalars(
            select(Order)
            .outerjoin(Pickup, Pickup.order_id == Order.id)
            .where(
                Order.leader_id == leader.id,
                Order.member_id == member_id,
                Order.status == OrderStatus.PLACED,
                Pickup.id.is_(None),
            )
            .order_by(Order.id)
        )
    )
    return [o for o in orders if is_delivered(session, wave=o.wave, leader=leader, today=today)]


def _lines_of(
    session: Session, order_ids: list[int]
) -> dict[int, tuple[tuple[str, str, int, int], ...]]:
    """Each order's active lines as (sku, name, ordered, to hand over: less its short units)."""
    from .arrivals import short_units

    if not order_ids:
        return {}
    rows = session.execute(
        select(OrderLine.id, OrderLine.order_id, Product.sku, Product.name, OrderLine.quantity)
        .join(Product, Product.id == OrderLine.product_id)
        .where(OrderLine.order_id.in_(order_ids), OrderLine.status == LineStatus.ACTIVE)
        .order_by(OrderLine.id)
    ).all()
    short = short_units(session, [r.id for r in rows])
    by_order: dict[int, list[tuple[str, str, int, int]]] = defaultdict(list)
    for line_id, order_id, sku, name, quantity in rows:
        by_order[order_id].append((sku, name, quantity, quantity - short.get(line_id, 0)))
    return {order_id: tuple(by_order[order_id]) for order_id in order_ids}


def describe(session: Session, *, leader: Leader, orders: list[Order]) -> list[PickupCandidate]:
    """What the staff sees before confirming: bag number, masked member, lines to hand over."""
    from .point import bag_numbers

    lines = _lines_of(session, [o.id for o in orders])
    out = []
    bags: dict[int, int] = {}
    for o in orders:
        if o.id not in bags:
            bags.update(bag_numbers(session, wave_id=o.wave_id, leader_id=leader.id))
        member = session.get(Member, o.member_id)
        assert member is not None
        out.append(
            PickupCandidate(
                o.id,
                bags[o.id],
                member.id,
                mask_name(member.name),
                mask_phone(member.phone),
                o.wave.delivery_date,
                lines[o.id],
            )
        )
    return out


class _Bag(Protocol):
    @property
    def member_id(self) -> int: ...
    @property
    def member(self) -> str: ...
    @property
    def phone(self) -> str: ...
    @property
    def bag_no(self) -> int: ...
    @property
    def delivery_date(self) -> date: ...


B = TypeVar("B", bound=_Bag)


@dataclass(frozen=True, slots=True)
class MemberBags(Generic[B]):
    """One member's bags at the point (masked name and phone), oldest delivery and lowest bag
    number first: what a leader hands over together."""

    member_id: int
    member: str
    phone: str
    bags: tuple[B, ...]


def group_by_member(bags: list[B]) -> list[MemberBags[B]]:
    """Bags grouped per member, each member's in (delivery date, bag number) order; members in
    the order of their first bag."""
    ordered = sorted(bags, key=lambda b: (b.delivery_date, b.bag_no))
    groups: dict[int, list[B]] = {}
    for bag in ordered:
        groups.setdefault(bag.member_id, []).append(bag)
    return [
        MemberBags(own[0].member_id, own[0].member, own[0].phone, tuple(own))
        for own in groups.values()
    ]


def lookup_code(
    session: Session, *, leader: Leader, code: str, today: date, order_id: int | None = None
) -> tuple[list[PickupCandidate], list[PickupCandidate]]:
    """The order a code names, and the member's other orders ready at this point. Raises
    CodeAmbiguous (with the candidates to choose from) when several live orders here carry the
    code and `order_id` has not picked one."""
    order = find_order_by_code(session, leader=leader, code=code, today=today, order_id=order_id)
    others = [
        o
        for o in _member_orders_ready(
            session, leader=leader, member_id=order.member_id, today=today
        )
        if o.id != order.id
    ]
    return describe(session, leader=leader, orders=[order]), describe(
        session, leader=leader, orders=others
    )


def verify_pickup(
    session: Session,
    *,
    leader: Leader,
    code: str,
    user_id: int,
    actor: str,
    whole_member: bool = False,
    method: str = "typed",
    order_id: int | None = None,
    today: date,
    now: datetime | None = None,
    after_sales_days: int = DEFAULT_AFTER_SALES_DAYS,
) -> list[Pickup]:
    """Hand over the order a code names (or all the member's ready orders here); `order_id` is
    the staff's pick when the code names several live orders (else CodeAmbiguous, nothing
    handed over).

    Exactly once: each order's pickup row is inserted with `ON CONFLICT (order_id) DO NOTHING
    RETURNING id`; of concurrent or repeated verifications one gets the row, the others raise
    PickupRefused(ALREADY_COLLECTED) for the code's own order. The point's row lock
    (`lock_point`) is taken first, so an arrival count or correction at the same moment either
    comes first (and this hands the bag over less its short units) or after (and leaves the
    collected bag out of its shortage).

    Each handed-over line accrues the leader's commission in the same transaction (one
    INSERT … SELECT per order, see commission.ledger.accrue_collected), its after-sales window
    closing `after_sales_days` after the handover; the audit entry carries the cents.
    """
    from .point import lock_point

    now = now or utcnow()
    lock_point(session, leader)
    order = find_order_by_code(session, leader=leader, code=code, today=today, order_id=order_id)
    orders = [order]
    if whole_member:
        orders += [
            o
            for o in _member_orders_ready(
                session, leader=leader, member_id=order.member_id, today=today
            )
            if o.id != order.id
        ]
    return _hand_over(
        session,
        orders=orders,
        leader=leader,
        user_id=user_id,
        actor=actor,
        method=method,
        now=now,
        own_order_id=order.id,
        after_sales_days=after_sales_days,
    )


def _hand_over(
    session: Session,
    *,
    orders: list[Order],
    leader: Leader,
    user_id: int,
    actor: str,
    method: str,
    now: datetime,
    own_order_id: int | None,
    after_sales_days: int = DEFAULT_AFTER_SALES_DAYS,
) -> list[Pickup]:
    """Claim and record each order's pickup (less its short units), one audit entry each.
    An order another verification won is skipped, except `own_order_id` (the one the staff
    asked for), which raises PickupRefused(ALREADY_COLLECTED)."""
    from .arrivals import short_units

    done: list[Pickup] = []
    events: list[Event] = []
    for o in orders:
        pickup_id = _claim(session, order=o, leader=leader, user_id=user_id, now=now, method=method)
        if pickup_id is None:
            if o.id == own_order_id:  # the order asked for: another verification won
                winner = _collected(session, [o.id]).get(o.id)
                raise PickupRefused(
                    Refusal.ALREADY_COLLECTED, collected_at=winner.verified_at if winner else None
                )
            continue
        lines = [ln for ln in o.lines if ln.status == LineStatus.ACTIVE]
        short = short_units(session, [ln.id for ln in lines])
        handed = {ln.id: ln.quantity - short.get(ln.id, 0) for ln in lines}
        session.add_all(
            PickupLine(pickup_id=pickup_id, order_line_id=lid, quantity=q)
            for lid, q in handed.items()
        )
        earned = accrue_collected(
            session,
            handed=handed,
            collected_at=now,
            after_sales_days=after_sales_days,
            actor=actor,
        )
        record_change(
            session,
            actor=actor,
            action="order.collected",
            entity="order",
            entity_id=o.id,
            after={
                "point": leader.code,
                "lines": {str(k): v for k, v in handed.items()},
                "method": method,
                "commission_cents": {str(k): v for k, v in earned},
            },
            at=now,
        )
        if o.idempotency_scope.startswith(API_SCOPE_PREFIX):
            events.append(_collected_event(o, leader, lines, handed, now))
        pickup = session.get(Pickup, pickup_id)
        assert pickup is not None
        done.append(pickup)
    session.flush()
    emit(session, events, now=now)
    return done


def _collected_event(
    order: Order, leader: Leader, lines: list[OrderLine], handed: dict[int, int], now: datetime
) -> Event:
    """order.collected: what was handed over, by SKU (never the code it was handed over by)."""
    data = {
        "order_id": order.id,
        "idempotency_key": order.idempotency_key,
        "leader": leader.code,
        "collected_at": iso(now),
        "lines": [{"sku": ln.product.sku, "quantity": handed[ln.id]} for ln in lines],
    }
    return Event(EventType.ORDER_COLLECTED, order.idempotency_scope, order.id, data)


def _check_tail(tail: str) -> str:
    tail = normalise_code(tail)
    if not (tail.isascii() and tail.isdigit() and len(tail) == PHONE_TAIL_DIGITS):
        raise InvalidInput("phone_tail", "tail", "must be the last 4 digits of the member's phone")
    return tail


def _ready_by_tail(
    session: Session, *, leader: Leader, tail: str, today: date, member_id: int | None = None
) -> list[Order]:
    """The point's orders ready to hand over whose member's phone ends with `tail`."""
    query = (
        select(Order)
        .join(Member, Member.id == Order.member_id)
        .outerjoin(Pickup, Pickup.order_id == Order.id)
        .where(
            Order.leader_id == leader.id,
            Order.status == OrderStatus.PLACED,
            Pickup.id.is_(None),
            Member.phone.endswith(tail, autoescape=True),
        )
        .order_by(Order.id)
    )
    if member_id is not None:
        query = query.where(Order.member_id == member_id)
    orders = list(session.scalars(query))
    return [o for o in orders if is_delivered(session, wave=o.wave, leader=leader, today=today)]


def list_by_phone_tail(
    session: Session, *, leader: Leader, tail: str, today: date, actor: str
) -> list[MemberBags[PickupCandidate]]:
    """The members of this point whose phone ends with `tail` (4 digits, full-width read as
    ASCII) and who have bags ready here, with those bags; another point's members never. The
    look-up is audited (`pickup.phone_tail_lookup`, the members listed; not the digits)."""
    tail = _check_tail(tail)
    found = group_by_member(
        describe(
            session,
            leader=leader,
            orders=_ready_by_tail(session, leader=leader, tail=tail, today=today),
        )
    )
    record_change(
        session,
        actor=actor,
        action="pickup.phone_tail_lookup",
        entity="leader",
        entity_id=leader.id,
        after={"point": leader.code, "members": [m.member_id for m in found]},
    )
    return found


def hand_over_member(
    session: Session,
    *,
    leader: Leader,
    member_id: int,
    tail: str,
    user_id: int,
    actor: str,
    today: date,
    now: datetime | None = None,
    after_sales_days: int = DEFAULT_AFTER_SALES_DAYS,
) -> list[Pickup]:
    """Hand over every bag ready here of a member found by phone tail, once the staff checked
    them: each order's pickup is recorded with the method `phone_tail`, its commission accrued
    with the after-sales window as `verify_pickup`'s. A member of another point, or whose
    phone does not end with `tail`, has nothing ready here: an empty list, as for bags another
    verification took meanwhile (no oracle)."""
    from .point import lock_point

    tail = _check_tail(tail)
    lock_point(session, leader)
    orders = _ready_by_tail(session, leader=leader, tail=tail, today=today, member_id=member_id)
    return _hand_over(
        session,
        orders=orders,
        leader=leader,
        user_id=user_id,
        actor=actor,
        method="phone_tail",
        now=now or utcnow(),
        own_order_id=None,
        after_sales_days=after_sales_days,
    )


def _claim(
    session: Session, *, order: Order, leader: Leader, user_id: int, now: datetime, method: str
) -> int | None:
    """Insert the order's pickup row unless one exists; the unique order id decides races."""
    values = {
        "order_id": order.id,
        "leader_id": leader.id,
        "verified_at": now,
        "verified_by": user_id,
        "method": method,
    }
    table = Pickup.__table__
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(table)  # type: ignore[arg-type]
        .values(**values)
        .on_conflict_do_nothing(index_elements=["order_id"])
        .returning(table.c.id)  # type: ignore[attr-defined]
    )
    return session.execute(stmt).scalar()


@dataclass(frozen=True, slots=True)
class WaitingOrder:
    order_id: int
    bag_no: int
    member_id: int
    member: str  # masked
    phone: str  # masked
    delivery_date: date
    days_waiting: int
    lines: tuple[tuple[str, str, int, int], ...] = ()  # (sku, name, ordered, to hand over)


def list_uncollected(session: Session, *, leader: Leader, today: date) -> list[WaitingOrder]:
    """Orders of delivered waves still waiting at the point, oldest first, with days waiting."""
    from .point import bag_numbers

    rows = session.execute(
        select(Order, Member, Wave)
        .join(Member, Member.id == Order.member_id)
        .join(Wave, Wave.id == Order.wave_id)
        .outerjoin(Pickup, Pickup.order_id == Order.id)
        .where(
            Order.leader_id == leader.id,
            Order.status == OrderStatus.PLACED,
            Wave.status == WaveStatus.CUT_OFF,
            Pickup.id.is_(None),
        )
        .order_by(Wave.delivery_date, Order.placed_at, Order.id)
    ).all()
    bags: dict[int, dict[int, int]] = {}
    delivered: dict[int, bool] = {}
    for wave in {w.id: w for _o, _m, w in rows}.values():
        delivered[wave.id] = is_delivered(session, wave=wave, leader=leader, today=today)
    rows = [r for r in rows if delivered[r[2].id]]
    lines = _lines_of(session, [order.id for order, _m, _w in rows])
    out = []
    for order, member, wave in rows:
        if wave.id not in bags:
            bags[wave.id] = bag_numbers(session, wave_id=wave.id, leader_id=leader.id)
        out.append(
            WaitingOrder(
                order.id,
                bags[wave.id][order.id],
                member.id,
                mask_name(member.name),
                mask_phone(member.phone),
                wave.delivery_date,
                max((today - wave.delivery_date).days, 0),
                lines[order.id],
            )
        )
    return out


def count_per_day(waiting: list[WaitingOrder]) -> list[tuple[date, int]]:
    counts: dict[date, int] = defaultdict(int)
    for w in waiting:
        counts[w.delivery_date] += 1
    return sorted(counts.items())


def reveal_phone(session: Session, *, leader: Leader, member_id: int, actor: str) -> str:
    """A member's full phone for the staff of a point where an order of theirs waits (see
    `get_point_member`: a live order here, not the point of their first order), else NotFound.
    Every reveal is one audit entry (`member.phone_viewed`); nothing else changes."""
    from .point import get_point_member

    member = get_point_member(session, leader=leader, member_id=member_id)
    record_change(
        session,
        actor=actor,
        action="member.phone_viewed",
        entity="member",
        entity_id=member.id,
        after={"point": leader.code},
    )
    return member.phone
