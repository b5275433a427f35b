"""Server time of the portal's pages for one request at a time, on a big demo city.

    python -m benchmarks.portal_pages [--orders 100000 --leaders 2000] [--backend sqlite|postgres|both]

Builds the demo (and cuts off its wave), signs in as three leaders spread over the city, and
times 30 requests of each portal page in process (Flask's test client: no network, no server),
printing p50/p95 per page with the load average. The open-loop load test of the whole app
under gunicorn is `python -m benchmarks.web` (the API's benchmark).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime

from benchmarks._postgres import DEFAULT_PG, fresh_schema

PAGES = ("/leader/today", "/leader/arrival", "/leader/pickups", "/leader/uncollected")
RUNS = 30


def run(url: str, orders: int, leaders: int) -> list[tuple[str, str, float, float]]:
    from fulfilment.accounts.models import Role
    from fulfilment.accounts.services import create_user
    from fulfilment.catalogue.sites import get_region
    from fulfilment.core.db import session_scope
    from fulfilment.core.migrate import upgrade
    from fulfilment.demo.city import build_demo
    from fulfilment.waves.cutoff import cut_off_wave
    from web import create_app

    with tempfile.TemporaryDirectory() as instance:
        app = create_app(
            {
                "GROUPBUY_ENV": "test",
                "GROUPBUY_DATABASE_URL": url,
                "GROUPBUY_INSTANCE_DIR": instance,
                "RATELIMIT_ENABLED": False,
            }
        )
        upgrade(app.extensions["groupbuy"]["engine"])
        sessions = app.extensions["groupbuy"]["sessions"]
        with session_scope(sessions) as s:
            summary = build_demo(s, seed=7, leaders=leaders, orders=orders)
        codes = [f"L{n:05d}" for n in (1, max(leaders // 2, 1), leaders)]
        with session_scope(sessions) as s:
            cut_off_wave(
                s,
                region=get_region(s, "SH"),
                delivery_date=summary.delivery_date,
                now=datetime.now(UTC),
            )
            for code in codes:
                create_user(
                    s, username=code, password="benchmark", role=Role.LEADER, leader_code=code
                )
        rows = []
        for code in codes:
            client = app.test_client()
            token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
            assert token is not None
            client.post(
                "/login",
                data={"username": code, "password": "benchmark", "csrf_token": token.group(1)},
            )
            for page in PAGES:
                assert client.get(page).status_code == 200
                times = []
                for _ in range(RUNS):
                    start = time.perf_counter()
                    client.get(page)
                    times.append((time.perf_counter() - start) * 1000)
                times.sort()
                rows.append((code, page, statistics.median(times), times[int(RUNS * 0.95) - 1]))
        app.extensions["groupbuy"]["engine"].dispose()
        return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--leaders", type=int, default=2000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument(
        "--postgres-url", default=os.environ.get("GROUPBUY_BENCH_POSTGRES_URL", DEFAULT_PG)
    )
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for backend in backends:
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                rows = run(f"sqlite:///{tmp}/bench.sqlite", args.orders, args.leaders)
        else:
            rows = _on_postgres(args.postgres_url, args.orders, args.leaders)
        print(f"\n{backend}: {args.orders} orders, {args.leaders} leaders, {RUNS} requests each")
        print(f"{'leader':<8} {'page':<22} {'p50 ms':>8} {'p95 ms':>8}")
        for code, page, p50, p95 in rows:
            print(f"{code:<8} {page:<22} {p50:8.1f} {p95:8.1f}")
        print("load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()))


def _on_postgres(url: str, orders: int, leaders: int):
    schema_url, drop = fresh_schema(url)
    try:
        return run(schema_url, orders, leaders)
    finally:
        drop()


if __name__ == "__main__":
    main()
