"""Where the route problems are solved: a local process pool (`routing.LocalRunner`), or RQ
workers on Redis.

With `GROUPBUY_REDIS_URL` set, each problem of a wave (the trunk, each station's last mile) is an
RQ job; `groupbuy worker` runs the workers. A job only solves (plain data in, plain data out):
the planning process stores each result once, keyed by plan version and station, so a job that
is run twice (a worker killed mid-solve, the job given to another) cannot store twice. See
docs/night.md for why RQ rather than Celery.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import routing
from fulfilment.core.errors import FulfilmentError

log = logging.getLogger(__name__)
DEFAULT_QUEUE = "groupbuy-routing"


def solve_problem(problem: routing.Problem, time_limit_s: float, seed: int) -> routing.Plan:
    """The job: one problem, one plan (runs in an RQ worker)."""
    return routing.plan_routes(problem, time_limit_s=time_limit_s, seed=seed)


class JobFailed(FulfilmentError):
    """A route planning job failed on every attempt; the message carries the last error."""


@dataclass
class RQRunner:
    """Each problem is an RQ job on Redis; results are collected here as they finish (a
    `routing.Runner`; each job gets `time_limit_s`).

    An attempt that failed, whose worker stopped answering (its heartbeat older than
    `stale_after_s`) or that a dead worker took off the queue without starting is given to the
    queue again as a new job, up to `attempts` times; whichever attempt of a problem finishes
    first is the answer (a worker's orphaned work horse may still finish the first). Each attempt
    has its own id, `<queue>-<tag>-<key>-<n>` (tag = plan id): two attempts never share a job
    hash in Redis, and a planning process that restarts finds the attempts of the one before."""

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
        from rq.job import Job

        queue = self._queue()
        timeout = int(time_limit_s * 3 + 120)
        attempts: dict[str, list[Any]] = {}  # every attempt of each problem, oldest first
        tries: dict[str, int] = {}  # attempts this call has enqueued

        def enqueue(key: str) -> None:
            tries[key] = tries.get(key, 0) + 1
            number = len(attempts.setdefault(key, [])) + 1
            attempts[key].append(
                queue.enqueue_call(
                    solve_problem,
                    args=(problems[key], time_limit_s, seed),
                    job_id=_job_id(self.queue_name, tag, key, number),
                    timeout=timeout,
                    result_ttl=24 * 3600,
                    failure_ttl=24 * 3600,
                )
            )

        for key in problems:  # a restarted planner: the attempts of the run before
            number = 1
            while True:
                try:
                    job = Job.fetch(
                        _job_id(self.queue_name, tag, key, number), connection=queue.connection
                    )
                except NoSuchJobError:
                    break
                attempts.setdefault(key, []).append(job)
                number += 1
            earlier = list(self._states(queue, attempts.get(key, [])).values())
            if "finished" not in earlier and (not earlier or earlier[-1] != "running"):
                enqueue(key)
        pending = set(problems)
        try:
            while pending:
                now = self._states(queue, [job for key in pending for job in attempts[key]])
                for key in sorted(pending):
                    states = [(job, now[job.id]) for job in attempts[key]]
                    done = next((job for job, state in states if state == "finished"), None)
                    if done is not None:
                        pending.discard(key)
                        yield key, done.return_value()
                        for job in attempts[key]:  # the caller has stored the result
                            _forget(queue, job)
                        continue
                    last, why = states[-1]
                    if why != "running":
                        if tries.get(key, 0) >= self.attempts:
                            raise JobFailed(
                                f"route planning job {last.id}: {why} ({self.attempts} tries)"
                            )
                        log.warning("route planning job %s: %s; queued again", last.id, why)
                        enqueue(key)
                if pending:
                    time.sleep(self.poll_s)
        finally:
            if pending:  # the caller stopped early (a store failed, the claim was lost)
                self._cancel_queued(queue, [job for key in pending for job in attempts[key]])

    def _cancel_queued(self, queue, jobs: list[Any]) -> None:
        """Take the attempts still waiting off the queue, so that no worker solves a problem
        nobody will store; one already running finishes (its result expires)."""
        from rq.job import JobStatus

        for job in jobs:
            try:
                if job.get_status(refresh=True) == JobStatus.QUEUED:
                    job.cancel()
            except Exception as err:  # noqa: BLE001 - best effort, the job expires anyway
                log.warning("route planning job %s: not cancelled (%s)", job.id, err)

    def _states(self, queue, jobs: list[Any]) -> dict[str, str]:
        """Job id -> "finished", "running" (queued, or started with a fresh heartbeat), or why
        the attempt is lost. One round trip for all of them, reading four fields of each job's
        hash, not the whole job (its problem may be large); the queue's waiting ids are read
        only when an attempt has been queued for longer than `stale_after_s`."""
        from rq.job import JobStatus
        from rq.utils import utcparse

        with queue.connection.pipeline(transaction=False) as pipe:
            for job in jobs:
                pipe.hmget(job.key, "status", "last_heartbeat", "started_at", "enqueued_at")
            rows = pipe.execute()
        waiting: set[str] | None = None
        out: dict[str, str] = {}
        for job, raw in zip(jobs, rows, strict=True):
            status, beat, started, enqueued = (v.decode() if v else None for v in raw)
            since = beat or started if status == JobStatus.STARTED.value else enqueued
            if status is None:
                out[job.id] = "it is gone from Redis"
            elif status == JobStatus.FINISHED.value:
                out[job.id] = "finished"
            elif status in (
                JobStatus.FAILED.value,
                JobStatus.STOPPED.value,
                JobStatus.CANCELED.value,
            ):
                out[job.id] = f"it {status}"
            elif since is None or _age_s(utcparse(since)) <= self.stale_after_s:
                out[job.id] = "running"
            elif status == JobStatus.STARTED.value:
                out[job.id] = "its worker stopped answering"
            elif status == JobStatus.QUEUED.value:
                waiting = set(queue.get_job_ids()) if waiting is None else waiting
                out[job.id] = (
                    "running"
                    if job.id in waiting
                    else "a worker took it off the queue and died before starting it"
                )
            else:
                out[job.id] = "running"
        return out


def _forget(queue, job) -> None:
    """Delete a finished problem's attempt from Redis, tolerating what a dead attempt leaves
    behind: RQ's `job.delete()` raises `Execution … not found in Redis` when the attempt's worker
    died and its execution record expired. The plan is stored already: a cleanup failure must
    not fail the step (and burn one of its tries); the job hash is then deleted by key, and the
    rest expires with its TTL."""
    try:
        job.delete()
    except Exception as err:  # noqa: BLE001 - cleanup only, the result is stored
        log.warning("route planning job %s: cleanup left to Redis' TTL (%s)", job.id, err)
        try:
            queue.connection.delete(job.key)
        except Exception:  # noqa: BLE001 - Redis itself may be gone; the TTL still applies
            log.warning("route planning job %s: could not delete its hash", job.id)


def _age_s(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (datetime.now(UTC) - moment).total_seconds()


def _job_id(queue: str, tag: str, key: str, attempt: int) -> str:
    """`<queue>-<tag>-<key>-<attempt>`: RQ job ids take ASCII letters, digits, dashes and
    underscores only. The night builds tag and key from database ids (plan id, `s<station id>`);
    anything else is refused, never folded into `_` (`浦东1` and `闵行1` would become one job and
    one station would take the other's routes)."""
    raw = f"{queue}-{tag}-{key}-{attempt}"
    if not all(c.isascii() and (c.isalnum() or c in "-_") for c in raw):
        raise ValueError(f"not a valid RQ job id: {raw!r} (build it from database ids)")
    return raw


def runner_from_environment(environ: Mapping[str, str] | None = None):
    """RQ workers when GROUPBUY_REDIS_URL is set, else a local pool (GROUPBUY_WORKERS, default 2)."""
    env = os.environ if environ is None else environ
    url = env.get("GROUPBUY_REDIS_URL")
    if url:
        return RQRunner(url, queue_name=env.get("GROUPBUY_RQ_QUEUE", DEFAULT_QUEUE))
    return routing.LocalRunner(workers=int(env.get("GROUPBUY_WORKERS", "2")))


def run_worker(
    *,
    burst: bool = False,
    redis_url: str | None = None,
    queue_name: str | None = None,
    job_monitoring_interval: int = 10,
    reconnect_max_s: float = 30.0,
) -> None:
    """An RQ worker for the route planning queue (`groupbuy worker`).

    It lives through Redis going away: RQ's loop ends (or raises) when Redis stops answering
    outside its dequeue; the worker is then started again on a new connection, after 1 s, 2 s,
    4 s … at most `reconnect_max_s` between tries (reset once a worker has run for that long),
    registering afresh (a restarted Redis has forgotten it). It stops on a stop request
    (SIGINT/SIGTERM) or, with `burst`, when the queue is empty."""
    from redis import Redis
    from redis.exceptions import RedisError
    from rq import Queue

    from .rq_worker import Worker

    url = redis_url or os.environ.get("GROUPBUY_REDIS_URL")
    if not url:
        raise FulfilmentError("GROUPBUY_REDIS_URL is not set: the worker needs Redis")
    name = queue_name or os.environ.get("GROUPBUY_RQ_QUEUE", DEFAULT_QUEUE)
    delay = 1.0
    while True:
        started = time.monotonic()
        worker = None
        try:
            connection = Redis.from_url(url)
            worker = Worker(
                [Queue(name, connection=connection)],
                connection=connection,
                job_monitoring_interval=job_monitoring_interval,
            )
            worker.max_connection_wait_time = reconnect_max_s  # RQ's own retry while dequeuing
            worker.work(burst=burst, with_scheduler=False)
            why = "its loop ended"
        except RedisError as err:
            why = f"{type(err).__name__}: {err}"
        if worker is not None and (burst or worker._stop_requested):
            return
        if time.monotonic() - started >= reconnect_max_s:
            delay = 1.0
        log.warning("worker lost Redis (%s); starting again in %.0f s", why, delay)
        time.sleep(delay)
        delay = min(delay * 2, reconnect_max_s)
