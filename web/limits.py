"""The app's one rate limiter (Flask-Limiter): in memory by default, on Redis when
GROUPBUY_REDIS_URL is set, so that every worker process counts against the same limits."""

from __future__ import annotations

import os

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

limiter = Limiter(key_func=get_remote_address)


def init_limiter(app: Flask) -> None:
    """Storage from RATELIMIT_STORAGE_URI if the app was given one, else GROUPBUY_REDIS_URL."""
    app.config.setdefault(
        "RATELIMIT_STORAGE_URI", os.environ.get("GROUPBUY_REDIS_URL") or "memory://"
    )
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "groupbuy")
    limiter.init_app(app)
