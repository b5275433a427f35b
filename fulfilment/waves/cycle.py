"""The order cycle: which delivery date an order belongs to, when a wave's cutoff falls, and the
wave of a delivery date (created open on the day's first order).

Rule 1 of DESIGN.md lives here, in one comparison: an order placed strictly before the
cutoff instant of its local day belongs to that day's cycle; at or after it, to the next.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, bindparam, func, select
from sqlalchemy.orm import Session

from fulfilment.core.db import advisory_xact_lock, insert_ignore, is_postgres
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


def wave_lock_key(region: Region, delivery_date: date) -> str:
    """The name of a wave's advisory lock (PostgreSQL), within the schema: advisory locks are
    the whole database's, and two schemas of one database (the tests' workers) must not share a
    wave's."""
    return f"cutoff:{region.id}:{delivery_date.isoformat()}"


def shared_wave_lock(key: ColumnElement[str]) -> ColumnElement[Any]:
    """The wave's shared lock as an expression, to take it within another query (order intake
    takes it with its leader's row); `key` is `wave_lock_key`'s, bound."""
    return func.pg_advisory_xact_lock_shared(
        func.hashtextextended(func.current_schema().op("||")(":").op("||")(key), 0)
    )


def _wave_advisory_lock(
    session: Session, region: Region, delivery_date: date, *, exclusive: bool
) -> None:
    advisory_xact_lock(session, wave_lock_key(region, delivery_date), shared=not exclusive)


_WAVE_OF_DAY = select(Wave).where(
    Wave.region_id == bindparam("region_id"), Wave.delivery_date == bindparam("delivery_date")
)
_WAVE_QUERIES = {
    lock: (
        _WAVE_OF_DAY.with_for_update(read=(lock == "share")) if lock else _WAVE_OF_DAY
    ).execution_options(populate_existing=True)
    for lock in (None, "share", "update")
}


def ensure_wave(
    session: Session,
    region: Region,
    delivery_date: date,
    *,
    lock: str | None = None,
    locked: bool = False,
) -> Wave:
    """The region's wave for a delivery date, created open if it does not exist yet.

    lock="share" (order intake) or "update" (cutoff) serialises an order and the cutoff of its
    wave on PostgreSQL; SQLite serialises writers already. The wave's advisory lock is taken
    first, shared or exclusive: PostgreSQL queues heavyweight locks fairly, so a cutoff waits for
    the orders in flight and the orders after it wait for the cutoff. A row lock alone is not
    fair: FOR SHARE lockers whose transactions overlap keep a FOR UPDATE waiting for as long as
    orders keep coming (a cutoff at a busy deadline starved until the ordering stopped).
    The wave is read first (it exists for all but the day's first order); only a missing one is
    inserted, with ON CONFLICT DO NOTHING, so that a race still resolves to one row. `locked`:
    the caller has taken the advisory lock already (`shared_wave_lock`).
    """
    postgres = is_postgres(session)
    if lock and postgres and not locked:
        _wave_advisory_lock(session, region, delivery_date, exclusive=(lock == "update"))
    query = _WAVE_QUERIES[lock if postgres else None]
    params = {"region_id": region.id, "delivery_date": delivery_date}
    wave = session.scalars(query, params).first()
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
    return session.scalars(query, params).one()


def get_wave(session: Session, *, region_code: str, delivery_date: date) -> Wave:
    wave = session.scalars(
        select(Wave)
        .join(Region)
        .where(Region.code == region_code, Wave.delivery_date == delivery_date)
    ).first()
    if wave is None:
        raise NotFound(f"no wave for region {region_code} on {delivery_date.isoformat()}")
    return wave
