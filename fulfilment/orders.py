"""Order intake: placing and cancelling orders, choosing their wave, and never overselling."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from .audit import record_change
from .cycle import cutoff_for_delivery, delivery_date_for
from .db import insert_ignore, is_postgres
from .deadlines import accepts_orders_at
from .errors import (
    AlreadyCancelled,
    CutoffPassed,
    IdempotencyConflict,
    InvalidInput,
    NotFound,
    SoldOut,
    WaveClosed,
)
from .models import (
    Deal,
    DealStatus,
    Leader,
    LineStatus,
    Member,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    Region,
    Wave,
    WaveStatus,
    utcnow,
)

MAX_QUANTITY_PER_LINE = 10_000
PICKUP_CODE_DIGITS = 8


@dataclass(frozen=True, slots=True)
class LineRequest:
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class MemberRef:
    """Who is ordering: the platform's member id, with name and phone for a first order."""

    external_id: str
    name: str = ""
    phone: str = ""


def request_fingerprint(request: object) -> str:
    """A SHA-256 of the request in canonical JSON: equal requests, equal fingerprints."""
    canonical = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def new_pickup_code() -> str:
    """Eight random digits from the OS's CSPRNG: not guessable from other codes."""
    return f"{secrets.randbelow(10**PICKUP_CODE_DIGITS):0{PICKUP_CODE_DIGITS}d}"


def ensure_wave(
    session: Session, region: Region, delivery_date: date, *, lock: str | None = None
) -> Wave:
    """The region's wave for a delivery date, created open if it does not exist yet.

    lock="share" (order intake) or "update" (cutoff) takes the row lock on PostgreSQL, so that
    an order and the cutoff of its wave are serialised; SQLite serialises writers already.
    """
    insert_ignore(
        session,
        Wave.__table__,
        {
            "region_id": region.id,
            "delivery_date": delivery_date,
            "status": WaveStatus.OPEN.value,
            "cutoff_due_at": cutoff_for_delivery(region, delivery_date),
        },
        ["region_id", "delivery_date"],
    )
    query = select(Wave).where(Wave.region_id == region.id, Wave.delivery_date == delivery_date)
    if lock and is_postgres(session):
        query = query.with_for_update(read=(lock == "share"))
    return session.scalars(query.execution_options(populate_existing=True)).one()


def _open_wave_for(session: Session, region: Region, placed_at: datetime) -> tuple[Wave, bool]:
    """The wave an order lands in, and whether it is late (its own wave was already cut off)."""
    delivery = delivery_date_for(region, placed_at)
    late = False
    for days_later in range(0, 60):
        wave = ensure_wave(session, region, delivery + timedelta(days=days_later), lock="share")
        if accepts_orders_at(wave, placed_at):  # the wave's own deadline decides (deadlines.py)
            return wave, late
        late = late or wave.status == WaveStatus.CUT_OFF
    raise WaveClosed(f"no open wave for region {region.code} within 60 days of {delivery}")


def ensure_member(
    session: Session, *, region: Region, leader: Leader, ref: MemberRef, record: str
) -> Member:
    if not ref.external_id.strip():
        raise InvalidInput(record, "member", "member id is empty")
    insert_ignore(
        session,
        Member.__table__,
        {
            "region_id": region.id,
            "leader_id": leader.id,
            "external_id": ref.external_id,
            "name": ref.name or ref.external_id,
            "phone": ref.phone,
        },
        ["external_id"],
    )
    return session.scalars(select(Member).where(Member.external_id == ref.external_id)).one()


def _merge_lines(record: str, lines: Sequence[LineRequest]) -> dict[str, int]:
    if not lines:
        raise InvalidInput(record, "lines", "an order needs at least one line")
    merged: dict[str, int] = {}
    for n, line in enumerate(lines, 1):
        if not isinstance(line.quantity, int) or isinstance(line.quantity, bool):
            raise InvalidInput(
                f"{record} line {n}", "quantity", f"{line.quantity!r} is not a whole number"
            )
        if not 0 < line.quantity <= MAX_QUANTITY_PER_LINE:
            raise InvalidInput(
                f"{record} line {n}",
                "quantity",
                f"{line.quantity} is not between 1 and {MAX_QUANTITY_PER_LINE}",
            )
        merged[line.sku] = merged.get(line.sku, 0) + line.quantity
    return merged


def find_order_by_key(session: Session, key: str, *, scope: str = "") -> Order | None:
    return session.scalars(
        select(Order).where(Order.idempotency_scope == scope, Order.idempotency_key == key)
    ).first()


def find_replay(
    session: Session, *, key: str, scope: str = "", fingerprint: str | None = None
) -> Order | None:
    """The order already placed under this key in this scope, or None.

    The same key with another request (another fingerprint) raises IdempotencyConflict: a
    retry must never silently get a different order. An order stored without a fingerprint
    (placed before fingerprints were kept) is taken as the replay.
    """
    existing = find_order_by_key(session, key, scope=scope)
    if existing is None:
        return None
    stored = existing.request_fingerprint
    if fingerprint is not None and stored is not None and stored != fingerprint:
        raise IdempotencyConflict(key, existing.id)
    return existing


def place_order(
    session: Session,
    *,
    region: Region,
    leader_code: str,
    member: MemberRef,
    lines: Sequence[LineRequest],
    placed_at: datetime,
    idempotency_key: str | None = None,
    idempotency_scope: str = "",
    fingerprint: str | None = None,
    source: str = "api",
    actor: str = "system",
    received_at: datetime | None = None,
) -> Order:
    """Place one order into the wave its `placed_at` falls in (or the next open one, marked late).

    Idempotent on `idempotency_key` within `idempotency_scope`: the same key with the same
    `fingerprint` returns the order already placed; with another, IdempotencyConflict. Stock caps
    are taken with one conditional UPDATE per deal, in deal-id order, so that concurrent orders
    for the last units succeed for exactly the units that exist; a shortfall raises SoldOut and
    the caller's rollback leaves nothing behind.
    """
    record = f"order {idempotency_key}" if idempotency_key else "order"
    if placed_at.tzinfo is None:
        raise InvalidInput(record, "placed_at", "a time without a time zone")
    if idempotency_key is not None:
        if not 0 < len(idempotency_key) <= 128:
            raise InvalidInput(record, "idempotency_key", "must be 1 to 128 characters")
        existing = find_replay(
            session, key=idempotency_key, scope=idempotency_scope, fingerprint=fingerprint
        )
        if existing is not None:
            return existing
    wanted = _merge_lines(record, lines)

    leader = session.scalars(select(Leader).where(Leader.code == leader_code)).first()
    if leader is None or leader.region_id != region.id or not leader.active:
        raise InvalidInput(
            record, "leader", f"no active leader {leader_code!r} in region {region.code}"
        )
    products = {p.sku: p for p in session.scalars(select(Product).where(Product.sku.in_(wanted)))}
    for sku in wanted:
        if sku not in products:
            raise InvalidInput(record, "sku", f"unknown SKU {sku!r}")

    who = ensure_member(session, region=region, leader=leader, ref=member, record=record)
    wave, late = _open_wave_for(session, region, placed_at)
    deals = {
        d.product_id: d
        for d in session.scalars(
            select(Deal).where(
                Deal.region_id == region.id,
                Deal.delivery_date == wave.delivery_date,
                Deal.product_id.in_([p.id for p in products.values()]),
            )
        )
    }
    for sku, product in products.items():
        deal = deals.get(product.id)
        if deal is None or deal.status != DealStatus.OPEN:
            raise InvalidInput(
                record,
                "sku",
                f"{sku} is not on offer in {region.code} for delivery "
                f"on {wave.delivery_date.isoformat()}",
            )

    order, created = _insert_order(
        session,
        region=region,
        leader=leader,
        member=who,
        wave=wave,
        late=late,
        placed_at=placed_at,
        received_at=received_at or utcnow(),
        idempotency_key=idempotency_key,
        idempotency_scope=idempotency_scope,
        fingerprint=fingerprint,
        source=source,
    )
    if not created:  # lost an idempotency race: the other request's order stands
        return order

    total = 0
    for deal in sorted(deals.values(), key=lambda d: d.id):
        sku = deal.product.sku
        qty = wanted[sku]
        sold_before = _take_stock(session, deal, qty)
        if sold_before is None:
            left = (
                None
                if deal.stock_cap is None
                else max(deal.stock_cap - _sold_now(session, deal), 0)
            )
            raise SoldOut(sku, qty, left)
        price = deal.price_at(sold_before)
        session.add(
            OrderLine(
                order_id=order.id,
                deal_id=deal.id,
                product_id=deal.product_id,
                quantity=qty,
                unit_price_cents=price,
            )
        )
        total += price * qty
    order.total_cents = total
    session.flush()
    record_change(
        session,
        actor=actor,
        action="order.placed",
        entity="order",
        entity_id=order.id,
        after={
            "wave": wave.delivery_date.isoformat(),
            "late": late,
            "lines": wanted,
            "total_cents": total,
            "source": source,
        },
    )
    return order


def _insert_order(
    session: Session,
    *,
    region: Region,
    leader: Leader,
    member: Member,
    wave: Wave,
    late: bool,
    placed_at: datetime,
    received_at: datetime,
    idempotency_key: str | None,
    idempotency_scope: str,
    fingerprint: str | None,
    source: str,
) -> tuple[Order, bool]:
    """Insert the order row in a savepoint; retry a pickup-code collision, give way on a key race.

    Returns the order and whether this call created it (False: another request's order won)."""
    for _attempt in range(5):
        order = Order(
            region_id=region.id,
            leader_id=leader.id,
            member_id=member.id,
            wave_id=wave.id,
            placed_at=placed_at,
            received_at=received_at,
            late=late,
            pickup_code=new_pickup_code(),
            idempotency_key=idempotency_key,
            idempotency_scope=idempotency_scope,
            request_fingerprint=fingerprint,
            source=source,
            total_cents=0,
        )
        try:
            with session.begin_nested():
                session.add(order)
                session.flush()
            return order, True
        except IntegrityError:
            winner = (
                find_replay(
                    session, key=idempotency_key, scope=idempotency_scope, fingerprint=fingerprint
                )
                if idempotency_key
                else None
            )
            if winner is not None:
                return winner, False
    raise RuntimeError("could not draw a free pickup code in 5 attempts")  # pragma: no cover


def _take_stock(session: Session, deal: Deal, qty: int) -> int | None:
    """Add qty to the deal's sold units if the cap allows. Returns the units sold before, or None."""
    table = cast(Table, Deal.__table__)
    stmt = (
        update(table)
        .where(
            table.c.id == deal.id,
            table.c.status == DealStatus.OPEN.value,
            (table.c.stock_cap.is_(None)) | (table.c.sold_qty + qty <= table.c.stock_cap),
        )
        .values(sold_qty=table.c.sold_qty + qty)
        .returning(table.c.sold_qty)
    )
    after = session.execute(stmt).scalar()
    if after is None:
        return None
    set_committed_value(deal, "sold_qty", after)  # keep the loaded object in step with the row
    return after - qty


def _sold_now(session: Session, deal: Deal) -> int:
    return session.execute(select(Deal.sold_qty).where(Deal.id == deal.id)).scalar_one()


def cancel_order(
    session: Session, *, order_id: int, actor: str = "system", now: datetime | None = None
) -> Order:
    """A member cancels before the cutoff: the order and its lines are cancelled, stock goes back.

    Refused with CutoffPassed from the wave's deadline on (`cutoff_due_at`), even when the cutoff
    job has not run yet; an order already cancelled raises AlreadyCancelled.
    """
    now = now or utcnow()
    order = session.get(Order, order_id)
    if order is None:
        raise NotFound(f"order {order_id} does not exist")
    query = select(Wave).where(Wave.id == order.wave_id)
    if is_postgres(session):  # serialise with the cutoff, as intake does
        query = query.with_for_update(read=True)
    wave = session.scalars(query.execution_options(populate_existing=True)).one()
    # The order's row lock: two cancels at once return its stock once.
    order_query = select(Order).where(Order.id == order_id)
    if is_postgres(session):
        order_query = order_query.with_for_update()
    order = session.scalars(order_query.execution_options(populate_existing=True)).one()
    if order.status == OrderStatus.CANCELLED:
        raise AlreadyCancelled(f"order {order_id} is already cancelled")
    if wave.status != WaveStatus.OPEN or now >= wave.cutoff_due_at:
        raise CutoffPassed(
            f"order {order_id} can no longer be cancelled: its wave for delivery on "
            f"{wave.delivery_date.isoformat()} was due to cut off at "
            f"{wave.cutoff_due_at.isoformat()}"
        )
    if order.status != OrderStatus.PLACED:
        raise WaveClosed(f"order {order_id} is {order.status.value}; it cannot be cancelled")
    table = cast(Table, Deal.__table__)
    for line in sorted(order.lines, key=lambda ln: ln.deal_id):
        if line.status != LineStatus.ACTIVE:
            continue
        left = session.execute(
            update(table)
            .where(table.c.id == line.deal_id)
            .values(sold_qty=table.c.sold_qty - line.quantity)
            .returning(table.c.sold_qty)
        ).scalar_one()
        deal = session.identity_map.get(session.identity_key(Deal, line.deal_id))
        if deal is not None:
            set_committed_value(deal, "sold_qty", left)
        line.status = LineStatus.CANCELLED
    order.status = OrderStatus.CANCELLED
    session.flush()
    record_change(
        session,
        actor=actor,
        action="order.cancelled",
        entity="order",
        entity_id=order.id,
        before={"status": OrderStatus.PLACED.value},
        after={"status": order.status.value},
    )
    return order
