"""The deadline of a wave, one truth: its `cutoff_due_at`. Which waves are due, moving a cutoff.

A wave's `cutoff_due_at` is set from the region's cutoff time when the wave is created and moved
(and audited) for the region's open waves when that cutoff time changes. Order intake
(`accepts_orders_at`), the cutoff (`is_due`) and the scheduler (`list_due_deliveries`) all
compare against it; the clock is always passed in.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from fulfilment.core.audit import record_change
from fulfilment.core.errors import InvalidInput
from fulfilment.core.models import Region, Wave, WaveStatus

from .cycle import cutoff_for_delivery, delivery_date_for

log = logging.getLogger(__name__)


def accepts_orders_at(wave: Wave, placed_at: datetime) -> bool:
    """Rule 1's one comparison: an order placed strictly before the wave's deadline belongs to it."""
    return wave.status == WaveStatus.OPEN and placed_at < wave.cutoff_due_at


def is_due(wave: Wave, *, now: datetime) -> bool:
    """The wave's deadline has come (at or after `cutoff_due_at`)."""
    return now >= wave.cutoff_due_at


def latest_due_delivery_date(session: Session, *, region: Region, now: datetime) -> date:
    """The delivery date of the most recent wave whose deadline is at or before `now`.

    By the region's cutoff time, that is the day before the wave `now` would fall in; an open wave
    whose own deadline has passed (a cutoff moved earlier) counts too."""
    by_clock = delivery_date_for(region, now) - timedelta(days=1)
    overdue = session.scalar(
        select(Wave.delivery_date)
        .where(
            Wave.region_id == region.id,
            Wave.status == WaveStatus.OPEN,
            Wave.cutoff_due_at <= now,
        )
        .order_by(Wave.delivery_date.desc())
        .limit(1)
    )
    return max(by_clock, overdue) if overdue else by_clock


def list_due_deliveries(
    session: Session, *, region: Region, now: datetime, since: date | None = None
) -> list[date]:
    """Delivery dates whose deadline has passed and whose wave is not cut off yet, oldest first.

    The latest due date is always included (its wave may not exist yet: a day without orders is
    still cut off, so that its pipeline runs); `since` bounds how far back open waves are read."""
    query = select(Wave.delivery_date).where(
        Wave.region_id == region.id,
        Wave.status == WaveStatus.OPEN,
        Wave.cutoff_due_at <= now,
    )
    if since is not None:
        query = query.where(Wave.delivery_date >= since)
    dates = set(session.scalars(query))
    latest = latest_due_delivery_date(session, region=region, now=now)
    wave = session.scalar(
        select(Wave).where(Wave.region_id == region.id, Wave.delivery_date == latest)
    )
    if wave is None or wave.status == WaveStatus.OPEN:
        dates.add(latest)
    return sorted(dates)


def change_cutoff_time(
    session: Session, *, region: Region, cutoff_time: time, now: datetime, actor: str = "system"
) -> list[Wave]:
    """Set the region's daily cutoff time and move the deadline of its open waves not yet due.

    A wave already past its deadline keeps it (it is due and will be cut off as it stands). Each
    change is audited. Returns the waves whose deadline moved."""
    if not isinstance(cutoff_time, time) or cutoff_time.tzinfo is not None:
        raise InvalidInput(f"region {region.code}", "cutoff_time", "a local wall-clock time")
    before = region.cutoff_time
    if before == cutoff_time:
        return []
    region.cutoff_time = cutoff_time
    record_change(
        session,
        actor=actor,
        action="region.cutoff_time_changed",
        entity="region",
        entity_id=region.id,
        before={"cutoff_time": before.isoformat()},
        after={"cutoff_time": cutoff_time.isoformat()},
        at=now,
    )
    query = (
        select(Wave)
        .where(
            Wave.region_id == region.id,
            Wave.status == WaveStatus.OPEN,
            Wave.cutoff_due_at > now,
        )
        .order_by(Wave.delivery_date)
        .with_for_update()
    )
    moved = []
    for wave in session.scalars(query):
        due = cutoff_for_delivery(region, wave.delivery_date)
        if due == wave.cutoff_due_at:
            continue
        record_change(
            session,
            actor=actor,
            action="wave.deadline_moved",
            entity="wave",
            entity_id=wave.id,
            before={"cutoff_due_at": wave.cutoff_due_at.isoformat()},
            after={"cutoff_due_at": due.isoformat()},
            at=now,
        )
        wave.cutoff_due_at = due
        moved.append(wave)
    session.flush()
    return moved


STATISTICS_TABLES = ("orders", "order_line", "deal")


def refresh_cutoff_statistics(engine: Engine, *, lock_timeout_ms: int = 2000) -> list[str]:
    """Fresh planner statistics for the cutoff's tables, outside the cutoff's transaction.

    A day's orders arrive in bulk; without fresh statistics PostgreSQL plans the cutoff's joins as
    nested loops. ANALYZE runs here in its own short autocommit transaction, only on tables that
    changed by more than a tenth since their last analysis, on a small sample; if another ANALYZE
    holds the table (another region's cutoff), it gives up after `lock_timeout_ms`: that one is
    refreshing the same statistics. Returns the tables analysed. A no-op on SQLite.
    """
    if engine.dialect.name != "postgresql":
        return []
    done: list[str] = []
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        stale = conn.execute(
            text(
                "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
                "WHERE s.schemaname = current_schema() AND s.relname = ANY(:names) "
                "AND s.n_mod_since_analyze > 1000 + 0.1 * GREATEST(c.reltuples, 0)"
            ),
            {"names": list(STATISTICS_TABLES)},
        ).scalars()
        tables = [t for t in STATISTICS_TABLES if t in set(stale)]
        if not tables:
            return []
        conn.execute(text(f"SET lock_timeout = {int(lock_timeout_ms)}"))
        conn.execute(text("SET default_statistics_target = 10"))
        for table in tables:
            try:
                conn.execute(text(f'ANALYZE "{table}"'))
                done.append(table)
            except Exception as err:  # noqa: BLE001 - a lock timeout: another ANALYZE has it
                log.info("statistics of %s not refreshed (%s)", table, type(err).__name__)
        conn.execute(text("RESET lock_timeout"))
        conn.execute(text("RESET default_statistics_target"))
    return done
