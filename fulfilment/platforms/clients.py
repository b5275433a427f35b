"""Shop platforms: their API clients (a Bearer token each, only its hash stored) and the orders
they place, read and cancel through the JSON API, each client seeing only its own."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, String, bindparam, func, select
from sqlalchemy.orm import Mapped, Session, joinedload, mapped_column, relationship

from fulfilment.catalogue.sites import get_region
from fulfilment.core.audit import record_change
from fulfilment.core.errors import InvalidInput, NotFound
from fulfilment.core.models import (
    Base,
    Deal,
    Leader,
    LineStatus,
    Member,
    Order,
    OrderLine,
    OrderStatus,
    PickLevel,
    PickLine,
    Product,
    Region,
    TempZone,
    Wave,
    WaveStatus,
    utcnow,
)
from fulfilment.night.plans import published_eta_select
from fulfilment.orders.intake import (
    LineRequest,
    MemberRef,
    Placement,
    cancel_order,
    place_order_or_replay,
)
from fulfilment.orders.intake import request_fingerprint as fingerprint_of
from fulfilment.waves.cycle import region_zone

TOKEN_PREFIX = "gbk_"


class ApiClient(Base):
    """A shop platform allowed to place orders in one region. Only the token's hash is kept."""

    __tablename__ = "api_client"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    region: Mapped[Region] = relationship()

    @property
    def scope(self) -> str:
        """The idempotency scope of this client's orders (and the mark of which are its own)."""
        return f"api:{self.id}"

    @property
    def actor(self) -> str:
        return f"api:{self.name}"


def hash_token(token: str) -> str:
    """SHA-256 of the token: the token is 256 random bits, so a fast hash is enough."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_api_client(
    session: Session, *, name: str, region_code: str, actor: str = "system"
) -> tuple[ApiClient, str]:
    """A new client and its Bearer token. The token is returned once and never stored."""
    name = name.strip()
    if not 0 < len(name) <= 64:
        raise InvalidInput(f"api client {name!r}", "name", "must be 1 to 64 characters")
    if session.scalar(select(ApiClient.id).where(ApiClient.name == name)) is not None:
        raise InvalidInput(f"api client {name}", "name", "an API client of that name exists")
    region = get_region(session, region_code)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    client = ApiClient(name=name, region_id=region.id, token_hash=hash_token(token))
    session.add(client)
    session.flush()
    record_change(
        session,
        actor=actor,
        action="api_client.created",
        entity="api_client",
        entity_id=client.id,
        after={"name": name, "region": region.code},
    )
    return client, token


def revoke_api_client(session: Session, *, name: str, actor: str = "system") -> ApiClient:
    """The client's token stops working at once; the client and its orders stay."""
    client = session.scalars(select(ApiClient).where(ApiClient.name == name)).first()
    if client is None:
        raise NotFound(f"API client {name!r} does not exist")
    if client.active:
        client.active = False
        session.flush()
        record_change(
            session,
            actor=actor,
            action="api_client.revoked",
            entity="api_client",
            entity_id=client.id,
            before={"active": True},
            after={"active": False},
        )
    return client


def list_api_clients(session: Session) -> list[ApiClient]:
    """Every API client, active or revoked, by name (tokens are stored hashed, never shown)."""
    return list(session.scalars(select(ApiClient).order_by(ApiClient.name)))


_CLIENT_BY_TOKEN_HASH = (
    select(ApiClient)
    .options(joinedload(ApiClient.region))
    .where(ApiClient.token_hash == bindparam("token_hash"), ApiClient.active)
)


def find_client_by_token(session: Session, token: str) -> ApiClient | None:
    """The active client holding this token, or None (one query, built once: every API
    request makes it)."""
    return session.scalars(_CLIENT_BY_TOKEN_HASH, {"token_hash": hash_token(token)}).first()


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What a platform asks for: a member's lines through a leader."""

    leader_code: str
    member: MemberRef
    lines: Sequence[LineRequest]

    def fingerprint(self, client: ApiClient) -> str:
        return fingerprint_of(
            {
                "source": "api",
                "region": client.region_id,
                "leader": self.leader_code,
                "member": [self.member.external_id, self.member.name, self.member.phone],
                "lines": [[line.sku, line.quantity] for line in self.lines],
            }
        )


MEMBER_ID_MAX = 48  # stored as "p<client id>:<id>" in a 64-character column


def member_external_id(client: ApiClient, member_id: str) -> str:
    """Member ids are the platform's own: two platforms' member 1001 are two people."""
    return f"p{client.id}:{member_id}"


def submit_order(
    session: Session,
    *,
    client: ApiClient,
    request: OrderRequest,
    idempotency_key: str,
    now: datetime | None = None,
) -> tuple[Order, Placement | None]:
    """Place the platform's order once per idempotency key; the order's time is `now`.

    Returns the order and what this call placed (None: it was placed before, a replay). The
    same key with the same request returns the first order; with another request,
    IdempotencyConflict. Requests with one key at once meet at the order's unique key (on
    PostgreSQL the later INSERT waits for the first transaction; SQLite has a single writer),
    so twenty retries at once place one order and take stock once.
    """
    now = now or utcnow()
    scope = client.scope
    fingerprint = request.fingerprint(client)
    member = MemberRef(
        member_external_id(client, request.member.external_id),
        request.member.name,
        request.member.phone,
    )
    return place_order_or_replay(
        session,
        region=client.region,
        leader_code=request.leader_code,
        member=member,
        lines=request.lines,
        placed_at=now,
        received_at=now,
        idempotency_key=idempotency_key,
        idempotency_scope=scope,
        fingerprint=fingerprint,
        source="api",
        actor=client.actor,
    )


def cancel_client_order(
    session: Session, *, client: ApiClient, order_id: int, now: datetime | None = None
) -> Order:
    """The member cancels through its platform: before the wave's deadline only. Another
    client's order is NotFound, so ids cannot be probed."""
    mine = session.scalar(
        select(Order.id).where(Order.id == order_id, Order.idempotency_scope == client.scope)
    )
    if mine is None:
        raise NotFound(f"order {order_id} not found")
    return cancel_order(session, order_id=order_id, actor=client.actor, now=now)


@dataclass(frozen=True, slots=True)
class OrderLineView:
    sku: str
    name: str
    quantity: int
    unit_price_cents: int
    status: LineStatus


@dataclass(frozen=True, slots=True)
class OrderView:
    """An order as its platform sees it: wave, pickup point and window, prices, pickup code."""

    id: int
    status: OrderStatus
    late: bool
    placed_at: datetime
    total_cents: int
    pickup_code: str
    member_id: str  # the platform's own id
    leader_code: str
    pickup_point: str
    address: str
    region_code: str
    delivery_date: date
    wave_status: WaveStatus
    cutoff_due_at: datetime
    window_opens: datetime  # in the region's zone
    window_closes: datetime
    eta: datetime | None
    lines: list[OrderLineView]

    @property
    def locked(self) -> bool:
        return self.status == OrderStatus.PLACED and self.wave_status == WaveStatus.CUT_OFF


def get_order_view(session: Session, *, client: ApiClient, order_id: int) -> OrderView:
    """One of the client's own orders, read in one query (with the published plan's ETA at its
    pickup point); any other id is NotFound."""
    rows = session.execute(
        select(
            Order.id,
            Order.status,
            Order.late,
            Order.placed_at,
            Order.total_cents,
            Order.pickup_code,
            Order.wave_id,
            Order.leader_id,
            Member.external_id,
            Leader.code,
            Leader.pickup_name,
            Leader.address,
            Leader.window_open,
            Leader.window_close,
            Wave.delivery_date,
            Wave.status.label("wave_status"),
            Wave.cutoff_due_at,
            Product.sku,
            Product.name,
            OrderLine.quantity,
            OrderLine.unit_price_cents,
            OrderLine.status.label("line_status"),
            published_eta_select(leader_id=Order.leader_id, wave_id=Order.wave_id)
            .scalar_subquery()
            .label("eta"),
        )
        .join(Wave, Wave.id == Order.wave_id)
        .join(Leader, Leader.id == Order.leader_id)
        .join(Member, Member.id == Order.member_id)
        .join(OrderLine, OrderLine.order_id == Order.id)
        .join(Product, Product.id == OrderLine.product_id)
        .where(Order.id == order_id, Order.idempotency_scope == client.scope)
        .order_by(OrderLine.id)
    ).all()
    if not rows:
        raise NotFound(f"order {order_id} not found")
    row = rows[0]
    lines = [
        OrderLineView(r.sku, r.name, r.quantity, r.unit_price_cents, r.line_status) for r in rows
    ]
    return _view(
        client,
        row,
        row,
        external_id=row.external_id,
        delivery_date=row.delivery_date,
        wave_status=row.wave_status,
        cutoff_due_at=row.cutoff_due_at,
        eta=row.eta,
        lines=lines,
    )


def placed_order_view(client: ApiClient, placed: Placement) -> OrderView:
    """The view of an order this request placed, from what placing it wrote: the same answer
    `get_order_view` reads back, without the query. Its wave is open: no plan has its ETA."""
    wave = placed.wave
    lines = [
        OrderLineView(line.sku, line.name, line.quantity, line.unit_price_cents, LineStatus.ACTIVE)
        for line in placed.lines
    ]
    return _view(
        client,
        placed.order,
        placed.leader,
        external_id=placed.member_external_id,
        delivery_date=wave.delivery_date,
        wave_status=wave.status,
        cutoff_due_at=wave.cutoff_due_at,
        eta=None,
        lines=lines,
    )


def _view(
    client: ApiClient,
    order: Any,
    leader: Any,
    *,
    external_id: str,
    delivery_date: date,
    wave_status: WaveStatus,
    cutoff_due_at: datetime,
    eta: datetime | None,
    lines: list[OrderLineView],
) -> OrderView:
    """An OrderView from the order's columns (`order`: id, status, late, placed_at, total_cents,
    pickup_code) and its point's (`leader`: code, pickup_name, address, window_open and
    window_close), whether read back or as written; the window on the delivery date, in the
    region's zone."""
    zone = region_zone(client.region)
    return OrderView(
        id=order.id,
        status=order.status,
        late=order.late,
        placed_at=order.placed_at,
        total_cents=order.total_cents,
        pickup_code=order.pickup_code,
        member_id=external_id.split(":", 1)[-1],  # the platform's own id, without "p<client>:"
        leader_code=leader.code,
        pickup_point=leader.pickup_name,
        address=leader.address,
        region_code=client.region.code,
        delivery_date=delivery_date,
        wave_status=wave_status,
        cutoff_due_at=cutoff_due_at,
        window_opens=datetime.combine(delivery_date, leader.window_open, tzinfo=zone),
        window_closes=datetime.combine(delivery_date, leader.window_close, tzinfo=zone),
        eta=eta,
        lines=lines,
    )


@dataclass(frozen=True, slots=True)
class WaveTotal:
    sku: str
    name: str
    zone: TempZone
    quantity: int


@dataclass(frozen=True, slots=True)
class WaveSummary:
    region_code: str
    delivery_date: date
    status: WaveStatus
    cutoff_due_at: datetime
    cut_off_at: datetime | None
    orders: int
    totals: list[WaveTotal]


def get_wave_summary(
    session: Session, *, client: ApiClient, region_code: str, delivery_date: date
) -> WaveSummary:
    """A wave of the client's region: its state, and its pick totals per SKU.

    Once cut off, the totals are the warehouse pick list; while open, the units sold so far.
    Another region's wave is NotFound.
    """
    region = client.region
    if region.code != region_code:
        raise NotFound(f"no wave for region {region_code} on {delivery_date.isoformat()}")
    wave = session.scalars(
        select(Wave).where(Wave.region_id == region.id, Wave.delivery_date == delivery_date)
    ).first()
    if wave is None:
        raise NotFound(f"no wave for region {region_code} on {delivery_date.isoformat()}")
    if wave.status == WaveStatus.CUT_OFF:
        rows = session.execute(
            select(Product.sku, Product.name, Product.zone, func.sum(PickLine.quantity))
            .join(Product, Product.id == PickLine.product_id)
            .where(PickLine.wave_id == wave.id, PickLine.level == PickLevel.WAREHOUSE)
            .group_by(Product.sku, Product.name, Product.zone)
            .order_by(Product.sku)
        ).all()
    else:
        rows = session.execute(
            select(Product.sku, Product.name, Product.zone, Deal.sold_qty)
            .join(Product, Product.id == Deal.product_id)
            .where(
                Deal.region_id == region.id,
                Deal.delivery_date == delivery_date,
                Deal.sold_qty > 0,
            )
            .order_by(Product.sku)
        ).all()
    orders = session.scalar(
        select(func.count())
        .select_from(Order)
        .where(Order.wave_id == wave.id, Order.status == OrderStatus.PLACED)
    )
    return WaveSummary(
        region_code=region.code,
        delivery_date=wave.delivery_date,
        status=wave.status,
        cutoff_due_at=wave.cutoff_due_at,
        cut_off_at=wave.cut_off_at,
        orders=orders or 0,
        totals=[WaveTotal(sku, name, zone, int(qty)) for sku, name, zone, qty in rows],
    )
