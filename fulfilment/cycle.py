"""The order cycle: which delivery date an order belongs to, and when a wave's cutoff falls.

Rule 1 of DESIGN.md lives here, in one comparison: an order placed strictly before the
cutoff instant of its local day belongs to that day's cycle; at or after it, to the next.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from .models import Region


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
