"""The append-only audit log: every state change with who, what, when, before and after."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from .models import AuditEntry, utcnow

_AUDIT_INSERT = insert(cast(Table, AuditEntry.__table__))


def record_change(
    session: Session,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: int | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        actor=actor,
        action=action,
        entity=entity,
        entity_id=entity_id,
        before=before,
        after=after,
        at=at or utcnow(),
    )
    session.add(entry)
    return entry


def insert_change(
    session: Session,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: int | None,
    after: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """`record_change` of a creation (nothing before) as one INSERT, without an ORM object and
    the flush it costs: for a hot path that never reads its entry back (order intake)."""
    session.execute(
        _AUDIT_INSERT,
        {
            "at": at or utcnow(),
            "actor": actor,
            "action": action,
            "entity": entity,
            "entity_id": entity_id,
            "after": after,
        },
    )


def list_changes(
    session: Session,
    *,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[AuditEntry], bool]:
    """A page of the log, newest first, filtered in SQL: by actor (exact), by action (exact, or
    a prefix ending in a dot: `user.`), from `since` (included) to `until` (excluded). Returns
    the entries and whether more follow."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc())
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if action:
        if action.endswith("."):
            query = query.where(AuditEntry.action.startswith(action, autoescape=True))
        else:
            query = query.where(AuditEntry.action == action)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    rows = list(session.scalars(query.offset(offset).limit(limit + 1)))
    return rows[:limit], len(rows) > limit
