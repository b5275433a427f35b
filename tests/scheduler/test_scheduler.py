"""The scheduler: cron triggers on the region's wall clock, re-read on change, catch-up once."""

import threading
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from night_factories import FakeClock
from sqlalchemy import func, select

from fulfilment.core.db import make_engine, make_session_factory, session_scope
from fulfilment.core.models import CutoffRun, Region, Wave
from fulfilment.demo.city import build_demo
from fulfilment.night.pipeline import PipelineRun, RunState
from fulfilment.night.planning import PlanningOptions
from fulfilment.night.plans import PlanStatus, RoutePlan
from fulfilment.night.run import NightSettings
from fulfilment.waves.cycle import cutoff_for_delivery, ensure_wave
from fulfilment.waves.deadlines import change_cutoff_time
from routing import LocalRunner
from scheduler.service import NightScheduler, cutoff_trigger

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
SETTINGS = NightSettings(planning=PlanningOptions(time_limit_s=0.3, trunk_time_limit_s=0.5))


def scheduler_for(sessions, clock):
    return NightScheduler(
        sessions,
        settings=SETTINGS,
        runner=LocalRunner(1),
        clock=clock,
        scheduler=BackgroundScheduler(timezone=UTC),
    )


def test_berlin_trigger_fires_at_22_local_across_both_dst_changes():
    """The cron trigger's fire times around both 2026 DST changes are the waves' deadlines."""
    region = Region(
        code="B",
        name="Berlin",
        tz="Europe/Berlin",
        cutoff_time=time(22, 0),
        delivery_offset_days=1,
        lat=52.5,
        lon=13.4,
    )
    trigger = cutoff_trigger(region.tz, region.cutoff_time)
    for first_day in (date(2026, 3, 27), date(2026, 10, 23)):
        fire = trigger.get_next_fire_time(
            None,
            datetime(2026, 1, 1, tzinfo=UTC).replace(
                year=first_day.year, month=first_day.month, day=first_day.day
            ),
        )
        for offset in range(4):
            delivery = first_day + timedelta(days=offset + 1)
            assert fire == cutoff_for_delivery(region, delivery)
            assert fire.astimezone(ZoneInfo("Europe/Berlin")).time() == time(22, 0)
            fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))


def test_changing_the_cutoff_moves_the_open_waves_deadline_and_the_trigger(sessions):
    """22:00 instead of 23:00: the open wave's deadline and the region's job both move."""
    clock = FakeClock(NOW)
    with session_scope(sessions) as s:
        delivery = build_demo(s, leaders=6, orders=20, now=NOW).delivery_date
        tomorrow = ensure_wave(s, s.scalars(select(Region)).one(), delivery + timedelta(days=1))
        assert tomorrow.cutoff_due_at > NOW
    night = scheduler_for(sessions, clock)
    night.scheduler.start(paused=True)
    assert night.sync_jobs() == ["SH"]
    job = night.scheduler.get_job("night:SH")
    assert (str(job.trigger.fields[5]), str(job.trigger.fields[6])) == ("23", "0")
    assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 3600)
    with session_scope(sessions) as s:
        region = s.scalars(select(Region)).one()
        wave = s.scalars(select(Wave).where(Wave.delivery_date == tomorrow.delivery_date)).one()
        old_due = wave.cutoff_due_at
        moved = change_cutoff_time(s, region=region, cutoff_time=time(22, 0), now=NOW)
        assert moved == [wave] and wave.cutoff_due_at == old_due - timedelta(hours=1)
    assert night.sync_jobs() == ["SH"]
    assert night.sync_jobs() == []  # nothing changed since
    job = night.scheduler.get_job("night:SH")
    assert (str(job.trigger.fields[5]), str(job.trigger.fields[6])) == ("22", "0")
    night.scheduler.shutdown(wait=False)


def test_a_scheduler_down_over_the_cutoff_catches_up_exactly_once(sessions):
    """Started after the deadline, the scheduler runs the missed night from the ledger; starting
    again (or sweeping) does not run it twice."""
    clock = FakeClock(NOW)
    with session_scope(sessions) as s:
        delivery = build_demo(s, leaders=8, orders=60, now=NOW).delivery_date
    night = scheduler_for(sessions, clock)
    first = night.catch_up()
    assert [o.state for o in first] == ["succeeded"]
    clock.advance(minutes=5)
    assert scheduler_for(sessions, clock).catch_up() == []
    with session_scope(sessions) as s:
        run = s.scalars(select(PipelineRun)).one()
        assert (run.delivery_date, run.state) == (delivery, RunState.SUCCEEDED)
        assert s.scalar(select(func.count()).select_from(CutoffRun)) == 1


@pytest.mark.postgres
def test_two_schedulers_catching_up_at_once_run_the_night_once(pg_url):
    """Two scheduler processes start together after a missed cutoff: one run, one published plan."""
    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    with session_scope(sessions) as s:
        build_demo(s, leaders=8, orders=60, now=NOW)
    start = threading.Barrier(2)
    results = []

    def catch_up():
        night = scheduler_for(sessions, FakeClock(NOW))
        start.wait()
        results.extend(o.state for o in night.catch_up())

    threads = [threading.Thread(target=catch_up) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("succeeded") == 1
    with session_scope(sessions) as s:
        assert s.scalar(select(func.count()).select_from(PipelineRun)) == 1
        published = (
            select(func.count())
            .select_from(RoutePlan)
            .where(RoutePlan.status == PlanStatus.PUBLISHED)
        )
        assert s.scalar(published) == 1
    engine.dispose()
