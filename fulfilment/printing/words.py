"""The words a printed document shows, in the reader's language.

Renderers take a `gettext` (the web passes the signed-in user's catalogue, the CLI the one of
`--lang`); the msgids live in this area and in its templates, and the web's catalogue holds
their Chinese (tests/web/test_i18n.py reads this area too).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, format_time

Gettext = Callable[[str], str]

# The zone mark on a crate label is always Chinese: it is read from across the loading dock,
# whatever language the sheet around it is printed in.
ZONE_MARK = {"ambient": "常温", "chilled": "冷藏", "frozen": "冷冻"}


def zone_words(_: Gettext, zone: str) -> str:
    return {"ambient": _("Ambient"), "chilled": _("Chilled"), "frozen": _("Frozen")}.get(zone, zone)


def local_datetime(instant: datetime | None, tz: str, locale: str) -> str:
    if instant is None:
        return ""
    return format_datetime(instant, "short", tzinfo=ZoneInfo(tz), locale=locale)


def local_clock(instant: datetime | None, tz: str, locale: str) -> str:
    if instant is None:
        return ""
    return format_time(instant, "HH:mm", tzinfo=ZoneInfo(tz), locale=locale)


def day(value: date, locale: str) -> str:
    return format_date(value, "medium", locale=locale)
