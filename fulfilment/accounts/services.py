"""Accounts: users with a role and a scope, their sign-in sessions, and who may see what.

A leader or pickup_staff works at one pickup point (its leader), warehouse and dispatcher in
one region, admin everywhere. Anything outside a user's scope is reported as not found, never
as forbidden, so that ids cannot be probed.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from fulfilment.core.audit import record_change
from fulfilment.core.errors import InvalidInput, NotFound
from fulfilment.core.models import Leader, Region, utcnow

from .models import LoginSession, Role, User

LOCALES = ("zh_Hans_CN", "en")
MIN_PASSWORD = 8
SESSION_LIFETIME = timedelta(days=14)
# Checked against when a username does not exist, so a wrong user costs as much as a wrong password.
_DUMMY_HASH = generate_password_hash("not-a-password-" + secrets.token_hex(8), method="scrypt")


def create_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: Role | str,
    leader_code: str | None = None,
    region_code: str | None = None,
    locale: str | None = None,
    actor: str = "system",
) -> User:
    """A new account. A leader/pickup_staff needs its leader, warehouse/dispatcher its region."""
    record = f"user {username}"
    username = username.strip()
    if not username or len(username) > 64:
        raise InvalidInput(record, "username", "must be 1 to 64 characters")
    try:
        role = Role(role)
    except ValueError:
        raise InvalidInput(
            record, "role", f"{role!r} is not one of {', '.join(r.value for r in Role)}"
        ) from None
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(record, "password", f"must be at least {MIN_PASSWORD} characters")
    if locale is not None and locale not in LOCALES:
        raise InvalidInput(record, "locale", f"{locale!r} is not one of {', '.join(LOCALES)}")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise InvalidInput(record, "username", "already taken")
    leader = region = None
    if role.at_point:
        if not leader_code:
            raise InvalidInput(record, "leader", f"a {role.value} needs --leader CODE")
        leader = session.scalar(select(Leader).where(Leader.code == leader_code))
        if leader is None:
            raise InvalidInput(record, "leader", f"no leader {leader_code!r}")
    elif role.in_region:
        if not region_code:
            raise InvalidInput(record, "region", f"a {role.value} needs --region CODE")
        region = session.scalar(select(Region).where(Region.code == region_code))
        if region is None:
            raise InvalidInput(record, "region", f"no region {region_code!r}")
    user = User(
        username=username,
        password_hash=generate_password_hash(password, method="scrypt"),
        role=role,
        leader_id=leader.id if leader else None,
        region_id=region.id if region else None,
        locale=locale,
        active=True,
    )
    session.add(user)
    session.flush()
    record_change(
        session,
        actor=actor,
        action="user.created",
        entity="user",
        entity_id=user.id,
        after={
            "username": username,
            "role": role.value,
            "leader": leader_code,
            "region": region_code,
        },
    )
    return user


def authenticate(session: Session, *, username: str, password: str) -> User | None:
    """The active user with this name and password, else None (the same for either mistake)."""
    user = session.scalar(select(User).where(User.username == username.strip()))
    if user is None or not user.active:
        check_password_hash(_DUMMY_HASH, password)  # same work either way
        return None
    return user if check_password_hash(user.password_hash, password) else None


def start_session(session: Session, *, user: User, now: datetime | None = None) -> LoginSession:
    """A fresh sign-in session with a new random id (never one carried over from before login)."""
    login = LoginSession(
        token=secrets.token_urlsafe(32), user_id=user.id, started_at=now or utcnow()
    )
    session.add(login)
    session.flush()
    record_change(session, actor=user.actor, action="user.login", entity="user", entity_id=user.id)
    return login


def find_session(
    session: Session, token: str, *, now: datetime | None = None
) -> LoginSession | None:
    """The live session for a cookie's id: not ended, not expired, its user still active."""
    login = session.scalar(select(LoginSession).where(LoginSession.token == token))
    now = now or utcnow()
    if login is None or login.ended_at is not None or not login.user.active:
        return None
    if now - login.started_at > SESSION_LIFETIME:
        return None
    return login


def end_session(session: Session, *, token: str, now: datetime | None = None) -> None:
    login = session.scalar(select(LoginSession).where(LoginSession.token == token))
    if login is None or login.ended_at is not None:
        return
    login.ended_at = now or utcnow()
    record_change(
        session,
        actor=login.user.actor,
        action="user.logout",
        entity="user",
        entity_id=login.user_id,
    )


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"user {username!r} does not exist")
    return user
