"""Signing in and out, and the account's language."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from fulfilment.accounts.models import Role
from fulfilment.accounts.services import authenticate, end_session, start_session
from fulfilment.core.audit import record_change
from web.i18n import LOCALES
from web.limits import limiter
from web.security import Account

bp = Blueprint("auth", __name__, template_folder="templates")


def home_for(account) -> str:
    if account.role in (Role.LEADER, Role.PICKUP_STAFF):
        return url_for("leader.today")
    return url_for("home.index")


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site: never an open redirect to another host."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def _login_user_key() -> str:
    return "login-user:" + request.form.get("username", "").strip().lower()[:64]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: _limit("GROUPBUY_LOGIN_LIMIT"), methods=["POST"])
@limiter.limit(
    lambda: _limit("GROUPBUY_LOGIN_USER_LIMIT"), methods=["POST"], key_func=_login_user_key
)
def login():
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    error = None
    if request.method == "POST":
        user = authenticate(
            g.session,
            username=request.form.get("username", ""),
            password=request.form.get("password", ""),
        )
        if user is None:
            error = _("Wrong username or password.")  # the same for either mistake
        else:
            nxt = _safe_next(request.form.get("next"))
            session.clear()  # nothing from before the login survives into the new session
            login = start_session(g.session, user=user)
            login_user(Account(user, login.token))
            return redirect(nxt or home_for(current_user))
    return render_template("auth/login.html", error=error, next=request.args.get("next", "")), (
        401 if error else 200
    )


def _limit(key: str) -> str:
    from flask import current_app

    defaults = {
        "GROUPBUY_LOGIN_LIMIT": "10 per minute",
        "GROUPBUY_LOGIN_USER_LIMIT": "5 per minute",
    }
    return current_app.config.get(key, defaults[key])


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    if request.method == "GET":
        return render_template("auth/logout.html")
    if current_user.is_authenticated:
        end_session(g.session, token=current_user.token)
    logout_user()
    session.clear()
    flash(_("You have signed out."))
    return redirect(url_for("auth.login"))


@bp.post("/account/locale")
@login_required
def set_locale():
    locale = request.form.get("locale", "")
    if locale not in LOCALES:
        abort(400)
    before = current_user.user.locale
    current_user.user.locale = locale
    record_change(
        g.session,
        actor=current_user.actor,
        action="user.locale",
        entity="user",
        entity_id=current_user.id,
        before={"locale": before},
        after={"locale": locale},
    )
    return redirect(_safe_next(request.form.get("next")) or home_for(current_user))
