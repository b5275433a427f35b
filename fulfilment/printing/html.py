"""The documents as HTML pages with print CSS (templates/printing/), for the browser and for
saving: standalone pages (their CSS inline), A4 with a page per leader, station or route and
table headers repeated on every printed page."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from .words import Gettext, day, local_clock, local_datetime, zone_words

TEMPLATES = Path(__file__).parent / "templates"


@cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def render_html(template: str, *, _: Gettext, locale: str, **context: Any) -> bytes:
    env = _environment().overlay()
    env.install_gettext_callables(  # type: ignore[attr-defined]
        lambda s, **kw: _(s) % kw if kw else _(s),
        lambda s, p, n, **kw: (_(s) if n == 1 else _(p)) % {"num": n, **kw},
        newstyle=False,
    )
    env.globals.update(
        zone=lambda z: zone_words(_, z),
        day=lambda d: day(d, locale),
        local_datetime=lambda t, tz: local_datetime(t, tz, locale),
        local_clock=lambda t, tz: local_clock(t, tz, locale),
        lang="zh-CN" if locale.startswith("zh") else "en",
    )
    return env.get_template(f"printing/{template}").render(**context).encode("utf-8")
