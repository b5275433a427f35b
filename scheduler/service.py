"""The nightly scheduler: one APScheduler cron trigger per region at its cutoff, on its wall clock.

APScheduler only says *when* to look; the run ledger (fulfilment.pipeline) says *what* has run.
At start, and every few minutes, the scheduler re-reads the regions (a changed cutoff time or
time zone moves the trigger), reports steps stuck past their deadline, and catches up from the
ledger: every due night that never ran runs once, and every unfinished night whose claimer died
(whatever its wave's state) is taken over; a failed night is retried a few times with backoff
(`PipelineConfig.scheduler_retries`). The pipeline's claim
makes two schedulers (or a scheduler and a manual `pipeline run`) give one run.
"""

from __future__ import annotations

import logging
from datetime import UTC, time, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fulfilment.core.db import session_scope
from fulfilment.core.models import Region
from fulfilment.night.pipeline import (
    Clock,
    RunOutcome,
    list_runs_to_resume,
    list_stuck_steps,
    needs_run,
)
from fulfilment.night.planning import Runner
from fulfilment.night.run import NightSettings, SystemClock, run_night
from fulfilment.night.workers import runner_from_environment
from fulfilment.waves.deadlines import list_due_deliveries

log = logging.getLogger("groupbuy.scheduler")

CATCH_UP_DAYS = 7  # how far back an overdue open wave is still caught up automatically


def cutoff_trigger(region_tz: str, cutoff: time) -> CronTrigger:
    """Fires at the region's cutoff time on its own wall clock, DST included."""
    return CronTrigger(
        hour=cutoff.hour, minute=cutoff.minute, second=cutoff.second, timezone=ZoneInfo(region_tz)
    )


class NightScheduler:
    """Wires regions to cron triggers and runs their nights through the pipeline."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        misfire_grace_s: int = 3600,
        sweep_every_s: int = 300,
        settings: NightSettings | None = None,
        runner: Runner | None = None,
        clock: Clock | None = None,
        scheduler: BaseScheduler | None = None,
    ) -> None:
        self.sessions = sessions
        self.misfire_grace_s = misfire_grace_s
        self.sweep_every_s = sweep_every_s
        self.settings = settings or NightSettings()
        self.runner = runner or runner_from_environment()
        self.clock = clock or SystemClock()
        self.scheduler = scheduler or BlockingScheduler(timezone=UTC)
        self._wired: dict[str, tuple[str, time]] = {}

    def sync_jobs(self) -> list[str]:
        """One job per region, from its cutoff time and zone; returns the regions (re)wired."""
        with session_scope(self.sessions) as session:
            regions = {r.code: (r.tz, r.cutoff_time) for r in session.scalars(select(Region))}
        changed = []
        for code, (tz, cutoff) in sorted(regions.items()):
            if self._wired.get(code) == (tz, cutoff):
                continue
            job_id = f"night:{code}"
            if self.scheduler.get_job(job_id) is not None:
                self.scheduler.reschedule_job(job_id, trigger=cutoff_trigger(tz, cutoff))
                self._wired[code] = (tz, cutoff)
                changed.append(code)
                log.info("night %s: cutoff moved to %s %s", code, cutoff.isoformat(), tz)
                continue
            self.scheduler.add_job(
                self.run_region,
                cutoff_trigger(tz, cutoff),
                args=[code],
                id=job_id,
                name=f"night {code} at {cutoff.isoformat()} {tz}",
                replace_existing=True,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=self.misfire_grace_s,
            )
            self._wired[code] = (tz, cutoff)
            changed.append(code)
            log.info("night %s: cutoff %s %s", code, cutoff.isoformat(), tz)
        for code in set(self._wired) - set(regions):
            self.scheduler.remove_job(f"night:{code}")
            del self._wired[code]
        return changed

    def run_region(self, region_code: str) -> list[RunOutcome]:
        """Run every due night of the region that the ledger says still needs running, and take
        over every unfinished night of the region whose claimer died (or whose failure is due a
        retry), whatever its wave's state: a wave the dead run had cut off is no longer due."""
        now = self.clock.now()
        config = self.settings.pipeline
        with session_scope(self.sessions) as session:
            region = session.scalars(select(Region).where(Region.code == region_code)).one()
            since = (now - timedelta(days=CATCH_UP_DAYS)).date()
            due = [
                d
                for d in list_due_deliveries(session, region=region, now=now, since=since)
                if needs_run(session, region=region, delivery_date=d, now=now, config=config)
            ]
            resumed = list_runs_to_resume(session, region=region, now=now, config=config)
            due = sorted(set(due) | set(resumed))
        outcomes = []
        for delivery in due:
            try:
                outcome = run_night(
                    self.sessions,
                    region_code=region_code,
                    delivery_date=delivery,
                    runner=self.runner,
                    clock=self.clock,
                    settings=self.settings,
                )
            except Exception:  # a job must not kill the scheduler; the ledger keeps the state
                log.exception("night %s %s failed", region_code, delivery)
                continue
            log.info("night %s %s: %s %s", region_code, delivery, outcome.state, outcome.message)
            outcomes.append(outcome)
        return outcomes

    def catch_up(self) -> list[RunOutcome]:
        """Every region's due nights the ledger has not seen through (at start, and each sweep)."""
        with session_scope(self.sessions) as session:
            codes = sorted(session.scalars(select(Region.code)))
        return [o for code in codes for o in self.run_region(code)]

    def report_stuck(self) -> int:
        with session_scope(self.sessions) as session:
            stuck = list_stuck_steps(session, now=self.clock.now(), config=self.settings.pipeline)
        for run, step in stuck:
            log.error(
                "night %s %s: step %s running since %s, past its deadline (claimed by %s)",
                run.region,
                run.delivery_date,
                step.step,
                step.started_at,
                run.claimed_by,
            )
        return len(stuck)

    def sweep(self) -> None:
        self.sync_jobs()
        self.report_stuck()
        self.catch_up()

    def run_forever(self) -> None:
        self.sync_jobs()
        self.catch_up()
        self.scheduler.add_job(
            self.sweep,
            "interval",
            seconds=self.sweep_every_s,
            id="night:sweep",
            coalesce=True,
            max_instances=1,
            replace_existing=True,
        )
        log.info("scheduler started: %s", ", ".join(sorted(self._wired)) or "no regions yet")
        self.scheduler.start()
