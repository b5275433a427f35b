"""The whole night, timed: cutoff → plan → publish for several demo regions.

    python -m benchmarks.pipeline --regions 3 --leaders 2000 --orders 100000 [--workers 1 2]
        [--seconds 1.5] [--trunk-seconds 8] [--backend postgres|sqlite] [--redis URL]

For each worker count: a fresh database (a PostgreSQL schema of its own by default) with that
many regions built like the demo (each with `--leaders` leaders and `--orders` orders and the
demo fleet), then every region's night through `fulfilment.night.run_night`, one region after
another as the scheduler would at the same cutoff. Prints wall time per step (from the run
ledger) and in total, and the published plans' vehicles, km, km per order and unassigned stops
(with reasons), beside the load average. With `--redis`, the route problems go to that many RQ
workers (`groupbuy worker` processes started here) instead of a local process pool.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from benchmarks._postgres import DEFAULT_PG, fresh_schema

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def build(url: str, regions: int, leaders: int, orders: int) -> tuple[list[str], float]:
    from fulfilment.core.db import make_engine, make_session_factory, session_scope
    from fulfilment.core.migrate import upgrade
    from fulfilment.demo.city import build_demo

    engine = make_engine(url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    codes = ["SH"] + [f"R{i + 1}" for i in range(1, regions)]
    started = time.perf_counter()
    for n, code in enumerate(codes):
        with session_scope(sessions) as s:
            build_demo(s, seed=42 + n, leaders=leaders, orders=orders, now=NOW, region_code=code)
    engine.dispose()
    return codes, time.perf_counter() - started


def night(url: str, codes: list[str], runner, seconds: float, trunk_seconds: float) -> dict:
    from fulfilment.catalogue.fleet import Vehicle
    from fulfilment.core.db import make_engine, make_session_factory, session_scope
    from fulfilment.core.models import Order, OrderStatus, Region, Wave
    from fulfilment.night.pipeline import PipelineRun, PipelineStep
    from fulfilment.night.planning import PlanningOptions
    from fulfilment.night.plans import PlanStatus, PlanUnassigned, RoutePlan
    from fulfilment.night.run import NightSettings, run_night

    engine = make_engine(url)
    sessions = make_session_factory(engine)
    settings = NightSettings(
        planning=PlanningOptions(time_limit_s=seconds, trunk_time_limit_s=trunk_seconds)
    )
    started = time.perf_counter()
    states = []
    for code in codes:
        with session_scope(sessions) as s:
            region = s.scalars(select(Region).where(Region.code == code)).one()
            day = s.scalars(
                select(Wave.delivery_date).where(Wave.region_id == region.id).limit(1)
            ).one()
        states.append(
            run_night(
                sessions, region_code=code, delivery_date=day, runner=runner, settings=settings
            ).state
        )
    total_s = time.perf_counter() - started
    with session_scope(sessions) as s:
        step_s: Counter[str] = Counter()
        for step in s.scalars(select(PipelineStep)):
            if step.started_at and step.finished_at:
                step_s[step.step.value] += (step.finished_at - step.started_at).total_seconds()
        plans = s.scalars(select(RoutePlan).where(RoutePlan.status == PlanStatus.PUBLISHED)).all()
        orders = s.scalar(
            select(func.count())
            .select_from(Order)
            .where(
                Order.status == OrderStatus.PLACED, Order.wave_id.in_([p.wave_id for p in plans])
            )
        )
        reasons = Counter(
            s.scalars(
                select(PlanUnassigned.reason).where(
                    PlanUnassigned.plan_id.in_([p.id for p in plans])
                )
            )
        )
        fleet = s.scalar(select(func.count()).select_from(Vehicle))
        runs = s.scalar(select(func.count()).select_from(PipelineRun))
    engine.dispose()
    km = sum(p.distance_m for p in plans) / 1000
    return {
        "states": states,
        "runs": runs,
        "total_s": total_s,
        "step_s": dict(step_s),
        "vehicles": sum(p.vehicles_used for p in plans),
        "fleet": fleet,
        "km": km,
        "orders": orders,
        "km_per_order": km / orders if orders else 0.0,
        "unassigned": sum(reasons.values()),
        "reasons": dict(reasons),
    }


def _workers(redis_url: str, queue: str, n: int) -> list[subprocess.Popen]:
    root = Path(__file__).resolve().parent.parent
    code = (
        "from fulfilment.night.workers import run_worker; "
        f"run_worker(redis_url={redis_url!r}, queue_name={queue!r})"
    )
    return [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(n)
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--regions", type=int, default=3)
    parser.add_argument("--leaders", type=int, default=2000, help="per region")
    parser.add_argument("--orders", type=int, default=100_000, help="per region")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=1.5, help="solver limit per station")
    parser.add_argument("--trunk-seconds", type=float, default=8.0)
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument(
        "--postgres-url", default=os.environ.get("GROUPBUY_TEST_POSTGRES_URL", DEFAULT_PG)
    )
    parser.add_argument("--redis", help="Redis URL: solve on RQ workers started here")
    args = parser.parse_args(argv)

    from fulfilment.night.workers import RQRunner
    from routing import LocalRunner

    rows = []
    for n in args.workers:
        tmp = tempfile.TemporaryDirectory()
        if args.backend == "postgres":
            url, drop = fresh_schema(args.postgres_url)
        else:
            url, drop = f"sqlite:///{tmp.name}/bench.sqlite", (lambda: None)
        procs: list[subprocess.Popen] = []
        try:
            codes, build_s = build(url, args.regions, args.leaders, args.orders)
            if args.redis:
                queue = f"gb-bench-{uuid.uuid4().hex[:8]}"
                procs = _workers(args.redis, queue, n)
                runner = RQRunner(args.redis, queue_name=queue)
            else:
                runner = LocalRunner(workers=n)
            load = os.getloadavg()
            result = night(url, codes, runner, args.seconds, args.trunk_seconds)
            result.update(workers=n, build_s=build_s, load_before=load, load_after=os.getloadavg())
            rows.append(result)
        finally:
            for p in procs:
                p.kill()
                p.wait()
            if args.redis and procs:
                from redis import Redis
                from rq import Queue

                connection = Redis.from_url(args.redis)
                Queue(queue, connection=connection).delete(delete_jobs=True)
                for key in connection.scan_iter(f"rq:*{queue}*"):  # this run's keys only
                    connection.delete(key)
            drop()
            tmp.cleanup()

    where = f"RQ on {args.redis}" if args.redis else "local process pool"
    print(
        f"the night: {args.regions} regions × {args.leaders} leaders × {args.orders} orders, "
        f"{args.backend}, {where}, solver {args.seconds} s per station, {args.trunk_seconds} s "
        "per trunk (target: whole night < 300 s, no stop unassigned for lack of fleet)"
    )
    print(
        f"{'workers':>7} {'cutoff s':>9} {'plan s':>8} {'publish s':>9} {'total s':>8} "
        f"{'vehicles':>8} {'of fleet':>8} {'km':>9} {'km/order':>8} {'unassigned':>10} "
        f"{'runs':>5}  load avg before → after"
    )
    for r in rows:
        s = r["step_s"]
        print(
            f"{r['workers']:>7} {s.get('cutoff', 0):>9.1f} {s.get('plan', 0):>8.1f} "
            f"{s.get('publish', 0):>9.2f} {r['total_s']:>8.1f} {r['vehicles']:>8} "
            f"{r['fleet']:>8} {r['km']:>9.1f} {r['km_per_order']:>8.3f} {r['unassigned']:>10} "
            f"{r['runs']:>5}  {r['load_before'][0]:.2f} → {r['load_after'][0]:.2f}"
        )
        if r["reasons"]:
            print(f"{'':>7} unassigned by reason: {r['reasons']}")
        if set(r["states"]) != {"succeeded"}:
            print(f"{'':>7} runs: {r['states']}")


if __name__ == "__main__":
    main()
