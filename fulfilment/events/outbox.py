"""Writing events to the outbox, in the caller's transaction: an event commits with the change it
tells of, or rolls back with it. A service calls `emit` for the events of one change, or
`emit_select` for a set (a cutoff's 100,000 orders: one INSERT … SELECT, not a loop).

Only orders a shop platform placed (idempotency scope "api:<client id>") have listeners: the
message is written for each active endpoint of that client subscribed to the event's type, and
for no one else. An order from a CSV import writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Select,
    String,
    Table,
    and_,
    bindparam,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from fulfilment.core.db import is_postgres
from fulfilment.core.models import Order, UTCDateTime

from .models import ALL_EVENTS, EventType, MessageState, WebhookEndpoint, WebhookMessage

endpoints_t = cast(Table, WebhookEndpoint.__table__)
messages_t = cast(Table, WebhookMessage.__table__)
orders_t = cast(Table, Order.__table__)
API_SCOPE_PREFIX = "api:"
_COLUMNS = [
    "endpoint_id",
    "event_type",
    "order_id",
    "payload",
    "created_at",
    "state",
    "attempts",
    "next_attempt_at",
]


@dataclass(frozen=True, slots=True)
class Event:
    """One event about one order (`order_id`) of the client whose scope the order carries."""

    type: EventType
    scope: str
    order_id: int | None
    data: dict[str, Any]


def _subscribed(event_type: ColumnElement[str]) -> ColumnElement[bool]:
    return or_(
        endpoints_t.c.events == ALL_EVENTS,
        endpoints_t.c.events.contains(literal(",") + event_type + literal(",")),
    )


# One message per subscribed endpoint of the event's client, from bound values: run as an
# executemany for the events of one change.
_EMIT = insert(messages_t).from_select(
    _COLUMNS,
    select(
        endpoints_t.c.id,
        bindparam("event_type", type_=messages_t.c.event_type.type),
        bindparam("order_id", type_=BigInteger()),
        bindparam("payload", type_=JSON()),
        bindparam("now", type_=UTCDateTime()),
        literal(MessageState.PENDING.value),
        literal(0),
        bindparam("now", type_=UTCDateTime()),
    ).where(
        endpoints_t.c.scope == bindparam("scope"),
        endpoints_t.c.active,
        _subscribed(bindparam("event_type", type_=messages_t.c.event_type.type)),
    ),
)


def emit(session: Session, events: Sequence[Event], *, now: datetime) -> None:
    """Write the events of one change for their clients' subscribed endpoints (none written for
    an order no platform placed), in one statement, in the caller's transaction."""
    rows = [
        {
            "event_type": e.type.value,
            "order_id": e.order_id,
            "payload": e.data,
            "now": now,
            "scope": e.scope,
        }
        for e in events
        if e.scope.startswith(API_SCOPE_PREFIX)
    ]
    if rows:
        session.execute(_EMIT, rows)


def emit_select(session: Session, event_type: EventType, rows: Select, *, now: datetime) -> int:
    """One event per row of `rows` (columns `scope`, `order_id`, `payload`: a JSON object built
    in SQL with `json_object`), for each subscribed endpoint of the row's client: one
    INSERT … SELECT. Returns the messages written."""
    source = rows.subquery()
    moment = literal(now, UTCDateTime())
    chosen = (
        select(
            endpoints_t.c.id,
            literal(event_type.value),
            source.c.order_id,
            source.c.payload,
            moment,
            literal(MessageState.PENDING.value),
            literal(0),
            moment,
        )
        .select_from(source.join(endpoints_t, endpoints_t.c.scope == source.c.scope))
        .where(endpoints_t.c.active, _subscribed(literal(event_type.value)))
    )
    result = session.execute(insert(messages_t).from_select(_COLUMNS, chosen))
    return int(getattr(result, "rowcount", 0) or 0)


def has_listeners(session: Session) -> bool:
    """Whether any endpoint is active: a set-based emitter may skip building its query."""
    return session.scalar(select(endpoints_t.c.id).where(endpoints_t.c.active).limit(1)) is not None


def platform_orders_of_wave(wave_id: int) -> ColumnElement[bool]:
    """The orders of the wave that a shop platform placed: the only ones with listeners."""
    return and_(
        orders_t.c.wave_id == wave_id, orders_t.c.idempotency_scope.like(f"{API_SCOPE_PREFIX}%")
    )


def order_event_rows(session: Session, **fields: Any) -> Select:
    """The rows `emit_select` takes, one per order (`orders_t`, joined and filtered by the
    caller): the order's scope and id, and a payload that opens with the order's id and
    idempotency key, then `fields`."""
    return select(
        orders_t.c.idempotency_scope.label("scope"),
        orders_t.c.id.label("order_id"),
        json_object(
            session,
            order_id=orders_t.c.id,
            idempotency_key=orders_t.c.idempotency_key,
            **fields,
        ).label("payload"),
    )


# --- JSON built in SQL, alike on PostgreSQL and SQLite -----------------------------------------


def json_object(session: Session, **fields: Any) -> ColumnElement[Any]:
    """A JSON object of SQL expressions (json_build_object / json_object); keys are ours."""
    args: list[Any] = []
    for key, value in fields.items():
        args += [literal_column(f"'{key}'"), value]
    if is_postgres(session):
        return func.json_build_object(*args)
    return func.json_object(*args)


def json_text(value: str) -> ColumnElement[str]:
    """A bound string typed for PostgreSQL's json_build_object (an untyped one is refused)."""
    return sql_cast(literal(value), String())


def json_array_agg(session: Session, value: ColumnElement[Any]) -> ColumnElement[Any]:
    """The aggregate of JSON values into an array (json_agg / json_group_array)."""
    if is_postgres(session):
        return func.json_agg(value)
    return func.json_group_array(value)


def json_nested(session: Session, value: ColumnElement[Any]) -> ColumnElement[Any]:
    """A JSON value read from a subquery, nested as JSON (SQLite would nest it as a string)."""
    return value if is_postgres(session) else func.json(value)


def json_iso_utc(session: Session, value: ColumnElement[Any]) -> ColumnElement[Any]:
    """A stored UTC time as ISO 8601 text with a Z, the API's own format."""
    if is_postgres(session):
        return func.to_char(value, literal_column('\'YYYY-MM-DD"T"HH24:MI:SS"Z"\''))
    return func.strftime(literal_column("'%Y-%m-%dT%H:%M:%SZ'"), value)


def json_date(session: Session, value: ColumnElement[Any]) -> ColumnElement[Any]:
    """A DATE as YYYY-MM-DD text."""
    if is_postgres(session):
        return func.to_char(value, literal_column("'YYYY-MM-DD'"))
    return func.substr(value, 1, 10)


def iso(moment: datetime | None) -> str | None:
    """A time as the events write it: ISO 8601, UTC, with a Z."""
    if moment is None:
        return None
    from datetime import UTC

    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
