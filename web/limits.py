"""The app's one rate limiter (Flask-Limiter): in memory by default, on Redis when
GROUPBUY_REDIS_URL is set, so that every worker process counts against the same limits."""

from __future__ import annotations

import os

from flask import Flask, Response, g
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

limiter = Limiter(key_func=get_remote_address)


def init_limits(app: Flask) -> None:
    redis_url = app.config.get("GROUPBUY_REDIS_URL") or os.environ.get("GROUPBUY_REDIS_URL")
    app.config.setdefault("RATELIMIT_STORAGE_URI", redis_url or "memory://")
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "groupbuy")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    # Flask-Limiter keeps the first app's key prefix on the instance; each app (one per process
    # in production, many in the tests) brings its own.
    limiter._key_prefix = app.config["RATELIMIT_KEY_PREFIX"]
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
    return response
