"""What a cutoff tells the shop platforms: each of their orders' final price and refund owed
(`order.cut_off`), the orders whose every group failed (`order.cancelled`), each refund owed
(`refund.owed`). Set-based: one INSERT … SELECT per event type for the whole wave, in the
cutoff's transaction, for the orders a platform placed only."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Table, case, func, select
from sqlalchemy.orm import Session

from fulfilment.core.models import (
    Deal,
    LineStatus,
    OrderLine,
    OrderStatus,
    Product,
    Refund,
    RefundReason,
    Wave,
)
from fulfilment.events.models import EventType
from fulfilment.events.outbox import (
    emit_select,
    has_listeners,
    iso,
    json_array_agg,
    json_nested,
    json_object,
    json_text,
    order_event_rows,
    orders_t,
    platform_orders_of_wave,
)

lines_t = cast(Table, OrderLine.__table__)
deals_t = cast(Table, Deal.__table__)
products_t = cast(Table, Product.__table__)
refunds_t = cast(Table, Refund.__table__)
CUTOFF_REFUNDS = [RefundReason.TIER_PRICE.value, RefundReason.GROUP_FAILED.value]


def emit_cutoff_events(session: Session, *, wave: Wave, now: datetime) -> None:
    """The cutoff's events for every platform order of the wave (nothing when no endpoint)."""
    if not has_listeners(session):
        return
    final_price = case(
        (deals_t.c.final_price_cents < lines_t.c.unit_price_cents, deals_t.c.final_price_cents),
        else_=lines_t.c.unit_price_cents,
    )
    active = lines_t.c.status == LineStatus.ACTIVE.value
    per_order = (
        select(
            lines_t.c.order_id,
            json_array_agg(
                session,
                json_object(
                    session,
                    sku=products_t.c.sku,
                    quantity=lines_t.c.quantity,
                    unit_price_cents=lines_t.c.unit_price_cents,
                    final_price_cents=case((active, final_price), else_=None),
                    status=lines_t.c.status,
                ),
            ).label("lines"),
            func.sum(case((active, lines_t.c.quantity * final_price), else_=0)).label("total"),
        )
        .select_from(
            lines_t.join(orders_t, orders_t.c.id == lines_t.c.order_id)
            .join(deals_t, deals_t.c.id == lines_t.c.deal_id)
            .join(products_t, products_t.c.id == lines_t.c.product_id)
        )
        .where(platform_orders_of_wave(wave.id))
        .group_by(lines_t.c.order_id)
        .subquery()
    )
    owed = (
        select(lines_t.c.order_id, func.sum(refunds_t.c.amount_cents).label("cents"))
        .select_from(
            refunds_t.join(lines_t, lines_t.c.id == refunds_t.c.order_line_id).join(
                orders_t, orders_t.c.id == lines_t.c.order_id
            )
        )
        .where(platform_orders_of_wave(wave.id), refunds_t.c.reason.in_(CUTOFF_REFUNDS))
        .group_by(lines_t.c.order_id)
        .subquery()
    )
    day = json_text(wave.delivery_date.isoformat())
    settled = [OrderStatus.PLACED.value, OrderStatus.CANCELLED_FOR_REFUND.value]
    emit_select(
        session,
        EventType.ORDER_CUT_OFF,
        order_event_rows(
            session,
            delivery_date=day,
            status=orders_t.c.status,
            paid_cents=orders_t.c.total_cents,
            final_total_cents=func.coalesce(per_order.c.total, 0),
            refund_owed_cents=func.coalesce(owed.c.cents, 0),
            lines=json_nested(session, per_order.c.lines),
        )
        .select_from(
            orders_t.join(per_order, per_order.c.order_id == orders_t.c.id).outerjoin(
                owed, owed.c.order_id == orders_t.c.id
            )
        )
        .where(platform_orders_of_wave(wave.id), orders_t.c.status.in_(settled)),
        now=now,
    )
    emit_select(
        session,
        EventType.ORDER_CANCELLED,
        order_event_rows(
            session,
            reason=json_text("group_failed"),
            cancelled_at=json_text(iso(now) or ""),
        ).where(
            platform_orders_of_wave(wave.id),
            orders_t.c.status == OrderStatus.CANCELLED_FOR_REFUND.value,
        ),
        now=now,
    )
    emit_select(
        session,
        EventType.REFUND_OWED,
        order_event_rows(
            session,
            refund_id=refunds_t.c.id,
            sku=products_t.c.sku,
            reason=refunds_t.c.reason,
            amount_cents=refunds_t.c.amount_cents,
        )
        .select_from(
            refunds_t.join(lines_t, lines_t.c.id == refunds_t.c.order_line_id)
            .join(orders_t, orders_t.c.id == lines_t.c.order_id)
            .join(products_t, products_t.c.id == lines_t.c.product_id)
        )
        .where(platform_orders_of_wave(wave.id), refunds_t.c.reason.in_(CUTOFF_REFUNDS)),
        now=now,
    )
