"""Commission rates: a region's default and the overrides for a product or a deal, in basis
points, set by the admin (`groupbuy commission rate set`) and audited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, literal, select
from sqlalchemy.orm import Session

from fulfilment.catalogue.sites import get_region
from fulfilment.core.audit import record_change
from fulfilment.core.db import insert_ignore
from fulfilment.core.errors import InvalidInput
from fulfilment.core.models import Deal, Product, Region, utcnow

from .models import BPS_MAX, CommissionRate

REGION_SCOPE = "region"


@dataclass(frozen=True, slots=True)
class RateRow:
    region: str
    scope: str  # region, product, deal
    sku: str | None
    deal_id: int | None
    delivery_date: date | None  # the deal's
    rate_bps: int
    updated_at: datetime
    updated_by: str


def set_rate(
    session: Session,
    *,
    region_code: str,
    rate_bps: int,
    actor: str,
    sku: str | None = None,
    deal_id: int | None = None,
    now: datetime | None = None,
) -> CommissionRate:
    """Set the region's default rate, or with `sku` or `deal_id` the override for one product
    (in this region) or one deal (of this region). Audited with the rate before and after."""
    now = now or utcnow()
    region = get_region(session, region_code)
    record = f"commission rate {region_code}"
    if sku is not None and deal_id is not None:
        raise InvalidInput(record, "scope", "give a product or a deal, not both")
    if isinstance(rate_bps, bool) or not isinstance(rate_bps, int):
        raise InvalidInput(record, "rate_bps", "a whole number of basis points")
    if not 0 <= rate_bps <= BPS_MAX:
        raise InvalidInput(
            record, "rate_bps", f"{rate_bps} is outside 0..{BPS_MAX} (100 bps = 1 %)", limit=BPS_MAX
        )
    product_id: int | None = None
    if sku is not None:
        product = session.scalar(select(Product).where(Product.sku == sku))
        if product is None:
            raise InvalidInput(record, "product", f"no product {sku}", value=sku[:64])
        product_id, scope = product.id, f"product:{product.id}"
    elif deal_id is not None:
        deal = session.get(Deal, deal_id)
        if deal is None or deal.region_id != region.id:
            raise InvalidInput(record, "deal", f"no deal {deal_id} in region {region_code}")
        scope = f"deal:{deal.id}"
    else:
        scope = REGION_SCOPE
    # a new rate is inserted unless one exists (ON CONFLICT DO NOTHING: an admin setting the
    # same new rate at the same moment waits, then changes it); an existing one is locked, so
    # its rate before is the one this change replaces
    table = CommissionRate.__table__
    values = {"rate_bps": rate_bps, "updated_at": now, "updated_by": actor}
    new_id = insert_ignore(
        session,
        table,
        {"region_id": region.id, "scope": scope, "product_id": product_id, "deal_id": deal_id}
        | values,
        ["region_id", "scope"],
        returning=table.c.id,
    )
    rate = session.scalars(
        select(CommissionRate)
        .where(CommissionRate.region_id == region.id, CommissionRate.scope == scope)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    before: dict[str, Any] | None = None
    if new_id is None:
        before = {"rate_bps": rate.rate_bps}
        rate.rate_bps, rate.updated_at, rate.updated_by = rate_bps, now, actor
    session.flush()
    record_change(
        session,
        actor=actor,
        action="commission.rate_set",
        entity="commission_rate",
        entity_id=rate.id,
        before=before,
        after={"region": region_code, "scope": scope, "rate_bps": rate_bps},
        at=now,
    )
    return rate


def list_rates(session: Session, *, region_code: str | None = None) -> list[RateRow]:
    """The rates, region by region: the default first, then products by SKU, then deals."""
    query = (
        select(CommissionRate, Region.code, Product.sku, Deal.delivery_date)
        .join(Region, Region.id == CommissionRate.region_id)
        .outerjoin(Deal, Deal.id == CommissionRate.deal_id)
        .outerjoin(Product, Product.id == func.coalesce(CommissionRate.product_id, Deal.product_id))
        .order_by(
            Region.code,
            CommissionRate.deal_id.is_not(None),
            CommissionRate.product_id.is_not(None),
            Product.sku,
            Deal.id,
        )
    )
    if region_code is not None:
        query = query.where(Region.code == region_code)
    return [
        RateRow(
            region,
            "deal" if rate.deal_id else "product" if rate.product_id else REGION_SCOPE,
            sku,
            rate.deal_id,
            day,
            rate.rate_bps,
            rate.updated_at,
            rate.updated_by,
        )
        for rate, region, sku, day in session.execute(query)
    ]


def rate_expression(region_id: Any, product_id: Any, deal_id: Any) -> ColumnElement[int]:
    """The rate of a line in SQL, for set-based statements: the deal's override, else the
    product's in the region, else the region's default, else 0."""
    r = CommissionRate
    by_deal = select(r.rate_bps).where(r.deal_id == deal_id).scalar_subquery()
    by_product = (
        select(r.rate_bps)
        .where(r.region_id == region_id, r.product_id == product_id)
        .scalar_subquery()
    )
    by_region = (
        select(r.rate_bps)
        .where(r.region_id == region_id, r.scope == REGION_SCOPE)
        .scalar_subquery()
    )
    return func.coalesce(by_deal, by_product, by_region, literal(0))
