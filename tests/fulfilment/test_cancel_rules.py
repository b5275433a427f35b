"""Cancelling: refused from the wave's deadline on, cutoff job or not; a second cancel says so."""

from datetime import timedelta

import pytest
from factories import make_world
from sqlalchemy import select

from fulfilment.core.errors import AlreadyCancelled, CutoffPassed
from fulfilment.core.models import Deal, Order, OrderStatus, Wave, WaveStatus
from fulfilment.orders.intake import LineRequest, MemberRef, cancel_order, place_order


def _placed(session, world):
    return place_order(
        session,
        region=world.region,
        leader_code="L1",
        member=MemberRef("M1"),
        lines=[LineRequest("APPLE", 2)],
        placed_at=world.before_cutoff(),
    )


def test_cancel_at_the_deadline_is_refused_before_the_cutoff_job_runs(session):
    """At cutoff_due_at the wave is still open (no job ran), yet the cancel is CutoffPassed."""
    world = make_world(session)
    order = _placed(session, world)
    wave = session.scalars(select(Wave)).one()
    assert wave.status == WaveStatus.OPEN
    with pytest.raises(CutoffPassed):
        cancel_order(session, order_id=order.id, now=wave.cutoff_due_at)
    assert session.get(Order, order.id).status == OrderStatus.PLACED
    assert session.get(Deal, world.deals["APPLE"].id).sold_qty == 2


def test_cancel_one_microsecond_before_the_deadline_is_accepted(session):
    """Just before cutoff_due_at the member may still cancel, and the stock goes back."""
    world = make_world(session)
    order = _placed(session, world)
    due = session.scalars(select(Wave)).one().cutoff_due_at
    cancel_order(session, order_id=order.id, now=due - timedelta(microseconds=1))
    assert order.status == OrderStatus.CANCELLED
    assert session.get(Deal, world.deals["APPLE"].id).sold_qty == 0


def test_cancelling_a_cancelled_order_says_so_and_returns_no_stock(session):
    """A second cancel raises AlreadyCancelled; the stock is not given back twice."""
    world = make_world(session)
    order = _placed(session, world)
    _placed(session, world)  # another member's 2 units stay sold
    cancel_order(session, order_id=order.id, now=world.before_cutoff(30))
    with pytest.raises(AlreadyCancelled):
        cancel_order(session, order_id=order.id, now=world.before_cutoff(20))
    assert session.get(Deal, world.deals["APPLE"].id).sold_qty == 2
