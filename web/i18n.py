"""Languages (Flask-Babel): Simplified Chinese and English; dates, times and money per locale.

The locale comes from the signed-in account, then the browser's Accept-Language, else Chinese.
The catalogue folder is `zh_Hans_CN` (current Babel ignores a `zh_CN` folder); the compiled
`.mo` is committed beside its `.po`, and a test checks that the two agree.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import (
    DateTimePattern,
    format_date,
    format_datetime,
    get_time_format,
    parse_pattern,
)
from babel.numbers import format_decimal
from babel.support import NullTranslations
from flask import Flask, g, request
from flask_babel import Babel, get_locale, get_translations
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


@functools.lru_cache(maxsize=8)
def _short_time(locale: str) -> tuple[Locale, DateTimePattern]:
    """The locale and its parsed short time pattern: parsed once, not once per cell of a table
    (a route table of 300 rows formatted 600 clocks)."""
    parsed = Locale.parse(locale)
    return parsed, parse_pattern(get_time_format("short", locale=parsed))


def local_clock(instant: datetime | None, tz: str) -> str:
    """An instant's wall-clock time in the region's zone, in the locale's short form (08:15)."""
    if instant is None:
        return ""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    key = g.get("_clock_locale")
    if key is None:  # Flask-Babel's lookup, once per request rather than once per cell
        key = g._clock_locale = str(get_locale())
    locale, pattern = _short_time(key)
    return pattern.apply(instant.astimezone(ZoneInfo(tz)), locale)


def day(value: date | None, fmt: str = "medium") -> str:
    return "" if value is None else format_date(value, fmt, locale=str(get_locale()))


def _request_translations() -> NullTranslations:
    """The request's catalogue, looked up through Flask-Babel once per request: a page of 50
    orders says 150 words, and Flask-Babel's own lookup walks its contexts on every one."""
    translations = g.get("_translations")
    if translations is None:
        translations = g._translations = get_translations()
    return translations


def init_i18n(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", CHINESE)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    Babel(app, locale_selector=select_locale)
    # Templates translate through the request's catalogue (newstyle, as Flask-Babel installs:
    # Jinja escapes and fills the %(name)s variables).
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]  # jinja2.ext.i18n's
        gettext=lambda s: _request_translations().ugettext(s),
        ngettext=lambda s, p, n: _request_translations().ungettext(s, p, n),
        pgettext=lambda c, s: _request_translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: _request_translations().unpgettext(c, s, p, n),
        newstyle=True,
    )
    app.jinja_env.filters.update(money=money, day=day)
    app.jinja_env.globals.update(
        local_datetime=local_datetime, local_clock=local_clock, current_locale=get_locale
    )
