"""The night's pipeline: cutoff → plan → publish once per region and date, resumable, reported."""

import multiprocessing
import threading
from datetime import UTC, datetime, timedelta

import pytest
from night_factories import FakeClock
from sqlalchemy import func, select

from fulfilment.core.db import make_engine, make_session_factory, session_scope
from fulfilment.core.models import AuditEntry, CutoffRun, Order, OrderStatus, Wave, WaveStatus
from fulfilment.demo.city import build_demo
from fulfilment.night.pipeline import (
    PipelineConfig,
    PipelineRun,
    PipelineStep,
    RunState,
    Step,
    StepState,
    list_runs,
    list_stuck_steps,
)
from fulfilment.night.planning import PlanningOptions
from fulfilment.night.plans import PlanStatus, RoutePlan
from fulfilment.night.run import NightSettings, run_night
from routing import LocalRunner

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
SETTINGS = NightSettings(planning=PlanningOptions(time_limit_s=0.3, trunk_time_limit_s=0.5))


def demo(sessions, leaders=12, orders=120):
    with session_scope(sessions) as s:
        summary = build_demo(s, leaders=leaders, orders=orders, now=NOW)
    return summary.delivery_date


def steps(session, run_id):
    return {
        s.step: s
        for s in session.scalars(select(PipelineStep).where(PipelineStep.run_id == run_id))
    }


class FailingRunner(LocalRunner):
    """Fails the first `failures` solves, then works."""

    def __init__(self, failures):
        super().__init__(1)
        self.failures = failures

    def solve(self, problems, **kwargs):
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("solver host unreachable")
        yield from super().solve(problems, **kwargs)


def test_a_night_runs_cutoff_plan_publish_and_settle_once(sessions):
    """One run: the wave cut off, a plan published, the commission settled, every step done
    once; a second run is a no-op."""
    delivery = demo(sessions)
    clock = FakeClock(NOW)
    first = run_night(
        sessions,
        region_code="SH",
        delivery_date=delivery,
        runner=LocalRunner(1),
        clock=clock,
        settings=SETTINGS,
    )
    again = run_night(
        sessions,
        region_code="SH",
        delivery_date=delivery,
        runner=LocalRunner(1),
        clock=clock,
        settings=SETTINGS,
    )
    assert (first.state, again.state) == ("succeeded", "already_succeeded")
    with session_scope(sessions) as s:
        run = s.scalars(select(PipelineRun)).one()
        assert run.state == RunState.SUCCEEDED and run.claimed_by is None
        assert {k: (v.state, v.attempts) for k, v in steps(s, run.id).items()} == {
            Step.CUTOFF: (StepState.DONE, 1),
            Step.PLAN: (StepState.DONE, 1),
            Step.PUBLISH: (StepState.DONE, 1),
            Step.SETTLE: (StepState.DONE, 1),
        }
        assert s.get(Wave, run.wave_id).status == WaveStatus.CUT_OFF
        plans = s.scalars(select(RoutePlan)).all()
        assert [(p.id, p.status) for p in plans] == [(run.plan_id, PlanStatus.PUBLISHED)]


def test_a_planning_failure_retries_then_reports_without_losing_the_wave(sessions):
    """The planner fails twice with max 2 attempts: backoff 30 s, then the run fails with the
    error; the wave stays cut off. The next run resumes at the plan step (the cutoff is not
    run again) and succeeds."""
    delivery = demo(sessions)
    clock = FakeClock(NOW)
    settings = NightSettings(
        planning=SETTINGS.planning, pipeline=PipelineConfig(max_attempts=2, backoff_s=30)
    )
    failed = run_night(
        sessions,
        region_code="SH",
        delivery_date=delivery,
        runner=FailingRunner(2),
        clock=clock,
        settings=settings,
    )
    assert failed.state == "failed" and "solver host unreachable" in failed.message
    assert clock.slept == [30]
    with session_scope(sessions) as s:
        run = s.scalars(select(PipelineRun)).one()
        assert run.state == RunState.FAILED and "plan" in run.error
        by_step = steps(s, run.id)
        assert (by_step[Step.PLAN].state, by_step[Step.PLAN].attempts) == (StepState.FAILED, 2)
        assert "solver host unreachable" in by_step[Step.PLAN].error
        assert s.get(Wave, run.wave_id).status == WaveStatus.CUT_OFF
    resumed = run_night(
        sessions,
        region_code="SH",
        delivery_date=delivery,
        runner=LocalRunner(1),
        clock=clock,
        settings=settings,
    )
    assert resumed.state == "succeeded"
    with session_scope(sessions) as s:
        by_step = steps(s, s.scalars(select(PipelineRun.id)).one())
        assert by_step[Step.CUTOFF].attempts == 1
        assert (by_step[Step.PLAN].state, by_step[Step.PLAN].attempts) == (StepState.DONE, 3)
        assert s.scalar(select(func.count()).select_from(CutoffRun)) == 1


def test_a_run_claimed_by_a_live_process_is_left_alone_and_a_dead_ones_is_taken_over(sessions):
    """A fresh heartbeat means busy; once it is older than the TTL, the run is taken over."""
    delivery = demo(sessions)
    clock = FakeClock(NOW)
    with session_scope(sessions) as s:
        from fulfilment.core.models import Region

        region = s.scalars(select(Region)).one()
        s.add(
            PipelineRun(
                region_id=region.id,
                delivery_date=delivery,
                state=RunState.RUNNING,
                claimed_by="other-host:1:dead",
                heartbeat_at=NOW - timedelta(seconds=10),
                created_at=NOW,
            )
        )
    kwargs = dict(
        region_code="SH",
        delivery_date=delivery,
        runner=LocalRunner(1),
        clock=clock,
        settings=SETTINGS,
    )
    assert run_night(sessions, **kwargs).state == "busy"
    clock.advance(seconds=SETTINGS.pipeline.heartbeat_ttl_s + 1)
    assert run_night(sessions, **kwargs).state == "succeeded"


def test_a_step_running_past_its_deadline_is_reported_stuck(sessions):
    """A step started an hour ago with a 10-minute deadline shows as stuck."""
    delivery = demo(sessions)
    with session_scope(sessions) as s:
        from fulfilment.core.models import Region

        run = PipelineRun(
            region_id=s.scalars(select(Region.id)).one(),
            delivery_date=delivery,
            state=RunState.RUNNING,
            claimed_by="x",
            heartbeat_at=NOW,
            created_at=NOW,
        )
        s.add(run)
        s.flush()
        s.add(
            PipelineStep(
                run_id=run.id,
                step=Step.CUTOFF,
                state=StepState.RUNNING,
                attempts=1,
                started_at=NOW - timedelta(hours=1),
            )
        )
    with session_scope(sessions) as s:
        stuck = list_stuck_steps(s, now=NOW)
        assert [(r.region, st.step) for r, st in stuck] == [("SH", "cutoff")]
        assert list_runs(s, now=NOW - timedelta(minutes=55))[0].steps[0].stuck is False


@pytest.mark.postgres
def test_two_schedulers_at_once_give_one_run_one_wave_one_published_plan(pg_url):
    """Two processes' pipelines start together for the same night: one runs it, the other finds
    it claimed or done; one ledger row, one cutoff, one published plan."""
    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    delivery = demo(sessions)
    start = threading.Barrier(2)
    outcomes = []

    def night():
        start.wait()
        outcomes.append(
            run_night(
                sessions,
                region_code="SH",
                delivery_date=delivery,
                runner=LocalRunner(1),
                clock=FakeClock(NOW),
                settings=SETTINGS,
            ).state
        )

    threads = [threading.Thread(target=night) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) in (["busy", "succeeded"], ["already_succeeded", "succeeded"])
    with session_scope(sessions) as s:
        assert s.scalar(select(func.count()).select_from(PipelineRun)) == 1
        assert s.scalar(select(func.count()).select_from(CutoffRun)) == 1
        assert (
            s.scalar(
                select(func.count())
                .select_from(RoutePlan)
                .where(RoutePlan.status == PlanStatus.PUBLISHED)
            )
            == 1
        )
    engine.dispose()


def _die_in_the_middle_of_the_cutoff(url, delivery):
    """A child process: its pipeline is killed (SIGKILL) between the cutoff's statements."""
    import os
    import signal

    from fulfilment.waves import cutoff

    def killed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    cutoff.aggregate_wave = killed  # after groups were cancelled, before the pick lists
    sessions = make_session_factory(make_engine(url))
    run_night(
        sessions,
        region_code="SH",
        delivery_date=delivery,
        runner=LocalRunner(1),
        clock=FakeClock(NOW),
        settings=SETTINGS,
    )


@pytest.mark.postgres
def test_a_process_killed_mid_cutoff_is_taken_over_and_finishes_with_the_same_wave(pg_url):
    """SIGKILL inside the cutoff's transaction: nothing of it stays, the ledger shows the step
    running under a dead claimer; after the heartbeat TTL a new process finishes the night with
    one wave, every order locked once and one audit entry per cancelled order."""
    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    delivery = demo(sessions, leaders=12, orders=300)
    with session_scope(sessions) as s:
        orders_before = s.scalar(select(func.count()).select_from(Order))
    child = multiprocessing.get_context("spawn").Process(
        target=_die_in_the_middle_of_the_cutoff, args=(pg_url, delivery)
    )
    child.start()
    child.join(120)
    assert child.exitcode == -9
    with session_scope(sessions) as s:
        run = s.scalars(select(PipelineRun)).one()
        assert steps(s, run.id)[Step.CUTOFF].state == StepState.RUNNING
        assert s.scalars(select(Wave.status)).one() == WaveStatus.OPEN
        assert s.scalar(select(func.count()).select_from(CutoffRun)) == 0
    clock = FakeClock(NOW + timedelta(seconds=SETTINGS.pipeline.heartbeat_ttl_s + 1))
    outcome = run_night(
        sessions,
        region_code="SH",
        delivery_date=delivery,
        runner=LocalRunner(1),
        clock=clock,
        settings=SETTINGS,
    )
    assert outcome.state == "succeeded"
    with session_scope(sessions) as s:
        assert s.scalar(select(func.count()).select_from(Order)) == orders_before
        assert s.scalar(select(func.count()).select_from(Wave)) == 1
        run_row = s.scalars(select(CutoffRun)).one()
        cancelled = s.scalar(
            select(func.count())
            .select_from(Order)
            .where(Order.status == OrderStatus.CANCELLED_FOR_REFUND)
        )
        assert run_row.orders_locked + cancelled == orders_before
        audited = s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "order.cancelled_for_refund")
        )
        assert audited == cancelled
        assert steps(s, s.scalars(select(PipelineRun.id)).one())[Step.CUTOFF].attempts == 2
    engine.dispose()


def test_a_night_without_orders_still_runs_and_publishes_an_empty_plan(sessions):
    """A region with no order that day: the wave is cut off and an empty plan published."""
    from factories import DELIVERY, make_world

    with session_scope(sessions) as s:
        world = make_world(s)
        after = world.after_cutoff()
    outcome = run_night(
        sessions,
        region_code="SH",
        delivery_date=DELIVERY,
        runner=LocalRunner(1),
        clock=FakeClock(after),
        settings=SETTINGS,
    )
    assert outcome.state == "succeeded"
    with session_scope(sessions) as s:
        plan = s.scalars(select(RoutePlan)).one()
        assert (plan.status, plan.vehicles_used, plan.unassigned_count) == (
            PlanStatus.PUBLISHED,
            0,
            0,
        )
