"""A CSV import of 10,000 rows on PostgreSQL, with API orders for its SKUs placed meanwhile.

    python -m benchmarks.import_orders [--rows 10000] [--clients 4] [--postgres-url URL]

In a fresh PostgreSQL schema: a region with 200 leaders and 40 SKUs (capped, tiered deals).
The import runs in a child process (as `groupbuy import-orders` does: one session, committed at
the end); meanwhile the parent's API clients (threads) place one-line orders for the file's SKUs
through `submit_order`, the service behind `POST /api/v1/orders`, each in its own transaction.
The same clients first place orders with no import running: the baseline, from the same run.
Prints the import's time and rows/s (target: under 20 s for 10,000 rows; the importer before
issue 22 took 346 s), the time its deal locks were held, and the API orders' p50/p95/max
latency beside the baseline (target: p95 within 1 s), with the load average.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from datetime import time as clock

from benchmarks._postgres import DEFAULT_PG, fresh_schema

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai: the wave is open
LEADERS = 200
SKUS = 40
HEADER = "order_no,order_time,leader_code,member_id,member_name,phone,sku,quantity\n"


def _setup(url: str) -> None:
    from fulfilment.core.db import make_engine, make_session_factory, session_scope
    from fulfilment.core.migrate import upgrade
    from fulfilment.core.models import (
        Deal,
        GridStation,
        Leader,
        PriceTier,
        Product,
        Region,
        TempZone,
        Warehouse,
    )
    from fulfilment.platforms.clients import create_api_client
    from fulfilment.waves.cycle import delivery_date_for

    engine = make_engine(url)
    upgrade(engine)
    with session_scope(make_session_factory(engine)) as s:
        region = Region(
            code="SH",
            name="Shanghai",
            tz="Asia/Shanghai",
            cutoff_time=clock(23, 0),
            delivery_offset_days=1,
            lat=31.23,
            lon=121.47,
            radius_km=80,
        )
        s.add(region)
        s.flush()
        wh = Warehouse(region_id=region.id, code="WH1", name="WH", lat=31.3, lon=121.3)
        s.add(wh)
        s.flush()
        station = GridStation(
            region_id=region.id, warehouse_id=wh.id, code="GS1", name="GS", lat=31.2, lon=121.4
        )
        s.add(station)
        s.flush()
        for n in range(LEADERS):
            s.add(
                Leader(
                    region_id=region.id,
                    station_id=station.id,
                    code=f"L{n}",
                    name=f"Leader {n}",
                    phone="13800000000",
                    pickup_name=f"Point {n}",
                    lat=31.2,
                    lon=121.4 + n * 1e-4,
                )
            )
        delivery = delivery_date_for(region, NOW)
        for n in range(SKUS):
            product = Product(
                sku=f"SKU{n}",
                name=f"Product {n}",
                weight_g=500,
                volume_ml=500,
                zone=TempZone.AMBIENT,
                bin_code=f"A-{n:02d}-1",
            )
            s.add(product)
            s.flush()
            deal = Deal(
                region_id=region.id,
                product_id=product.id,
                delivery_date=delivery,
                base_price_cents=1000,
                stock_cap=1_000_000,
            )
            deal.tiers = [PriceTier(min_qty=500, price_cents=900)]
            s.add(deal)
        s.flush()
        create_api_client(s, name="bench", region_code="SH")
    engine.dispose()


def _file(rows: int) -> bytes:
    """`rows` rows, two lines per order, spread over the leaders, members and SKUs."""
    local = NOW + timedelta(hours=8)
    out = [HEADER]
    for n in range(rows):
        order = n // 2
        at = (local - timedelta(seconds=order)).strftime("%Y-%m-%d %H:%M:%S")
        out.append(
            f"O{order},{at},L{order % LEADERS},m{order % 3000},Member {order % 3000},"
            f"1380000{order % 3000:04d},SKU{(order + n % 2 * 7) % SKUS},{1 + n % 3}\n"
        )
    return "".join(out).encode()


def _import(url: str, data: bytes, queue) -> None:
    from fulfilment.catalogue.sites import get_region
    from fulfilment.core.db import make_engine, make_session_factory, session_scope
    from fulfilment.orders import importer

    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with engine.connect():  # the connection opened before the clock starts, as a CLI's would be
        pass
    taking: list[float] = []  # when the stock UPDATEs began: the deal locks are held from there
    take_stock = importer._take_stock

    def timed_take_stock(*args, **kwargs):
        taking.append(time.perf_counter())
        return take_stock(*args, **kwargs)

    importer._take_stock = timed_take_stock
    queue.put("ready")
    started = time.perf_counter()
    with session_scope(sessions) as s:
        report = importer.import_orders(s, region=get_region(s, "SH"), data=data)
    finished = time.perf_counter()  # committed
    queue.put(
        (
            finished - started,
            report.orders_imported,
            report.lines_imported,
            finished - taking[-1],
        )
    )
    engine.dispose()


def _api_load(url: str, *, clients: int, stop: threading.Event, prefix: str) -> list[float]:
    """Each client places one-line orders in a loop until `stop`; returns every latency (s)."""
    from sqlalchemy import select

    from fulfilment.core.db import make_engine, make_session_factory, session_scope
    from fulfilment.orders.intake import LineRequest, MemberRef
    from fulfilment.platforms.clients import ApiClient, OrderRequest, submit_order

    engine = make_engine(url, pool_size=clients, max_overflow=0)
    sessions = make_session_factory(engine)
    latencies: list[float] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        n = 0
        while not stop.is_set():
            request = OrderRequest(
                leader_code=f"L{(c * 37 + n) % LEADERS}",
                member=MemberRef(f"api-{c}-{n % 50}"),
                lines=[LineRequest(f"SKU{(c + n) % SKUS}", 1)],
            )
            started = time.perf_counter()
            with session_scope(sessions) as s:
                api = s.scalars(select(ApiClient)).one()
                submit_order(
                    s, client=api, request=request, idempotency_key=f"{prefix}-{c}-{n}", now=NOW
                )
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
            n += 1

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()
    return latencies


def _figures(latencies: list[float]) -> tuple[int, float, float, float]:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return len(ordered), statistics.median(ordered), p95, ordered[-1]


def run(url: str, *, rows: int, clients: int, baseline_s: float) -> dict:
    ctx = multiprocessing.get_context("spawn")
    setup = ctx.Process(target=_setup, args=(url,))
    setup.start()
    setup.join()
    data = _file(rows)

    stop = threading.Event()
    timer = threading.Timer(baseline_s, stop.set)
    timer.start()
    baseline = _api_load(url, clients=clients, stop=stop, prefix="base")

    queue = ctx.Queue()
    proc = ctx.Process(target=_import, args=(url, data, queue))
    proc.start()
    assert queue.get() == "ready"
    stop = threading.Event()
    during: list[float] = []
    load = threading.Thread(
        target=lambda: during.extend(_api_load(url, clients=clients, stop=stop, prefix="during"))
    )
    load.start()
    import_s, orders, lines, held_s = queue.get()
    stop.set()
    load.join()
    proc.join()
    return {
        "rows": rows,
        "orders": orders,
        "lines": lines,
        "import_s": import_s,
        "held_s": held_s,
        "baseline": _figures(baseline),
        "during": _figures(during),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=4, help="concurrent API clients")
    parser.add_argument("--baseline-s", type=float, default=10.0)
    parser.add_argument(
        "--postgres-url", default=os.environ.get("GROUPBUY_TEST_POSTGRES_URL", DEFAULT_PG)
    )
    args = parser.parse_args(argv)
    url, drop = fresh_schema(args.postgres_url)
    try:
        r = run(url, rows=args.rows, clients=args.clients, baseline_s=args.baseline_s)
    finally:
        drop()
    print(f"load average: {os.getloadavg()}")
    print(
        f"CSV import of {r['rows']} rows ({r['orders']} orders, {r['lines']} lines) on PostgreSQL"
        " (target: under 20 s; before issue 22: 346 s, 29 rows/s)"
    )
    print(
        f"  import {r['import_s']:.2f} s, {r['rows'] / r['import_s']:.0f} rows/s; "
        f"deal locks held {r['held_s']:.2f} s"
    )
    print(f"API orders, {args.clients} clients, for the file's SKUs (target: p95 within 1 s)")
    print(f"  {'':<16} {'orders':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, (count, p50, p95, worst) in (
        ("no import", r["baseline"]),
        ("during import", r["during"]),
    ):
        print(f"  {name:<16} {count:>7} {p50 * 1e3:>8.1f} {p95 * 1e3:>8.1f} {worst * 1e3:>8.1f}")


if __name__ == "__main__":
    main()
