"""Rules 2 and 3 under real concurrency: no oversell, one cutoff, no lost order (PostgreSQL first)."""

import multiprocessing
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from factories import DELIVERY, make_world
from sqlalchemy import func, select

from fulfilment.core.db import make_engine, make_session_factory, session_scope
from fulfilment.core.errors import SoldOut
from fulfilment.core.models import AuditEntry, CutoffRun, Deal, Order, OrderStatus, Region, Wave
from fulfilment.orders.intake import LineRequest, MemberRef, place_order
from fulfilment.waves.cutoff import cut_off_wave


def _race_for_stock(url: str, attempts: int, threads: int) -> tuple[int, int, list[BaseException]]:
    engine = (
        make_engine(url, pool_size=threads, max_overflow=0)
        if url.startswith("postgresql")
        else make_engine(url)
    )
    sessions = make_session_factory(engine)
    with session_scope(sessions) as s:
        world = make_world(s, stock_cap=50)
        place_order(
            s,
            region=world.region,
            leader_code="L1",
            member=MemberRef("early"),
            lines=[LineRequest("APPLE", 40)],
            placed_at=world.before_cutoff(),
        )  # 10 units left
        region_id, at = world.region.id, world.before_cutoff(30)
    start = threading.Barrier(threads)
    ok, sold_out, other = [], [], []

    def attempt(n: int) -> None:
        if n < threads:
            start.wait()  # the first wave of threads starts together
        try:
            with session_scope(sessions) as s:
                place_order(
                    s,
                    region=s.get(Region, region_id),
                    leader_code=f"L{n % 3 + 1}",
                    member=MemberRef(f"buyer-{n}"),
                    lines=[LineRequest("APPLE", 1)],
                    placed_at=at,
                )
            ok.append(n)
        except SoldOut:
            sold_out.append(n)
        except BaseException as err:  # noqa: BLE001 - reported by the test
            other.append(err)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(attempt, range(attempts)))
    with session_scope(sessions) as s:
        assert (
            s.scalar(
                select(Deal.sold_qty).where(Deal.product_id == 1, Deal.delivery_date == DELIVERY)
            )
            == 50
        )
        assert s.scalar(select(func.count()).select_from(Order)) == 1 + len(ok)
    engine.dispose()
    return len(ok), len(sold_out), other


@pytest.mark.postgres
def test_200_concurrent_orders_for_the_last_10_units_on_postgres(pg_url):
    """200 orders race through 50 connections for 10 units: exactly 10 succeed, 190 get SoldOut."""
    ok, sold_out, other = _race_for_stock(pg_url, attempts=200, threads=50)
    assert other == []
    assert (ok, sold_out) == (10, 190)


def test_concurrent_orders_never_oversell_on_sqlite(tmp_path, sqlite_template):
    """SQLite with BEGIN IMMEDIATE: 60 orders from 8 threads for 10 units, exactly 10 succeed."""
    import shutil

    path = tmp_path / "race.sqlite"
    shutil.copy(sqlite_template, path)
    ok, sold_out, other = _race_for_stock(f"sqlite:///{path}", attempts=60, threads=8)
    assert other == []
    assert (ok, sold_out) == (10, 50)


def _cutoff_in_process(url: str, region_id: int, start_at: float, queue) -> None:
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    time.sleep(max(0.0, start_at - time.time()))
    try:
        with session_scope(sessions) as s:
            wave, summary = cut_off_wave(
                s,
                region=s.get(Region, region_id),
                delivery_date=DELIVERY,
                now=datetime.now(UTC),
                actor=f"pid-{multiprocessing.current_process().pid}",
            )
        queue.put(("ok", wave.id, summary.already_cut_off, summary.orders_locked))
    except BaseException as err:  # noqa: BLE001 - sent back to the test
        queue.put(("error", repr(err), None, None))
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_two_processes_cutting_off_at_once_give_one_wave(pg_url):
    """Two OS processes start the same cutoff at the same instant: one does it, the other sees it done."""
    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    with session_scope(sessions) as s:
        world = make_world(s, leaders=3)
        for n in range(30):
            place_order(
                s,
                region=world.region,
                leader_code=f"L{n % 3 + 1}",
                member=MemberRef(f"M{n}"),
                lines=[LineRequest("APPLE", 1), LineRequest("MILK", 2)],
                placed_at=world.before_cutoff(n + 1),
            )
        region_id = world.region.id
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    start_at = time.time() + 3.0  # both processes are up and connected well before this
    procs = [
        ctx.Process(target=_cutoff_in_process, args=(pg_url, region_id, start_at, queue))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert all(r[0] == "ok" for r in results), results
    assert {r[1] for r in results} == {results[0][1]}
    assert sorted(r[2] for r in results) == [False, True]
    assert {r[3] for r in results} == {30}
    with session_scope(sessions) as s:
        assert s.scalar(select(func.count()).select_from(Wave)) == 1
        assert s.scalar(select(func.count()).select_from(CutoffRun)) == 1
        assert (
            s.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "wave.cut_off")
            )
            == 1
        )
        assert (
            s.scalar(
                select(func.count()).select_from(Order).where(Order.status == OrderStatus.PLACED)
            )
            == 30
        )
    engine.dispose()


@pytest.mark.postgres
def test_orders_arriving_during_the_cutoff_are_never_lost(pg_url, monkeypatch):
    """Orders stamped before the deadline keep arriving while the cutoff runs: each lands in exactly
    one wave — locked in the cut-off wave, or late in the next — and none is left behind. The
    cutoff goes through while orders keep coming (a FOR UPDATE behind a stream of FOR SHARE row
    locks once waited until the ordering stopped, and every order landed in the cut-off wave)."""
    engine = make_engine(pg_url, pool_size=10, max_overflow=0)
    sessions = make_session_factory(engine)
    with session_scope(sessions) as s:
        world = make_world(s, leaders=3)
        region_id, stamped, after = world.region.id, world.before_cutoff(1), world.after_cutoff()
    placed: list[int] = []
    stop = threading.Event()
    # how many orders had been placed when the cutoff held the wave's lock (not when it was
    # called: a loaded machine lets the workers place several more before it gets there)
    import fulfilment.waves.cutoff as cutoff_module

    lock_wave = cutoff_module.ensure_wave
    placed_at_lock: list[int] = []

    def ensure_wave_and_count(*args, **kwargs):
        wave = lock_wave(*args, **kwargs)
        placed_at_lock.append(len(placed))
        return wave

    monkeypatch.setattr(cutoff_module, "ensure_wave", ensure_wave_and_count)

    give_up = time.monotonic() + 120  # a starved cutoff must fail the test, not hang it

    def keep_ordering(worker: int) -> None:
        n = 0
        while not stop.is_set() and time.monotonic() < give_up:
            with session_scope(sessions) as s:
                o = place_order(
                    s,
                    region=s.get(Region, region_id),
                    leader_code=f"L{worker % 3 + 1}",
                    member=MemberRef(f"W{worker}-{n}"),
                    lines=[LineRequest("MILK", 1)],
                    placed_at=stamped,
                )
                placed.append(o.id)
            if cut_done.is_set():
                after_cut.append(o.id)
            n += 1

    def wait_for(condition) -> None:  # by what has happened, not by the clock (a busy CI)
        deadline = time.monotonic() + 60
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.02)

    cut_done = threading.Event()
    after_cut: list[int] = []
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(keep_ordering, w) for w in range(4)]
        wait_for(lambda: len(placed) >= 8)  # orders before the cutoff...
        with session_scope(sessions) as s:
            wave, summary = cut_off_wave(
                s, region=s.get(Region, region_id), delivery_date=DELIVERY, now=after
            )
        cut_done.set()
        wait_for(lambda: len(after_cut) >= 8)  # ...and orders placed once it has committed
        ordering_went_on = len(after_cut) >= 8 and not any(f.done() for f in futures)
        stop.set()
        for f in futures:
            f.result()
    assert ordering_went_on, "the cutoff waited until the orders stopped coming"
    with session_scope(sessions) as s:
        rows = s.execute(select(Order.id, Order.wave_id, Order.status, Order.late)).all()
        assert sorted(r.id for r in rows) == sorted(placed)
        in_wave = [r for r in rows if r.wave_id == wave.id]
        later = [r for r in rows if r.wave_id != wave.id]
        assert len(in_wave) == summary.orders_locked > 0
        # The cutoff queues behind the orders in flight when it asks for the lock, not behind
        # every order to come: the wave holds exactly the orders placed by the time it has the
        # lock (an order is counted before its commit, and each of them had to commit first).
        assert len(in_wave) == placed_at_lock[0]
        assert all(r.status == OrderStatus.PLACED and not r.late for r in in_wave)
        assert later and all(r.status == OrderStatus.PLACED and r.late for r in later)
        assert wave.status.value == "cut_off" and all(s.get(Order, r.id).is_locked for r in in_wave)
        next_wave = s.scalars(select(Wave).where(Wave.id != wave.id)).one()
        assert next_wave.delivery_date == DELIVERY + timedelta(days=1)
    engine.dispose()


@pytest.mark.postgres
def test_same_idempotency_key_racing_gives_one_order(pg_url):
    """Twenty retries of one request arrive at once: one order, stock taken once, all get its id."""
    engine = make_engine(pg_url, pool_size=20, max_overflow=0)
    sessions = make_session_factory(engine)
    with session_scope(sessions) as s:
        world = make_world(s, stock_cap=100)
        region_id, at = world.region.id, world.before_cutoff()
    start = threading.Barrier(20)

    def attempt(_n: int) -> int:
        start.wait()
        with session_scope(sessions) as s:
            order = place_order(
                s,
                region=s.get(Region, region_id),
                leader_code="L1",
                member=MemberRef("M1"),
                lines=[LineRequest("APPLE", 3)],
                placed_at=at,
                idempotency_key="retry-1",
            )
            return order.id

    with ThreadPoolExecutor(max_workers=20) as pool:
        ids = list(pool.map(attempt, range(20)))
    with session_scope(sessions) as s:
        assert s.scalar(select(func.count()).select_from(Order)) == 1
        assert set(ids) == {s.scalars(select(Order.id)).one()}
        assert (
            s.scalar(
                select(Deal.sold_qty).where(Deal.product_id == 1, Deal.delivery_date == DELIVERY)
            )
            == 3
        )
    engine.dispose()


@pytest.mark.postgres
def test_a_named_lock_is_the_schemas_own(pg_url):
    """`advisory_xact_lock`: a second transaction of the schema cannot take a name held; the
    same name in another schema of the database (another copy of the service) is another lock,
    and the holder's commit releases it."""
    from sqlalchemy.engine import make_url

    from fulfilment.core.db import advisory_xact_lock

    ours = make_engine(pg_url)
    other_url = make_url(pg_url).difference_update_query(["options"])  # the public schema
    theirs = make_engine(other_url.render_as_string(hide_password=False))
    sessions, other_sessions = make_session_factory(ours), make_session_factory(theirs)
    try:
        with sessions() as holder, sessions() as second, other_sessions() as elsewhere:
            assert advisory_xact_lock(holder, "pipeline:1:2026-03-10")
            assert not advisory_xact_lock(second, "pipeline:1:2026-03-10", wait=False)
            assert advisory_xact_lock(elsewhere, "pipeline:1:2026-03-10", wait=False)
            assert not advisory_xact_lock(second, "pipeline:1:2026-03-10", shared=True, wait=False)
            holder.commit()
            assert advisory_xact_lock(second, "pipeline:1:2026-03-10", wait=False)
    finally:
        ours.dispose()
        theirs.dispose()
