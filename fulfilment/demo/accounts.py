"""The demo's sign-ins: one account per role in the demo region, with random passwords."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from fulfilment.accounts.models import Role
from fulfilment.accounts.services import create_user
from fulfilment.core.models import Leader, Region


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
