"""Loading scans under gunicorn on PostgreSQL: 20 crates scanned a second, beside a floor.

    python -m benchmarks.handover [--rate 20] [--seconds 15] [--leaders 200 --orders 10000]

Builds a demo city in a fresh PostgreSQL schema, cuts off its wave (packing its crates), plans
and publishes it (every crate gets its truck and load number), and serves the app with gunicorn
(2 workers, 4 threads each) on 127.0.0.1. A warehouse user signs in; then, open loop, `--rate`
requests a second for `--seconds` from 20 threads: first `GET /healthz` (the floor: the app
answering without the database), then `POST /loading/<truck>/scan` with a different crate each
time, as a loader's USB scanner sends it. Prints p50 / p95 / max and the rate achieved for each,
the answers' status codes, and the load average. Target: scans at p95 ≤ 100 ms.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from benchmarks._postgres import DEFAULT_PG, fresh_schema

PASSWORD = "benchmark-password"


def _prepare(url: str, leaders: int, orders: int) -> tuple[int, list[tuple[int, str]]]:
    """The demo wave cut off, planned and published; its trucks' (route id, crate code) pairs."""
    from sqlalchemy import select

    from fulfilment.accounts.services import create_user
    from fulfilment.catalogue.sites import get_region
    from fulfilment.core.db import make_engine, make_session_factory, session_scope
    from fulfilment.core.migrate import upgrade
    from fulfilment.core.models import Wave
    from fulfilment.demo.city import build_demo
    from fulfilment.handovers.scans import list_loading_routes
    from fulfilment.night.crate_routes import crates_of_route
    from fulfilment.night.planning import PlanningOptions, solve_wave
    from fulfilment.night.plans import RoutePlan, finish_plan, publish_plan
    from fulfilment.waves.cutoff import cut_off_wave
    from routing import LocalRunner

    engine = make_engine(url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    now = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    with session_scope(sessions) as s:
        summary = build_demo(s, seed=42, leaders=leaders, orders=orders, now=now)
        wave, _ = cut_off_wave(
            s, region=get_region(s, "SH"), delivery_date=summary.delivery_date, now=now
        )
        wave_id = wave.id
        create_user(s, username="loader", password=PASSWORD, role="warehouse", region_code="SH")
    options = PlanningOptions(time_limit_s=1.0, trunk_time_limit_s=3.0)
    plan_id = solve_wave(
        sessions, wave_id=wave_id, runner=LocalRunner(1), options=options, now=lambda: now
    )
    with session_scope(sessions) as s:
        finish_plan(s, plan=s.get(RoutePlan, plan_id), actor="bench", now=now)
        publish_plan(s, wave=s.get(Wave, wave_id), actor="bench", now=now)
    with session_scope(sessions) as s:
        scans = [
            (route.id, crate.code)
            for route, *_ in list_loading_routes(s, wave=s.scalars(select(Wave)).one())
            for crate in crates_of_route(s, route.id)
        ]
    engine.dispose()
    return wave_id, scans


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(url: str, instance: str, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "GROUPBUY_ENV": "test",
        "GROUPBUY_DATABASE_URL": url,
        "GROUPBUY_INSTANCE_DIR": instance,
    }
    env.pop("GROUPBUY_REDIS_URL", None)
    gunicorn = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen(
        [str(gunicorn), "-w", "2", "-k", "gthread", "--threads", "4"]
        + ["-b", f"127.0.0.1:{port}", "--log-level", "warning", "web:create_app()"],
        env=env,
        start_new_session=True,
    )
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise RuntimeError("gunicorn did not answer /healthz")


def _sign_in(port: int) -> tuple[str, str]:
    """The session cookie and a CSRF token of the signed-in warehouse user."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", "/login")
    answer = conn.getresponse()
    page = answer.read().decode()
    cookie = answer.getheader("Set-Cookie", "").split(";")[0]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    body = urllib.parse.urlencode({"username": "loader", "password": PASSWORD, "csrf_token": token})
    conn.request(
        "POST",
        "/login",
        body,
        {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"},
    )
    answer = conn.getresponse()
    answer.read()
    cookie = answer.getheader("Set-Cookie", cookie).split(";")[0]
    conn.request("GET", "/", headers={"Cookie": cookie})  # any page carries the token
    answer = conn.getresponse()
    page = answer.read().decode()
    cookie = answer.getheader("Set-Cookie", cookie).split(";")[0]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    return cookie, token


def _open_loop(port: int, requests: list[tuple[str, str, str | None]], rate: float, threads: int):
    """Send request i at start + i / rate from a pool of threads (each with its own keep-alive
    connection); latencies in ms and status codes."""
    latencies: list[float] = []
    codes: Counter[int] = Counter()
    lock = threading.Lock()
    index = iter(range(len(requests)))
    start = time.perf_counter() + 0.2

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                i = next(index, None)
            if i is None:
                break
            method, path, body = requests[i]
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            t0 = time.perf_counter()
            headers = {"Cookie": COOKIE[0]}
            if body is not None:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            try:
                conn.request(method, path, body, headers)
                answer = conn.getresponse()
                answer.read()
                status = answer.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status = 0
            elapsed = (time.perf_counter() - t0) * 1000
            with lock:
                latencies.append(elapsed)
                codes[status] += 1
        conn.close()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    took = time.perf_counter() - start
    return latencies, codes, len(requests) / took


COOKIE = [""]


def _row(name: str, latencies: list[float], codes: Counter[int], achieved: float) -> str:
    ordered = sorted(latencies)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    return (
        f"{name:<22} {len(ordered):>6} {achieved:>8.1f} {statistics.median(ordered):>8.1f} "
        f"{p95:>8.1f} {ordered[-1]:>8.1f}  {dict(sorted(codes.items()))}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=20.0, help="requests a second")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=20)
    parser.add_argument("--leaders", type=int, default=200)
    parser.add_argument("--orders", type=int, default=10000)
    parser.add_argument(
        "--postgres-url", default=os.environ.get("GROUPBUY_TEST_POSTGRES_URL", DEFAULT_PG)
    )
    args = parser.parse_args(argv)
    url, drop = fresh_schema(args.postgres_url)
    server = None
    try:
        started = time.perf_counter()
        _, scans = _prepare(url, args.leaders, args.orders)
        print(f"prepared in {time.perf_counter() - started:.0f} s: {len(scans)} crates on trucks")
        n = int(args.rate * args.seconds)
        if len(scans) < n:
            raise SystemExit(f"only {len(scans)} crates for {n} scans: more --orders")
        port = _free_port()
        with tempfile.TemporaryDirectory() as instance:
            server = _serve(url, instance, port)
            COOKIE[0], token = _sign_in(port)
            floor = _open_loop(port, [("GET", "/healthz", None)] * n, args.rate, args.threads)
            scan_requests = [
                (
                    "POST",
                    f"/loading/{route_id}/scan",
                    urllib.parse.urlencode({"code": code, "csrf_token": token}),
                )
                for route_id, code in scans[:n]
            ]
            load_before = os.getloadavg()
            scanned = _open_loop(port, scan_requests, args.rate, args.threads)
            load_after = os.getloadavg()
        print(f"load average before / after the scans: {load_before} / {load_after}")
        print(
            f"{args.rate:g} requests/s for {args.seconds:g} s from {args.threads} threads; "
            "gunicorn 2 workers × 4 threads; target: scans p95 ≤ 100 ms"
        )
        print(f"{'':<22} {'n':>6} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  answers")
        print(_row("GET /healthz (floor)", *floor))
        print(_row("POST loading scan", *scanned))
    finally:
        if server is not None:
            os.killpg(server.pid, 15)
            server.wait(timeout=10)
        drop()


if __name__ == "__main__":
    main()
