"""Pickup verification on PostgreSQL for real: one code verified 50 times at once is handed over
exactly once; the others are told it was already collected."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
from portal_factories import make_portal_world
from sqlalchemy import func, select

from fulfilment.accounts.models import User
from fulfilment.core.db import make_engine, make_session_factory, session_scope
from fulfilment.core.models import AuditEntry, Leader
from fulfilment.points.pickups import Pickup, PickupLine, PickupRefused, Refusal, verify_pickup

TODAY = date(2026, 3, 10)


@pytest.mark.postgres
def test_fifty_concurrent_verifications_of_one_code_hand_over_once(pg_url):
    """50 verifications of one code from separate connections (a pool of 20): exactly one
    succeeds; 49 raise PickupRefused(ALREADY_COLLECTED); one pickup row, one audit entry."""
    engine = make_engine(pg_url, pool_size=20, max_overflow=0)
    sessions = make_session_factory(engine)
    with session_scope(sessions) as s:
        world = make_portal_world(s)
    code = world.orders["M3"].pickup_code
    start = threading.Barrier(20)

    def attempt(n: int) -> str:
        if n < 20:
            start.wait()  # the first 20 leave together: they race inside the database
        try:
            with session_scope(sessions) as s:
                leader = s.scalar(select(Leader).where(Leader.code == "L1"))
                user = s.scalar(select(User).where(User.username == "staff1"))
                verify_pickup(
                    s, leader=leader, code=code, user_id=user.id, actor=user.actor, today=TODAY
                )
            return "ok"
        except PickupRefused as err:
            return err.reason.value

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(attempt, range(50)))
    assert results.count("ok") == 1
    assert results.count(Refusal.ALREADY_COLLECTED.value) == 49
    with session_scope(sessions) as s:
        assert s.scalar(select(func.count()).select_from(Pickup)) == 1
        assert s.scalar(select(func.count()).select_from(PickupLine)) == 2  # APPLE and PRAWN
        collected = select(func.count()).where(AuditEntry.action == "order.collected")
        assert s.scalar(collected) == 1
    engine.dispose()
