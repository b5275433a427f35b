"""The Flask app: factory, one database session per request, error mapping.

The request's transaction commits when the view has returned and before the response is built
(Indico's way): a commit that fails becomes the app's own error page or problem JSON.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, g, jsonify, render_template, request
from sqlalchemy.exc import SQLAlchemyError

from fulfilment.config import load_settings
from fulfilment.db import make_engine, make_session_factory
from fulfilment.errors import FulfilmentError


class GroupbuyFlask(Flask):
    def dispatch_request(self):  # type: ignore[override]
        rv = super().dispatch_request()
        _commit_request_session()  # a failure raises here, into the app's error handlers
        return rv


def _commit_request_session() -> None:
    session = g.get("session")
    if session is not None and not g.get("rollback", False):
        session.commit()


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app. `config` overrides settings read from GROUPBUY_* environment variables."""
    config = dict(config or {})
    overrides = {k: str(v) for k, v in config.items() if k.startswith("GROUPBUY_")}
    settings = load_settings({**os.environ, **overrides})
    app = GroupbuyFlask(__name__, instance_path=str(settings.instance_dir.resolve()))
    app.config.update(
        SECRET_KEY=settings.secret_key, GROUPBUY_SETTINGS=settings, JSON_AS_ASCII=False
    )
    app.config.update(config)  # GROUPBUY_* overrides stay readable to extensions (limits, HTTPS)

    engine = make_engine(settings.database_url)
    app.extensions["groupbuy"] = {"engine": engine, "sessions": make_session_factory(engine)}

    @app.before_request
    def _open_session() -> None:
        g.session = app.extensions["groupbuy"]["sessions"]()

    @app.teardown_request
    def _close_session(exc: BaseException | None) -> None:
        # Committed in dispatch_request already; whatever is left here is rolled back.
        session = g.pop("session", None)
        if session is not None:
            try:
                session.rollback()
            finally:
                session.close()

    @app.errorhandler(SQLAlchemyError)
    def _database_error(err: SQLAlchemyError):
        g.rollback = True
        if g.get("session") is not None:
            g.session.rollback()
        # The type and the statement, never the parameters (they can hold names and phones).
        statement = getattr(err, "statement", None) or ""
        app.logger.error(
            "database error %s, rolled back: %s", type(err).__name__, statement.split("\n")[0]
        )
        from flask_babel import gettext as _

        from .error_pages import error_response

        return error_response(
            500,
            _("Not saved"),
            _("The change could not be saved. Nothing was changed; try again."),
        )

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
    from .portal_setup import init_portal

    init_portal(app)  # sign-in, CSRF, limits, languages, the portal's pages
    app.register_blueprint(views.bp)
    init_api(app)
    register_commands(app.cli)
    return app
