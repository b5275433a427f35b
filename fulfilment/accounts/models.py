"""The accounts' tables: users with a role and a scope, and their sign-in sessions.

A leader or pickup_staff works at one pickup point (its leader), warehouse and dispatcher in
one region, admin everywhere (`User.sees_leader`, `User.sees_region`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fulfilment.core.models import Base, Leader, Region, _enum, utcnow


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
