"""Arrival confirmation (到货确认): what a pickup point counted, its discrepancies and photos, and
the short units it assigned to member lines, each becoming a refund owed (reason `shortage`).

A point confirms a wave's delivery once: confirming again changes nothing. The counts are never
overwritten; the audit log holds the confirmation with who and when.

Short units go only on bags still waiting at the point: an order already handed over is never
charged a shortage. Units short beyond what the waiting bags hold are a loss at the point, with
no member refund (`point_losses`; the audit entry records them as `lost_at_point`).
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from fulfilment.core.audit import record_change
from fulfilment.core.errors import FulfilmentError, InvalidInput, NotFound
from fulfilment.core.models import (
    Base,
    Deal,
    Leader,
    LineStatus,
    Order,
    OrderLine,
    OrderStatus,
    Product,
    Refund,
    RefundReason,
    RefundState,
    Wave,
    WaveStatus,
    _enum,
    utcnow,
)
from fulfilment.events.models import EventType
from fulfilment.events.outbox import API_SCOPE_PREFIX, Event, emit, has_listeners, iso

MAX_PHOTO_BYTES = 5 * 1024 * 1024
# A 48-megapixel phone photo fits; anything larger is refused from its header, before decoding
# (a 48 KB PNG can claim 20000 × 20000 pixels: 400 MB once decoded).
MAX_PHOTO_PIXELS = 50_000_000
PHOTO_FORMATS = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
}


class DiscrepancyKind(StrEnum):
    SHORTAGE = "shortage"  # fewer units arrived than were sent
    DAMAGED = "damaged"  # arrived, but not fit to hand over
    WRONG_ITEM = "wrong_item"  # something else arrived
    SURPLUS = "surplus"  # more arrived than expected
    OTHER = "other"


class Photo(Base):
    """A photo of a discrepancy, stored under the instance folder with a random name."""

    __tablename__ = "photo"

    id: Mapped[int] = mapped_column(primary_key=True)
    leader_id: Mapped[int] = mapped_column(ForeignKey("leader.id"), index=True)
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)
    content_type: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int]
    uploaded_by: Mapped[int] = mapped_column(ForeignKey("user.id"))
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)


class Arrival(Base):
    """A point's confirmation that a wave's goods arrived: one per (wave, point), ever."""

    __tablename__ = "arrival"
    __table_args__ = (UniqueConstraint("wave_id", "leader_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    wave_id: Mapped[int] = mapped_column(ForeignKey("wave.id"))
    leader_id: Mapped[int] = mapped_column(ForeignKey("leader.id"), index=True)
    confirmed_at: Mapped[datetime]
    confirmed_by: Mapped[int] = mapped_column(ForeignKey("user.id"))

    lines: Mapped[list[ArrivalLine]] = relationship(order_by="ArrivalLine.id")
    discrepancies: Mapped[list[Discrepancy]] = relationship(order_by="Discrepancy.id")


class ArrivalLine(Base):
    """One SKU of a confirmation: the units expected and the units counted."""

    __tablename__ = "arrival_line"
    __table_args__ = (UniqueConstraint("arrival_id", "product_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    arrival_id: Mapped[int] = mapped_column(ForeignKey("arrival.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"))
    expected_qty: Mapped[int]
    counted_qty: Mapped[int]


class Discrepancy(Base):
    """A difference a point reported for one SKU: its kind, a note and an optional photo."""

    __tablename__ = "discrepancy"

    id: Mapped[int] = mapped_column(primary_key=True)
    arrival_id: Mapped[int] = mapped_column(ForeignKey("arrival.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"))
    kind: Mapped[DiscrepancyKind] = mapped_column(_enum(DiscrepancyKind))
    quantity: Mapped[int]  # units short (or over, for a surplus)
    note: Mapped[str] = mapped_column(String(500), default="")
    photo_id: Mapped[int | None] = mapped_column(ForeignKey("photo.id"))


class ArrivalCorrection(Base):
    """A later count of one SKU after the confirmation (a carton found broken at noon): a new
    row, never an overwrite of the confirmed count; the latest one is the SKU's count."""

    __tablename__ = "arrival_correction"

    id: Mapped[int] = mapped_column(primary_key=True)
    arrival_id: Mapped[int] = mapped_column(ForeignKey("arrival.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"))
    counted_qty: Mapped[int]
    note: Mapped[str] = mapped_column(String(500), default="")
    corrected_at: Mapped[datetime]
    corrected_by: Mapped[int] = mapped_column(ForeignKey("user.id"))


class Shortage(Base):
    """Short units of a SKU put on one member's order line, with the refund owed for them."""

    __tablename__ = "shortage"

    id: Mapped[int] = mapped_column(primary_key=True)
    arrival_id: Mapped[int] = mapped_column(ForeignKey("arrival.id"), index=True)
    correction_id: Mapped[int | None] = mapped_column(ForeignKey("arrival_correction.id"))
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_line.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    refund_id: Mapped[int] = mapped_column(ForeignKey("refund.id"))


@dataclass(frozen=True, slots=True)
class DiscrepancyReport:
    product_id: int
    kind: DiscrepancyKind
    note: str = ""
    photo_id: int | None = None


@dataclass(frozen=True, slots=True)
class CandidateLine:
    """A member line that can carry short units of a SKU, latest-placed first."""

    order_line_id: int
    order_id: int
    member_id: int
    quantity: int
    placed_at: datetime


class PhotoProblem(StrEnum):
    TOO_LARGE = "too_large"  # more bytes than MAX_PHOTO_BYTES
    TOO_MANY_PIXELS = "too_many_pixels"  # more pixels than MAX_PHOTO_PIXELS
    NOT_AN_IMAGE = "not_an_image"  # not a JPEG, PNG or WebP image Pillow can read


class PhotoRejected(InvalidInput):
    """The upload is not a JPEG, PNG or WebP image within the limits. `problem` says which rule
    it broke and `limit` the limit (bytes or pixels), for a view to word in its own language."""

    def __init__(
        self, record: str, problem: PhotoProblem, message: str, *, limit: int | None = None
    ) -> None:
        self.problem = problem
        super().__init__(record, "photo", message, limit=limit)


class ArrivalNotOpen(FulfilmentError):
    """The wave is not cut off yet: there is nothing to confirm."""

    http_status = 409


def find_arrival(session: Session, *, wave: Wave, leader: Leader) -> Arrival | None:
    return session.scalar(
        select(Arrival).where(Arrival.wave_id == wave.id, Arrival.leader_id == leader.id)
    )


def list_candidate_lines(
    session: Session, *, wave: Wave, leader: Leader, product_id: int
) -> list[CandidateLine]:
    """The point's active lines of a SKU in the wave on orders not yet collected, latest-placed
    order first (the default): the lines a shortage may go on."""
    from .point import Pickup

    rows = session.execute(
        select(OrderLine.id, Order.id, Order.member_id, OrderLine.quantity, Order.placed_at)
        .join(Order, Order.id == OrderLine.order_id)
        .where(
            Order.wave_id == wave.id,
            Order.leader_id == leader.id,
            Order.status == OrderStatus.PLACED,
            OrderLine.status == LineStatus.ACTIVE,
            OrderLine.product_id == product_id,
            ~exists().where(Pickup.order_id == Order.id),
        )
        .order_by(Order.placed_at.desc(), Order.id.desc())
    )
    return [CandidateLine(*r) for r in rows]


def default_assignment(candidates: Sequence[CandidateLine], short: int) -> dict[int, int]:
    """Short units on the latest-placed lines first: {order_line_id: units}."""
    out: dict[int, int] = {}
    for line in candidates:
        if short <= 0:
            break
        take = min(short, line.quantity)
        out[line.order_line_id] = take
        short -= take
    return out


def save_photo(
    session: Session, *, leader: Leader, user_id: int, data: bytes, folder: Path
) -> Photo:
    """Check an upload by its content (Pillow) and store it under `folder` with a random name,
    re-encoded without its metadata: no EXIF (a phone's GPS position, its make), no XMP, no
    text chunks; only the colour profile stays, and the EXIF orientation is applied to the
    pixels first so the photo stays upright. Refused (PhotoRejected) above MAX_PHOTO_BYTES, above
    MAX_PHOTO_PIXELS (read from the header, before anything is decoded), or if not a JPEG, PNG or
    WebP image.

    Not keyed: each call stores a new photo (file and row). A photo belongs to the confirmation
    sent with it, so a caller whose confirmation loses the race (`confirm_arrival` returns
    created False) rolls back and deletes the file, as the portal does.
    """
    from PIL import Image, UnidentifiedImageError

    record = f"photo for point {leader.code}"
    if len(data) > MAX_PHOTO_BYTES:
        raise PhotoRejected(
            record, PhotoProblem.TOO_LARGE, "larger than 5 MB", limit=MAX_PHOTO_BYTES
        )
    not_an_image = PhotoRejected(record, PhotoProblem.NOT_AN_IMAGE, "not a JPEG, PNG or WebP image")
    too_many_pixels = PhotoRejected(
        record,
        PhotoProblem.TOO_MANY_PIXELS,
        f"more than {MAX_PHOTO_PIXELS} pixels",
        limit=MAX_PHOTO_PIXELS,
    )
    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            fmt, (width, height) = image.format, image.size
            image.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):  # Pillow's limits
        raise too_many_pixels from None  # (the warning is raised where warnings are errors)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise not_an_image from None
    if fmt not in PHOTO_FORMATS:
        raise PhotoRejected(
            record, PhotoProblem.NOT_AN_IMAGE, f"{fmt} is not a JPEG, PNG or WebP image"
        )
    if width * height > MAX_PHOTO_PIXELS:
        raise too_many_pixels
    try:
        clean = _without_metadata(data, fmt)
    except (OSError, SyntaxError, ValueError):  # the header was fine, the pixels are not
        raise not_an_image from None
    content_type, ext = PHOTO_FORMATS[fmt]
    name = f"{secrets.token_hex(16)}.{ext}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(clean)
    photo = Photo(
        leader_id=leader.id,
        stored_name=name,
        content_type=content_type,
        size_bytes=len(clean),
        uploaded_by=user_id,
    )
    session.add(photo)
    session.flush()
    return photo


def _without_metadata(data: bytes, fmt: str) -> bytes:
    """The image decoded and encoded again in its own format with nothing but its pixels, its
    colour profile and (PNG) its transparency: what the camera wrote about itself is dropped."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as original:
        upright = ImageOps.exif_transpose(original)  # a copy, turned as the EXIF said
    keep = {k: upright.info[k] for k in ("icc_profile", "transparency") if k in upright.info}
    upright.info = {}
    options: dict[str, object] = (
        {"icc_profile": keep["icc_profile"]} if "icc_profile" in keep else {}
    )
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = 90
    elif "transparency" in keep:
        options["transparency"] = keep["transparency"]
    out = io.BytesIO()
    upright.save(out, fmt, **options)
    return out.getvalue()


def confirm_arrival(
    session: Session,
    *,
    wave: Wave,
    leader: Leader,
    counted: Mapping[int, int],
    user_id: int,
    actor: str,
    discrepancies: Sequence[DiscrepancyReport] = (),
    assignments: Mapping[int, Mapping[int, int]] | None = None,
    now: datetime | None = None,
) -> tuple[Arrival, bool]:
    """Record what arrived at a point for a wave. Returns (arrival, created).

    `counted` is units per product id; every SKU expected must be counted. Units short are put on
    member lines of orders not yet collected (`assignments`: product id → {order line id:
    units}, the latest-placed lines first by default) and each becomes a refund owed with reason
    `shortage` at the price paid after the final tier price. Units short beyond what those lines
    hold (their bags were handed over already) are a loss at the point, with no member refund.

    Exactly once: the arrival row is unique per (wave, point), and the point's row lock
    (`lock_point`) is taken first; of concurrent confirmations one inserts the arrival and
    writes the counts and refunds, the others find it (under the lock, or by the unique key
    inside a savepoint) and return it with created False, having written nothing. The lock also
    orders a confirmation against pickups at the point: a bag handed over meanwhile is never
    charged a shortage.
    """
    from .point import list_expected, lock_point

    if wave.status != WaveStatus.CUT_OFF:
        raise ArrivalNotOpen(f"wave {wave.id} is not cut off yet: nothing to confirm")
    lock_point(session, leader)
    existing = find_arrival(session, wave=wave, leader=leader)
    if existing is not None:
        return existing, False
    now = now or utcnow()
    record = f"arrival {leader.code} {wave.delivery_date.isoformat()}"
    expected = {r.product_id: r for r in list_expected(session, wave=wave, leader=leader)}
    for pid in counted:
        if pid not in expected:
            raise InvalidInput(record, f"counted[{pid}]", "this SKU is not expected at the point")
    plans: dict[int, dict[int, int]] = {}
    for pid, row in expected.items():
        if pid not in counted:
            raise InvalidInput(record, f"counted[{row.sku}]", "missing: count every SKU")
        n = counted[pid]
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise InvalidInput(record, f"counted[{row.sku}]", f"{n!r} is not a whole number ≥ 0")
        short = row.quantity - n
        if short <= 0:
            continue
        candidates = list_candidate_lines(session, wave=wave, leader=leader, product_id=pid)
        short = min(short, sum(c.quantity for c in candidates))  # the rest is the point's loss
        wanted = (assignments or {}).get(pid)
        if wanted is None:
            plans[pid] = default_assignment(candidates, short)
        else:
            plans[pid] = _check_assignment(record, row.sku, candidates, wanted, short)
    reports = {d.product_id: d for d in discrepancies}
    for pid in reports:
        if pid not in expected:
            raise InvalidInput(record, f"discrepancy[{pid}]", "this SKU is not expected")

    arrival = Arrival(wave_id=wave.id, leader_id=leader.id, confirmed_at=now, confirmed_by=user_id)
    try:
        with session.begin_nested():  # the unique (wave, point) key decides a race
            session.add(arrival)
            session.flush()
    except IntegrityError:
        winner = find_arrival(session, wave=wave, leader=leader)
        if winner is None:  # pragma: no cover - the key failed for another reason
            raise
        return winner, False
    prices = _prices_after_tier(session, [lid for plan in plans.values() for lid in plan])
    refunds_out = []
    for pid, row in expected.items():
        n = counted[pid]
        session.add(
            ArrivalLine(
                arrival_id=arrival.id, product_id=pid, expected_qty=row.quantity, counted_qty=n
            )
        )
        report = reports.get(pid)
        if n != row.quantity or report is not None:
            kind = (
                report.kind
                if report
                else (DiscrepancyKind.SHORTAGE if n < row.quantity else DiscrepancyKind.SURPLUS)
            )
            session.add(
                Discrepancy(
                    arrival_id=arrival.id,
                    product_id=pid,
                    kind=kind,
                    quantity=abs(row.quantity - n),
                    note=(report.note if report else "")[:500],
                    photo_id=report.photo_id if report else None,
                )
            )
        refunds_out += _owe_shortages(
            session, arrival=arrival, sku=row.sku, plan=plans.get(pid, {}), prices=prices, now=now
        )
    session.flush()
    _emit_arrival_events(session, arrival=arrival, wave=wave, leader=leader, now=now)
    record_change(
        session,
        actor=actor,
        action="arrival.confirmed",
        entity="arrival",
        entity_id=arrival.id,
        after={
            "wave": wave.id,
            "point": leader.code,
            "counted": {expected[p].sku: c for p, c in counted.items()},
            "expected": {r.sku: r.quantity for r in expected.values()},
            "shortages": refunds_out,
            "lost_at_point": {
                expected[p].sku: units for p, units in point_losses(session, arrival).items()
            },
        },
        at=now,
    )
    return arrival, True


def _owe_shortages(
    session: Session,
    *,
    arrival: Arrival,
    sku: str,
    plan: Mapping[int, int],
    prices: Mapping[int, int],
    now: datetime,
    correction_id: int | None = None,
) -> list[dict]:
    """Each assigned short unit becomes a refund owed (reason shortage) on its line."""
    out = []
    for line_id, units in plan.items():
        refund = Refund(
            order_line_id=line_id,
            amount_cents=units * prices[line_id],
            reason=RefundReason.SHORTAGE,
            state=RefundState.OWED,
            created_at=now,
        )
        session.add(refund)
        session.flush()
        session.add(
            Shortage(
                arrival_id=arrival.id,
                correction_id=correction_id,
                order_line_id=line_id,
                quantity=units,
                refund_id=refund.id,
            )
        )
        out.append(
            {"sku": sku, "order_line": line_id, "units": units, "cents": refund.amount_cents}
        )
    return out


def _emit_arrival_events(
    session: Session,
    *,
    arrival: Arrival,
    wave: Wave,
    leader: Leader,
    now: datetime,
    correction_id: int | None = None,
) -> None:
    """For the platforms' orders at the point: `order.arrived` with what each order is short
    (on the confirmation), and `refund.owed` per shortage refund (confirmation or correction)."""
    if not has_listeners(session):
        return
    platform = Order.idempotency_scope.like(f"{API_SCOPE_PREFIX}%")
    orders = session.execute(
        select(Order.id, Order.idempotency_scope, Order.idempotency_key)
        .where(
            Order.wave_id == wave.id,
            Order.leader_id == leader.id,
            Order.status == OrderStatus.PLACED,
            platform,
        )
        .order_by(Order.id)
    ).all()
    shortages = session.execute(
        select(
            OrderLine.order_id,
            Product.sku,
            Shortage.quantity,
            Refund.id,
            Refund.amount_cents,
        )
        .join(OrderLine, OrderLine.id == Shortage.order_line_id)
        .join(Order, Order.id == OrderLine.order_id)
        .join(Product, Product.id == OrderLine.product_id)
        .join(Refund, Refund.id == Shortage.refund_id)
        .where(
            Shortage.arrival_id == arrival.id,
            Shortage.correction_id == correction_id
            if correction_id is not None
            else Shortage.correction_id.is_(None),
            platform,
        )
        .order_by(Refund.id)
    ).all()
    short_of: dict[int, list] = {}
    for row in shortages:
        short_of.setdefault(row.order_id, []).append(row)
    keys = {o.id: (o.idempotency_scope, o.idempotency_key) for o in orders}
    events: list[Event] = []
    for order_id, (scope, key) in keys.items():
        rows = short_of.get(order_id, [])
        if correction_id is None:
            data = {
                "order_id": order_id,
                "idempotency_key": key,
                "leader": leader.code,
                "delivery_date": wave.delivery_date.isoformat(),
                "arrived_at": iso(arrival.confirmed_at),
                "short": [
                    {"sku": r.sku, "units": r.quantity, "refund_cents": r.amount_cents}
                    for r in rows
                ],
            }
            events.append(Event(EventType.ORDER_ARRIVED, scope, order_id, data))
        events += [
            Event(
                EventType.REFUND_OWED,
                scope,
                order_id,
                {
                    "order_id": order_id,
                    "idempotency_key": key,
                    "refund_id": r.id,
                    "sku": r.sku,
                    "reason": RefundReason.SHORTAGE.value,
                    "amount_cents": r.amount_cents,
                },
            )
            for r in rows
        ]
    emit(session, events, now=now)


def current_counts(session: Session, arrival: Arrival) -> dict[int, int]:
    """Each SKU's count: the latest correction, else the confirmed count."""
    counts = {ln.product_id: ln.counted_qty for ln in arrival.lines}
    for c in session.scalars(
        select(ArrivalCorrection)
        .where(ArrivalCorrection.arrival_id == arrival.id)
        .order_by(ArrivalCorrection.id)
    ):
        counts[c.product_id] = c.counted_qty
    return counts


def correct_arrival(
    session: Session,
    *,
    arrival: Arrival,
    product_id: int,
    counted: int,
    user_id: int,
    actor: str,
    note: str = "",
    now: datetime | None = None,
) -> ArrivalCorrection | None:
    """Record a later, lower count of one SKU: a new correction row and audit entry (the
    confirmation is never overwritten); the further short units go on the latest-placed lines
    of orders not yet collected that still hold units, as refunds owed. Units no such line can
    carry are a loss at the point, with no member refund (the audit entry's `lost_at_point`).
    Lowering a count that was above the units expected owes nothing for the surplus part. The
    same count again changes nothing (None).

    A higher count is refused: refunds already owed are not taken back here.

    Exactly once: the arrival's row is locked (`SELECT … FOR UPDATE`; SQLite serialises writers)
    before the current count is read, so corrections of one arrival run one after another and
    each compares against the count the previous one left. A double-tapped "3 → 2" records one
    correction and one refund; the second tap finds 2 already recorded and changes nothing. The
    point's row is locked before it (`lock_point`, the order every path takes), so a pickup at
    the same moment either hands the bag over first (and the bag is left out) or after (and
    hands it over less the short units).
    """
    from .point import lock_point

    now = now or utcnow()
    wave = session.get(Wave, arrival.wave_id)
    leader = session.get(Leader, arrival.leader_id)
    assert wave is not None and leader is not None
    lock_point(session, leader)  # pickups wait: the bags not yet collected stay so
    _lock_arrival(session, arrival)
    product = session.get(Product, product_id)
    record = f"arrival {leader.code} {wave.delivery_date.isoformat()}"
    counts = current_counts(session, arrival)
    if product is None or product_id not in counts:
        raise InvalidInput(record, "product", f"product {product_id} was not in this delivery")
    if not isinstance(counted, int) or isinstance(counted, bool) or counted < 0:
        raise InvalidInput(
            record, f"counted[{product.sku}]", f"{counted!r} is not a whole number ≥ 0"
        )
    before = counts[product_id]
    if counted == before:
        return None
    if counted > before:
        raise InvalidInput(
            record,
            f"counted[{product.sku}]",
            f"{counted} is more than the {before} counted before; a correction only reports "
            "further units missing",
            limit=before,
        )
    correction = ArrivalCorrection(
        arrival_id=arrival.id,
        product_id=product_id,
        counted_qty=counted,
        note=note[:500],
        corrected_at=now,
        corrected_by=user_id,
    )
    session.add(correction)
    session.flush()
    candidates = list_candidate_lines(session, wave=wave, leader=leader, product_id=product_id)
    already = short_units(session, [c.order_line_id for c in candidates])
    room = [
        CandidateLine(
            c.order_line_id,
            c.order_id,
            c.member_id,
            c.quantity - already.get(c.order_line_id, 0),
            c.placed_at,
        )
        for c in candidates
        if c.quantity > already.get(c.order_line_id, 0)
    ]
    expected = next(ln.expected_qty for ln in arrival.lines if ln.product_id == product_id)
    short = max(expected - counted, 0) - max(expected - before, 0)  # a surplus owes nothing
    plan = default_assignment(room, short)
    prices = _prices_after_tier(session, list(plan))
    owed = _owe_shortages(
        session,
        arrival=arrival,
        sku=product.sku,
        plan=plan,
        prices=prices,
        now=now,
        correction_id=correction.id,
    )
    session.flush()
    _emit_arrival_events(
        session,
        arrival=arrival,
        wave=wave,
        leader=leader,
        now=now,
        correction_id=correction.id,
    )
    record_change(
        session,
        actor=actor,
        action="arrival.corrected",
        entity="arrival",
        entity_id=arrival.id,
        before={"sku": product.sku, "counted": before},
        after={
            "sku": product.sku,
            "counted": counted,
            "note": note[:500],
            "shortages": owed,
            "lost_at_point": short - sum(plan.values()),
        },
        at=now,
    )
    return correction


def _lock_arrival(session: Session, arrival: Arrival) -> None:
    """Take the arrival's row lock for the rest of the transaction (a no-op on SQLite, whose
    writers are serialised by the database lock)."""
    session.execute(select(Arrival.id).where(Arrival.id == arrival.id).with_for_update())


def _check_assignment(
    record: str,
    sku: str,
    candidates: Sequence[CandidateLine],
    wanted: Mapping[int, int],
    short: int,
) -> dict[int, int]:
    by_id = {c.order_line_id: c for c in candidates}
    plan = {lid: units for lid, units in wanted.items() if units}
    for lid, units in plan.items():
        if lid not in by_id:
            raise InvalidInput(record, f"assign[{sku}]", f"line {lid} is not a {sku} line here")
        if not 0 < units <= by_id[lid].quantity:
            raise InvalidInput(
                record,
                f"assign[{sku}]",
                f"{units} units do not fit line {lid} of {by_id[lid].quantity}",
            )
    if sum(plan.values()) != short:
        raise InvalidInput(
            record, f"assign[{sku}]", f"{sum(plan.values())} units assigned, {short} are short"
        )
    return plan


def _prices_after_tier(session: Session, line_ids: list[int]) -> dict[int, int]:
    """The unit price a line really paid: its price, or the deal's final tier price if lower."""
    if not line_ids:
        return {}
    rows = session.execute(
        select(OrderLine.id, OrderLine.unit_price_cents, Deal.final_price_cents)
        .join(Deal, Deal.id == OrderLine.deal_id)
        .where(OrderLine.id.in_(line_ids))
    )
    return {lid: min(paid, final if final is not None else paid) for lid, paid, final in rows}


def short_units(session: Session, order_line_ids: Sequence[int]) -> dict[int, int]:
    """Units assigned short per order line (what did not arrive for it)."""
    if not order_line_ids:
        return {}
    return dict(
        session.execute(
            select(Shortage.order_line_id, func.sum(Shortage.quantity))
            .where(Shortage.order_line_id.in_(list(order_line_ids)))
            .group_by(Shortage.order_line_id)
        ).all()
    )


def point_losses(session: Session, arrival: Arrival) -> dict[int, int]:
    """Units short per product id that no member line carries (their bags had been handed over
    when the shortage was found): lost at the point, refunded to nobody. Only SKUs with a loss."""
    assigned = dict(
        session.execute(
            select(OrderLine.product_id, func.sum(Shortage.quantity))
            .join(OrderLine, OrderLine.id == Shortage.order_line_id)
            .where(Shortage.arrival_id == arrival.id)
            .group_by(OrderLine.product_id)
        ).all()
    )
    counts = current_counts(session, arrival)
    out = {}
    for ln in arrival.lines:
        lost = max(ln.expected_qty - counts[ln.product_id], 0) - assigned.get(ln.product_id, 0)
        if lost > 0:
            out[ln.product_id] = lost
    return out


def get_photo(session: Session, *, photo_id: int) -> Photo:
    photo = session.get(Photo, photo_id)
    if photo is None:
        raise NotFound(f"photo {photo_id} does not exist")
    return photo


def list_arrival_report(session: Session, arrival: Arrival) -> list[dict]:
    """The confirmation as shown back: per SKU expected, counted, discrepancy, and the later
    corrections (oldest first) with the note each was recorded with."""
    products = {
        p.id: p
        for p in session.scalars(
            select(Product).where(Product.id.in_([ln.product_id for ln in arrival.lines]))
        )
    }
    disc = {d.product_id: d for d in arrival.discrepancies}
    now_counted = current_counts(session, arrival)
    corrections: dict[int, list[ArrivalCorrection]] = {}
    for c in session.scalars(
        select(ArrivalCorrection)
        .where(ArrivalCorrection.arrival_id == arrival.id)
        .order_by(ArrivalCorrection.id)
    ):
        corrections.setdefault(c.product_id, []).append(c)
    return [
        {
            "product_id": ln.product_id,
            "sku": products[ln.product_id].sku,
            "name": products[ln.product_id].name,
            "expected": ln.expected_qty,
            "confirmed": ln.counted_qty,
            "counted": now_counted[ln.product_id],
            "discrepancy": disc.get(ln.product_id),
            "corrections": corrections.get(ln.product_id, []),
        }
        for ln in arrival.lines
    ]
