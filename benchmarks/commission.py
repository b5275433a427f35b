"""What the commission adds to a pickup (核销): handovers with and without the accrual, on
PostgreSQL, in alternating blocks of ten (the machine's load drifts), then one settlement.

    python -m benchmarks.commission [--orders 1200] [--leaders 20] [--pg URL]

Prints the median and p95 wall ms per handover of each, and the settlement's wall time for the
lines accrued. Not a timed test: run it beside `uptime`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta
from unittest import mock

from sqlalchemy import select

from benchmarks._postgres import DEFAULT_PG, fresh_schema

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.commission", description=__doc__)
    parser.add_argument("--orders", type=int, default=1200)
    parser.add_argument("--leaders", type=int, default=20)
    parser.add_argument("--pg", default=DEFAULT_PG)
    args = parser.parse_args(argv)

    import fulfilment.points.pickups as pickups
    from fulfilment.accounts.services import create_user
    from fulfilment.commission.ledger import settle_region
    from fulfilment.commission.rates import set_rate
    from fulfilment.core.db import make_engine, make_session_factory, session_scope
    from fulfilment.core.migrate import upgrade
    from fulfilment.core.models import Leader, Order, OrderStatus, Region
    from fulfilment.demo.city import build_demo
    from fulfilment.waves.cutoff import cut_off_wave

    url, drop = fresh_schema(args.pg)
    engine = make_engine(url)
    try:
        upgrade(engine)
        sessions = make_session_factory(engine)
        with session_scope(sessions) as s:
            summary = build_demo(s, leaders=args.leaders, orders=args.orders, now=NOW)
            region = s.scalars(select(Region)).one()
            cut_off_wave(s, region=region, delivery_date=summary.delivery_date, now=NOW)
            for code in s.scalars(select(Leader.code)):
                create_user(
                    s,
                    username=f"staff-{code}",
                    password="benchmark-password",
                    role="pickup_staff",
                    leader_code=code,
                    actor="bench",
                )
            set_rate(s, region_code=region.code, rate_bps=300, actor="bench")
            region_id = region.id
        with session_scope(sessions) as s:
            orders = s.execute(
                select(Order.id, Order.pickup_code, Order.leader_id)
                .where(Order.status == OrderStatus.PLACED)
                .order_by(Order.id)
            ).all()
            from fulfilment.accounts.models import User

            users = {u.leader_id: u.id for u in s.scalars(select(User))}
        collected_at = NOW + timedelta(hours=12)

        def hand_over(batch) -> list[float]:
            times = []
            for order_id, code, leader_id in batch:
                start = time.perf_counter()
                with session_scope(sessions) as s:
                    pickups.verify_pickup(
                        s,
                        leader=s.get_one(Leader, leader_id),
                        code=code,
                        user_id=users[leader_id],
                        actor="bench",
                        order_id=order_id,
                        today=summary.delivery_date,
                        now=collected_at,
                    )
                times.append((time.perf_counter() - start) * 1000)
            return times

        without: list[float] = []
        with_: list[float] = []
        for i in range(0, len(orders) - 19, 20):
            with mock.patch.object(pickups, "accrue_collected", lambda *a, **k: []):
                without += hand_over(orders[i : i + 10])
            with_ += hand_over(orders[i + 10 : i + 20])
        for name, times in (("without accrual", without), ("with accrual", with_)):
            times.sort()
            p95 = times[int(len(times) * 0.95)]
            print(
                f"handover {name:16} n={len(times):5}  median {statistics.median(times):6.2f} ms"
                f"  p95 {p95:6.2f} ms"
            )
        start = time.perf_counter()
        with session_scope(sessions) as s:
            outcome = settle_region(
                s,
                region_id=region_id,
                day=summary.delivery_date + timedelta(days=8),
                now=collected_at + timedelta(days=8),
                actor="bench",
            )
        print(f"settlement: {outcome.lines} lines in {(time.perf_counter() - start) * 1000:.0f} ms")
    finally:
        engine.dispose()
        drop()


if __name__ == "__main__":
    main()
