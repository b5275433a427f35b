"""The admin's desk in Debian's Chromium (Playwright) at 360 px, in Chinese, served by gunicorn
on PostgreSQL: a product created through its form, and a products file previewed with its
errors by line and field."""

import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS, browser_or_skip, served_by_gunicorn
from factories import make_world
from sqlalchemy import func, select

from fulfilment.accounts.models import Role
from fulfilment.accounts.services import create_user
from fulfilment.core.db import make_engine, make_session_factory, session_scope
from fulfilment.core.models import Product
from web import create_app

PASSWORD = "correct horse battery"


@pytest.fixture
def served(pg_url, tmp_path):
    env = {"GROUPBUY_ENV": "test", "GROUPBUY_DATABASE_URL": pg_url}
    app = create_app({**env, "GROUPBUY_INSTANCE_DIR": str(tmp_path / "instance")})
    with session_scope(app.extensions["groupbuy"]["sessions"]) as s:
        make_world(s, leaders=2)
        create_user(s, username="admin", password=PASSWORD, role=Role.ADMIN, locale="zh_Hans_CN")
    app.extensions["groupbuy"]["engine"].dispose()
    engine = make_engine(pg_url)
    with served_by_gunicorn({**env, "GROUPBUY_INSTANCE_DIR": str(tmp_path / "instance")}) as base:
        yield base, make_session_factory(engine)
    engine.dispose()


BAD_FILE = (
    "sku,name,weight_g,volume_ml,zone,bin_code\n"
    "PEACH,桃子,500,800,ambient,A-05-1\n"
    "KIWI,猕猴桃,abc,600,ambient,A-05-2\n"
    "FISH,带鱼,700,900,tepid,C-02-2\n"
)


def _fits(page) -> None:
    """Nothing wider than the 360 px screen, and every button and form control 44 px tall."""
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    short = page.evaluate(
        """[...document.querySelectorAll('main button, main input:not([type=hidden]):not([type=checkbox]), main select, main a')]
           .filter(e => e.getBoundingClientRect().height < 44).map(e => e.outerHTML)"""
    )
    assert short == []


@pytest.mark.postgres
def test_the_admin_creates_a_product_and_previews_a_file_on_a_phone_in_chinese(served, tmp_path):
    """At 360 px in Chinese the admin goes from the start page to the products, creates one
    (first refused with the field named in Chinese, then saved), then checks a products file: the preview names each bad line and field
    and writes nothing; on a new leader's form a tap on the map fills the coordinates.
    Screenshots in tmp_path."""
    base, sessions = served
    with browser_or_skip()() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 360, "height": 780}, locale="zh-CN")
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base + "/login")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.click("text=管理：主数据、用户、导入")
        page.click("nav.admin-links >> text=商品")
        page.click("text=新建：商品")
        page.fill("input[name=sku]", "PEAR")
        page.fill("input[name=name]", "梨 1kg")
        page.fill("input[name=weight_g]", "")  # required
        page.fill("input[name=volume_ml]", "1400")
        page.select_option("select[name=zone]", "chilled")
        page.fill("input[name=bin_code]", "B-03-2")
        page.click("button:has-text('保存')")
        page.wait_for_load_state()  # the new page whole, not as far as parsed
        assert "重量（克）：克数，整数。" in page.inner_text("[role=alert]")
        assert page.get_attribute("input[name=weight_g]", "aria-invalid") == "true"
        _fits(page)
        page.screenshot(path=str(tmp_path / "admin-product-refused.png"), full_page=True)
        page.fill("input[name=weight_g]", "1000")
        _fits(page)
        page.screenshot(path=str(tmp_path / "admin-product-form.png"), full_page=True)
        page.click("button:has-text('保存')")
        assert "已保存：商品 PEAR" in page.inner_text(".flash")
        page.screenshot(path=str(tmp_path / "admin-product-saved.png"), full_page=True)

        page.goto(base + "/admin/import/products")
        source = tmp_path / "products.csv"
        source.write_text(BAD_FILE, encoding="utf-8")
        page.set_input_files("input[name=file]", str(source))
        page.click("button:has-text('检查文件')")
        page.wait_for_load_state()  # the new page whole, not as far as parsed
        assert "2 处错误：不会写入任何内容" in page.inner_text("[role=alert]")
        rows = page.locator("table.errors tr").all_inner_texts()
        assert any(r.startswith("3\tweight_g") for r in rows), rows
        assert any(r.startswith("4\tzone") for r in rows), rows
        assert page.locator("input[name=token]").count() == 0
        _fits(page)
        page.screenshot(path=str(tmp_path / "admin-import-preview.png"), full_page=True)

        page.goto(base + "/admin/leaders/new")
        page.wait_for_selector("#map .leaflet-marker-pane, #map path.leaflet-interactive")
        box = page.locator("#map").bounding_box()
        page.locator("#map").click(position={"x": box["width"] / 2 + 30, "y": box["height"] / 2})
        lat, lon = page.input_value("input[name=lat]"), page.input_value("input[name=lon]")
        page.screenshot(path=str(tmp_path / "admin-leader-map.png"), full_page=True)
        assert errors == []
        assert abs(float(lat) - 31.2) < 0.5 and abs(float(lon) - 121.4) < 0.5, (lat, lon)
        assert page.locator("#map .leaflet-marker-icon").count() == 1
        _fits(page)
        page.locator("#map").scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "admin-leader-map.png"), full_page=True)
        browser.close()
    with session_scope(sessions) as s:
        assert s.scalar(select(func.count()).select_from(Product)) == 4  # 3 + PEAR
        assert s.scalar(select(Product.zone).where(Product.sku == "PEAR")).value == "chilled"
