"""The Flask app: factory, one database session per request, error mapping."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, g, jsonify, render_template, request

from fulfilment.config import load_settings
from fulfilment.db import make_engine, make_session_factory
from fulfilment.errors import FulfilmentError


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app. `config` overrides settings read from GROUPBUY_* environment variables."""
    config = dict(config or {})
    overrides = {k: str(v) for k, v in config.items() if k.startswith("GROUPBUY_")}
    settings = load_settings({**os.environ, **overrides})
    app = Flask(__name__, instance_path=str(settings.instance_dir.resolve()))
    app.config.update(
        SECRET_KEY=settings.secret_key, GROUPBUY_SETTINGS=settings, JSON_AS_ASCII=False
    )
    app.config.update({k: v for k, v in config.items() if not k.startswith("GROUPBUY_")})

    engine = make_engine(settings.database_url)
    app.extensions["groupbuy"] = {"engine": engine, "sessions": make_session_factory(engine)}

    @app.before_request
    def _open_session() -> None:
        g.session = app.extensions["groupbuy"]["sessions"]()

    @app.teardown_request
    def _close_session(exc: BaseException | None) -> None:
        session = g.pop("session", None)
        if session is None:
            return
        try:
            if exc is None and not getattr(g, "rollback", False):
                session.commit()
            else:
                session.rollback()
        finally:
            session.close()

    @app.errorhandler(FulfilmentError)
    def _fulfilment_error(err: FulfilmentError):
        g.rollback = True
        body = {"error": type(err).__name__, "message": str(err)}
        for attr in ("record", "field"):
            if hasattr(err, attr):
                body[attr] = getattr(err, attr)
        if request.path.startswith("/api/"):
            return jsonify(body), err.http_status
        return render_template("error.html", error=body), err.http_status

    from . import views
    from .api import init_api
    from .commands import register_commands
    from .limits import init_limiter

    app.register_blueprint(views.bp)
    init_limiter(app)
    init_api(app)
    register_commands(app.cli)
    return app
