"""Offering a region's catalogue for the waves still to come: the deals of the latest delivery
date with deals, copied (tiers, stock cap, minimum group) to the next open waves that have none."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fulfilment.core.audit import record_change
from fulfilment.core.models import Deal, PriceTier, Region, Wave, WaveStatus

from .cycle import delivery_date_for


def next_open_delivery_date(session: Session, *, region: Region, now: datetime) -> date:
    """The delivery date an order placed `now` lands in: its own wave's, or the next open one."""
    day = delivery_date_for(region, now)
    closed = set(
        session.scalars(
            select(Wave.delivery_date).where(
                Wave.region_id == region.id,
                Wave.delivery_date >= day,
                Wave.status != WaveStatus.OPEN,
            )
        )
    )
    while day in closed:
        day += timedelta(days=1)
    return day


def offer_next_waves(
    session: Session, *, region: Region, now: datetime, days: int = 2, actor: str = "system"
) -> tuple[date, int]:
    """Offer the latest catalogue for the next open wave and the `days - 1` after it.

    Returns the next open delivery date and how many deals were created. Dates that already
    have deals are left as they are, so calling it again changes nothing.
    """
    first = next_open_delivery_date(session, region=region, now=now)
    latest = session.scalar(select(func.max(Deal.delivery_date)).where(Deal.region_id == region.id))
    if latest is None:
        return first, 0
    templates = session.scalars(
        select(Deal).where(Deal.region_id == region.id, Deal.delivery_date == latest)
    ).all()
    created = 0
    for offset in range(days):
        day = first + timedelta(days=offset)
        offered = session.scalar(
            select(func.count())
            .select_from(Deal)
            .where(Deal.region_id == region.id, Deal.delivery_date == day)
        )
        if offered:
            continue
        for template in templates:
            deal = Deal(
                region_id=region.id,
                product_id=template.product_id,
                delivery_date=day,
                base_price_cents=template.base_price_cents,
                stock_cap=template.stock_cap,
                min_group_members=template.min_group_members,
            )
            deal.tiers = [
                PriceTier(min_qty=t.min_qty, price_cents=t.price_cents) for t in template.tiers
            ]
            session.add(deal)
            created += 1
        session.flush()
        record_change(
            session,
            actor=actor,
            action="deals.offered",
            entity="region",
            entity_id=region.id,
            after={"delivery_date": day.isoformat(), "deals": len(templates)},
        )
    return first, created
