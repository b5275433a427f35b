"""Issue 22 item 5, the generating side: a new order's pickup code is unique among its point's
live orders in every wave, since a member's code is looked up across the point's waves."""

from itertools import chain, repeat

from factories import make_world
from sqlalchemy import select

from fulfilment.core.models import Order
from fulfilment.orders import importer, intake
from fulfilment.orders.importer import import_orders
from fulfilment.orders.intake import LineRequest, MemberRef, cancel_order, place_order

HEADER = "order_no,order_time,leader_code,member_id,member_name,phone,sku,quantity\n"


def _codes(monkeypatch, module, *codes: str) -> None:
    drawn = chain(codes, repeat("99999999"))
    monkeypatch.setattr(module, "new_pickup_code", lambda: next(drawn))


def _order(session, world, placed_at, member="m1", leader="L1"):
    return place_order(
        session,
        region=world.region,
        leader_code=leader,
        member=MemberRef(member),
        lines=[LineRequest("APPLE", 1)],
        placed_at=placed_at,
    )


def test_a_code_live_at_the_point_in_another_wave_is_drawn_again(session, monkeypatch):
    """Today's live order holds 11111111: tomorrow's order at the same point draws another."""
    world = make_world(session)
    _codes(monkeypatch, intake, "11111111", "11111111", "22222222")
    today = _order(session, world, world.before_cutoff())
    tomorrow = _order(session, world, world.after_cutoff(), member="m2")
    assert today.wave_id != tomorrow.wave_id
    assert (today.pickup_code, tomorrow.pickup_code) == ("11111111", "22222222")


def test_a_code_of_another_point_or_of_a_cancelled_order_may_be_drawn(session, monkeypatch):
    """Only the point's live orders count: another point's code, or a code whose order was
    cancelled, is free."""
    world = make_world(session)
    _codes(monkeypatch, intake, "11111111", "11111111", "11111111")
    first = _order(session, world, world.before_cutoff())
    other_point = _order(session, world, world.after_cutoff(), member="m2", leader="L2")
    cancel_order(session, order_id=first.id, now=world.before_cutoff(30))
    again = _order(session, world, world.after_cutoff(), member="m3")
    assert [o.pickup_code for o in (first, other_point, again)] == ["11111111"] * 3


def test_an_import_draws_codes_free_at_the_point_and_within_the_file(session, monkeypatch):
    """A live API order holds 11111111 at L1 in the next wave; the file's two orders at L1
    draw past it and past each other."""
    world = make_world(session)
    _codes(monkeypatch, intake, "11111111")
    _order(session, world, world.after_cutoff())
    _codes(monkeypatch, importer, "11111111", "22222222", "22222222", "33333333")
    rows = (
        "A1,2026-03-09 20:00,L1,M1,Zhang,13800000001,APPLE,1\n"
        "A2,2026-03-09 20:01,L1,M2,Li,13800000002,APPLE,1\n"
    )
    import_orders(session, region=world.region, data=(HEADER + rows).encode())
    codes = sorted(o.pickup_code for o in session.scalars(select(Order)))
    assert codes == ["11111111", "22222222", "33333333"]
