"""Offering the catalogue for the waves to come (the demo's API orders rely on it)."""

from datetime import timedelta

from factories import DELIVERY, make_world
from sqlalchemy import func, select

from fulfilment.core.models import Deal, PriceTier
from fulfilment.orders.intake import LineRequest, MemberRef, place_order
from fulfilment.waves.cutoff import cut_off_wave
from fulfilment.waves.offers import offer_next_waves


def test_a_week_later_the_next_open_wave_is_offered_once_with_tiers(session):
    """Deals ran out after DELIVERY+2; a week on, the next two waves get the latest deals, once."""
    world = make_world(session, tiers=[(5, 800)], stock_cap=40)
    later = world.before_cutoff() + timedelta(days=7)
    day, created = offer_next_waves(session, region=world.region, now=later)
    assert day == DELIVERY + timedelta(days=7) and created == 2 * len(world.products)
    assert offer_next_waves(session, region=world.region, now=later) == (day, 0)
    deal = session.scalars(
        select(Deal).where(Deal.delivery_date == day, Deal.product_id == world.products["APPLE"].id)
    ).one()
    assert (deal.stock_cap, deal.sold_qty, [(t.min_qty, t.price_cents) for t in deal.tiers]) == (
        40,
        0,
        [(5, 800)],
    )
    order = place_order(
        session,
        region=world.region,
        leader_code="L1",
        member=MemberRef("M1"),
        lines=[LineRequest("APPLE", 1)],
        placed_at=later,
    )
    assert order.wave.delivery_date == day
    assert session.scalar(select(func.count()).select_from(PriceTier)) == 5 * len(world.products)


def test_a_cut_off_wave_is_skipped_for_the_next_open_one(session):
    """When the wave an order placed now belongs to is already cut off, the next one is offered."""
    world = make_world(session, days=1)
    cut_off_wave(session, region=world.region, delivery_date=DELIVERY, now=world.after_cutoff())
    day, created = offer_next_waves(session, region=world.region, now=world.before_cutoff(), days=1)
    assert day == DELIVERY + timedelta(days=1) and created == len(world.products)
