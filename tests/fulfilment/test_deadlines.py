"""One truth for a wave's deadline: order intake, the cutoff and "what is due" compare against it."""

from datetime import UTC, date, datetime, time, timedelta

import pytest
from factories import DELIVERY, make_world
from sqlalchemy import select, text

from fulfilment.core.db import make_engine, make_session_factory, session_scope
from fulfilment.core.errors import CutoffNotReached
from fulfilment.core.models import AuditEntry, OrderStatus, Wave, WaveStatus
from fulfilment.orders.intake import LineRequest, MemberRef, place_order
from fulfilment.waves.cutoff import cut_off_wave
from fulfilment.waves.cycle import cutoff_for_delivery, ensure_wave
from fulfilment.waves.deadlines import (
    change_cutoff_time,
    latest_due_delivery_date,
    list_due_deliveries,
    refresh_cutoff_statistics,
)


def order(session, world, member, at, sku="APPLE"):
    return place_order(
        session,
        region=world.region,
        leader_code="L1",
        member=MemberRef(member),
        lines=[LineRequest(sku, 1)],
        placed_at=at,
    )


def test_orders_one_second_either_side_of_the_deadline_land_in_their_waves(session):
    """One second before the wave's deadline is that wave; one second after is the next one."""
    world = make_world(session)
    before = order(session, world, "a", world.cutoff - timedelta(seconds=1))
    after = order(session, world, "b", world.cutoff + timedelta(seconds=1))
    assert before.wave.delivery_date == DELIVERY
    assert after.wave.delivery_date == DELIVERY + timedelta(days=1)
    assert not before.late and not after.late


def test_moving_the_cutoff_earlier_moves_the_open_wave_and_sends_later_orders_on(session):
    """23:00 → 22:00: the open wave is due at 22:00 (audited); a 22:30 order goes to the next
    wave, and the wave can be cut off at 22:30."""
    world = make_world(session)
    eleven = world.cutoff  # 23:00 local, before the change
    wave = ensure_wave(session, world.region, DELIVERY)
    noon = eleven - timedelta(hours=11)
    moved = change_cutoff_time(session, region=world.region, cutoff_time=time(22, 0), now=noon)
    assert [w.id for w in moved] == [wave.id]
    assert wave.cutoff_due_at == eleven - timedelta(hours=1)
    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "wave.deadline_moved")
    ).one()
    assert entry.entity_id == wave.id
    assert entry.before == {"cutoff_due_at": eleven.isoformat()}
    half_past_ten = eleven - timedelta(minutes=30)
    late_order = order(session, world, "c", half_past_ten)
    assert late_order.wave.delivery_date == DELIVERY + timedelta(days=1)
    cut, _ = cut_off_wave(session, region=world.region, delivery_date=DELIVERY, now=half_past_ten)
    assert cut.status == WaveStatus.CUT_OFF


def test_moving_the_cutoff_later_keeps_orders_in_the_open_wave_until_the_new_deadline(session):
    """23:00 → 23:30: a 23:15 order stays in the open wave, which cannot be cut off before 23:30."""
    world = make_world(session)
    eleven = world.cutoff  # 23:00 local, before the change
    ensure_wave(session, world.region, DELIVERY)
    change_cutoff_time(
        session,
        region=world.region,
        cutoff_time=time(23, 30),
        now=eleven - timedelta(hours=5),
    )
    o = order(session, world, "d", eleven + timedelta(minutes=15))
    assert o.wave.delivery_date == DELIVERY
    with pytest.raises(CutoffNotReached):
        cut_off_wave(
            session,
            region=world.region,
            delivery_date=DELIVERY,
            now=eleven + timedelta(minutes=20),
        )


def test_a_wave_already_past_its_deadline_keeps_it(session):
    """An overdue open wave is not moved: it is due, and is cut off as it stands."""
    world = make_world(session)
    wave = ensure_wave(session, world.region, DELIVERY)
    eleven = world.cutoff
    moved = change_cutoff_time(
        session, region=world.region, cutoff_time=time(23, 30), now=eleven + timedelta(minutes=5)
    )
    assert moved == [] and wave.cutoff_due_at == eleven


def test_which_waves_are_due_follows_the_clock_passed_in(session):
    """Before the deadline the previous day is the latest due; from the deadline on, this one."""
    world = make_world(session)
    ensure_wave(session, world.region, DELIVERY)
    one_before = world.cutoff - timedelta(seconds=1)
    assert latest_due_delivery_date(session, region=world.region, now=one_before) == DELIVERY - (
        timedelta(days=1)
    )
    assert latest_due_delivery_date(session, region=world.region, now=world.cutoff) == DELIVERY
    assert list_due_deliveries(session, region=world.region, now=world.cutoff) == [DELIVERY]
    cut_off_wave(session, region=world.region, delivery_date=DELIVERY, now=world.cutoff)
    assert list_due_deliveries(session, region=world.region, now=world.after_cutoff(10)) == []


def test_an_overdue_open_wave_stays_due_until_cut_off(session):
    """A wave whose deadline passed days ago (scheduler down) is still listed as due."""
    world = make_world(session)
    ensure_wave(session, world.region, DELIVERY)
    two_days_later = world.cutoff + timedelta(days=2, minutes=1)
    due = list_due_deliveries(session, region=world.region, now=two_days_later)
    assert due == [DELIVERY, DELIVERY + timedelta(days=2)]


@pytest.mark.parametrize(
    "delivery, local_cutoff",
    [
        (date(2026, 3, 29), datetime(2026, 3, 28, 22, 0)),  # the eve of spring forward: CET
        (date(2026, 3, 30), datetime(2026, 3, 29, 22, 0)),  # the night after: CEST
        (date(2026, 10, 25), datetime(2026, 10, 24, 22, 0)),  # the eve of fall back: CEST
        (date(2026, 10, 26), datetime(2026, 10, 25, 22, 0)),  # the night after: CET
    ],
)
def test_berlin_cuts_off_at_22_local_across_both_dst_changes(session, delivery, local_cutoff):
    """Europe/Berlin at 22:00: the deadline is 22:00 on the wall clock either side of each DST
    change, and orders a second either side of it land in the right waves."""
    from zoneinfo import ZoneInfo

    world = make_world(session, tz="Europe/Berlin", days=1)
    world.region.cutoff_time = time(22, 0)
    due = cutoff_for_delivery(world.region, delivery)
    assert due == local_cutoff.replace(tzinfo=ZoneInfo("Europe/Berlin")).astimezone(UTC)
    wave = ensure_wave(session, world.region, delivery)
    assert wave.cutoff_due_at == due
    assert latest_due_delivery_date(session, region=world.region, now=due) == delivery
    assert latest_due_delivery_date(
        session, region=world.region, now=due - timedelta(seconds=1)
    ) == delivery - timedelta(days=1)


def test_every_order_and_line_the_cutoff_cancels_is_audited(session):
    """A failed group: one audit entry per cancelled line and per order left with no line."""
    world = make_world(session, min_group=3)
    at = world.before_cutoff()
    only_prawns = order(session, world, "m0", at, sku="PRAWN")
    mixed = place_order(
        session,
        region=world.region,
        leader_code="L1",
        member=MemberRef("m1"),
        lines=[LineRequest("PRAWN", 1), LineRequest("APPLE", 1)],
        placed_at=at,
    )
    for m in ("m2", "m3"):
        order(session, world, m, at, sku="APPLE")
    cut_off_wave(session, region=world.region, delivery_date=DELIVERY, now=world.after_cutoff())
    prawn_lines = {
        ln.id for o in (only_prawns, mixed) for ln in o.lines if ln.product.sku == "PRAWN"
    }
    audited_lines = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "order_line.cancelled")
    ).all()
    assert {e.entity_id for e in audited_lines} == prawn_lines
    assert all(e.after == {"status": "cancelled", "reason": "group_failed"} for e in audited_lines)
    audited_orders = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "order.cancelled_for_refund")
    ).all()
    assert [e.entity_id for e in audited_orders] == [only_prawns.id]
    assert audited_orders[0].at == world.after_cutoff()
    assert audited_orders[0].before == {"status": "placed"}
    session.expire_all()
    assert mixed.status == OrderStatus.PLACED


@pytest.mark.postgres
def test_statistics_are_refreshed_outside_the_cutoff_transaction(pg_url):
    """After a bulk day of orders the statistics are refreshed in their own transaction, and the
    cutoff's transaction holds no ANALYZE lock (which would serialise other regions' cutoffs)."""
    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    with session_scope(sessions) as s:
        world = make_world(s, leaders=3)
        for i in range(1200):
            order(s, world, f"bulk{i}", world.before_cutoff())
        region_id, after = world.region.id, world.after_cutoff()
    assert "orders" in refresh_cutoff_statistics(engine)
    with session_scope(sessions) as s:
        from fulfilment.core.models import Region

        cut_off_wave(s, region=s.get(Region, region_id), delivery_date=DELIVERY, now=after)
        held = s.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() "
                "AND mode = 'ShareUpdateExclusiveLock'"
            )
        ).scalar_one()
        assert held == 0
        assert (
            s.scalar(select(Wave.status).where(Wave.region_id == region_id)) == WaveStatus.CUT_OFF
        )
    engine.dispose()
