"""Cutoff + aggregation against the floor: a plain SQL GROUP BY over the same order lines.

    python -m benchmarks.cutoff --orders 100000 --leaders 2000 [--backend sqlite|postgres|both]

Builds the demo city with that many orders (in a child process), then in a fresh child process
runs the cutoff and aggregation, then packs the wave's crates (a transaction of its own, as the
night does before planning), and in the same process the floor query; prints wall times,
the ratio (target ≤ 5), the peak RSS of the cutoff process (target ≤ 500 MB), and for
information the peak RSS of the process that generated the demo data.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime

from sqlalchemy import text

from benchmarks._postgres import DEFAULT_PG, fresh_schema

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)

FLOOR_SQL = text(
    "SELECT o.leader_id, l.product_id, SUM(l.quantity) FROM order_line l "
    "JOIN orders o ON o.id = l.order_id WHERE o.wave_id = :wave GROUP BY o.leader_id, l.product_id"
)


def _build(url: str, orders: int, leaders: int, queue) -> None:
    from fulfilment.core.db import make_engine, make_session_factory, session_scope
    from fulfilment.core.migrate import upgrade
    from fulfilment.demo.city import build_demo

    engine = make_engine(url)
    upgrade(engine)
    started = time.perf_counter()
    with session_scope(make_session_factory(engine)) as session:
        summary = build_demo(session, seed=42, leaders=leaders, orders=orders, now=NOW)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((time.perf_counter() - started, summary.lines, summary.delivery_date, peak_mb))
    engine.dispose()


def _cutoff(url: str, delivery_date, statistics_mode: str, queue) -> None:
    from fulfilment.catalogue.sites import get_region
    from fulfilment.core.db import make_engine, make_session_factory, session_scope
    from fulfilment.waves.cutoff import cut_off_wave

    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with engine.connect() as conn:  # warm the cache the same way for both measurements
        wave_id = conn.execute(
            text("SELECT id FROM wave WHERE delivery_date = :d"), {"d": delivery_date}
        ).scalar_one()
        conn.execute(FLOOR_SQL, {"wave": wave_id}).all()
    from fulfilment.waves.deadlines import refresh_cutoff_statistics

    started = time.perf_counter()
    analysed: list[str] = []
    if statistics_mode == "refresh":  # its own transaction, before the cutoff's (the default)
        analysed = refresh_cutoff_statistics(engine)
    stats_s = time.perf_counter() - started
    started = time.perf_counter()
    with session_scope(sessions) as session:
        if statistics_mode == "inside" and engine.dialect.name == "postgresql":
            # the former way, for comparison: ANALYZE inside the cutoff's transaction
            session.execute(text("SET LOCAL default_statistics_target = 10"))
            session.execute(text("ANALYZE orders, order_line, deal"))
            analysed = ["orders", "order_line", "deal (inside)"]
        _, summary = cut_off_wave(
            session, region=get_region(session, "SH"), delivery_date=delivery_date, now=NOW
        )
    cutoff_s = time.perf_counter() - started
    from fulfilment.core.models import Wave
    from fulfilment.waves.crates import crate_counts, ensure_crates

    started = time.perf_counter()
    with session_scope(sessions) as session:  # the crates, packed in a step of their own
        ensure_crates(session, session.get_one(Wave, wave_id))
    pack_s = time.perf_counter() - started
    with session_scope(sessions) as session:
        crates = sum(crate_counts(session, wave_id=wave_id).values())
    floors = []
    for _ in range(3):
        with engine.connect() as conn:
            t0 = time.perf_counter()
            rows = conn.execute(FLOOR_SQL, {"wave": wave_id}).all()
            floors.append(time.perf_counter() - t0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(
        (
            cutoff_s,
            statistics.median(floors),
            len(rows),
            summary.lines_locked,
            peak_mb,
            stats_s,
            ",".join(analysed) or "-",
            pack_s,
            crates,
        )
    )
    engine.dispose()


def _in_child(target, *args):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def run(
    backend: str, url: str, orders: int, leaders: int, statistics_mode: str = "refresh"
) -> dict:
    build_s, lines, delivery, build_mb = _in_child(_build, url, orders, leaders)
    cutoff_s, floor_s, groups, locked, peak_mb, stats_s, analysed, pack_s, crates = _in_child(
        _cutoff, url, delivery, statistics_mode
    )
    return {
        "backend": backend,
        "orders": orders,
        "lines": lines,
        "build_s": build_s,
        "cutoff_s": cutoff_s,
        "stats_s": stats_s,
        "analysed": analysed,
        "floor_s": floor_s,
        "ratio": cutoff_s / floor_s,
        "groups": groups,
        "locked": locked,
        "peak_mb": peak_mb,
        "build_mb": build_mb,
        "pack_s": pack_s,
        "crates": crates,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--leaders", type=int, default=2000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--postgres-url", default=os.environ.get("GROUPBUY_TEST_POSTGRES_URL", DEFAULT_PG)
    )
    parser.add_argument(
        "--statistics",
        choices=["refresh", "inside", "none"],
        default="refresh",
        help="planner statistics: refreshed before the cutoff's transaction (default), "
        "ANALYZE inside it (the former way), or none",
    )
    args = parser.parse_args(argv)

    results = []
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            results.append(
                run(
                    "sqlite",
                    f"sqlite:///{tmp}/bench.sqlite",
                    args.orders,
                    args.leaders,
                    args.statistics,
                )
            )
    if args.backend in ("postgres", "both"):
        url, drop = fresh_schema(args.postgres_url)
        try:
            results.append(run("postgres", url, args.orders, args.leaders, args.statistics))
        finally:
            drop()

    print(f"load average: {os.getloadavg()}")
    print(
        f"cutoff + aggregation, {args.orders} orders, {args.leaders} leaders (target: ratio ≤ 5, peak RSS ≤ 500 MB)"
    )
    header = (
        f"{'backend':<9} {'lines':>7} {'build s':>8} {'cutoff s':>9} {'floor s':>8} {'ratio':>6} "
        f"{'peak RSS MB':>11} {'locked':>7} {'build RSS MB':>12} {'stats s':>8} analysed"
    )
    print(header)
    for r in results:
        print(
            f"{r['backend']:<9} {r['lines']:>7} {r['build_s']:>8.2f} {r['cutoff_s']:>9.3f} {r['floor_s']:>8.3f} "
            f"{r['ratio']:>6.2f} {r['peak_mb']:>11.0f} {r['locked']:>7} {r['build_mb']:>12.0f} "
            f"{r['stats_s']:>8.3f} {r['analysed']}  | pack {r['pack_s']:.2f} s, {r['crates']} crates"
        )


if __name__ == "__main__":
    main()
