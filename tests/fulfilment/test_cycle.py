"""The cutoff rule (DESIGN rule 1 and 7): one comparison, the region's wall clock, DST included."""

from datetime import UTC, date, datetime, time, timedelta

from fulfilment.core.models import Region
from fulfilment.waves.cycle import cutoff_for_delivery, cutoff_instant, delivery_date_for


def region(tz="Asia/Shanghai", cutoff=time(23, 0), offset=1) -> Region:
    return Region(
        code="R", name="R", tz=tz, cutoff_time=cutoff, delivery_offset_days=offset, lat=0.0, lon=0.0
    )


def test_order_at_the_exact_cutoff_instant_goes_to_the_next_wave():
    """Placed at 23:00:00.000000 Shanghai time: the next cycle; one microsecond earlier: this one."""
    r = region()
    cutoff = datetime(2026, 3, 9, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai (UTC+8)
    assert cutoff_instant(r, date(2026, 3, 9)) == cutoff
    assert delivery_date_for(r, cutoff - timedelta(microseconds=1)) == date(2026, 3, 10)
    assert delivery_date_for(r, cutoff) == date(2026, 3, 11)


def test_local_midnight_belongs_to_the_new_day():
    """00:30 local is after yesterday's cutoff and before today's: delivered tomorrow."""
    r = region()
    placed = datetime(2026, 3, 9, 16, 30, tzinfo=UTC)  # 00:30 on the 10th in Shanghai
    assert delivery_date_for(r, placed) == date(2026, 3, 11)


def test_cutoff_follows_the_wall_clock_across_dst():
    """In New York the 23:00 cutoff is 04:00 UTC in winter and 03:00 UTC in summer."""
    r = region(tz="America/New_York")
    assert cutoff_instant(r, date(2026, 3, 7)) == datetime(2026, 3, 8, 4, 0, tzinfo=UTC)
    assert cutoff_instant(r, date(2026, 3, 8)) == datetime(2026, 3, 9, 3, 0, tzinfo=UTC)
    assert cutoff_instant(r, date(2026, 11, 1)) == datetime(2026, 11, 2, 4, 0, tzinfo=UTC)
    # An order at 22:59 local on the spring-forward day still makes that day's cut.
    assert delivery_date_for(r, datetime(2026, 3, 9, 2, 59, tzinfo=UTC)) == date(2026, 3, 9)


def test_a_skipped_wall_time_is_read_with_the_offset_before_the_jump():
    """A 02:30 cutoff on the night clocks jump from 02:00 to 03:00 falls at 03:30 EDT (07:30 UTC)."""
    r = region(tz="America/New_York", cutoff=time(2, 30))
    assert cutoff_instant(r, date(2026, 3, 8)) == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)


def test_delivery_offset_and_inverse_agree():
    """cutoff_for_delivery is the inverse of delivery_date_for at the boundary, for any offset."""
    for offset in (0, 1, 2):
        r = region(offset=offset)
        due = cutoff_for_delivery(r, date(2026, 5, 20))
        assert delivery_date_for(r, due - timedelta(seconds=1)) == date(2026, 5, 20)
        assert delivery_date_for(r, due) == date(2026, 5, 21)
