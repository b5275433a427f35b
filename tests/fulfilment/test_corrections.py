"""The dispatcher's corrections: every change is a new draft made from the version seen, the
published version is never edited, what has started stays, and a plan that breaks a rule or was
reviewed against another published version is not published."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from fulfilment.catalogue.sites import get_region
from fulfilment.core.db import make_engine, make_session_factory, session_scope
from fulfilment.core.errors import InvalidInput
from fulfilment.core.models import Leader, Wave
from fulfilment.demo.city import build_demo
from fulfilment.night.corrections import (
    PlanConflict,
    locks_of,
    plan_diff,
    publish_version,
    request_correction,
    run_correction,
)
from fulfilment.night.planning import PlanningOptions, solve_wave
from fulfilment.night.plans import (
    CorrectionKind,
    CorrectionStatus,
    Echelon,
    PlanCorrection,
    PlanRoute,
    PlanStatus,
    PlanStop,
    PlanUnassigned,
    RoutePlan,
    find_published_eta,
    finish_plan,
    publish_plan,
)
from fulfilment.waves.cutoff import cut_off_wave
from routing import LocalRunner

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # the night; vans leave from 00:00 UTC on the 24th
EARLY = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # the evening before: nothing has started
FAST = PlanningOptions(time_limit_s=0.3, trunk_time_limit_s=0.5)


def published_wave(sessions) -> tuple[int, int]:
    """The demo (12 leaders, two stations, two vans each) cut off, planned and published."""
    with session_scope(sessions) as s:
        summary = build_demo(s, leaders=12, orders=120, now=NOW)
        region = get_region(s, summary.region_code)
        wave, _ = cut_off_wave(s, region=region, delivery_date=summary.delivery_date, now=NOW)
        wave_id = wave.id
    plan_id = solve_wave(
        sessions, wave_id=wave_id, runner=LocalRunner(1), options=FAST, now=lambda: NOW
    )
    with session_scope(sessions) as s:
        finish_plan(s, plan=s.get_one(RoutePlan, plan_id), actor="night", now=NOW)
        publish_plan(s, wave=s.get_one(Wave, wave_id), actor="night", now=NOW)
    return wave_id, plan_id


def routes(session, plan_id: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in session.scalars(
        select(PlanRoute).where(
            PlanRoute.plan_id == plan_id, PlanRoute.echelon == Echelon.LAST_MILE
        )
    ):
        out[r.vehicle_code] = [s.stop_code for s in r.stops]
    return out


def change(sessions, plan_id: int, kind: CorrectionKind, *, at=EARLY, **what) -> int | None:
    with session_scope(sessions) as s:
        correction = request_correction(
            s, plan_id=plan_id, kind=kind, actor="dispatcher1", now=at, **what
        )
        cid = correction.id
    return run_correction(sessions, cid, now=lambda: at, time_limit_s=0.5)


def a_stop_and_its_spare_van(session, plan_id: int) -> tuple[str, str, str]:
    """(stop, its van, an idle van of the same station)."""
    used = routes(session, plan_id)
    van, stops = next(iter(sorted(used.items())))
    spare = van[:-2] + ("02" if van.endswith("01") else "01")
    assert spare not in used
    return stops[1], van, spare


def test_a_move_at_a_position_makes_a_new_draft_and_leaves_the_published_version_alone(sessions):
    wave_id, published = published_wave(sessions)
    with session_scope(sessions) as s:
        before = routes(s, published)
        stop, van, spare = a_stop_and_its_spare_van(s, published)
        eta_before = find_published_eta(
            s,
            leader_id=s.scalars(select(Leader.id).where(Leader.code == stop)).one(),
            wave_id=wave_id,
        )
    draft_id = change(
        sessions, published, CorrectionKind.MOVE, stop_code=stop, vehicle_code=spare, position=1
    )
    assert draft_id is not None
    with session_scope(sessions) as s:
        draft = s.get_one(RoutePlan, draft_id)
        assert draft.status == PlanStatus.DRAFT and draft.based_on_id == published
        assert draft.version == 2
        after = routes(s, draft_id)
        assert after[spare] == [stop]
        assert stop not in after[van]
        assert routes(s, published) == before  # the published version is never edited
        assert s.get_one(RoutePlan, published).status == PlanStatus.PUBLISHED
        assert locks_of(s, draft) == {stop: spare}
        diff = plan_diff(s, plan=draft)
        assert [c.stop_code for c in diff.changed_vehicle] == [stop]
        assert diff.changes >= 1 and diff.added == [] and diff.dropped == []
        # the demo's spare vans carry only ambient goods: the move breaks the zone rule, named
        assert diff.broken and all(spare in b for b in diff.broken)
        with pytest.raises(InvalidInput, match="re-check"):
            publish_version(s, plan_id=draft_id, seen_published_id=published, actor="d", now=EARLY)
    with session_scope(sessions) as s:
        assert s.get_one(RoutePlan, published).status == PlanStatus.PUBLISHED
        leader_id = s.scalars(select(Leader.id).where(Leader.code == stop)).one()
        assert find_published_eta(s, leader_id=leader_id, wave_id=wave_id) == eta_before


def test_take_off_then_replan_keeps_the_stop_off_and_publishing_moves_the_leaders_eta(sessions):
    wave_id, published = published_wave(sessions)
    with session_scope(sessions) as s:
        stop, van, _spare = a_stop_and_its_spare_van(s, published)
        station = s.scalars(select(Leader).where(Leader.code == stop)).one().station_id
    off = change(sessions, published, CorrectionKind.TAKE_OFF, stop_code=stop)
    with session_scope(sessions) as s:
        assert stop not in routes(s, off)[van]
        reasons = s.scalars(
            select(PlanUnassigned.reason).where(
                PlanUnassigned.plan_id == off, PlanUnassigned.stop_code == stop
            )
        ).all()
        assert reasons and set(reasons) == {"taken_off"}
        code = s.scalars(
            select(PlanRoute.station_id).where(PlanRoute.station_id == station)
        ).first()
        from fulfilment.core.models import GridStation

        station_code = s.get_one(GridStation, code).code
    again = change(sessions, off, CorrectionKind.REPLAN, station_code=station_code)
    with session_scope(sessions) as s:
        assert all(stop not in stops for stops in routes(s, again).values())
        draft = s.get_one(RoutePlan, again)
        assert draft.based_on_id == off and not draft.broken
        diff = plan_diff(s, plan=draft)
        assert diff.dropped == [stop]
        others = [c for c in routes(s, again)[van]]
        publish_version(s, plan_id=again, seen_published_id=published, actor="d", now=EARLY)
    with session_scope(sessions) as s:
        statuses = dict(s.execute(select(RoutePlan.id, RoutePlan.status)).all())
        assert statuses[again] == PlanStatus.PUBLISHED
        assert (
            statuses[published] == PlanStatus.SUPERSEDED and statuses[off] == PlanStatus.SUPERSEDED
        )
        leader_id = s.scalars(select(Leader.id).where(Leader.code == stop)).one()
        assert find_published_eta(s, leader_id=leader_id, wave_id=wave_id) is None  # taken off
        served = s.scalars(select(Leader.id).where(Leader.code == others[0])).one()
        eta = find_published_eta(s, leader_id=served, wave_id=wave_id)
        new_eta = s.scalars(
            select(PlanStop.arrival_at)
            .join(PlanRoute, PlanRoute.id == PlanStop.route_id)
            .where(PlanRoute.plan_id == again, PlanStop.stop_code == others[0])
        ).first()
        assert eta == new_eta


def test_a_move_to_the_best_place_keeps_every_other_stop_on_its_van(sessions):
    """Best place: the cheapest place on the van that breaks no rule; every other stop keeps its
    van and its order, and a lock made before carries on."""
    _wave_id, published = published_wave(sessions)
    with session_scope(sessions) as s:
        used = routes(s, published)
        vans = sorted(used)
        stop = used[vans[0]][-1]
        ambient_only = s.execute(
            select(PlanStop.stop_code, PlanRoute.vehicle_code)
            .join(PlanRoute, PlanRoute.id == PlanStop.route_id)
            .where(PlanRoute.plan_id == published, PlanStop.zones == "ambient")
            .where(PlanRoute.echelon == Echelon.LAST_MILE)
        ).first()
    locked = change(sessions, published, CorrectionKind.LOCK, stop_code=stop)
    mover, van = ambient_only if ambient_only else (used[vans[0]][0], vans[0])
    target = van[:-2] + ("02" if van.endswith("01") else "01") if ambient_only else van
    moved = change(sessions, locked, CorrectionKind.MOVE, stop_code=mover, vehicle_code=target)
    with session_scope(sessions) as s:
        assert locks_of(s, s.get_one(RoutePlan, moved))[stop] == vans[0]  # the lock carried on
        after = routes(s, moved)
        assert mover in after[target]
        assert not s.get_one(RoutePlan, moved).broken
        for v, stops in used.items():
            assert [x for x in after.get(v, []) if x != mover] == [x for x in stops if x != mover]


BAD_MOVES = [
    ({"stop_code": "L99999", "vehicle_code": "SPARE"}, "stop"),
    ({"vehicle_code": "SPARE"}, "stop"),
    ({"stop_code": "STOP", "vehicle_code": "SH-T01"}, "vehicle"),
    ({"stop_code": "STOP", "vehicle_code": "NOPE"}, "vehicle"),
    ({"stop_code": "STOP", "vehicle_code": "OTHER_STATION"}, "vehicle"),
    ({"stop_code": "STOP", "vehicle_code": "SPARE", "position": 3}, "position"),
    ({"stop_code": "STOP", "vehicle_code": "SPARE", "position": 0}, "position"),
]


def test_bad_moves_are_refused_by_field_and_nothing_is_written(sessions):
    """A stop not on the plan, no stop, a truck, an unknown van, a van of another station, a
    position beyond the target route: each refused naming its field; nothing is queued."""
    _wave_id, published = published_wave(sessions)
    with session_scope(sessions) as s:
        stop, van, spare = a_stop_and_its_spare_van(s, published)
        other = next(v for v in routes(s, published) if v[:7] != van[:7])
    names = {"STOP": stop, "SPARE": spare, "OTHER_STATION": other}
    for what, field in BAD_MOVES:
        what = {k: names.get(v, v) if isinstance(v, str) else v for k, v in what.items()}
        with session_scope(sessions) as s:
            with pytest.raises(InvalidInput) as err:
                request_correction(
                    s, plan_id=published, kind=CorrectionKind.MOVE, actor="d", now=EARLY, **what
                )
            assert err.value.field == field, what
    with session_scope(sessions) as s:
        assert s.scalar(select(func.count()).select_from(PlanCorrection)) == 0
        assert s.scalar(select(func.count()).select_from(RoutePlan)) == 1


def test_a_superseded_version_and_a_started_route_cannot_be_changed(sessions):
    _wave_id, published = published_wave(sessions)
    with session_scope(sessions) as s:
        stop, _van, spare = a_stop_and_its_spare_van(s, published)
        # at 03:00 UTC on the delivery day every van has left: its stops stay
        with pytest.raises(InvalidInput, match="has left"):
            request_correction(
                s,
                plan_id=published,
                kind=CorrectionKind.TAKE_OFF,
                stop_code=stop,
                actor="d",
                now=NOW,
            )
    draft = change(sessions, published, CorrectionKind.LOCK, stop_code=stop)
    with session_scope(sessions) as s:
        publish_version(s, plan_id=draft, seen_published_id=published, actor="d", now=EARLY)
    with session_scope(sessions) as s:
        with pytest.raises(InvalidInput, match="superseded") as err:
            request_correction(
                s, plan_id=published, kind=CorrectionKind.LOCK, stop_code=stop, actor="d", now=EARLY
            )
        assert err.value.field == "plan"


def test_a_correction_runs_once_and_a_failed_one_leaves_no_version(sessions, monkeypatch):
    _wave_id, published = published_wave(sessions)
    with session_scope(sessions) as s:
        stop, _van, _spare = a_stop_and_its_spare_van(s, published)
        cid = request_correction(
            s, plan_id=published, kind=CorrectionKind.LOCK, stop_code=stop, actor="d", now=EARLY
        ).id
    assert run_correction(sessions, cid, now=lambda: EARLY) is not None
    assert run_correction(sessions, cid, now=lambda: EARLY) is None  # claimed once
    with session_scope(sessions) as s:
        cid = request_correction(
            s, plan_id=published, kind=CorrectionKind.LOCK, stop_code=stop, actor="d", now=EARLY
        ).id
    import fulfilment.night.corrections as corrections

    def broken_store(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(corrections, "_store", broken_store)
    assert run_correction(sessions, cid, now=lambda: EARLY) is None
    with session_scope(sessions) as s:
        c = s.get_one(PlanCorrection, cid)
        assert c.status == CorrectionStatus.FAILED and "disk full" in c.error
        assert s.scalar(select(func.count()).select_from(RoutePlan)) == 2  # nothing half-written


def test_publishing_a_draft_reviewed_against_an_older_published_version_is_a_conflict(sessions):
    _wave_id, published = published_wave(sessions)
    with session_scope(sessions) as s:
        stop, _van, _spare = a_stop_and_its_spare_van(s, published)
    first = change(sessions, published, CorrectionKind.LOCK, stop_code=stop)
    second = change(sessions, published, CorrectionKind.LOCK, stop_code=stop)
    with session_scope(sessions) as s:
        publish_version(s, plan_id=first, seen_published_id=published, actor="a", now=EARLY)
    with session_scope(sessions) as s:
        with pytest.raises(PlanConflict):
            publish_version(s, plan_id=second, seen_published_id=published, actor="b", now=EARLY)


@pytest.mark.postgres
def test_two_dispatchers_at_once_get_a_version_each_and_one_publish(pg_url):
    """Two corrections of one version run at once: each makes its own draft from the version its
    dispatcher saw; then both publish at once against that version: one wins, one is told."""
    engine = make_engine(pg_url, pool_size=6, max_overflow=0)
    sessions = make_session_factory(engine)
    _wave_id, published = published_wave(sessions)
    with session_scope(sessions) as s:
        used = routes(s, published)
        stops = [used[v][0] for v in sorted(used)]
        ids = [
            request_correction(
                s,
                plan_id=published,
                kind=CorrectionKind.LOCK,
                stop_code=stop,
                actor=f"d{i}",
                now=EARLY,
            ).id
            for i, stop in enumerate(stops)
        ]
    made: list[int | None] = []
    threads = [
        threading.Thread(
            target=lambda c=c: made.append(run_correction(sessions, c, now=lambda: EARLY))
        )
        for c in ids
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert None not in made and len(set(made)) == 2
    with session_scope(sessions) as s:
        plans = [s.get_one(RoutePlan, p) for p in made if p]
        assert {p.based_on_id for p in plans} == {published}
        assert sorted(p.version for p in plans) == [2, 3]
    outcomes: list[str] = []

    def publish(plan_id: int) -> None:
        try:
            with session_scope(sessions) as s:
                publish_version(
                    s, plan_id=plan_id, seen_published_id=published, actor="d", now=EARLY
                )
            outcomes.append("published")
        except PlanConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=publish, args=(p,)) for p in made if p]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "published"]
    with session_scope(sessions) as s:
        assert (
            s.scalar(
                select(func.count())
                .select_from(RoutePlan)
                .where(RoutePlan.status == PlanStatus.PUBLISHED)
            )
            == 1
        )
    engine.dispose()


@pytest.mark.postgres
def test_with_redis_a_correction_is_an_rq_job_that_a_worker_runs(pg_url, redis_url, monkeypatch):
    """With GROUPBUY_REDIS_URL set, start_correction enqueues a job (nothing runs in the caller);
    a routing worker takes it and stores the draft."""
    import uuid

    from redis import Redis
    from rq import Queue

    from fulfilment.night.corrections import start_correction
    from fulfilment.night.rq_worker import SimpleWorker

    queue_name = f"test-corrections-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("GROUPBUY_REDIS_URL", redis_url)
    monkeypatch.setenv("GROUPBUY_RQ_QUEUE", queue_name)
    monkeypatch.setenv("GROUPBUY_DATABASE_URL", pg_url)
    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    _wave_id, published = published_wave(sessions)
    with session_scope(sessions) as s:
        stop, _van, _spare = a_stop_and_its_spare_van(s, published)
        cid = request_correction(
            s, plan_id=published, kind=CorrectionKind.LOCK, stop_code=stop, actor="d", now=EARLY
        ).id
    start_correction(pg_url, cid)
    queue = Queue(queue_name, connection=Redis.from_url(redis_url))
    assert queue.count == 1
    with session_scope(sessions) as s:
        assert s.get_one(PlanCorrection, cid).status == CorrectionStatus.QUEUED
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    with session_scope(sessions) as s:
        c = s.get_one(PlanCorrection, cid)
        assert c.status == CorrectionStatus.DONE, c.error
        assert s.get_one(RoutePlan, c.result_plan_id).based_on_id == published
    queue.delete(delete_jobs=True)
    engine.dispose()
