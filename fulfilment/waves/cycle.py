"""The order cycle: which delivery date an order belongs to, when a wave's cutoff falls, and the
wave of a delivery date (created open on the day's first order).

Rule 1 of DESIGN.md lives here, in one comparison: an order placed strictly before the
cutoff instant of its local day belongs to that day's cycle; at or after it, to the next.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from fulfilment.core.db import insert_ignore, is_postgres
from fulfilment.core.errors import NotFound
from fulfilment.core.models import Region, Wave, WaveStatus


def region_zone(region: Region) -> ZoneInfo:
    return ZoneInfo(region.tz)


def cutoff_instant(region: Region, order_day: date) -> datetime:
    """The UTC instant of the cutoff on the local calendar day `order_day`.

    The cutoff follows the region's wall clock, DST included. A wall-clock time that a DST
    jump skips (e.g. 02:30 on a spring-forward night) is read with the offset before the jump,
    i.e. it falls one hour later on the new clock; a repeated time (autumn) is its first instance.
    """
    local = datetime.combine(order_day, region.cutoff_time, tzinfo=region_zone(region))
    return local.astimezone(UTC)


def order_day_for(region: Region, placed_at: datetime) -> date:
    """The local day whose cutoff an order placed at `placed_at` is counted against."""
    if placed_at.tzinfo is None:
        raise ValueError("placed_at must be timezone-aware")
    local_day = placed_at.astimezone(region_zone(region)).date()
    if placed_at < cutoff_instant(region, local_day):  # the one comparison of rule 1
        return local_day
    return local_day + timedelta(days=1)


def delivery_date_for(region: Region, placed_at: datetime) -> date:
    """The delivery date of the wave an order placed at `placed_at` falls into."""
    return order_day_for(region, placed_at) + timedelta(days=region.delivery_offset_days)


def cutoff_for_delivery(region: Region, delivery_date: date) -> datetime:
    """The UTC instant at which the wave for `delivery_date` is cut off."""
    return cutoff_instant(region, delivery_date - timedelta(days=region.delivery_offset_days))


def local_time(region: Region, instant: datetime) -> datetime:
    """An instant as the region's wall clock shows it."""
    return instant.astimezone(region_zone(region))


def _wave_advisory_lock(
    session: Session, region: Region, delivery_date: date, *, exclusive: bool
) -> None:
    """The lock is named within the schema (`current_schema()`): advisory locks are the whole
    database's, and two schemas of one database (the tests' workers) must not share a wave's."""
    key = f"cutoff:{region.id}:{delivery_date.isoformat()}"
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    session.execute(
        text(f"SELECT {function}(hashtextextended(current_schema() || ':' || :k, 0))"), {"k": key}
    )


def ensure_wave(
    session: Session, region: Region, delivery_date: date, *, lock: str | None = None
) -> Wave:
    """The region's wave for a delivery date, created open if it does not exist yet.

    lock="share" (order intake) or "update" (cutoff) serialises an order and the cutoff of its
    wave on PostgreSQL; SQLite serialises writers already. The wave's advisory lock is taken
    first, shared or exclusive: PostgreSQL queues heavyweight locks fairly, so a cutoff waits for
    the orders in flight and the orders after it wait for the cutoff. A row lock alone is not
    fair: FOR SHARE lockers whose transactions overlap keep a FOR UPDATE waiting for as long as
    orders keep coming (a cutoff at a busy deadline starved until the ordering stopped).
    The wave is read first (it exists for all but the day's first order); only a missing one is
    inserted, with ON CONFLICT DO NOTHING, so that a race still resolves to one row.
    """
    query = select(Wave).where(Wave.region_id == region.id, Wave.delivery_date == delivery_date)
    if lock and is_postgres(session):
        _wave_advisory_lock(session, region, delivery_date, exclusive=(lock == "update"))
        query = query.with_for_update(read=(lock == "share"))
    query = query.execution_options(populate_existing=True)
    wave = session.scalars(query).first()
    if wave is not None:
        return wave
    insert_ignore(
        session,
        Wave.__table__,
        {
            "region_id": region.id,
            "delivery_date": delivery_date,
            "status": WaveStatus.OPEN.value,
            "cutoff_due_at": cutoff_for_delivery(region, delivery_date),
        },
        ["region_id", "delivery_date"],
    )
    return session.scalars(query).one()


def get_wave(session: Session, *, region_code: str, delivery_date: date) -> Wave:
    wave = session.scalars(
        select(Wave)
        .join(Region)
        .where(Region.code == region_code, Wave.delivery_date == delivery_date)
    ).first()
    if wave is None:
        raise NotFound(f"no wave for region {region_code} on {delivery_date.isoformat()}")
    return wave
