"""The CSV import under real concurrency on PostgreSQL: exactly once, never oversold, and never
holding the shop's deals while it reads a file."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from factories import DELIVERY, make_world
from sqlalchemy import func, select, text

from fulfilment.core.csvimport import ImportFailed
from fulfilment.core.db import make_engine, make_session_factory, session_scope
from fulfilment.core.errors import SoldOut
from fulfilment.core.models import Deal, Member, Order, OrderLine, Region
from fulfilment.orders import importer
from fulfilment.orders.importer import import_orders
from fulfilment.orders.intake import LineRequest, MemberRef, place_order
from fulfilment.waves.cycle import ensure_wave

pytestmark = pytest.mark.postgres

HEADER = "order_no,order_time,leader_code,member_id,member_name,phone,sku,quantity\n"


def _file(orders: int, *, sku: str = "APPLE", qty: int = 1) -> bytes:
    rows = "".join(
        f"A{n},2026-03-09 20:{n % 60:02d},L{n % 3 + 1},M{n},Name,1380000{n % 10000:04d},{sku},{qty}\n"
        for n in range(orders)
    )
    return (HEADER + rows).encode()


@pytest.fixture
def pg(pg_url):
    engine = make_engine(pg_url, pool_size=10, max_overflow=0)
    sessions = make_session_factory(engine)
    yield engine, sessions
    engine.dispose()


def test_the_same_file_imported_four_times_at_once_places_each_order_once(pg):
    """Four imports of one 300-order file at once: 300 orders, 300 units taken, 300 members;
    one import places them, the others find them present."""
    engine, sessions = pg
    with session_scope(sessions) as s:
        world = make_world(s, stock_cap=1000)
        region_id, deal_id = world.region.id, world.deals["APPLE"].id
    data = _file(300)
    start = threading.Barrier(4)

    def run(_n: int):
        start.wait()
        with session_scope(sessions) as s:
            report = import_orders(s, region=s.get(Region, region_id), data=data)
            return report.orders_imported, report.orders_already_present

    with ThreadPoolExecutor(max_workers=4) as pool:
        reports = list(pool.map(run, range(4)))
    assert sorted(reports) == [(0, 300), (0, 300), (0, 300), (300, 0)]
    with session_scope(sessions) as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 300
        assert s.scalar(select(func.count()).select_from(OrderLine)) == 300
        assert s.scalar(select(func.count()).select_from(Member)) == 300
        assert s.get(Deal, deal_id).sold_qty == 300


def test_an_import_and_api_orders_together_never_oversell(pg):
    """Cap 100: a file wanting 60 units and 60 one-unit API orders race; the units sold are
    exactly those the placed orders hold, and never more than the cap."""
    engine, sessions = pg
    with session_scope(sessions) as s:
        world = make_world(s, stock_cap=100)
        region_id, deal_id, at = world.region.id, world.deals["APPLE"].id, world.before_cutoff()
    data = _file(30, qty=2)
    start = threading.Barrier(8)
    outcomes: list[str] = []

    def api(n: int) -> None:
        if n < 7:
            start.wait()
        try:
            with session_scope(sessions) as s:
                place_order(
                    s,
                    region=s.get(Region, region_id),
                    leader_code="L1",
                    member=MemberRef(f"p9:api-{n}"),
                    lines=[LineRequest("APPLE", 1)],
                    placed_at=at,
                )
            outcomes.append("ok")
        except SoldOut:
            outcomes.append("sold out")

    def csv_import() -> str:
        start.wait()
        try:
            with session_scope(sessions) as s:
                import_orders(s, region=s.get(Region, region_id), data=data)
            return "imported"
        except ImportFailed:
            return "refused"

    with ThreadPoolExecutor(max_workers=8) as pool:
        imported = pool.submit(csv_import)
        list(pool.map(api, range(60)))
        outcome = imported.result()
    with session_scope(sessions) as s:
        sold = s.get(Deal, deal_id).sold_qty
        held = s.scalar(select(func.coalesce(func.sum(OrderLine.quantity), 0)))
    assert sold == held <= 100
    assert sold == outcomes.count("ok") + (60 if outcome == "imported" else 0)


def test_a_file_refused_for_a_bad_row_waits_on_no_deal(pg):
    """While another transaction holds the deal's row lock, a file with one bad row is refused
    at once (ImportFailed), not stuck behind the lock placing its good orders first."""
    engine, sessions = pg
    with session_scope(sessions) as s:
        world = make_world(s)
        region_id, deal_id = world.region.id, world.deals["APPLE"].id
    data = _file(50) + b"B1,2026-03-09 21:00,L1,MB,Name,13800000000,APPLE,x\n"
    with engine.connect() as holder:
        holder.execute(text("SELECT id FROM deal WHERE id = :id FOR UPDATE"), {"id": deal_id})
        with sessions() as s:
            s.execute(text("SET LOCAL lock_timeout = '2s'"))
            with pytest.raises(ImportFailed) as caught:
                import_orders(s, region=s.get(Region, region_id), data=data)
            s.rollback()
        holder.rollback()
    assert [(e.line, e.field) for e in caught.value.errors] == [(52, "quantity")]


def test_api_orders_are_not_held_while_the_file_is_checked(pg, monkeypatch):
    """The whole file is checked holding no lock: an API order for its SKU, placed the moment
    the check ends and before the import places anything, goes through within a 2 s lock
    timeout (it waited behind the whole import before)."""
    engine, sessions = pg
    with session_scope(sessions) as s:
        world = make_world(s, stock_cap=1000)
        region_id, at = world.region.id, world.before_cutoff()
    placed: list[int] = []
    checked = importer._check

    def check_then_order(*args, **kwargs):
        plan = checked(*args, **kwargs)
        with session_scope(sessions) as api:
            api.execute(text("SET LOCAL lock_timeout = '2s'"))
            order = place_order(
                api,
                region=api.get(Region, region_id),
                leader_code="L2",
                member=MemberRef("p9:api"),
                lines=[LineRequest("APPLE", 1)],
                placed_at=at,
            )
            placed.append(order.id)
        return plan

    monkeypatch.setattr(importer, "_check", check_then_order)
    with session_scope(sessions) as s:
        report = import_orders(s, region=s.get(Region, region_id), data=_file(200))
    assert report.orders_imported == 200 and len(placed) == 1


@pytest.mark.parametrize("skip_bad", [False, True])
def test_stock_sold_while_the_file_is_written_is_never_oversold(pg, monkeypatch, skip_bad):
    """5 of 10 units are sold by an API order after the import priced its orders and before it
    took the stock: the import allocates again under the deal's lock; the order that no longer
    fits is refused on its line (the whole file, or that order with --skip-bad)."""
    engine, sessions = pg
    with session_scope(sessions) as s:
        world = make_world(s, stock_cap=10)
        region_id, deal_id, at = world.region.id, world.deals["APPLE"].id, world.before_cutoff()
        ensure_wave(s, world.region, DELIVERY)  # a wave the import creates is its own till commit
    write = importer._write
    sold_meanwhile: list[int] = []

    def write_then_sell(*args, **kwargs):
        write(*args, **kwargs)
        if not sold_meanwhile:
            with session_scope(sessions) as api:
                order = place_order(
                    api,
                    region=api.get(Region, region_id),
                    leader_code="L2",
                    member=MemberRef("p9:api"),
                    lines=[LineRequest("APPLE", 5)],
                    placed_at=at,
                )
                sold_meanwhile.append(order.id)

    monkeypatch.setattr(importer, "_write", write_then_sell)
    data = (
        HEADER
        + "A1,2026-03-09 20:00,L1,M1,Zhang,13800000001,APPLE,4\n"
        + "A2,2026-03-09 20:01,L1,M2,Li,13800000002,APPLE,4\n"
    ).encode()
    with sessions() as s:
        if skip_bad:
            report = import_orders(s, region=s.get(Region, region_id), data=data, skip_bad=True)
            assert report.orders_imported == 1
            assert [(e.line, e.field) for e in report.skipped] == [(3, "quantity")]
            s.commit()
        else:
            with pytest.raises(ImportFailed) as caught:
                import_orders(s, region=s.get(Region, region_id), data=data)
            assert [(e.line, e.field) for e in caught.value.errors] == [(3, "quantity")]
            s.rollback()
    with session_scope(sessions) as s:
        sold = s.get(Deal, deal_id).sold_qty
        held = s.scalar(select(func.coalesce(func.sum(OrderLine.quantity), 0)))
        keys = s.scalars(select(Order.idempotency_key).order_by(Order.id)).all()
    assert sold == held == (9 if skip_bad else 5)
    assert keys == ([None, "csv:A1"] if skip_bad else [None])
