"""Refunds owed (退款): listing a wave's refunds and exporting them as CSV for the payment side.

No payment provider is called: an export hands the owed refunds over as a file and marks them
`exported`, with the time, in the same transaction (a failed export marks nothing).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fulfilment.core.audit import record_change
from fulfilment.core.errors import NotFound
from fulfilment.core.models import (
    Leader,
    Member,
    Order,
    OrderLine,
    Product,
    Refund,
    RefundState,
    Region,
    Wave,
    utcnow,
)

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
    state: str


def list_refunds(
    session: Session, *, wave_id: int, include_exported: bool = False
) -> list[RefundRow]:
    """A wave's refunds, one row per refund (a line may have several), in id order."""
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
    )
    if not include_exported:
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
        )
        for r, order_id, leader, member, sku, region in session.execute(query)
    ]


def export_refunds(
    session: Session,
    *,
    wave_id: int,
    out: TextIO,
    actor: str = "system",
    include_exported: bool = False,
    now: datetime | None = None,
) -> int:
    """Write the wave's owed refunds (all with include_exported) as CSV and mark the owed ones
    exported. Returns how many rows were written."""
    now = now or utcnow()
    rows = list_refunds(session, wave_id=wave_id, include_exported=include_exported)
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([getattr(row, c) for c in CSV_COLUMNS])
    owed = [r.refund_id for r in rows if r.state == RefundState.OWED.value]
    if owed:
        session.execute(
            update(Refund)
            .where(Refund.id.in_(owed), Refund.state == RefundState.OWED)
            .values(state=RefundState.EXPORTED, exported_at=now)
        )
    record_change(
        session,
        actor=actor,
        action="refunds.exported",
        entity="wave",
        entity_id=wave_id,
        after={
            "rows": len(rows),
            "newly_exported": len(owed),
            "amount_cents": sum(r.amount_cents for r in rows),
        },
        at=now,
    )
    return len(rows)
