"""Where the route problems are solved: a local process pool, or RQ workers on Redis.

With `GROUPBUY_REDIS_URL` set, each problem of a wave (the trunk, each station's last mile) is an
RQ job; `groupbuy worker` runs the workers. A job only solves (plain data in, plain data out):
the planning process stores each result once, keyed by plan version and station, so a job that
is run twice (a worker killed mid-solve, the job given to another) cannot store twice. See
docs/night.md for why RQ rather than Celery.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import routing

from .errors import FulfilmentError

log = logging.getLogger(__name__)
DEFAULT_QUEUE = "groupbuy-routing"

_SPAWN = mp.get_context("spawn")  # fork would copy the parent's threads and database connections


def solve_problem(problem: routing.Problem, time_limit_s: float, seed: int) -> routing.Plan:
    """The job: one problem, one plan (runs in a pool process or an RQ worker)."""
    return routing.plan_routes(problem, time_limit_s=time_limit_s, seed=seed)


@dataclass
class LocalRunner:
    """Solves in a pool of `workers` local processes (one: in this process); a `routing.Runner`.

    Each problem gets the whole `time_limit_s` from when a process starts it (the night's
    per-problem limits), unlike `routing.PoolRunner`, which holds problems to slots of one call's
    budget."""

    workers: int = 2

    def solve(
        self,
        problems: Mapping[str, routing.Problem],
        *,
        time_limit_s: float,
        seed: int,
        tag: str = "",
    ) -> Iterator[tuple[str, routing.Plan]]:
        if self.workers <= 1 or len(problems) <= 1:
            for key, problem in problems.items():
                yield key, solve_problem(problem, time_limit_s, seed)
            return
        with ProcessPoolExecutor(
            max_workers=min(self.workers, len(problems)), mp_context=_SPAWN
        ) as pool:
            futures = {
                pool.submit(solve_problem, p, time_limit_s, seed): k for k, p in problems.items()
            }
            for future in as_completed(futures):
                yield futures[future], future.result()


class JobFailed(FulfilmentError):
    """A route planning job failed on every attempt; the message carries the last error."""


@dataclass
class RQRunner:
    """Each problem is an RQ job on Redis; results are collected here as they finish (a
    `routing.Runner`; each job gets `time_limit_s`).

    A job whose worker died (its heartbeat older than `stale_after_s`) or that failed is given
    to the queue again, up to `attempts` times. Job ids are `<queue>-<tag>-<key>` (tag = plan id),
    so a planning process that restarts finds the jobs (and results) of the one before."""

    redis_url: str
    queue_name: str = DEFAULT_QUEUE
    attempts: int = 3
    stale_after_s: float = 90.0
    poll_s: float = 0.2

    def _queue(self):
        from redis import Redis
        from rq import Queue

        return Queue(self.queue_name, connection=Redis.from_url(self.redis_url))

    def solve(
        self,
        problems: Mapping[str, routing.Problem],
        *,
        time_limit_s: float,
        seed: int,
        tag: str = "",
    ) -> Iterator[tuple[str, routing.Plan]]:
        from rq.exceptions import NoSuchJobError
        from rq.job import Job, JobStatus

        queue = self._queue()
        timeout = int(time_limit_s * 3 + 120)
        tries: dict[str, int] = {}
        jobs: dict[str, Any] = {}

        def enqueue(key: str) -> None:
            tries[key] = tries.get(key, 0) + 1
            job_id = _job_id(self.queue_name, tag, key)
            try:
                Job.fetch(job_id, connection=queue.connection).delete()
            except NoSuchJobError:
                pass
            jobs[key] = queue.enqueue_call(
                solve_problem,
                args=(problems[key], time_limit_s, seed),
                job_id=job_id,
                timeout=timeout,
                result_ttl=24 * 3600,
                failure_ttl=24 * 3600,
            )

        for key in problems:
            job_id = _job_id(self.queue_name, tag, key)
            try:  # a restarted planner: the job of the run before may be done or under way
                job = Job.fetch(job_id, connection=queue.connection)
                if job.get_status() in (JobStatus.FINISHED, JobStatus.QUEUED, JobStatus.STARTED):
                    jobs[key] = job
                    tries[key] = 1
                    continue
            except NoSuchJobError:
                pass
            enqueue(key)
        pending = set(jobs)
        while pending:
            for key in sorted(pending):
                job = jobs[key]
                status = job.get_status(refresh=True)
                if status == JobStatus.FINISHED:
                    pending.discard(key)
                    yield key, job.return_value()
                    job.delete()  # the caller has stored the result: Redis need not keep it
                    continue
                lost = status == JobStatus.STARTED and self._stale(job)
                if status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED) or lost:
                    why = "its worker stopped answering" if lost else f"it {status.value}"
                    if tries[key] >= self.attempts:
                        raise JobFailed(f"route planning job {job.id}: {why} {tries[key]} times")
                    log.warning("route planning job %s: %s; queued again", job.id, why)
                    enqueue(key)
            if pending:
                time.sleep(self.poll_s)

    def _stale(self, job) -> bool:
        job.refresh()
        beat = job.last_heartbeat or job.started_at
        if beat is None:
            return False
        if beat.tzinfo is None:
            beat = beat.replace(tzinfo=UTC)
        return (datetime.now(UTC) - beat).total_seconds() > self.stale_after_s


def _job_id(queue: str, tag: str, key: str) -> str:
    """RQ job ids take letters, digits, dashes and underscores only."""
    raw = f"{queue}-{tag}-{key}"
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "_" for c in raw)


def runner_from_environment(environ: Mapping[str, str] | None = None):
    """RQ workers when GROUPBUY_REDIS_URL is set, else a local pool (GROUPBUY_WORKERS, default 2)."""
    env = os.environ if environ is None else environ
    url = env.get("GROUPBUY_REDIS_URL")
    if url:
        return RQRunner(url, queue_name=env.get("GROUPBUY_RQ_QUEUE", DEFAULT_QUEUE))
    return LocalRunner(workers=int(env.get("GROUPBUY_WORKERS", "2")))


def run_worker(
    *,
    burst: bool = False,
    redis_url: str | None = None,
    queue_name: str | None = None,
    job_monitoring_interval: int = 10,
) -> None:
    """An RQ worker for the route planning queue (`groupbuy worker`)."""
    from redis import Redis
    from rq import Queue, Worker

    url = redis_url or os.environ.get("GROUPBUY_REDIS_URL")
    if not url:
        raise FulfilmentError("GROUPBUY_REDIS_URL is not set: the worker needs Redis")
    name = queue_name or os.environ.get("GROUPBUY_RQ_QUEUE", DEFAULT_QUEUE)
    connection = Redis.from_url(url)
    worker = Worker(
        [Queue(name, connection=connection)],
        connection=connection,
        job_monitoring_interval=job_monitoring_interval,
    )
    worker.work(burst=burst, with_scheduler=False)
