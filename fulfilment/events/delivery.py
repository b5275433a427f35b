"""Delivering the outbox: signed POSTs (Standard Webhooks), at least once, in order per order,
retried with exponential backoff and jitter for the retry window, then failed for the admin.

A pass claims due messages (SELECT … FOR UPDATE SKIP LOCKED on PostgreSQL: two workers never
hold one message; then one UPDATE sets their lease), commits the claim, sends outside any
transaction, and records the answers set-based. A worker that dies mid-send leaves its lease to
expire: the message is sent again (at least once; receivers deduplicate by `webhook-id`).

Order per order: a message is sent only when no earlier message of the same order for the same
endpoint is still pending (one grouped read of the candidates' orders per pass), so an order's
events arrive in the order they were written; the others wait half a second.

An endpoint that fails is paused with its own backoff (one probe at a time, not the backlog),
and when it answers again every message held back by backoff is released at once: a receiver
back from an outage gets its backlog at full speed, not at its retry schedule.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import os
import random
import secrets
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpcore
from sqlalchemy import Table, and_, bindparam, func, or_, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from fulfilment.core.audit import record_change
from fulfilment.core.db import advisory_xact_lock, is_postgres, session_scope
from fulfilment.core.errors import InvalidInput, NotFound
from fulfilment.core.models import UTCDateTime, utcnow

from .models import MessageState, WebhookEndpoint, WebhookMessage
from .outbox import iso

log = logging.getLogger(__name__)
messages_t = cast(Table, WebhookMessage.__table__)
endpoints_t = cast(Table, WebhookEndpoint.__table__)
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
DEFAULT_QUEUE = "groupbuy-webhooks"
AUDIT_ENTITY_ID_MAX = 2**31 - 1  # audit_log.entity_id is an `integer`
USER_AGENT = "groupbuy-webhooks/1"


# --- signing (https://www.standardwebhooks.com/) ----------------------------------------------


def new_secret() -> str:
    """An endpoint's signing secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def sign(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">` under the secret's decoded bytes."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def envelope(message_id: int, event_type: str, created_at: datetime, data: Any) -> bytes:
    """The body of a message: the event's id, type, time and data, as compact UTF-8 JSON."""
    return json.dumps(
        {"id": f"evt_{message_id}", "type": event_type, "timestamp": iso(created_at), "data": data},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")


# --- the retry policy -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff base·2^(n−1) (capped), each wait drawn from its upper half (jitter); a message
    still failing after `window_s` from its first attempt is failed. An endpoint that fails is
    paused the same way, capped at `endpoint_pause_max_s` (how soon a recovery is noticed)."""

    base_s: float = 5.0
    max_backoff_s: float = 3600.0
    window_s: float = 26 * 3600.0  # at least 24 hours of retries
    endpoint_pause_max_s: float = 10.0
    lease_s: float = 60.0
    timeout_s: float = 10.0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> RetryPolicy:
        env = os.environ if environ is None else environ
        defaults = cls()

        def number(name: str, default: float) -> float:
            raw = env.get(name)
            return float(raw) if raw else default

        return cls(
            base_s=number("GROUPBUY_WEBHOOK_BACKOFF_S", defaults.base_s),
            max_backoff_s=number("GROUPBUY_WEBHOOK_MAX_BACKOFF_S", defaults.max_backoff_s),
            window_s=number("GROUPBUY_WEBHOOK_RETRY_WINDOW_S", defaults.window_s),
            endpoint_pause_max_s=number(
                "GROUPBUY_WEBHOOK_ENDPOINT_PAUSE_MAX_S", defaults.endpoint_pause_max_s
            ),
            lease_s=number("GROUPBUY_WEBHOOK_LEASE_S", defaults.lease_s),
            timeout_s=number("GROUPBUY_WEBHOOK_TIMEOUT_S", defaults.timeout_s),
        )

    def backoff_s(self, failures: int, *, cap: float | None = None) -> float:
        delay = min(self.base_s * 2 ** max(failures - 1, 0), cap or self.max_backoff_s)
        return random.uniform(delay / 2, delay)


# --- claiming ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    endpoint_id: int
    event_type: str
    payload: Any
    created_at: datetime
    attempts: int
    retry_since: datetime


@dataclass(frozen=True, slots=True)
class Target:
    id: int
    url: str
    secret: str
    failures: int


def _free(now: datetime):
    return or_(messages_t.c.claimed_until.is_(None), messages_t.c.claimed_until <= now)


def _take(session: Session, ids: list[int], *, now: datetime, lease_s: float) -> list[Claimed]:
    """Lease the messages (already locked by this transaction): one UPDATE … RETURNING."""
    if not ids:
        return []
    moment = bindparam("claim_now", now, type_=UTCDateTime())
    rows = session.execute(
        update(messages_t)
        .where(messages_t.c.id.in_(ids))
        .values(
            claimed_until=now + timedelta(seconds=lease_s),
            attempts=messages_t.c.attempts + 1,
            retry_since=func.coalesce(messages_t.c.retry_since, moment),
        )
        .returning(
            messages_t.c.id,
            messages_t.c.endpoint_id,
            messages_t.c.event_type,
            messages_t.c.payload,
            messages_t.c.created_at,
            messages_t.c.attempts,
            messages_t.c.retry_since,
        )
    ).all()
    return sorted((Claimed(*row) for row in rows), key=lambda c: c.id)


def _candidates(session: Session, query) -> list[tuple[int, int, int | None]]:
    """(id, endpoint, order) of the messages a query selects, locked (SKIP LOCKED on PostgreSQL:
    another worker's candidates are passed over, never waited for)."""
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    return [(row[0], row[1], row[2]) for row in session.execute(query)]


def _first_of_their_orders(
    session: Session, candidates: list[tuple[int, int, int | None]]
) -> tuple[list[int], list[int]]:
    """The candidates that are the first pending message of their order (sendable), and the
    others (an earlier one of the same order is still pending: they wait).

    One grouped read per endpoint over the candidates' orders, by the (endpoint, order, id)
    index: a bounded amount of work per pass, whatever the planner believes of the table."""
    heads: dict[tuple[int, int], int] = {}
    by_endpoint: dict[int, set[int]] = {}
    for _id, endpoint_id, order_id in candidates:
        if order_id is not None:
            by_endpoint.setdefault(endpoint_id, set()).add(order_id)
    for endpoint_id, orders in by_endpoint.items():
        rows = session.execute(
            select(messages_t.c.order_id, func.min(messages_t.c.id))
            .where(
                messages_t.c.endpoint_id == endpoint_id,
                messages_t.c.order_id.in_(sorted(orders)),
                messages_t.c.state == MessageState.PENDING.value,
            )
            .group_by(messages_t.c.order_id)
        )
        heads.update({(endpoint_id, order_id): first for order_id, first in rows})
    ready: list[int] = []
    waiting: list[int] = []
    for message_id, endpoint_id, order_id in candidates:
        first = heads.get((endpoint_id, order_id)) if order_id is not None else None
        (ready if first is None or first == message_id else waiting).append(message_id)
    return ready, waiting


def _hold_back(session: Session, ids: list[int], *, until: datetime) -> None:
    """Messages behind an earlier one of their order are looked at again later, not at every
    pass (they would fill each batch while their order's first one waits)."""
    if ids:
        session.execute(
            update(messages_t)
            .where(messages_t.c.id.in_(ids), messages_t.c.next_attempt_at < until)
            .values(next_attempt_at=until)
        )


HOLD_BACK_S = 0.5


def claim(
    session: Session,
    *,
    now: datetime,
    limit: int,
    policy: RetryPolicy,
    lease_s: float | None = None,
) -> tuple[list[Claimed], dict[int, Target]]:
    """Claim up to `limit` due messages of endpoints not paused, each the first pending message
    of its order; and for each endpoint that failed and whose pause is over, one probe (the
    first of an order whose backoff ends soonest, due or not). The caller commits, then sends."""
    ready = session.execute(
        select(
            endpoints_t.c.id,
            endpoints_t.c.url,
            endpoints_t.c.secret,
            endpoints_t.c.failures,
        ).where(
            endpoints_t.c.active,
            or_(endpoints_t.c.paused_until.is_(None), endpoints_t.c.paused_until <= now),
        )
    ).all()
    targets = {row.id: Target(*row) for row in ready}
    if not targets:
        return [], {}
    lease_s = lease_s or policy.lease_s
    later = now + timedelta(seconds=HOLD_BACK_S)
    pending = (
        select(messages_t.c.id, messages_t.c.endpoint_id, messages_t.c.order_id)
        .where(messages_t.c.state == MessageState.PENDING.value, _free(now))
        .order_by(messages_t.c.next_attempt_at, messages_t.c.id)
    )
    healthy = [t.id for t in targets.values() if t.failures == 0]
    claimed: list[Claimed] = []
    if healthy:
        candidates = _candidates(
            session,
            pending.where(
                messages_t.c.next_attempt_at <= now, messages_t.c.endpoint_id.in_(healthy)
            ).limit(limit),
        )
        sendable, waiting = _first_of_their_orders(session, candidates)
        _hold_back(session, waiting, until=later)
        claimed += _take(session, sendable, now=now, lease_s=lease_s)
    for target in targets.values():
        if target.failures == 0:
            continue
        # A failing endpoint: one probe, taken by one worker (the pause is pushed on by a lease).
        won = session.execute(
            update(endpoints_t)
            .where(
                endpoints_t.c.id == target.id,
                or_(endpoints_t.c.paused_until.is_(None), endpoints_t.c.paused_until <= now),
            )
            .values(paused_until=now + timedelta(seconds=lease_s))
        )
        if not getattr(won, "rowcount", 0):
            continue
        # the first of an order whose backoff ends soonest: a message the receiver refuses
        # every time drifts back behind the others instead of holding the endpoint down
        candidates = _candidates(
            session, pending.where(messages_t.c.endpoint_id == target.id).limit(20)
        )
        sendable, waiting = _first_of_their_orders(session, candidates)
        _hold_back(session, waiting, until=later)
        taken = _take(session, sendable[:1], now=now, lease_s=lease_s)
        if not candidates:  # nothing left to send it: it starts afresh with the next message
            session.execute(
                update(endpoints_t)
                .where(endpoints_t.c.id == target.id)
                .values(failures=0, paused_until=None)
            )
        elif not taken:  # all held back behind earlier ones: probe again at once
            session.execute(
                update(endpoints_t).where(endpoints_t.c.id == target.id).values(paused_until=now)
            )
        claimed += taken
    return claimed, targets


# --- sending ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    id: int
    endpoint_id: int
    ok: bool
    status: int | None
    error: str | None


# httpcore is httpx's own transport: the same connection pool and timeouts, at a third of the
# CPU per request of httpx.Client (0.2 ms against 0.6 ms here), which decides how many events
# two cores can sign and send.
SEND_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ConnectionNotAvailable,
)


def make_http_client(*, concurrency: int, timeout_s: float) -> httpcore.ConnectionPool:
    """Keep-alive connections, at most `concurrency` at once; redirects are never followed."""
    return httpcore.ConnectionPool(
        max_connections=concurrency, max_keepalive_connections=concurrency
    )


def send_one(
    client: httpcore.ConnectionPool, target: Target, message: Claimed, *, timeout_s: float = 10.0
) -> Answer:
    body = envelope(message.id, message.event_type, message.created_at, message.payload)
    msg_id = f"evt_{message.id}"
    timestamp = int(time.time())
    headers = [
        (b"content-type", b"application/json"),
        (b"user-agent", USER_AGENT.encode()),
        (b"webhook-id", msg_id.encode()),
        (b"webhook-timestamp", str(timestamp).encode()),
        (
            b"webhook-signature",
            sign(target.secret, msg_id=msg_id, timestamp=timestamp, body=body).encode(),
        ),
    ]
    timeouts = {"connect": min(timeout_s, 5.0), "read": timeout_s, "write": timeout_s}
    try:
        response = client.request(
            "POST",
            target.url,
            headers=headers,
            content=body,
            extensions={"timeout": {**timeouts, "pool": timeout_s}},
        )
    except SEND_ERRORS as err:
        return Answer(message.id, target.id, False, None, f"{type(err).__name__}: {err}"[:300])
    ok = 200 <= response.status < 300
    return Answer(message.id, target.id, ok, response.status, None if ok else "not 2xx")


def send_all(
    client: httpcore.ConnectionPool,
    pool: ThreadPoolExecutor,
    messages: Sequence[Claimed],
    targets: Mapping[int, Target],
    *,
    timeout_s: float,
    lanes: int,
) -> list[Answer]:
    """Send a pass's messages over `lanes` connections at once, each lane its share in turn (a
    pass holds at most one message per order, so no order is sent out of turn)."""

    def lane(share: Sequence[Claimed]) -> list[Answer]:
        return [send_one(client, targets[m.endpoint_id], m, timeout_s=timeout_s) for m in share]

    shares = [messages[n::lanes] for n in range(min(lanes, len(messages)))]
    return [answer for answers in pool.map(lane, shares) for answer in answers]


# --- recording the answers --------------------------------------------------------------------


def record(
    session: Session,
    answers: Iterable[Answer],
    claimed: Mapping[int, Claimed],
    *,
    now: datetime,
    policy: RetryPolicy,
    failures: Mapping[int, int],
) -> None:
    """Delivered messages in one UPDATE; each failure gets its backoff (or fails for good past the
    window); an endpoint that failed every attempt is paused, one that answered again releases
    the messages it held back."""
    answers = list(answers)
    delivered: dict[int | None, list[int]] = {}  # by the receiver's status (200, 204, …)
    for a in answers:
        if a.ok:
            delivered.setdefault(a.status, []).append(a.id)
    for status, ids in delivered.items():
        session.execute(
            update(messages_t)
            .where(messages_t.c.id.in_(ids), messages_t.c.state == MessageState.PENDING.value)
            .values(
                state=MessageState.DELIVERED.value,
                delivered_at=now,
                claimed_until=None,
                last_status=status,
                last_error=None,
            )
        )
    retries = []
    for a in answers:
        if a.ok:
            continue
        message = claimed[a.id]
        gone = (now - message.retry_since).total_seconds() >= policy.window_s
        retries.append(
            {
                "m_id": a.id,
                "m_state": (MessageState.FAILED if gone else MessageState.PENDING).value,
                "m_next": now + timedelta(seconds=policy.backoff_s(message.attempts)),
                "m_status": a.status,
                "m_error": a.error or f"HTTP {a.status}",
            }
        )
    if retries:
        session.execute(
            update(messages_t)
            .where(
                messages_t.c.id == bindparam("m_id"),
                messages_t.c.state == MessageState.PENDING.value,
            )
            .values(
                state=bindparam("m_state"),
                next_attempt_at=bindparam("m_next", type_=UTCDateTime()),
                claimed_until=None,
                last_status=bindparam("m_status"),
                last_error=bindparam("m_error"),
            ),
            retries,
        )
    by_endpoint: dict[int, list[bool]] = {}
    for a in answers:
        by_endpoint.setdefault(a.endpoint_id, []).append(a.ok)
    for endpoint_id, oks in by_endpoint.items():
        if any(oks) and failures.get(endpoint_id, 0):
            session.execute(
                update(endpoints_t)
                .where(endpoints_t.c.id == endpoint_id)
                .values(failures=0, paused_until=None)
            )
            session.execute(  # back from an outage: what waited for its backoff goes now
                update(messages_t)
                .where(
                    messages_t.c.endpoint_id == endpoint_id,
                    messages_t.c.state == MessageState.PENDING.value,
                    messages_t.c.next_attempt_at > now,
                )
                .values(next_attempt_at=now)
            )
        elif not any(oks):
            n = failures.get(endpoint_id, 0) + 1
            pause = policy.backoff_s(n, cap=policy.endpoint_pause_max_s)
            session.execute(
                update(endpoints_t)
                .where(endpoints_t.c.id == endpoint_id)
                .values(failures=n, paused_until=now + timedelta(seconds=pause))
            )


# --- the worker -------------------------------------------------------------------------------

STATS_EVERY_S = 30.0


def refresh_statistics_if_stale(session: Session) -> bool:
    """ANALYZE the outbox when more rows changed since its last analysis than it holds (a
    cutoff's 100,000 events at once): planned on the statistics of an empty table, each claim
    read the whole backlog (0.1 s a pass) where an index reads 200 rows. Autovacuum gets there
    within minutes; a burst is delivered in those minutes. PostgreSQL only; one worker at a
    time (an advisory lock), the others go on."""
    if not is_postgres(session):
        return False
    row = session.execute(
        text(
            "SELECT n_mod_since_analyze, n_live_tup FROM pg_stat_user_tables "
            "WHERE relid = 'webhook_message'::regclass"
        )
    ).first()
    if row is None or row[0] < max(1000, row[1]):
        return False
    if not advisory_xact_lock(session, "analyze:webhook_message", wait=False):
        return False
    session.execute(text("ANALYZE webhook_message"))
    return True


@dataclass
class Courier:
    """Sends the outbox: `deliver_once` is one pass (claim, send, record); `run` loops."""

    sessions: sessionmaker[Session]
    policy: RetryPolicy = field(default_factory=RetryPolicy.from_environment)
    batch: int = 200
    concurrency: int = 16

    def __post_init__(self) -> None:
        self.stats_checked = 0.0
        self.client = make_http_client(
            concurrency=self.concurrency, timeout_s=self.policy.timeout_s
        )
        self.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="webhook")

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        self.client.close()

    def deliver_once(self, *, now: datetime | None = None) -> int:
        """One pass; returns how many messages were sent (0: nothing was due)."""
        now = now or utcnow()
        # the lease outlasts the slowest pass (every request timing out), so that no other
        # worker takes a message this one may still be sending
        lease_s = self.policy.lease_s + math.ceil(self.batch / self.concurrency) * (
            self.policy.timeout_s + 1
        )
        with session_scope(self.sessions) as session:
            messages, targets = claim(
                session, now=now, limit=self.batch, policy=self.policy, lease_s=lease_s
            )
        if len(messages) >= self.batch and time.monotonic() - self.stats_checked > STATS_EVERY_S:
            self.stats_checked = time.monotonic()  # a backlog: are the planner's figures old?
            with session_scope(self.sessions) as session:
                refresh_statistics_if_stale(session)
        if not messages:
            return 0
        answers = send_all(
            self.client,
            self.pool,
            messages,
            targets,
            timeout_s=self.policy.timeout_s,
            lanes=self.concurrency,
        )
        with session_scope(self.sessions) as session:
            record(
                session,
                answers,
                {m.id: m for m in messages},
                now=utcnow(),
                policy=self.policy,
                failures={t.id: t.failures for t in targets.values()},
            )
        return len(messages)

    def run(self, *, stop: threading.Event | None = None, idle_s: float = 0.2) -> None:
        """Deliver until `stop` is set; a database error is logged and the loop goes on."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                sent = self.deliver_once()
            except Exception:  # noqa: BLE001 - the loop outlives a lost database connection
                log.exception("webhooks: a delivery pass failed; trying again")
                sent = 0
            if not sent:
                stop.wait(idle_s)


def count_due(session: Session, *, now: datetime) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(messages_t)
            .where(
                messages_t.c.state == MessageState.PENDING.value,
                messages_t.c.next_attempt_at <= now,
                _free(now),
            )
        )
        or 0
    )


# --- RQ: passes as jobs when GROUPBUY_REDIS_URL is set ----------------------------------------

_JOB_COURIER: Courier | None = None  # the worker process's courier, kept between jobs …
_JOB_COURIER_URL: str | None = None  # … for the database it was made for


def deliver_job(database_url: str, max_s: float = 10.0) -> int:
    """An RQ job: delivery passes for up to `max_s`, until nothing is due. The outbox is the
    truth, the job only a trigger: a job run twice, or lost, loses and doubles nothing. A job
    for another database than the last one's gets a courier of its own."""
    global _JOB_COURIER, _JOB_COURIER_URL
    if _JOB_COURIER is not None and _JOB_COURIER_URL != database_url:
        _JOB_COURIER.close()
        _JOB_COURIER = None
    if _JOB_COURIER is None:
        from fulfilment.core.db import make_engine, make_session_factory

        _JOB_COURIER = Courier(make_session_factory(make_engine(database_url)))
        _JOB_COURIER_URL = database_url
    sent, started = 0, time.monotonic()
    while time.monotonic() - started < max_s:
        n = _JOB_COURIER.deliver_once()
        if not n:
            break
        sent += n
    return sent


def run_with_rq(
    sessions: sessionmaker[Session],
    *,
    database_url: str,
    redis_url: str,
    queue_name: str = DEFAULT_QUEUE,
    in_flight: int = 2,
    stop: threading.Event | None = None,
    idle_s: float = 0.5,
) -> None:
    """The loop of `groupbuy webhooks run` with Redis: while messages are due, keep `in_flight`
    delivery jobs queued for the RQ workers (`groupbuy webhooks worker`)."""
    from redis import Redis
    from rq import Queue

    queue = Queue(queue_name, connection=Redis.from_url(redis_url))
    stop = stop or threading.Event()
    while not stop.is_set():
        with session_scope(sessions) as session:
            due = count_due(session, now=utcnow())
        waiting = queue.count + queue.started_job_registry.count
        for _ in range(min(in_flight - waiting, due) if due else 0):
            queue.enqueue(deliver_job, database_url, job_timeout=120, result_ttl=0)
        stop.wait(idle_s)


# --- the admin's view: failed messages, replays ------------------------------------------------


@dataclass(frozen=True, slots=True)
class FailedMessage:
    """A failed message as the admin sees it: never its payload, never the endpoint's secret."""

    id: int
    endpoint_id: int
    url: str
    event_type: str
    order_id: int | None
    created_at: datetime
    attempts: int
    last_status: int | None
    last_error: str | None
    api_client_id: int
    endpoint_active: bool  # False: the endpoint was removed, its messages cannot be sent again


def list_failed(
    session: Session, *, limit: int = 100, offset: int = 0, endpoint_id: int | None = None
) -> list[FailedMessage]:
    """Failed messages, the newest first; of one endpoint when `endpoint_id` is given."""
    query = (
        select(
            messages_t.c.id,
            messages_t.c.endpoint_id,
            endpoints_t.c.url,
            messages_t.c.event_type,
            messages_t.c.order_id,
            messages_t.c.created_at,
            messages_t.c.attempts,
            messages_t.c.last_status,
            messages_t.c.last_error,
            endpoints_t.c.api_client_id,
            endpoints_t.c.active,
        )
        .join(endpoints_t, endpoints_t.c.id == messages_t.c.endpoint_id)
        .where(messages_t.c.state == MessageState.FAILED.value)
        .order_by(messages_t.c.id.desc())
        .offset(offset)
        .limit(limit)
    )
    if endpoint_id is not None:
        query = query.where(messages_t.c.endpoint_id == endpoint_id)
    return [FailedMessage(*row) for row in session.execute(query).all()]


@dataclass(frozen=True, slots=True)
class FailedEndpoint:
    id: int
    url: str
    api_client_id: int
    active: bool
    failed: int  # how many of its messages are failed


def list_failed_endpoints(session: Session) -> list[FailedEndpoint]:
    """Each endpoint with failed messages and how many, by id: the admin's filter and its
    "send all again" (one grouped read)."""
    failed = (
        select(messages_t.c.endpoint_id, func.count().label("n"))
        .where(messages_t.c.state == MessageState.FAILED.value)
        .group_by(messages_t.c.endpoint_id)
        .subquery()
    )
    rows = session.execute(
        select(
            endpoints_t.c.id,
            endpoints_t.c.url,
            endpoints_t.c.api_client_id,
            endpoints_t.c.active,
            failed.c.n,
        )
        .join(failed, failed.c.endpoint_id == endpoints_t.c.id)
        .order_by(endpoints_t.c.id)
    ).all()
    return [FailedEndpoint(*row) for row in rows]


def count_by_state(session: Session, *, endpoint_id: int | None = None) -> dict[str, int]:
    """How many messages are in each state (pending, delivered, failed, dropped)."""
    query = select(messages_t.c.state, func.count()).group_by(messages_t.c.state)
    if endpoint_id is not None:
        query = query.where(messages_t.c.endpoint_id == endpoint_id)
    return {str(state): n for state, n in session.execute(query).all()}


def _queue_again(now: datetime) -> dict[str, Any]:
    """A message sent again: due now, a fresh try with a new retry window, the same id."""
    return {
        "state": MessageState.PENDING.value,
        "next_attempt_at": now,
        "claimed_until": None,
        "retry_since": None,
        "attempts": 0,
    }


def _active_endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    """The endpoint whose messages an admin sends again: NotFound when unknown, InvalidInput
    (naming the endpoint) when removed."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(f"webhook endpoint {endpoint_id} not found")
    if not endpoint.active:
        raise InvalidInput(
            f"webhook endpoint {endpoint_id}",
            "endpoint",
            "was removed: its messages cannot be sent again",
        )
    return endpoint


def retry_failed(
    session: Session,
    *,
    now: datetime,
    actor: str,
    message_ids: Sequence[int] | None = None,
    endpoint_id: int | None = None,
) -> int:
    """Send failed messages again with the same `webhook-id`, as a fresh try with a new retry
    window: the messages named, or every failed message of one endpoint. Only an active
    endpoint's: a removed endpoint's messages are refused (InvalidInput naming the message or
    the endpoint) and nothing changes. Returns how many became pending (0: none was failed any
    more, another admin was first). Audited (`webhook.retried`)."""
    if (message_ids is None) == (endpoint_id is None):
        raise InvalidInput("webhook retry", "scope", "name the messages or one endpoint")
    active = select(endpoints_t.c.id).where(endpoints_t.c.active)
    change = update(messages_t).where(
        messages_t.c.state == MessageState.FAILED.value,
        # an endpoint removed meanwhile: its messages stay as they are
        messages_t.c.endpoint_id.in_(active.scalar_subquery()),
    )
    if endpoint_id is not None:
        _active_endpoint(session, endpoint_id)
        result = session.execute(
            change.where(messages_t.c.endpoint_id == endpoint_id).values(**_queue_again(now))
        )
        n = int(getattr(result, "rowcount", 0) or 0)
        record_change(
            session,
            actor=actor,
            action="webhook.retried",
            entity="webhook_endpoint",
            entity_id=endpoint_id,
            after={"messages": n},
            at=now,
        )
        return n
    wanted = sorted(set(message_ids or []))
    found = {
        row.id: row
        for row in session.execute(
            select(messages_t.c.id, messages_t.c.endpoint_id, endpoints_t.c.active)
            .join(endpoints_t, endpoints_t.c.id == messages_t.c.endpoint_id)
            .where(messages_t.c.id.in_(wanted))
        )
    }
    for message_id in wanted:
        row = found.get(message_id)
        if row is None:
            raise NotFound(f"webhook message evt_{message_id} not found")
        if not row.active:
            raise InvalidInput(
                f"webhook message evt_{message_id}",
                "endpoint",
                f"endpoint {row.endpoint_id} was removed: its messages cannot be sent again",
            )
    queued = sorted(
        session.scalars(
            change.where(messages_t.c.id.in_(wanted))
            .values(**_queue_again(now))
            .returning(messages_t.c.id)
        )
    )
    record_change(
        session,
        actor=actor,
        action="webhook.retried",
        entity="webhook_message",
        # the audit's entity id is a 32-bit column, message ids are 64-bit: one past it is
        # named in `ids` only
        entity_id=wanted[0] if len(wanted) == 1 and wanted[0] <= AUDIT_ENTITY_ID_MAX else None,
        after={"messages": len(queued), "ids": queued},
        at=now,
    )
    return len(queued)


def replay(
    session: Session,
    *,
    since: datetime,
    now: datetime,
    actor: str,
    endpoint_id: int | None = None,
) -> int:
    """Send again every message written since `since` (delivered or failed) to its endpoint if
    still active, with the same `webhook-id`, as a fresh try with a new retry window. With
    `endpoint_id`, that endpoint's only: an unknown one is NotFound, a removed one refused
    (InvalidInput). Returns how many became pending (a message another admin queued again
    first is pending already: not counted twice). Audited (`webhook.replayed`)."""
    active = select(endpoints_t.c.id).where(endpoints_t.c.active)
    if endpoint_id is not None:
        _active_endpoint(session, endpoint_id)
        active = active.where(endpoints_t.c.id == endpoint_id)
    result = session.execute(
        update(messages_t)
        .where(
            messages_t.c.created_at >= since,
            messages_t.c.state.in_([MessageState.DELIVERED.value, MessageState.FAILED.value]),
            messages_t.c.endpoint_id.in_(active.scalar_subquery()),
        )
        .values(**_queue_again(now))
    )
    n = int(getattr(result, "rowcount", 0) or 0)
    record_change(
        session,
        actor=actor,
        action="webhook.replayed",
        entity="webhook_endpoint",
        entity_id=endpoint_id,
        after={"since": since.isoformat(), "messages": n},
        at=now,
    )
    return n


def drop_pending(session: Session, *, endpoint_id: int) -> int:
    """A removed endpoint's undelivered messages are dropped (kept, never sent)."""
    result = session.execute(
        update(messages_t)
        .where(
            and_(
                messages_t.c.endpoint_id == endpoint_id,
                messages_t.c.state == MessageState.PENDING.value,
            )
        )
        .values(state=MessageState.DROPPED.value, claimed_until=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def utc_from_text(text: str) -> datetime:
    """A time given on the command line (ISO 8601; no zone: UTC), in UTC. ValueError when it is
    not one, or when its UTC time is beyond the calendar (0001-01-01T00:00+05:00)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is beyond the calendar in UTC") from None
