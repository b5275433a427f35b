"""Offering a region's catalogue for the waves still to come: the deals of the latest delivery
date with deals, copied (tiers, stock cap, minimum group) to the next open waves that have none;
and one deal offered or changed by the admin (`save_deal`)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fulfilment.core.audit import record_change
from fulfilment.core.errors import InvalidInput
from fulfilment.core.models import Deal, DealStatus, PriceTier, Product, Region, Wave, WaveStatus

from .cycle import cutoff_for_delivery, delivery_date_for


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


MAX_TIERS = 10
MAX_UNITS = 10_000_000
MAX_PRICE_CENTS = 100_000_000  # a million yuan a unit


def save_deal(
    session: Session,
    *,
    deal: Deal | None,
    region: Region,
    product: Product,
    delivery_date: date,
    base_price_cents: int,
    stock_cap: int | None,
    min_group_members: int | None,
    tiers: list[tuple[int, int]],
    now: datetime,
    actor: str,
) -> Deal:
    """Offer a product in a region for a delivery date (or change the offer): the base price, the
    tiers (from min_qty units in total, price_cents a unit), the stock cap (presale) and the
    minimum group (成团). Only a deal whose wave is still open and not yet due changes; a stock cap
    below the units already sold is refused. Audited with its values before and after."""
    record = f"deal {product.sku} {delivery_date.isoformat()}"
    wave = session.scalar(
        select(Wave).where(Wave.region_id == region.id, Wave.delivery_date == delivery_date)
    )
    if wave is not None and (wave.status != WaveStatus.OPEN or wave.cutoff_due_at <= now):
        raise InvalidInput(record, "delivery_date", "the wave of that date is already cut off")
    if wave is None and cutoff_for_delivery(region, delivery_date) <= now:
        raise InvalidInput(record, "delivery_date", "the cutoff for that date has passed")
    if not 0 <= base_price_cents <= MAX_PRICE_CENTS:
        raise InvalidInput(record, "base_price_cents", "must be from 0 to 1,000,000 yuan")
    if stock_cap is not None and not 0 <= stock_cap <= MAX_UNITS:
        raise InvalidInput(record, "stock_cap", f"must be 0 to {MAX_UNITS}", limit=MAX_UNITS)
    if deal is not None and stock_cap is not None and stock_cap < deal.sold_qty:
        raise InvalidInput(
            record, "stock_cap", f"{deal.sold_qty} units are already sold", limit=deal.sold_qty
        )
    if min_group_members is not None and not 1 <= min_group_members <= MAX_UNITS:
        raise InvalidInput(record, "min_group_members", f"must be 1 to {MAX_UNITS}")
    if len(tiers) > MAX_TIERS:
        raise InvalidInput(record, "tiers", f"at most {MAX_TIERS} tiers", limit=MAX_TIERS)
    seen: set[int] = set()
    for n, (min_qty, price_cents) in enumerate(tiers, start=1):
        if not 1 <= min_qty <= MAX_UNITS or min_qty in seen:
            raise InvalidInput(record, f"tier{n}_qty", "a number of units, each tier its own")
        if not 0 <= price_cents <= base_price_cents:
            raise InvalidInput(record, f"tier{n}_price", "must be at most the base price")
        seen.add(min_qty)
    if deal is not None and (deal.region_id, deal.product_id, deal.delivery_date) != (
        region.id,
        product.id,
        delivery_date,
    ):
        raise InvalidInput(
            record, "product", "a deal keeps its region, product and date: offer a new deal"
        )
    if deal is not None and deal.status != DealStatus.OPEN:
        raise InvalidInput(record, "status", f"the deal is {deal.status.value}")
    other = session.scalar(
        select(Deal.id).where(
            Deal.region_id == region.id,
            Deal.product_id == product.id,
            Deal.delivery_date == delivery_date,
        )
    )
    if other is not None and (deal is None or other != deal.id):
        raise InvalidInput(record, "product", "already offered in this region for that date")
    values = {
        "region": region.code,
        "sku": product.sku,
        "delivery_date": delivery_date.isoformat(),
        "base_price_cents": base_price_cents,
        "stock_cap": stock_cap,
        "min_group_members": min_group_members,
        "tiers": sorted([list(t) for t in tiers]),
    }
    if deal is None:
        deal = Deal(region_id=region.id, product_id=product.id, delivery_date=delivery_date)
        session.add(deal)
        before = None
    else:
        before = {
            "region": region.code,
            "sku": deal.product.sku,
            "delivery_date": deal.delivery_date.isoformat(),
            "base_price_cents": deal.base_price_cents,
            "stock_cap": deal.stock_cap,
            "min_group_members": deal.min_group_members,
            "tiers": sorted([[t.min_qty, t.price_cents] for t in deal.tiers]),
        }
        if before == values:
            return deal
    deal.product_id, deal.delivery_date = product.id, delivery_date
    deal.base_price_cents, deal.stock_cap = base_price_cents, stock_cap
    deal.min_group_members = min_group_members
    deal.tiers = [PriceTier(min_qty=q, price_cents=p) for q, p in sorted(tiers)]
    session.flush()
    record_change(
        session,
        actor=actor,
        action="deal.added" if before is None else "deal.changed",
        entity="deal",
        entity_id=deal.id,
        before=before,
        after=values,
        at=now,
    )
    return deal
