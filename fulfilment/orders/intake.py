"""Order intake: placing and cancelling orders, choosing their wave, and never overselling."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Row,
    Table,
    and_,
    bindparam,
    column,
    exists,
    insert,
    or_,
    select,
    table,
    union_all,
    update,
)
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from fulfilment.core.audit import insert_change, record_change
from fulfilment.core.db import is_postgres
from fulfilment.core.errors import (
    AlreadyCancelled,
    CutoffPassed,
    IdempotencyConflict,
    InvalidInput,
    NotFound,
    SoldOut,
    WaveClosed,
)
from fulfilment.core.models import (
    Deal,
    DealStatus,
    Leader,
    LineStatus,
    Member,
    Order,
    OrderLine,
    OrderStatus,
    PriceTier,
    Product,
    Region,
    Wave,
    WaveStatus,
    tier_price,
    utcnow,
)
from fulfilment.events.models import EventType
from fulfilment.events.outbox import Event, emit, iso
from fulfilment.waves.cycle import delivery_date_for, ensure_wave, shared_wave_lock, wave_lock_key
from fulfilment.waves.deadlines import accepts_orders_at

MAX_QUANTITY_PER_LINE = 10_000
PICKUP_CODE_DIGITS = 8
# A member's `external_id` says where the id comes from: "p<client id>:<id>" for an API client,
# "csv:<region code>:<id>" for a region's CSV imports, so that two sources' member 1001 are two
# people. A raw id that already starts like one of these is refused: it could reach another
# source's member.
RESERVED_MEMBER_ID = re.compile(r"^(p[0-9]+|csv):", re.IGNORECASE)

# The intake path's statements, built once: building a statement's expression tree and its cache
# key on every call costs more than executing it on a warm connection.
_DEALS = cast(Table, Deal.__table__)
_ORDERS = cast(Table, Order.__table__)
_LINES = cast(Table, OrderLine.__table__)
_MEMBERS = cast(Table, Member.__table__)
# The leader with what the order's answer shows of its pickup point.
_LEADER_BY_CODE = select(
    Leader.id,
    Leader.region_id,
    Leader.active,
    Leader.code,
    Leader.pickup_name,
    Leader.address,
    Leader.window_open,
    Leader.window_close,
).where(Leader.code == bindparam("code"))
# An order of the key already placed, read with the leader: a new order costs no query of its
# own for it (a replay reads the order after, to check its fingerprint).
_KEYS_ORDER = (
    select(_ORDERS.c.id)
    .where(
        _ORDERS.c.idempotency_scope == bindparam("scope"),
        _ORDERS.c.idempotency_key == bindparam("key"),
    )
    .scalar_subquery()
    .label("replay_id")
)
_LEADER_AND_REPLAY = {
    # PostgreSQL takes the wave's shared lock with the leader's row: one round trip less. The
    # row is read from the snapshot before the lock (a leader row, unchanged by a cutoff); the
    # wave is read after it, in the next statement.
    True: _LEADER_BY_CODE.add_columns(_KEYS_ORDER, shared_wave_lock(bindparam("wave_lock_key"))),
    False: _LEADER_BY_CODE.add_columns(_KEYS_ORDER),
}
_MEMBER_BY_ID = select(_MEMBERS.c.id).where(_MEMBERS.c.external_id == bindparam("external_id"))
_INSERT_LINES = insert(_LINES)
_ORDER_BY_KEY = select(Order).where(
    Order.idempotency_scope == bindparam("scope"), Order.idempotency_key == bindparam("key")
)
_OFFERS = (
    select(
        Product.sku,
        Product.id,
        Product.name,
        Deal.id,
        Deal.status,
        Deal.base_price_cents,
        PriceTier.min_qty,
        PriceTier.price_cents,
    )
    .select_from(Product)
    .outerjoin(
        Deal,
        and_(
            Deal.product_id == Product.id,
            Deal.region_id == bindparam("region_id"),
            Deal.delivery_date == bindparam("delivery_date"),
        ),
    )
    .outerjoin(PriceTier, PriceTier.deal_id == Deal.id)
    .where(Product.sku.in_(bindparam("skus", expanding=True)))
)
_TAKE_STOCK = (
    update(_DEALS)
    .where(
        _DEALS.c.id == bindparam("deal_id"),
        _DEALS.c.status == DealStatus.OPEN.value,
        (_DEALS.c.stock_cap.is_(None))
        | (_DEALS.c.sold_qty + bindparam("qty") <= _DEALS.c.stock_cap),
    )
    .values(sold_qty=_DEALS.c.sold_qty + bindparam("qty"))
    .returning(_DEALS.c.sold_qty)
)
# The pickup point's codes an order's new code must not repeat: every code of the wave (the
# unique constraint), and the codes of the point's live orders in any wave (placed, not yet
# collected), since a code is looked up across the point's waves. "Collected" is a pickup row;
# the pickups table is read by name here (points sit above orders).
_PICKUPS = table("pickup", column("order_id"))
_LIVE = and_(
    _ORDERS.c.status == OrderStatus.PLACED.value,
    ~exists().where(_PICKUPS.c.order_id == _ORDERS.c.id),
)
_CODE_TAKEN = (
    select(_ORDERS.c.id)
    .where(
        _ORDERS.c.leader_id == bindparam("leader_id"),
        _ORDERS.c.pickup_code == bindparam("pickup_code"),
        or_(_ORDERS.c.wave_id == bindparam("wave_id"), _LIVE),
    )
    .limit(1)
)
_SET_TOTAL = (
    update(_ORDERS)
    .where(_ORDERS.c.id == bindparam("order_id"))
    .values(total_cents=bindparam("total_cents"))
)


@dataclass(frozen=True, slots=True)
class LineRequest:
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class MemberRef:
    """Who is ordering: the platform's member id, with name and phone for a first order."""

    external_id: str
    name: str = ""
    phone: str = ""


def request_fingerprint(request: object) -> str:
    """A SHA-256 of the request in canonical JSON: equal requests, equal fingerprints."""
    canonical = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def new_pickup_code() -> str:
    """Eight random digits from the OS's CSPRNG: not guessable from other codes."""
    return f"{secrets.randbelow(10**PICKUP_CODE_DIGITS):0{PICKUP_CODE_DIGITS}d}"


def codes_in_use(session: Session, *, leader_ids: Iterable[int], wave_ids: Iterable[int]) -> set:
    """(leader id, code) of every code a new order at these points may not take: the codes of
    the waves named, and of the points' live orders (placed, not collected) in any wave."""
    leaders, waves = list(leader_ids), list(wave_ids)
    if not leaders:
        return set()
    rows = session.execute(
        select(_ORDERS.c.leader_id, _ORDERS.c.pickup_code).where(
            _ORDERS.c.leader_id.in_(leaders), or_(_ORDERS.c.wave_id.in_(waves), _LIVE)
        )
    )
    return {(leader_id, code) for leader_id, code in rows}


def check_raw_member_id(record: str, field: str, raw: str, *, line: int | None = None) -> None:
    """Refuse a platform's member id that starts like a namespaced one ("p1:", "csv:")."""
    if RESERVED_MEMBER_ID.match(raw):
        raise InvalidInput(
            record,
            field,
            "a member id may not start with a source prefix (p<number>: or csv:)",
            line=line,
        )


def csv_member_id(region: Region, raw: str) -> str:
    """The stored id of a member named in a region's CSV imports."""
    return f"csv:{region.code}:{raw}"


def _open_wave_for(
    session: Session, region: Region, placed_at: datetime, *, first_locked: bool = False
) -> tuple[Wave, bool]:
    """The wave an order lands in, and whether it is late (its own wave was already cut off).
    `first_locked`: the caller holds the shared lock of the first wave tried."""
    delivery = delivery_date_for(region, placed_at)
    late = False
    for days_later in range(0, 60):
        wave = ensure_wave(
            session,
            region,
            delivery + timedelta(days=days_later),
            lock="share",
            locked=first_locked and days_later == 0,
        )
        if accepts_orders_at(wave, placed_at):  # the wave's own deadline decides (deadlines.py)
            return wave, late
        late = late or wave.status == WaveStatus.CUT_OFF
    raise WaveClosed(f"no open wave for region {region.code} within 60 days of {delivery}")


def _check_member_ref(ref: MemberRef, record: str) -> None:
    if not ref.external_id.strip():
        raise InvalidInput(record, "member", "member id is empty")


def _ensure_member_id(session: Session, *, region_id: int, leader_id: int, ref: MemberRef) -> int:
    """The member's id, the member created on its first order (a known member keeps its row):
    INSERT … ON CONFLICT DO NOTHING RETURNING, and a SELECT when the member was known."""
    values = {
        "region_id": region_id,
        "leader_id": leader_id,
        "external_id": ref.external_id,
        "name": ref.name or ref.external_id,
        "phone": ref.phone,
    }
    member_id = session.execute(_dialect_statements(session).new_member, values).scalar()
    if member_id is None:
        member_id = session.execute(_MEMBER_BY_ID, {"external_id": ref.external_id}).scalar_one()
    return member_id


def _merge_lines(record: str, lines: Sequence[LineRequest]) -> dict[str, int]:
    if not lines:
        raise InvalidInput(record, "lines", "an order needs at least one line")
    merged: dict[str, int] = {}
    for n, line in enumerate(lines, 1):
        if not isinstance(line.quantity, int) or isinstance(line.quantity, bool):
            raise InvalidInput(
                f"{record} line {n}",
                "quantity",
                f"{line.quantity!r} is not a whole number",
                line=n,
                value=line.sku,
            )
        if not 0 < line.quantity <= MAX_QUANTITY_PER_LINE:
            raise InvalidInput(
                f"{record} line {n}",
                "quantity",
                f"{line.quantity} is not between 1 and {MAX_QUANTITY_PER_LINE}",
                limit=MAX_QUANTITY_PER_LINE,
                line=n,
                value=line.sku,
            )
        merged[line.sku] = merged.get(line.sku, 0) + line.quantity
    return merged


def find_order_by_key(session: Session, key: str, *, scope: str = "") -> Order | None:
    return session.scalars(_ORDER_BY_KEY, {"scope": scope, "key": key}).first()


def find_replay(
    session: Session, *, key: str, scope: str = "", fingerprint: str | None = None
) -> Order | None:
    """The order already placed under this key in this scope, or None.

    The same key with another request (another fingerprint) raises IdempotencyConflict: a
    retry must never silently get a different order. An order stored without a fingerprint
    (placed before fingerprints were kept) is taken as the replay.
    """
    existing = find_order_by_key(session, key, scope=scope)
    if existing is None:
        return None
    stored = existing.request_fingerprint
    if fingerprint is not None and stored is not None and stored != fingerprint:
        raise IdempotencyConflict(key, existing.id)
    return existing


def place_order(
    session: Session,
    *,
    region: Region,
    leader_code: str,
    member: MemberRef,
    lines: Sequence[LineRequest],
    placed_at: datetime,
    idempotency_key: str | None = None,
    idempotency_scope: str = "",
    fingerprint: str | None = None,
    source: str = "api",
    actor: str = "system",
    received_at: datetime | None = None,
) -> Order:
    """Place one order into the wave its `placed_at` falls in (or the next open one, marked late).

    Idempotent on `idempotency_key` within `idempotency_scope`: the same key with the same
    `fingerprint` returns the order already placed; with another, IdempotencyConflict. Stock caps
    are taken with one conditional UPDATE per deal, in deal-id order, so that concurrent orders
    for the last units succeed for exactly the units that exist; a shortfall raises SoldOut and
    the caller's rollback leaves nothing behind.
    """
    order, _placed = place_order_or_replay(
        session,
        region=region,
        leader_code=leader_code,
        member=member,
        lines=lines,
        placed_at=placed_at,
        idempotency_key=idempotency_key,
        idempotency_scope=idempotency_scope,
        fingerprint=fingerprint,
        source=source,
        actor=actor,
        received_at=received_at,
    )
    return order


@dataclass(frozen=True, slots=True)
class PlacedLine:
    """A line as it was written: what the order's answer shows of it."""

    sku: str
    name: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True, slots=True)
class Placement:
    """What placing an order wrote and read, as its answer needs it: the caller answers without
    reading the order back. (A new order's wave is open, so no published plan has its ETA.)"""

    order: Order
    leader: Row  # code, pickup_name, address, window_open, window_close
    wave: Wave
    member_external_id: str
    lines: list[PlacedLine]  # in the order they were written


@dataclass(frozen=True, slots=True)
class _Offer:
    """A wanted SKU as the order's wave offers it (deal_id None: not offered that day)."""

    product_id: int
    name: str
    deal_id: int | None
    deal_status: DealStatus | None
    base_price_cents: int
    tiers: list[tuple[int, int]]  # (min_qty, price_cents)


def _read_offers(
    session: Session, *, region_id: int, delivery_date: date | None, skus: Iterable[str]
) -> dict[str, _Offer]:
    """The wanted SKUs that exist, each with its deal and tiers for the delivery date, in one
    query (delivery_date None: the products alone, no deal matches a NULL date)."""
    rows = session.execute(
        _OFFERS, {"region_id": region_id, "delivery_date": delivery_date, "skus": list(skus)}
    ).all()
    offers: dict[str, _Offer] = {}
    for sku, product_id, name, deal_id, status, base, min_qty, tier_cents in rows:
        offer = offers.get(sku)
        if offer is None:
            offer = offers[sku] = _Offer(product_id, name, deal_id, status, base or 0, [])
        if min_qty is not None:
            offer.tiers.append((min_qty, tier_cents))
    return offers


def _line_of(lines: Sequence[LineRequest], sku: str) -> int | None:
    """The 1-based number of the order's first line for a SKU (what InvalidInput.line holds)."""
    return next((n for n, line in enumerate(lines, 1) if line.sku == sku), None)


def _check_skus(
    record: str, wanted: dict[str, int], offers: dict[str, _Offer], lines: Sequence[LineRequest]
) -> None:
    for sku in wanted:
        if sku not in offers:
            raise InvalidInput(
                record, "sku", f"unknown SKU {sku!r}", line=_line_of(lines, sku), value=sku
            )


def place_order_or_replay(
    session: Session,
    *,
    region: Region,
    leader_code: str,
    member: MemberRef,
    lines: Sequence[LineRequest],
    placed_at: datetime,
    idempotency_key: str | None = None,
    idempotency_scope: str = "",
    fingerprint: str | None = None,
    source: str = "api",
    actor: str = "system",
    received_at: datetime | None = None,
) -> tuple[Order, Placement | None]:
    """`place_order`, and what this call placed (None: the key's order stands, a replay).

    A few statements, each built once: the replay check, the leader, the wave, the SKUs with
    their deals and tiers in one query, the member, the order row, one conditional UPDATE per
    deal, the lines, the total, the audit entry, the event.

    Two requests with one key at once: the second waits at the order's INSERT for the first's
    transaction (the key's unique index), then finds its order there and answers with it. No
    stock is taken before the order row is in, so the loser takes none.
    """
    record = f"order {idempotency_key}" if idempotency_key else "order"
    if placed_at.tzinfo is None:
        raise InvalidInput(record, "placed_at", "a time without a time zone")
    if idempotency_key is not None and not 0 < len(idempotency_key) <= 128:
        raise InvalidInput(record, "idempotency_key", "must be 1 to 128 characters")
    postgres = is_postgres(session)
    params = {"code": leader_code, "scope": idempotency_scope, "key": idempotency_key}
    if postgres:
        params["wave_lock_key"] = wave_lock_key(region, delivery_date_for(region, placed_at))
    leader = session.execute(_LEADER_AND_REPLAY[postgres], params).first()
    if idempotency_key is not None and (leader is None or leader.replay_id is not None):
        existing = find_replay(
            session, key=idempotency_key, scope=idempotency_scope, fingerprint=fingerprint
        )
        if existing is not None:
            return existing, None
    wanted = _merge_lines(record, lines)
    if leader is None or leader.region_id != region.id or not leader.active:
        raise InvalidInput(
            record, "leader", f"no active leader {leader_code!r} in region {region.code}"
        )
    try:
        # The shared lock of the order's own wave came with the leader's row (PostgreSQL).
        wave, late = _open_wave_for(session, region, placed_at, first_locked=postgres)
    except WaveClosed:  # the input's own faults are named first, as they always were
        _check_skus(
            record,
            wanted,
            _read_offers(session, region_id=region.id, delivery_date=None, skus=wanted),
            lines,
        )
        _check_member_ref(member, record)
        raise
    offers = _read_offers(
        session, region_id=region.id, delivery_date=wave.delivery_date, skus=wanted
    )
    _check_skus(record, wanted, offers, lines)
    _check_member_ref(member, record)
    member_id = _ensure_member_id(session, region_id=region.id, leader_id=leader.id, ref=member)
    for sku, offer in offers.items():
        if offer.deal_id is None or offer.deal_status != DealStatus.OPEN:
            raise InvalidInput(
                record,
                "sku",
                f"{sku} is not on offer in {region.code} for delivery "
                f"on {wave.delivery_date.isoformat()}",
                line=_line_of(lines, sku),
                value=sku,
            )

    row = {
        "region_id": region.id,
        "leader_id": leader.id,
        "member_id": member_id,
        "wave_id": wave.id,
        "placed_at": placed_at,
        "received_at": received_at or utcnow(),
        "status": OrderStatus.PLACED,
        "late": late,
        "idempotency_key": idempotency_key,
        "idempotency_scope": idempotency_scope,
        "request_fingerprint": fingerprint,
        "source": source,
        "total_cents": 0,
    }
    inserted = _insert_order(session, row)
    if isinstance(inserted, Order):  # lost an idempotency race: the other request's order stands
        return inserted, None
    row["id"], row["pickup_code"] = inserted

    total = 0
    order_lines = []
    placed: list[PlacedLine] = []
    for sku, offer in sorted(offers.items(), key=lambda item: cast(int, item[1].deal_id)):
        deal_id = cast(int, offer.deal_id)
        qty = wanted[sku]
        sold_before = _take_stock(session, deal_id, qty)
        if sold_before is None:
            raise SoldOut(sku, qty, _units_left(session, deal_id))
        price = tier_price(offer.base_price_cents, offer.tiers, sold_before)
        order_lines.append(
            {
                "order_id": row["id"],
                "deal_id": deal_id,
                "product_id": offer.product_id,
                "quantity": qty,
                "unit_price_cents": price,
                "status": LineStatus.ACTIVE,
            }
        )
        placed.append(PlacedLine(sku, offer.name, qty, price))
        total += price * qty
    _write_lines_and_total(session, row["id"], order_lines, total)
    row["total_cents"] = total
    insert_change(
        session,
        actor=actor,
        action="order.placed",
        entity="order",
        entity_id=row["id"],
        after={
            "wave": wave.delivery_date.isoformat(),
            "late": late,
            "lines": wanted,
            "total_cents": total,
            "source": source,
        },
    )
    _emit_accepted(session, row, wave, leader_code, placed, late=late)
    # The row as written, in the session as if loaded: its lines, member and wave load on use.
    order = Order(**row)
    make_transient_to_detached(order)
    session.add(order)
    return order, Placement(order, leader, wave, member.external_id, placed)


_LINE_COLUMNS = ("deal_id", "product_id", "quantity", "unit_price_cents", "status")
_LINES_WITH_TOTAL: dict[int, Any] = {}


def _write_lines_and_total(session: Session, order_id: int, lines: list[dict], total: int) -> None:
    """The order's lines and its total. On PostgreSQL one statement (the total's UPDATE as a
    CTE of the lines' INSERT, built once per number of lines); on SQLite two."""
    if not is_postgres(session):
        session.execute(_INSERT_LINES, lines)
        session.execute(_SET_TOTAL, {"order_id": order_id, "total_cents": total})
        return
    statement = _LINES_WITH_TOTAL.get(len(lines))
    if statement is None:  # INSERT … SELECT … UNION ALL SELECT …: a multi-row VALUES is not cached
        rows = [
            select(
                bindparam("order_id", type_=_LINES.c.order_id.type),
                *(bindparam(f"{c}_{n}", type_=_LINES.c[c].type) for c in _LINE_COLUMNS),
            )
            for n in range(len(lines))
        ]
        chosen = rows[0] if len(rows) == 1 else union_all(*rows)
        statement = _LINES_WITH_TOTAL[len(lines)] = (
            insert(_LINES)
            .from_select(["order_id", *_LINE_COLUMNS], chosen)
            .add_cte(_SET_TOTAL.cte("order_total"))
        )
    params = {"order_id": order_id, "total_cents": total}
    for n, line in enumerate(lines):
        params.update({f"{c}_{n}": line[c] for c in _LINE_COLUMNS})
    session.execute(statement, params)


def _emit_accepted(
    session: Session,
    row: dict,
    wave: Wave,
    leader_code: str,
    lines: list[PlacedLine],
    *,
    late: bool,
) -> None:
    """order.accepted (and order.late when its own wave was cut off) for the order's platform,
    in the order's transaction. No pickup code: the platform has it from the answer."""
    data = {
        "order_id": row["id"],
        "idempotency_key": row["idempotency_key"],
        "leader": leader_code,
        "delivery_date": wave.delivery_date.isoformat(),
        "late": late,
        "placed_at": iso(row["placed_at"]),
        "lines": [
            {"sku": line.sku, "quantity": line.quantity, "unit_price_cents": line.unit_price_cents}
            for line in sorted(lines, key=lambda line: line.sku)
        ],
        "total_cents": row["total_cents"],
    }
    scope, now = row["idempotency_scope"], row["received_at"]
    events = [Event(EventType.ORDER_ACCEPTED, scope, row["id"], data)]
    if late:
        moved = {k: data[k] for k in ("order_id", "idempotency_key", "leader", "delivery_date")}
        events.append(Event(EventType.ORDER_LATE, scope, row["id"], moved))
    emit(session, events, now=now)


def _insert_order(session: Session, row: dict) -> tuple[int, str] | Order:
    """Insert the order row with a pickup code free at its point; give way on a key race.

    The code is drawn until it is used neither in the order's wave nor by a live order of the
    point in any wave (a member's code finds one bag), read in this transaction. Two orders at
    one point drawing the same code at the same instant in different waves are not excluded
    by a constraint: "live" depends on the pickups table, which no index on orders can express
    portably (we chose check-and-draw-again over a trigger); the chance is one in 10^8 per pair
    of concurrent orders at one point. Within one wave the unique constraint still decides: one
    INSERT … ON CONFLICT DO NOTHING RETURNING per attempt (no savepoint needed) draws again.
    Returns the new row's id and pickup code, or the order another request placed under the
    same key."""
    key, scope = row["idempotency_key"], row["idempotency_scope"]
    # INSERT … SELECT … WHERE the code is free … ON CONFLICT DO NOTHING RETURNING id: the check
    # and the insert in one round trip.
    new_order = _dialect_statements(session).new_order
    for _attempt in range(5):
        code = new_pickup_code()
        order_id = session.execute(new_order, {**row, "pickup_code": code}).scalar()
        if order_id is not None:
            return order_id, code
        winner = (
            find_replay(session, key=key, scope=scope, fingerprint=row["request_fingerprint"])
            if key
            else None
        )
        if winner is not None:
            return winner
    raise RuntimeError("could not draw a free pickup code in 5 attempts")  # pragma: no cover


# The order row's columns as `place_order_or_replay` fills them, and the pickup code.
_ORDER_COLUMNS = (
    "region_id",
    "leader_id",
    "member_id",
    "wave_id",
    "placed_at",
    "received_at",
    "status",
    "late",
    "idempotency_key",
    "idempotency_scope",
    "request_fingerprint",
    "source",
    "total_cents",
    "pickup_code",
)


@dataclass(frozen=True, slots=True)
class _Statements:
    """The intake's INSERTs with ON CONFLICT DO NOTHING, in one database's dialect."""

    new_member: Any
    new_order: Any


_STATEMENTS: dict[str, _Statements] = {}


def _dialect_statements(session: Session) -> _Statements:
    name = session.get_bind().dialect.name
    built = _STATEMENTS.get(name)
    if built is None:
        built = _STATEMENTS[name] = _build_statements(name)
    return built


def _build_statements(dialect_name: str) -> _Statements:
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if dialect_name == "postgresql" else sqlite
    new_member = (
        dialect.insert(_MEMBERS)
        .on_conflict_do_nothing(index_elements=["external_id"])
        .returning(_MEMBERS.c.id)
    )
    chosen = select(
        *(bindparam(name, type_=_ORDERS.c[name].type) for name in _ORDER_COLUMNS)
    ).where(~exists(_CODE_TAKEN))
    new_order = (
        dialect.insert(_ORDERS)
        .from_select(list(_ORDER_COLUMNS), chosen)
        .on_conflict_do_nothing()
        .returning(_ORDERS.c.id)
    )
    return _Statements(new_member, new_order)


def _take_stock(session: Session, deal_id: int, qty: int) -> int | None:
    """Add qty to the deal's sold units if the cap allows. Returns the units sold before, or None."""
    after = session.execute(_TAKE_STOCK, {"deal_id": deal_id, "qty": qty}).scalar()
    if after is None:
        return None
    deal = session.identity_map.get(session.identity_key(Deal, deal_id))
    if deal is not None:  # keep a Deal the caller has loaded in step with the row
        set_committed_value(deal, "sold_qty", after)
    return after - qty


def _units_left(session: Session, deal_id: int) -> int | None:
    """What a SoldOut reports as left: None for a deal without a cap."""
    cap, sold = session.execute(
        select(Deal.stock_cap, Deal.sold_qty).where(Deal.id == deal_id)
    ).one()
    return None if cap is None else max(cap - sold, 0)


def cancel_order(
    session: Session, *, order_id: int, actor: str = "system", now: datetime | None = None
) -> Order:
    """A member cancels before the cutoff: the order and its lines are cancelled, stock goes back.

    Refused with CutoffPassed from the wave's deadline on (`cutoff_due_at`), even when the cutoff
    job has not run yet; an order already cancelled raises AlreadyCancelled.
    """
    now = now or utcnow()
    order = session.get(Order, order_id)
    if order is None:
        raise NotFound(f"order {order_id} does not exist")
    query = select(Wave).where(Wave.id == order.wave_id)
    if is_postgres(session):  # serialise with the cutoff, as intake does
        query = query.with_for_update(read=True)
    wave = session.scalars(query.execution_options(populate_existing=True)).one()
    # The order's row lock: two cancels at once return its stock once.
    order_query = select(Order).where(Order.id == order_id)
    if is_postgres(session):
        order_query = order_query.with_for_update()
    order = session.scalars(order_query.execution_options(populate_existing=True)).one()
    if order.status == OrderStatus.CANCELLED:
        raise AlreadyCancelled(f"order {order_id} is already cancelled")
    if wave.status != WaveStatus.OPEN or now >= wave.cutoff_due_at:
        raise CutoffPassed(
            f"order {order_id} can no longer be cancelled: its wave for delivery on "
            f"{wave.delivery_date.isoformat()} was due to cut off at "
            f"{wave.cutoff_due_at.isoformat()}"
        )
    if order.status != OrderStatus.PLACED:
        raise WaveClosed(f"order {order_id} is {order.status.value}; it cannot be cancelled")
    table = cast(Table, Deal.__table__)
    for line in sorted(order.lines, key=lambda ln: ln.deal_id):
        if line.status != LineStatus.ACTIVE:
            continue
        left = session.execute(
            update(table)
            .where(table.c.id == line.deal_id)
            .values(sold_qty=table.c.sold_qty - line.quantity)
            .returning(table.c.sold_qty)
        ).scalar_one()
        deal = session.identity_map.get(session.identity_key(Deal, line.deal_id))
        if deal is not None:
            set_committed_value(deal, "sold_qty", left)
        line.status = LineStatus.CANCELLED
    order.status = OrderStatus.CANCELLED
    session.flush()
    record_change(
        session,
        actor=actor,
        action="order.cancelled",
        entity="order",
        entity_id=order.id,
        before={"status": OrderStatus.PLACED.value},
        after={"status": order.status.value},
    )
    data = {
        "order_id": order.id,
        "idempotency_key": order.idempotency_key,
        "reason": "member",
        "cancelled_at": iso(now),
    }
    emit(
        session,
        [Event(EventType.ORDER_CANCELLED, order.idempotency_scope, order.id, data)],
        now=now,
    )
    return order
