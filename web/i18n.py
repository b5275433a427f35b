"""Languages (Flask-Babel): Simplified Chinese and English; dates, times and money per locale.

The locale comes from the signed-in account, then the browser's Accept-Language, else Chinese.
The catalogue folder is `zh_Hans_CN` (current Babel ignores a `zh_CN` folder); the compiled
`.mo` is committed beside its `.po`, and a test checks that the two agree.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, format_time
from babel.numbers import format_decimal
from flask import Flask, request
from flask_babel import Babel, get_locale
from flask_babel import gettext as _
from flask_login import current_user

TRANSLATIONS = Path(__file__).parent / "translations"
CHINESE, ENGLISH = "zh_Hans_CN", "en"
LOCALES = (CHINESE, ENGLISH)


def select_locale() -> str:
    if current_user and current_user.is_authenticated and current_user.locale in LOCALES:
        return current_user.locale
    for tag, _quality in request.accept_languages:
        tag = tag.lower()
        if tag.startswith("zh"):
            return CHINESE
        if tag.startswith("en"):
            return ENGLISH
    return CHINESE


def money(cents: int) -> str:
    """12345 → 123.45 元 (Chinese) or ¥123.45 (English): two decimals from integer cents."""
    amount = format_decimal(cents / 100, format="#,##0.00", locale=str(get_locale()))
    return _("¥%(amount)s", amount=amount)


def local_datetime(instant: datetime | None, tz: str, fmt: str = "medium") -> str:
    """An instant in the region's zone, formatted for the locale."""
    if instant is None:
        return ""
    return format_datetime(instant, fmt, tzinfo=ZoneInfo(tz), locale=str(get_locale()))


def local_clock(instant: datetime | None, tz: str) -> str:
    if instant is None:
        return ""
    return format_time(instant, "short", tzinfo=ZoneInfo(tz), locale=str(get_locale()))


def day(value: date | None, fmt: str = "medium") -> str:
    return "" if value is None else format_date(value, fmt, locale=str(get_locale()))


def init_i18n(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", CHINESE)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    Babel(app, locale_selector=select_locale)
    app.jinja_env.filters.update(money=money, day=day)
    app.jinja_env.globals.update(
        local_datetime=local_datetime, local_clock=local_clock, current_locale=get_locale
    )
