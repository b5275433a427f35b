"""Crates end to end in Debian's Chromium (Playwright), against the app served by gunicorn on
127.0.0.1 with PostgreSQL: a leader on a 360×740 phone in Chinese types two crate codes on
arrival and finds the counts filled in from them; a warehouse user loads a truck at 1280 px."""

import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS, browser_or_skip, served_by_gunicorn
from crate_factories import crate_wave, publish
from portal_factories import PASSWORD
from sqlalchemy import select

from fulfilment.accounts.services import create_user
from fulfilment.core.db import make_engine, make_session_factory, session_scope
from fulfilment.core.models import Leader, Product, Wave
from fulfilment.handovers.scans import list_loading_routes, loading_states
from fulfilment.night.crate_routes import crates_of_wave


@pytest.fixture
def served(pg_url, tmp_path):
    """A published crate wave on PostgreSQL, served by gunicorn (2 workers)."""
    engine = make_engine(pg_url)
    sessions = make_session_factory(engine)
    with session_scope(sessions) as s:
        _, wave = crate_wave(s)
        create_user(s, username="leader1", password=PASSWORD, role="leader", leader_code="L1")
        create_user(s, username="wh", password=PASSWORD, role="warehouse", region_code="SH")
        wave_id = wave.id
    publish(sessions, wave_id)
    env = {
        "GROUPBUY_ENV": "test",
        "GROUPBUY_DATABASE_URL": pg_url,
        "GROUPBUY_INSTANCE_DIR": str(tmp_path / "instance"),
    }
    with served_by_gunicorn(env) as base:
        yield base, wave_id, sessions
    engine.dispose()


def _sign_in(page, base, username):
    page.goto(base + "/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")


def test_a_leader_types_two_crate_codes_and_finds_the_counts_filled_in(served, tmp_path):
    """Leader L1 (five ambient crates of apples, one chilled, one frozen) types two crate codes
    on the arrival page, one in lower case as a phone keyboard gives it; the page says 2 of 7
    scanned and the apple count is what the two crates hold, the rest counted short; a code of
    another point is refused in Chinese. The page fits 360 px."""
    base, wave_id, sessions = served
    with session_scope(sessions) as s:
        l1 = s.scalars(select(Leader).where(Leader.code == "L1")).one()
        mine = crates_of_wave(s, wave_id, leader=l1.id)
        other = next(c for c in crates_of_wave(s, wave_id, contents=False) if c.leader_id != l1.id)
        apple = s.scalar(select(Product.id).where(Product.sku == "APPLE"))
    in_two = sum(ln.quantity for c in mine[:2] for b in c.contents for ln in b.lines)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    sync_playwright = browser_or_skip()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        phone = browser.new_context(
            viewport={"width": 360, "height": 740}, locale="zh-CN", device_scale_factor=2
        )
        page = phone.new_page()
        _sign_in(page, base, "leader1")
        page.wait_for_url("**/leader/today")
        page.get_by_role("link", name="到货", exact=True).click()
        page.wait_for_load_state()  # the new page whole, not as far as parsed
        assert f"周转箱：已扫 0 / {len(mine)}" in page.content()
        assert page.input_value(f"#count-{apple}") == "120"
        for n, crate in enumerate(mine[:2]):
            page.fill("#code", crate.code.lower() if n else crate.code)
            page.get_by_role("button", name="记录周转箱").click()
            page.wait_for_url("**/leader/arrival")
            assert f"周转箱 {crate.code} 已到。" in page.content()
        assert f"周转箱：已扫 2 / {len(mine)}" in page.content()
        assert page.input_value(f"#count-{apple}") == str(in_two)
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        page.screenshot(path=str(shots / "01-arrival-prefilled.png"), full_page=True)
        page.fill("#code", other.code)
        page.get_by_role("button", name="记录周转箱").click()
        page.wait_for_load_state()  # the new page whole, not as far as parsed
        assert f"周转箱 {other.code} 属于其他自提点" in page.content()
        page.screenshot(path=str(shots / "02-other-point-refused.png"), full_page=True)
        page.fill(f"#count-{apple}", str(in_two + 1))  # still editable before confirming
        assert page.input_value(f"#count-{apple}") == str(in_two + 1)
        browser.close()
    print(f"screenshots: {shots}")


def test_a_warehouse_user_loads_a_truck_in_load_order(served, tmp_path):
    """At 1280 px the truck's page lists its crates in load order; a scan moves the count."""
    base, wave_id, sessions = served
    with session_scope(sessions) as s:
        route = list_loading_routes(s, wave=s.get(Wave, wave_id))[0][0]
        crates = [c for c, _ in loading_states(s, route_id=route.id)]
        route_id = route.id
    shots = tmp_path / "screenshots"
    shots.mkdir()
    sync_playwright = browser_or_skip()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        desk = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        page = desk.new_page()
        _sign_in(page, base, "wh")
        page.goto(base + f"/waves/{wave_id}/loading")
        page.get_by_role("link", name=route.vehicle_code).click()
        page.wait_for_url(f"**/loading/{route_id}")
        page.fill("#code", crates[0].code)
        with page.expect_navigation(url=f"**/loading/{route_id}"):
            page.keyboard.press("Enter")  # as a USB scanner ends its code
        assert f"已扫 1 / {len(crates)} 箱" in page.content()
        page.screenshot(path=str(shots / "03-loading.png"), full_page=True)
        browser.close()
    print(f"screenshots: {shots}")
