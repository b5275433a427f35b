"""Route planning on RQ workers over Redis: a worker killed mid-job loses nothing, stores once."""

import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fulfilment.catalogue.sites import get_region
from fulfilment.core.db import make_engine, make_session_factory, session_scope
from fulfilment.core.models import PickLevel, PickLine
from fulfilment.demo.city import build_demo
from fulfilment.night.planning import PlanningOptions, solve_wave
from fulfilment.night.plans import PlanPart, PlanRoute, PlanStop
from fulfilment.night.workers import RQRunner, runner_from_environment
from fulfilment.waves.cutoff import cut_off_wave
from routing import LocalRunner

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def start_worker(redis_url: str, queue: str) -> subprocess.Popen:
    code = (
        "from fulfilment.night.workers import run_worker; "
        f"run_worker(redis_url={redis_url!r}, queue_name={queue!r}, job_monitoring_interval=1)"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        start_new_session=True,  # its own session: the work horse (own process group) is in it
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_session(leader: subprocess.Popen) -> None:
    """SIGKILL the worker and its work horse, as when their machine dies (RQ puts the horse in a
    process group of its own, so killing the worker's group alone would leave the horse running)."""
    subprocess.run(["pkill", "-KILL", "-s", str(leader.pid)], check=False)
    leader.wait(10)


def wait_until(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        threading.Event().wait(0.05)


def test_without_redis_the_planner_uses_a_local_pool():
    """No GROUPBUY_REDIS_URL: a local process pool; with it: RQ on that Redis."""
    assert isinstance(runner_from_environment({}), LocalRunner)
    runner = runner_from_environment({"GROUPBUY_REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert isinstance(runner, RQRunner) and runner.redis_url.endswith("/0")


@pytest.mark.postgres
def test_a_worker_killed_mid_job_loses_nothing_and_the_plan_is_stored_once(pg_url, redis_url):
    """Worker A is killed (SIGKILL, with its work horse) while it solves; the job is given to
    worker B as a new attempt once A's heartbeat is stale; every part of the plan is stored exactly once and every leader's
    goods are on the routes once."""
    from redis import Redis
    from rq import Queue
    from rq.registry import StartedJobRegistry

    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    with session_scope(sessions) as s:
        summary = build_demo(s, leaders=12, orders=120, now=NOW)
        region = get_region(s, summary.region_code)
        wave, _ = cut_off_wave(s, region=region, delivery_date=summary.delivery_date, now=NOW)
        wave_id = wave.id
    queue_name = f"gb-test-{uuid.uuid4().hex[:10]}"
    connection = Redis.from_url(redis_url)
    runner = RQRunner(redis_url, queue_name=queue_name, stale_after_s=3, poll_s=0.1)
    options = PlanningOptions(time_limit_s=2.0, trunk_time_limit_s=4.0)
    worker_a = start_worker(redis_url, queue_name)
    worker_b = None
    outcome: list[object] = []

    def plan() -> None:
        try:
            outcome.append(
                solve_wave(
                    sessions, wave_id=wave_id, runner=runner, options=options, now=lambda: NOW
                )
            )
        except BaseException as err:  # noqa: BLE001 - reported by the test
            outcome.append(err)

    planner = threading.Thread(target=plan)
    planner.start()
    try:
        started = StartedJobRegistry(queue_name, connection=connection)
        wait_until(lambda: started.count > 0 or not planner.is_alive())
        assert planner.is_alive(), outcome
        kill_session(worker_a)
        worker_b = start_worker(redis_url, queue_name)
        planner.join(180)
        assert not planner.is_alive()
        assert isinstance(outcome[0], int), outcome
        plan_id = outcome[0]
        with session_scope(sessions) as s:
            parts = s.scalars(select(PlanPart.part).where(PlanPart.plan_id == plan_id)).all()
            assert sorted(parts) == sorted(set(parts)) and "trunk" in parts
            delivered = s.scalar(
                select(func.sum(PlanStop.delivered_weight_g))
                .join(PlanRoute)
                .where(PlanRoute.plan_id == plan_id, PlanStop.leader_id.is_not(None))
            )
            ordered = s.scalar(
                select(func.sum(PickLine.weight_g)).where(
                    PickLine.wave_id == wave_id, PickLine.level == PickLevel.LEADER
                )
            )
            assert delivered == ordered
    finally:
        for proc in (worker_a, worker_b):
            if proc is not None:
                kill_session(proc)
        Queue(queue_name, connection=connection).delete(delete_jobs=True)
        for key in connection.scan_iter(f"rq:*{queue_name}*"):  # this test's keys only
            connection.delete(key)
        engine.dispose()


def next_within(items, timeout_s: float = 60.0):
    """The next item of a (blocking) iterator, or a failure after `timeout_s`."""
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(next(items)), daemon=True)
    reader.start()
    reader.join(timeout_s)
    assert got, f"nothing came in {timeout_s:g} s"
    return got[0]


def _tiny_problem():
    import routing

    drops = {routing.TempZone.AMBIENT: routing.Load(1, 0, 0)}
    stops = tuple(
        routing.Stop(f"s{i}", routing.LatLon(31.2 + i / 100, 121.4), drops) for i in range(3)
    )
    depot = routing.Depot("D", routing.LatLon(31.2, 121.4))
    van = routing.Vehicle("v1", "D", routing.Load(10, 10, 10))
    return routing.Problem(depots=(depot,), stops=stops, vehicles=(van,))


@pytest.fixture
def rq_queue(redis_url):
    """A queue of the test's own on the real Redis, removed with its jobs afterwards."""
    from redis import Redis
    from rq import Queue

    connection = Redis.from_url(redis_url)
    queue = Queue(f"gb-test-{uuid.uuid4().hex[:10]}", connection=connection)
    yield queue
    queue.delete(delete_jobs=True)
    for key in connection.scan_iter(f"rq:*{queue.name}*"):
        connection.delete(key)


def test_a_restarted_planner_takes_the_finished_attempt_of_the_run_before(redis_url, rq_queue):
    """The job of a planner that died after its worker finished is not run again: the next
    planner finds attempt 1's result by its id and enqueues nothing."""
    from rq.job import Job

    from fulfilment.night.rq_worker import SimpleWorker
    from fulfilment.night.workers import _job_id, solve_problem

    problem = _tiny_problem()
    first = _job_id(rq_queue.name, "7", "trunk", 1)
    rq_queue.enqueue_call(solve_problem, args=(problem, 0.2, 0), job_id=first)
    SimpleWorker([rq_queue], connection=rq_queue.connection).work(burst=True)
    runner = RQRunner(redis_url, queue_name=rq_queue.name, poll_s=0.05)
    solving = runner.solve({"trunk": problem}, time_limit_s=0.2, seed=0, tag="7")
    key, plan = next_within(solving, 20)  # no worker runs: only attempt 1's result can come
    assert key == "trunk" and not plan.unassigned and plan.rechecked
    assert list(solving) == []
    second = _job_id(rq_queue.name, "7", "trunk", 2)
    assert not Job.exists(second, connection=rq_queue.connection)
    assert not Job.exists(first, connection=rq_queue.connection)  # stored: Redis let go of it


def test_an_attempt_whose_worker_stopped_answering_is_run_again_as_a_new_job(redis_url, rq_queue):
    """Attempt 1 was started by a worker that is gone (its heartbeat an hour old, its hash left
    as it was): the planner enqueues attempt 2 under its own id, a live worker solves it, and
    attempt 1's hash is never overwritten meanwhile."""
    from rq.job import Job

    from fulfilment.night.workers import _job_id, solve_problem

    problem = _tiny_problem()
    first = _job_id(rq_queue.name, "8", "trunk", 1)
    job = Job.create(
        solve_problem, args=(problem, 0.2, 0), id=first, connection=rq_queue.connection
    )
    job.save()
    hour_ago = "2026-01-01T00:00:00.000000Z"
    rq_queue.connection.hset(
        job.key, mapping={"status": "started", "started_at": hour_ago, "last_heartbeat": hour_ago}
    )
    worker = start_worker(redis_url, rq_queue.name)
    try:
        runner = RQRunner(redis_url, queue_name=rq_queue.name, stale_after_s=1, poll_s=0.05)
        solving = runner.solve({"trunk": problem}, time_limit_s=0.2, seed=0, tag="8")
        key, plan = next_within(solving)
        assert key == "trunk" and not plan.unassigned and plan.rechecked
        assert rq_queue.connection.hget(job.key, "status") == b"started"  # left alone
        assert rq_queue.connection.hget(job.key, "last_heartbeat").decode() == hour_ago
        assert list(solving) == []
    finally:
        kill_session(worker)


@pytest.mark.postgres
def test_stations_named_in_chinese_are_solved_each_as_its_own_job(pg_url, redis_url, rq_queue):
    """Stations `浦东1` and `闵行1` (which a name-based job id turned both into `__1`): on RQ each
    is its own job, and each station's stored routes serve its own leaders, every one of them."""
    from fulfilment.core.models import GridStation, Leader

    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    with session_scope(sessions) as s:
        summary = build_demo(s, leaders=12, orders=120, now=NOW)
        stations = s.scalars(select(GridStation).order_by(GridStation.id)).all()
        assert len(stations) == 2
        for station, name in zip(stations, ("浦东1", "闵行1"), strict=True):
            station.code = name
        s.flush()
        station_ids = [station.id for station in stations]
        region = get_region(s, summary.region_code)
        wave, _ = cut_off_wave(s, region=region, delivery_date=summary.delivery_date, now=NOW)
        wave_id = wave.id
        station_of = dict(s.execute(select(Leader.id, Leader.station_id)).all())
        ordering = set(
            s.scalars(
                select(PickLine.leader_id).where(
                    PickLine.wave_id == wave_id, PickLine.level == PickLevel.LEADER
                )
            )
        )
    worker = start_worker(redis_url, rq_queue.name)
    outcome: list[object] = []

    def plan() -> None:
        try:
            outcome.append(
                solve_wave(
                    sessions,
                    wave_id=wave_id,
                    runner=RQRunner(redis_url, queue_name=rq_queue.name, poll_s=0.05),
                    options=PlanningOptions(time_limit_s=0.5, trunk_time_limit_s=1.0),
                    now=lambda: NOW,
                )
            )
        except BaseException as err:  # noqa: BLE001 - reported by the test
            outcome.append(err)

    planner = threading.Thread(target=plan, daemon=True)
    planner.start()
    try:
        planner.join(120)
        assert outcome and isinstance(outcome[0], int), outcome
        with session_scope(sessions) as s:
            parts = dict(
                s.execute(
                    select(PlanPart.part, PlanPart.station_id).where(PlanPart.plan_id == outcome[0])
                ).all()
            )
            assert parts == {"trunk": None, "浦东1": station_ids[0], "闵行1": station_ids[1]}
            served = s.execute(
                select(PlanRoute.station_id, PlanStop.leader_id)
                .join(PlanStop, PlanStop.route_id == PlanRoute.id)
                .where(PlanRoute.plan_id == outcome[0], PlanStop.leader_id.is_not(None))
            ).all()
        assert {leader for _, leader in served} == ordering
        assert all(station_of[leader] == station for station, leader in served)
    finally:
        kill_session(worker)
        engine.dispose()


def test_a_job_id_is_never_built_from_a_name_it_would_mangle():
    """Job ids are built from database ids; a key that is not plain ASCII is refused instead of
    being folded into `_` (where two names become one job)."""
    from fulfilment.night.workers import _job_id

    assert _job_id("groupbuy-routing", "5", "s12", 1) == "groupbuy-routing-5-s12-1"
    with pytest.raises(ValueError):
        _job_id("groupbuy-routing", "5", "浦东1", 1)


def test_a_dead_attempt_whose_execution_expired_does_not_fail_the_plan(redis_url, rq_queue):
    """Attempt 1's worker died and its execution record expired from Redis (RQ's `job.delete()`
    then raises `Execution … not found in Redis`): attempt 2's plan is handed back and the
    cleanup of attempt 1 does not fail the solve (which would burn one of the step's tries)."""
    from rq.job import Job

    from fulfilment.night.workers import _job_id, solve_problem

    problem = _tiny_problem()
    first = _job_id(rq_queue.name, "9", "trunk", 1)
    job = Job.create(
        solve_problem, args=(problem, 0.2, 0), id=first, connection=rq_queue.connection
    )
    job.save()
    hour_ago = "2026-01-01T00:00:00.000000Z"
    rq_queue.connection.hset(
        job.key, mapping={"status": "started", "started_at": hour_ago, "last_heartbeat": hour_ago}
    )
    rq_queue.connection.zadd(f"rq:executions:{first}", {"gone": time.time() + 3600})
    worker = start_worker(redis_url, rq_queue.name)
    try:
        runner = RQRunner(redis_url, queue_name=rq_queue.name, stale_after_s=1, poll_s=0.05)
        solving = runner.solve({"trunk": problem}, time_limit_s=0.2, seed=0, tag="9")
        key, plan = next_within(solving)
        assert key == "trunk" and plan.rechecked
        assert list(solving) == []
        assert not Job.exists(first, connection=rq_queue.connection)
    finally:
        kill_session(worker)
        rq_queue.connection.delete(f"rq:executions:{first}")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_redis(port: int, workdir: Path) -> subprocess.Popen:
    from redis import Redis

    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = Redis(port=port, socket_connect_timeout=0.5)

    def up() -> bool:
        try:
            return bool(client.ping())
        except Exception:  # noqa: BLE001 - not listening yet
            return False

    wait_until(up, 20)
    return proc


def test_a_worker_lives_through_a_redis_restart_and_takes_new_jobs(tmp_path):
    """A real worker process on a private Redis: Redis is stopped and started again (empty);
    the worker reconnects by itself (with backoff) and solves a job queued afterwards."""
    import shutil

    from redis import Redis
    from rq import Worker

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = _free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = _start_redis(port, tmp_path)
    worker = start_worker(url, "gb-restart")
    try:
        connection = Redis.from_url(url)
        wait_until(lambda: len(Worker.all(connection=connection)) == 1, 30)
        server.kill()
        server.wait(10)
        time.sleep(3)  # the worker meets a Redis that is gone (its loop and heartbeat fail)
        server = _start_redis(port, tmp_path)
        runner = RQRunner(url, queue_name="gb-restart", poll_s=0.05)
        solving = runner.solve({"trunk": _tiny_problem()}, time_limit_s=0.2, seed=0, tag="r")
        key, plan = next_within(solving, 90)
        assert key == "trunk" and plan.rechecked
        assert worker.poll() is None  # the same worker process, not a new one
    finally:
        kill_session(worker)
        server.kill()
        server.wait(10)


def test_a_failing_store_does_not_wait_for_every_queued_solve(tmp_path):
    """Twenty jobs in a pool of two; the caller fails on the first result (a store error): the
    jobs not yet handed to a process are cancelled, so fewer than half of them ever start (the
    pool hands a few ahead to its processes' queue)."""
    from night_pool_jobs import touch_then_sleep

    from routing.parallel import _in_pool

    jobs = {f"j{i}": (touch_then_sleep, (str(tmp_path / f"j{i}"), 1.0)) for i in range(20)}
    with pytest.raises(RuntimeError):
        for _key, _ in _in_pool(2, jobs):
            raise RuntimeError("store failed")
    started = len(list(tmp_path.iterdir()))
    assert started < 10, started


POOL_PARENT = """
import sys, time
sys.path.insert(0, {tests!r})
from night_pool_jobs import touch_then_sleep
from routing.parallel import _in_pool
jobs = {{f"j{{i}}": (touch_then_sleep, ({tmp!r} + f"/j{{i}}", 300)) for i in range(2)}}
for _ in _in_pool(2, jobs):
    pass
"""


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_pool_processes_die_with_a_parent_killed_with_sigkill(tmp_path):
    """A real process solving in a local pool is killed with SIGKILL (as a `pipeline run` or a
    scheduler can be): its pool processes, mid-job, die with it instead of running on."""
    import signal

    parent = subprocess.Popen(
        [sys.executable, "-c", POOL_PARENT.format(tests=str(ROOT / "tests"), tmp=str(tmp_path))],
        cwd=ROOT,
    )
    workers: list[int] = []
    try:
        wait_until(lambda: len(list(tmp_path.iterdir())) == 2, 60)  # both jobs started
        workers = [
            pid
            for pid in _children(parent.pid)
            if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
        ]
        assert len(workers) == 2, workers
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        wait_until(lambda: not any(_alive(pid) for pid in workers), 20)
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in workers:  # the test's own pool processes, should they have survived
            if _alive(pid):
                subprocess.run(["kill", "-9", str(pid)], check=False)


def test_a_planner_that_stops_early_takes_its_queued_attempts_off_the_queue(redis_url, rq_queue):
    """Two problems queued, one solved; the caller then stops (a store failed, the claim was
    lost): the other problem's attempt is cancelled, not left for a worker to solve for nobody."""
    from fulfilment.night.rq_worker import SimpleWorker

    problem = _tiny_problem()
    runner = RQRunner(redis_url, queue_name=rq_queue.name, poll_s=0.05)
    solving = runner.solve({"a": problem, "b": problem}, time_limit_s=0.2, seed=0, tag="c")
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(next(solving)), daemon=True)
    reader.start()
    wait_until(lambda: rq_queue.count == 2, 20)
    SimpleWorker([rq_queue], connection=rq_queue.connection).work(burst=True, max_jobs=1)
    reader.join(30)
    assert got, "no plan came back"
    solving.close()
    assert rq_queue.count == 0
    (left,) = {"a", "b"} - {got[0][0]}
    job_id = f"{rq_queue.name}-c-{left}-1"
    assert rq_queue.connection.hget(f"rq:job:{job_id}", "status") == b"canceled"


@pytest.mark.parametrize("kind", ["Worker", "SimpleWorker"])
def test_a_worker_stops_within_seconds_even_when_its_command_thread_lost_the_race(
    redis_url, rq_queue, kind
):
    """A worker's exit (a burst done, SIGTERM, a deploy) unsubscribes its command thread and
    waits for it; when the thread has read the unsubscribe's reply first (3 exits in 100), RQ's
    own thread waited out its 60 s read. Ours is gone within a second or two."""
    from fulfilment.night import rq_worker

    worker = getattr(rq_worker, kind)([rq_queue], connection=rq_queue.connection)
    worker.subscribe()
    worker.pubsub.unsubscribe()  # the race lost: the thread reads the reply before the stop
    wait_until(lambda: not worker.pubsub.subscribed, 10)
    started = time.monotonic()
    worker.unsubscribe()
    assert time.monotonic() - started < 5
    assert not worker.pubsub_thread.is_alive()
