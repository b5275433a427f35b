"""The CSV import as the shop depends on it: the whole file checked before anything is placed,
each fault on its own line and field, members namespaced by region, stock and tier prices as if
the orders were placed one by one."""

import pytest
from factories import make_world
from platform_factories import add_city
from sqlalchemy import func, select

from fulfilment.core.csvimport import ImportFailed
from fulfilment.core.errors import InvalidInput
from fulfilment.core.models import Deal, Member, Order, OrderLine
from fulfilment.orders.importer import import_orders
from fulfilment.orders.intake import MAX_QUANTITY_PER_LINE, LineRequest, MemberRef, place_order

HEADER = "order_no,order_time,leader_code,member_id,member_name,phone,sku,quantity\n"


def _count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def _import(session, region, rows: str, **kwargs):
    return import_orders(session, region=region, data=(HEADER + rows).encode(), **kwargs)


def test_an_unknown_sku_on_an_orders_second_row_is_reported_on_that_row(session):
    """Issue 22 item 13: the row at fault is named, not the order's first row."""
    world = make_world(session)
    rows = (
        "A1,2026-03-09 20:00,L1,M1,Zhang,13800000001,APPLE,1\n"
        "A1,2026-03-09 20:00,L1,M1,Zhang,13800000001,NOPE,1\n"
    )
    with pytest.raises(ImportFailed) as caught:
        _import(session, world.region, rows)
    assert [(e.line, e.field) for e in caught.value.errors] == [(3, "sku")]


def test_a_sku_not_offered_for_the_orders_wave_is_reported_on_its_row(session):
    """An order placed after the last deal's day: its SKU row is named, nothing is placed."""
    world = make_world(session, days=1)
    rows = (
        "A1,2026-03-09 20:00,L1,M1,Zhang,13800000001,APPLE,1\n"
        "A2,2026-03-10 20:00,L1,M2,Li,13800000002,MILK,1\n"
    )
    with pytest.raises(ImportFailed) as caught:
        _import(session, world.region, rows)
    assert [(e.line, e.field) for e in caught.value.errors] == [(3, "sku")]
    assert _count(session, Order) == 0


def test_a_refused_file_places_nothing_and_takes_no_stock(session):
    """All-or-nothing: the bad last row refuses the file before any order or member is
    written and before any stock is taken."""
    world = make_world(session, stock_cap=100)
    rows = "".join(
        f"A{n},2026-03-09 20:{n:02d},L1,M{n},Name,1380000{n:04d},APPLE,1\n" for n in range(20)
    )
    rows += "B1,2026-03-09 21:00,L1,MB,Name,13800000000,APPLE,x\n"
    with pytest.raises(ImportFailed) as caught:
        _import(session, world.region, rows)
    assert [(e.line, e.field) for e in caught.value.errors] == [(22, "quantity")]
    assert (_count(session, Order), _count(session, Member)) == (0, 0)
    session.expire_all()
    assert session.get(Deal, world.deals["APPLE"].id).sold_qty == 0


def test_tier_prices_are_those_of_orders_placed_one_by_one(session):
    """The second order sees the units of the first: from 5 units sold the price is 800."""
    world = make_world(session, tiers=[(5, 800)])
    rows = (
        "A1,2026-03-09 20:00,L1,M1,Zhang,13800000001,APPLE,5\n"
        "A2,2026-03-09 20:01,L1,M2,Li,13800000002,APPLE,2\n"
        "A2,2026-03-09 20:01,L1,M2,Li,13800000002,MILK,1\n"
    )
    report = _import(session, world.region, rows)
    assert (report.orders_imported, report.lines_imported) == (2, 3)
    orders = session.scalars(select(Order).order_by(Order.idempotency_key)).all()
    assert [[(ln.quantity, ln.unit_price_cents) for ln in o.lines] for o in orders] == [
        [(5, 1000)],
        [(2, 800), (1, 1000)],
    ]
    assert [o.total_cents for o in orders] == [5000, 2600]


def test_a_file_over_the_stock_left_is_refused_on_the_row_that_does_not_fit(session):
    """Stock is never oversold: with 5 units left, the order asking for the 6th is named."""
    world = make_world(session, stock_cap=5)
    rows = (
        "A1,2026-03-09 20:00,L1,M1,Zhang,13800000001,APPLE,3\n"
        "A2,2026-03-09 20:01,L1,M2,Li,13800000002,MILK,1\n"
        "A2,2026-03-09 20:01,L1,M2,Li,13800000002,APPLE,3\n"
        "A3,2026-03-09 20:02,L1,M3,Wang,13800000003,APPLE,2\n"
    )
    with pytest.raises(ImportFailed) as caught:
        _import(session, world.region, rows)
    [error] = caught.value.errors
    assert (error.line, error.field, error.limit) == (4, "quantity", 2)
    assert _count(session, Order) == 0
    report = _import(session, world.region, rows, skip_bad=True)
    assert report.orders_imported == 2 and [(e.line, e.field) for e in report.skipped] == [
        (4, "quantity")
    ]
    session.expire_all()
    assert session.get(Deal, world.deals["APPLE"].id).sold_qty == 5


def test_members_with_one_id_in_two_regions_are_two_members(session):
    """Issue 22 item 4: SH's member 1001 (张三) and BJ's 1001 (李四) are two people, each with
    their own name and phone."""
    world = make_world(session)
    beijing = add_city(session, world)
    _import(session, world.region, "S1,2026-03-09 20:00,L1,1001,张三,13800000001,APPLE,1\n")
    _import(session, beijing, "B1,2026-03-09 20:00,BJ-L1,1001,李四,13900000002,APPLE,1\n")
    orders = session.scalars(select(Order).order_by(Order.id)).all()
    assert [(o.member.external_id, o.member.name, o.member.phone) for o in orders] == [
        ("csv:SH:1001", "张三", "13800000001"),
        ("csv:BJ:1001", "李四", "13900000002"),
    ]


@pytest.mark.parametrize("member_id", ["p1:m-1", "P12:x", "csv:BJ:1001"])
def test_a_member_id_with_a_source_prefix_is_refused(session, member_id):
    """Issue 22 item 4: a CSV id that starts like an API client's (`p1:`) or another region's
    (`csv:`) member is refused on its line and field, never attached to that member."""
    world = make_world(session)
    rows = (
        "A1,2026-03-09 20:00,L1,M1,Zhang,13800000001,APPLE,1\n"
        f"A2,2026-03-09 20:00,L1,{member_id},Li,13800000002,APPLE,1\n"
    )
    with pytest.raises(ImportFailed) as caught:
        _import(session, world.region, rows)
    assert [(e.line, e.field) for e in caught.value.errors] == [(3, "member_id")]
    assert _count(session, Member) == 0


def test_limits_are_carried_as_fields_not_only_in_the_message(session):
    """Issue 22 item 14: a view reads the bound broken from the error, not from its English."""
    world = make_world(session)
    rows = (
        "A1,2026-03-09 20:00,L1,M1," + "n" * 101 + ",13800000001,APPLE,1\n"
        f"A2,2026-03-09 20:00,L1,M2,Li,13800000002,APPLE,{MAX_QUANTITY_PER_LINE + 1}\n"
    )
    with pytest.raises(ImportFailed) as caught:
        _import(session, world.region, rows)
    assert [(e.line, e.field, e.limit) for e in caught.value.errors] == [
        (2, "member_name", 100),
        (3, "quantity", MAX_QUANTITY_PER_LINE),
    ]
    assert str(caught.value.errors[0]).startswith("line 2: member_name: ")


def test_invalid_input_keeps_its_readable_text_and_structured_fields():
    """str() stays `record: field: message`; limit and line are plain attributes."""
    err = InvalidInput("order k-1", "quantity", "too many", limit=10, line=2)
    assert str(err) == "order k-1: quantity: too many"
    assert (err.record, err.field, err.limit, err.line) == ("order k-1", "quantity", 10, 2)


@pytest.mark.parametrize(
    ("cells", "field"),
    [
        ("A1,2026-03-09 20:00,L1,M\x001,Zhang,13800000001,APPLE,1", "member_id"),
        ("A1,2026-03-09 20:00,L1,M1,Zh\x00ang,13800000001,APPLE,1", "member_name"),
        ("A1,2026-03-09 20:00,L1,M1,Zhang,13800000001,APPLE,²", "quantity"),
        ("A1,2026-03-09 20:00,L1,M1,Zhang,13800000001,APPLE,1e3", "quantity"),
        ("A1,2026-03-09 20:00,L1,M1,Zhang,13800000001,APPLE,1,extra", "row"),
    ],
)
def test_bad_cells_are_row_errors_on_both_databases(session, cells, field):
    """A NUL (PostgreSQL refuses it, SQLite would store it), a superscript or exponent
    quantity, a row longer than the header: each a row error, nothing stored."""
    world = make_world(session)
    with pytest.raises(ImportFailed) as caught:
        _import(session, world.region, cells + "\n")
    assert [(e.line, e.field) for e in caught.value.errors] == [(2, field)]
    assert _count(session, OrderLine) == 0


def test_an_orders_errors_name_the_line_and_sku_as_fields(session):
    """Issue 22 item 14: place_order's SKU and quantity errors carry the order's line number
    and the SKU, so the API points at /lines/<n> without parsing the record or message."""
    world = make_world(session)

    def refused(lines):
        with pytest.raises(InvalidInput) as caught:
            place_order(
                session,
                region=world.region,
                leader_code="L1",
                member=MemberRef("p1:m"),
                lines=lines,
                placed_at=world.before_cutoff(),
            )
        return caught.value

    unknown = refused([LineRequest("APPLE", 1), LineRequest("NOPE", 1)])
    assert (unknown.field, unknown.line, unknown.value) == ("sku", 2, "NOPE")
    too_many = refused([LineRequest("MILK", 1), LineRequest("APPLE", MAX_QUANTITY_PER_LINE + 1)])
    assert (too_many.field, too_many.line, too_many.value, too_many.limit) == (
        "quantity",
        2,
        "APPLE",
        MAX_QUANTITY_PER_LINE,
    )
