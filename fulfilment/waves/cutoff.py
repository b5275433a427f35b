"""The cutoff (截单) and the aggregation into pick lists, exactly once per region and date.

Everything happens in the caller's one transaction, in a few set-based statements: a crash
half way rolls all of it back, and running it again (or from two processes at once) gives the
same one wave. On PostgreSQL the wave's advisory and row locks (cycle.ensure_wave) queue a
second runner behind the first, and the cutoff behind the orders in flight (never behind all the
orders still to come); the ledger row (unique per wave) is the last line of defence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from fulfilment.core.audit import record_change
from fulfilment.core.errors import CutoffNotReached
from fulfilment.core.models import (
    AuditEntry,
    CutoffRun,
    Deal,
    DealStatus,
    Leader,
    LineStatus,
    Order,
    OrderLine,
    OrderStatus,
    PickLevel,
    PickLine,
    Product,
    Refund,
    RefundReason,
    RefundState,
    Region,
    UTCDateTime,
    Wave,
    WaveStatus,
)

from .cycle import ensure_wave
from .deadlines import is_due
from .events import emit_cutoff_events

orders_t = cast(Table, Order.__table__)
lines_t = cast(Table, OrderLine.__table__)
deals_t = cast(Table, Deal.__table__)
pick_t = cast(Table, PickLine.__table__)
refunds_t = cast(Table, Refund.__table__)
audit_t = cast(Table, AuditEntry.__table__)


@dataclass(frozen=True, slots=True)
class CutoffSummary:
    wave_id: int
    already_cut_off: bool
    orders_locked: int
    lines_locked: int
    deals_cancelled: int
    orders_cancelled: int


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount


def cut_off_wave(
    session: Session,
    *,
    region: Region,
    delivery_date: date,
    now: datetime,
    actor: str = "system",
) -> tuple[Wave, CutoffSummary]:
    """Lock the day's orders into the region's wave. Safe to call again: returns the same wave."""
    # Planner statistics are refreshed before this transaction, not in it (an ANALYZE here would
    # serialise the cutoffs of all regions): see deadlines.refresh_cutoff_statistics.
    wave = ensure_wave(session, region, delivery_date, lock="update")
    if wave.status == WaveStatus.CUT_OFF:
        run = session.scalars(select(CutoffRun).where(CutoffRun.wave_id == wave.id)).one()
        return wave, CutoffSummary(
            wave.id,
            True,
            run.orders_locked,
            run.lines_locked,
            run.deals_cancelled,
            run.orders_cancelled,
        )
    if not is_due(wave, now=now):
        raise CutoffNotReached(
            f"the cutoff for {region.code} delivering {delivery_date.isoformat()} is due at "
            f"{wave.cutoff_due_at.isoformat()}, not yet at {now.isoformat()}"
        )

    # The wave's status is the lock on its orders: no per-order rewrite (see OrderStatus).
    cancelled, orders_cancelled = _cancel_failed_groups(
        session, region, delivery_date, wave, actor=actor, now=now
    )
    confirmed = _fix_tier_prices(session, region, delivery_date, wave, now)
    deals_cancelled = len(cancelled)
    settled = [(d, DealStatus.CANCELLED, {"members": m}) for d, m in cancelled.items()]
    settled += [(d, DealStatus.CONFIRMED, {"final_price_cents": p}) for d, p in confirmed.items()]
    for deal_id, status, detail in settled:
        record_change(
            session,
            actor=actor,
            action=f"deal.{status.value}",
            entity="deal",
            entity_id=deal_id,
            before={"status": DealStatus.OPEN.value},
            after={"status": status.value, **detail},
            at=now,
        )
    orders_locked, lines_locked = aggregate_wave(session, wave)

    summary = CutoffSummary(
        wave.id, False, orders_locked, lines_locked, deals_cancelled, orders_cancelled
    )
    session.add(
        CutoffRun(
            wave_id=wave.id,
            actor=actor,
            started_at=now,
            finished_at=now,
            orders_locked=orders_locked,
            lines_locked=lines_locked,
            deals_cancelled=deals_cancelled,
            orders_cancelled=orders_cancelled,
        )
    )
    wave.status = WaveStatus.CUT_OFF
    wave.cut_off_at = now
    session.flush()  # the ledger's unique key fails here if another runner got through first
    emit_cutoff_events(session, wave=wave, now=now)
    record_change(
        session,
        actor=actor,
        action="wave.cut_off",
        entity="wave",
        entity_id=wave.id,
        before={"status": WaveStatus.OPEN.value},
        after={
            "status": WaveStatus.CUT_OFF.value,
            "orders_locked": orders_locked,
            "lines_locked": lines_locked,
            "deals_cancelled": deals_cancelled,
            "orders_cancelled_for_refund": orders_cancelled,
        },
        at=now,
    )
    return wave, summary


def _wave_deals(region: Region, delivery_date: date):
    return and_(deals_t.c.region_id == region.id, deals_t.c.delivery_date == delivery_date)


PICK_COLUMNS = [
    "wave_id",
    "level",
    "station_id",
    "leader_id",
    "product_id",
    "zone",
    "bin_code",
    "quantity",
    "weight_g",
    "volume_ml",
    "order_lines",
]


def _active_lines_of_wave(wave: Wave):
    """The join and filter every cutoff statement shares: active lines of placed orders in the wave."""
    return (
        lines_t.join(orders_t, orders_t.c.id == lines_t.c.order_id),
        and_(
            orders_t.c.wave_id == wave.id,
            orders_t.c.status == OrderStatus.PLACED.value,
            lines_t.c.status == LineStatus.ACTIVE.value,
        ),
    )


def _insert_refunds(
    session: Session,
    wave: Wave,
    deal_ids: list[int],
    amount,
    reason: RefundReason,
    now: datetime,
    extra_condition=None,
) -> None:
    """One refund owed per active line of the deals, all at `now` (a line may carry several)."""
    joined, active = _active_lines_of_wave(wave)
    query = (
        select(
            lines_t.c.id,
            amount,
            literal(reason.value),
            literal(RefundState.OWED.value),
            literal(now, refunds_t.c.created_at.type),
        )
        .select_from(joined.join(deals_t, deals_t.c.id == lines_t.c.deal_id))
        .where(active, lines_t.c.deal_id.in_(deal_ids))
    )
    if extra_condition is not None:
        query = query.where(extra_condition)
    session.execute(
        insert(refunds_t).from_select(
            ["order_line_id", "amount_cents", "reason", "state", "created_at"], query
        )
    )


def _cancel_failed_groups(
    session: Session, region: Region, delivery_date: date, wave: Wave, *, actor: str, now: datetime
) -> tuple[dict[int, int], int]:
    """Deals below their minimum group size (distinct members) are cancelled; what was paid is refunded.

    Returns the cancelled deals with the members each had, and how many orders lost every line."""
    minimums = dict(
        session.execute(
            select(deals_t.c.id, deals_t.c.min_group_members).where(
                _wave_deals(region, delivery_date),
                deals_t.c.status == DealStatus.OPEN.value,
                deals_t.c.min_group_members.is_not(None),
            )
        ).all()
    )
    if not minimums:
        return {}, 0
    joined, active = _active_lines_of_wave(wave)
    members: dict[int, int] = dict(
        session.execute(
            select(lines_t.c.deal_id, func.count(func.distinct(orders_t.c.member_id)))
            .select_from(joined)
            .where(active, lines_t.c.deal_id.in_(list(minimums)))
            .group_by(lines_t.c.deal_id)
        ).all()
    )
    failed = sorted(d for d, least in minimums.items() if members.get(d, 0) < least)
    if not failed:
        return {}, 0
    _insert_refunds(
        session,
        wave,
        failed,
        lines_t.c.unit_price_cents * lines_t.c.quantity,
        RefundReason.GROUP_FAILED,
        now,
    )
    cancelled_lines = and_(
        lines_t.c.deal_id.in_(failed), lines_t.c.status == LineStatus.ACTIVE.value
    )
    _audit_each(
        session,
        select(lines_t.c.id).where(cancelled_lines),
        actor=actor,
        action="order_line.cancelled",
        entity="order_line",
        before={"status": LineStatus.ACTIVE.value},
        after={"status": LineStatus.CANCELLED.value, "reason": RefundReason.GROUP_FAILED.value},
        at=now,
    )
    session.execute(
        update(lines_t).where(cancelled_lines).values(status=LineStatus.CANCELLED.value)
    )
    session.execute(
        update(deals_t)
        .where(deals_t.c.id.in_(failed))
        .values(status=DealStatus.CANCELLED.value, sold_qty=0)  # the stock goes back
    )
    still_active = exists().where(
        lines_t.c.order_id == orders_t.c.id, lines_t.c.status == LineStatus.ACTIVE.value
    )
    emptied = and_(
        orders_t.c.wave_id == wave.id,
        orders_t.c.status == OrderStatus.PLACED.value,
        ~still_active,
    )
    _audit_each(
        session,
        select(orders_t.c.id).where(emptied),
        actor=actor,
        action="order.cancelled_for_refund",
        entity="order",
        before={"status": OrderStatus.PLACED.value},
        after={"status": OrderStatus.CANCELLED_FOR_REFUND.value},
        at=now,
    )
    orders_cancelled = _rowcount(
        session.execute(
            update(orders_t).where(emptied).values(status=OrderStatus.CANCELLED_FOR_REFUND.value)
        )
    )
    return {d: members.get(d, 0) for d in failed}, orders_cancelled


def _audit_each(
    session: Session,
    ids,
    *,
    actor: str,
    action: str,
    entity: str,
    before: dict[str, Any],
    after: dict[str, Any],
    at: datetime,
) -> None:
    """One audit entry per row that `ids` selects, in one INSERT … SELECT (same transaction)."""
    ids = ids.subquery()
    rows = select(
        literal(at, UTCDateTime()),
        literal(actor),
        literal(action),
        literal(entity),
        ids.c.id,
        literal(before, JSON()),
        literal(after, JSON()),
    )
    session.execute(
        insert(audit_t).from_select(
            ["at", "actor", "action", "entity", "entity_id", "before", "after"], rows
        )
    )


def _fix_tier_prices(
    session: Session, region: Region, delivery_date: date, wave: Wave, now: datetime
) -> dict[int, int]:
    """Each surviving deal's price is fixed from its final total; lines paid above it are owed the difference."""
    deals = session.scalars(
        select(Deal)
        .where(
            Deal.region_id == region.id,
            Deal.delivery_date == delivery_date,
            Deal.status == DealStatus.OPEN,
        )
        .execution_options(populate_existing=True)
    ).all()
    if not deals:
        return {}
    finals = [{"b_id": d.id, "b_price": d.price_at(d.sold_qty)} for d in deals]
    session.execute(
        update(deals_t)
        .where(deals_t.c.id == bindparam("b_id"))
        .values(final_price_cents=bindparam("b_price"), status=DealStatus.CONFIRMED.value),
        finals,
    )
    lowered = [
        d.id for d, f in zip(deals, finals, strict=True) if f["b_price"] < d.base_price_cents
    ]
    if lowered:
        _insert_refunds(
            session,
            wave,
            lowered,
            (lines_t.c.unit_price_cents - deals_t.c.final_price_cents) * lines_t.c.quantity,
            RefundReason.TIER_PRICE,
            now,
            lines_t.c.unit_price_cents > deals_t.c.final_price_cents,
        )
    session.expire_all()
    return {f["b_id"]: f["b_price"] for f in finals}


def aggregate_wave(session: Session, wave: Wave) -> tuple[int, int]:
    """Rebuild the wave's pick lists: per leader (with station), per station, warehouse totals.

    Derived rows, rebuilt from the wave's active lines in three INSERT … SELECT statements; the
    station and warehouse levels are sums of the level below. Returns (orders, lines) picked.
    """
    session.execute(delete(pick_t).where(pick_t.c.wave_id == wave.id))
    leaders_t, products_t = cast(Table, Leader.__table__), cast(Table, Product.__table__)
    joined, active = _active_lines_of_wave(wave)
    # Sum the big join (lines × orders) first, then dress the small result with station and product.
    sums = (
        select(
            orders_t.c.leader_id,
            lines_t.c.product_id,
            func.sum(lines_t.c.quantity).label("qty"),
            func.count().label("n"),
        )
        .select_from(joined)
        .where(active)
        .group_by(orders_t.c.leader_id, lines_t.c.product_id)
        .subquery()
    )
    per_leader = select(
        literal(wave.id),
        literal(PickLevel.LEADER.value),
        leaders_t.c.station_id,
        sums.c.leader_id,
        sums.c.product_id,
        products_t.c.zone,
        products_t.c.bin_code,
        sums.c.qty,
        sums.c.qty * products_t.c.weight_g,
        sums.c.qty * products_t.c.volume_ml,
        sums.c.n,
    ).select_from(
        sums.join(products_t, products_t.c.id == sums.c.product_id).join(
            leaders_t, leaders_t.c.id == sums.c.leader_id
        )
    )
    session.execute(insert(pick_t).from_select(PICK_COLUMNS, per_leader))
    _roll_up(session, wave, PickLevel.LEADER, PickLevel.STATION, by_station=True)
    _roll_up(session, wave, PickLevel.STATION, PickLevel.WAREHOUSE, by_station=False)
    lines = session.execute(
        select(func.coalesce(func.sum(pick_t.c.order_lines), 0)).where(
            pick_t.c.wave_id == wave.id, pick_t.c.level == PickLevel.WAREHOUSE.value
        )
    ).scalar_one()
    orders = session.execute(
        select(func.count())
        .select_from(orders_t)
        .where(orders_t.c.wave_id == wave.id, orders_t.c.status == OrderStatus.PLACED.value)
    ).scalar_one()
    return orders, lines


def _roll_up(
    session: Session, wave: Wave, source: PickLevel, target: PickLevel, *, by_station: bool
) -> None:
    station = pick_t.c.station_id if by_station else literal(None)
    keys = [pick_t.c.product_id, pick_t.c.zone, pick_t.c.bin_code]
    summed = (
        select(
            literal(wave.id),
            literal(target.value),
            station,
            literal(None),
            *keys,
            func.sum(pick_t.c.quantity),
            func.sum(pick_t.c.weight_g),
            func.sum(pick_t.c.volume_ml),
            func.sum(pick_t.c.order_lines),
        )
        .where(pick_t.c.wave_id == wave.id, pick_t.c.level == source.value)
        .group_by(*([pick_t.c.station_id] if by_station else []), *keys)
    )
    session.execute(insert(pick_t).from_select(PICK_COLUMNS, summed))
