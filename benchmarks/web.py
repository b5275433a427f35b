"""The web under load: order POSTs through the API and a leader's page, open loop.

    python -m benchmarks.web [--seconds 30] [--post-rates 50,100,200,300] [--page-rates 25,50,100,150]
        [--page-path '/waves/{wave}/leaders?leader={leader}']
        [--login-path /login --create-users]       # once the portal's sign-in exists

Builds the demo city (`groupbuy demo --leaders 2000 --orders 100000`, which cuts off its wave and
offers the next one) in a fresh PostgreSQL schema, creates an API client, and serves the app with
gunicorn (2 workers, gthread) on a free port of 127.0.0.1. Then, for each rate, an open-loop load
generator sends requests at fixed arrival times (request i at start + i / rate, whatever the
answers before it did) for --seconds, and measures each latency from its *scheduled* time, so a
slow server cannot hide by slowing the senders: queueing in the generator counts too.

Scenarios:
- post: POST /api/v1/orders with a fresh Idempotency-Key each, a random leader of the 2000, a
  member from a pool of 50,000, one to three lines of the demo catalogue.
- page: GET --page-path across --page-leaders leaders ({leader}: its code, {wave}: the id of the
  demo's cut-off wave, {date}: its delivery date). With --login-path each leader signs in first
  through the login form (GET it, take the CSRF token and the session cookie, POST the form);
  --create-users makes their accounts with `groupbuy create-user … --password-stdin`.

Each scenario has a floor beside it, served by the same gunicorn, app and engine
(benchmarks/floor.py): floor-post (validate a small JSON body, one INSERT, COMMIT) at the post
rates, floor-page (one indexed SELECT rendered by a template) at the page rates; --no-floor
leaves them out. With the outbox on (the default; --no-outbox: off) the API client has a webhook
endpoint, so each POST writes its order.accepted event in its transaction (no courier runs during
this benchmark: it measures what the intake pays; `python -m benchmarks.events` measures delivery).

Prints per rate: requests sent, achieved requests/s, p50/p95/p99 latency, errors (non-2xx,
timeouts, connection failures), the 1-minute load average, and the CPU milliseconds per answered
request used by the gunicorn workers (app CPU) and by their PostgreSQL backends (db CPU), read
from /proc: on a machine shared with other work, these say what a request costs whatever the
others do. Then per scenario the highest rate whose p95 ≤ 100 ms with zero errors (targets:
200 POST/s and 100 pages/s) beside its floor's, and the CPU ms per request (app + db) of each
scenario beside its floor's with the ratio (targets: POST ≤ 3× the floor, page ≤ 3× the floor
page).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text

from benchmarks._postgres import DEFAULT_PG, fresh_schema

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
TARGET_P95_MS = 100.0
REQUEST_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 256  # the generator's bound on connections in flight
SKUS = [
    "VEG-001",
    "VEG-002",
    "VEG-003",
    "FRU-001",
    "FRU-002",
    "GRO-001",
    "GRO-002",
    "GRO-003",
    "DAI-001",
    "DAI-002",
    "MEA-001",
    "MEA-002",
    "FRZ-001",
    "FRZ-002",
    "FRZ-003",
    "HOM-001",
]
VENV_BIN = Path(sys.executable).parent


# --- a small HTTP/1.1 client on asyncio streams (keep-alive, bounded connections) -------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    cookies: dict[str, str]
    body: bytes


class Pool:
    """Keep-alive connections to one 127.0.0.1 port, at most `limit` open at once.

    A connection idle for longer than the server's keep-alive (gunicorn: 2 s) may have been
    closed by it: such connections are dropped, and a request that finds its reused connection
    closed before any answer is sent once more on a new one, as HTTP clients do."""

    IDLE_S = 1.5

    def __init__(self, port: int, limit: int = MAX_CONNECTIONS) -> None:
        self.port, self.limit = port, limit
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.open = 0
        self.freed = asyncio.Condition()

    async def _acquire(
        self, fresh: bool = False
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        now = time.monotonic()
        async with self.freed:
            while self.idle and not fresh:
                reader, writer, since = self.idle.pop()
                if now - since < self.IDLE_S:
                    return reader, writer, True
                writer.close()
                self.open -= 1
            while self.open >= self.limit and not self.idle:
                await self.freed.wait()
            if self.idle and not fresh:
                reader, writer, _ = self.idle.pop()
                return reader, writer, True
            self.open += 1
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            return reader, writer, False
        except BaseException:
            async with self.freed:
                self.open -= 1
                self.freed.notify()
            raise

    async def _release(self, reader, writer, keep: bool) -> None:
        async with self.freed:
            if keep:
                self.idle.append((reader, writer, time.monotonic()))
            else:
                self.open -= 1
                writer.close()
            self.freed.notify()

    async def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Answer:
        head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        payload = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        for attempt in (1, 2):
            reader, writer, reused = await self._acquire(fresh=attempt == 2)
            keep = False
            try:
                writer.write(payload)
                await writer.drain()
                answer, keep = await _read_answer(reader)
                return answer
            except (asyncio.IncompleteReadError, ConnectionError) as err:
                if not reused or getattr(err, "partial", b""):
                    raise
            finally:
                await self._release(reader, writer, keep)
        raise ConnectionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[Answer, bool]:
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    cookies: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        headers[name] = value
        if name == "set-cookie":
            pair = value.split(";", 1)[0]
            key, _, val = pair.partition("=")
            cookies[key.strip()] = val.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            chunks.append(chunk[:-2])
        body = b"".join(chunks)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    keep = headers.get("connection", "").lower() != "close"
    return Answer(status, headers, cookies, body), keep


# --- the open-loop runner ---------------------------------------------------------------------


@dataclass
class Step:
    scenario: str
    rate: float
    seconds: float
    sent: int = 0
    ok: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    load1: float = 0.0
    error_kinds: dict[str, int] = field(default_factory=dict)
    app_cpu_s: float = 0.0  # CPU the gunicorn workers used during the step
    db_cpu_s: float = 0.0  # CPU their PostgreSQL backends used during the step

    def cpu_ms(self, seconds: float) -> float:
        """CPU milliseconds per answered request: a figure other users' load does not skew."""
        answered = self.ok + sum(v for k, v in self.error_kinds.items() if k.startswith("HTTP"))
        return seconds * 1000 / answered if answered else float("nan")

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]

    @property
    def achieved(self) -> float:
        return self.ok / self.wall_s if self.wall_s else 0.0

    @property
    def meets_target(self) -> bool:
        return self.errors == 0 and self.pct(95) <= TARGET_P95_MS


class CpuMeter:
    """CPU time (user + system) of the gunicorn workers and of their PostgreSQL backends."""

    def __init__(self, master_pid: int, admin_url: str, application_name: str) -> None:
        from fulfilment.core.db import make_engine

        self.master = master_pid
        self.admin = make_engine(admin_url)
        self.application_name = application_name
        self.tick = os.sysconf("SC_CLK_TCK")

    def _cpu(self, pid: int) -> float:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone, or not on this machine
            return 0.0
        return (int(fields[11]) + int(fields[12])) / self.tick

    def snapshot(self) -> tuple[dict[int, float], dict[int, float]]:
        children = Path(f"/proc/{self.master}/task/{self.master}/children")
        workers = [int(p) for p in children.read_text().split()] if children.exists() else []
        with self.admin.connect() as conn:
            backends = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE application_name = :n"),
                {"n": self.application_name},
            ).scalars()
            db = {pid: self._cpu(pid) for pid in backends}
        return {pid: self._cpu(pid) for pid in workers}, db

    @staticmethod
    def used(before: dict[int, float], after: dict[int, float]) -> float:
        return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())

    def close(self) -> None:
        self.admin.dispose()


async def run_step(
    pool: Pool,
    make_request: Callable[[int], tuple[str, str, dict[str, str], bytes]],
    *,
    scenario: str,
    rate: float,
    seconds: float,
    meter: CpuMeter | None = None,
) -> Step:
    """Send rate × seconds requests at fixed times; latency counts from each scheduled time."""
    step = Step(scenario, rate, seconds)
    before = meter.snapshot() if meter else None
    total = int(rate * seconds)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    tasks = []

    async def one(i: int) -> None:
        scheduled = start + i / rate
        method, path, headers, body = make_request(i)
        try:
            answer = await asyncio.wait_for(
                pool.request(method, path, headers, body), REQUEST_TIMEOUT_S
            )
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as err:
            step.errors += 1
            kind = type(err).__name__
            step.error_kinds[kind] = step.error_kinds.get(kind, 0) + 1
            return
        step.latencies_ms.append((loop.time() - scheduled) * 1000)
        if 200 <= answer.status < 300:
            step.ok += 1
        else:
            step.errors += 1
            kind = f"HTTP {answer.status}"
            step.error_kinds[kind] = step.error_kinds.get(kind, 0) + 1

    for i in range(total):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i)))
        step.sent += 1
    await asyncio.gather(*tasks)
    step.wall_s = max(loop.time() - start, seconds)
    step.load1 = os.getloadavg()[0]
    if meter and before:
        after = meter.snapshot()
        step.app_cpu_s = meter.used(before[0], after[0])
        step.db_cpu_s = meter.used(before[1], after[1])
    return step


# --- the scenarios ----------------------------------------------------------------------------


def post_requests(token: str, leaders: list[str], seed: int):
    rng = random.Random(seed)

    def make(i: int) -> tuple[str, str, dict[str, str], bytes]:
        lines = [
            {"sku": sku, "quantity": rng.choice([1, 1, 1, 2, 3])}
            for sku in rng.sample(SKUS, rng.choice([1, 1, 2, 3]))
        ]
        body = {
            "leader": rng.choice(leaders),
            "member": {
                "id": f"bench-{rng.randrange(50_000)}",
                "name": "压测会员",
                "phone": f"139{rng.randrange(10**8):08d}",
            },
            "lines": lines,
        }
        return (
            "POST",
            "/api/v1/orders",
            {
                "Authorization": f"Bearer {token}",
                "Idempotency-Key": uuid.uuid4().hex,
                "Content-Type": "application/json",
            },
            json.dumps(body).encode(),
        )

    return make


def floor_post_requests(seed: int):
    rng = random.Random(seed)

    def make(i: int) -> tuple[str, str, dict[str, str], bytes]:
        body = {"name": f"floor-{rng.randrange(50_000)}", "quantity": rng.randrange(1, 10)}
        headers = {"Content-Type": "application/json"}
        return "POST", "/bench/floor/insert", headers, json.dumps(body).encode()

    return make


FLOOR_PAGE = "/bench/floor/page?leader={leader}"


def page_requests(path_template: str, leaders: list[str], cookies: dict[str, str], wave, seed):
    rng = random.Random(seed)

    def make(i: int) -> tuple[str, str, dict[str, str], bytes]:
        leader = rng.choice(leaders)
        headers = {"Cookie": cookies[leader]} if cookies.get(leader) else {}
        path = path_template.format(leader=leader, wave=wave[0], date=wave[1])
        return "GET", path, headers, b""

    return make


CSRF = re.compile(
    r"""<input[^>]*name=["']csrf_token["'][^>]*value=["']([^"']+)["']"""
    r"""|<input[^>]*value=["']([^"']+)["'][^>]*name=["']csrf_token["']"""
)


async def sign_in(pool: Pool, args, leader: str) -> str:
    """Sign in through the login form; returns the Cookie header of the signed-in session."""
    user = args.login_user.format(leader=leader)
    password = args.login_password.format(leader=leader)
    form_page = await pool.request("GET", args.login_path)
    match = CSRF.search(form_page.body.decode("utf-8", "replace"))
    if form_page.status != 200 or match is None:
        raise RuntimeError(f"no login form with a csrf_token at {args.login_path}")
    token = match.group(1) or match.group(2)
    jar = dict(form_page.cookies)
    from urllib.parse import urlencode

    body = urlencode({"csrf_token": token, "username": user, "password": password}).encode()
    answer = await pool.request(
        "POST",
        args.login_path,
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": "; ".join(f"{k}={v}" for k, v in jar.items()),
        },
        body,
    )
    jar.update(answer.cookies)
    if answer.status not in (200, 302, 303) or not answer.cookies:
        raise RuntimeError(f"sign-in as {user} failed: HTTP {answer.status}")
    return "; ".join(f"{k}={v}" for k, v in jar.items())


# --- setting up: database, demo, server ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _groupbuy(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [str(VENV_BIN / "groupbuy"), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"groupbuy {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def _serve(env: dict[str, str], port: int, args) -> subprocess.Popen:
    config = {
        "API_RATE_LIMIT": args.api_rate_limit,
        "RATELIMIT_KEY_PREFIX": f"webbench-{uuid.uuid4().hex[:8]}",  # shared Redis: own keys
        # every simulated leader signs in from 127.0.0.1: the per-address login limit would refuse
        # them (it stays on in production; the benchmark measures pages, not the throttle)
        "GROUPBUY_LOGIN_LIMIT": "100000 per minute",
        "GROUPBUY_LOGIN_USER_LIMIT": "100000 per minute",
    }
    # the app of web:create_app, plus the floor's two views (benchmarks/floor.py)
    factory = f"benchmarks.floor:create_floor_app({config!r})"
    command = [
        str(VENV_BIN / "gunicorn"),
        "--workers",
        "2",
        "--worker-class",
        args.worker_class,
        "--threads",
        str(args.threads),
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        factory,
    ]
    server = subprocess.Popen(command, env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(0.3)
    server.terminate()
    raise RuntimeError("gunicorn did not answer /healthz within 60 s")


def _demo_facts(url: str) -> tuple[list[str], tuple[int, str]]:
    from fulfilment.core.db import make_engine

    engine = make_engine(url)
    # Fresh planner statistics, as a live database has: otherwise autovacuum analyses the
    # 100,000 new orders during the first step, and that step measures it.
    # Only this run's schema: a bare VACUUM would walk every schema of the shared database.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        tables = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        ).scalars()
        for table in list(tables):
            conn.execute(text(f'VACUUM ANALYZE "{table}"'))
    with engine.connect() as conn:
        leaders = list(conn.execute(text("SELECT code FROM leader ORDER BY code")).scalars())
        wave = conn.execute(
            text("SELECT id, delivery_date FROM wave WHERE status = 'cut_off' ORDER BY id LIMIT 1")
        ).one()
    engine.dispose()
    return leaders, (int(wave[0]), str(wave[1]))


def _print_table(steps: list[Step]) -> None:
    print(
        f"{'scenario':<9}{'rate/s':>8}{'sent':>7}{'ok':>7}{'errors':>7}{'achieved/s':>11}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'load1':>7}{'app CPU':>9}{'db CPU':>8}  notes"
    )
    for s in steps:
        notes = ", ".join(f"{k}×{v}" for k, v in sorted(s.error_kinds.items()))
        print(
            f"{s.scenario:<9}{s.rate:>8.0f}{s.sent:>7}{s.ok:>7}{s.errors:>7}{s.achieved:>11.1f}"
            f"{s.pct(50):>9.1f}{s.pct(95):>9.1f}{s.pct(99):>9.1f}{s.load1:>7.2f}"
            f"{s.cpu_ms(s.app_cpu_s):>9.2f}{s.cpu_ms(s.db_cpu_s):>8.2f}  {notes}",
            flush=True,
        )


async def _run(
    args, port: int, token: str, leaders: list[str], wave, meter: CpuMeter
) -> list[Step]:
    pool = Pool(port)
    steps: list[Step] = []
    try:
        if args.post_rates:
            make = post_requests(token, leaders, seed=1)
            floor = floor_post_requests(seed=4)
            await run_step(pool, make, scenario="warmup", rate=20, seconds=5)
            await run_step(pool, floor, scenario="warmup", rate=20, seconds=2)
            for rate in args.post_rates:
                for scenario, maker in (("post", make), ("floor-post", floor)):
                    if scenario.startswith("floor") and not args.floor:
                        continue
                    step = await run_step(
                        pool, maker, scenario=scenario, rate=rate, seconds=args.seconds, meter=meter
                    )
                    steps.append(step)
                    _print_table([step])
                    await asyncio.sleep(args.settle_s)  # what timed out is still being served
        if args.page_rates:
            rng = random.Random(2)
            chosen = rng.sample(leaders, min(args.page_leaders, len(leaders)))
            cookies: dict[str, str] = {}
            if args.login_path:
                for leader in chosen:
                    cookies[leader] = await sign_in(pool, args, leader)
                    path = args.page_path.format(leader=leader, wave=wave[0], date=wave[1])
                    probe = await pool.request("GET", path, {"Cookie": cookies[leader]})
                    if probe.status != 200:  # e.g. sent back to the login form
                        raise RuntimeError(f"signed in as {leader}, {path} answers {probe.status}")
            make = page_requests(args.page_path, chosen, cookies, wave, seed=3)
            floor = page_requests(FLOOR_PAGE, chosen, {}, wave, seed=3)
            await run_step(pool, make, scenario="warmup", rate=10, seconds=5)
            await run_step(pool, floor, scenario="warmup", rate=10, seconds=2)
            for rate in args.page_rates:
                for scenario, maker in (("page", make), ("floor-page", floor)):
                    if scenario.startswith("floor") and not args.floor:
                        continue
                    step = await run_step(
                        pool, maker, scenario=scenario, rate=rate, seconds=args.seconds, meter=meter
                    )
                    steps.append(step)
                    _print_table([step])
                    await asyncio.sleep(args.settle_s)  # what timed out is still being served
    finally:
        await pool.close()
    return steps


def _cpu_per_request(steps: list[Step]) -> float:
    """App + db CPU ms per answered request over the steps (nan if none answered)."""
    answered = sum(
        s.ok + sum(v for k, v in s.error_kinds.items() if k.startswith("HTTP")) for s in steps
    )
    used = sum(s.app_cpu_s + s.db_cpu_s for s in steps)
    return used * 1000 / answered if answered else float("nan")


def _best_rate(steps: list[Step]) -> str:
    good = [s.rate for s in steps if s.meets_target]
    return f"{max(good):.0f}/s" if good else "none"


def _sustained(steps: list[Step], scenario: str, floor: str) -> tuple[list[Step], list[Step]]:
    """The steps of a scenario and of its floor at the rates where both answered every request.
    A step with client timeouts counts the server's work on the requests it gave up on (and
    leaves a queue that the next step pays for) against the requests answered: CPU per request
    is only meaningful where the server kept up."""
    ok = lambda s: s.errors == 0  # noqa: E731
    rates = {s.rate for s in steps if s.scenario == scenario and ok(s)} & {
        s.rate for s in steps if s.scenario == floor and ok(s)
    }
    pick = lambda name: [s for s in steps if s.scenario == name and s.rate in rates]  # noqa: E731
    return pick(scenario), pick(floor)


def _print_floor_comparison(steps: list[Step]) -> None:
    """Each scenario beside its floor: CPU ms per request (app + db) and the ratio over the rates
    both sustained (no errors; all steps in brackets), and the highest open-loop rate at
    p95 ≤ 100 ms with no errors."""
    print()
    print(
        f"{'scenario':<11}{'CPU ms/req':>11}{'floor':>8}{'ratio':>7}{'target':>8}"
        f"{'best rate':>11}{'floor best':>12}   all steps: CPU ms/req, floor, ratio"
    )
    for scenario, floor, target_ratio, target_rate in (
        ("post", "floor-post", 3.0, 200),
        ("page", "floor-page", 3.0, 100),
    ):
        ran = [s for s in steps if s.scenario == scenario]
        if not ran:
            continue
        base = [s for s in steps if s.scenario == floor]
        kept, kept_base = _sustained(steps, scenario, floor)
        cpu, floor_cpu = _cpu_per_request(kept), _cpu_per_request(kept_base)
        ratio = cpu / floor_cpu if kept_base and floor_cpu else float("nan")
        all_cpu, all_floor = _cpu_per_request(ran), _cpu_per_request(base)
        all_ratio = all_cpu / all_floor if base and all_floor else float("nan")
        print(
            f"{scenario:<11}{cpu:>11.2f}{floor_cpu:>8.2f}{ratio:>7.2f}{f'≤ {target_ratio:g}×':>8}"
            f"{_best_rate(ran):>11}{_best_rate(base) if base else '-':>12}"
            f"   ({all_cpu:.2f}, {all_floor:.2f}, {all_ratio:.2f}; rate target {target_rate}/s)"
        )


def _rates(text_value: str) -> list[float]:
    return [float(r) for r in text_value.split(",") if r.strip()] if text_value else []


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="per rate step")
    parser.add_argument(
        "--settle-s",
        type=float,
        default=3.0,
        help="pause after each step (an overloaded step "
        "leaves requests the server still works on: they would be billed to the next)",
    )
    parser.add_argument("--post-rates", type=_rates, default=_rates("50,100,200,300"))
    parser.add_argument("--page-rates", type=_rates, default=_rates("25,50,100,150"))
    parser.add_argument("--leaders", type=int, default=2000)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument(
        "--page-path",
        default="/waves/{wave}/leaders?leader={leader}",
        help="page to load per leader: {leader}, {wave}, {date} (after the merge: /leader/today)",
    )
    parser.add_argument("--page-leaders", type=int, default=200, help="how many leaders browse")
    parser.add_argument("--login-path", default="", help="sign in through this form, e.g. /login")
    parser.add_argument("--login-user", default="{leader}", help="username template")
    parser.add_argument("--login-password", default="bench-{leader}-pw", help="password template")
    parser.add_argument(
        "--create-users", action="store_true", help="create the leaders' accounts (create-user)"
    )
    parser.add_argument(
        "--floor",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure the floor scenarios beside post and page",
    )
    parser.add_argument(
        "--outbox",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the API client has a webhook endpoint: each POST writes its event",
    )
    parser.add_argument("--worker-class", default="gthread")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--api-rate-limit", default="100000/second")
    parser.add_argument(
        "--postgres-url", default=os.environ.get("GROUPBUY_TEST_POSTGRES_URL", DEFAULT_PG)
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("GROUPBUY_TEST_REDIS_URL", DEFAULT_REDIS),
        help="rate-limit storage shared by the workers ('' for memory)",
    )
    args = parser.parse_args(argv)

    url, drop = fresh_schema(args.postgres_url, prefix="gb_webbench")
    application_name = f"gb-webbench-{uuid.uuid4().hex[:8]}"  # to find the server's backends
    url = f"{url}&application_name={application_name}"
    instance = Path(os.environ.get("TMPDIR", "/tmp")) / f"gb-webbench-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "GROUPBUY_DATABASE_URL": url,
        "GROUPBUY_ENV": "production",
        "GROUPBUY_SECRET_KEY": secrets.token_hex(32),
        "GROUPBUY_INSTANCE_DIR": str(instance),
    }
    if args.redis_url:
        env["GROUPBUY_REDIS_URL"] = args.redis_url
    server = None
    try:
        started = time.perf_counter()
        _groupbuy(env, "demo", "--leaders", str(args.leaders), "--orders", str(args.orders))
        token = _groupbuy(env, "api-client", "create", "bench", "--region", "SH").strip()
        if args.outbox:  # nothing listens there: this run measures the writing, not the sending
            _groupbuy(env, "api-client", "webhook", "add", "bench", "http://127.0.0.1:9/events")
        leaders, wave = _demo_facts(url)
        if args.create_users:
            for leader in random.Random(2).sample(leaders, min(args.page_leaders, len(leaders))):
                _groupbuy(
                    env,
                    "create-user",
                    args.login_user.format(leader=leader),
                    "--role",
                    "leader",
                    "--leader",
                    leader,
                    "--password-stdin",
                    stdin=args.login_password.format(leader=leader) + "\n",
                )
        print(
            f"demo built ({args.leaders} leaders, {args.orders} orders) on PostgreSQL in "
            f"{time.perf_counter() - started:.0f} s; serving with gunicorn "
            f"(2 workers, {args.worker_class}, {args.threads} threads)",
            flush=True,
        )
        port = _free_port()
        server = _serve(env, port, args)
        print(f"load average before the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"open loop, {args.seconds:g} s per rate, latency from each scheduled send time")
        meter = CpuMeter(server.pid, args.postgres_url, application_name)
        try:
            steps = asyncio.run(_run(args, port, token, leaders, wave, meter))
        finally:
            meter.close()
        print()
        _print_table(steps)
        print(f"outbox: {'on (an endpoint registered)' if args.outbox else 'off'}")
        _print_floor_comparison(steps)
        print(f"load average after the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        drop()
        shutil.rmtree(instance, ignore_errors=True)


if __name__ == "__main__":
    main()
