"""The commission tables: rates, the ledger's entries, settlement runs and statements.

The ledger is append-only: an entry is never updated nor deleted, a change of state is a new
entry (accrued, then settled or reversed). Uniqueness decides every race: one accrual and one
settlement per order line, one reversal per refund, one settlement run per region and day, one
statement per entry.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from fulfilment.core.models import MONEY, AppendOnlyError, Base, _enum, utcnow

BPS_MAX = 10_000  # 100 %


class EntryKind(StrEnum):
    ACCRUED = "accrued"  # a line was collected: it earns on what was handed over
    SETTLED = "settled"  # the after-sales window passed: payable (what no refund reversed)
    REVERSED = "reversed"  # a refund in the window took back the commission on its amount


class CommissionRate(Base):
    """A rate in basis points (100 bps = 1 %): a region's default (`scope` "region"), or an
    override for one product in the region ("product:<id>") or one deal ("deal:<id>"). The most
    specific applies: deal, then product, then region. Changing a rate changes lines collected
    afterwards; every entry keeps the rate it was computed with."""

    __tablename__ = "commission_rate"
    __table_args__ = (
        UniqueConstraint("region_id", "scope"),
        CheckConstraint(f"rate_bps >= 0 AND rate_bps <= {BPS_MAX}", name="bps_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"))
    scope: Mapped[str] = mapped_column(String(32))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("product.id"), index=True)
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deal.id"), index=True)
    rate_bps: Mapped[int]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64))


class CommissionEntry(Base):
    """One entry of the ledger: what an order line earned (accrued), was paid out (settled) or
    lost to a refund (reversed), in integer cents, with the base and rate it was computed on."""

    __tablename__ = "commission_entry"
    __table_args__ = (
        CheckConstraint("amount_cents >= 0", name="amount_nonneg"),
        CheckConstraint("base_cents >= 0", name="base_nonneg"),
        # one accrual and one settlement per line; one reversal per refund
        Index(
            "uq_commission_entry_line_kind",
            "order_line_id",
            "kind",
            unique=True,
            sqlite_where=text("kind <> 'reversed'"),
            postgresql_where=text("kind <> 'reversed'"),
        ),
        Index(
            "uq_commission_entry_refund",
            "refund_id",
            unique=True,
            sqlite_where=text("refund_id IS NOT NULL"),
            postgresql_where=text("refund_id IS NOT NULL"),
        ),
        Index("ix_commission_entry_leader_created", "leader_id", "created_at"),
        Index("ix_commission_entry_region_kind_due", "region_id", "kind", "settle_after"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[EntryKind] = mapped_column(_enum(EntryKind))
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_line.id"))
    leader_id: Mapped[int] = mapped_column(ForeignKey("leader.id"))
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"))
    wave_id: Mapped[int] = mapped_column(ForeignKey("wave.id"), index=True)
    base_cents: Mapped[int] = mapped_column(MONEY)  # the money the commission is on
    rate_bps: Mapped[int]
    amount_cents: Mapped[int] = mapped_column(MONEY)
    collected_at: Mapped[datetime]  # the handover: the after-sales window opens
    settle_after: Mapped[datetime]  # the window closes (collected_at + the days then in force)
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refund.id"))  # reversals
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))


class SettlementRun(Base):
    """One settlement per region and day, ever: the night's step, or `commission settle`."""

    __tablename__ = "commission_settlement"
    __table_args__ = (UniqueConstraint("region_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"))
    day: Mapped[date]
    ran_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))
    settled_lines: Mapped[int] = mapped_column(default=0)
    settled_cents: Mapped[int] = mapped_column(MONEY, default=0)
    reversed_cents: Mapped[int] = mapped_column(MONEY, default=0)


class Statement(Base):
    """A settlement statement (结算单): one leader's settled entries of a period, exported once
    and paid once (`paid_at` is set by one conditional UPDATE)."""

    __tablename__ = "commission_statement"

    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"), index=True)
    leader_id: Mapped[int] = mapped_column(ForeignKey("leader.id"), index=True)
    period_from: Mapped[date]
    period_to: Mapped[date]
    lines: Mapped[int]
    amount_cents: Mapped[int] = mapped_column(MONEY)
    exported_at: Mapped[datetime]
    exported_by: Mapped[str] = mapped_column(String(64))
    paid_at: Mapped[datetime | None]
    paid_by: Mapped[str | None] = mapped_column(String(64))


class StatementItem(Base):
    """A settled entry on a statement: unique on the entry, so no entry is in two statements."""

    __tablename__ = "commission_statement_item"

    id: Mapped[int] = mapped_column(primary_key=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("commission_statement.id"), index=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("commission_entry.id"), unique=True)


def _never_changed(mapper, connection, target):
    raise AppendOnlyError(f"{type(target).__name__} rows are never changed or deleted")


for _cls in (CommissionEntry, StatementItem):
    event.listen(_cls, "before_update", _never_changed)
    event.listen(_cls, "before_delete", _never_changed)
event.listen(Statement, "before_delete", _never_changed)
event.listen(SettlementRun, "before_delete", _never_changed)
