"""The outbox under load: events written by the demo's cutoff and pickups, delivered to a local
receiver, and the backlog of a receiver outage drained.

    python -m benchmarks.events [--orders 100000] [--leaders 2000] [--workers 2]
        [--pickup-rate 50] [--steady-s 30] [--outage-s 300] [--postgres-url URL]

Builds the demo city (`groupbuy demo --no-cutoff`) in a fresh PostgreSQL schema; its orders are
attributed to one API client (as if that platform had placed them all) with one webhook endpoint
pointing at a receiver: a separate process that verifies every signature (Standard Webhooks),
deduplicates by webhook-id and logs each event with the time it arrived. --workers processes of
`groupbuy webhooks run` deliver. Then:

1. burst: the wave is cut off in one transaction (order.cut_off, refund.owed, order.cancelled
   for every order); delivered at N events/s from its commit to the last one received
   (target ≥ 1,000/s);
2. steady: pickups (verify_pickup, one transaction each) at --pickup-rate for --steady-s; p50/p95
   from each pickup's commit to its order.collected received (target p95 ≤ 2 s);
3. outage: the receiver answers 503 for --outage-s while pickups go on; then it answers again,
   and the backlog must be delivered within a minute (target ≤ 60 s).

Prints the table and the load average (other sessions share the machine's cores).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy import select, text, update

from benchmarks._postgres import DEFAULT_PG, fresh_schema
from benchmarks.web import _free_port, _groupbuy

TARGET_RATE = 1000.0
TARGET_P95_S = 2.0
TARGET_DRAIN_S = 60.0


# --- the receiver: a process of its own ----------------------------------------------------------


def receive(port: int, secret: str, log_path: str) -> None:
    """Serve until killed: verify, deduplicate, log `webhook-id order_id type received_at`;
    SIGUSR1 toggles an outage (503 to everything)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    state = {"down": False}
    seen: set[str] = set()
    lock = threading.Lock()
    out = open(log_path, "a", buffering=1024 * 1024)  # noqa: SIM115 - lives with the process

    def toggle(*_):
        state["down"] = not state["down"]

    signal.signal(signal.SIGUSR1, toggle)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            return

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            status = 204
            if state["down"]:
                status = 503
            else:
                msg_id = self.headers.get("webhook-id", "")
                stamp = self.headers.get("webhook-timestamp", "")
                signed = f"{msg_id}.{stamp}.".encode() + body
                expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
                given = self.headers.get("webhook-signature", "").partition(",")[2].encode()
                if not hmac.compare_digest(expected, given):
                    status = 401
                else:
                    with lock:
                        if msg_id not in seen:
                            seen.add(msg_id)
                            event = json.loads(body)
                            out.write(
                                f"{msg_id} {event['data'].get('order_id')} {event['type']} "
                                f"{time.time():.4f}\n"
                            )
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

    def flush() -> None:
        while True:
            time.sleep(0.5)
            with lock:
                out.flush()

    threading.Thread(target=flush, daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


def _read_log(path: Path) -> list[tuple[str, int, str, float]]:
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4:
            rows.append(
                (parts[0], int(parts[1]) if parts[1] != "None" else 0, parts[2], float(parts[3]))
            )
    return rows


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


# --- the run ---------------------------------------------------------------------------------------


class Pickups:
    """Hands bags over at `rate` per second in a thread, each its own transaction; records the
    commit time of each order collected."""

    def __init__(self, sessions, orders: list[tuple[int, str, int]], delivery: date, user_id: int):
        self.sessions, self.orders, self.delivery, self.user_id = (
            sessions,
            orders,
            delivery,
            user_id,
        )
        self.committed: dict[int, float] = {}
        self.stop = threading.Event()
        self.errors = 0

    def run(self, rate: float, seconds: float) -> threading.Thread:
        def loop() -> None:
            from fulfilment.core.db import session_scope
            from fulfilment.core.models import Leader
            from fulfilment.points.pickups import verify_pickup

            start = time.monotonic()
            n = 0
            while not self.stop.is_set() and time.monotonic() - start < seconds and self.orders:
                due = start + n / rate
                if due > time.monotonic():
                    time.sleep(due - time.monotonic())
                order_id, code, leader_id = self.orders.pop()
                try:
                    with session_scope(self.sessions) as s:
                        verify_pickup(
                            s,
                            leader=s.get(Leader, leader_id),
                            code=code,
                            user_id=self.user_id,
                            actor="bench",
                            order_id=order_id,
                            today=self.delivery,
                        )
                    self.committed[order_id] = time.time()
                except Exception:  # noqa: BLE001 - counted, the run goes on
                    self.errors += 1
                n += 1

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Meter:
    """CPU of the couriers, of the receiver, and of the couriers' PostgreSQL backends (found by
    their application_name): what an event costs, whatever else the machine runs."""

    def __init__(self, admin_engine, application_name: str) -> None:
        self.admin, self.name = admin_engine, application_name
        self.couriers: list[int] = []
        self.receiver = 0

    def snapshot(self) -> dict[str, float]:
        with self.admin.connect() as conn:
            backends = (
                conn.execute(
                    text("SELECT pid FROM pg_stat_activity WHERE application_name = :n"),
                    {"n": self.name},
                )
                .scalars()
                .all()
            )
        return {
            "couriers": sum(_cpu_s(p) for p in self.couriers),
            "receiver": _cpu_s(self.receiver),
            "db": sum(_cpu_s(p) for p in backends),
        }

    @staticmethod
    def per_event_ms(before: dict[str, float], after: dict[str, float], events: int) -> str:
        if not events:
            return "-"
        parts = [f"{k} {(after[k] - before[k]) * 1000 / events:.2f}" for k in before]
        return " + ".join(parts)


def _pending(engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM webhook_message WHERE state = 'pending'")
            ).scalar()
            or 0
        )


def _wait_drained(engine, *, timeout_s: float) -> float | None:
    """Seconds until no message is pending, or None past the timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if _pending(engine) == 0:
            return time.monotonic() - start
        time.sleep(0.25)
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--leaders", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2, help="`groupbuy webhooks run` processes")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight each")
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--pickup-rate", type=float, default=50.0)
    parser.add_argument("--steady-s", type=float, default=30.0)
    parser.add_argument("--outage-s", type=float, default=300.0, help="quick run: e.g. 30")
    parser.add_argument(
        "--postgres-url", default=os.environ.get("GROUPBUY_TEST_POSTGRES_URL", DEFAULT_PG)
    )
    parser.add_argument("--receive", nargs=3, help=argparse.SUPPRESS)  # the receiver's process
    args = parser.parse_args(argv)
    if args.receive:
        receive(int(args.receive[0]), args.receive[1], args.receive[2])
        return

    from fulfilment.core.db import make_engine, make_session_factory, session_scope

    url, drop = fresh_schema(args.postgres_url, prefix="gb_eventsbench")
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"gb-eventsbench-{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True)
    env = {
        **{k: v for k, v in os.environ.items() if k != "GROUPBUY_REDIS_URL"},
        "GROUPBUY_DATABASE_URL": url,
        "GROUPBUY_ENV": "production",
        "GROUPBUY_SECRET_KEY": secrets.token_hex(32),
        "GROUPBUY_INSTANCE_DIR": str(work),
    }
    children: list[subprocess.Popen] = []
    engine = make_engine(url, pool_size=4)
    courier_app = f"gb-events-courier-{uuid.uuid4().hex[:8]}"
    meter = Meter(make_engine(args.postgres_url), courier_app)
    sessions = make_session_factory(engine)
    rows: list[tuple[str, str, str, str]] = []
    try:
        started = time.perf_counter()
        _groupbuy(
            env, "demo", "--leaders", str(args.leaders), "--orders", str(args.orders), "--no-cutoff"
        )
        _groupbuy(env, "api-client", "create", "platform", "--region", "SH")
        port = _free_port()
        secret = _groupbuy(
            env, "api-client", "webhook", "add", "platform", f"http://127.0.0.1:{port}/events"
        ).strip()
        log = work / "received.log"
        children.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.events",
                    "--receive",
                    str(port),
                    secret,
                    str(log),
                ],
                env=env,
            )
        )
        from fulfilment.accounts.models import Role
        from fulfilment.accounts.services import create_user
        from fulfilment.catalogue.sites import get_region
        from fulfilment.core.models import Order, Wave, WaveStatus
        from fulfilment.platforms.clients import ApiClient
        from fulfilment.waves.cutoff import cut_off_wave
        from fulfilment.waves.deadlines import refresh_cutoff_statistics

        with session_scope(sessions) as s:
            client = s.scalars(select(ApiClient)).one()
            wave = s.scalars(
                select(Wave).where(Wave.status == WaveStatus.OPEN).order_by(Wave.id)
            ).first()
            assert wave is not None
            # As if the platform had placed every demo order: each event goes to its endpoint.
            s.execute(
                update(Order).where(Order.wave_id == wave.id).values(idempotency_scope=client.scope)
            )
            user = create_user(s, username="bench-staff", password="x" * 12, role=Role.ADMIN)
            wave_id, delivery, cutoff_due, user_id = (
                wave.id,
                wave.delivery_date,
                wave.cutoff_due_at,
                user.id,
            )
        refresh_cutoff_statistics(engine)
        print(
            f"demo built ({args.leaders} leaders, {args.orders} orders) in "
            f"{time.perf_counter() - started:.0f} s; {args.workers} courier processes "
            f"(batch {args.batch}, {args.concurrency} in flight each)",
            flush=True,
        )
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        courier_env = {**env, "GROUPBUY_DATABASE_URL": f"{url}&application_name={courier_app}"}
        meter.receiver = children[0].pid
        for _ in range(args.workers):
            children.append(
                subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "groupbuy"),
                        "webhooks",
                        "run",
                        "--batch",
                        str(args.batch),
                        "--concurrency",
                        str(args.concurrency),
                    ],
                    env=courier_env,
                    stderr=subprocess.DEVNULL,
                )
            )
            meter.couriers.append(children[-1].pid)
        time.sleep(2)

        # 1. the burst of the cutoff
        cpu_before = meter.snapshot()
        cut_started = time.perf_counter()
        with session_scope(sessions) as s:
            from datetime import timedelta

            cut_off_wave(
                s,
                region=get_region(s, "SH"),
                delivery_date=delivery,
                now=cutoff_due + timedelta(seconds=1),
                actor="bench",
            )
        committed = time.time()
        cut_s = time.perf_counter() - cut_started
        with engine.connect() as conn:
            burst = int(conn.execute(text("SELECT count(*) FROM webhook_message")).scalar() or 0)
        drained = _wait_drained(engine, timeout_s=max(120.0, burst / 200))
        time.sleep(1.0)  # the receiver's log is flushed every 0.5 s
        received = _read_log(log)
        cpu_after = meter.snapshot()
        last = max((r[3] for r in received), default=committed)
        burst_rate = len(received) / (last - committed) if last > committed else float("nan")
        burst_lat = [r[3] - committed for r in received]
        rows.append(
            ("cutoff transaction (events written in it)", f"{cut_s:.1f} s ({burst} events)", "", "")
        )
        rows.append(
            (
                "burst delivered, events/s",
                f"{burst_rate:,.0f}",
                f"≥ {TARGET_RATE:,.0f}",
                "ok" if burst_rate >= TARGET_RATE and drained is not None else "MISSED",
            )
        )
        rows.append(("burst: commit → last received", f"{last - committed:.1f} s", "", ""))
        rows.append(
            (
                "burst: CPU ms per event (couriers + receiver + db)",
                Meter.per_event_ms(cpu_before, cpu_after, len(received)),
                "",
                "",
            )
        )
        rows.append(
            (
                "burst: p50 / p95 commit → received",
                f"{_pct(burst_lat, 50):.1f} / {_pct(burst_lat, 95):.1f} s",
                "",
                "(queued behind the burst)",
            )
        )

        # 2. steady pickups while the receiver answers
        with engine.connect() as conn:
            ready = [
                (int(o), str(c), int(le))
                for o, c, le in conn.execute(
                    text(
                        "SELECT id, pickup_code, leader_id FROM orders WHERE wave_id = :w "
                        "AND status = 'placed' ORDER BY id"
                    ),
                    {"w": wave_id},
                )
            ]
        random.Random(5).shuffle(ready)
        pickups = Pickups(sessions, ready, delivery, user_id)
        seen_before = len(received)
        pickups.run(args.pickup_rate, args.steady_s).join()
        _wait_drained(engine, timeout_s=60)
        time.sleep(1.0)
        received = _read_log(log)
        collected = {r[1]: r[3] for r in received[seen_before:] if r[2] == "order.collected"}
        steady = [collected[o] - t for o, t in pickups.committed.items() if o in collected]
        p95 = _pct(steady, 95)
        rows.append(
            (
                f"steady: {len(pickups.committed)} pickups at {args.pickup_rate:g}/s, p50 / p95 commit → received",
                f"{_pct(steady, 50):.2f} / {p95:.2f} s",
                f"p95 ≤ {TARGET_P95_S:g} s",
                "ok" if p95 <= TARGET_P95_S and len(steady) == len(pickups.committed) else "MISSED",
            )
        )

        # 3. an outage of the receiver while pickups go on
        receiver = children[0]
        receiver.send_signal(signal.SIGUSR1)
        before_outage = len(pickups.committed)
        pickups.run(args.pickup_rate, args.outage_s).join()
        backlog = _pending(engine)
        receiver.send_signal(signal.SIGUSR1)
        drain = _wait_drained(engine, timeout_s=max(180.0, TARGET_DRAIN_S * 3))
        rows.append(
            (
                f"outage of {args.outage_s:g} s: backlog when the receiver came back",
                f"{backlog} events ({len(pickups.committed) - before_outage} pickups)",
                "",
                "",
            )
        )
        rows.append(
            (
                "backlog drained after the receiver came back",
                f"{drain:.1f} s" if drain is not None else "not within 180 s",
                f"≤ {TARGET_DRAIN_S:g} s",
                "ok" if drain is not None and drain <= TARGET_DRAIN_S else "MISSED",
            )
        )
        time.sleep(1.0)
        received = _read_log(log)
        with engine.connect() as conn:
            states = dict(
                conn.execute(
                    text("SELECT state, count(*) FROM webhook_message GROUP BY state")
                ).all()
            )
        ids = [r[0] for r in received]
        rows.append(
            (
                "messages by state at the end",
                ", ".join(f"{k} {v}" for k, v in sorted(states.items())),
                "",
                "",
            )
        )
        rows.append(
            (
                "received (distinct webhook-ids) / written",
                f"{len(set(ids))} / {sum(states.values())}",
                "all",
                "ok" if len(set(ids)) == sum(states.values()) else "MISSED",
            )
        )
        rows.append(
            ("pickup errors", str(pickups.errors), "0", "ok" if not pickups.errors else "MISSED")
        )

        print()
        width = max(len(r[0]) for r in rows) + 2
        print(f"{'measure':<{width}}{'value':>28}{'target':>14}  ")
        for name, value, target, verdict in rows:
            print(f"{name:<{width}}{value:>28}{target:>14}  {verdict}")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(
            f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}"
        )
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
        engine.dispose()
        meter.admin.dispose()
        drop()


if __name__ == "__main__":
    main()
