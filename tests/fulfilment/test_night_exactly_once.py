"""The night exactly once and finished (issue 22, items 7, 7b, 10): a dead claimer's run is taken
over whatever its wave's state, a process that lost its claim writes nothing, two stores or two
publishes at once give one, and a region the trunk cannot plan is refused by name."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from night_factories import FakeClock
from sqlalchemy import func, select, text, update

import routing
from fulfilment.core.db import make_engine, make_session_factory, session_scope
from fulfilment.core.errors import InvalidInput
from fulfilment.core.models import AuditEntry, CutoffRun, Region, Warehouse, Wave
from fulfilment.demo.city import build_demo
from fulfilment.night import pipeline
from fulfilment.night.pipeline import (
    PipelineConfig,
    PipelineRun,
    PipelineStep,
    RunState,
    Step,
    StepState,
    claim_run,
)
from fulfilment.night.planning import PlanningOptions, build_network, solve_wave
from fulfilment.night.plans import (
    PlanPart,
    PlanRoute,
    PlanStatus,
    RoutePlan,
    finish_plan,
    publish_plan,
    start_plan,
    store_part,
)
from fulfilment.night.run import NightSettings, run_night
from fulfilment.waves.cutoff import cut_off_wave
from routing import LocalRunner
from scheduler.service import NightScheduler

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
SETTINGS = NightSettings(planning=PlanningOptions(time_limit_s=0.3, trunk_time_limit_s=0.5))


def demo(sessions, leaders=12, orders=120):
    with session_scope(sessions) as s:
        return build_demo(s, leaders=leaders, orders=orders, now=NOW).delivery_date


def scheduler_for(sessions, clock, settings=SETTINGS):
    return NightScheduler(
        sessions,
        settings=settings,
        runner=LocalRunner(1),
        clock=clock,
        scheduler=BackgroundScheduler(timezone=UTC),
    )


class Killed(BaseException):
    """Stands for SIGKILL in-process: nothing of the pipeline catches it."""


class DyingRunner(LocalRunner):
    """Solves the trunk, then the process 'dies' (the plan has 1 of its parts)."""

    def __init__(self):
        super().__init__(1)

    def solve(self, problems, **kwargs):
        if routing.TRUNK_KEY not in problems:
            raise Killed()
        yield from super().solve(problems, **kwargs)


class StealingRunner(LocalRunner):
    """While solving, another process takes the run over; then the solve fails."""

    def __init__(self, sessions):
        super().__init__(1)
        self.sessions = sessions

    def solve(self, problems, **kwargs):
        with session_scope(self.sessions) as s:
            s.execute(update(PipelineRun).values(claimed_by="thief:1:x", heartbeat_at=NOW))
        raise RuntimeError("solver host unreachable")


def ledger(sessions):
    with session_scope(sessions) as s:
        run = s.scalars(select(PipelineRun)).one()
        by_step = {
            st.step: (st.state, st.attempts)
            for st in s.scalars(select(PipelineStep).where(PipelineStep.run_id == run.id))
        }
        parts = (
            s.scalar(
                select(func.count()).select_from(PlanPart).where(PlanPart.plan_id == run.plan_id)
            )
            if run.plan_id
            else 0
        )
        plan = s.get(RoutePlan, run.plan_id) if run.plan_id else None
        return run.state, run.claimed_by, by_step, parts, plan.status if plan else None


# ---------------------------------------------------------------------------------------------
# Item 7: the scheduler takes over every unfinished run whose claimer is dead


def test_the_scheduler_finishes_a_night_whose_claimer_died_after_the_cutoff(sessions):
    """A run dies mid-plan (the wave is cut off, the plan has the trunk only): once its heartbeat
    is stale, the scheduler's catch-up takes it over and finishes it, resuming the same plan."""
    delivery = demo(sessions)
    clock = FakeClock(NOW)
    with pytest.raises(Killed):
        run_night(
            sessions,
            region_code="SH",
            delivery_date=delivery,
            runner=DyingRunner(),
            clock=clock,
            settings=SETTINGS,
        )
    state, _, by_step, parts, _ = ledger(sessions)
    assert (state, by_step[Step.CUTOFF][0], by_step[Step.PLAN][0], parts) == (
        RunState.RUNNING,
        StepState.DONE,
        StepState.RUNNING,
        1,
    )
    night = scheduler_for(sessions, clock)
    assert night.catch_up() == []  # its claimer may still be alive
    clock.advance(seconds=SETTINGS.pipeline.heartbeat_ttl_s + 1)
    assert [o.state for o in night.catch_up()] == ["succeeded"]
    state, claimer, by_step, parts, plan_status = ledger(sessions)
    assert (state, claimer, plan_status) == (RunState.SUCCEEDED, None, PlanStatus.PUBLISHED)
    assert by_step[Step.CUTOFF] == (StepState.DONE, 1)
    with session_scope(sessions) as s:
        assert s.scalar(select(func.count()).select_from(RoutePlan)) == 1
        assert s.scalar(select(func.count()).select_from(CutoffRun)) == 1
        wave = s.scalars(select(Wave)).one()
        stations = len(build_network(s, wave=wave, options=SETTINGS.planning).last_mile)
    assert parts == 1 + stations


# ---------------------------------------------------------------------------------------------
# Item 7b: a process that lost its claim writes nothing; failed runs are retried, boundedly


def test_a_process_that_lost_its_claim_cannot_mark_the_run_failed(sessions):
    """The run is taken over while this process solves, then its solve fails: it reports
    `busy` and leaves the ledger as the new claimer has it (running, not failed)."""
    delivery = demo(sessions)
    settings = NightSettings(planning=SETTINGS.planning, pipeline=PipelineConfig(max_attempts=1))
    outcome = run_night(
        sessions,
        region_code="SH",
        delivery_date=delivery,
        runner=StealingRunner(sessions),
        clock=FakeClock(NOW),
        settings=settings,
    )
    assert outcome.state == "busy"
    state, claimer, by_step, _, _ = ledger(sessions)
    assert (state, claimer) == (RunState.RUNNING, "thief:1:x")
    assert by_step[Step.PLAN][0] == StepState.RUNNING


def test_a_loser_stops_storing_into_the_plan_it_lost(sessions):
    """The claim is taken over after the trunk and the first station are stored: the loser
    stores no further part (each store checks the claim in its own transaction) and reports
    `busy`."""
    delivery = demo(sessions)

    class Runner(LocalRunner):
        def solve(self, problems, **kwargs):
            for key, plan in super().solve(problems, **kwargs):
                yield key, plan
                if key != "trunk":  # the first station was stored: now taken over
                    with session_scope(sessions) as s:
                        s.execute(update(PipelineRun).values(claimed_by="thief:1:x"))

    outcome = run_night(
        sessions,
        region_code="SH",
        delivery_date=delivery,
        runner=Runner(1),
        clock=FakeClock(NOW),
        settings=SETTINGS,
    )
    assert outcome.state == "busy"
    _, _, _, parts, _ = ledger(sessions)
    with session_scope(sessions) as s:
        wave = s.scalars(select(Wave)).one()
        stations = len(build_network(s, wave=wave, options=SETTINGS.planning).last_mile)
    assert stations >= 2
    assert parts == 2  # the trunk and the first station, stored before the claim was lost


def test_a_failed_run_is_retried_by_the_scheduler_a_limited_number_of_times(sessions):
    """A run that used up its attempts is retried by the scheduler after `retry_failed_after_s`
    (doubled each time), at most `scheduler_retries` times; then it waits for an operator."""
    delivery = demo(sessions)
    clock = FakeClock(NOW)
    config = PipelineConfig(
        max_attempts=1, backoff_s=1, retry_failed_after_s=600, scheduler_retries=2
    )
    settings = NightSettings(planning=SETTINGS.planning, pipeline=config)
    night = NightScheduler(
        sessions,
        settings=settings,
        runner=LocalRunner(1),
        clock=clock,
        scheduler=BackgroundScheduler(timezone=UTC),
    )
    night.runner = BrokenRunner()
    assert [o.state for o in night.catch_up()] == ["failed"]
    assert night.catch_up() == []  # not hammered
    clock.advance(seconds=601)
    assert [o.state for o in night.catch_up()] == ["failed"]  # retry 1
    clock.advance(seconds=601)
    assert night.catch_up() == []  # the second retry waits twice as long
    clock.advance(seconds=600)
    assert [o.state for o in night.catch_up()] == ["failed"]  # retry 2
    clock.advance(hours=3)
    assert night.catch_up() == []  # retries used up: reported, left to an operator
    with session_scope(sessions) as s:
        run = s.scalars(select(PipelineRun)).one()
        assert run.state == RunState.FAILED and "solver host unreachable" in run.error
    night.runner = LocalRunner(1)
    assert (
        run_night(
            sessions,
            region_code="SH",
            delivery_date=delivery,
            runner=LocalRunner(1),
            clock=clock,
            settings=settings,
        ).state
        == "succeeded"
    )


class BrokenRunner(LocalRunner):
    def __init__(self):
        super().__init__(1)

    def solve(self, problems, **kwargs):
        raise RuntimeError("solver host unreachable")
        yield  # pragma: no cover


# ---------------------------------------------------------------------------------------------
# Item 10: the last mark, and a region with two warehouses


def test_a_claim_lost_after_the_last_step_is_reported_not_raised(sessions, monkeypatch):
    """The last step (the settlement) commits the run's success with its mark; a claim taken
    over right after does not make `run_pipeline` raise."""
    delivery = demo(sessions)
    commit = pipeline._commit_step

    def commit_then_lose(sessions_, run_id, step, *args, **kwargs):
        commit(sessions_, run_id, step, *args, **kwargs)
        if step == pipeline.STEPS[-1]:
            with session_scope(sessions_) as s:
                s.execute(update(PipelineRun).values(claimed_by="thief:1:x"))

    monkeypatch.setattr(pipeline, "_commit_step", commit_then_lose)
    outcome = run_night(
        sessions,
        region_code="SH",
        delivery_date=delivery,
        runner=LocalRunner(1),
        clock=FakeClock(NOW),
        settings=SETTINGS,
    )
    assert outcome.state == "succeeded"
    state, _, _, _, plan_status = ledger(sessions)
    assert (state, plan_status) == (RunState.SUCCEEDED, PlanStatus.PUBLISHED)


def test_a_region_with_two_warehouses_is_refused_by_name(sessions):
    """The trunk plans one depot: a second warehouse is an InvalidInput naming the region and
    the warehouses, not a silent choice of whichever the database returns first."""
    with session_scope(sessions) as s:
        summary = build_demo(s, leaders=6, orders=30, now=NOW)
        region = s.scalars(select(Region)).one()
        s.add(Warehouse(region_id=region.id, code="SH-WH2", name="二号仓", lat=31.3, lon=121.3))
        wave, _ = cut_off_wave(s, region=region, delivery_date=summary.delivery_date, now=NOW)
        with pytest.raises(InvalidInput) as err:
            build_network(s, wave=wave)
    assert err.value.record == "region SH" and err.value.field == "warehouse"
    assert "SH-WH1" in err.value.message and "SH-WH2" in err.value.message


# ---------------------------------------------------------------------------------------------
# Races on PostgreSQL: claims, marks, stores, publishes


def _cut_off_wave(sessions):
    with session_scope(sessions) as s:
        summary = build_demo(s, leaders=12, orders=120, now=NOW)
        region = s.scalars(select(Region)).one()
        wave, _ = cut_off_wave(s, region=region, delivery_date=summary.delivery_date, now=NOW)
        return wave.id, summary.delivery_date


def _wait_for_lock_waiter(engine, holder_pid: int, timeout_s=30.0):
    """Until a backend waits on a lock that `holder_pid` holds (the racing statement blocked on
    this test's first transaction, not some other test's backend of the shared database)."""
    deadline = time.monotonic() + timeout_s
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE :holder = ANY(pg_blocking_pids(pid))"
                ),
                {"holder": holder_pid},
            ).scalar()
            if waiting:
                return
            conn.rollback()
            threading.Event().wait(0.02)
    raise TimeoutError("no backend blocked on the lock")


@pytest.mark.postgres
def test_two_stores_of_one_part_at_once_store_it_once(pg_url):
    """Two processes store the same part at once: the second waits on the (plan, part) key and
    returns False once the first commits; one part row, its routes once, no error."""
    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    wave_id, _ = _cut_off_wave(sessions)
    with session_scope(sessions) as s:
        wave = s.get(Wave, wave_id)
        network = build_network(s, wave=wave, options=SETTINGS.planning)
        plan = start_plan(
            s, wave=wave, day_start_at=network.day_start_at, time_limit_s=0.3, now=NOW, actor="t"
        )
        plan_id = plan.id
    trunk = routing.plan_routes(network.trunk, time_limit_s=0.3)

    def store(s):
        return store_part(
            s,
            plan=s.get(RoutePlan, plan_id),
            part="trunk",
            result=trunk,
            stations=network.stations,
            leaders=network.leaders,
            now=NOW,
        )

    first = sessions()
    try:
        assert store(first) is True  # stored, not committed yet
        holder = first.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
        with ThreadPoolExecutor(1) as pool:
            second = pool.submit(lambda: _in_scope(sessions, store))
            _wait_for_lock_waiter(engine, holder)
            first.commit()
            assert second.result(60) is False
    finally:
        first.close()
    with session_scope(sessions) as s:
        assert s.scalar(select(func.count()).select_from(PlanPart)) == 1
        assert s.scalar(select(func.count()).select_from(PlanRoute)) == len(trunk.routes)
    engine.dispose()


def _in_scope(sessions, fn):
    with session_scope(sessions) as s:
        return fn(s)


@pytest.mark.postgres
def test_two_publishes_at_once_give_one_published_version(pg_url):
    """Eight publishes of a wave with drafts v1 and v2 at once: v2 is published once (one audit
    entry), v1 superseded; the others return the published plan."""
    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    wave_id, _ = _cut_off_wave(sessions)
    ids = []
    for _ in range(2):
        plan_id = solve_wave(
            sessions,
            wave_id=wave_id,
            runner=LocalRunner(1),
            options=SETTINGS.planning,
            now=lambda: NOW,
        )
        with session_scope(sessions) as s:
            finish_plan(s, plan=s.get(RoutePlan, plan_id), actor="t", now=NOW)
        ids.append(plan_id)
    start = threading.Barrier(8)

    def publish(s):
        start.wait()
        return publish_plan(s, wave=s.get(Wave, wave_id), actor="t", now=NOW).id

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _: _in_scope(sessions, publish), range(8)))
    assert got == [ids[1]] * 8
    with session_scope(sessions) as s:
        statuses = dict(s.execute(select(RoutePlan.id, RoutePlan.status)).all())
        assert statuses == {ids[0]: PlanStatus.SUPERSEDED, ids[1]: PlanStatus.PUBLISHED}
        published = select(func.count()).where(AuditEntry.action == "route_plan.published")
        assert s.scalar(published) == 1
    engine.dispose()


@pytest.mark.postgres
def test_many_processes_taking_over_a_dead_claim_at_once_give_one_claimer(pg_url):
    """Twelve claimers race for a run whose claimer died: exactly one takes it over, the others
    are told it is busy; the ledger names the winner."""
    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    delivery = demo(sessions)
    with session_scope(sessions) as s:
        region = s.scalars(select(Region)).one()
        s.add(
            PipelineRun(
                region_id=region.id,
                delivery_date=delivery,
                state=RunState.RUNNING,
                claimed_by="dead:1:x",
                heartbeat_at=NOW - timedelta(hours=1),
                created_at=NOW,
            )
        )
    start = threading.Barrier(12)

    def claim(name):
        start.wait()
        with session_scope(sessions) as s:
            region = s.scalars(select(Region)).one()
            _, refused = claim_run(s, region=region, delivery_date=delivery, claimer=name, now=NOW)
            return name if refused is None else refused.state

    with ThreadPoolExecutor(12) as pool:
        got = list(pool.map(claim, [f"c{i}" for i in range(12)]))
    winners = [g for g in got if g != "busy"]
    assert len(winners) == 1
    with session_scope(sessions) as s:
        assert s.scalars(select(PipelineRun.claimed_by)).one() == winners[0]
    engine.dispose()


@pytest.mark.postgres
def test_a_failure_mark_racing_a_takeover_never_fails_the_new_claimers_run(pg_url):
    """On PostgreSQL: the run is taken over while the old claimer's solve fails; the old
    claimer's failure mark is refused (it reports busy) and the run stays the new claimer's."""
    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    delivery = demo(sessions)
    settings = NightSettings(planning=SETTINGS.planning, pipeline=PipelineConfig(max_attempts=1))
    outcome = run_night(
        sessions,
        region_code="SH",
        delivery_date=delivery,
        runner=StealingRunner(sessions),
        clock=FakeClock(NOW),
        settings=settings,
    )
    assert outcome.state == "busy"
    state, claimer, by_step, _, _ = ledger(sessions)
    assert (state, claimer, by_step[Step.PLAN][0]) == (
        RunState.RUNNING,
        "thief:1:x",
        StepState.RUNNING,
    )
    engine.dispose()


@pytest.mark.postgres
def test_two_finishes_of_one_plan_at_once_draft_it_once(pg_url):
    """Eight processes finish the same stored plan at once: it becomes a draft once (one
    `route_plan.drafted` audit entry); a finish of a plan already drafted or published changes
    nothing (a published plan is never turned back into a draft)."""
    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    wave_id, _ = _cut_off_wave(sessions)
    plan_id = solve_wave(
        sessions,
        wave_id=wave_id,
        runner=LocalRunner(1),
        options=SETTINGS.planning,
        now=lambda: NOW,
    )
    start = threading.Barrier(8)

    def finish(s):
        start.wait()
        return finish_plan(s, plan=s.get(RoutePlan, plan_id), actor="t", now=NOW).status

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _: _in_scope(sessions, finish), range(8)))
    assert got == [PlanStatus.DRAFT] * 8
    with session_scope(sessions) as s:
        drafted = select(func.count()).where(AuditEntry.action == "route_plan.drafted")
        assert s.scalar(drafted) == 1
        publish_plan(s, wave=s.get(Wave, wave_id), actor="t", now=NOW)
    with session_scope(sessions) as s:
        plan = finish_plan(s, plan=s.get(RoutePlan, plan_id), actor="t", now=NOW)
        assert plan.status == PlanStatus.PUBLISHED
        assert s.scalar(drafted) == 1
    engine.dispose()
