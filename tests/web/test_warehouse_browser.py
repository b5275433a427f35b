"""The warehouse desk in Debian's Chromium (Playwright), served by gunicorn on PostgreSQL: the
sorting lists on a 360 px handheld and printed from the browser, and (printing) the wave's hub."""

import io
from datetime import UTC, datetime

import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS, browser_or_skip, served_by_gunicorn
from crate_factories import publish
from portal_factories import PASSWORD
from sqlalchemy import select

from fulfilment.accounts.models import Role
from fulfilment.accounts.services import create_user
from fulfilment.catalogue.sites import get_region
from fulfilment.core.db import make_engine, make_session_factory, session_scope
from fulfilment.core.models import Leader, PickLevel, PickLine
from fulfilment.demo.city import build_demo
from fulfilment.waves.cutoff import cut_off_wave

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def served(pg_module_url, tmp_path_factory):
    """A cut-off demo wave (12 leaders) with its plan published, on PostgreSQL served by
    gunicorn; a warehouse user reading Chinese. One for the module: its tests only read."""
    pg_url = pg_module_url
    tmp_path = tmp_path_factory.mktemp("served")
    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    with session_scope(sessions) as s:
        summary = build_demo(s, seed=5, leaders=12, orders=150, now=NOW)
    with session_scope(sessions) as s:
        wave, _ = cut_off_wave(
            s, region=get_region(s, "SH"), delivery_date=summary.delivery_date, now=NOW
        )
        wave_id = wave.id
        create_user(
            s,
            username="wh",
            password=PASSWORD,
            role=Role.WAREHOUSE,
            region_code="SH",
            locale="zh_Hans_CN",
        )
    publish(sessions, wave_id, now=NOW)
    env = {
        "GROUPBUY_ENV": "test",
        "GROUPBUY_DATABASE_URL": pg_url,
        "GROUPBUY_INSTANCE_DIR": str(tmp_path / "instance"),
    }
    with served_by_gunicorn(env) as base:
        yield base, wave_id, sessions
    engine.dispose()


def _sign_in(page, base):
    page.goto(base + "/login")
    page.fill("#username", "wh")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")


def test_sorting_lists_on_a_360px_handheld_and_printed(served, tmp_path):
    """At 360 px the sorting lists filter by station and leader, bin codes stay on one line and
    column headers are not stacked a character a line; printed from the browser, each leader
    starts a page and every page repeats the table's header."""
    from pypdf import PdfReader

    base, wave_id, sessions = served
    with session_scope(sessions) as s:
        leader = s.scalars(  # a leader with goods in the wave
            select(Leader)
            .join(PickLine, PickLine.leader_id == Leader.id)
            .where(PickLine.level == PickLevel.LEADER)
            .order_by(Leader.code)
        ).first()
        code, station = leader.code, leader.station.code
    sync_playwright = browser_or_skip()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        phone = browser.new_context(viewport={"width": 360, "height": 740}, locale="zh-CN")
        page = phone.new_page()
        _sign_in(page, base)
        page.goto(f"{base}/waves/{wave_id}/leaders")
        page.select_option("#station", station)
        page.click("form.filters button[type=submit]")
        page.wait_for_url(f"**/leaders?station={station}*")
        page.screenshot(path=str(tmp_path / "leaders-360.png"), full_page=True)
        lines = (
            "cells => cells.map(c => { const r = document.createRange();"
            " r.selectNodeContents(c); return new Set([...r.getClientRects()].map(b => b.top)).size; })"
        )
        bins = page.eval_on_selector_all("td.bin", lines)
        heads = page.eval_on_selector_all("th", lines)
        assert bins and max(bins) == 1, bins  # a bin code on one line
        assert max(heads) == 1, heads  # headers on one line (the table scrolls sideways)
        page.fill("#leader", code)
        page.click("form.filters button[type=submit]")
        page.wait_for_url(f"**leader={code}*")
        assert page.locator("section.sorting-list").count() == 1

        page.goto(f"{base}/waves/{wave_id}/leaders?station={station}")
        shown = page.locator("section.sorting-list h2").all_inner_texts()
        pdf = PdfReader(io.BytesIO(page.pdf(format="A4")))
        browser.close()
    starts = [p.extract_text().strip() for p in pdf.pages]
    heading_pages = [i for i, text in enumerate(starts) if any(h.split()[0] in text for h in shown)]
    # each leader's heading is on a page of its own: as many such pages as leaders shown
    leader_first = [next(i for i, text in enumerate(starts) if h.split()[0] in text) for h in shown]
    assert len(set(leader_first)) == len(shown), (leader_first, heading_pages)
    assert all("袋号" in text or "Bag" in text for text in starts[1:]), "headers repeated"


def test_warehouse_user_prints_every_pdf_from_the_hub(served, tmp_path):
    """At 1280 px a warehouse user goes from the start page to the wave's print hub and
    downloads every document as PDF: each is a PDF with pages, in Chinese, with its fonts."""
    from printing_support import pdf_fonts, pdf_text

    from fulfilment.printing.render import FORMATS

    base, wave_id, _sessions = served
    sync_playwright = browser_or_skip()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        desk = browser.new_context(
            viewport={"width": 1280, "height": 900}, locale="zh-CN", accept_downloads=True
        )
        page = desk.new_page()
        _sign_in(page, base)
        page.get_by_role("link", name="打印", exact=True).first.click()
        page.wait_for_url(f"**/warehouse/waves/{wave_id}")
        page.screenshot(path=str(tmp_path / "hub-1280.png"), full_page=True)
        links = page.locator("a.download[data-format=pdf]")
        assert links.count() == len(FORMATS)
        for n in range(links.count()):
            link = links.nth(n)
            kind = link.get_attribute("data-kind")
            with page.expect_download() as event:
                link.click()
            path = tmp_path / f"{kind}.pdf"
            event.value.save_as(path)
            content = path.read_bytes()
            assert content.startswith(b"%PDF"), kind
            assert all(embedded for _name, embedded in pdf_fonts(content)), kind
            text = pdf_text(content)
            assert "波次" in text or "网格站" in text, kind
        # on a phone the hub reads top to bottom: nothing wider than the screen, a station's
        # links folded until asked for
        phone = browser.new_context(viewport={"width": 360, "height": 740}, locale="zh-CN")
        page = phone.new_page()
        _sign_in(page, base)
        page.goto(f"{base}/warehouse/waves/{wave_id}")
        page.wait_for_load_state()
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        sorting = page.locator("#doc-sorting")
        assert "整个波次：" in sorting.inner_text()
        station_pdfs = sorting.locator("details a", has_text="PDF")
        assert station_pdfs.count() >= 1 and not station_pdfs.first.is_visible()
        sorting.locator("summary").click()
        assert station_pdfs.first.is_visible()
        page.screenshot(path=str(tmp_path / "hub-360.png"), full_page=True)
        browser.close()
