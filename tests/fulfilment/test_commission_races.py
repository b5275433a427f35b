"""The commission's exactly-once on PostgreSQL for real: racing pickups accrue a line once,
settlement runs at once settle once, exports at once put each entry on one statement, payments
at once pay once."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pytest
from commission_factories import COLLECTED, MILK_BPS, WINDOW_DAYS, make_commission_world
from sqlalchemy import func, select, text

from fulfilment.accounts.models import User
from fulfilment.commission.ledger import settle_region
from fulfilment.commission.models import (
    CommissionEntry,
    CommissionRate,
    EntryKind,
    SettlementRun,
    Statement,
    StatementItem,
)
from fulfilment.commission.rates import set_rate
from fulfilment.commission.statements import AlreadyPaid, export_statements, pay_statement
from fulfilment.core.db import make_engine, make_session_factory, session_scope
from fulfilment.core.errors import InvalidInput
from fulfilment.core.models import AuditEntry, Leader, Region, utcnow
from fulfilment.orders.refunds import owe_after_sales_refund
from fulfilment.points.pickups import PickupRefused, verify_pickup

pytestmark = pytest.mark.postgres
AFTER_WINDOW = COLLECTED + timedelta(days=WINDOW_DAYS, minutes=1)
THREADS = 8


def _race(sessions, work, n=THREADS):
    """Run `work(session)` n times at once, each in its own transaction; the outcomes."""
    start = threading.Barrier(n)

    def attempt(_):
        start.wait()
        try:
            with session_scope(sessions) as s:
                return work(s)
        except (AlreadyPaid, PickupRefused) as err:
            return type(err).__name__

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(attempt, range(n)))


@pytest.fixture
def pg_sessions(pg_url):
    engine = make_engine(pg_url, pool_size=THREADS + 2, max_overflow=0)
    yield make_session_factory(engine)
    engine.dispose()


def _count(sessions, query):
    with session_scope(sessions) as s:
        return s.scalar(query)


def _region_id(s):
    return s.scalar(select(Region.id).where(Region.code == "SH"))


def test_racing_pickups_of_one_code_accrue_each_line_once(pg_sessions):
    """Eight verifications of M3's code at once: one hands the order over; its two lines
    (APPLE, PRAWN) accrue once each."""
    with session_scope(pg_sessions) as s:
        world = make_commission_world(s, collect_orders=())
    code = world.portal.orders["M3"].pickup_code

    def verify(s):
        leader = s.scalar(select(Leader).where(Leader.code == "L1"))
        staff = s.scalar(select(User).where(User.username == "staff1"))
        verify_pickup(
            s,
            leader=leader,
            code=code,
            user_id=staff.id,
            actor=staff.actor,
            today=date(2026, 3, 10),
            now=COLLECTED,
        )
        return "ok"

    results = _race(pg_sessions, verify)
    assert sorted(results) == ["PickupRefused"] * (THREADS - 1) + ["ok"]
    accrued = select(CommissionEntry.order_line_id, CommissionEntry.amount_cents).where(
        CommissionEntry.kind == EntryKind.ACCRUED
    )
    with session_scope(pg_sessions) as s:
        assert sorted(s.execute(accrued).all()) == sorted(
            [(world.line("M3 APPLE"), 59), (world.line("M3 PRAWN"), 25)]
        )


def test_two_settlement_runs_at_once_settle_once(pg_sessions):
    """Eight settlements of the same region and day at once: one runs, seven are told it was
    done; each of the four lines has one settled entry. Then runs for four other days at once
    (the night's and an operator's) settle nothing more."""
    with session_scope(pg_sessions) as s:
        make_commission_world(s)
        rid = _region_id(s)

    def settle(day):
        return lambda s: settle_region(s, region_id=rid, day=day, now=AFTER_WINDOW, actor="t").state

    same = _race(pg_sessions, settle(date(2026, 3, 18)))
    assert sorted(same) == ["already_settled"] * (THREADS - 1) + ["settled"]
    days = iter(date(2026, 3, 19) + timedelta(days=n % 4) for n in range(THREADS))
    lock = threading.Lock()

    def another_day(s):
        with lock:
            day = next(days)
        return settle(day)(s)

    _race(pg_sessions, another_day)
    per_line = (
        select(CommissionEntry.order_line_id, func.count(), func.sum(CommissionEntry.amount_cents))
        .where(CommissionEntry.kind == EntryKind.SETTLED)
        .group_by(CommissionEntry.order_line_id)
    )
    with session_scope(pg_sessions) as s:
        rows = s.execute(per_line).all()
        assert len(rows) == 4 and all(n == 1 for _, n, _ in rows)
        assert sum(c for _, _, c in rows) == 243
        assert s.scalar(select(func.count()).select_from(SettlementRun)) == 5


def test_exports_at_once_put_each_entry_on_one_statement_paid_once(pg_sessions):
    """Eight exports of the same period at once: one statement for L1 holding the four
    settled entries; the other exports made none. Eight payments at once: one pays."""
    with session_scope(pg_sessions) as s:
        make_commission_world(s)
        settle_region(
            s, region_id=_region_id(s), day=date(2026, 3, 18), now=AFTER_WINDOW, actor="t"
        )

    def export(s):
        made = export_statements(
            s, region_code="SH", date_from=date(2026, 3, 1), date_to=date(2026, 3, 31), actor="t"
        )
        return len(made)

    made = _race(pg_sessions, export)
    assert sorted(made) == [0] * (THREADS - 1) + [1]
    assert _count(pg_sessions, select(func.count()).select_from(Statement)) == 1
    assert _count(pg_sessions, select(func.count(func.distinct(StatementItem.entry_id)))) == 4
    assert _count(pg_sessions, select(func.count()).select_from(StatementItem)) == 4
    statement_id = _count(pg_sessions, select(Statement.id))
    paid = _race(
        pg_sessions, lambda s: pay_statement(s, statement_id=statement_id, actor="t") and "ok"
    )
    assert sorted(paid) == ["AlreadyPaid"] * (THREADS - 1) + ["ok"]


def _blocked(sessions, pid, until):
    """Wait until backend `pid` waits on a lock, or `until()` (it finished: nothing blocked it),
    at most 5 s."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not until():
        with session_scope(sessions) as s:
            if s.scalar(text("SELECT cardinality(pg_blocking_pids(:pid)) > 0"), {"pid": pid}):
                return
        time.sleep(0.02)


def _first_holds_then_second(sessions, work, first):
    """Run `work[first]` in a transaction left open, then the other in a thread; commit the
    first once the second waits on one of its locks (or has finished: nothing blocked it)."""
    (second,) = [name for name in work if name != first]
    pids: dict[str, int] = {}
    done = threading.Event()

    def run_second():
        with session_scope(sessions) as s:
            pids[second] = s.scalar(text("SELECT pg_backend_pid()"))
            work[second](s)
        done.set()

    with session_scope(sessions) as s:
        work[first](s)
        with ThreadPoolExecutor(1) as pool:
            later = pool.submit(run_second)
            while second not in pids:
                time.sleep(0.01)
            _blocked(sessions, pids[second], until=done.is_set)
            s.commit()  # the first's transaction ends only now
            later.result(timeout=30)


def _line_ledger(sessions, line):
    with session_scope(sessions) as s:
        rows = s.execute(
            select(CommissionEntry.kind, func.sum(CommissionEntry.amount_cents))
            .where(CommissionEntry.order_line_id == line)
            .group_by(CommissionEntry.kind)
        ).all()
    return {kind.value: int(cents) for kind, cents in rows}


@pytest.mark.parametrize("first", ["refund", "settlement"])
def test_a_refund_and_the_settlement_of_its_line_at_once_never_pay_the_refunded_part(
    pg_sessions, first
):
    """An after-sales refund of one APPLE on M1's line (900 of 1800), recorded a minute before
    its window closes, while the night's settlement of the line runs: whichever goes first,
    the other waits for it, and the line's settled commission plus what was reversed is what
    it accrued (59), never more. Refund first: 30 reversed, 29 settled. Settlement first: 59
    settled; the refund, committed after it, takes nothing back."""
    with session_scope(pg_sessions) as s:
        world = make_commission_world(s)
        rid = _region_id(s)
    line = world.line("M1 APPLE")
    in_window = COLLECTED + timedelta(days=WINDOW_DAYS, minutes=-1)

    def refund(s):
        owe_after_sales_refund(s, order_line_id=line, amount_cents=900, actor="a", now=in_window)

    def settle(s):
        settle_region(s, region_id=rid, day=date(2026, 3, 17), now=AFTER_WINDOW, actor="night")

    _first_holds_then_second(pg_sessions, {"refund": refund, "settlement": settle}, first)
    ledger = _line_ledger(pg_sessions, line)
    assert ledger["accrued"] == 59
    assert ledger.get("settled", 0) + ledger.get("reversed", 0) == 59
    assert ledger == (
        {"accrued": 59, "reversed": 30, "settled": 29}
        if first == "refund"
        else {"accrued": 59, "settled": 59}
    )


def test_refunds_of_one_line_at_once_never_take_back_more_than_it_accrued(pg_sessions):
    """Eight after-sales refunds of 900 at once on M1's APPLE (1,800 left to refund): each
    waits for the line, so two are recorded, six are refused naming `amount_cents`; the two
    reversals take back 30 and 29, the 59 the line accrued, and nothing settles."""
    with session_scope(pg_sessions) as s:
        world = make_commission_world(s)
        rid = _region_id(s)
    line = world.line("M1 APPLE")
    in_window = COLLECTED + timedelta(days=1)

    def refund(s):
        try:
            owe_after_sales_refund(
                s, order_line_id=line, amount_cents=900, actor="a", now=in_window
            )
        except InvalidInput as err:
            return err.field
        return "ok"

    results = _race(pg_sessions, refund)
    assert sorted(results) == ["amount_cents"] * (THREADS - 2) + ["ok"] * 2
    with session_scope(pg_sessions) as s:
        settle_region(s, region_id=rid, day=date(2026, 3, 18), now=AFTER_WINDOW, actor="t")
        reversals = s.scalars(
            select(CommissionEntry.amount_cents)
            .where(
                CommissionEntry.order_line_id == line, CommissionEntry.kind == EntryKind.REVERSED
            )
            .order_by(CommissionEntry.id)
        ).all()
    assert reversals == [30, 29]
    assert _line_ledger(pg_sessions, line) == {"accrued": 59, "reversed": 59}


@pytest.mark.parametrize("sku", ["APPLE", "MILK"])
def test_two_admins_setting_one_rate_at_once_both_land_in_turn(pg_sessions, sku):
    """Two admins set the same product's rate at the same moment, a new override (APPLE) or
    one that exists (MILK): the second waits for the first and then changes its rate, so the
    rate ends as the second set it, and the audit says each change with the rate before it
    (never a refused insert, never a `before` the first had already changed)."""
    with session_scope(pg_sessions) as s:
        make_commission_world(s)
        was = s.scalar(
            select(func.max(AuditEntry.id)).where(AuditEntry.action == "commission.rate_set")
        )
    pids: dict[str, int] = {}
    done = threading.Event()

    def second():
        with session_scope(pg_sessions) as s:
            pids["second"] = s.scalar(text("SELECT pg_backend_pid()"))
            set_rate(s, region_code="SH", sku=sku, rate_bps=700, actor="user:second")
        done.set()

    with session_scope(pg_sessions) as s:
        set_rate(s, region_code="SH", sku=sku, rate_bps=500, actor="user:first")
        with ThreadPoolExecutor(1) as pool:
            later = pool.submit(second)
            while "second" not in pids and not later.done():
                time.sleep(0.01)
            if "second" in pids:
                _blocked(pg_sessions, pids["second"], until=done.is_set)
            s.commit()
            later.result(timeout=30)
    with session_scope(pg_sessions) as s:
        rates = s.execute(
            select(CommissionRate.rate_bps, CommissionRate.updated_by).where(
                CommissionRate.scope.like("product:%")
            )
        ).all()
        audited = s.execute(
            select(AuditEntry.actor, AuditEntry.before, AuditEntry.after)
            .where(AuditEntry.action == "commission.rate_set", AuditEntry.id > was)
            .order_by(AuditEntry.id)
        ).all()
    first_before = None if sku == "APPLE" else {"rate_bps": MILK_BPS}
    assert (700, "user:second") in rates and len(rates) == (2 if sku == "APPLE" else 1)
    assert [(a, b, e["rate_bps"]) for a, b, e in audited] == [
        ("user:first", first_before, 500),
        ("user:second", {"rate_bps": 500}, 700),
    ]


@pytest.mark.parametrize("first", ["refund", "pickup"])
def test_a_refund_and_the_pickup_of_its_line_at_once_never_earn_on_the_refunded_part(
    pg_sessions, first
):
    """An after-sales refund of one APPLE (900 of M1's 1,800) recorded while M1 collects, each
    on the clock: whichever goes first, the other waits for the point, so the refund is either
    out of the pickup's base (refund first: 29 accrued on 900) or reverses it (pickup first:
    59 accrued, 30 reversed); either way the line settles 29, the commission on what M1 kept."""
    with session_scope(pg_sessions) as s:
        world = make_commission_world(s, collect_orders=("M3",))
        rid = _region_id(s)
    line = world.line("M1 APPLE")

    def refund(s):
        owe_after_sales_refund(s, order_line_id=line, amount_cents=900, actor="a")

    def pickup(s):
        leader = s.scalar(select(Leader).where(Leader.code == "L1"))
        staff = s.scalar(select(User).where(User.username == "staff1"))
        code = world.portal.orders["M1"].pickup_code
        verify_pickup(
            s,
            leader=leader,
            code=code,
            user_id=staff.id,
            actor=staff.actor,
            today=date(2026, 3, 10),
            after_sales_days=WINDOW_DAYS,
        )

    _first_holds_then_second(pg_sessions, {"refund": refund, "pickup": pickup}, first)
    with session_scope(pg_sessions) as s:
        settle_region(
            s, region_id=rid, day=date(2026, 3, 18), now=utcnow() + timedelta(days=8), actor="t"
        )
    ledger = _line_ledger(pg_sessions, line)
    assert ledger == (
        {"accrued": 29, "settled": 29}
        if first == "refund"
        else {"accrued": 59, "reversed": 30, "settled": 29}
    )
