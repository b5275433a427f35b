"""Refunds owed (退款): listing a wave's refunds and exporting them as CSV for the payment side.

No payment provider is called: an export claims the owed refunds (marks them `exported`, with
the time and a batch id of its own) and hands over as a file exactly the rows it claimed. The
claim and the file go together: a caller shows the file only once the claim is committed (a
failed export marks nothing), and a batch can be listed again by its id.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TextIO

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from fulfilment.commission.ledger import reverse_for_lines
from fulfilment.core.audit import record_change
from fulfilment.core.errors import InvalidInput, NotFound
from fulfilment.core.models import (
    Leader,
    LineStatus,
    Member,
    Order,
    OrderLine,
    Product,
    Refund,
    RefundReason,
    RefundState,
    Region,
    Wave,
    utcnow,
)
from fulfilment.core.sheets import write_csv
from fulfilment.events.models import EventType
from fulfilment.events.outbox import Event, emit

CSV_COLUMNS = [
    "refund_id",
    "region",
    "delivery_date",
    "order_id",
    "order_line_id",
    "leader_code",
    "member_id",
    "sku",
    "reason",
    "amount_cents",
    "amount_yuan",
    "created_at",
    "state",
    "export_batch",
]


@dataclass(frozen=True, slots=True)
class RefundRow:
    refund_id: int
    region: str
    delivery_date: str
    order_id: int
    order_line_id: int
    leader_code: str
    member_id: str  # the platform's member id: the payment side pays the member, not a name
    sku: str
    reason: str
    amount_cents: int
    amount_yuan: str
    created_at: str  # ISO 8601, UTC
    state: str  # in an export's file: owed = handed over by this export, exported = before
    export_batch: str  # the export that handed it over ("" while owed)


def list_refunds(
    session: Session, *, wave_id: int, include_exported: bool = False, batch: str | None = None
) -> list[RefundRow]:
    """A wave's refunds, one row per refund (a line may have several), in id order: the owed
    ones, all of them with include_exported, or those one export batch handed over."""
    wave = session.get(Wave, wave_id)
    if wave is None:
        raise NotFound(f"wave {wave_id} does not exist")
    query = (
        select(Refund, Order.id, Leader.code, Member.external_id, Product.sku, Region.code)
        .join(OrderLine, OrderLine.id == Refund.order_line_id)
        .join(Order, Order.id == OrderLine.order_id)
        .join(Leader, Leader.id == Order.leader_id)
        .join(Member, Member.id == Order.member_id)
        .join(Product, Product.id == OrderLine.product_id)
        .join(Region, Region.id == Order.region_id)
        .where(Order.wave_id == wave_id)
        .order_by(Refund.id)
        .execution_options(populate_existing=True)  # a claim just rewrote these rows
    )
    if batch is not None:
        query = query.where(Refund.export_batch == batch)
    elif not include_exported:
        query = query.where(Refund.state == RefundState.OWED)
    return [
        RefundRow(
            r.id,
            region,
            wave.delivery_date.isoformat(),
            order_id,
            r.order_line_id,
            leader,
            member,
            sku,
            r.reason.value,
            r.amount_cents,
            f"{r.amount_cents // 100}.{r.amount_cents % 100:02d}",
            r.created_at.isoformat(),
            r.state.value,
            r.export_batch or "",
        )
        for r, order_id, leader, member, sku, region in session.execute(query)
    ]


def new_batch_id() -> str:
    """A refund export's id: 32 random hex digits."""
    return secrets.token_hex(16)


def write_refunds_csv(rows: list[RefundRow], out: TextIO) -> None:
    """The rows as CSV; a member id or code that a spreadsheet would run as a formula is
    written as text (fulfilment.core.sheets)."""
    write_csv(out, CSV_COLUMNS, ([getattr(row, c) for c in CSV_COLUMNS] for row in rows))


def export_refunds(
    session: Session,
    *,
    wave_id: int,
    out: TextIO,
    actor: str = "system",
    include_exported: bool = False,
    batch: str | None = None,
    now: datetime | None = None,
) -> int:
    """Claim the wave's owed refunds for a new export batch and write them as CSV (with
    include_exported, the ones exported before too, listed again). Returns how many rows were
    written. The batch id (`batch`, a new random one by default) is in the file's
    `export_batch` column and the audit entry.

    Exactly once: the claim comes first, one `UPDATE refund … WHERE state = 'owed'` setting the
    state, the time and the batch id, and only the rows of this batch are written as handed
    over (state `owed` in the file). On PostgreSQL a concurrent export waits on the rows this
    one claimed and, once it commits, finds them no longer owed (SQLite serialises writers):
    two exports at once hand each refund over in exactly one file. `out` holds rows whose claim
    is not yet committed: the caller shows it only after the commit (see `groupbuy refunds
    export`), and `list_refunds(batch=…)` lists a batch again if the file is lost.
    """
    now = now or utcnow()
    if session.get(Wave, wave_id) is None:
        raise NotFound(f"wave {wave_id} does not exist")
    batch = batch or new_batch_id()
    of_wave = (
        select(Refund.id)
        .join(OrderLine, OrderLine.id == Refund.order_line_id)
        .join(Order, Order.id == OrderLine.order_id)
        .where(Order.wave_id == wave_id, Refund.state == RefundState.OWED)
    )
    session.execute(
        update(Refund)
        .where(Refund.id.in_(of_wave.scalar_subquery()), Refund.state == RefundState.OWED)
        .values(state=RefundState.EXPORTED, exported_at=now, export_batch=batch)
        .execution_options(synchronize_session=False)
    )
    claimed = [
        replace(r, state=RefundState.OWED.value)  # what it was when this export took it
        for r in list_refunds(session, wave_id=wave_id, batch=batch)
    ]
    before = (
        [
            r
            for r in list_refunds(session, wave_id=wave_id, include_exported=True)
            if r.state == RefundState.EXPORTED.value and r.export_batch != batch
        ]
        if include_exported
        else []
    )
    rows = sorted(claimed + before, key=lambda r: r.refund_id)
    write_refunds_csv(rows, out)
    record_change(
        session,
        actor=actor,
        action="refunds.exported",
        entity="wave",
        entity_id=wave_id,
        after={
            "batch": batch,
            "rows": len(rows),
            "newly_exported": len(claimed),
            "amount_cents": sum(r.amount_cents for r in rows),
        },
        at=now,
    )
    return len(rows)


def owe_after_sales_refund(
    session: Session,
    *,
    order_line_id: int,
    amount_cents: int,
    actor: str,
    now: datetime | None = None,
) -> Refund:
    """Record money owed back on a line after its handover (售后, reason `after_sales`): at most
    what the line paid less the refunds it carries already. Within the line's after-sales
    window it reverses the leader's commission on that amount, in this transaction
    (commission.ledger.reverse_for_lines). Audited (`refund.owed`), and the platform that placed
    the order hears it (the `refund.owed` event, reason `after_sales`): it pays the member."""
    now = now or utcnow()
    record = f"order line {order_line_id}"
    line = session.get(OrderLine, order_line_id, with_for_update=True)
    if line is None:
        raise NotFound(f"{record} does not exist")
    if line.status != LineStatus.ACTIVE:
        raise InvalidInput(record, "status", "the line was cancelled: its refund is owed already")
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents <= 0:
        raise InvalidInput(record, "amount_cents", "a whole number of cents above 0")
    refunded = session.scalar(
        select(func.coalesce(func.sum(Refund.amount_cents), 0)).where(
            Refund.order_line_id == order_line_id
        )
    )
    left = line.quantity * line.unit_price_cents - int(refunded or 0)
    if amount_cents > left:
        raise InvalidInput(
            record,
            "amount_cents",
            f"{amount_cents} is more than the {left} left to refund",
            limit=left,
        )
    refund = Refund(
        order_line_id=order_line_id,
        amount_cents=amount_cents,
        reason=RefundReason.AFTER_SALES,
        state=RefundState.OWED,
        created_at=now,
    )
    session.add(refund)
    session.flush()
    record_change(
        session,
        actor=actor,
        action="refund.owed",
        entity="refund",
        entity_id=refund.id,
        after={
            "order_line": order_line_id,
            "amount_cents": amount_cents,
            "reason": RefundReason.AFTER_SALES.value,
        },
        at=now,
    )
    reverse_for_lines(session, order_line_ids=[order_line_id], now=now, actor=actor)
    order = line.order  # only an order a platform placed has someone to tell (emit)
    data = {
        "order_id": order.id,
        "idempotency_key": order.idempotency_key,
        "refund_id": refund.id,
        "sku": line.product.sku,
        "reason": RefundReason.AFTER_SALES.value,
        "amount_cents": amount_cents,
    }
    emit(session, [Event(EventType.REFUND_OWED, order.idempotency_scope, order.id, data)], now=now)
    return refund


@dataclass(frozen=True, slots=True)
class WaveRefunds:
    """A wave's refunds at a glance: what is still owed, and each export batch."""

    wave_id: int
    owed: int
    owed_cents: int
    batches: list[tuple[str, datetime, int, int]]  # batch, exported at, rows, cents


def summarise_refunds(session: Session, *, wave_ids: list[int]) -> dict[int, WaveRefunds]:
    """For each wave: the refunds owed (count, cents) and its export batches (newest first)."""
    of_waves = (
        select(
            Order.wave_id,
            Refund.state,
            Refund.export_batch,
            func.max(Refund.exported_at),
            func.count(),
            func.sum(Refund.amount_cents),
        )
        .join(OrderLine, OrderLine.id == Refund.order_line_id)
        .join(Order, Order.id == OrderLine.order_id)
        .where(Order.wave_id.in_(wave_ids))
        .group_by(Order.wave_id, Refund.state, Refund.export_batch)
    )
    owed: dict[int, tuple[int, int]] = {}
    batches: dict[int, list[tuple[str, datetime, int, int]]] = {w: [] for w in wave_ids}
    for wave_id, state, batch, at, count, cents in session.execute(of_waves):
        if state == RefundState.OWED:
            owed[wave_id] = (int(count), int(cents or 0))
        elif batch is not None and at is not None:
            batches[wave_id].append((batch, at, int(count), int(cents or 0)))
    return {
        w: WaveRefunds(
            w,
            *owed.get(w, (0, 0)),
            sorted(batches[w], key=lambda b: b[1], reverse=True),
        )
        for w in wave_ids
    }
