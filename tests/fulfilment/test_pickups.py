"""Pickup verification on PostgreSQL for real: one code verified 50 times at once is handed over
exactly once; the others are told it was already collected."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
from portal_factories import add_next_wave_order, make_portal_world
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


def test_a_code_two_live_orders_share_asks_which_and_hands_over_none(session):
    """Two live orders at one point carrying the same code (different waves, both delivered):
    the lookup lists both, by masked member and bag number, instead of handing over the first;
    verifying without a choice changes nothing; with the leader's choice it hands over exactly
    that order."""
    from datetime import timedelta

    from factories import DELIVERY

    from fulfilment.points.pickups import CodeAmbiguous, lookup_code

    world = make_portal_world(session)
    code = world.orders["M2"].pickup_code
    other_id = add_next_wave_order(session, world, code=code)
    leader = session.scalar(select(Leader).where(Leader.code == "L1"))
    user = session.scalar(select(User).where(User.username == "staff1"))
    today = DELIVERY + timedelta(days=1)
    with pytest.raises(CodeAmbiguous) as asked:
        lookup_code(session, leader=leader, code=code, today=today)
    listed = asked.value.candidates
    assert sorted(c.order_id for c in listed) == sorted([world.orders["M2"].id, other_id])
    assert {c.member for c in listed} == {"李*", "钱*"}
    assert all(c.bag_no >= 1 for c in listed)
    with pytest.raises(CodeAmbiguous):
        verify_pickup(
            session, leader=leader, code=code, user_id=user.id, actor=user.actor, today=today
        )
    assert session.scalar(select(func.count()).select_from(Pickup)) == 0
    [done] = verify_pickup(
        session,
        leader=leader,
        code=code,
        order_id=other_id,
        user_id=user.id,
        actor=user.actor,
        today=today,
    )
    assert done.order_id == other_id
    found, _ = lookup_code(session, leader=leader, code=code, today=today)
    assert [c.order_id for c in found] == [world.orders["M2"].id]  # one live order left


def test_a_choice_must_be_an_order_the_code_names(session):
    """The chosen order must carry the typed code at this point: another order id with the code
    reads as a wrong code, and nothing is handed over."""
    world = make_portal_world(session)
    leader = session.scalar(select(Leader).where(Leader.code == "L1"))
    user = session.scalar(select(User).where(User.username == "staff1"))
    with pytest.raises(PickupRefused) as refused:
        verify_pickup(
            session,
            leader=leader,
            code=world.orders["M2"].pickup_code,
            order_id=world.orders["M3"].id,
            user_id=user.id,
            actor=user.actor,
            today=TODAY,
        )
    assert refused.value.reason == Refusal.WRONG_CODE
    assert session.scalar(select(func.count()).select_from(Pickup)) == 0


def test_a_code_of_another_point_reads_exactly_as_a_wrong_code(session):
    """A placed order's code typed at another point of the region is refused as WRONG_CODE, the
    same refusal as a code nobody has: the lookup is no oracle over the region's codes."""
    world = make_portal_world(session)
    leader = session.scalar(select(Leader).where(Leader.code == "L1"))
    theirs = world.orders["M9"].pickup_code  # L2's order
    assert theirs not in {o.pickup_code for k, o in world.orders.items() if k != "M9"}
    from fulfilment.points.pickups import lookup_code

    with pytest.raises(PickupRefused) as refused:
        lookup_code(session, leader=leader, code=theirs, today=TODAY)
    assert refused.value.reason == Refusal.WRONG_CODE


def test_the_phone_reveal_follows_the_members_live_orders_not_their_first_point(session):
    """A member who moved to another point (an order at L2 now) can be called by L2, and once
    nothing of theirs waits at L1 any more (all collected), L1 no longer sees their phone."""
    from factories import DELIVERY

    from fulfilment.core.errors import NotFound
    from fulfilment.core.models import Region
    from fulfilment.orders.intake import LineRequest, MemberRef, place_order
    from fulfilment.points.pickups import reveal_phone

    world = make_portal_world(session)
    l1 = session.scalar(select(Leader).where(Leader.code == "L1"))
    l2 = session.scalar(select(Leader).where(Leader.code == "L2"))
    user = session.scalar(select(User).where(User.username == "staff1"))
    m1 = world.orders["M1"].member_id
    place_order(
        session,
        region=session.get(Region, world.world.region.id),
        leader_code="L2",
        member=MemberRef("M1", "张小明", "13812345678"),
        lines=[LineRequest("APPLE", 1)],
        placed_at=world.world.after_cutoff(5),
    )
    assert reveal_phone(session, leader=l2, member_id=m1, actor="user:leader2") == "13812345678"
    assert reveal_phone(session, leader=l1, member_id=m1, actor="user:leader1") == "13812345678"
    verify_pickup(
        session,
        leader=l1,
        code=world.orders["M1"].pickup_code,
        whole_member=True,
        user_id=user.id,
        actor=user.actor,
        today=DELIVERY,
    )
    with pytest.raises(NotFound):
        reveal_phone(session, leader=l1, member_id=m1, actor="user:leader1")
