"""The demo pages in a real browser: Debian's Chromium driven by Playwright, against a local server."""

import shutil
import threading
from datetime import UTC, datetime

import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS, browser_or_skip
from werkzeug.serving import make_server

from fulfilment.accounts.models import Role
from fulfilment.accounts.services import create_user
from fulfilment.catalogue.sites import get_region
from fulfilment.core.db import session_scope
from fulfilment.demo.city import build_demo
from fulfilment.waves.cutoff import cut_off_wave
from web import create_app

NOW = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)


@pytest.fixture
def live_demo(tmp_path, sqlite_template):
    """The app with a cut-off demo wave, served on a free local port in a thread."""
    path = tmp_path / "browser.sqlite"
    shutil.copy(sqlite_template, path)
    app = create_app(
        {
            "GROUPBUY_ENV": "test",
            "GROUPBUY_DATABASE_URL": f"sqlite:///{path}",
            "GROUPBUY_INSTANCE_DIR": str(tmp_path),
        }
    )
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        summary = build_demo(s, seed=5, leaders=12, orders=150, now=NOW)
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        cut_off_wave(s, region=get_region(s, "SH"), delivery_date=summary.delivery_date, now=NOW)
        create_user(
            s, username="wh", password="warehouse-pass", role=Role.WAREHOUSE, region_code="SH"
        )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    app.extensions["groupbuy"]["engine"].dispose()


def test_warehouse_staff_walk_from_the_wave_to_a_sorting_list(live_demo, tmp_path):
    """Signed in, warehouse staff reach the warehouse pick list and a station's sorting lists,
    which show bag numbers with masked names and phones, and no pickup code."""
    sync_playwright = browser_or_skip()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
        )
        page = browser.new_page(locale="en-US")
        page.goto(live_demo + "/")
        page.fill("#username", "wh")
        page.fill("#password", "warehouse-pass")
        page.click("button[type=submit]")
        page.wait_for_load_state()  # the new page whole, not as far as parsed
        assert "上海 Shanghai" in page.content()
        page.get_by_role("link", name="Warehouse", exact=True).first.click()
        page.wait_for_url("**/waves/*")
        rows = page.locator("table tr")
        assert rows.count() > 5  # header + one row per SKU picked
        page.get_by_role("link", name="Stations").click()
        page.get_by_role("link", name="sorting lists →").first.click()
        page.wait_for_url("**/leaders?station=*")
        text = page.locator("main").inner_text()
        assert "Bag" in text
        assert page.locator("td", has_text="****").count() > 0
        page.screenshot(path=str(tmp_path / "sorting.png"), full_page=True)
        browser.close()
