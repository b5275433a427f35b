"""The Flask app: factory, one database session per request, error mapping.

The request's transaction commits when the view has returned and before the response is built
(Indico's way): a commit that fails becomes the app's own error page or problem JSON.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, g, jsonify, render_template, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from fulfilment.core.config import load_settings
from fulfilment.core.db import make_engine, make_session_factory
from fulfilment.core.errors import FulfilmentError


class GroupbuyFlask(Flask):
    def dispatch_request(self):  # type: ignore[override]
        rv = super().dispatch_request()
        _commit_request_session()  # a failure raises here, into the app's error handlers
        return rv


def _commit_request_session() -> None:
    session = g.get("session")
    if session is not None and not g.get("rollback", False):
        session.commit()


class BoundedIntConverter(IntegerConverter):
    """`<int:…>` in every route: ids 1 to 2**31 - 1 (the columns' range), ASCII digits only.
    A larger one is no row (404), never a value PostgreSQL refuses (500)."""

    def __init__(self, map, *args: Any, **kwargs: Any) -> None:  # noqa: A002 - werkzeug's name
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(map, *args, **kwargs)


def _proxies(app: Flask) -> int:
    """GROUPBUY_PROXY_FIX: how many proxies stand in front (0 or unset: none, trust no header)."""
    raw = str(app.config.get("GROUPBUY_PROXY_FIX") or os.environ.get("GROUPBUY_PROXY_FIX") or "0")
    try:
        count = int(raw)
    except ValueError:
        raise ValueError(f"GROUPBUY_PROXY_FIX must be a number of proxies, not {raw!r}") from None
    if not 0 <= count <= 10:
        raise ValueError(f"GROUPBUY_PROXY_FIX must be 0 to 10, not {count}")
    return count


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
    app.url_map.converters["int"] = BoundedIntConverter  # before any route is added
    proxies = _proxies(app)
    if proxies:
        # The client's address and scheme from the proxies' X-Forwarded-For / -Proto, trusting
        # exactly that many hops: limits then key on the client, not on the proxy.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]

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

    from web import home
    from web.admin.views import bp as admin_bp
    from web.api import webhooks as _api_webhooks  # noqa: F401 - its routes join the API's blueprint
    from web.api.views import init_api
    from web.auth.views import bp as auth_bp
    from web.cli import register_commands
    from web.dispatch.views import bp as dispatch_bp
    from web.i18n import init_i18n
    from web.limits import init_limits
    from web.portal import earnings  # noqa: F401 - the leader's earnings, on the portal's blueprint
    from web.portal.views import bp as portal_bp
    from web.portal.views import photos_bp
    from web.security import init_security
    from web.warehouse.loading import bp as loading_bp
    from web.warehouse.views import bp as warehouse_bp

    init_i18n(app)
    init_security(app)
    init_limits(app)
    _init_http_errors(app)
    app.register_blueprint(auth_bp)
    app.register_blueprint(portal_bp)
    app.register_blueprint(photos_bp)
    app.register_blueprint(home.bp)
    app.register_blueprint(warehouse_bp)
    app.register_blueprint(loading_bp)
    app.register_blueprint(dispatch_bp)
    app.register_blueprint(admin_bp)
    init_api(app)
    register_commands(app.cli)
    return app


def _init_http_errors(app: Flask) -> None:
    """HTTP errors (400, 404, 413, 429, …) as the app's own page, or problem JSON under /api/."""
    from .error_pages import error_response

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        from flask_babel import gettext as _

        g.rollback = True
        titles = {
            400: _("Bad request"),
            404: _("Not found"),
            405: _("Not allowed"),
            413: _("Too large"),
            429: _("Too many attempts"),
        }
        details = {
            400: _("The request was not understood: %(why)s", why=err.description or ""),
            404: _("There is nothing here, or it is not yours to see."),
            413: _("The upload is too large."),
            429: _("Too many attempts. Wait a minute and try again."),
        }
        status = err.code or 500
        title = titles.get(status, err.name)
        detail = details.get(status, err.description or "")
        return error_response(status, title, detail)
