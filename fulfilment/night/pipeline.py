"""The night's pipeline for one region and delivery date: cutoff → plan → publish → settle (the
leaders' commission), exactly once.

A run ledger row, unique per (region, delivery date), records each step's state, attempts, start,
end and error. A run is claimed by one process (its `claimer`), which keeps a heartbeat; a claim
whose heartbeat is older than the TTL belongs to a dead process and is taken over. Each step's
work and its ledger mark commit in one transaction, after checking the claim under the run's row
lock (and, on PostgreSQL, a transaction-scoped advisory lock): two schedulers, or a scheduler and
a manual `pipeline run`, give one run, one wave and one published plan. Every mark (a failure
too) and every stored plan part is written under the claim, so a process that lost it writes
nothing more and reports `busy`. A failed step is retried with backoff and the run resumes from
it, never from the start; a failed run is retried by the scheduler a few times
(`retry_due`). The clock is passed in.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Protocol

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship, sessionmaker

from fulfilment.core.db import advisory_xact_lock, insert_ignore, session_scope
from fulfilment.core.models import Base, Region, _enum
from fulfilment.waves.cutoff import cut_off_wave
from fulfilment.waves.deadlines import refresh_cutoff_statistics

log = logging.getLogger(__name__)


class Step(StrEnum):
    CUTOFF = "cutoff"  # with the aggregation into pick lists
    PLAN = "plan"
    PUBLISH = "publish"
    SETTLE = "settle"  # the commission whose after-sales window has passed (commission.ledger)


STEPS = (Step.CUTOFF, Step.PLAN, Step.PUBLISH, Step.SETTLE)


class RunState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # a step ran out of attempts: reported; retried (`retry_due`) or resumed
    # by the next `pipeline run`


class StepState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class PipelineRun(Base):
    """The ledger of one night: one row per region and delivery date, ever."""

    __tablename__ = "pipeline_run"
    __table_args__ = (UniqueConstraint("region_id", "delivery_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"))
    delivery_date: Mapped[date]
    state: Mapped[RunState] = mapped_column(_enum(RunState), default=RunState.RUNNING)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    heartbeat_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    wave_id: Mapped[int | None] = mapped_column(ForeignKey("wave.id"))
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("route_plan.id"))
    error: Mapped[str | None] = mapped_column(Text)

    steps: Mapped[list[PipelineStep]] = relationship(order_by="PipelineStep.id")
    region: Mapped[Region] = relationship()


class PipelineStep(Base):
    """One step of a run: its state, how often it was tried, when, and the last error."""

    __tablename__ = "pipeline_step"
    __table_args__ = (UniqueConstraint("run_id", "step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("pipeline_run.id"), index=True)
    step: Mapped[Step] = mapped_column(_enum(Step))
    state: Mapped[StepState] = mapped_column(_enum(StepState), default=StepState.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)


class Clock(Protocol):
    """Time for the pipeline: tests pass one they control (no real sleeps)."""

    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class PipelineConfig:
    max_attempts: int = 3  # per step, per invocation
    backoff_s: float = 30.0  # doubled after each failure
    heartbeat_ttl_s: float = 120.0  # a claim older than this belongs to a dead process
    heartbeat_every_s: float = 20.0
    # a FAILED run is retried by the scheduler this many times, the first this long after it
    # failed, each next one twice as long after; then it waits for an operator's `pipeline run`
    retry_failed_after_s: float = 900.0
    scheduler_retries: int = 2
    step_deadline_s: dict[Step, float] = field(
        default_factory=lambda: {
            Step.CUTOFF: 600.0,
            Step.PLAN: 1800.0,
            Step.PUBLISH: 300.0,
            Step.SETTLE: 600.0,
        }
    )


def new_claimer() -> str:
    """Who claims: host, process and a random part (a restarted process is someone else)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class ClaimLost(RuntimeError):
    """Another process took the run over (this one's heartbeat had expired)."""


@dataclass(frozen=True, slots=True)
class RunOutcome:
    run_id: int | None
    state: str  # succeeded, failed, busy (claimed by a live process), already_succeeded
    message: str = ""


def _lock(session: Session, region_id: int, delivery_date: date) -> None:
    advisory_xact_lock(session, f"pipeline:{region_id}:{delivery_date.isoformat()}")


def _run_for_update(session: Session, region_id: int, delivery_date: date) -> PipelineRun | None:
    return session.scalars(
        select(PipelineRun)
        .where(PipelineRun.region_id == region_id, PipelineRun.delivery_date == delivery_date)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def claim_run(
    session: Session,
    *,
    region: Region,
    delivery_date: date,
    claimer: str,
    now: datetime,
    config: PipelineConfig = PipelineConfig(),
) -> tuple[PipelineRun, RunOutcome | None]:
    """Claim the night's run (creating its ledger row), or say why not (busy, already done).

    Exactly once: the row is unique per (region, delivery date) (`ON CONFLICT DO NOTHING`), and
    the claim is read and written under a transaction-scoped advisory lock on PostgreSQL and the
    row's lock (`FOR UPDATE`; SQLite's writer lock): of claimers racing for a new run or for a
    dead claimer's, one wins and the others are told `busy`."""
    _lock(session, region.id, delivery_date)
    insert_ignore(
        session,
        PipelineRun.__table__,
        {
            "region_id": region.id,
            "delivery_date": delivery_date,
            "state": RunState.RUNNING.value,
            "created_at": now,
        },
        ["region_id", "delivery_date"],
    )
    run = _run_for_update(session, region.id, delivery_date)
    assert run is not None
    if run.state == RunState.SUCCEEDED:
        return run, RunOutcome(run.id, "already_succeeded", "the night has run already")
    live = run.heartbeat_at is not None and run.heartbeat_at > now - timedelta(
        seconds=config.heartbeat_ttl_s
    )
    if run.claimed_by not in (None, claimer) and live and run.state == RunState.RUNNING:
        return run, RunOutcome(run.id, "busy", f"claimed by {run.claimed_by}")
    if run.claimed_by not in (None, claimer):
        log.warning(
            "run %s for %s %s taken over from %s (no heartbeat since %s)",
            run.id,
            region.code,
            delivery_date,
            run.claimed_by,
            run.heartbeat_at,
        )
    run.claimed_by = claimer
    run.heartbeat_at = now
    run.state = RunState.RUNNING
    run.error = None
    for step in STEPS:
        insert_ignore(
            session,
            PipelineStep.__table__,
            {"run_id": run.id, "step": step.value, "state": StepState.PENDING.value, "attempts": 0},
            ["run_id", "step"],
        )
    session.flush()
    return run, None


def _check_claim(session: Session, run_id: int, claimer: str, now: datetime) -> PipelineRun:
    """Lock the run (advisory lock, then the row) and make sure `claimer` still holds it
    (ClaimLost if not); beats the heartbeat. Every write of the ledger goes through here, so a
    process that lost its claim cannot commit a mark."""
    key = session.execute(
        select(PipelineRun.region_id, PipelineRun.delivery_date).where(PipelineRun.id == run_id)
    ).one()
    _lock(session, key.region_id, key.delivery_date)  # the same order as claim_run: no deadlock
    run = session.get(PipelineRun, run_id, with_for_update=True, populate_existing=True)
    assert run is not None
    if run.claimed_by != claimer:
        raise ClaimLost(f"run {run_id} is now claimed by {run.claimed_by}")
    run.heartbeat_at = now
    return run


def _step(session: Session, run_id: int, step: Step) -> PipelineStep:
    row = session.scalars(
        select(PipelineStep)
        .where(PipelineStep.run_id == run_id, PipelineStep.step == step)
        .execution_options(populate_existing=True)
    ).one()
    return row


@dataclass
class StepContext:
    """What a step's work gets: the session of its transaction, the run, and the pipeline's tools."""

    session: Session
    run: PipelineRun
    now: datetime
    actor: str


@dataclass(frozen=True)
class PlanStepClaim:
    """What the plan step gets of the run's claim: `remember_plan(plan_id)` records the plan on
    the run (in its own transaction, under the claim); `check(session)` raises ClaimLost unless
    this process still holds the claim (locking the run in `session`'s transaction), so that each
    part is stored under the claim and a process that lost it stores nothing more."""

    remember_plan: Callable[[int], None]
    check: Callable[[Session], None]


PlanStep = Callable[[sessionmaker[Session], PipelineRun, Clock, PlanStepClaim], int]


def run_pipeline(
    sessions: sessionmaker[Session],
    *,
    region_code: str,
    delivery_date: date,
    clock: Clock,
    plan_step: PlanStep,
    finish_plan_step: Callable[[StepContext, int], None],
    publish_step: Callable[[StepContext], None],
    settle_step: Callable[[StepContext], None],
    config: PipelineConfig = PipelineConfig(),
    claimer: str | None = None,
    actor: str = "scheduler",
) -> RunOutcome:
    """Run (or resume) the night for one region and delivery date, through every step not done.

    `plan_step` solves and stores the plan's parts outside any transaction and returns the plan's
    id; `finish_plan_step`, `publish_step` and `settle_step` run inside the step's transaction
    (see run.py,
    which wires the planner in). The last step's transaction also marks the run succeeded. A
    process that loses its claim (at any mark, store or heartbeat) stops and reports `busy`; it
    never raises ClaimLost and never writes the ledger again."""
    claimer = claimer or new_claimer()
    with session_scope(sessions) as session:
        region = session.scalars(select(Region).where(Region.code == region_code)).one()
        region_id = region.id
        run, refused = claim_run(
            session,
            region=region,
            delivery_date=delivery_date,
            claimer=claimer,
            now=clock.now(),
            config=config,
        )
        run_id = run.id
    if refused is not None:
        return refused
    engine = sessions.kw["bind"]
    try:
        for step in STEPS:
            with session_scope(sessions) as session:
                if _step(session, run_id, step).state == StepState.DONE:
                    continue
            last = step == STEPS[-1]
            tries = 0
            while True:
                tries += 1
                try:
                    _mark_running(sessions, run_id, step, claimer, clock.now())
                    if step == Step.CUTOFF:
                        refresh_cutoff_statistics(engine)  # its own transaction, before the cutoff

                        def cutoff_work(ctx: StepContext) -> None:
                            region = ctx.session.get(Region, region_id)
                            assert region is not None
                            wave, _ = cut_off_wave(
                                ctx.session,
                                region=region,
                                delivery_date=delivery_date,
                                now=ctx.now,
                                actor=ctx.actor,
                            )
                            ctx.run.wave_id = wave.id

                        _commit_step(
                            sessions, run_id, step, claimer, clock, actor, cutoff_work, last
                        )
                    elif step == Step.PLAN:
                        plan_id = _with_heartbeat(
                            sessions, run_id, claimer, clock, config, plan_step
                        )
                        _commit_step(
                            sessions,
                            run_id,
                            step,
                            claimer,
                            clock,
                            actor,
                            lambda ctx, pid=plan_id: finish_plan_step(ctx, pid),  # type: ignore[misc]
                            last,
                        )
                    else:
                        work = publish_step if step == Step.PUBLISH else settle_step
                        _commit_step(sessions, run_id, step, claimer, clock, actor, work, last)
                    break
                except ClaimLost:
                    raise
                except Exception as err:  # noqa: BLE001 - recorded in the ledger, then retried
                    final = tries >= config.max_attempts
                    delay = config.backoff_s * 2 ** (tries - 1)
                    _mark_failed(sessions, run_id, step, claimer, clock.now(), err, delay, final)
                    if final:
                        log.error(
                            "night %s %s: step %s failed %d times, giving up: %s",
                            region_code,
                            delivery_date,
                            step.value,
                            tries,
                            err,
                        )
                        return RunOutcome(run_id, "failed", f"{step.value}: {err}")
                    log.warning(
                        "night %s %s: step %s failed (%s); retry in %.0f s",
                        region_code,
                        delivery_date,
                        step.value,
                        err,
                        delay,
                    )
                    clock.sleep(delay)
        with session_scope(sessions) as session:  # every step was done before this process came
            run = _check_claim(session, run_id, claimer, clock.now())
            if run.state != RunState.SUCCEEDED:
                _mark_succeeded(run, clock.now())
    except ClaimLost as lost:
        with session_scope(sessions) as session:
            state = session.scalar(select(PipelineRun.state).where(PipelineRun.id == run_id))
        if state == RunState.SUCCEEDED:  # our last step committed it; lost only afterwards
            return RunOutcome(run_id, "succeeded")
        log.warning("%s", lost)
        return RunOutcome(run_id, "busy", str(lost))
    return RunOutcome(run_id, "succeeded")


def _mark_succeeded(run: PipelineRun, now: datetime) -> None:
    run.state = RunState.SUCCEEDED
    run.finished_at = now
    run.claimed_by = None
    run.error = None


def _mark_running(
    sessions: sessionmaker[Session], run_id: int, step: Step, claimer: str, now: datetime
) -> None:
    """A step's attempt begins. Exactly once per attempt: written under the claim
    (`_check_claim`), so only the claimer counts attempts."""
    with session_scope(sessions) as session:
        _check_claim(session, run_id, claimer, now)
        row = _step(session, run_id, step)
        row.state = StepState.RUNNING
        row.attempts += 1
        row.started_at = now
        row.finished_at = None
        row.next_attempt_at = None


def _commit_step(
    sessions: sessionmaker[Session],
    run_id: int,
    step: Step,
    claimer: str,
    clock: Clock,
    actor: str,
    work: Callable[[StepContext], None],
    last: bool = False,
) -> None:
    """The step's work and its ledger mark (and, for the last step, the run's success) in one
    transaction, under the claim: exactly once, since a process that lost the claim cannot
    commit (ClaimLost) and a done step is never run again."""
    with session_scope(sessions) as session:
        now = clock.now()
        run = _check_claim(session, run_id, claimer, now)
        work(StepContext(session, run, now, actor))
        row = _step(session, run_id, step)
        row.state = StepState.DONE
        row.finished_at = clock.now()  # after the work: the ledger shows how long it took
        row.error = None
        if last:
            _mark_succeeded(run, row.finished_at)


def _mark_failed(
    sessions: sessionmaker[Session],
    run_id: int,
    step: Step,
    claimer: str,
    now: datetime,
    err: Exception,
    delay_s: float,
    final: bool,
) -> None:
    """Record a step's failed attempt (and, on the last, the run's failure). Under the claim
    like every mark: a process that lost its claim raises ClaimLost here and writes nothing, so
    it can never fail a run another process has taken over."""
    message = f"{type(err).__name__}: {err}"[:2000]
    with session_scope(sessions) as session:
        run = _check_claim(session, run_id, claimer, now)
        row = _step(session, run_id, step)
        row.state = StepState.FAILED
        row.error = message
        row.finished_at = now
        row.next_attempt_at = None if final else now + timedelta(seconds=delay_s)
        if final:
            run.state = RunState.FAILED
            run.error = f"{step.value}: {message}"
            run.claimed_by = None


def _with_heartbeat(
    sessions: sessionmaker[Session],
    run_id: int,
    claimer: str,
    clock: Clock,
    config: PipelineConfig,
    plan_step: PlanStep,
) -> int:
    """Run the long plan step while a thread keeps the claim's heartbeat fresh."""
    stop = threading.Event()
    lost: list[str] = []

    def beat() -> None:
        while not stop.wait(config.heartbeat_every_s):
            try:
                with session_scope(sessions) as session:
                    _check_claim(session, run_id, claimer, clock.now())
            except ClaimLost as err:
                lost.append(str(err))
                return
            except Exception:  # noqa: BLE001 - a missed beat is retried at the next one
                log.exception("heartbeat of run %s failed", run_id)

    def remember_plan(plan_id: int) -> None:
        with session_scope(sessions) as session:
            run = _check_claim(session, run_id, claimer, clock.now())
            run.plan_id = plan_id

    def check(session: Session) -> None:
        if lost:
            raise ClaimLost(lost[0])
        _check_claim(session, run_id, claimer, clock.now())

    thread = threading.Thread(target=beat, name=f"heartbeat-{run_id}", daemon=True)
    thread.start()
    try:
        with session_scope(sessions) as session:
            run = session.get(PipelineRun, run_id)
            assert run is not None
            session.expunge(run)
        plan_id = plan_step(sessions, run, clock, PlanStepClaim(remember_plan, check))
    finally:
        stop.set()
        thread.join(5)
    if lost:
        raise ClaimLost(lost[0])
    return plan_id


# ---------------------------------------------------------------------------------------------
# Reading the ledger


@dataclass(frozen=True, slots=True)
class StepView:
    step: str
    state: str
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    stuck: bool


@dataclass(frozen=True, slots=True)
class RunView:
    run_id: int
    region: str
    delivery_date: date
    state: str
    claimed_by: str | None
    heartbeat_at: datetime | None
    wave_id: int | None
    plan_id: int | None
    error: str | None
    steps: list[StepView]
    # running, but its claimer's heartbeat is older than the TTL: the process died (or lost its
    # Redis, its database); the scheduler's next sweep takes the run over
    abandoned: bool = False


def list_runs(
    session: Session,
    *,
    now: datetime,
    region_code: str | None = None,
    delivery_date: date | None = None,
    config: PipelineConfig = PipelineConfig(),
) -> list[RunView]:
    """The ledger's runs, newest first, with each step; a step running past its deadline is
    marked stuck, and a running run whose claimer's heartbeat is older than the TTL abandoned."""
    query = select(PipelineRun).join(Region).order_by(PipelineRun.delivery_date.desc(), Region.code)
    if region_code:
        query = query.where(Region.code == region_code)
    if delivery_date:
        query = query.where(PipelineRun.delivery_date == delivery_date)
    out = []
    for run in session.scalars(query):
        steps = [
            StepView(
                s.step.value,
                s.state.value,
                s.attempts,
                s.started_at,
                s.finished_at,
                s.error,
                s.state == StepState.RUNNING
                and s.started_at is not None
                and now - s.started_at > timedelta(seconds=config.step_deadline_s[s.step]),
            )
            for s in run.steps
        ]
        out.append(
            RunView(
                run.id,
                run.region.code,
                run.delivery_date,
                run.state.value,
                run.claimed_by,
                run.heartbeat_at,
                run.wave_id,
                run.plan_id,
                run.error,
                steps,
                run.state == RunState.RUNNING
                and (
                    run.heartbeat_at is None
                    or now - run.heartbeat_at > timedelta(seconds=config.heartbeat_ttl_s)
                ),
            )
        )
    return out


def list_stuck_steps(
    session: Session, *, now: datetime, config: PipelineConfig = PipelineConfig()
) -> list[tuple[RunView, StepView]]:
    return [
        (run, step)
        for run in list_runs(session, now=now, config=config)
        if run.state == RunState.RUNNING.value
        for step in run.steps
        if step.stuck
    ]


def find_run(session: Session, *, region_id: int, delivery_date: date) -> PipelineRun | None:
    return session.scalars(
        select(PipelineRun).where(
            PipelineRun.region_id == region_id, PipelineRun.delivery_date == delivery_date
        )
    ).first()


def needs_run(
    session: Session,
    *,
    region: Region,
    delivery_date: date,
    now: datetime,
    config: PipelineConfig = PipelineConfig(),
) -> bool:
    """A due night the scheduler should (re)start: never run, claimed by a dead process, or
    failed with a scheduler retry due (`retry_due`)."""
    run = find_run(session, region_id=region.id, delivery_date=delivery_date)
    return run is None or _resumable(session, run, now, config)


def list_runs_to_resume(
    session: Session, *, region: Region, now: datetime, config: PipelineConfig = PipelineConfig()
) -> list[date]:
    """The region's unfinished runs the scheduler takes over, whatever their wave's state (a
    wave the dead run had cut off is no longer due, but its night is not finished): running
    under a claimer whose heartbeat is older than the TTL, or failed with a retry due."""
    runs = session.scalars(
        select(PipelineRun)
        .where(
            PipelineRun.region_id == region.id,
            PipelineRun.state.in_([RunState.RUNNING, RunState.FAILED]),
        )
        .order_by(PipelineRun.delivery_date)
    )
    return [run.delivery_date for run in runs if _resumable(session, run, now, config)]


def _resumable(session: Session, run: PipelineRun, now: datetime, config: PipelineConfig) -> bool:
    if run.state == RunState.RUNNING:
        return run.heartbeat_at is None or run.heartbeat_at <= now - timedelta(
            seconds=config.heartbeat_ttl_s
        )
    if run.state == RunState.FAILED:
        return retry_due(session, run, now=now, config=config)
    return False


def retry_due(
    session: Session, run: PipelineRun, *, now: datetime, config: PipelineConfig = PipelineConfig()
) -> bool:
    """Whether the scheduler retries a FAILED run now. The retries are counted from the failed
    step's attempts (each invocation makes up to `max_attempts`): at most `scheduler_retries`,
    the first `retry_failed_after_s` after the failure, each next one twice as long after the
    last. After that the run waits for an operator (`pipeline run`); it has been reported."""
    failed = session.scalars(
        select(PipelineStep)
        .where(PipelineStep.run_id == run.id, PipelineStep.state == StepState.FAILED)
        .order_by(PipelineStep.id)
    ).first()
    if failed is None or failed.finished_at is None:
        return True  # failed without a failed step (an older ledger): one more try
    invocations = -(-failed.attempts // max(1, config.max_attempts))
    retries = invocations - 1
    if retries >= config.scheduler_retries:
        return False
    wait = timedelta(seconds=config.retry_failed_after_s * 2**retries)
    return now >= failed.finished_at + wait
