"""Handovers: each crate scanned once per step, clear refusals, routes loaded only when complete."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from crate_factories import NOW, crate_wave, publish
from sqlalchemy import func, select

from fulfilment.accounts.models import User
from fulfilment.accounts.services import create_user
from fulfilment.core.db import make_engine, make_session_factory, session_scope
from fulfilment.core.errors import InvalidInput
from fulfilment.core.models import AuditEntry, GridStation, Leader, Product, Wave
from fulfilment.handovers.models import Handover, RouteLoaded, Step
from fulfilment.handovers.scans import (
    Refusal,
    RouteNotLoaded,
    ScanRefused,
    list_loading_routes,
    loading_states,
    mark_route_loaded,
    record_missing,
    scan_delivered,
    scan_loaded,
    scan_received,
    units_not_delivered,
)
from fulfilment.night.crate_routes import crates_of_wave
from fulfilment.waves.crates import qr_payload

PASSWORD = "correct horse battery"


def _world(sessions):
    """A published wave, a warehouse account and the leader L1's account; ids."""
    with session_scope(sessions) as s:
        world, wave = crate_wave(s)
        for name, role, leader, region in [
            ("wh", "warehouse", None, "SH"),
            ("wh2", "warehouse", None, "SH"),
            ("leader1", "leader", "L1", None),
        ]:
            create_user(
                s,
                username=name,
                password=PASSWORD,
                role=role,
                leader_code=leader,
                region_code=region,
            )
        wave_id = wave.id
    publish(sessions, wave_id)
    return wave_id


def _user(session, name) -> User:
    return session.scalars(select(User).where(User.username == name)).one()


def _trucks(session, wave_id):
    return list_loading_routes(session, wave=session.get(Wave, wave_id))


def test_a_crate_scanned_twice_is_refused_with_when_and_by_whom(sessions):
    """The first scan records the handover (audited); the second, by anyone, records nothing
    and says when and by whom it was loaded."""
    wave_id = _world(sessions)
    with session_scope(sessions) as s:
        route = _trucks(s, wave_id)[0][0]
        first = loading_states(s, route_id=route.id)[0][0]
        done = scan_loaded(s, route_id=route.id, scanned=first.code, user=_user(s, "wh"), now=NOW)
        assert done.crate.id == first.id and done.handover.method == "code"
        with pytest.raises(ScanRefused) as refused:
            scan_loaded(
                s,
                route_id=route.id,
                scanned=qr_payload(first.id),
                user=_user(s, "wh2"),
                now=NOW + timedelta(minutes=2),
            )
        assert refused.value.refusal == Refusal.ALREADY
        assert (refused.value.at, refused.value.by) == (NOW, "wh")
        assert s.scalar(select(func.count()).select_from(Handover)) == 1
        audit = s.scalars(select(AuditEntry).where(AuditEntry.action == "crate.loaded")).one()
        assert (audit.actor, audit.entity_id) == ("user:wh", first.id)


def test_crates_of_another_route_point_station_or_wave_are_refused(sessions):
    """A crate is refused where it does not belong, naming where it does; nothing is recorded."""
    wave_id = _world(sessions)
    with session_scope(sessions) as s:
        wh, leader1 = _user(s, "wh"), _user(s, "leader1")
        wave = s.get(Wave, wave_id)
        crates = crates_of_wave(s, wave_id, contents=False)
        l2 = next(c for c in crates if c.leader_code == "L2")
        l1 = s.scalars(select(Leader).where(Leader.code == "L1")).one()
        with pytest.raises(ScanRefused) as refused:
            scan_delivered(s, wave=wave, leader=l1, scanned=l2.code, user=leader1, now=NOW)
        assert refused.value.refusal == Refusal.OTHER_POINT
        assert refused.value.belongs == "Point 2"
        trucks = _trucks(s, wave_id)
        if len(trucks) > 1:  # another truck's crate
            other = loading_states(s, route_id=trucks[1][0].id)[0][0]
            with pytest.raises(ScanRefused) as refused:
                scan_loaded(s, route_id=trucks[0][0].id, scanned=other.code, user=wh, now=NOW)
            assert refused.value.refusal == Refusal.OTHER_ROUTE
        station = s.get(GridStation, l2.station_id)
        other_station = GridStation(
            region_id=station.region_id,
            warehouse_id=station.warehouse_id,
            code="GS9",
            name="Station 9",
            lat=31.3,
            lon=121.5,
        )
        s.add(other_station)
        s.flush()
        with pytest.raises(ScanRefused) as refused:
            scan_received(s, wave=wave, station=other_station, scanned=l2.code, user=wh, now=NOW)
        assert (refused.value.refusal, refused.value.belongs) == (
            Refusal.OTHER_STATION,
            "Station 1",
        )
        with pytest.raises(ScanRefused) as refused:
            scan_loaded(s, route_id=trucks[0][0].id, scanned="SH-0101-X-A-1/1", user=wh, now=NOW)
        assert refused.value.refusal == Refusal.UNKNOWN
        assert s.scalar(select(func.count()).select_from(Handover)) == 0


def test_a_crate_received_and_delivered_records_its_station_then_its_point(sessions):
    """Receiving records the station (and no point), delivering the point (and no station),
    each once, by whom and how the crate was named."""
    wave_id = _world(sessions)
    with session_scope(sessions) as s:
        wh, leader1 = _user(s, "wh"), _user(s, "leader1")
        wave = s.get(Wave, wave_id)
        crate = next(c for c in crates_of_wave(s, wave_id, contents=False) if c.leader_code == "L1")
        station = s.get(GridStation, crate.station_id)
        l1 = s.scalars(select(Leader).where(Leader.code == "L1")).one()
        received = scan_received(
            s, wave=wave, station=station, scanned=crate.code, user=wh, now=NOW
        ).handover
        delivered = scan_delivered(
            s, wave=wave, leader=l1, scanned=qr_payload(crate.id), user=leader1, now=NOW
        ).handover
        assert (received.step, received.station_id, received.leader_id) == (
            Step.RECEIVED,
            station.id,
            None,
        )
        assert (delivered.step, delivered.station_id, delivered.leader_id) == (
            Step.DELIVERED,
            None,
            l1.id,
        )
        assert (received.method, delivered.method) == ("code", "qr")
        stored = s.scalars(select(Handover).where(Handover.crate_id == crate.id)).all()
        assert {(h.step, h.station_id, h.leader_id, h.user_id) for h in stored} == {
            (Step.RECEIVED, station.id, None, wh.id),
            (Step.DELIVERED, None, l1.id, leader1.id),
        }


def test_a_crate_of_another_wave_is_refused(sessions):
    """The next day's crate scanned into today's wave is another wave's, said with its date."""
    wave_id = _world(sessions)
    with session_scope(sessions) as s:
        from factories import DELIVERY

        from fulfilment.orders.intake import LineRequest, MemberRef, place_order
        from fulfilment.waves.cutoff import cut_off_wave

        region = s.get(Wave, wave_id).region
        place_order(
            s,
            region=region,
            leader_code="L1",
            member=MemberRef("late"),
            lines=[LineRequest("APPLE", 1)],
            placed_at=NOW + timedelta(hours=5),
        )
        tomorrow, _ = cut_off_wave(
            s,
            region=region,
            delivery_date=DELIVERY + timedelta(days=1),
            now=NOW + timedelta(days=2),
        )
        later = crates_of_wave(s, tomorrow.id, contents=False)[0]
        l1 = s.scalars(select(Leader).where(Leader.code == "L1")).one()
        with pytest.raises(ScanRefused) as refused:
            scan_delivered(
                s,
                wave=s.get(Wave, wave_id),
                leader=l1,
                scanned=qr_payload(later.id),
                user=_user(s, "leader1"),
                now=NOW,
            )
        assert refused.value.refusal == Refusal.OTHER_WAVE
        assert refused.value.belongs == (DELIVERY + timedelta(days=1)).isoformat()


def test_a_route_is_not_loaded_while_a_crate_is_missing(sessions):
    """Marking a truck loaded with a crate neither scanned nor recorded missing is refused,
    naming it; once it is recorded missing with a reason, the route is marked loaded, once."""
    wave_id = _world(sessions)
    with session_scope(sessions) as s:
        wh = _user(s, "wh")
        route = _trucks(s, wave_id)[0][0]
        states = loading_states(s, route_id=route.id)
        assert len(states) >= 2
        crates = [c for c, _ in states]
        absent = crates[-1]
        for crate in crates[:-1]:
            scan_loaded(s, route_id=route.id, scanned=crate.code, user=wh, now=NOW)
        with pytest.raises(RouteNotLoaded) as refused:
            mark_route_loaded(s, route_id=route.id, user=wh, now=NOW)
        assert refused.value.missing == [absent.code]
        assert s.scalar(select(func.count()).select_from(RouteLoaded)) == 0
        with pytest.raises(InvalidInput):
            record_missing(s, route_id=route.id, crate_id=absent.id, reason="  ", user=wh, now=NOW)
        record_missing(
            s, route_id=route.id, crate_id=absent.id, reason="破损，留在仓库", user=wh, now=NOW
        )
        mark, created = mark_route_loaded(s, route_id=route.id, user=wh, now=NOW)
        assert created and (mark.scanned, mark.missing) == (len(states) - 1, 1)
        again, created = mark_route_loaded(s, route_id=route.id, user=wh, now=NOW)
        assert again.id == mark.id and not created
        with pytest.raises(ScanRefused) as late:
            scan_loaded(s, route_id=route.id, scanned=absent.code, user=wh, now=NOW)
        assert late.value.refusal == Refusal.ROUTE_LOADED


def test_load_scans_follow_the_load_order_page(sessions):
    """The loading page's crates come in load order, and each scan marks its row done."""
    wave_id = _world(sessions)
    with session_scope(sessions) as s:
        route = _trucks(s, wave_id)[0][0]
        states = loading_states(s, route_id=route.id)
        assert [c.trunk_load_seq for c, _ in states] == list(range(1, len(states) + 1))
        scan_loaded(s, route_id=route.id, scanned=states[0][0].code, user=_user(s, "wh"), now=NOW)
        after = loading_states(s, route_id=route.id)
        assert isinstance(after[0][1], Handover) and all(st is None for _, st in after[1:])


def test_crates_not_scanned_at_the_point_make_their_units_short(sessions):
    """Before any scan nothing is short (a point that does not scan counts as before); after
    one crate is scanned, the units in the others are what the count starts short by."""
    wave_id = _world(sessions)
    with session_scope(sessions) as s:
        wave = s.get(Wave, wave_id)
        l1 = s.scalars(select(Leader).where(Leader.code == "L1")).one()
        assert units_not_delivered(s, wave=wave, leader=l1) == {}
        crates = crates_of_wave(s, wave_id, leader=l1.id)
        scanned = crates[0]
        scan_delivered(
            s, wave=wave, leader=l1, scanned=scanned.code, user=_user(s, "leader1"), now=NOW
        )
        short: dict[str, int] = {}
        for crate in crates[1:]:
            for bag in crate.contents:
                for line in bag.lines:
                    short[line.sku] = short.get(line.sku, 0) + line.quantity
        left = units_not_delivered(s, wave=wave, leader=l1)
        assert {s.get(Product, pid).sku: n for pid, n in left.items()} == short


@pytest.mark.postgres
def test_twenty_concurrent_scans_of_one_crate_record_one_handover(pg_url):
    """20 scans of the same crate at once on PostgreSQL: one handover, 19 told it was done."""
    engine = make_engine(pg_url, pool_size=20, max_overflow=0)
    sessions = make_session_factory(engine)
    wave_id = _world(sessions)
    with session_scope(sessions) as s:
        route = _trucks(s, wave_id)[0][0]
        crate = loading_states(s, route_id=route.id)[0][0]
        route_id, code = route.id, crate.code

    def scan(i: int) -> str:
        try:
            with session_scope(sessions) as s:
                scan_loaded(
                    s,
                    route_id=route_id,
                    scanned=code,
                    user=_user(s, "wh"),
                    now=NOW + timedelta(seconds=i),
                )
            return "recorded"
        except ScanRefused as refused:
            return refused.refusal.value

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(scan, range(20)))
    assert sorted(outcomes) == ["already"] * 19 + ["recorded"]
    with session_scope(sessions) as s:
        assert s.scalar(select(func.count()).select_from(Handover)) == 1
        assert (
            s.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "crate.loaded")
            )
            == 1
        )
        assert s.scalars(select(Handover)).one().step == Step.LOADED
    engine.dispose()
