"""The app's one rate limiter (Flask-Limiter) and the rules it keeps when things fail.

* **Shared by every worker.** Counters live in Redis when GROUPBUY_REDIS_URL is set, else in a
  SQLite file in the instance folder (`ratelimits.sqlite`), which every worker process on the
  host opens: gunicorn with several workers counts one budget either way (memory counters were
  per process: eight wrong passwords passed a limit of five).
* **Fail open.** When the store stops answering (Redis down), limits are counted in this
  process's memory meanwhile, with a warning in the log, and the store is tried again with a
  backoff; an error of the limiter itself is logged and swallowed. A limit never takes the
  service down.
* **Keyed on the client's address** (`request.remote_addr`): behind a proxy set
  GROUPBUY_PROXY_FIX to the number of proxies in front (web/__init__.py applies werkzeug's
  ProxyFix), else every client shares the proxy's bucket.
* **A positive Retry-After on every 429** (the limiter's own figure is the time left in the
  window rounded down: 0 in a one-second window).
* **Failures only** for the per-username sign-in limit (`FailureCounter`): past it a wrong
  password is a 429, the right one still signs in.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
from pathlib import Path

from flask import Flask, Response, current_app, g
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import current_user
from limits import parse
from limits.storage import Storage

limiter = Limiter(
    key_func=get_remote_address,
    in_memory_fallback_enabled=True,  # the store down: count in memory, log, retry the store
    swallow_errors=True,  # anything else going wrong inside the limiter: log, serve
)

DEFAULT_LIMITS = {
    "GROUPBUY_LOGIN_LIMIT": "10 per minute",  # failed sign-ins per address
    "GROUPBUY_LOGIN_USER_LIMIT": "5 per minute",  # failed sign-ins per username
    "GROUPBUY_PICKUP_CODE_LIMIT": "30 per minute",  # refused pickup codes per account
}
REDIS_OPTIONS = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}


def limit_setting(name: str) -> str:
    """A limit from the app's config, else the environment, else its default."""
    return str(current_app.config.get(name) or os.environ.get(name) or DEFAULT_LIMITS[name])


def init_limits(app: Flask) -> None:
    redis_url = app.config.get("GROUPBUY_REDIS_URL") or os.environ.get("GROUPBUY_REDIS_URL")
    if redis_url:
        app.config.setdefault("RATELIMIT_STORAGE_URI", redis_url)
        app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", REDIS_OPTIONS)
    else:
        path = Path(app.instance_path) / "ratelimits.sqlite"
        app.config.setdefault("RATELIMIT_STORAGE_URI", f"groupbuy-sqlite://{path}")
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "groupbuy")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    # Flask-Limiter keeps the first app's key prefix on the instance; each app (one per process
    # in production, many in the tests) brings its own, and starts with its store alive.
    limiter._key_prefix = app.config["RATELIMIT_KEY_PREFIX"]
    limiter._storage_dead = False
    # registered before the limiter's own hook: Flask runs after-request hooks last-first
    app.after_request(_restore_retry_after)
    limiter.init_app(app)


def set_retry_after(response: Response, seconds: int) -> Response:
    """An answer's own Retry-After (a 503: try again in a second). Flask-Limiter rewrites the
    header of every answer under a limit to the time left in the limit's window, rounded down
    (0 more often than not for a one-second retry); this one is put back after it."""
    response.headers["Retry-After"] = str(seconds)
    g.retry_after_s = seconds
    return response


def _restore_retry_after(response: Response) -> Response:
    seconds = g.pop("retry_after_s", None)
    if seconds is not None:
        response.headers["Retry-After"] = str(seconds)
    elif response.status_code == 429:
        response.headers["Retry-After"] = str(_seconds_left())
    return response


def _seconds_left() -> int:
    """Whole seconds until the breached limit's window ends, at least one."""
    try:
        current = limiter.current_limit
        reset_at = current.reset_at if current is not None else 0
    except Exception:  # noqa: BLE001 - the store gone: a second is as good a guess as any
        reset_at = 0
    return max(1, math.ceil(reset_at - time.time()))


# --- counting failures only -----------------------------------------------------------------


class FailureCounter:
    """A limit on failed attempts only: `refused` asks before the attempt's outcome is acted on,
    `failed` counts one failure, `succeeded` forgets them. Any error of the store fails open."""

    def __init__(self, setting: str, name: str) -> None:
        self.setting, self.name = setting, name

    def _args(self, key: str):
        return parse(limit_setting(self.setting)), limiter._key_prefix, self.name, key

    def refused(self, key: str) -> bool:
        item, *ids = self._args(key)
        try:
            if limiter.limiter.test(item, *ids):
                return False
            reset_at = limiter.limiter.get_window_stats(item, *ids).reset_time
        except Exception:  # noqa: BLE001 - fail open, as the limiter does
            current_app.logger.warning("rate limit store failed; %s not limited", self.name)
            return False
        g.retry_after_s = max(1, math.ceil(reset_at - time.time()))
        return True

    def failed(self, key: str) -> None:
        item, *ids = self._args(key)
        try:
            limiter.limiter.hit(item, *ids)
        except Exception:  # noqa: BLE001
            current_app.logger.warning("rate limit store failed; %s not counted", self.name)

    def succeeded(self, key: str) -> None:
        item, *ids = self._args(key)
        try:
            limiter.limiter.clear(item, *ids)
        except Exception:  # noqa: BLE001
            current_app.logger.warning("rate limit store failed; %s not cleared", self.name)


login_user_failures = FailureCounter("GROUPBUY_LOGIN_USER_LIMIT", "login-user")


def _refused(response: Response) -> bool:
    return response.status_code == 409


def _pickup_key() -> str:
    if current_user.is_authenticated:
        return f"pickup-code:user:{current_user.id}"
    return f"pickup-code:ip:{get_remote_address()}"


# The pickup form's code lookup and verification: refused codes (wrong, another point's, …)
# count against the signed-in account, one budget for both routes.
pickup_code_limit = limiter.shared_limit(
    lambda: limit_setting("GROUPBUY_PICKUP_CODE_LIMIT"),
    scope="pickup-code",
    key_func=_pickup_key,
    methods=["POST"],
    deduct_when=_refused,
)


# --- a store every worker process on the host shares, without Redis ------------------------


class SQLiteStorage(Storage):
    """Fixed-window counters in a SQLite file (`groupbuy-sqlite:///abs/path.sqlite`): one row per
    key, incremented in one statement, so that the worker processes of one host count together.
    Durability is not needed (a crash loses a minute of counts), so writes skip fsync."""

    STORAGE_SCHEME = ["groupbuy-sqlite"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.path = (uri or "").removeprefix("groupbuy-sqlite://")
        self._local = threading.local()
        self._writes = 0

    @property
    def base_exceptions(self) -> type[Exception]:
        return sqlite3.Error

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():  # a forked worker opens its own
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=5, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS counter "
                "(key TEXT PRIMARY KEY, count INTEGER NOT NULL, expires_at REAL NOT NULL)"
            )
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        db = self._db()
        (count,) = db.execute(
            "INSERT INTO counter (key, count, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET "
            "count = CASE WHEN expires_at <= ? THEN excluded.count ELSE count + excluded.count END, "
            "expires_at = CASE WHEN expires_at <= ? THEN excluded.expires_at ELSE expires_at END "
            "RETURNING count",
            (key, amount, now + expiry, now, now),
        ).fetchone()
        self._writes += 1
        if self._writes % 1000 == 0:
            db.execute("DELETE FROM counter WHERE expires_at <= ?", (now,))
        return int(count)

    def get(self, key: str) -> int:
        row = (
            self._db()
            .execute(
                "SELECT count FROM counter WHERE key = ? AND expires_at > ?", (key, time.time())
            )
            .fetchone()
        )
        return int(row[0]) if row else 0

    def get_expiry(self, key: str) -> float:
        row = self._db().execute("SELECT expires_at FROM counter WHERE key = ?", (key,)).fetchone()
        return float(row[0]) if row else time.time()

    def check(self) -> bool:
        try:
            self._db().execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def reset(self) -> int | None:
        return self._db().execute("DELETE FROM counter").rowcount

    def clear(self, key: str) -> None:
        self._db().execute("DELETE FROM counter WHERE key = ?", (key,))
