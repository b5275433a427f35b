"""Chinese and English: every string a template, view or flash shows is in the Chinese
catalogue; the compiled catalogue matches it; the locale follows the account, then the browser;
money, dates and times are formatted per locale in the region's zone."""

import io
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from portal_factories import login, make_portal_world

from fulfilment.core.db import session_scope

WEB = Path(__file__).resolve().parents[2] / "web"
# Printed documents are laid out in fulfilment/printing with the reader's gettext: its strings
# are in the same catalogue.
PRINTING = WEB.parent / "fulfilment" / "printing"
PO = WEB / "translations" / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}


def _catalogue():
    with PO.open("rb") as f:
        return read_po(f, locale="zh_Hans_CN")


def test_every_shown_string_has_a_chinese_translation():
    """Each msgid found in web/ and in fulfilment/printing (templates and Python: pages, flashes,
    errors, printed documents) has a non-empty,
    non-fuzzy Chinese translation; a new untranslated string fails this test."""
    found = set()
    for folder in (WEB, PRINTING):
        for _file, _line, message, _comments, _ctx in extract_from_dir(
            str(folder),
            method_map=[("**/templates/**.html", "jinja2"), ("**.py", "python")],
            keywords=KEYWORDS,
        ):
            found.add(message if isinstance(message, str) else message[0])
    catalogue = _catalogue()
    missing = sorted(
        m
        for m in found
        if not (catalogue.get(m) and catalogue[m].string and not catalogue[m].fuzzy)
    )
    assert len(found) > 100
    assert missing == []


def test_compiled_catalogue_matches_the_po_file():
    """The committed .mo is the compiled .po (a fresh clone needs no compile step)."""

    def key(value):  # a plural message's id and strings are sequences
        return tuple(value) if isinstance(value, list | tuple) else value

    with MO.open("rb") as f:
        compiled = {key(m.id): key(m.string) for m in read_mo(f) if m.id}
    expected = {key(m.id): key(m.string) for m in _catalogue() if m.id}
    assert compiled == expected
    buf = io.BytesIO()
    write_mo(buf, _catalogue())  # compiles cleanly
    assert buf.getvalue()


def test_no_zh_CN_folder_that_babel_would_ignore():
    """The catalogue lives in zh_Hans_CN; a zh_CN folder would be silently ignored by Babel."""
    folders = {p.name for p in (WEB / "translations").iterdir() if p.is_dir()}
    assert folders == {"zh_Hans_CN"}


@pytest.fixture
def portal(app):
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        return make_portal_world(s)


def test_locale_from_browser_then_account(app, client, portal):
    """Signed out, Accept-Language decides; a signed-in account's locale wins over it; the
    language switch changes the account's locale and is audited."""
    assert "登录" in client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).text
    assert "Sign in" in client.get("/login", headers={"Accept-Language": "en-US,en;q=0.9"}).text
    assert "登录" in client.get("/login").text  # Chinese by default
    login(client, "admin")  # an account with locale en
    assert "Regions" in client.get("/", headers={"Accept-Language": "zh-CN"}).text
    from portal_factories import csrf_token

    token = csrf_token(client, "/")
    client.post("/account/locale", data={"locale": "zh_Hans_CN", "csrf_token": token, "next": "/"})
    assert "区域" in client.get("/", headers={"Accept-Language": "en"}).text


# Formatting only, no query: on SQLite.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_money_dates_and_times_per_locale(app):
    """Money shows two decimals from cents (元 in Chinese, ¥ in English); dates and times are
    formatted per locale in the region's time zone."""
    from web.i18n import day, local_datetime, money

    instant = datetime(2026, 3, 9, 15, 1, tzinfo=UTC)  # 23:01 in Shanghai
    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        assert money(123456) == "1,234.56 元"
        assert money(5) == "0.05 元"
        assert day(date(2026, 3, 10)) == "2026年3月10日"
        assert "23:01" in local_datetime(instant, "Asia/Shanghai", "short")
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert money(123456) == "¥1,234.56"
        assert day(date(2026, 3, 10)) == "Mar 10, 2026"
        assert "11:01" in local_datetime(instant, "Asia/Shanghai", "short")


# The language only, on SQLite: its pages on PostgreSQL are in the English tests.
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_leader_pages_in_chinese(app, client, portal):
    """A leader with a Chinese browser sees the portal in Chinese: tabs, zones, bag names."""
    login(client, "leader1")
    page = client.get("/leader/today", headers={"Accept-Language": "zh-CN"}).text
    for text in ("今日", "到货", "核销", "未提货", "冷藏", "4号袋", "收货时段"):
        assert text in page, text
