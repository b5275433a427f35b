"""Accounts: users with a role and a scope, their sign-in sessions, and who may see what.

A leader or pickup_staff works at one pickup point (its leader), warehouse and dispatcher in
one region, admin everywhere. Anything outside a user's scope is reported as not found, never
as forbidden, so that ids cannot be probed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from .audit import record_change
from .errors import InvalidInput, NotFound
from .models import Base, Leader, Region, _enum, utcnow

LOCALES = ("zh_Hans_CN", "en")
MIN_PASSWORD = 8
SESSION_LIFETIME = timedelta(days=14)
# Checked against when a username does not exist, so a wrong user costs as much as a wrong password.
_DUMMY_HASH = generate_password_hash("not-a-password-" + secrets.token_hex(8), method="scrypt")


class Role(StrEnum):
    LEADER = "leader"  # 团长: one pickup point
    PICKUP_STAFF = "pickup_staff"  # 自提点 staff: one pickup point
    WAREHOUSE = "warehouse"  # 中心仓: one region
    DISPATCHER = "dispatcher"  # 调度: one region
    ADMIN = "admin"  # everything

    @property
    def at_point(self) -> bool:
        return self in (Role.LEADER, Role.PICKUP_STAFF)

    @property
    def in_region(self) -> bool:
        return self in (Role.WAREHOUSE, Role.DISPATCHER)


class User(Base):
    """Someone who signs in. Never deleted: deactivated (`active`), so the audit log keeps its name."""

    __tablename__ = "user"  # reserved in PostgreSQL: SQLAlchemy quotes it

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(_enum(Role))
    leader_id: Mapped[int | None] = mapped_column(ForeignKey("leader.id"), index=True)
    region_id: Mapped[int | None] = mapped_column(ForeignKey("region.id"), index=True)
    locale: Mapped[str | None] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    leader: Mapped[Leader | None] = relationship()
    region: Mapped[Region | None] = relationship()

    @property
    def actor(self) -> str:
        """The name the audit log records for this user's changes."""
        return f"user:{self.username}"

    def sees_leader(self, leader: Leader) -> bool:
        if self.role == Role.ADMIN:
            return True
        if self.role.at_point:
            return self.leader_id == leader.id
        return self.region_id == leader.region_id

    def sees_region(self, region_id: int) -> bool:
        if self.role == Role.ADMIN:
            return True
        if self.role.in_region:
            return self.region_id == region_id
        return False


class LoginSession(Base):
    """One sign-in: a random id held in the browser's cookie. Logout ends it for good."""

    __tablename__ = "login_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()


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


@dataclass(frozen=True, slots=True)
class DemoLogin:
    username: str
    password: str
    role: Role
    scope: str  # the leader or region code it works in ("" for admin)


def add_demo_accounts(session: Session, *, region_code: str) -> list[DemoLogin]:
    """One account per role in the demo region, plus a second leader; random passwords."""
    leaders = session.scalars(
        select(Leader.code)
        .join(Region)
        .where(Region.code == region_code)
        .order_by(Leader.code)
        .limit(2)
    ).all()
    wanted = [
        ("leader1", Role.LEADER, leaders[0]),
        ("leader2", Role.LEADER, leaders[-1]),
        ("pickup1", Role.PICKUP_STAFF, leaders[0]),
        ("warehouse1", Role.WAREHOUSE, region_code),
        ("dispatcher1", Role.DISPATCHER, region_code),
        ("admin", Role.ADMIN, ""),
    ]
    out = []
    for username, role, scope in wanted:
        password = secrets.token_urlsafe(9)
        create_user(
            session,
            username=username,
            password=password,
            role=role,
            leader_code=scope if role.at_point else None,
            region_code=scope if role.in_region else None,
            actor="demo",
        )
        out.append(DemoLogin(username, password, role, scope))
    return out
