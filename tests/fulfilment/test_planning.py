"""A cut-off wave's routes: planned from plain data, stored in versions, read back, published."""

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from factories import DELIVERY, make_world
from night_factories import add_small_fleet
from sqlalchemy import func, select

import routing
from fulfilment.catalogue.fleet import Vehicle
from fulfilment.catalogue.sites import get_region
from fulfilment.core.db import session_scope
from fulfilment.core.errors import CutoffNotReached
from fulfilment.core.models import Leader, Order, Region, TempZone, Wave
from fulfilment.demo.city import build_demo
from fulfilment.night.planning import (
    PlanningOptions,
    build_network,
    seconds_since_midnight,
    solve_wave,
)
from fulfilment.night.plans import (
    PlanPart,
    PlanRoute,
    PlanStatus,
    PlanStop,
    PlanUnassigned,
    RoutePlan,
    find_published_eta,
    finish_plan,
    load_plan,
    publish_plan,
    store_part,
    stored_parts,
)
from fulfilment.orders.intake import LineRequest, MemberRef, place_order
from fulfilment.waves.crates import crate_counts
from fulfilment.waves.cutoff import cut_off_wave
from fulfilment.waves.cycle import ensure_wave
from routing import LocalRunner

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
FAST = PlanningOptions(time_limit_s=0.5, trunk_time_limit_s=1.0)


def cut_demo(sessions, leaders=30, orders=300):
    with session_scope(sessions) as s:
        summary = build_demo(s, leaders=leaders, orders=orders, now=NOW)
        region = get_region(s, summary.region_code)
        wave, _ = cut_off_wave(s, region=region, delivery_date=summary.delivery_date, now=NOW)
        return wave.id, summary.delivery_date


def plan_and_finish(sessions, wave_id, options=FAST, runner=None):
    plan_id = solve_wave(
        sessions, wave_id=wave_id, runner=runner or LocalRunner(1), options=options, now=lambda: NOW
    )
    with session_scope(sessions) as s:
        finish_plan(s, plan=s.get(RoutePlan, plan_id), actor="test", now=NOW)
    return plan_id


def test_every_leader_of_a_wave_is_on_a_route_or_unassigned_with_a_reason(sessions):
    """The demo wave: each leader with goods is a stop on a stored route, or unassigned with a
    reason; the demo fleet leaves nobody out."""
    wave_id, _ = cut_demo(sessions)
    plan_id = plan_and_finish(sessions, wave_id)
    with session_scope(sessions) as s:
        ordering = set(
            s.scalars(select(Order.leader_id).where(Order.wave_id == wave_id).distinct())
        )
        on_routes = set(
            s.scalars(
                select(PlanStop.leader_id)
                .join(PlanRoute)
                .where(PlanRoute.plan_id == plan_id, PlanStop.leader_id.is_not(None))
            )
        )
        unassigned = s.scalars(
            select(PlanUnassigned).where(PlanUnassigned.plan_id == plan_id)
        ).all()
        assert ordering == on_routes | {u.leader_id for u in unassigned if u.leader_id}
        assert all(u.reason in set(routing.UnassignedReason) for u in unassigned)
        assert unassigned == []  # the demo fleet serves everyone
        assert s.get(RoutePlan, plan_id).status == PlanStatus.DRAFT


def test_etas_are_on_the_delivery_date_in_the_regions_zone_within_the_window(sessions):
    """A published plan's ETA for a leader is on the delivery date, local time, inside the
    leader's receiving window."""
    wave_id, delivery = cut_demo(sessions)
    plan_and_finish(sessions, wave_id)
    with session_scope(sessions) as s:
        publish_plan(s, wave=s.get(Wave, wave_id), actor="test", now=NOW)
    with session_scope(sessions) as s:
        zone = ZoneInfo(s.get(Wave, wave_id).region.tz)
        leaders = s.scalars(select(Leader)).all()
        seen = 0
        for leader in leaders:
            eta = find_published_eta(s, leader_id=leader.id, wave_id=wave_id)
            if eta is None:
                continue
            seen += 1
            local = eta.astimezone(zone)
            assert local.date() == delivery
            assert leader.window_open <= local.time() <= leader.window_close
        assert seen > 0


def test_frozen_goods_ride_only_on_vehicles_equipped_for_them(sessions):
    """Every stop that delivers frozen goods is on a route whose vehicle carries frozen."""
    wave_id, _ = cut_demo(sessions)
    plan_id = plan_and_finish(sessions, wave_id)
    with session_scope(sessions) as s:
        equipped = {v.code: v.zones.split(",") for v in s.scalars(select(Vehicle))}
        frozen_stops = s.execute(
            select(PlanRoute.vehicle_code, PlanStop.stop_code)
            .join(PlanStop, PlanStop.route_id == PlanRoute.id)
            .where(PlanRoute.plan_id == plan_id, PlanStop.zones.contains("frozen"))
        ).all()
        assert frozen_stops
        assert all("frozen" in equipped[vehicle] for vehicle, _ in frozen_stops)
        assert any(zones == ["ambient"] for zones in equipped.values())  # a real choice


def test_a_stored_plan_reads_back_into_the_planners_plans(sessions):
    """Routes, visits, times, loads and unassigned read back equal to what the planner gave."""
    wave_id, _ = cut_demo(sessions, leaders=12, orders=80)
    kept: dict[str, routing.Plan] = {}

    class Recording(LocalRunner):
        def solve(self, problems, **kwargs):
            for key, plan in super().solve(problems, **kwargs):
                kept[key] = plan
                yield key, plan

    plan_id = plan_and_finish(sessions, wave_id, runner=Recording(1))
    with session_scope(sessions) as s:
        stored = load_plan(s, s.get(RoutePlan, plan_id))
        key_of = runner_keys(s)
    assert stored.trunk is not None
    assert stored.trunk.routes == tuple(sorted(kept["trunk"].routes, key=lambda r: r.vehicle_id))
    for station, plan in stored.last_mile.items():
        solved = kept[key_of[station]]
        assert plan.routes == tuple(sorted(solved.routes, key=lambda r: r.vehicle_id))
        assert plan.cost == solved.cost


def runner_keys(session) -> dict[str, str]:
    """Station code -> the key the runner sees it under (database ids, never names)."""
    from fulfilment.core.models import GridStation

    return {
        code: f"s{id_}" for id_, code in session.execute(select(GridStation.id, GridStation.code))
    }


def test_a_part_is_stored_once(sessions):
    """Storing the same station's result twice (a job run twice) keeps the first and says so."""
    wave_id, _ = cut_demo(sessions, leaders=12, orders=80)
    plan_id = plan_and_finish(sessions, wave_id)
    with session_scope(sessions) as s:
        plan = s.get(RoutePlan, plan_id)
        part = s.scalars(select(PlanPart).where(PlanPart.plan_id == plan_id)).first()
        before = s.scalar(select(func.count()).select_from(PlanRoute))
        again = store_part(
            s,
            plan=plan,
            part=part.part,
            result=load_plan(s, plan).last_mile.get(part.part) or load_plan(s, plan).trunk,
            stations={},
            leaders={},
            now=NOW,
        )
        assert again is False
        assert s.scalar(select(func.count()).select_from(PlanRoute)) == before


class FailsAfter(LocalRunner):
    """Solves in this process and records what it is asked; fails once it has handed back
    `parts` plans (a solver host lost mid-plan)."""

    def __init__(self, parts):
        super().__init__(1)
        self.left = parts
        self.asked = []

    def solve(self, problems, **kwargs):
        self.asked.append(sorted(problems))
        for key, plan in super().solve(problems, **kwargs):
            if self.left == 0:
                raise RuntimeError("solver host unreachable")
            self.left -= 1
            yield key, plan


def test_an_unfinished_plan_resumes_from_its_stored_trunk_and_stations(sessions):
    """The runner fails after the trunk and one station: both are stored. Solving the same plan
    again asks the runner for the other stations only (the trunk is read back, not solved), and
    every part ends up stored once."""
    wave_id, _ = cut_demo(sessions)
    first, started = FailsAfter(2), []
    with pytest.raises(RuntimeError):
        solve_wave(
            sessions,
            wave_id=wave_id,
            runner=first,
            options=FAST,
            now=lambda: NOW,
            on_plan_started=started.append,
        )
    (plan_id,) = started
    with session_scope(sessions) as s:
        stored = set(stored_parts(s, s.get(RoutePlan, plan_id)))
        key_of = runner_keys(s)
    code_of = {key: code for code, key in key_of.items()}
    stations = [code_of[key] for key in first.asked[1]]
    assert "trunk" in stored and len(stored & set(stations)) == 1
    again = FailsAfter(100)
    assert (
        solve_wave(
            sessions, wave_id=wave_id, runner=again, options=FAST, now=lambda: NOW, plan_id=plan_id
        )
        == plan_id
    )
    assert again.asked == [sorted(key_of[code] for code in set(stations) - stored)]
    with session_scope(sessions) as s:
        parts = s.scalars(select(PlanPart.part).where(PlanPart.plan_id == plan_id)).all()
    assert sorted(parts) == sorted({"trunk", *stations})


def test_versions_are_kept_and_publishing_supersedes_the_one_before(sessions):
    """Two plans are v1 and v2; publishing v2 then v3 leaves v3 published, v1 and v2 superseded."""
    wave_id, _ = cut_demo(sessions, leaders=8, orders=40)
    ids = [plan_and_finish(sessions, wave_id) for _ in range(2)]
    with session_scope(sessions) as s:
        assert publish_plan(s, wave=s.get(Wave, wave_id), actor="a", now=NOW).id == ids[1]
    ids.append(plan_and_finish(sessions, wave_id))
    with session_scope(sessions) as s:
        publish_plan(s, wave=s.get(Wave, wave_id), actor="b", now=NOW)
        states = [
            (p.version, p.status) for p in s.scalars(select(RoutePlan).order_by(RoutePlan.id))
        ]
    assert states == [
        (1, PlanStatus.SUPERSEDED),
        (2, PlanStatus.SUPERSEDED),
        (3, PlanStatus.PUBLISHED),
    ]


def test_an_open_wave_is_not_planned(session):
    """Routes are planned from a cut-off wave only."""
    world = make_world(session)
    wave = ensure_wave(session, world.region, DELIVERY)
    with pytest.raises(CutoffNotReached):
        build_network(session, wave=wave)


def _small_wave(session, *, truck_kg):
    world = make_world(session, leaders=4)
    add_small_fleet(session, world.region, weight_kg=truck_kg, volume_l=30000, crates=600)
    for i in range(4):
        place_order(
            session,
            region=world.region,
            leader_code=f"L{i + 1}",
            member=MemberRef(f"m{i}"),
            lines=[LineRequest("APPLE", 100), LineRequest("PRAWN", 10)],
            placed_at=world.before_cutoff(),
        )
    wave, _ = cut_off_wave(
        session, region=world.region, delivery_date=DELIVERY, now=world.after_cutoff()
    )
    return world, wave


def test_a_partly_supplied_station_stores_only_what_arrives_on_routes(session, sessions):
    """The truck carries 250 kg of the 420 kg ordered: the stored last mile routes only leaders
    whose goods arrive, the rest are stored unassigned as station_not_supplied, nothing lost, and
    the station's part is partial."""
    world, wave = _small_wave(session, truck_kg=250)
    network = build_network(session, wave=wave)
    session.commit()
    plan_id = plan_and_finish(sessions, wave.id)
    with session_scope(sessions) as s:
        stored = load_plan(s, s.get(RoutePlan, plan_id))
    assert stored.trunk is not None and stored.trunk.unassigned  # the truck is too small
    gs1 = stored.last_mile["GS1"]
    assert gs1.status == routing.PlanStatus.PARTIAL
    assert {u.reason for u in gs1.unassigned} == {routing.UnassignedReason.STATION_NOT_SUPPLIED}
    short = {(u.stop_id, u.zone) for u in gs1.unassigned}
    routed = {(v.stop_id, z) for r in gs1.routes for v in r.visits for z in v.zones}
    everything = {(s.id, z) for s in network.last_mile["GS1"].stops for z in s.drops}
    assert routed | short == everything and not routed & short and routed
    delivered = sum(v.delivered.weight_g for r in stored.trunk.routes for v in r.visits)
    assert sum(v.delivered.weight_g for r in gs1.routes for v in r.visits) <= delivered


def test_last_mile_vans_leave_after_the_trunk_leaves_plus_handling(session, sessions):
    """Stored vans' routes start no earlier than the truck's departure from the station plus
    the handling time."""
    world, wave = _small_wave(session, truck_kg=5000)
    session.commit()
    plan_id = plan_and_finish(sessions, wave.id)
    with session_scope(sessions) as s:
        stored = load_plan(s, s.get(RoutePlan, plan_id))
    left = max(v.departure_s for r in stored.trunk.routes for v in r.visits if v.stop_id == "GS1")
    gs1 = stored.last_mile["GS1"]
    assert gs1.unassigned == () and gs1.routes
    assert all(r.start_s >= left + FAST.handling_s for r in gs1.routes)


def test_the_planner_counts_the_crates_it_packed(session):
    """100 apples of 1.5 L packed into 40 L crates are 4 crate records, and 4 for the planner."""
    world, wave = _small_wave(session, truck_kg=5000)
    stops = build_network(session, wave=wave).last_mile["GS1"].stops
    assert stops[0].drops[routing.TempZone.AMBIENT].crates == 4
    leader = session.scalars(select(Leader).where(Leader.code == stops[0].id)).one()
    assert crate_counts(session, wave_id=wave.id)[(leader.id, TempZone.AMBIENT)] == 4


def test_crates_come_from_volume_by_the_configured_crate_size(session):
    """With 100 L crates the same 100 apples are 2 crates; packed once, a later plan with
    another size still counts the 2 crates the wave was packed into."""
    world, wave = _small_wave(session, truck_kg=5000)
    bigger = build_network(session, wave=wave, options=PlanningOptions(crate_volume_ml=100_000))
    assert bigger.last_mile["GS1"].stops[0].drops[routing.TempZone.AMBIENT].crates == 2
    again = build_network(session, wave=wave)
    assert again.last_mile["GS1"].stops[0].drops[routing.TempZone.AMBIENT].crates == 2


def test_windows_are_seconds_since_local_midnight_on_a_dst_day():
    """Berlin, 29 March 2026 (clocks jump 02:00 → 03:00): 08:00 is 7 hours after midnight;
    25 October (03:00 → 02:00): 9 hours."""
    region = Region(code="B", name="Berlin", tz="Europe/Berlin", lat=52.5, lon=13.4)
    assert seconds_since_midnight(region, date(2026, 3, 29), time(8)) == 7 * 3600
    assert seconds_since_midnight(region, date(2026, 10, 25), time(8)) == 9 * 3600
    assert seconds_since_midnight(region, date(2026, 6, 1), time(8)) == 8 * 3600
