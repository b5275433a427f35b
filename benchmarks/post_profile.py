"""What one order POST costs inside the process: SQL statements, CPU milliseconds, and a profile.

    python -m benchmarks.post_profile [--db sqlite|postgres] [--posts 300] [--profile 25]

Builds a small demo city (`groupbuy demo --leaders 200 --orders 2000`) in a fresh SQLite file or
a fresh PostgreSQL schema, creates an API client, then sends --posts order POSTs through Flask's
test client, with the benchmark's request mix (benchmarks/web.py). Prints the SQL statements per
POST (counted by a SQLAlchemy `before_cursor_execute` listener, COMMIT included), the process's
CPU milliseconds per POST, and with --profile the top functions of a cProfile run by cumulative
time. No network and no other process: the figures say what the code costs, whatever the
machine's neighbours do.

Beside it, the floor (benchmarks/floor.py, in the same app and engine): as many POSTs that
validate a small JSON body and do one INSERT and COMMIT, with their statements and CPU ms, and
the ratio of the two (target with the outbox on: ≤ 3). With the outbox on (the default;
--no-outbox: off) the API client has a webhook endpoint, so each order writes its event.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from sqlalchemy import event, text

from benchmarks._postgres import fresh_schema
from benchmarks.web import DEFAULT_PG, floor_post_requests, post_requests


def _database(kind: str, base_url: str, workdir: Path):
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'profile.sqlite'}", lambda: None
    return fresh_schema(base_url, prefix="gb_profile")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--postgres-url", default=os.environ.get("GROUPBUY_TEST_POSTGRES_URL", DEFAULT_PG)
    )
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument(
        "--redis-url", default="", help="rate-limit storage, as the benchmark's server has it"
    )
    parser.add_argument("--profile", type=int, default=0, help="top N functions (0: no profile)")
    parser.add_argument("--sort", default="cumulative", help="the profile's order (tottime, …)")
    parser.add_argument("--show", action="store_true", help="print each statement (use --posts 1)")
    parser.add_argument(
        "--outbox",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the API client has a webhook endpoint: each POST writes its event",
    )
    args = parser.parse_args(argv)

    from benchmarks.floor import create_floor_app

    workdir = Path(tempfile.mkdtemp(prefix="gb-profile-"))
    url, drop = _database(args.db, args.postgres_url, workdir)
    try:
        app = create_floor_app(
            {
                "GROUPBUY_ENV": "test",
                "GROUPBUY_DATABASE_URL": url,
                "GROUPBUY_INSTANCE_DIR": str(workdir),
                "API_RATE_LIMIT": "100000/second",
                "RATELIMIT_KEY_PREFIX": f"gb-profile-{uuid.uuid4().hex[:8]}",
                **({"GROUPBUY_REDIS_URL": args.redis_url} if args.redis_url else {}),
            }
        )
        runner = app.test_cli_runner()
        result = runner.invoke(args=["demo", "--leaders", "200", "--orders", "2000"])
        assert result.exit_code == 0, result.output
        result = runner.invoke(args=["api-client", "create", "profile", "--region", "SH"])
        assert result.exit_code == 0, result.output
        token = result.output.strip().splitlines()[-1]
        if args.outbox:
            hook = ["api-client", "webhook", "add", "profile", "http://127.0.0.1:9/events"]
            result = runner.invoke(args=hook)
            assert result.exit_code == 0, result.output
        engine = app.extensions["groupbuy"]["engine"]
        with engine.connect() as conn:
            leaders = list(conn.execute(text("SELECT code FROM leader ORDER BY code")).scalars())
        make = post_requests(token, leaders, seed=1)
        client = app.test_client()

        def post(i: int) -> int:
            _method, path, headers, body = make(i)
            answer = client.post(path, data=body, headers=headers)
            return answer.status_code

        floor_make = floor_post_requests(seed=4)

        def floor_post(i: int) -> int:
            _method, path, headers, body = floor_make(i)
            return client.post(path, data=body, headers=headers).status_code

        for i in range(20):  # warm-up: imports, caches, the first wave's rows
            post(i)
            floor_post(i)

        statements: Counter[str] = Counter()

        @event.listens_for(engine, "before_cursor_execute")
        def _count(conn, cursor, statement, parameters, context, executemany):
            statements[statement.split(None, 1)[0].upper()] += 1
            if args.show:
                print("  SQL", " ".join(statement.split())[:150])

        @event.listens_for(engine, "commit")
        def _count_commit(conn):
            statements["COMMIT"] += 1

        statuses: Counter[int] = Counter()
        cpu = time.process_time()
        wall = time.perf_counter()
        # CPU time, not wall time: waiting on the database is not the process's cost
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        if profiler:
            profiler.enable()
        for i in range(args.posts):
            statuses[post(i)] += 1
        if profiler:
            profiler.disable()
        cpu_ms = (time.process_time() - cpu) * 1000 / args.posts
        wall_ms = (time.perf_counter() - wall) * 1000 / args.posts
        total = sum(statements.values())
        order_statements = dict(statements)
        statements.clear()
        floor_statuses: Counter[int] = Counter()
        cpu = time.process_time()
        for i in range(args.posts):
            floor_statuses[floor_post(i)] += 1
        floor_cpu_ms = (time.process_time() - cpu) * 1000 / args.posts
        floor_total = sum(statements.values())
        print(
            json.dumps(
                {
                    "db": args.db,
                    "posts": args.posts,
                    "statuses": dict(statuses),
                    "statements_per_post": round(total / args.posts, 2),
                    "by_kind_per_post": {
                        k: round(v / args.posts, 2)
                        for k, v in sorted(order_statements.items(), key=lambda kv: -kv[1])
                    },
                    "cpu_ms_per_post": round(cpu_ms, 2),
                    "wall_ms_per_post": round(wall_ms, 2),
                    "outbox": args.outbox,
                    "floor_statuses": dict(floor_statuses),
                    "floor_statements_per_post": round(floor_total / args.posts, 2),
                    "floor_cpu_ms_per_post": round(floor_cpu_ms, 2),
                    "ratio_to_floor": round(cpu_ms / floor_cpu_ms, 2),
                    "profiled": bool(profiler),
                }
            )
        )
        if profiler:
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.profile)
        engine.dispose()
    finally:
        drop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
