"""The commission ledger: accrual when a line is collected, reversal by a refund in the
after-sales window, settlement once the window has passed. Every write is one set-based
INSERT … SELECT … ON CONFLICT DO NOTHING: the ledger's unique indexes make each one exactly
once, whoever runs it and however often.

Money is integer cents. A line's commission is rounded down to the cent
(`amount = base × rate_bps // 10000`): never more than rate × amount, and less by under one
cent per line. A reversal takes back the difference between the commission on what remained
before the refund and on what remains after it, so that a line's settled amount plus its
reversals is exactly its accrual, and the settled amount is the commission on what was kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from fulfilment.core.audit import record_change
from fulfilment.core.db import insert_ignore
from fulfilment.core.models import (
    Deal,
    Order,
    OrderLine,
    Refund,
    RefundReason,
    UTCDateTime,
    utcnow,
)

from .models import BPS_MAX, CommissionEntry, EntryKind, SettlementRun
from .rates import rate_expression

# how far before the previous settlement a settlement looks again (see settle_region)
LOOK_BACK = timedelta(days=1)

ENTRY_COLUMNS = (
    "kind",
    "order_line_id",
    "leader_id",
    "region_id",
    "wave_id",
    "base_cents",
    "rate_bps",
    "amount_cents",
    "collected_at",
    "settle_after",
    "refund_id",
    "created_at",
    "actor",
)


def commission_of(base: Any, rate_bps: Any) -> Any:
    """base × rate, rounded down to the cent; works on ints and on SQL expressions alike."""
    return (base * rate_bps) // BPS_MAX


def _at(value: datetime) -> ColumnElement[datetime]:
    return literal(value, UTCDateTime())


def _insert_statement(dialect: str, query: Any) -> Any:
    """INSERT the rows of `query` (ENTRY_COLUMNS in order) into the ledger, skipping any that a
    unique index says exists already, RETURNING (order_line_id, amount_cents) of those written."""
    table = CommissionEntry.__table__
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(table)  # type: ignore[arg-type]
        .from_select(list(ENTRY_COLUMNS), query)
        .on_conflict_do_nothing()
        .returning(table.c.order_line_id, table.c.amount_cents)  # type: ignore[attr-defined]
    )


def _insert_entries(session: Session, query: Any) -> list[tuple[int, int]]:
    stmt = _insert_statement(session.get_bind().dialect.name, query)
    return [(line, amount) for line, amount in session.execute(stmt)]


def _sum(column: Any) -> Any:
    # PostgreSQL sums a BIGINT as NUMERIC: cast back, or `//` would divide as decimals
    return cast(func.coalesce(func.sum(column), 0), BigInteger)


def _positive(expr: Any) -> Any:
    return case((expr > 0, expr), else_=0)


# ---------------------------------------------------------------------------------------------
# Accrual: in the pickup's transaction


def accrue_collected(
    session: Session,
    *,
    handed: Mapping[int, int],
    collected_at: datetime,
    after_sales_days: int,
    actor: str,
) -> list[tuple[int, int]]:
    """Accrue the commission of lines just handed over: {order_line_id: units handed over}.

    One INSERT … SELECT for the whole handover. Each line earns on its units handed over at the
    price after the final tier (the lower of the price paid and the deal's final price), at its
    rate (deal, product, region; see rates.rate_expression); lines with no rate or nothing handed
    over earn nothing and get no entry; an after-sales refund recorded before the handover is
    taken out of the base. Exactly once per line: a second accrual of a line (a racing pickup
    that lost, a retry) writes nothing. Returns (line, cents) of the new entries.
    The statement is built once per dialect and number of lines, then only its values change.
    """
    if not handed:
        return []
    params: dict[str, Any] = {
        "collected_at": collected_at,
        "settle_after": collected_at + timedelta(days=after_sales_days),
        "actor": actor,
    }
    for i, (line_id, units) in enumerate(handed.items()):
        params[f"line_{i}"], params[f"units_{i}"] = line_id, units
    stmt = _accrual_statement(session.get_bind().dialect.name, len(handed))
    return [(line, amount) for line, amount in session.execute(stmt, params)]


@lru_cache(maxsize=64)
def _accrual_statement(dialect: str, n_lines: int) -> Any:
    """The accrual's INSERT … SELECT for `n_lines` lines, with bound parameters line_i, units_i,
    collected_at, settle_after and actor (building it costs more than running it)."""
    final = Deal.final_price_cents
    unit = case(
        (and_(final.is_not(None), final < OrderLine.unit_price_cents), final),
        else_=OrderLine.unit_price_cents,
    )
    units = case(
        *[
            (OrderLine.id == bindparam(f"line_{i}", type_=Integer()), bindparam(f"units_{i}"))
            for i in range(n_lines)
        ],
        else_=0,
    )
    # an after-sales refund recorded before the handover is out of the base, as the tier price
    # and the units put short are (one after it is reversed instead: see _in_window)
    refunded_before = (
        select(_sum(Refund.amount_cents))
        .where(
            Refund.order_line_id == OrderLine.id,
            Refund.reason == RefundReason.AFTER_SALES,
            Refund.created_at <= bindparam("collected_at", type_=UTCDateTime()),
        )
        .scalar_subquery()
    )
    lines = (
        select(
            OrderLine.id.label("line"),
            Order.leader_id,
            Order.region_id,
            Order.wave_id,
            _positive(cast(units, BigInteger) * unit - refunded_before).label("base"),
            rate_expression(Order.region_id, OrderLine.product_id, OrderLine.deal_id).label("rate"),
        )
        .join(Order, Order.id == OrderLine.order_id)
        .join(Deal, Deal.id == OrderLine.deal_id)
        .where(OrderLine.id.in_([bindparam(f"line_{i}") for i in range(n_lines)]))
        .subquery()
    )
    at = UTCDateTime()
    query = select(
        literal(EntryKind.ACCRUED.value, String()),
        lines.c.line,
        lines.c.leader_id,
        lines.c.region_id,
        lines.c.wave_id,
        lines.c.base,
        lines.c.rate,
        commission_of(lines.c.base, lines.c.rate),
        bindparam("collected_at", type_=at),
        bindparam("settle_after", type_=at),
        literal(None, Integer()),
        bindparam("collected_at", type_=at),
        bindparam("actor", type_=String()),
    ).where(lines.c.base > 0, lines.c.rate > 0)
    return _insert_statement(dialect, query)


# ---------------------------------------------------------------------------------------------
# Reversal and settlement


def _in_window(refund: Any, accrued: Any) -> ColumnElement[bool]:
    """A refund recorded after the handover and before the window closed."""
    return and_(
        refund.order_line_id == accrued.order_line_id,
        refund.created_at > accrued.collected_at,
        refund.created_at <= accrued.settle_after,
    )


def _settled_exists(accrued: Any) -> ColumnElement[bool]:
    done = aliased(CommissionEntry)
    return exists().where(
        done.order_line_id == accrued.order_line_id, done.kind == EntryKind.SETTLED
    )


def reverse_refunds(
    session: Session,
    *,
    now: datetime,
    actor: str,
    region_id: int | None = None,
    order_line_ids: list[int] | None = None,
    due_since: datetime | None = None,
) -> list[tuple[int, int]]:
    """Write a reversal for every refund in its line's after-sales window that has none yet
    (of a region, or of some lines; with `due_since`, of lines whose window closes after it),
    on a line not settled yet. One INSERT … SELECT; exactly
    once per refund (unique). A line's refunds are taken in id order: each takes back the
    commission on the part of the line it refunds, capped at what is left of the line."""
    accrued = aliased(CommissionEntry)
    refund = aliased(Refund)
    earlier = aliased(Refund)
    before = (
        select(_sum(earlier.amount_cents))
        .where(_in_window(earlier, accrued), earlier.id < refund.id)
        .scalar_subquery()
    )
    left_before = _positive(accrued.base_cents - before)
    left_after = _positive(accrued.base_cents - before - refund.amount_cents)
    query = (
        select(
            literal(EntryKind.REVERSED.value, String()),
            accrued.order_line_id,
            accrued.leader_id,
            accrued.region_id,
            accrued.wave_id,
            left_before - left_after,
            accrued.rate_bps,
            commission_of(left_before, accrued.rate_bps)
            - commission_of(left_after, accrued.rate_bps),
            accrued.collected_at,
            accrued.settle_after,
            refund.id,
            _at(now),
            literal(actor, String()),
        )
        .join(refund, _in_window(refund, accrued))
        .where(accrued.kind == EntryKind.ACCRUED, ~_settled_exists(accrued))
    )
    if region_id is not None:
        query = query.where(accrued.region_id == region_id)
    if order_line_ids is not None:
        query = query.where(accrued.order_line_id.in_(order_line_ids))
    if due_since is not None:
        query = query.where(accrued.settle_after > due_since)
    return _insert_entries(session, query)


def _share_due_lines(
    session: Session, *, region_id: int, now: datetime, due_since: datetime | None
) -> None:
    """Lock the order lines about to settle (FOR SHARE, in id order). An after-sales refund
    locks its line (FOR UPDATE) with its reversal: one still open is waited for, so that the
    settlement reads its reversal once it commits, and one that comes later waits for the
    settlement and finds the line settled. Without it, a refund committing while the
    settlement computed would be reversed and paid both."""
    accrued = aliased(CommissionEntry)
    due = select(accrued.order_line_id).where(
        accrued.kind == EntryKind.ACCRUED,
        accrued.region_id == region_id,
        accrued.settle_after <= now,
        ~_settled_exists(accrued),
    )
    if due_since is not None:
        due = due.where(accrued.settle_after > due_since)
    session.execute(
        select(OrderLine.id)
        .where(OrderLine.id.in_(due))
        .order_by(OrderLine.id)
        .with_for_update(read=True)
    )


def settle_due(
    session: Session,
    *,
    region_id: int,
    now: datetime,
    actor: str,
    due_since: datetime | None = None,
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Settle every line of the region whose after-sales window has closed by `now`: first the
    reversals its refunds in the window still lack, then one settled entry per line for the
    commission on what the reversals left (a line wholly refunded stays reversed, unsettled).
    `due_since` bounds the lines looked at to those whose window closes after it (the previous
    settlement settled the others). Returns (reversals, settlements) written, as (line, cents)."""
    _share_due_lines(session, region_id=region_id, now=now, due_since=due_since)
    reversed_ = reverse_refunds(
        session, now=now, actor=actor, region_id=region_id, due_since=due_since
    )
    accrued = aliased(CommissionEntry)
    back = aliased(CommissionEntry)
    taken_back = (
        select(_sum(back.base_cents))
        .where(back.order_line_id == accrued.order_line_id, back.kind == EntryKind.REVERSED)
        .scalar_subquery()
    )
    kept = _positive(accrued.base_cents - taken_back)
    query = select(
        literal(EntryKind.SETTLED.value, String()),
        accrued.order_line_id,
        accrued.leader_id,
        accrued.region_id,
        accrued.wave_id,
        kept,
        accrued.rate_bps,
        commission_of(kept, accrued.rate_bps),
        accrued.collected_at,
        accrued.settle_after,
        literal(None, Integer()),
        _at(now),
        literal(actor, String()),
    ).where(
        accrued.kind == EntryKind.ACCRUED,
        accrued.region_id == region_id,
        accrued.settle_after <= now,
        ~_settled_exists(accrued),
        kept > 0,
    )
    if due_since is not None:
        query = query.where(accrued.settle_after > due_since)
    return reversed_, _insert_entries(session, query)


@dataclass(frozen=True, slots=True)
class SettlementOutcome:
    run_id: int
    state: str  # settled, already_settled
    lines: int
    settled_cents: int
    reversed_cents: int
    ran_at: datetime


def settle_region(
    session: Session, *, region_id: int, day: date, now: datetime | None = None, actor: str
) -> SettlementOutcome:
    """The settlement of one region and day, exactly once: its run row (unique per region and
    day) is claimed first (`ON CONFLICT DO NOTHING`); a second run, at once or later, is told
    it was done (`already_settled`) and writes nothing. Run by the night's `settle` step after
    publishing, or by `groupbuy commission settle`. Audited (`commission.settled`)."""
    now = now or utcnow()
    run_id = insert_ignore(
        session,
        SettlementRun.__table__,
        {"region_id": region_id, "day": day, "ran_at": now, "actor": actor},
        ["region_id", "day"],
        returning=SettlementRun.__table__.c.id,
    )
    if run_id is None:
        done = session.scalars(
            select(SettlementRun).where(
                SettlementRun.region_id == region_id, SettlementRun.day == day
            )
        ).one()
        return SettlementOutcome(
            done.id,
            "already_settled",
            done.settled_lines,
            done.settled_cents,
            done.reversed_cents,
            done.ran_at,
        )
    # the last settlement of the region settled every line due by then: look at the lines due
    # since, less a day for accruals that committed after it had looked
    last = session.scalar(
        select(func.max(SettlementRun.ran_at)).where(
            SettlementRun.region_id == region_id, SettlementRun.id != run_id
        )
    )
    due_since = last - LOOK_BACK if last is not None and last <= now else None
    reversed_, settled = settle_due(
        session, region_id=region_id, now=now, actor=actor, due_since=due_since
    )
    run = session.get(SettlementRun, run_id)
    assert run is not None
    run.settled_lines = len(settled)
    run.settled_cents = sum(c for _, c in settled)
    run.reversed_cents = sum(c for _, c in reversed_)
    record_change(
        session,
        actor=actor,
        action="commission.settled",
        entity="commission_settlement",
        entity_id=run_id,
        after={
            "region_id": region_id,
            "day": day.isoformat(),
            "lines": run.settled_lines,
            "settled_cents": run.settled_cents,
            "reversals": len(reversed_),
            "reversed_cents": run.reversed_cents,
        },
        at=now,
    )
    session.flush()
    return SettlementOutcome(
        run_id, "settled", run.settled_lines, run.settled_cents, run.reversed_cents, now
    )


def reverse_for_lines(
    session: Session, *, order_line_ids: list[int], now: datetime, actor: str
) -> list[tuple[int, int]]:
    """The reversals of refunds just recorded on these lines, in the refund's transaction
    (the night's settlement catches any other). Audited when it took anything back."""
    written = reverse_refunds(session, now=now, actor=actor, order_line_ids=order_line_ids)
    if written:
        record_change(
            session,
            actor=actor,
            action="commission.reversed",
            entity="order_line",
            entity_id=written[0][0] if len(written) == 1 else None,
            after={"lines": {str(line): cents for line, cents in written}},
            at=now,
        )
    return written
