"""The leader's desk in Debian's Chromium (Playwright) on a 360×740 phone in Chinese, against
the app served by gunicorn with PostgreSQL: a member's three bags handed over by phone tail, the
scan button only where the browser can scan, and touch targets a thumb can hit."""

import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS, browser_or_skip, served_by_gunicorn
from portal_factories import PASSWORD, make_portal_world
from sqlalchemy import select

from fulfilment.core.db import make_engine, make_session_factory, session_scope
from fulfilment.points.pickups import Pickup

PHONE = {"viewport": {"width": 360, "height": 740}, "locale": "zh-CN", "device_scale_factor": 2}
NO_SCANNER = "delete window.BarcodeDetector;"
# A browser that can scan: BarcodeDetector reads the code from a camera that is a canvas.
FAKE_SCANNER = """
window.BarcodeDetector = class { detect() { return Promise.resolve([{rawValue: "%s"}]); } };
navigator.mediaDevices.getUserMedia = async () => {
  const canvas = document.createElement("canvas");
  canvas.width = 64; canvas.height = 64;
  canvas.getContext("2d").fillRect(0, 0, 64, 64);
  return canvas.captureStream(5);
};
"""
# Every control a thumb may press that is on screen: its size as laid out.
SMALL_TARGETS = """() => [...document.querySelectorAll(
    'a[href], button, input:not([type=hidden]), select, textarea, summary')]
  .filter((el) => el.getClientRects().length > 0)
  .map((el) => { const r = el.getBoundingClientRect();
    return {what: el.outerHTML.slice(0, 90), w: Math.round(r.width), h: Math.round(r.height)}; })
  .filter((t) => t.w < 44 || t.h < 44)"""
# Table headers that wrap onto a second line (squeezed) at this width.
WRAPPED_HEADERS = """() => [...document.querySelectorAll('th')]
  .filter((th) => th.getClientRects().length > 0)
  .filter((th) => { const range = document.createRange(); range.selectNodeContents(th);
    const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
    return lines.size > 1; })
  .map((th) => th.textContent)"""


@pytest.fixture
def served(pg_url, tmp_path):
    """The portal world, M1 (张小明, phone …5678) with a third order, served by gunicorn."""
    engine = make_engine(pg_url)
    with session_scope(make_session_factory(engine)) as s:
        world = make_portal_world(s, extra=(("M1", "张小明", "13812345678", "L1", [("PRAWN", 1)]),))
    env = {
        "GROUPBUY_ENV": "test",
        "GROUPBUY_DATABASE_URL": pg_url,
        "GROUPBUY_INSTANCE_DIR": str(tmp_path / "instance"),
    }
    with served_by_gunicorn(env) as base:
        yield base, world, engine
    engine.dispose()


def _sign_in(page, base):
    page.goto(base + "/login")
    page.fill("#username", "leader1")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/leader/today")


def _measure(page, shots, name):
    """Screenshot the page; every visible target at least 44 × 44 px, no header squeezed onto
    two lines, nothing wider than the phone."""
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    assert page.evaluate(SMALL_TARGETS) == [], name
    assert page.evaluate(WRAPPED_HEADERS) == [], name
    assert page.evaluate("document.documentElement.scrollWidth") <= 360, name


def test_a_members_three_bags_handed_over_by_phone_tail(served, tmp_path):
    """On a phone without BarcodeDetector the scan button is absent; the leader types 5678,
    sees 张** with bags 1, 4 and 5 and every item of each, hands all three over; every target
    on Today, Arrival, Pickup and Not collected is at least 44 px and no header is squeezed."""
    base, world, engine = served
    shots = tmp_path / "screenshots"
    shots.mkdir()
    sync_playwright = browser_or_skip()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        phone = browser.new_context(**PHONE)
        phone.add_init_script(NO_SCANNER)
        page = phone.new_page()
        _sign_in(page, base)
        _measure(page, shots, "01-today")
        assert "待到货" in page.content() and "收货时段（07:00 – 11:00）已过" in page.content()
        page.get_by_role("link", name="到货", exact=True).click()
        page.wait_for_url("**/leader/arrival")  # loaded: what follows reads the new page
        _measure(page, shots, "02-arrival-count")
        page.get_by_role("button", name="减一").nth(1).click()  # Milk 1L: 3 → 2
        page.get_by_role("button", name="核对").click()
        page.wait_for_load_state()  # the new page whole, not as far as parsed
        _measure(page, shots, "03-arrival-review")
        page.get_by_role("button", name="确认到货").click()
        page.wait_for_url("**/leader/arrival")
        _measure(page, shots, "04-arrival-done")
        page.get_by_role("link", name="未提货").click()
        page.wait_for_url("**/leader/uncollected")
        _measure(page, shots, "05-uncollected")

        page.get_by_role("link", name="核销").click()
        page.wait_for_url("**/leader/pickups")
        scan = page.locator("button", has_text="扫码")
        assert scan.count() == 1 and not scan.is_visible()  # rendered, never shown dead
        _measure(page, shots, "06-pickups")
        page.fill("#tail", "5678")
        page.get_by_role("button", name="按手机尾号查找").click()
        page.wait_for_load_state()  # the new page whole, not as far as parsed
        card = page.locator(".card", has_text="张**")
        for bag in ("1号袋", "4号袋", "5号袋"):
            assert card.get_by_text(bag).count() == 1
        assert card.get_by_text("Milk 1L").count() == 2  # bag 1's and bag 4's
        assert card.get_by_text("Frozen prawns").count() == 1  # bag 5's
        assert card.get_by_text("少 1 件，应退款").count() == 1  # the Milk short on bag 4
        _measure(page, shots, "07-found-by-phone-tail")
        page.get_by_role("button", name="已核对会员，交付 3 袋").click()
        page.wait_for_url("**/leader/pickups")
        assert "已核销 3 个订单。" in page.content()
        page.screenshot(path=str(shots / "08-handed-over.png"), full_page=True)
        browser.close()
    with session_scope(make_session_factory(engine)) as s:
        methods = s.execute(select(Pickup.order_id, Pickup.method).order_by(Pickup.order_id))
        m1 = [world.orders[k].id for k in ("M1", "M1b", "M1c")]
        assert methods.all() == [(order_id, "phone_tail") for order_id in m1]
    print(f"screenshots: {shots}")


def test_the_scan_button_scans_where_the_browser_can(served, tmp_path):
    """Where BarcodeDetector and a camera exist the one scan component shows its button; a code
    it reads fills the field and finds the member's bag (the method sent is "scanned")."""
    base, world, _engine = served
    sync_playwright = browser_or_skip()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        phone = browser.new_context(**PHONE)
        phone.add_init_script(FAKE_SCANNER % world.orders["M2"].pickup_code)
        page = phone.new_page()
        _sign_in(page, base)
        page.goto(base + "/leader/pickups")
        button = page.locator("button[data-scan-for=code]")
        assert button.is_visible()
        with page.expect_request(lambda r: r.method == "POST") as sent:
            button.click()
        assert "method=scanned" in sent.value.post_data
        page.get_by_role("button", name="核销此订单").wait_for()
        assert "2号袋" in page.content()
        page.screenshot(path=str(tmp_path / "scanned.png"), full_page=True)
        browser.close()
