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
from web.limits import limit_setting, limiter, login_user_failures
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


def _username_key(username: str) -> str:
    return username.strip().lower()[:64]


def _failed(response) -> bool:
    return response.status_code != 302


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: limit_setting("GROUPBUY_LOGIN_LIMIT"), methods=["POST"], deduct_when=_failed)
def login():
    """Sign in. Two limits count failed attempts: per address (refused before the password is
    checked) and per username, which refuses only wrong passwords: someone guessing a leader's
    password cannot lock the leader out (the right one always signs in and clears the count)."""
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    error = None
    if request.method == "POST":
        username = request.form.get("username", "")
        password = request.form.get("password", "")
        user = None
        if _readable(username):
            user = authenticate(g.session, username=username, password=password)
        key = _username_key(username)
        if user is None:
            if login_user_failures.refused(key):
                abort(429)
            login_user_failures.failed(key)
            error = _("Wrong username or password.")  # the same for either mistake
        else:
            login_user_failures.succeeded(key)
            nxt = _safe_next(request.form.get("next"))
            session.clear()  # nothing from before the login survives into the new session
            login = start_session(g.session, user=user)
            login_user(Account(user, login.token))
            return redirect(nxt or home_for(current_user))
    return render_template("auth/login.html", error=error, next=request.args.get("next", "")), (
        401 if error else 200
    )


def _readable(text: str) -> bool:
    """Text a username can be: no control characters (a NUL is refused by PostgreSQL), no lone
    surrogates, not absurdly long. Anything else is a wrong login, never looked up."""
    return len(text) <= 1024 and not any(
        ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in text
    )


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
