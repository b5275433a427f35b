"""Idempotency keys are scoped by source and carry a fingerprint; CSV rows never crash the import."""

import pytest
from factories import make_world
from platform_factories import add_city
from sqlalchemy import func, select

from fulfilment.core.csvimport import ImportFailed
from fulfilment.core.errors import IdempotencyConflict
from fulfilment.core.models import Deal, Order
from fulfilment.orders.importer import import_orders
from fulfilment.orders.intake import LineRequest, MemberRef, place_order, request_fingerprint

HEADER = "order_no,order_time,leader_code,member_id,member_name,phone,sku,quantity\n"


def _order(session, world, *, scope, body, qty=1, key="k-1"):
    return place_order(
        session,
        region=world.region,
        leader_code="L1",
        member=MemberRef("M1"),
        lines=[LineRequest("APPLE", qty)],
        placed_at=world.before_cutoff(),
        idempotency_key=key,
        idempotency_scope=scope,
        fingerprint=request_fingerprint(body),
    )


def _orders(session) -> int:
    return session.scalar(select(func.count()).select_from(Order))


def test_same_key_and_request_in_one_scope_is_one_order(session):
    """A retry with the same key and the same request returns the first order; stock taken once."""
    world = make_world(session)
    first = _order(session, world, scope="api:1", body={"qty": 2}, qty=2)
    again = _order(session, world, scope="api:1", body={"qty": 2}, qty=2)
    assert again.id == first.id and _orders(session) == 1
    assert session.get(Deal, world.deals["APPLE"].id).sold_qty == 2


def test_same_key_with_another_request_is_a_conflict(session):
    """The same key with another request raises IdempotencyConflict and places nothing more."""
    world = make_world(session)
    first = _order(session, world, scope="api:1", body={"qty": 1})
    with pytest.raises(IdempotencyConflict) as caught:
        _order(session, world, scope="api:1", body={"qty": 5}, qty=5)
    assert caught.value.order_id == first.id
    assert _orders(session) == 1
    assert session.get(Deal, world.deals["APPLE"].id).sold_qty == 1


def test_same_key_in_another_scope_is_another_order(session):
    """Two sources using the same key get two orders: keys are scoped by their source."""
    world = make_world(session)
    one = _order(session, world, scope="api:1", body={"qty": 1})
    two = _order(session, world, scope="api:2", body={"qty": 1})
    assert one.id != two.id and _orders(session) == 2


def test_two_cities_with_overlapping_order_numbers_both_import(session):
    """Shanghai's and Beijing's exports both have order A1: each city's order is imported."""
    world = make_world(session)
    beijing = add_city(session, world)
    sh = HEADER + "A1,2026-03-09 20:00,L1,SH-M1,Zhang,13800000001,APPLE,2\n"
    bj = HEADER + "A1,2026-03-09 20:05,BJ-L1,BJ-M1,Wang,13800000002,MILK,3\n"
    assert import_orders(session, region=world.region, data=sh.encode()).orders_imported == 1
    assert import_orders(session, region=beijing, data=bj.encode()).orders_imported == 1
    orders = session.scalars(select(Order).order_by(Order.id)).all()
    assert [(o.region_id, o.idempotency_key) for o in orders] == [
        (world.region.id, "csv:A1"),
        (beijing.id, "csv:A1"),
    ]
    assert [o.lines[0].quantity for o in orders] == [2, 3]
    again = import_orders(session, region=beijing, data=bj.encode())
    assert (again.orders_imported, again.orders_already_present) == (0, 1)


def test_reimport_with_changed_contents_is_a_row_error(session):
    """An order number imported before with other lines is reported on its line, not replayed."""
    world = make_world(session)
    first = HEADER + "A1,2026-03-09 20:00,L1,M1,Zhang,13800000001,APPLE,2\n"
    changed = HEADER + "A1,2026-03-09 20:00,L1,M1,Zhang,13800000001,APPLE,7\n"
    import_orders(session, region=world.region, data=first.encode())
    with pytest.raises(ImportFailed) as caught:
        import_orders(session, region=world.region, data=changed.encode())
    [error] = caught.value.errors
    assert (error.line, error.field) == (2, "order_no")
    assert "other contents" in error.message
    assert session.get(Deal, world.deals["APPLE"].id).sold_qty == 2


def test_a_200_kb_member_name_is_a_row_error_naming_line_and_field(session):
    """A field over the csv module's limit is reported as that row's field; other rows import."""
    world = make_world(session)
    data = (
        HEADER
        + "A1,2026-03-09 20:00,L1,M1,Zhang,13800000001,APPLE,2\n"
        + "A2,2026-03-09 20:01,L1,M2,"
        + "x" * 200_000
        + ",13800000002,APPLE,1\n"
        + "A3,2026-03-09 20:02,L2,M3,Li,13800000003,MILK,1\n"
    )
    with pytest.raises(ImportFailed) as caught, session.begin_nested():  # the edge rolls back
        import_orders(session, region=world.region, data=data.encode())
    assert [(e.line, e.field) for e in caught.value.errors] == [(3, "member_name")]
    assert _orders(session) == 0
    report = import_orders(session, region=world.region, data=data.encode(), skip_bad=True)
    assert report.orders_imported == 2
    assert [(e.line, e.field) for e in report.skipped] == [(3, "member_name")]


def test_a_value_longer_than_its_column_is_a_row_error(session):
    """A 101-character member name (the column holds 100) is named, not a database error."""
    world = make_world(session)
    data = HEADER + "A1,2026-03-09 20:00,L1,M1," + "n" * 101 + ",13800000001,APPLE,2\n"
    with pytest.raises(ImportFailed) as caught:
        import_orders(session, region=world.region, data=data.encode())
    [error] = caught.value.errors
    assert (error.line, error.field) == (2, "member_name")
    assert _orders(session) == 0
