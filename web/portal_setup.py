"""Wires the portal into the app: sign-in, CSRF, rate limits, languages, error pages, blueprints."""

from __future__ import annotations

from flask import Flask, g
from werkzeug.exceptions import HTTPException


def init_portal(app: Flask) -> None:
    from . import auth, portal
    from .error_pages import error_response
    from .i18n import init_i18n
    from .limits import init_limits
    from .security import init_security

    init_i18n(app)
    init_security(app)
    init_limits(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(portal.bp)
    app.register_blueprint(portal.photos_bp)

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
