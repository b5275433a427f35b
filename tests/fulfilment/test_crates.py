"""Crates as records: packed once at cutoff, first-fit decreasing, and their load sequences."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest
from crate_factories import crate_wave, publish
from factories import DELIVERY, make_world
from sqlalchemy import delete, func, select

from fulfilment.core.db import make_engine, make_session_factory, session_scope
from fulfilment.core.models import AuditEntry, LineStatus, Order, OrderLine, TempZone, Wave
from fulfilment.night.crate_routes import crates_of_route, crates_of_wave
from fulfilment.night.loading import CrateLoad
from fulfilment.night.plans import (
    Echelon,
    PlanRoute,
    PlanStop,
)
from fulfilment.orders.intake import LineRequest, MemberRef, place_order
from fulfilment.waves.crates import (
    Crate,
    CrateItem,
    ensure_crates,
    first_fit_decreasing,
    normalise_code,
    read_scan,
)
from fulfilment.waves.cutoff import cut_off_wave


def test_first_fit_decreasing_fills_the_first_crate_with_room():
    """30, 25, 20, 15 and 10 L into 40 L crates: [30+10], [25+15], [20]."""
    lines = [(30_000, 1, 1, 1), (25_000, 2, 2, 1), (20_000, 3, 3, 1), (15_000, 4, 4, 1)]
    lines.append((10_000, 5, 5, 1))
    crates = first_fit_decreasing(lines, capacity_ml=40_000)
    assert [[line for _, line, _ in c.contents] for c in crates] == [[1, 5], [2, 4], [3]]
    assert [c.volume_ml for c in crates] == [40_000, 40_000, 20_000]
    assert not any(c.oversize for c in crates)


def test_a_unit_larger_than_a_crate_is_a_crate_of_its_own_marked_oversize():
    """Two 50 L units in 40 L crates are two oversize crates; a 1 L unit does not join them."""
    crates = first_fit_decreasing([(50_000, 1, 1, 2), (1_000, 2, 2, 3)], capacity_ml=40_000)
    assert [(c.oversize, c.volume_ml, c.contents) for c in crates] == [
        (True, 50_000, [(1, 1, 1)]),
        (True, 50_000, [(1, 1, 1)]),
        (False, 3_000, [(2, 2, 3)]),
    ]


def test_the_units_of_one_line_split_over_crates_only_when_full():
    """100 units of 1.5 L: 26 fit a 40 L crate, so 26 + 26 + 26 + 22."""
    crates = first_fit_decreasing([(1_500, 1, 1, 100)], capacity_ml=40_000)
    assert [c.contents[0][2] for c in crates] == [26, 26, 26, 22]


def test_codes_read_aloud_and_typed_back():
    """A code typed with full-width characters, spaces or lower case is the same code; the QR
    code's `GBC:<id>` is a crate id."""
    assert normalise_code(" sh-0310-l1-Ａ-1/2 ") == "SH-0310-L1-A-1/2"
    assert read_scan("GBC:42").crate_id == 42
    assert read_scan("SH-0310-L1-A-1/2").code == "SH-0310-L1-A-1/2"


def test_packing_puts_every_unit_in_one_crate_of_its_leader_and_zone(session):
    """Every active unit of the wave is in exactly one crate of its leader and zone, crates are
    numbered 1..N per (leader, zone) and named by region, date, point, zone and n/N."""
    world, wave = crate_wave(session)
    crates = session.scalars(select(Crate).where(Crate.wave_id == wave.id)).all()
    packed = Counter()
    for line_id, qty in session.execute(
        select(CrateItem.order_line_id, CrateItem.quantity)
        .join(Crate, Crate.id == CrateItem.crate_id)
        .where(Crate.wave_id == wave.id)
    ):
        packed[line_id] += qty
    ordered = dict(
        session.execute(
            select(OrderLine.id, OrderLine.quantity)
            .join(Order)
            .where(Order.wave_id == wave.id, OrderLine.status == LineStatus.ACTIVE)
        ).all()
    )
    assert dict(packed) == ordered
    groups = defaultdict(list)
    for c in crates:
        groups[(c.leader_id, c.zone)].append(c)
        assert c.volume_ml <= c.capacity_ml or c.oversize
    for group in groups.values():
        assert sorted(c.seq for c in group) == list(range(1, len(group) + 1))
        assert {c.of_n for c in group} == {len(group)}
    # leader L1: 2 × 60 apples of 1.5 L = 180 L, in 40 L crates: 5 crates (26 a crate)
    l1 = world.leaders[0].id
    assert len(groups[(l1, TempZone.AMBIENT)]) == 5
    assert sorted(c.code for c in groups[(l1, TempZone.AMBIENT)])[0] == "SH-0310-L1-A-1/5"


def test_packing_again_packs_nothing_more(session):
    """Asking for the crates again, or cutting off again, adds no crate: packed exactly once,
    audited once."""
    world, wave = crate_wave(session)
    before = session.scalar(select(func.count()).select_from(Crate))
    cut_off_wave(session, region=world.region, delivery_date=DELIVERY, now=world.after_cutoff(5))
    ensure_crates(session, wave)
    crates_of_wave(session, wave.id)
    assert session.scalar(select(func.count()).select_from(Crate)) == before
    packed = select(AuditEntry).where(AuditEntry.action == "wave.packed")
    assert [a.after["crates"] for a in session.scalars(packed)] == [before]


def test_a_wave_cut_off_before_crates_were_records_is_packed_on_first_need(session):
    """A cut-off wave without crates (cut off before the migration) gets them the first time its
    crates are asked for, the same crates as packing gives."""
    world, wave = crate_wave(session)
    expected = sorted(c.code for c in crates_of_wave(session, wave.id))
    session.execute(delete(CrateItem))  # as if cut off before crates were records
    session.execute(delete(Crate))
    assert sorted(c.code for c in crates_of_wave(session, wave.id)) == expected


@pytest.mark.postgres
def test_two_packers_at_once_pack_one_set_of_crates(pg_url):
    """Two processes asking for a fresh wave's crates at once on PostgreSQL: one packs, the
    other waits on the wave's row and finds them; one set of crates, one `wave.packed`."""
    engine = make_engine(pg_url, pool_size=4)
    sessions = make_session_factory(engine)
    with session_scope(sessions) as s:
        world = make_world(s, leaders=3)
        for i in range(3):
            place_order(
                s,
                region=world.region,
                leader_code=f"L{i + 1}",
                member=MemberRef(f"m{i}"),
                lines=[LineRequest("APPLE", 40), LineRequest("MILK", 3)],
                placed_at=world.before_cutoff(),
            )
        wave, _ = cut_off_wave(
            s, region=world.region, delivery_date=DELIVERY, now=world.after_cutoff()
        )
        wave_id = wave.id
    barrier = threading.Barrier(2)

    def pack(_: int) -> None:
        with session_scope(sessions) as s:
            barrier.wait()
            ensure_crates(s, s.get(Wave, wave_id))

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(pack, range(2)))
    with session_scope(sessions) as s:
        codes = s.scalars(select(Crate.code)).all()
        assert len(codes) == len(set(codes)) == 3 * 2 + 3  # 60 L of apples: 2 crates each
        packed = s.scalars(select(AuditEntry).where(AuditEntry.action == "wave.packed")).all()
        assert len(packed) == 1
    engine.dispose()


def test_load_sequence_is_the_reverse_of_the_stop_order_on_every_route(sessions):
    """On every van and every truck of the published plan, the crates in load order go from the
    last stop to the first; each crate rides the van that stops at its own point in its zone."""
    with session_scope(sessions) as s:
        _, wave = crate_wave(s)
        wave_id = wave.id
    plan_id = publish(sessions, wave_id)
    with session_scope(sessions) as s:
        routes = s.scalars(select(PlanRoute).where(PlanRoute.plan_id == plan_id)).all()
        assert {r.echelon for r in routes} == {Echelon.TRUNK, Echelon.LAST_MILE}
        riding = 0
        for route in routes:
            crates = crates_of_route(s, route.id)
            trunk = route.echelon == Echelon.TRUNK
            stops = [c.trunk_stop_no if trunk else c.stop_no for c in crates]
            loads = [c.trunk_load_seq if trunk else c.load_seq for c in crates]
            assert loads == list(range(1, len(crates) + 1))
            assert stops == sorted(stops, reverse=True)  # the last stop goes in first
            riding += len(crates) if not trunk else 0
            for c in crates if not trunk else ():
                stop = s.scalars(
                    select(PlanStop).where(PlanStop.route_id == route.id, PlanStop.seq == c.stop_no)
                ).one()
                assert stop.leader_id == c.leader_id and c.zone.value in stop.zones.split(",")
        assert riding == s.scalar(
            select(func.count()).select_from(Crate).where(Crate.wave_id == wave_id)
        )


def test_a_new_published_version_gives_the_crates_new_loads_and_keeps_the_old(sessions):
    """Publishing version 2 writes its own routes for every crate; version 1's stay as they
    were, and the crates themselves do not change."""
    with session_scope(sessions) as s:
        _, wave = crate_wave(s)
        wave_id = wave.id
    first = publish(sessions, wave_id)
    with session_scope(sessions) as s:
        crates_before = [(c.id, c.code, c.volume_ml) for c in s.scalars(select(Crate))]
        v1 = s.execute(select(CrateLoad).where(CrateLoad.plan_id == first)).scalars().all()
        v1 = [(r.crate_id, r.route_id, r.load_seq) for r in v1]
    second = publish(sessions, wave_id)
    with session_scope(sessions) as s:
        assert [(c.id, c.code, c.volume_ml) for c in s.scalars(select(Crate))] == crates_before
        again = s.execute(select(CrateLoad).where(CrateLoad.plan_id == first)).scalars().all()
        assert [(r.crate_id, r.route_id, r.load_seq) for r in again] == v1
        views = crates_of_wave(s, wave_id)
        assert {v.plan_id for v in views} == {second}
        assert all(v.route_id is not None and v.load_seq for v in views)
