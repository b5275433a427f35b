"""The commission's exactly-once on PostgreSQL for real: racing pickups accrue a line once,
settlement runs at once settle once, exports at once put each entry on one statement, payments
at once pay once."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pytest
from commission_factories import COLLECTED, WINDOW_DAYS, make_commission_world
from sqlalchemy import func, select

from fulfilment.accounts.models import User
from fulfilment.commission.ledger import settle_region
from fulfilment.commission.models import (
    CommissionEntry,
    EntryKind,
    SettlementRun,
    Statement,
    StatementItem,
)
from fulfilment.commission.statements import AlreadyPaid, export_statements, pay_statement
from fulfilment.core.db import make_engine, make_session_factory, session_scope
from fulfilment.core.models import Leader, Region
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
