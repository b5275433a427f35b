"""The domain's tables: regions, sites, people, deals, orders, waves, pick lists, the audit log."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates
from sqlalchemy.types import TypeDecorator

from .errors import InvalidInput

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out; stored as naive UTC (same on every backend)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware one is required")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


# Sums of money in cents: 64-bit (PostgreSQL BIGINT; SQLite's INTEGER is 64-bit already).
MONEY = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _enum(cls: type[StrEnum]) -> Enum:
    # Stored as the readable value, without a database-side ENUM type (simple migrations).
    return Enum(cls, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class TempZone(StrEnum):
    AMBIENT = "ambient"
    CHILLED = "chilled"
    FROZEN = "frozen"


class DealStatus(StrEnum):
    OPEN = "open"
    CONFIRMED = "confirmed"  # group formed at cutoff, price fixed
    CANCELLED = "cancelled"  # below the minimum group size at cutoff


class WaveStatus(StrEnum):
    OPEN = "open"
    CUT_OFF = "cut_off"


class OrderStatus(StrEnum):
    """An order's own state. It is locked when its wave is cut off: one row marks them all,
    so a cutoff does not rewrite 100,000 order rows (see Order.is_locked)."""

    PLACED = "placed"
    CANCELLED = "cancelled"  # by the member before the cutoff
    CANCELLED_FOR_REFUND = "cancelled_for_refund"  # every line's group failed at cutoff


class RefundReason(StrEnum):
    TIER_PRICE = "tier_price"  # the deal's final tier price is below the price paid (退差价)
    GROUP_FAILED = "group_failed"  # the deal fell short of its minimum group size (未成团)
    SHORTAGE = "shortage"  # units that did not arrive at the pickup point (到货短缺)
    AFTER_SALES = "after_sales"  # after the handover: the member's complaint upheld (售后退款)


class RefundState(StrEnum):
    OWED = "owed"  # recorded, not yet handed to the payment side
    EXPORTED = "exported"  # written to a refunds export (`groupbuy refunds export`)


class LineStatus(StrEnum):
    ACTIVE = "active"
    CANCELLED = "cancelled"


class PickLevel(StrEnum):
    WAREHOUSE = "warehouse"
    STATION = "station"
    LEADER = "leader"


def check_coordinates(record: str, lat: float, lon: float) -> None:
    """Latitude in −90..90 and longitude in −180..180, else InvalidInput naming the record."""
    if not -90.0 <= lat <= 90.0:
        raise InvalidInput(record, "lat", f"latitude {lat} is outside -90..90")
    if not -180.0 <= lon <= 180.0:
        raise InvalidInput(record, "lon", f"longitude {lon} is outside -180..180")


class _Located:
    """Validation shared by every table with a point on the map."""

    @validates("lat", "lon")
    def _validate_coordinate(self, key: str, value: float) -> float:
        value = float(value)
        limit = 90.0 if key == "lat" else 180.0
        if not -limit <= value <= limit:
            name = getattr(self, "code", None) or type(self).__name__.lower()
            raise InvalidInput(
                f"{type(self).__name__.lower()} {name}",
                key,
                f"{value} is outside -{limit:g}..{limit:g}",
            )
        return value


class Region(_Located, Base):
    """A city: its time zone, daily cutoff and delivery offset."""

    __tablename__ = "region"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    tz: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    cutoff_time: Mapped[time] = mapped_column(default=time(23, 0))
    delivery_offset_days: Mapped[int] = mapped_column(default=1)
    # The city centre: locations far from it but near it when swapped are caught as swapped.
    lat: Mapped[float]
    lon: Mapped[float]
    radius_km: Mapped[float] = mapped_column(default=80.0)


class Warehouse(_Located, Base):
    """The central warehouse (中心仓) where a region's goods are picked."""

    __tablename__ = "warehouse"

    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"), index=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    lat: Mapped[float]
    lon: Mapped[float]


class GridStation(_Located, Base):
    """A cross-dock (网格站) between the warehouse and the pickup points."""

    __tablename__ = "grid_station"

    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"), index=True)
    warehouse_id: Mapped[int] = mapped_column(ForeignKey("warehouse.id"), index=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    lat: Mapped[float]
    lon: Mapped[float]


class Leader(_Located, Base):
    """A neighbourhood leader (团长) and the pickup point they own."""

    __tablename__ = "leader"

    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"), index=True)
    station_id: Mapped[int] = mapped_column(ForeignKey("grid_station.id"), index=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(32))
    pickup_name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300), default="")
    lat: Mapped[float]
    lon: Mapped[float]
    # The receiving window for deliveries, local wall-clock times on the delivery day.
    window_open: Mapped[time] = mapped_column(default=time(7, 0))
    window_close: Mapped[time] = mapped_column(default=time(11, 0))
    active: Mapped[bool] = mapped_column(default=True)

    station: Mapped[GridStation] = relationship()


class Member(Base):
    """A customer who orders through a leader. Name and phone are personal data."""

    __tablename__ = "member"

    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"), index=True)
    leader_id: Mapped[int] = mapped_column(ForeignKey("leader.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(32))


class Product(Base):
    """A SKU: what it weighs, how much room it takes, how cold it rides, where it sits."""

    __tablename__ = "product"
    __table_args__ = (
        CheckConstraint("weight_g >= 0", name="weight_nonneg"),
        CheckConstraint("volume_ml >= 0", name="volume_nonneg"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    weight_g: Mapped[int]
    volume_ml: Mapped[int]
    zone: Mapped[TempZone] = mapped_column(_enum(TempZone))
    bin_code: Mapped[str] = mapped_column(String(32))
    # Who the warehouse buys it from: the purchase list (以销定采) groups by it; optional.
    supplier: Mapped[str | None] = mapped_column(String(100))


class Deal(Base):
    """One product offered in one region for one delivery date, with its tiers and caps."""

    __tablename__ = "deal"
    __table_args__ = (
        UniqueConstraint("region_id", "product_id", "delivery_date"),
        CheckConstraint("sold_qty >= 0", name="sold_nonneg"),
        CheckConstraint("stock_cap IS NULL OR sold_qty <= stock_cap", name="no_oversell"),
        CheckConstraint("base_price_cents >= 0", name="price_nonneg"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"), index=True)
    delivery_date: Mapped[date]
    base_price_cents: Mapped[int]
    stock_cap: Mapped[int | None]
    sold_qty: Mapped[int] = mapped_column(default=0)
    min_group_members: Mapped[int | None]
    status: Mapped[DealStatus] = mapped_column(_enum(DealStatus), default=DealStatus.OPEN)
    final_price_cents: Mapped[int | None]

    product: Mapped[Product] = relationship()
    tiers: Mapped[list[PriceTier]] = relationship(
        order_by="PriceTier.min_qty", cascade="all, delete-orphan"
    )

    def price_at(self, total_qty: int) -> int:
        """The unit price once the deal's total reaches total_qty (阶梯价)."""
        return tier_price(
            self.base_price_cents, [(t.min_qty, t.price_cents) for t in self.tiers], total_qty
        )


def tier_price(base_price_cents: int, tiers: Iterable[tuple[int, int]], total_qty: int) -> int:
    """The unit price once a deal's total reaches total_qty: the lowest of the base price and
    of every tier (min_qty, price_cents) reached. Order intake reads the tiers as plain rows."""
    price = base_price_cents
    for min_qty, price_cents in tiers:
        if total_qty >= min_qty:
            price = min(price, price_cents)
    return price


class PriceTier(Base):
    """From min_qty units in total, every unit of the deal costs price_cents."""

    __tablename__ = "price_tier"
    __table_args__ = (
        UniqueConstraint("deal_id", "min_qty"),
        CheckConstraint("min_qty > 0", name="min_qty_pos"),
        CheckConstraint("price_cents >= 0", name="price_nonneg"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deal.id"), index=True)
    min_qty: Mapped[int]
    price_cents: Mapped[int]


class Wave(Base):
    """Everything for one region and one delivery date; cut off exactly once."""

    __tablename__ = "wave"
    __table_args__ = (UniqueConstraint("region_id", "delivery_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"))
    delivery_date: Mapped[date]
    status: Mapped[WaveStatus] = mapped_column(_enum(WaveStatus), default=WaveStatus.OPEN)
    cutoff_due_at: Mapped[datetime]
    cut_off_at: Mapped[datetime | None]

    region: Mapped[Region] = relationship()


class CutoffRun(Base):
    """The ledger of cutoffs: one row per wave, written in the same transaction as the cutoff."""

    __tablename__ = "cutoff_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    wave_id: Mapped[int] = mapped_column(ForeignKey("wave.id"), unique=True)
    actor: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    orders_locked: Mapped[int]
    lines_locked: Mapped[int]
    deals_cancelled: Mapped[int]
    orders_cancelled: Mapped[int]


class Order(Base):
    """One member's order through one leader, for one wave."""

    __tablename__ = "orders"  # "order" is an SQL keyword
    __table_args__ = (
        UniqueConstraint("leader_id", "wave_id", "pickup_code"),
        # A key is unique within its source (an API client, a region's CSV imports), not globally.
        UniqueConstraint("idempotency_scope", "idempotency_key"),
        Index("ix_orders_wave_status", "wave_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"))
    leader_id: Mapped[int] = mapped_column(ForeignKey("leader.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"), index=True)
    wave_id: Mapped[int] = mapped_column(ForeignKey("wave.id"))
    placed_at: Mapped[datetime]
    received_at: Mapped[datetime]
    status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus), default=OrderStatus.PLACED)
    late: Mapped[bool] = mapped_column(default=False)
    pickup_code: Mapped[str] = mapped_column(String(16))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    # "api:<client id>" or "csv:<region code>"; the fingerprint is a hash of the request, so that
    # the same key with another request is a conflict, never a replay of the other order.
    idempotency_scope: Mapped[str] = mapped_column(String(64), default="", server_default="")
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16), default="api")
    total_cents: Mapped[int] = mapped_column(MONEY)  # 100 lines × 10,000 units pass 2³¹

    lines: Mapped[list[OrderLine]] = relationship(back_populates="order", order_by="OrderLine.id")
    member: Mapped[Member] = relationship()
    wave: Mapped[Wave] = relationship()

    @property
    def is_locked(self) -> bool:
        """Placed and in a cut-off wave: going to be picked and delivered, no longer changeable."""
        return self.status == OrderStatus.PLACED and self.wave.status == WaveStatus.CUT_OFF


class OrderLine(Base):
    """A SKU × quantity in an order, with the unit price paid."""

    __tablename__ = "order_line"
    __table_args__ = (CheckConstraint("quantity > 0", name="qty_pos"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deal.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("product.id"))
    quantity: Mapped[int]
    unit_price_cents: Mapped[int]
    status: Mapped[LineStatus] = mapped_column(_enum(LineStatus), default=LineStatus.ACTIVE)

    order: Mapped[Order] = relationship(back_populates="lines")
    product: Mapped[Product] = relationship()


class Refund(Base):
    """Money owed back on one order line; a line can carry several (tier price, then shortage).

    Exported, never paid out here: `groupbuy refunds export` claims the owed ones (state
    `exported`, the time, and the export's batch id, in one UPDATE) and writes what it claimed
    as CSV. A cutoff writes one per line whose deal's final tier price fell below the price paid
    (most lines on a busy day), so the row stays lean.
    """

    __tablename__ = "refund"
    __table_args__ = (CheckConstraint("amount_cents > 0", name="amount_pos"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_line.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(MONEY)  # a whole line: price × 10,000 units
    reason: Mapped[RefundReason] = mapped_column(_enum(RefundReason))
    state: Mapped[RefundState] = mapped_column(_enum(RefundState), default=RefundState.OWED)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    exported_at: Mapped[datetime | None]
    export_batch: Mapped[str | None] = mapped_column(String(32), index=True)


class PickLine(Base):
    """A quantity to pick for a wave: warehouse totals, then per station, then per leader.

    Derived rows, rebuilt by aggregate_wave from order lines joined to their (foreign-keyed)
    orders, leaders and products. They carry no foreign keys of their own: the join already
    guarantees them, and a key check per row would triple the cost of a 100,000-order cutoff.
    """

    __tablename__ = "pick_line"
    __table_args__ = (Index("ix_pick_line_wave_level", "wave_id", "level"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    wave_id: Mapped[int]
    level: Mapped[PickLevel] = mapped_column(_enum(PickLevel))
    station_id: Mapped[int | None]
    leader_id: Mapped[int | None]
    product_id: Mapped[int]
    zone: Mapped[TempZone] = mapped_column(_enum(TempZone))
    bin_code: Mapped[str] = mapped_column(String(32))
    quantity: Mapped[int]
    weight_g: Mapped[int]
    volume_ml: Mapped[int]
    order_lines: Mapped[int]  # how many order lines the quantity gathers (bags to pack)


class AuditEntry(Base):
    """Append-only record of a state change: who, what, when, before and after."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity", "entity_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[int | None]
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class AppendOnlyError(RuntimeError):
    """Trade records and the audit log are never updated in place (audit) or deleted."""


@event.listens_for(AuditEntry, "before_update")
def _audit_is_append_only(mapper, connection, target):  # pragma: no cover - guard
    raise AppendOnlyError("audit log entries are never changed")


def _never_delete(mapper, connection, target):
    raise AppendOnlyError(f"{type(target).__name__} rows are never deleted; change their status")


for _cls in (AuditEntry, Order, OrderLine, Refund, Wave, CutoffRun, Deal, Member, Leader):
    event.listen(_cls, "before_delete", _never_delete)
