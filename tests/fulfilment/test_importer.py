"""CSV import: encodings, all-or-nothing per file, --skip-bad reports, idempotent re-import."""

import pytest
from factories import make_world
from sqlalchemy import func, select

from fulfilment.core.csvimport import ImportFailed
from fulfilment.core.models import Order, OrderLine
from fulfilment.orders.importer import import_orders

CN_HEADER = "订单号,下单时间,团长编号,会员编号,会员昵称,手机号,商品编码,数量\n"
ROWS = [
    "A1001,2026-03-09 20:15:00,L1,M1,张三,13812345678,APPLE,2\n",
    "A1001,2026-03-09 20:15:00,L1,M1,张三,13812345678,MILK,1\n",
    "A1002,2026-03-09 21:40:00,L2,M2,李四,13900001111,PRAWN,3\n",
]


def count(session, model):
    return session.scalar(select(func.count()).select_from(model))


def test_utf8_with_bom_and_chinese_headers(session):
    """A UTF-8 file with a BOM and the platform's Chinese headers imports every order and line."""
    world = make_world(session)
    data = ("\ufeff" + CN_HEADER + "".join(ROWS)).encode("utf-8")
    report = import_orders(session, region=world.region, data=data)
    assert (report.orders_imported, report.lines_imported) == (2, 3)
    first = session.scalars(select(Order).where(Order.idempotency_key == "csv:A1001")).one()
    assert first.source == "csv" and len(first.lines) == 2
    assert (
        first.placed_at.isoformat() == "2026-03-09T12:15:00+00:00"
    )  # 20:15 Shanghai, stored in UTC


def test_gbk_file(session):
    """A GBK-encoded export (as Excel on a Chinese Windows saves it) imports the same."""
    world = make_world(session)
    report = import_orders(
        session, region=world.region, data=(CN_HEADER + "".join(ROWS)).encode("gbk")
    )
    assert report.orders_imported == 2
    assert (
        session.scalars(select(Order).where(Order.idempotency_key == "csv:A1002")).one().member.name
        == "李四"
    )


def test_one_bad_row_imports_nothing_and_names_line_and_field(session):
    """All-or-nothing: a bad quantity on line 3 and an unknown SKU on line 4 stop the whole file."""
    world = make_world(session)
    rows = ROWS[:1] + [
        "A1001,2026-03-09 20:15:00,L1,M1,张三,138,MILK,two\n",
        "A1003,2026-03-09 22:00:00,L1,M3,王五,137,NOPE,1\n",
    ]
    with pytest.raises(ImportFailed) as err:
        import_orders(session, region=world.region, data=(CN_HEADER + "".join(rows)).encode())
    assert [(e.line, e.field) for e in err.value.errors] == [(3, "quantity"), (4, "sku")]
    session.rollback()
    assert count(session, Order) == 0 and count(session, OrderLine) == 0


def test_skip_bad_imports_the_good_orders_and_reports_the_rest(session):
    """--skip-bad: good orders go in; an order with one bad row is skipped whole and reported."""
    world = make_world(session)
    rows = ROWS + [
        "A1001,2026-03-09 20:15:00,L1,M1,张三,138,PRAWN,0\n",
        "A1004,not a time,L1,M4,赵六,136,APPLE,1\n",
    ]
    report = import_orders(
        session, region=world.region, data=(CN_HEADER + "".join(rows)).encode(), skip_bad=True
    )
    assert report.orders_imported == 1  # A1002 only: A1001 has a bad row, A1004 a bad time
    assert [(e.line, e.field) for e in report.skipped] == [(5, "quantity"), (6, "order_time")]
    assert count(session, Order) == 1


def test_reimport_changes_nothing(session):
    """Importing the same file twice places each order once."""
    world = make_world(session)
    data = (CN_HEADER + "".join(ROWS)).encode()
    import_orders(session, region=world.region, data=data)
    again = import_orders(session, region=world.region, data=data)
    assert (again.orders_imported, again.orders_already_present) == (0, 2)
    assert count(session, Order) == 2


def test_missing_column_is_named(session):
    """A file without a quantity column is refused naming the column."""
    world = make_world(session)
    with pytest.raises(Exception, match="quantity"):
        import_orders(
            session, region=world.region, data=b"order_no,order_time,leader_code,member_id,sku\n"
        )
