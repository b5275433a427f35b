"""The night, wired: the pipeline's steps given the planner and the runner (local pool or RQ),
then the settlement of the region's commission.

`run_night` is what the scheduler, `groupbuy pipeline run` and the benchmark call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy.orm import Session, sessionmaker

from fulfilment.commission.ledger import settle_region
from fulfilment.core.db import session_scope
from fulfilment.core.models import Wave

from .pipeline import (
    Clock,
    PipelineConfig,
    PipelineRun,
    PlanStepClaim,
    RunOutcome,
    StepContext,
    run_pipeline,
)
from .planning import PlanningOptions, Runner, solve_wave
from .plans import PlanStatus, RoutePlan, finish_plan, publish_plan


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        import time

        time.sleep(seconds)


@dataclass(frozen=True)
class NightSettings:
    planning: PlanningOptions = PlanningOptions()
    pipeline: PipelineConfig = PipelineConfig()


def run_night(
    sessions: sessionmaker[Session],
    *,
    region_code: str,
    delivery_date: date,
    runner: Runner,
    clock: Clock | None = None,
    settings: NightSettings = NightSettings(),
    claimer: str | None = None,
    actor: str = "scheduler",
) -> RunOutcome:
    """Cutoff → plan → publish → settle for one region and delivery date, exactly once (see
    pipeline.py)."""
    clock = clock or SystemClock()

    def plan_step(
        sessions: sessionmaker[Session],
        run: PipelineRun,
        clock: Clock,
        claim: PlanStepClaim,
    ) -> int:
        assert run.wave_id is not None
        return solve_wave(
            sessions,
            wave_id=run.wave_id,
            runner=runner,
            options=settings.planning,
            now=clock.now,
            actor=actor,
            plan_id=_unfinished_plan(sessions, run),
            on_plan_started=claim.remember_plan,
            guard=claim.check,
        )

    def finish_plan_step(ctx: StepContext, plan_id: int) -> None:
        plan = ctx.session.get(RoutePlan, plan_id)
        assert plan is not None
        finish_plan(ctx.session, plan=plan, actor=ctx.actor, now=ctx.now)

    def publish_step(ctx: StepContext) -> None:
        wave = ctx.session.get(Wave, ctx.run.wave_id)
        assert wave is not None
        publish_plan(ctx.session, wave=wave, actor=ctx.actor, now=ctx.now)

    def settle_step(ctx: StepContext) -> None:
        # the settlement of the region and this night's day; told `already_settled` when a
        # `commission settle` did it first, which leaves the step done
        settle_region(
            ctx.session,
            region_id=ctx.run.region_id,
            day=ctx.run.delivery_date,
            now=ctx.now,
            actor=ctx.actor,
        )

    return run_pipeline(
        sessions,
        region_code=region_code,
        delivery_date=delivery_date,
        clock=clock,
        plan_step=plan_step,
        finish_plan_step=finish_plan_step,
        publish_step=publish_step,
        settle_step=settle_step,
        config=settings.pipeline,
        claimer=claimer,
        actor=actor,
    )


def _unfinished_plan(sessions: sessionmaker[Session], run: PipelineRun) -> int | None:
    """The plan a failed or interrupted plan step had started: its stored parts are kept."""
    if run.plan_id is None:
        return None
    with session_scope(sessions) as session:
        plan = session.get(RoutePlan, run.plan_id)
        return plan.id if plan is not None and plan.status == PlanStatus.PLANNING else None
