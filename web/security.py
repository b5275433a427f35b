"""Sign-in (Flask-Login on server-side sessions), CSRF on every form, cookie flags, security
headers, and the guards that keep each role to its scope (outside it: 404, never 403)."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, abort, g, render_template, request
from flask_login import LoginManager, UserMixin, current_user
from flask_wtf.csrf import CSRFError, CSRFProtect

from fulfilment.accounts.models import Role, User
from fulfilment.accounts.services import find_session

csrf = CSRFProtect()
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.session_protection = "basic"

# Paths a client without a browser session calls with its own credentials (the order API).
CSRF_EXEMPT_PREFIXES = ("/api/v1",)
CSRF_EXEMPT_BLUEPRINTS = ("api",)

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' data: blob:",
        "style-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class Account(UserMixin):
    """The signed-in user as Flask-Login sees it: its id is the sign-in session's random token,
    so that logging out (which ends that session row) invalidates any copy of the cookie."""

    def __init__(self, user: User, token: str) -> None:
        self.user, self.token = user, token

    def get_id(self) -> str:
        return self.token

    @property
    def is_active(self) -> bool:  # type: ignore[override]
        return self.user.active

    def __getattr__(self, name: str) -> Any:
        return getattr(self.user, name)


@login_manager.unauthorized_handler
def _sign_in_first():
    """Pages send the browser to the login page; JSON paths answer 401 problem details."""
    from flask import flash, redirect, url_for
    from flask_babel import gettext as _

    from .error_pages import error_response

    if request.path.startswith("/api/"):
        return error_response(401, "Unauthorized", "sign in first")
    flash(_("Please sign in to see this page."))
    target = request.full_path if request.query_string else request.path
    return redirect(url_for("auth.login", next=target))


@login_manager.user_loader
def _load_account(token: str) -> Account | None:
    login = find_session(g.session, token)
    return None if login is None else Account(login.user, token)


def init_security(app: Flask) -> None:
    https = (app.config.get("GROUPBUY_HTTPS") or os.environ.get("GROUPBUY_HTTPS")) == "1"
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=https,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=https,
        WTF_CSRF_CHECK_DEFAULT=False,  # checked below, so that the API can be exempt by path
        WTF_CSRF_TIME_LIMIT=None,  # a form left open on a phone all morning still posts
        MAX_CONTENT_LENGTH=6 * 1024 * 1024,  # a 5 MB photo and the form around it
    )
    csrf.init_app(app)
    login_manager.init_app(app)

    @app.before_request
    def _check_csrf() -> None:
        if request.method in ("GET", "HEAD", "OPTIONS", "TRACE"):
            return
        if request.path.startswith(CSRF_EXEMPT_PREFIXES):
            return
        if request.blueprint in CSRF_EXEMPT_BLUEPRINTS:
            return
        csrf.protect()

    @app.errorhandler(CSRFError)
    def _csrf_refused(err: CSRFError):
        from flask_babel import gettext as _

        g.rollback = True
        body = {
            "error": _("Form expired"),
            "message": _("The form was not accepted. Reload the page and try again."),
        }
        return render_template("error.html", error=body), 400

    @app.after_request
    def _security_headers(response):
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Permissions-Policy", "camera=(self), geolocation=()")
        if request.endpoint != "static":
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def roles_required(*roles: Role) -> Callable:
    """Signed in (else the login page) with one of the roles (else 404: not your page)."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if current_user.role not in roles:
                abort(404)
            return view(*args, **kwargs)

        return wrapped

    return decorate


STAFF = (Role.WAREHOUSE, Role.DISPATCHER, Role.ADMIN)
AT_POINT = (Role.LEADER, Role.PICKUP_STAFF)
staff_required = roles_required(*STAFF)
point_required = roles_required(*AT_POINT)


def region_or_404(region_id: int) -> None:
    if not current_user.sees_region(region_id):
        abort(404)


def csp_allowing_tiles(tile_url: str | None) -> str:
    """The Content-Security-Policy of a page with a map: images may also come from the tile
    server's origin (`GROUPBUY_TILE_URL`, `{s}` standing for its sub-domains)."""
    if not tile_url:
        return CONTENT_SECURITY_POLICY
    from urllib.parse import urlsplit

    parts = urlsplit(tile_url.replace("{s}", "a"))
    origin = f"{parts.scheme}://{parts.netloc}"
    if "{s}" in tile_url:
        origin = f"{parts.scheme}://*.{parts.netloc.split('.', 1)[-1]}"
    return CONTENT_SECURITY_POLICY.replace(
        "img-src 'self' data: blob:", f"img-src 'self' data: blob: {origin}"
    )
