"""Accounts: users with a role and a scope, their sign-in sessions, and who may see what.

A leader or pickup_staff works at one pickup point (its leader), warehouse and dispatcher in
one region, admin everywhere. Anything outside a user's scope is reported as not found, never
as forbidden, so that ids cannot be probed.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, joinedload
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
    role = _role(record, role)
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(record, "password", f"must be at least {MIN_PASSWORD} characters")
    if locale is not None and locale not in LOCALES:
        raise InvalidInput(record, "locale", f"{locale!r} is not one of {', '.join(LOCALES)}")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise InvalidInput(record, "username", "already taken")
    leader, region = _scope(session, record, role, leader_code, region_code)
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


def _scope(
    session: Session, record: str, role: Role, leader_code: str | None, region_code: str | None
) -> tuple[Leader | None, Region | None]:
    """The leader (leader, pickup_staff) or region (warehouse, dispatcher) a role works in."""
    if role.at_point:
        if not leader_code:
            raise InvalidInput(record, "leader", f"a {role.value} needs --leader CODE")
        leader = session.scalar(select(Leader).where(Leader.code == leader_code))
        if leader is None:
            raise InvalidInput(record, "leader", f"no leader {leader_code!r}")
        return leader, None
    if role.in_region:
        if not region_code:
            raise InvalidInput(record, "region", f"a {role.value} needs --region CODE")
        region = session.scalar(select(Region).where(Region.code == region_code))
        if region is None:
            raise InvalidInput(record, "region", f"no region {region_code!r}")
        return None, region
    return None, None


def _role(record: str, role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(
            record, "role", f"{role!r} is not one of {', '.join(r.value for r in Role)}"
        ) from None


def _end_sessions(session: Session, user: User, now: datetime) -> int:
    """End every live sign-in of the user (a changed password or role, a disabled account)."""
    result = session.execute(
        update(LoginSession)
        .where(LoginSession.user_id == user.id, LoginSession.ended_at.is_(None))
        .values(ended_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def change_user(
    session: Session,
    *,
    user: User,
    role: Role | str,
    leader_code: str | None = None,
    region_code: str | None = None,
    locale: str | None = None,
    actor: str,
    now: datetime | None = None,
) -> User:
    """Give a user another role or scope (or page language). A new role or scope ends their
    sign-ins, so that nobody keeps a page of their old scope open. Audited before and after."""
    record = f"user {user.username}"
    role = _role(record, role)
    if locale is not None and locale not in LOCALES:
        raise InvalidInput(record, "locale", f"{locale!r} is not one of {', '.join(LOCALES)}")
    if actor == user.actor and role != Role.ADMIN:
        raise InvalidInput(record, "role", "you cannot take the admin role from yourself")
    leader, region = _scope(session, record, role, leader_code, region_code)

    def view(u_role: Role, leader_id: int | None, region_id: int | None, loc: str | None) -> dict:
        return {"role": u_role.value, "leader_id": leader_id, "region_id": region_id, "locale": loc}

    before = view(user.role, user.leader_id, user.region_id, user.locale)
    after = view(role, leader.id if leader else None, region.id if region else None, locale)
    if before == after:
        return user
    scope_changed = {k: v for k, v in before.items() if k != "locale"} != {
        k: v for k, v in after.items() if k != "locale"
    }
    user.role, user.locale = role, locale
    user.leader_id, user.region_id = after["leader_id"], after["region_id"]
    if scope_changed and user.id is not None:
        _end_sessions(session, user, now or utcnow())
    session.flush()
    record_change(
        session,
        actor=actor,
        action="user.changed",
        entity="user",
        entity_id=user.id,
        before=before,
        after=after,
    )
    return user


def set_user_active(
    session: Session, *, user: User, active: bool, actor: str, now: datetime | None = None
) -> User:
    """Disable an account (its sign-ins end at once; it is kept, for the audit log's names) or
    enable it again. An admin cannot disable their own account (`actor` is theirs)."""
    if user.active == active:
        return user
    if not active and actor == user.actor:
        raise InvalidInput(f"user {user.username}", "active", "you cannot disable yourself")
    user.active = active
    if not active:
        _end_sessions(session, user, now or utcnow())
    session.flush()
    record_change(
        session,
        actor=actor,
        action="user.enabled" if active else "user.disabled",
        entity="user",
        entity_id=user.id,
        before={"active": not active},
        after={"active": active},
    )
    return user


def reset_password(
    session: Session, *, user: User, password: str, actor: str, now: datetime | None = None
) -> User:
    """Set a new password (at least MIN_PASSWORD characters); the user's sign-ins end. The
    audit entry says that it changed, never the password or its hash."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(
            f"user {user.username}", "password", f"must be at least {MIN_PASSWORD} characters"
        )
    user.password_hash = generate_password_hash(password, method="scrypt")
    ended = _end_sessions(session, user, now or utcnow())
    session.flush()
    record_change(
        session,
        actor=actor,
        action="user.password_reset",
        entity="user",
        entity_id=user.id,
        after={"sessions_ended": ended},
    )
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


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


# Every signed-in request reads its session: with its user and the user's point (a leader's
# pages all start from it) in one query, built once.
_SESSION_BY_TOKEN = (
    select(LoginSession)
    .options(joinedload(LoginSession.user).joinedload(User.leader))
    .where(LoginSession.token == bindparam("token"))
)


def find_session(
    session: Session, token: str, *, now: datetime | None = None
) -> LoginSession | None:
    """The live session for a cookie's id: not ended, not expired, its user still active."""
    login = session.scalar(_SESSION_BY_TOKEN, {"token": token})
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
