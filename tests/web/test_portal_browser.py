"""The portal end to end in Debian's Chromium (Playwright), against the app served by gunicorn
on 127.0.0.1 with PostgreSQL: a leader's morning on a 360×740 phone, in Chinese."""

import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS, browser_or_skip, served_by_gunicorn
from portal_factories import PASSWORD, make_portal_world
from sqlalchemy import func, select

from fulfilment.core.db import make_engine, make_session_factory, session_scope
from fulfilment.core.models import Product, Refund


@pytest.fixture
def served(pg_url, tmp_path):
    """The portal world on PostgreSQL, served by gunicorn (2 workers) on a free local port."""
    engine = make_engine(pg_url)
    with session_scope(make_session_factory(engine)) as s:
        world = make_portal_world(s, member_name="张小明")
        skus = dict(s.execute(select(Product.sku, Product.id)).all())
    env = {
        "GROUPBUY_ENV": "test",
        "GROUPBUY_DATABASE_URL": pg_url,
        "GROUPBUY_INSTANCE_DIR": str(tmp_path / "instance"),
    }
    with served_by_gunicorn(env) as base:
        yield base, world, skus, engine
    engine.dispose()


def test_a_leaders_morning_on_a_phone_in_chinese(served, tmp_path):
    """Leader L1 signs in on a 360×740 phone in Chinese, confirms arrival with one MILK short put
    on a chosen member's order, verifies two pickups by code (a wrong code first, with a clear
    message), and sees the not-collected list shrink; leader L2 gets 404 for L1's order."""
    base, world, skus, engine = served
    shots = tmp_path / "screenshots"
    shots.mkdir()
    sync_playwright = browser_or_skip()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        phone = browser.new_context(
            viewport={"width": 360, "height": 740}, locale="zh-CN", device_scale_factor=2
        )
        page = phone.new_page()
        page.goto(base + "/leader/today")
        assert "/login" in page.url
        page.fill("#username", "leader1")
        page.fill("#password", PASSWORD)
        page.screenshot(path=str(shots / "01-login.png"))
        page.click("button[type=submit]")
        page.wait_for_url("**/leader/today")
        assert "收货时段" in page.content() and "4号袋" in page.content()
        page.screenshot(path=str(shots / "02-today.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= 360  # no sideways scroll

        page.get_by_role("link", name="到货", exact=True).click()
        page.fill(f"#count-{skus['MILK']}", "2")  # 3 expected
        page.get_by_role("button", name="核对").click()
        # Put the short unit on M1's first order instead of the latest one (the default).
        first, latest = world.orders["M1"].line_ids[1], world.orders["M1b"].line_ids[0]
        page.fill(f"#assign-{skus['MILK']}-{latest}", "0")
        page.fill(f"#assign-{skus['MILK']}-{first}", "1")
        page.fill(f"#note-{skus['MILK']}", "少一盒")
        page.screenshot(path=str(shots / "03-arrival-review.png"), full_page=True)
        page.get_by_role("button", name="确认到货").click()
        page.wait_for_url("**/leader/arrival")
        assert "到货已确认" in page.content() and "少一盒" in page.content()
        page.screenshot(path=str(shots / "04-arrival-done.png"), full_page=True)

        page.get_by_role("link", name="未提货").click()
        page.wait_for_load_state()  # the new page whole, not as far as parsed
        assert "未提货（4）" in page.content()
        page.screenshot(path=str(shots / "05-uncollected-before.png"), full_page=True)

        page.get_by_role("link", name="核销").click()
        page.fill("#code", "99999999")
        page.get_by_role("button", name="查找订单").click()
        page.wait_for_load_state()  # the new page whole, not as far as parsed
        assert "没有与此提货码对应的订单" in page.content()
        page.screenshot(path=str(shots / "06-wrong-code.png"), full_page=True)
        for n, member in enumerate(("M2", "M3")):
            page.goto(base + "/leader/pickups")
            page.fill("#code", world.orders[member].pickup_code)
            page.get_by_role("button", name="查找订单").click()
            if n == 0:
                page.screenshot(path=str(shots / "07-found.png"), full_page=True)
            page.get_by_role("button", name="核销此订单").click()
            page.wait_for_url("**/leader/pickups")
            assert "已核销 1 个订单" in page.content()
        page.screenshot(path=str(shots / "08-verified.png"), full_page=True)

        page.get_by_role("link", name="未提货").click()
        page.wait_for_load_state()  # the new page whole, not as far as parsed
        assert "未提货（2）" in page.content()
        page.screenshot(path=str(shots / "09-uncollected-after.png"), full_page=True)

        other = browser.new_context(viewport={"width": 360, "height": 740}, locale="zh-CN")
        page2 = other.new_page()
        page2.goto(base + "/login")
        page2.fill("#username", "leader2")
        page2.fill("#password", PASSWORD)
        page2.click("button[type=submit]")
        page2.wait_for_url("**/leader/today")
        answer = page2.goto(base + f"/leader/orders/{world.orders['M2'].id}")
        assert answer.status == 404
        page2.screenshot(path=str(shots / "10-other-leader-404.png"))
        browser.close()
    with session_scope(make_session_factory(engine)) as s:
        owed = s.execute(
            select(Refund.order_line_id, func.count())
            .where(Refund.reason == "shortage")
            .group_by(Refund.order_line_id)
        ).all()
    assert owed == [(first, 1)]
    print(f"screenshots: {shots}")
