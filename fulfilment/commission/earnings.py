"""What a leader earned, as their earnings page shows it: today, this week and per wave, the
commission accrued, settled and reversed. Reads only; the leader's own entries only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from fulfilment.core.errors import NotFound
from fulfilment.core.models import Order, OrderLine, Product, Wave

from .models import CommissionEntry, EntryKind

RECENT_WAVES = 14


@dataclass
class Totals:
    accrued: int = 0
    settled: int = 0
    reversed: int = 0

    @property
    def pending(self) -> int:
        """Accrued and still in the after-sales window (neither settled nor reversed)."""
        return max(self.accrued - self.settled - self.reversed, 0)

    def add(self, kind: EntryKind, cents: int) -> None:
        setattr(self, kind.value, getattr(self, kind.value) + int(cents or 0))


@dataclass
class WaveEarnings:
    wave_id: int
    delivery_date: date
    lines: int  # lines that earned (accrued) in the wave
    totals: Totals = field(default_factory=Totals)


@dataclass
class Earnings:
    today: Totals
    week: Totals  # Monday to today, in the region's zone
    waves: list[WaveEarnings]


def _local_midnight(day: date, tz: str) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(tz))


def leader_earnings(
    session: Session, *, leader_id: int, tz: str, today: date, waves: int = RECENT_WAVES
) -> Earnings:
    """The leader's entries by when they were written (today, this week) and by wave (the
    latest `waves` waves with any), each as accrued, settled and reversed cents. Two queries."""
    week_start = _local_midnight(today - timedelta(days=today.weekday()), tz)
    day_start = _local_midnight(today, tz)
    e = CommissionEntry
    recent = session.execute(
        select(
            e.kind,
            func.sum(case((e.created_at >= day_start, e.amount_cents), else_=0)),
            func.sum(e.amount_cents),
        )
        .where(e.leader_id == leader_id, e.created_at >= week_start)
        .group_by(e.kind)
    )
    today_totals, week_totals = Totals(), Totals()
    for kind, day_cents, week_cents in recent:
        today_totals.add(kind, day_cents)
        week_totals.add(kind, week_cents)
    latest = (
        select(e.wave_id)
        .join(Wave, Wave.id == e.wave_id)
        .where(e.leader_id == leader_id)
        .group_by(e.wave_id, Wave.delivery_date)
        .order_by(Wave.delivery_date.desc())
        .limit(waves)
        .scalar_subquery()
    )
    rows = session.execute(
        select(e.wave_id, Wave.delivery_date, e.kind, func.sum(e.amount_cents), func.count())
        .join(Wave, Wave.id == e.wave_id)
        .where(e.leader_id == leader_id, e.wave_id.in_(latest))
        .group_by(e.wave_id, Wave.delivery_date, e.kind)
        .order_by(Wave.delivery_date.desc())
    )
    by_wave: dict[int, WaveEarnings] = {}
    for wave_id, delivery, kind, cents, count in rows:
        we = by_wave.setdefault(wave_id, WaveEarnings(wave_id, delivery, 0))
        we.totals.add(kind, cents)
        if kind == EntryKind.ACCRUED:
            we.lines = count
    return Earnings(today_totals, week_totals, list(by_wave.values()))


@dataclass(frozen=True, slots=True)
class EarningLine:
    order_line_id: int
    order_id: int
    sku: str
    product: str
    base_cents: int  # what it earned on: the value handed over
    rate_bps: int
    collected_at: datetime
    settle_after: datetime
    accrued: int
    settled: int
    reversed: int
    kinds: frozenset[EntryKind]  # the kinds of entry the line has

    @property
    def state(self) -> EntryKind:
        """Settled; reversed (a refund in the window took it all back); else accrued."""
        if EntryKind.SETTLED in self.kinds:
            return EntryKind.SETTLED
        if EntryKind.REVERSED in self.kinds and self.reversed >= self.accrued:
            return EntryKind.REVERSED
        return EntryKind.ACCRUED


def list_wave_earnings(session: Session, *, leader_id: int, wave_id: int) -> list[EarningLine]:
    """The leader's lines that earned in one wave; NotFound when there is none (another
    point's wave, or one where this point earned nothing: never told apart)."""
    e = CommissionEntry
    rows = session.execute(
        select(
            e.order_line_id,
            OrderLine.order_id,
            Product.sku,
            Product.name,
            e.kind,
            func.sum(e.base_cents),
            func.max(e.rate_bps),
            func.min(e.collected_at),
            func.min(e.settle_after),
            func.sum(e.amount_cents),
        )
        .join(OrderLine, OrderLine.id == e.order_line_id)
        .join(Product, Product.id == OrderLine.product_id)
        .where(e.leader_id == leader_id, e.wave_id == wave_id)
        .group_by(e.order_line_id, OrderLine.order_id, Product.sku, Product.name, e.kind)
        .order_by(OrderLine.order_id, e.order_line_id)
    ).all()
    if not rows:
        raise NotFound(f"wave {wave_id} has no commission for this point")
    lines: dict[int, dict] = {}
    for line_id, order_id, sku, name, kind, base, rate, collected, due, cents in rows:
        row = lines.setdefault(
            line_id,
            {
                "order_line_id": line_id,
                "order_id": order_id,
                "sku": sku,
                "product": name,
                "base_cents": 0,
                "rate_bps": rate,
                "collected_at": collected,
                "settle_after": due,
                "accrued": 0,
                "settled": 0,
                "reversed": 0,
                "kinds": frozenset(),
            },
        )
        row[kind.value] = int(cents)
        row["kinds"] = row["kinds"] | {kind}
        if kind == EntryKind.ACCRUED:
            row["base_cents"] = int(base)
    return [EarningLine(**row) for row in lines.values()]


def find_wave_of_point(session: Session, *, leader_id: int, wave_id: int) -> Wave:
    """A wave in which the point has orders, else NotFound (another region's, or unknown)."""
    wave = session.get(Wave, wave_id)
    has = session.scalar(
        select(Order.id).where(Order.leader_id == leader_id, Order.wave_id == wave_id).limit(1)
    )
    if wave is None or has is None:
        raise NotFound(f"wave {wave_id} does not exist")
    return wave
