"""Test data for the commission: the portal's world with a tier price on APPLE (7 sold: 900
cents from 5), rates set, L1's arrival one APPLE short on M3's line, and M3 and M1 collected."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from factories import DELIVERY, utc
from portal_factories import PortalWorld, make_portal_world
from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfilment.accounts.models import User
from fulfilment.commission.rates import set_rate
from fulfilment.core.models import Leader, Order, Wave
from fulfilment.points.arrivals import confirm_arrival
from fulfilment.points.pickups import verify_pickup

COLLECTED = utc(2026, 3, 10, 2, 0)  # 10:00 in Shanghai on the delivery day
WINDOW_DAYS = 7
REGION_BPS, MILK_BPS, PRAWN_DEAL_BPS = 333, 1000, 250


@dataclass(frozen=True)
class CommissionWorld:
    portal: PortalWorld
    wave_id: int
    lines: dict[str, int]  # "M3 APPLE" → order line id

    def line(self, key: str) -> int:
        return self.lines[key]


def _lines(session: Session, portal: PortalWorld) -> dict[str, int]:
    out = {}
    for key, info in portal.orders.items():
        order = session.get(Order, info.id)
        for ln in order.lines:
            out[f"{key} {ln.product.sku}"] = ln.id
    return out


def collect(session: Session, portal: PortalWorld, key: str, *, now: datetime = COLLECTED) -> None:
    leader = session.scalar(select(Leader).where(Leader.code == "L1"))
    staff = session.scalar(select(User).where(User.username == "staff1"))
    verify_pickup(
        session,
        leader=leader,
        code=portal.orders[key].pickup_code,
        user_id=staff.id,
        actor=staff.actor,
        today=DELIVERY,
        now=now,
        after_sales_days=WINDOW_DAYS,
    )


def make_commission_world(session: Session, *, collect_orders: tuple[str, ...] = ("M3", "M1")):
    portal = make_portal_world(session, tiers=[(5, 900)])
    world = portal.world
    set_rate(session, region_code="SH", rate_bps=REGION_BPS, actor="admin")
    set_rate(session, region_code="SH", sku="MILK", rate_bps=MILK_BPS, actor="admin")
    set_rate(
        session,
        region_code="SH",
        deal_id=world.deals["PRAWN"].id,
        rate_bps=PRAWN_DEAL_BPS,
        actor="admin",
    )
    lines = _lines(session, portal)
    leader = session.scalar(select(Leader).where(Leader.code == "L1"))
    user = session.scalar(select(User).where(User.username == "leader1"))
    products = world.products
    confirm_arrival(
        session,
        wave=session.get(Wave, portal.wave.id),
        leader=leader,
        counted={products["APPLE"].id: 5, products["MILK"].id: 3, products["PRAWN"].id: 1},
        assignments={products["APPLE"].id: {lines["M3 APPLE"]: 1}},
        user_id=user.id,
        actor=user.actor,
        now=COLLECTED - timedelta(hours=1),
    )
    for key in collect_orders:
        collect(session, portal, key)
    session.flush()
    return CommissionWorld(portal, portal.wave.id, lines)
