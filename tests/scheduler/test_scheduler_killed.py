"""The scheduler as a real process on PostgreSQL: killed (SIGKILL) mid-plan, after the cutoff,
and started again, it finishes the night by itself (issue 22, item 7)."""

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fulfilment.core.db import make_engine, make_session_factory, session_scope
from fulfilment.core.models import CutoffRun, Wave, WaveStatus
from fulfilment.demo.city import build_demo
from fulfilment.night.pipeline import PipelineRun, PipelineStep, RunState, Step, StepState
from fulfilment.night.plans import PlanPart, PlanStatus, RoutePlan

ROOT = Path(__file__).resolve().parents[2]
TTL_S = 4


def start_scheduler(pg_url: str, log: Path) -> subprocess.Popen:
    env = {
        k: v for k, v in os.environ.items() if k not in ("GROUPBUY_REDIS_URL", "GROUPBUY_RQ_QUEUE")
    }
    env.update(GROUPBUY_DATABASE_URL=pg_url, GROUPBUY_ENV="dev", GROUPBUY_WORKERS="2")
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "scheduler",
                "--seconds",
                "1",
                "--trunk-seconds",
                "1",
                "--heartbeat-ttl",
                str(TTL_S),
                "--heartbeat-every",
                "1",
                "--sweep-every",
                "2",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached in {timeout_s:g} s: {what}")
        threading.Event().wait(0.05)


@pytest.mark.postgres
def test_a_scheduler_killed_mid_plan_and_started_again_finishes_the_night(pg_url, tmp_path):
    """The scheduler catches up a missed night; it is killed with SIGKILL once the plan has its
    trunk (the wave cut off, the plan unfinished). Started again, it takes the dead run over by
    itself (after the heartbeat TTL, at a sweep): the plan is finished and published, each part
    stored once, the cutoff done once."""
    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    with session_scope(sessions) as s:
        build_demo(s, leaders=100, orders=600, now=datetime.now(UTC))
    log = tmp_path / "scheduler.log"

    def parts() -> int:
        with session_scope(sessions) as s:
            return s.scalar(select(func.count()).select_from(PlanPart)) or 0

    first = start_scheduler(pg_url, log)
    second = None
    try:
        wait_until(lambda: parts() >= 1 or first.poll() is not None, 120, "the trunk stored")
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        assert first.returncode == -signal.SIGKILL, log.read_text()
        with session_scope(sessions) as s:
            run = s.scalars(select(PipelineRun)).one()
            plan_step = s.scalars(
                select(PipelineStep).where(
                    PipelineStep.run_id == run.id, PipelineStep.step == Step.PLAN
                )
            ).one()
            assert (run.state, plan_step.state) == (RunState.RUNNING, StepState.RUNNING)
            assert s.scalars(select(Wave.status)).one() == WaveStatus.CUT_OFF
            plan_id = run.plan_id
            stations = s.scalar(
                select(func.count(func.distinct(PlanPart.part))).where(PlanPart.plan_id == plan_id)
            )
        killed_at_parts = parts()
        second = start_scheduler(pg_url, log)

        def finished() -> bool:
            with session_scope(sessions) as s:
                return s.scalars(select(PipelineRun.state)).one() == RunState.SUCCEEDED

        wait_until(finished, 120, "the night finished by the restarted scheduler")
        with session_scope(sessions) as s:
            plans = s.execute(select(RoutePlan.id, RoutePlan.status)).all()
            assert plans == [(plan_id, PlanStatus.PUBLISHED)]
            stored = s.scalars(select(PlanPart.part).where(PlanPart.plan_id == plan_id)).all()
            assert len(stored) == len(set(stored)) and "trunk" in stored
            assert len(stored) > killed_at_parts >= stations
            assert s.scalar(select(func.count()).select_from(CutoffRun)) == 1
            cutoff = s.scalars(select(PipelineStep).where(PipelineStep.step == Step.CUTOFF)).one()
            assert cutoff.attempts == 1
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        engine.dispose()
