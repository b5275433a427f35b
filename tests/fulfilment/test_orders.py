"""Order intake: the wave an order lands in, idempotency, stock caps, cancellation, bad input."""

import pytest
from factories import DELIVERY, make_world
from sqlalchemy import func, select

from fulfilment.core.db import session_scope
from fulfilment.core.errors import InvalidInput, SoldOut, WaveClosed
from fulfilment.core.models import AuditEntry, Deal, Order, OrderLine, OrderStatus, Wave
from fulfilment.orders.intake import LineRequest, MemberRef, cancel_order, place_order
from fulfilment.waves.cutoff import cut_off_wave


def order(session, world, *, key=None, at=None, sku="APPLE", qty=1, member="M1", leader="L1"):
    return place_order(
        session,
        region=world.region,
        leader_code=leader,
        member=MemberRef(member, "张三", "13812345678"),
        lines=[LineRequest(sku, qty)],
        placed_at=at or world.before_cutoff(),
        idempotency_key=key,
    )


def test_order_lands_in_its_wave_with_a_pickup_code_and_an_audit_entry(session):
    """An order before the cutoff is in that delivery date's wave, priced, coded and audited."""
    world = make_world(session)
    placed = order(session, world, qty=3)
    assert placed.wave.delivery_date == DELIVERY
    assert not placed.late
    assert placed.total_cents == 3000
    assert len(placed.pickup_code) == 8 and placed.pickup_code.isdigit()
    audit = session.scalars(select(AuditEntry).where(AuditEntry.entity_id == placed.id)).one()
    assert audit.action == "order.placed" and audit.actor == "system"
    assert session.get(Deal, world.deals["APPLE"].id).sold_qty == 3


def test_order_at_the_cutoff_instant_goes_to_the_next_wave(session):
    """placed_at == cutoff: the next delivery date, by the one comparison in fulfilment.cycle."""
    world = make_world(session)
    at_cutoff = order(session, world, at=world.cutoff)
    just_before = order(
        session,
        world,
        at=world.cutoff - __import__("datetime").timedelta(microseconds=1),
        member="M2",
    )
    assert at_cutoff.wave.delivery_date > DELIVERY
    assert just_before.wave.delivery_date == DELIVERY


def test_same_idempotency_key_gives_the_same_order_once(session):
    """A retried request with the same key returns the first order; stock is taken once."""
    world = make_world(session)
    first = order(session, world, key="k-1", qty=2)
    again = order(session, world, key="k-1", qty=2)
    assert again.id == first.id
    assert session.scalar(select(func.count()).select_from(Order)) == 1
    assert session.get(Deal, world.deals["APPLE"].id).sold_qty == 2


def test_sold_out_takes_nothing(sessions):
    """Asking for more than is left raises SoldOut, and the rollback leaves no order and no stock taken."""
    with session_scope(sessions) as s:
        world = make_world(s, stock_cap=5)
        order(s, world, qty=4)
        region_id = world.region.id
    with pytest.raises(SoldOut) as err, session_scope(sessions) as s:
        w = s.get(type(world.region), region_id)
        place_order(
            s,
            region=w,
            leader_code="L1",
            member=MemberRef("M2"),
            lines=[LineRequest("MILK", 1), LineRequest("APPLE", 2)],
            placed_at=world.before_cutoff(),
        )
    assert err.value.sku == "APPLE" and err.value.left == 1
    with session_scope(sessions) as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 1
        assert s.scalar(select(func.sum(Deal.sold_qty))) == 4  # MILK's unit went back too


def test_order_after_cutoff_of_a_cut_off_wave_goes_to_the_next_and_is_marked_late(session):
    """Once the wave is cut off, an order stamped before the cutoff lands in the next wave, late."""
    world = make_world(session)
    order(session, world)
    wave, _ = cut_off_wave(
        session, region=world.region, delivery_date=DELIVERY, now=world.after_cutoff()
    )
    late = order(session, world, member="M9", at=world.before_cutoff(5))
    assert late.late and late.wave.delivery_date > DELIVERY
    assert (
        session.scalar(select(func.count()).select_from(Order).where(Order.wave_id == wave.id)) == 1
    )


def test_cancel_before_cutoff_returns_stock(session):
    """A member's cancellation frees the units for others and is audited."""
    world = make_world(session, stock_cap=3)
    placed = order(session, world, qty=3)
    cancel_order(session, order_id=placed.id, actor="member:M1", now=world.before_cutoff(30))
    assert placed.status == OrderStatus.CANCELLED
    assert session.get(Deal, world.deals["APPLE"].id).sold_qty == 0
    assert order(session, world, member="M2", qty=3).total_cents == 3000
    actions = session.scalars(
        select(AuditEntry.action).where(AuditEntry.entity_id == placed.id)
    ).all()
    assert "order.cancelled" in actions


def test_cancel_after_cutoff_is_refused(session):
    """A locked order cannot be cancelled: the cut-off wave never changes."""
    world = make_world(session)
    placed = order(session, world)
    cut_off_wave(session, region=world.region, delivery_date=DELIVERY, now=world.after_cutoff())
    with pytest.raises(WaveClosed):
        cancel_order(session, order_id=placed.id)


def test_tier_price_paid_is_the_price_shown_when_ordering(session):
    """The first units pay the base price; an order placed after the total passes a tier pays the tier price."""
    world = make_world(session, tiers=[(5, 800)])
    assert order(session, world, qty=5).lines[0].unit_price_cents == 1000
    assert order(session, world, qty=1, member="M2").lines[0].unit_price_cents == 800


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"sku": "NOPE"}, "sku"),
        ({"qty": 0}, "quantity"),
        ({"qty": -2}, "quantity"),
        ({"leader": "L404"}, "leader"),
        ({"member": " "}, "member"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(session, kwargs, field):
    """Unknown SKU or leader, a non-positive quantity, an empty member id: InvalidInput naming the field."""
    world = make_world(session)
    with pytest.raises(InvalidInput) as err:
        order(session, world, **kwargs)
    assert err.value.field == field
    session.rollback()
    assert session.scalar(select(func.count()).select_from(OrderLine)) == 0


def test_no_deal_on_that_date_is_a_clear_error(session):
    """A SKU not on offer for the wave's date is refused naming the SKU and the date."""
    world = make_world(session, days=1)
    with pytest.raises(InvalidInput, match="not on offer") as err:
        order(session, world, at=world.after_cutoff(60))
    assert err.value.field == "sku"


def test_naive_time_is_refused(session):
    """A placed_at without a time zone is an error, never guessed."""
    world = make_world(session)
    with pytest.raises(InvalidInput) as err:
        order(session, world, at=world.before_cutoff().replace(tzinfo=None))
    assert err.value.field == "placed_at"


def test_waves_are_one_row_per_region_and_date(session):
    """Many orders for the same date share one wave row."""
    world = make_world(session)
    for n in range(5):
        order(session, world, member=f"M{n}")
    assert session.scalar(select(func.count()).select_from(Wave)) == 1
