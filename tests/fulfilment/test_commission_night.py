"""The night settles the commission as a step of its own, after publishing: once per region
and day, and a failed settlement resumes at the settlement, not from the start."""

from datetime import UTC, datetime, timedelta

import pytest
from night_factories import FakeClock
from sqlalchemy import func, select

import fulfilment.night.run as night_run
from fulfilment.commission.ledger import accrue_collected
from fulfilment.commission.models import CommissionEntry, EntryKind, SettlementRun
from fulfilment.commission.rates import set_rate
from fulfilment.core.db import session_scope
from fulfilment.core.models import Order, OrderLine
from fulfilment.demo.city import build_demo
from fulfilment.night.pipeline import PipelineConfig, PipelineStep, RunState, Step, StepState
from fulfilment.night.planning import PlanningOptions
from fulfilment.night.run import NightSettings, run_night
from routing import LocalRunner

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
PLANNING = PlanningOptions(time_limit_s=0.3, trunk_time_limit_s=0.5)


def _demo_with_collected_lines(sessions, lines=5):
    """A demo night, and `lines` of its orders' lines collected eight days before NOW (their
    seven-day window has passed) at a 5 % region rate."""
    with session_scope(sessions) as s:
        summary = build_demo(s, leaders=8, orders=40, now=NOW)
        set_rate(s, region_code=summary.region_code, rate_bps=500, actor="admin")
        picked = s.execute(
            select(OrderLine.id, OrderLine.quantity).join(Order).order_by(OrderLine.id).limit(lines)
        ).all()
        accrue_collected(
            s,
            handed=dict(picked),
            collected_at=NOW - timedelta(days=8),
            after_sales_days=7,
            actor="staff",
        )
    return summary


def _steps(sessions):
    with session_scope(sessions) as s:
        return {row.step: (row.state, row.attempts) for row in s.scalars(select(PipelineStep))}


def _settled(sessions):
    with session_scope(sessions) as s:
        kind = CommissionEntry.kind == EntryKind.SETTLED
        return s.scalar(select(func.count()).where(kind))


def test_the_night_settles_the_commission_due_after_publishing(sessions):
    """The night's last step settles the five lines whose window has passed and records the
    region's settlement of the day; the night run again changes nothing."""
    summary = _demo_with_collected_lines(sessions)
    settings = NightSettings(planning=PLANNING)
    args = dict(region_code=summary.region_code, delivery_date=summary.delivery_date)
    outcome = run_night(
        sessions, runner=LocalRunner(1), clock=FakeClock(NOW), settings=settings, **args
    )
    assert outcome.state == "succeeded"
    assert _steps(sessions)[Step.SETTLE] == (StepState.DONE, 1)
    assert _settled(sessions) == 5
    with session_scope(sessions) as s:
        run = s.scalars(select(SettlementRun)).one()
        assert (run.day, run.settled_lines) == (summary.delivery_date, 5)
    again = run_night(
        sessions, runner=LocalRunner(1), clock=FakeClock(NOW), settings=settings, **args
    )
    assert again.state == "already_succeeded" and _settled(sessions) == 5


def test_a_failed_settlement_resumes_at_the_settlement(sessions, monkeypatch):
    """The settlement fails (one attempt allowed): the run fails at `settle` with the wave cut
    off and the plan published; the next run does not cut off, plan or publish again, and
    settles."""
    summary = _demo_with_collected_lines(sessions)
    real = night_run.settle_region
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(night_run, "settle_region", flaky)
    settings = NightSettings(planning=PLANNING, pipeline=PipelineConfig(max_attempts=1))
    args = dict(region_code=summary.region_code, delivery_date=summary.delivery_date)
    failed = run_night(
        sessions, runner=LocalRunner(1), clock=FakeClock(NOW), settings=settings, **args
    )
    assert failed.state == "failed" and "settle" in failed.message
    assert _steps(sessions)[Step.SETTLE] == (StepState.FAILED, 1)
    assert _settled(sessions) == 0
    resumed = run_night(
        sessions,
        runner=LocalRunner(1),
        clock=FakeClock(NOW + timedelta(hours=1)),
        settings=settings,
        **args,
    )
    assert resumed.state == "succeeded"
    steps = _steps(sessions)
    assert steps[Step.CUTOFF] == steps[Step.PLAN] == steps[Step.PUBLISH] == (StepState.DONE, 1)
    assert steps[Step.SETTLE] == (StepState.DONE, 2)
    assert _settled(sessions) == 5
    with session_scope(sessions) as s:
        from fulfilment.night.pipeline import PipelineRun

        assert s.scalars(select(PipelineRun.state)).one() == RunState.SUCCEEDED


@pytest.mark.postgres
def test_an_operator_settlement_first_leaves_the_nights_step_done(pg_url):
    """`commission settle` for the night's day ran first: the night's step is told it was done
    (no second settlement) and the run succeeds."""
    from fulfilment.commission.ledger import settle_region
    from fulfilment.core.db import make_engine, make_session_factory
    from fulfilment.core.models import Region

    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    summary = _demo_with_collected_lines(sessions)
    with session_scope(sessions) as s:
        region_id = s.scalar(select(Region.id).where(Region.code == summary.region_code))
        settle_region(s, region_id=region_id, day=summary.delivery_date, now=NOW, actor="ops")
    outcome = run_night(
        sessions,
        region_code=summary.region_code,
        delivery_date=summary.delivery_date,
        runner=LocalRunner(1),
        clock=FakeClock(NOW),
        settings=NightSettings(planning=PLANNING),
    )
    assert outcome.state == "succeeded"
    assert _settled(sessions) == 5
    with session_scope(sessions) as s:
        assert s.scalars(select(SettlementRun.actor)).all() == ["ops"]
    engine.dispose()
