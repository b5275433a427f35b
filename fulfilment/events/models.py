"""The webhook tables: the endpoints a shop platform registered, and the outbox of messages, one
per event and endpoint, written in the transaction of the change the event tells of."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from fulfilment.core.models import Base, _enum, utcnow

# Message ids: 64-bit on PostgreSQL (millions a day), SQLite's INTEGER rowid is 64-bit already.
MESSAGE_ID = BigInteger().with_variant(Integer(), "sqlite")
ALL_EVENTS = "*"


class EventType(StrEnum):
    """What a platform may subscribe to (docs/api.md shows each one's JSON)."""

    ORDER_ACCEPTED = "order.accepted"
    ORDER_LATE = "order.late"  # placed after its wave's cutoff: moved to the next wave
    ORDER_CUT_OFF = "order.cut_off"  # the final price and the refund owed
    ORDER_CANCELLED = "order.cancelled"
    ORDER_ARRIVED = "order.arrived"  # at the pickup point, with what arrived short
    ORDER_COLLECTED = "order.collected"
    REFUND_OWED = "refund.owed"
    PLAN_PUBLISHED = "plan.published"  # the pickup point's ETA


class MessageState(StrEnum):
    PENDING = "pending"  # to send, or sent and not yet accepted (retried)
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # retried for the whole retry window without a 2xx; shown to the admin
    DROPPED = "dropped"  # its endpoint was removed before it was delivered


class WebhookEndpoint(Base):
    """A URL of an API client's that hears about the client's own orders.

    `scope` is the client's idempotency scope ("api:<client id>"), the mark its orders carry: the
    outbox joins orders to endpoints on it. `events` is "*" or ",type,type," (a LIKE finds one).
    The secret signs each message (Standard Webhooks); it is kept, as a signature needs it.
    """

    __tablename__ = "webhook_endpoint"

    id: Mapped[int] = mapped_column(primary_key=True)
    api_client_id: Mapped[int] = mapped_column(ForeignKey("api_client.id"), index=True)
    scope: Mapped[str] = mapped_column(String(64), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(100))
    events: Mapped[str] = mapped_column(String(400), default=ALL_EVENTS)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The endpoint's own backoff: while it fails, nothing is sent to it before `paused_until`.
    failures: Mapped[int] = mapped_column(default=0)
    paused_until: Mapped[datetime | None]

    def event_types(self) -> list[str]:
        if self.events == ALL_EVENTS:
            return [t.value for t in EventType]
        return [t for t in self.events.split(",") if t]


class WebhookMessage(Base):
    """One event for one endpoint. Sent in id order per (endpoint, order); `webhook-id` is
    `evt_<id>`, the same on every attempt and replay, so that the receiver deduplicates."""

    __tablename__ = "webhook_message"
    __table_args__ = (
        # the claim: pending messages, the due ones first
        Index(
            "ix_webhook_message_due",
            "next_attempt_at",
            "id",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
        # the order per order: an earlier pending message of the same order holds the later back
        Index("ix_webhook_message_order", "endpoint_id", "order_id", "id"),
        Index("ix_webhook_message_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(MESSAGE_ID, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoint.id"))
    event_type: Mapped[str] = mapped_column(String(32))
    order_id: Mapped[int | None]  # the ordering key (None: not about one order)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    state: Mapped[MessageState] = mapped_column(_enum(MessageState), default=MessageState.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]  # not before: the backoff after a failed attempt
    claimed_until: Mapped[datetime | None]  # a worker is sending it (its lease)
    retry_since: Mapped[datetime | None]  # the retry window's start (None: created_at)
    delivered_at: Mapped[datetime | None]
    last_status: Mapped[int | None]  # the receiver's last HTTP status (None: no answer)
    last_error: Mapped[str | None] = mapped_column(String(300))

    @property
    def event_id(self) -> str:
        return f"evt_{self.id}"
